"""The dock daemon: watch for recorders (pyudev), run a session per bay.

A recorder appears as a CDC-NCM network interface; udev's usb_id gives it
ID_VENDOR_ID, ID_MODEL_ID, ID_SERIAL_SHORT (= the device ID) and
ID_USB_DRIVER.  Each bay's session runs on its own thread, so one failing
bay never stalls the others; progress and outcome per bay are written to
STATE/status.json for ``bodycam dock status``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

from .archive_client import ArchiveClient
from .checkout_inbox import apply_checkout_requests
from .config import DockConfig, MatchConfig
from .registry import Registry
from .session import DockIdentity, DockSession, Progress, SessionError

log = logging.getLogger(__name__)

RETRIES = 5
BACKOFF_SECONDS = 2.0


def match_recorder(props: Mapping[str, str], match: MatchConfig) -> str | None:
    """The device ID if these udev properties describe one of our recorders."""
    if props.get("SUBSYSTEM") != "net":
        return None
    if props.get("ID_VENDOR_ID", "").lower() != match.vendor_id:
        return None
    if props.get("ID_MODEL_ID", "").lower() != match.product_id:
        return None
    if props.get("ID_USB_DRIVER") != match.driver:
        return None
    serial = props.get("ID_SERIAL_SHORT", "")
    return serial if re.fullmatch(match.serial_pattern, serial) else None


def bay_for(props: Mapping[str, str], config: DockConfig) -> int | None:
    path = props.get("ID_PATH", "")
    for bay in config.bays:
        if bay.usb_path == path:
            return bay.bay
    return None


class StatusBoard:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.bays: dict[str, Any] = {}
        if path.exists():
            try:
                self.bays = json.loads(path.read_text()).get("bays", {})
            except ValueError:
                self.bays = {}

    def update(self, progress: Progress) -> None:
        with self._lock:
            entry = asdict(progress)
            entry["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            self.bays[str(progress.bay)] = entry
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"bays": self.bays}, indent=2, ensure_ascii=False))
            os.replace(tmp, self.path)


class DockDaemon:
    def __init__(self, config: DockConfig) -> None:
        self.config = config
        config.state.mkdir(parents=True, exist_ok=True)
        self.identity = DockIdentity.load(config.key, config.certificate, config.ca)
        a = config.archive
        self.archive = ArchiveClient(a.url, key=config.key, certificate=config.certificate, ca=a.ca or config.ca,
                                     timeout=a.timeout_seconds)
        self.registry = Registry(config.state / "registry.sqlite")
        self.board = StatusBoard(config.state / "status.json")
        self._active: dict[int, threading.Thread] = {}
        self._requests: dict[int, tuple[str, str | None]] = {}  # arrivals not yet docked
        self._wake: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def url_for(self, ifname: str) -> str:
        address = self.config.recorder.address
        if address.startswith("fe80:"):
            address = f"[{address}%25{ifname}]"  # link-local needs the interface
        elif ":" in address:
            address = f"[{address}]"
        return f"https://{address}:{self.config.recorder.port}"

    def session(self, bay: int, url: str, device: str | None) -> DockSession:
        apply_checkout_requests(self.config.state, self.registry, {b.bay for b in self.config.bays})
        return DockSession(identity=self.identity, url=url, bay=bay, expected_device=device,
                           archive=self.archive, registry=self.registry,
                           staging=self.config.state / "staging",
                           shift_minutes=self.config.readiness.shift_minutes,
                           require_clock_synced=self.config.readiness.require_clock_synced,
                           on_progress=self.board.update, timeout=self.config.recorder.timeout_seconds)

    def dock(self, bay: int, url: str, device: str | None, retries: int = RETRIES) -> Progress:
        """Run a bay's session, resuming after link faults, until done or out of tries.

        A recorder that arrives again on this bay (a new udev "add") while the
        bay waits to retry is docked at once at its new address, with the
        tries counted afresh.
        """
        last: Progress | None = None
        attempt = 0
        with self._lock:
            wake = self._wake.setdefault(bay, threading.Event())
        while attempt < retries:
            session = self.session(bay, url, device)
            try:
                return asyncio.run(session.run())
            except SessionError as exc:
                last = session.progress
                log.warning("bay %s attempt %s: %s", bay, attempt + 1, exc)
            except Exception as exc:  # a bug must not leave the bay without an outcome
                log.exception("bay %s: session failed", bay)
                last = session.progress
                last.phase, last.outcome = "failed", f"failed: {exc.__class__.__name__}: {exc}"
                self.board.update(last)
            attempt += 1
            if attempt < retries and wake.wait(BACKOFF_SECONDS * attempt):
                wake.clear()
                with self._lock:
                    again = self._requests.pop(bay, None)
                if again is not None:
                    url, device = again
                    attempt = 0
            if self.stop.is_set():
                break
        assert last is not None
        return last

    def _bay(self, bay: int) -> None:
        """A bay's thread: dock every arrival, including those during a docking."""
        while not self.stop.is_set():
            with self._lock:
                request = self._requests.pop(bay, None)
                if request is None:
                    del self._active[bay]
                    return
                self._wake.setdefault(bay, threading.Event()).clear()
            self.dock(bay, *request)

    def handle(self, props: Mapping[str, str]) -> int | None:
        """A network interface appeared: start its bay's session if it is a recorder."""
        device = match_recorder(props, self.config.match)
        if device is None:
            return None
        bay = bay_for(props, self.config)
        if bay is None:
            self.board.update(Progress(bay=0, device=device, phase="refused",
                                       outcome=f"recorder on an unconfigured port {props.get('ID_PATH')!r}"))
            return None
        self.start_bay(bay, self.url_for(props.get("INTERFACE", "")), device)
        return bay

    def start_bay(self, bay: int, url: str, device: str | None) -> threading.Thread:
        """Dock on the bay's own thread: one stuck bay never holds up another.

        No arrival is lost: if the bay's thread is still busy (docking, or
        waiting to retry), the new arrival is queued for it and wakes it.
        """
        with self._lock:
            self._requests[bay] = (url, device)
            self._wake.setdefault(bay, threading.Event()).set()
            running = self._active.get(bay)
            if running is not None and running.is_alive():
                return running
            thread = threading.Thread(target=self._bay, args=(bay,), name=f"bay{bay}", daemon=True)
            self._active[bay] = thread
            thread.start()
            return thread

    def run(self) -> None:
        import pyudev

        context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by("net")
        monitor.start()
        for device in context.list_devices(subsystem="net"):  # recorders already docked
            self.handle(dict(device.properties))
        while not self.stop.is_set():
            apply_checkout_requests(self.config.state, self.registry, {b.bay for b in self.config.bays})
            device = monitor.poll(timeout=0.5)
            if device is not None and device.action == "add":
                self.handle(dict(device.properties))
