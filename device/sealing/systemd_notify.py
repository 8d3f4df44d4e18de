"""sd_notify(3) for the recorder, the dock and the archive: READY=1, WATCHDOG=1, STOPPING=1,
STATUS=….

Outside systemd (no $NOTIFY_SOCKET) every call does nothing.  Each message is one
datagram to the AF_UNIX socket named in the environment; a leading '@' is the abstract
namespace, as sd_notify(3) documents.  A send never blocks (a busy or absent listener
drops the message) and never raises.

The one implementation; it sits in the format package only because that is the one
package all three programs may import (DESIGN.md, "Import rules").  The ``sdnotify``
PyPI package was not taken: unmaintained since 2017, and its sends may block.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class SystemdNotifier:
    """The service manager's notification socket, from ``env`` (default os.environ):
    $NOTIFY_SOCKET and $WATCHDOG_USEC (microseconds; pinged at half of it).  ``sent``
    lists the messages that went out."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.address = env.get("NOTIFY_SOCKET") or None
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() else None
        self._last_watchdog = float("-inf")
        self.sent: list[str] = []
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """Send ``message`` (lines KEY=VALUE); whether it went out.  The first failure is
        logged as a warning, later ones at debug level (the watchdog pings often)."""
        if self.address is None:
            return False
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                # Never block the main loop on a busy listener: drop instead.
                sock.sendto(message.encode(), socket.MSG_DONTWAIT, address)
            except OSError as exc:
                level = logging.DEBUG if self._failed else logging.WARNING
                self._failed = True
                log.log(level, "sd_notify %r to %s: %s", message.split("\n", 1)[0], self.address, exc)
                return False
        self.sent.append(message)
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> bool:
        """Ping at half the configured interval, from the main loop only."""
        if self.watchdog_interval is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_watchdog < self.watchdog_interval:
            return False
        self._last_watchdog = now
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")
