"""Real-time clocks: the DS3231 over I2C (BCD registers) and the kernel's /dev/rtcN."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from .gauges import Bus, SensorError

DS3231_ADDRESS = 0x68


def _bcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0x0F)


class RtcError(SensorError):
    """An RTC did not answer, or its registers hold no valid time."""


class Ds3231Error(RtcError):
    """The DS3231 did not answer, or its registers are not a valid BCD time."""


def _bcd_field(value: int, mask: int, low: int, high: int, name: str, where: str) -> int:
    value &= mask
    if (value & 0x0F) > 9 or (value >> 4) > 9:
        raise Ds3231Error(f"{where}: {name} register 0x{value:02x} is not BCD")
    decoded = _bcd(value)
    if not low <= decoded <= high:
        raise Ds3231Error(f"{where}: {name} {decoded} is outside {low}-{high}")
    return decoded


@dataclass(frozen=True)
class RtcReading:
    present: bool
    time: dt.datetime | None
    valid: bool  # False when the oscillator stopped (OSF) since it was set
    temperature_c: float | None = None


class Ds3231:
    """Maxim DS3231: time at 0x00–0x06 (BCD), status 0x0F (OSF b7), temperature 0x11–0x12."""

    def __init__(self, bus: Bus, address: int = DS3231_ADDRESS) -> None:
        self.bus, self.address = bus, address

    def read(self) -> RtcReading:
        """Time, oscillator-stop flag and temperature.

        Raises ``Ds3231Error`` when the chip does not answer or its registers
        are not a time (all 0xFF: no chip or a stuck bus; non-BCD digits; a
        31 February)."""
        where = f"DS3231 at 0x{self.address:02x}"
        try:
            regs = list(self.bus.read_i2c_block_data(self.address, 0x00, 7))
            status = self.bus.read_byte_data(self.address, 0x0F)
            msb = self.bus.read_byte_data(self.address, 0x11)
            lsb = self.bus.read_byte_data(self.address, 0x12)
        except (OSError, ValueError, TypeError) as exc:
            raise Ds3231Error(f"{where} did not answer: {exc}") from None
        if len(regs) != 7:
            raise Ds3231Error(f"{where}: read {len(regs)} time registers, expected 7")
        if all(r == 0xFF for r in regs) and status == 0xFF:
            raise Ds3231Error(f"{where}: every register reads 0xFF (no chip answering, or SDA stuck high)")
        seconds_reg, minutes_reg, hours_reg, _day, date_reg, month_reg, year_reg = regs
        seconds = _bcd_field(seconds_reg, 0x7F, 0, 59, "seconds", where)
        minutes = _bcd_field(minutes_reg, 0x7F, 0, 59, "minutes", where)
        if hours_reg & 0x40:  # 12-hour mode
            hours = _bcd_field(hours_reg, 0x1F, 1, 12, "hours", where) % 12 + (12 if hours_reg & 0x20 else 0)
        else:
            hours = _bcd_field(hours_reg, 0x3F, 0, 23, "hours", where)
        date = _bcd_field(date_reg, 0x3F, 1, 31, "date", where)
        month = _bcd_field(month_reg, 0x1F, 1, 12, "month", where)
        year = _bcd_field(year_reg, 0xFF, 0, 99, "year", where)
        century = 100 if month_reg & 0x80 else 0
        try:
            when = dt.datetime(2000 + century + year, month, date, hours, minutes, seconds,
                               tzinfo=dt.timezone.utc)
        except ValueError as exc:
            raise Ds3231Error(f"{where}: {exc}") from None
        raw = (msb << 8 | lsb) >> 6
        temperature = (raw - 1024 if raw & 0x200 else raw) * 0.25
        return RtcReading(True, when, not status & 0x80, temperature)


RTC_SYSFS = "/sys/class/rtc"


def kernel_rtc(device: str = "/dev/rtc0") -> RtcReading:
    """The kernel RTC (Pi 5 built-in, or a DS3231 bound to rtc-ds1307): present, and its
    time if the kernel accepts it.  A device whose ``since_epoch`` cannot be read is
    there with its time refused (``valid`` False): a lost backup cell, an invalid date."""
    name = os.path.basename(device)
    since_epoch = f"{RTC_SYSFS}/{name}/since_epoch"
    try:
        with open(since_epoch) as f:
            when = dt.datetime.fromtimestamp(int(f.read().strip()), dt.timezone.utc)
        return RtcReading(True, when, True)
    except (OSError, ValueError):
        return RtcReading(os.path.exists(device), None, False)
