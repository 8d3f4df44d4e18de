"""Real-time clocks: the DS3231 over I2C (BCD registers) and the kernel's /dev/rtcN."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from .gauges import Bus, GaugeError

DS3231_ADDRESS = 0x68


def _bcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0x0F)


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
        try:
            regs = self.bus.read_i2c_block_data(self.address, 0x00, 7)
            status = self.bus.read_byte_data(self.address, 0x0F)
            msb = self.bus.read_byte_data(self.address, 0x11)
            lsb = self.bus.read_byte_data(self.address, 0x12)
        except OSError as exc:
            raise GaugeError(f"DS3231 at 0x{self.address:02x} did not answer: {exc}") from None
        seconds, minutes, hours_reg, _day, date, month_reg, year = regs
        if hours_reg & 0x40:  # 12-hour mode
            hours = _bcd(hours_reg & 0x1F) % 12 + (12 if hours_reg & 0x20 else 0)
        else:
            hours = _bcd(hours_reg & 0x3F)
        century = 100 if month_reg & 0x80 else 0
        when = dt.datetime(2000 + century + _bcd(year), _bcd(month_reg & 0x1F), _bcd(date),
                           hours, _bcd(minutes), _bcd(seconds & 0x7F), tzinfo=dt.timezone.utc)
        raw = (msb << 8 | lsb) >> 6
        temperature = (raw - 1024 if raw & 0x200 else raw) * 0.25
        return RtcReading(True, when, not status & 0x80, temperature)


def kernel_rtc(device: str = "/dev/rtc0") -> RtcReading:
    """Presence of the kernel RTC (Pi 5 built-in, or a DS3231 bound to rtc-ds1307)."""
    name = os.path.basename(device)
    since_epoch = f"/sys/class/rtc/{name}/since_epoch"
    try:
        with open(since_epoch) as f:
            when = dt.datetime.fromtimestamp(int(f.read().strip()), dt.timezone.utc)
        return RtcReading(True, when, True)
    except (OSError, ValueError):
        return RtcReading(os.path.exists(device), None, False)
