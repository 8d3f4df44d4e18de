"""What every hardware seam shares: one fault channel, a liveness tap, a bounded stop.

Every board-level part (camera, microphone, speaker, fuel gauge, RTC) reports
what goes wrong through one ``FaultChannel``; the service drains it into the
health monitor, the indicators and the seal log.  A source that hangs in a
driver (a dead JACK server, a libcamera front end that stopped) must never
hold the recorder: ``stop_within`` gives every stop a deadline, and
``LivenessTap`` notes when a source last delivered, so that a source that
stops *without raising* is noticed too.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

log = logging.getLogger(__name__)

# Fault kinds, as they appear in the seal log's ``source-fault`` events.
FAULT_STALLED = "stalled"          # no delivery within the liveness deadline
FAULT_FAILED = "failed"            # the source raised, or could not start
FAULT_RESTARTED = "restarted"      # a restart after a fault
FAULT_RECOVERED = "recovered"      # delivering again after a fault
FAULT_STOP_TIMEOUT = "stop-timeout"  # stop() did not return within its deadline
FAULT_OVERFLOW = "overflow"        # input overflow: samples lost (a gap, never a shift)
FAULT_IMPLAUSIBLE = "implausible"  # a sensor reading outside what the part can report
FAULT_READ_ERROR = "read-error"    # a sensor did not answer


@dataclass(frozen=True)
class Fault:
    """One fault: ``source`` (camera, microphone, speaker, gauge, rtc), its kind, a
    human-readable detail, and the monotonic time in ns when it was reported."""

    source: str
    kind: str
    detail: str
    monotonic_ns: int

    def as_event(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "detail": self.detail[:200]}


class FaultChannel:
    """Thread-safe: any thread reports, the main loop drains (bounded, oldest dropped)."""

    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns, capacity: int = 1000) -> None:
        self._clock_ns = clock_ns
        self._queue: collections.deque[Fault] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.reported = 0

    def report(self, source: str, kind: str, detail: str) -> Fault:
        fault = Fault(source, kind, detail, self._clock_ns())
        with self._lock:
            self._queue.append(fault)
            self.reported += 1
        log.warning("%s: %s: %s", source, kind, detail)
        return fault

    def drain(self) -> list[Fault]:
        with self._lock:
            faults = list(self._queue)
            self._queue.clear()
        return faults


class CaptureSource(Protocol):
    """The camera and microphone seams: picamera2's or PyAV's camera, sounddevice or a tone.

    ``start(output)`` registers the source's stream with ``output`` (picamera2's
    Output interface) and starts delivering; ``stop()`` stops and releases the
    device (callers bound it with ``stop_within``); ``error`` holds what made it
    fail; ``alive`` says whether its thread or stream still runs.
    """

    error: BaseException | None

    def start(self, output: Any) -> None: ...
    def stop(self) -> None: ...

    @property
    def alive(self) -> bool: ...


class SpeakerSeam(Protocol):
    """The speaker (sounddevice, or none): ``play`` returns at once; a failure is
    ``error`` and a ``failed`` fault, never an exception into the controls."""

    error: BaseException | None

    def play(self, announcement: Any, wait: bool = False) -> None: ...


class SensorSeam(Protocol):
    """The fuel gauge and the RTC (smbus2 drivers in device/health): ``read()``
    returns a reading or raises the driver's own ``SensorError`` subclass; the
    health monitor turns what they raise, and readings they cannot have
    (``ImplausibleReading``), into ``read-error``/``implausible`` faults on
    their transitions (and ``recovered`` when they answer sensibly again)."""

    def read(self) -> Any: ...


class LivenessTap:
    """Passes a source's packets on and notes, per the injected clock, when the last came.

    A picamera2 Output in shape (``outputframe``, ``_add_stream``) so that it sits
    between any source and the pre-roll.
    """

    needs_pacing = False
    needs_add_stream = True

    def __init__(self, target: Any, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._target = target
        self._clock_ns = clock_ns
        self.recording = False
        self.packets = 0
        self.last_ns: int | None = None
        self.last_timestamp_us: int | None = None

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def _add_stream(self, *args, **kwargs) -> None:
        self._target._add_stream(*args, **kwargs)

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False) -> None:
        self.packets += 1
        self.last_ns = self._clock_ns()
        self.last_timestamp_us = timestamp
        self._target.outputframe(frame, keyframe, timestamp, packet, audio)


def stop_within(name: str, stop: Callable[[], None], seconds: float, faults: FaultChannel | None = None) -> bool:
    """Run ``stop()`` on a helper thread and wait at most ``seconds``.

    Returns True when it returned (or raised) in time.  A stop that hangs in a
    driver is left behind on its daemon thread and reported as
    ``stop-timeout``; a stop that raises is reported as ``failed``.
    """
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            stop()
        except BaseException as exc:  # reported below; a driver's error must not stop sealing
            outcome["error"] = exc

    def report(kind: str, detail: str) -> None:
        if faults is not None:
            faults.report(name, kind, detail)
        else:
            log.error("%s: %s", name, detail)

    thread = threading.Thread(target=run, name=f"stop-{name}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        report(FAULT_STOP_TIMEOUT, f"stop() did not return within {seconds:g} s; left behind")
        return False
    if "error" in outcome:
        report(FAULT_FAILED, f"stop() raised {type(outcome['error']).__name__}: {outcome['error']}")
    return True
