"""The recorder's system clock: wall time corrected by dock syncs, and how far
to trust it.  The clock interface, states and time spellings are shared with
the dock and archive and live in ``device/sealing/clock.py``.

How far the time is trusted is derived from evidence, never assumed from the
hw-config alone (``derive_state``):

- an RTC whose time the kernel refuses (backup cell lost: ``since_epoch``
  unreadable) or that reads a time before ``TIME_FLOOR`` gives no time;
- a dock sync is persisted (``clock.json`` in the state directory, beside the
  signed ``clock-set`` seal-log event) and re-applied after a restart, unless
  the system clock is now *before* the sync (it was reset in between);
- the wall clock is followed through the monotonic clock, so a step of the
  system clock (someone set it, the RTC was re-read) never reorders stamps or
  file names; ``check_step`` reports it for a signed ``clock-step`` event.

The error bound of a synced clock is half the sync's round-trip delay plus the
RTC's datasheet drift (``rtc.drift_ppm``) over the time since the sync.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .sealing.clock import CLOCK_RTC, CLOCK_SYNCED, CLOCK_UNTRUSTED, utc_text

log = logging.getLogger(__name__)

# No recorder of this software ran before this instant: a clock that reads
# earlier has lost its time (an RTC reset to 2000-01-01, a Pi without RTC at 1970).
TIME_FLOOR = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
# A difference between the wall clock and the monotonic clock larger than this
# is a step (drift between the two is parts per million: microseconds a second).
STEP_NS = 1_000_000_000
SYNC_FILE = "clock.json"


@dataclass(frozen=True)
class ClockSync:
    """A dock's sync as persisted: the offset to add to the system clock, when (by the
    system clock) it was measured, and the round-trip delay of the measurement."""

    offset_ns: int
    system_ns: int
    delay_ns: int
    boot_id: str = ""

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"offset_ns": self.offset_ns, "system_ns": self.system_ns, "delay_ns": self.delay_ns,
                       "boot_id": self.boot_id}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "ClockSync | None":
        try:
            raw = json.loads(path.read_text())
            sync = cls(int(raw["offset_ns"]), int(raw["system_ns"]), abs(int(raw["delay_ns"])),
                       str(raw.get("boot_id", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable clock sync, ignored: %s", path, exc)
            return None
        return sync


def boot_id() -> str:
    """The kernel's ID of this boot (changes at every reboot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def rtc_time_ok(when: dt.datetime | None) -> bool:
    return when is not None and when >= TIME_FLOOR


