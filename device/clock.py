"""The recorder's system clock: wall time corrected by dock syncs, and how far
to trust it.  The clock interface, states and time spellings are shared with
the dock and archive and live in ``device/sealing/clock.py``."""

from __future__ import annotations

import datetime as dt
import time

from .sealing.clock import CLOCK_RTC


class SystemClock:
    def __init__(self, state: str = CLOCK_RTC) -> None:
        self.state = state
        self.offset = dt.timedelta(0)  # applied by a dock sync

    def utc_now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset

    def adjust(self, offset_ns: int) -> None:
        self.offset += dt.timedelta(microseconds=offset_ns // 1000)

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()
