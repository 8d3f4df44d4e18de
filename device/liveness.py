"""Liveness deadlines for the capture sources, and their restarts with back-off.

A source that raises is easy to notice; one that simply stops delivering (a
libcamera front-end timeout, a microphone whose audio server died) is not.
Every capture source delivers through a ``LivenessTap``; when nothing has
come through it for ``deadline`` seconds, or the source holds an error, the
source is *down*: a ``stalled``/``failed`` fault goes onto the recorder's
fault channel (the service turns it into an alarm and a signed seal-log
event), the segmenter records whatever still works, and the source is
restarted after a back-off that grows with each failed attempt.  The first
delivery after a restart is a ``recovered`` fault, which resets the back-off.

All times come from the injected clock, so tests advance a ``ManualClock``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

from .capture.seam import (
    FAULT_FAILED,
    FAULT_RECOVERED,
    FAULT_RESTARTED,
    FAULT_STALLED,
    FaultChannel,
    LivenessTap,
)

log = logging.getLogger(__name__)

# Seconds without a delivery before a source is down.  A camera delivers every
# frame (33 ms at 30 fps) and a microphone every block (21 ms); 2 s is many
# times either, and short against a shift.  The first delivery after a
# (re)start may take longer: libcamera and PortAudio need time to open.
DEADLINE_SECONDS = 2.0
START_DEADLINE_SECONDS = 10.0
# Seconds before each further restart attempt; the last repeats.
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

UP, STARTING, DOWN = "up", "starting", "down"


@dataclass
class SourceState:
    name: str
    state: str = STARTING
    started_ns: int = 0
    seen_packets: int = 0
    attempts: int = 0          # failed restarts in a row
    restarts: int = 0          # restarts since power-on
    next_restart_ns: int | None = None
    last_fault: str | None = None

    def as_dict(self) -> dict:
        return {"state": self.state, "restarts": self.restarts, "last_fault": self.last_fault}


class _Restart:
    """A restart on its own thread: opening a camera or an audio server can block."""

    def __init__(self, name: str, restart: Callable[[], object]) -> None:
        self.done = threading.Event()
        self.source: object | None = None
        self.error: str | None = None
        self._restart = restart
        threading.Thread(target=self._run, name=f"restart-{name}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.source = self._restart()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()


class Liveness:
    """Watches named sources; ``check()`` from the main loop returns what changed.

    ``sources``: name -> (current source, its tap, restart function that
    builds and starts a new source on the same tap and returns it).
    """

    def __init__(self, clock_ns: Callable[[], int], faults: FaultChannel, *,
                 deadline: float = DEADLINE_SECONDS, start_deadline: float = START_DEADLINE_SECONDS,
                 backoff: tuple[float, ...] = BACKOFF_SECONDS) -> None:
        self.clock_ns = clock_ns
        self.faults = faults
        self.deadline_ns = int(deadline * 1e9)
        self.start_deadline_ns = int(start_deadline * 1e9)
        self.backoff_ns = [int(s * 1e9) for s in backoff]
        self.states: dict[str, SourceState] = {}
        self._taps: dict[str, LivenessTap] = {}
        self._sources: dict[str, object] = {}
        self._restart: dict[str, Callable[[], object]] = {}
        self._pending: dict[str, _Restart] = {}

    def watch(self, name: str, source, tap: LivenessTap, restart: Callable[[], object]) -> None:
        self._sources[name], self._taps[name], self._restart[name] = source, tap, restart
        self.states[name] = SourceState(name, STARTING, self.clock_ns(), tap.packets)

    def source(self, name: str):
        return self._sources[name]

    def down(self) -> set[str]:
        return {n for n, s in self.states.items() if s.state == DOWN}

    def anything_up(self) -> bool:
        """Some source is delivering (a source still starting does not count, so a
        restart loop that never delivers does not keep the watchdog fed)."""
        return any(s.state == UP for s in self.states.values())

    def _mark_down(self, st: SourceState, kind: str, detail: str, now: int) -> None:
        st.state = DOWN
        st.last_fault = f"{kind}: {detail}"
        wait = self.backoff_ns[min(st.attempts, len(self.backoff_ns) - 1)]
        st.next_restart_ns = now + wait
        self.faults.report(st.name, kind, f"{detail}; restart in {wait / 1e9:g} s")

    def check(self) -> list[str]:
        """Apply deadlines and due restarts; returns the names whose state changed."""
        changed = []
        now = self.clock_ns()
        for name, st in self.states.items():
            before = st.state
            if name in self._pending:
                self._check_restart(st, now)
            elif st.state == DOWN:
                if st.next_restart_ns is not None and now >= st.next_restart_ns:
                    st.attempts += 1
                    st.restarts += 1
                    st.seen_packets = self._taps[name].packets
                    st.state, st.started_ns, st.next_restart_ns = STARTING, now, None
                    self.faults.report(name, FAULT_RESTARTED, f"restart {st.restarts} (attempt {st.attempts})")
                    self._pending[name] = _Restart(name, self._restart[name])
            else:
                self._check_delivery(st, now)
            if st.state != before:
                changed.append(name)
        return changed

    def _check_restart(self, st: SourceState, now: int) -> None:
        pending = self._pending[st.name]
        if pending.done.is_set():
            del self._pending[st.name]
            if pending.error is not None:  # could not even start: back off further
                self._mark_down(st, FAULT_FAILED, f"restart failed: {pending.error}", now)
            else:
                self._sources[st.name] = pending.source
                self._check_delivery(st, now)
        elif now - st.started_ns > self.start_deadline_ns:
            # Hung in the driver while starting: left behind; try again later.
            del self._pending[st.name]
            self._mark_down(st, FAULT_STALLED, "restart did not return", now)

    def _check_delivery(self, st: SourceState, now: int) -> None:
        source, tap = self._sources[st.name], self._taps[st.name]
        delivered = tap.packets > st.seen_packets
        error = getattr(source, "error", None)
        if error is not None:
            self._mark_down(st, FAULT_FAILED, f"{type(error).__name__}: {error}", now)
        elif delivered and tap.last_ns is not None and now - tap.last_ns <= self.deadline_ns:
            if st.state == STARTING:
                if st.restarts:
                    self.faults.report(st.name, FAULT_RECOVERED,
                                       f"delivering again after {st.restarts} restart(s)")
                st.attempts = 0
                st.last_fault = None
            st.state = UP
        else:
            last = tap.last_ns if delivered and tap.last_ns is not None else st.started_ns
            limit = self.deadline_ns if st.state == UP else self.start_deadline_ns
            if now - last > limit:
                self._mark_down(st, FAULT_STALLED, f"nothing delivered for {(now - last) / 1e9:.1f} s", now)