class SystemClock:
    """Wall time followed through the monotonic clock, plus the dock's offset.

    ``wall_ns``/``mono_ns`` are injectable so that tests can step the wall clock.
    """

    def __init__(self, state: str = CLOCK_RTC, *, drift_ppm: float = 2.0,
                 wall_ns: Callable[[], int] = time.time_ns, mono_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.state = state
        self.drift_ppm = drift_ppm
        self._wall_ns, self._mono_ns = wall_ns, mono_ns
        self._base_wall, self._base_mono = wall_ns(), mono_ns()
        self.offset_ns = 0  # applied by dock syncs
        self.sync: ClockSync | None = None
        self._sync_mono: int | None = None
        self.steps = 0
        self._known_steps = 0  # wall-clock steps seen so far (ns)
        self.sync_path: Path | None = None
        self.why = "from the hw-config"  # what the state rests on, for status and meta

    @property
    def offset(self) -> dt.timedelta:
        return dt.timedelta(microseconds=self.offset_ns // 1000)

    def _system_ns(self) -> int:
        """The system wall clock as the monotonic clock carries it from start-up."""
        return self._base_wall + (self._mono_ns() - self._base_mono)

    def utc_now(self) -> dt.datetime:
        ns = self._system_ns() + self.offset_ns
        return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc) + dt.timedelta(
            microseconds=(ns % 1_000_000_000) // 1000)

    def monotonic_ns(self) -> int:
        return self._mono_ns()

    def adjust(self, offset_ns: int) -> None:
        """Add a dock's measured offset (the Clock interface); ``synced`` records the sync."""
        self.offset_ns += offset_ns

    def synced(self, delay_ns: int) -> None:
        """A dock synced this clock with a round trip of ``delay_ns``: persist it (``sync_path``)."""
        self.state = CLOCK_SYNCED
        self.sync = ClockSync(self.offset_ns, self._system_ns(), abs(delay_ns), boot_id())
        self._sync_mono = self._mono_ns()
        if self.sync_path is not None:
            try:
                self.sync.save(self.sync_path)
            except OSError as exc:
                log.error("%s: cannot persist the clock sync: %s", self.sync_path, exc.strerror or exc)
        self.why = "dock sync"

    def resume_sync(self, sync: ClockSync) -> bool:
        """Re-apply a persisted sync after a restart, if the system clock allows it."""
        system = self._system_ns()
        if system < sync.system_ns:
            log.warning("the system clock (%s) is before the last dock sync: it was reset; not trusted",
                        utc_text(dt.datetime.fromtimestamp(system / 1e9, dt.timezone.utc)))
            return False
        self.offset_ns = sync.offset_ns
        self.sync = sync
        self._sync_mono = self._mono_ns() - (system - sync.system_ns)
        self.why = "dock sync (persisted)"
        return True

    def error_bound_ms(self) -> int | None:
        """How far the time may be off, in ms; None when nothing bounds it (no sync)."""
        if self.state != CLOCK_SYNCED or self.sync is None or self._sync_mono is None:
            return None
        elapsed_s = max(0, self._mono_ns() - self._sync_mono) / 1e9
        return round(self.sync.delay_ns / 2e6 + elapsed_s * self.drift_ppm / 1000)

    def last_sync_utc(self) -> str | None:
        if self.sync is None:
            return None
        ns = self.sync.system_ns + self.sync.offset_ns
        return utc_text(dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc))

    def check_step(self) -> int | None:
        """The system wall clock's step since the last check (ns), or None.

        The recorder's time does not follow the step; the caller logs it.
        A step leaves an unsynced clock untrusted (the RTC's time is in doubt)."""
        step = self._wall_ns() - (self._system_ns() + self._known_steps)
        if abs(step) < STEP_NS:
            return None
        self.steps += 1
        self._known_steps += step  # noted once; the recorder's own time is unchanged
        if self.state == CLOCK_RTC:
            self.state = CLOCK_UNTRUSTED
            self.why = "the system clock stepped"
        return step

    def meta(self) -> dict:
        """For every segment's manifest meta: integers and strings only."""
        return {"state": self.state, "basis": self.why, "error_bound_ms": self.error_bound_ms(),
                "last_sync_utc": self.last_sync_utc(), "steps": self.steps}


def derive_state(kind: str, rtc_present: bool, rtc_time: dt.datetime | None, system: dt.datetime) -> tuple[str, str]:
    """(clock state, why) from the evidence at start-up, before any persisted sync."""
    if system < TIME_FLOOR:
        return CLOCK_UNTRUSTED, f"the system clock reads {system:%Y-%m-%d}, before {TIME_FLOOR:%Y-%m-%d}"
    if kind == "host":
        return CLOCK_RTC, "the host's own clock (sim)"
    if kind == "none":
        return CLOCK_UNTRUSTED, "no RTC"
    if not rtc_present:
        return CLOCK_UNTRUSTED, f"the {kind} RTC is not there"
    if not rtc_time_ok(rtc_time):
        return CLOCK_UNTRUSTED, f"the kernel refuses the {kind} RTC's time (backup cell lost?)"
    return CLOCK_RTC, f"the {kind} RTC"


def recorder_clock(config, state_dir: Path | None) -> SystemClock:
    """The recorder's clock for a hw-config, its state derived from the evidence:
    the RTC as the kernel reads it, and a dock sync persisted in ``state_dir``."""
    from .health.rtc import kernel_rtc

    rtc = config.rtc
    if rtc.kind in ("host", "none"):
        present, when = rtc.kind == "host", None
    else:
        reading = kernel_rtc(rtc.device)
        present, when = reading.present, reading.time if reading.valid else None
    clock = SystemClock(drift_ppm=rtc.drift_ppm)
    system = dt.datetime.fromtimestamp(clock._system_ns() / 1e9, dt.timezone.utc)
    clock.state, clock.why = derive_state(rtc.kind, present, when if rtc.kind != "host" else system, system)
    if state_dir is not None:
        clock.sync_path = Path(state_dir) / SYNC_FILE
        sync = ClockSync.load(clock.sync_path)
        # The offset was measured against this system clock: it still holds in the same
        # boot whatever the RTC, and after a reboot only if a valid RTC carried the time.
        if sync is not None and (sync.boot_id == boot_id() or clock.state == CLOCK_RTC):
            if clock.resume_sync(sync):
                clock.state = CLOCK_SYNCED
    log.info("clock: %s (%s)", clock.state, clock.why)
    return clock
