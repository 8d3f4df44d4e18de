"""HTTP plumbing of the dock-link server that a hostile or sloppy peer leans on:
RFC 9110 byte ranges, a cap on connections, and rate limits for logs and for
the seal log's alarm entries."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Callable

log = logging.getLogger(__name__)

# Loggers a hostile peer can make write (handshake failures, bad requests): rate-limited.
_NOISY_LOGGERS = ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.access", "device.docklink", __name__)


def limit_noisy_logs() -> None:
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter())


_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.I)


def byte_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """RFC 9110 §14.1.2 single byte range -> (first, last) inclusive.

    None: no range to apply (another unit, which a server may ignore); False:
    malformed, several ranges, or unsatisfiable (answer 416).
    """
    unit = header.partition("=")[0].strip().lower()
    if unit != "bytes":
        return None
    match = _RANGE_RE.match(header)
    if not match or len(header) > 200:
        return False  # malformed, or a list of ranges: we serve one
    first, last = match.groups()
    if first == "" and last == "":
        return False
    if first == "":  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size - 1
    a = int(first)
    b = int(last) if last else size - 1
    if a > b or a >= size:
        return False
    return a, min(b, size - 1)


class RateLimitFilter(logging.Filter):
    """Lets at most ``burst`` records per ``seconds`` through per logger; then one summary.

    400 connections failing their handshakes must not write 70 MB of
    tracebacks: the first few say what happens, the rest are counted."""

    def __init__(self, burst: int = 10, seconds: float = 60.0, clock=time.monotonic) -> None:
        super().__init__()
        self.burst, self.seconds, self.clock = burst, seconds, clock
        self._window: dict[str, tuple[float, int]] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        start, count = self._window.get(record.name, (now, 0))
        if now - start >= self.seconds:
            if count > self.burst:
                record.msg = f"[{count - self.burst} similar messages suppressed] " + str(record.msg)
            start, count = now, 0
        count += 1
        self._window[record.name] = (start, count)
        if count > self.burst:
            self.suppressed += 1
            return False
        if count == self.burst:
            record.msg = str(record.msg) + " [further messages suppressed for a while]"
            record.exc_info = None  # no traceback on the last one let through
        return True


class AlarmLimiter:
    """At most ``burst`` seal-log alarms per kind per ``seconds``; the first admitted
    after a suppression carries the count suppressed.  Every refusal stays on
    record, but the (fsync'd) seal log cannot be made to grow without bound by a peer."""

    def __init__(self, burst: int = 5, seconds: float = 60.0, clock=time.monotonic) -> None:
        self.burst, self.seconds, self.clock = burst, seconds, clock
        self._window: dict[str, tuple[float, int]] = {}
        self._suppressed: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """None: suppress this one; else the number suppressed before it."""
        now = self.clock()
        start, count = self._window.get(kind, (now, 0))
        if now - start >= self.seconds:
            start, count = now, 0
        if count >= self.burst:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._window[kind] = (start, count + 1)
        return self._suppressed.pop(kind, 0)


class _Counted(asyncio.Protocol):
    """aiohttp's request handler, with its connection counted by the gate."""

    def __init__(self, inner: asyncio.Protocol, release: Callable[[], None]) -> None:
        self._inner, self._release = inner, release
        self.made = False

    def connection_made(self, transport) -> None:
        self.made = True
        self._inner.connection_made(transport)

    def connection_lost(self, exc) -> None:
        self._release()
        self._inner.connection_lost(exc)

    def release_unless_made(self) -> None:
        """After the handshake deadline: a connection that never completed TLS is gone
        (asyncio closed it) but never reaches connection_lost; its place is free."""
        if not self.made:
            self._release()

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self):
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionGate:
    """Caps the connections the dock link serves at once (refused at accept time).

    ``handshake_seconds``: the server's TLS handshake deadline; a connection that
    has not completed its handshake a second after it is counted out."""

    def __init__(self, limit: int, handshake_seconds: float = 5.0) -> None:
        self.limit = limit
        self.handshake_seconds = handshake_seconds
        self.active = 0
        self.refused = 0

    def wrap(self, factory):
        def make():
            if self.active >= self.limit:
                self.refused += 1
                if self.refused == 1 or self.refused % 100 == 0:
                    log.warning("dock link: %d connections open, refusing more (%d refused so far)",
                                self.active, self.refused)
                # Raising here makes asyncio drop the accepted socket at once.
                raise ConnectionRefusedError("dock link connection limit")
            self.active += 1
            released = []

            def release() -> None:
                if not released:
                    released.append(True)
                    self.active -= 1

            protocol = _Counted(factory(), release)
            asyncio.get_running_loop().call_later(self.handshake_seconds + 1, protocol.release_unless_made)
            return protocol

        return make
