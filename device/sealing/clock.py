"""Time shared by sealing, dock and archive: the clock interface, clock states,
the timestamp spellings of the formats, and a ``ManualClock`` for tests.

Everything that needs time takes a clock object, so tests advance a
``ManualClock`` instead of sleeping.  The recorder's own system clock is in
``device/clock.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from zoneinfo import ZoneInfo

# How the recorder came by its time; stamped into every segment.
CLOCK_SYNCED = "synced"  # set by a dock since boot (offset known)
CLOCK_RTC = "rtc"  # from a battery-backed RTC, not synced since boot
CLOCK_UNTRUSTED = "untrusted"  # no RTC and no sync: the time may be wrong

DEFAULT_TIMEZONE = "Asia/Shanghai"


class Clock(Protocol):
    state: str

    def utc_now(self) -> dt.datetime: ...

    def adjust(self, offset_ns: int) -> None: ...

    def monotonic_ns(self) -> int: ...


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(
        self, start: dt.datetime | None = None, state: str = CLOCK_SYNCED
    ) -> None:
        # Default: now, to the second.  Certificates are judged at the signed
        # time, so a fixed date would fall outside a freshly issued certificate.
        self._utc = start or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self._mono = 1_000_000_000
        self.state = state

    def utc_now(self) -> dt.datetime:
        return self._utc

    def monotonic_ns(self) -> int:
        return self._mono

    def adjust(self, offset_ns: int) -> None:
        self._utc += dt.timedelta(microseconds=offset_ns // 1000)

    def advance(self, seconds: float) -> None:
        self._utc += dt.timedelta(seconds=seconds)
        self._mono += int(seconds * 1e9)


def utc_text(when: dt.datetime) -> str:
    """ISO 8601 UTC with microseconds, e.g. ``2026-11-27T01:15:00.000000Z``."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def local_text(when: dt.datetime, zone: str = DEFAULT_TIMEZONE) -> str:
    """ISO 8601 local time with its offset, to the second."""
    return when.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")


def compact_local(when: dt.datetime, zone: str = DEFAULT_TIMEZONE) -> str:
    """``YYYYMMDDhhmmss`` in local time, as recorder file names use it."""
    return when.astimezone(ZoneInfo(zone)).strftime("%Y%m%d%H%M%S")
