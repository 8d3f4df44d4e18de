"""Fuel-gauge drivers over an ``smbus2.SMBus``-shaped bus (HARDWARE.md §1–3).

Each returns a ``BatteryReading``: state of charge, voltage, current where
the chip measures it, charging, and minutes left at the present draw.
"""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass
from typing import Protocol

from bodycam.errors import BodycamError


class SensorError(BodycamError, OSError):
    """A sensor on the I2C bus (fuel gauge, RTC) did not answer or answered nonsense."""


class GaugeError(SensorError):
    """The fuel gauge did not answer or answered nonsense."""


class ImplausibleReading(GaugeError):
    """The gauge answered a value the battery cannot have (e.g. an INA219 bus voltage of 0).

    ``reading`` holds what was read, for the health snapshot's flag; it is never
    used as the battery's state."""

    def __init__(self, message: str, reading: "BatteryReading") -> None:
        super().__init__(message)
        self.reading = reading


class Max17048Error(GaugeError):
    """MAX17048 did not answer, or is not a MAX17048."""


class Ina219Error(GaugeError):
    """INA219 did not answer, or reported an overflow."""


class PiSugar3Error(GaugeError):
    """PiSugar 3 did not answer."""


class Bus(Protocol):
    def read_word_data(self, i2c_addr: int, register: int) -> int: ...
    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...


@dataclass(frozen=True)
class BatteryReading:
    gauge: str
    percent: float
    voltage: float
    current_ma: float | None  # negative: discharging
    charging: bool | None
    minutes_left: float | None  # at the present draw; None while charging

    def as_dict(self) -> dict:
        # Integers only (signed payloads allow no floats): centi-units.
        d = asdict(self)
        return {
            "gauge": d["gauge"],
            "percent_x100": round(self.percent * 100),
            "millivolts": round(self.voltage * 1000),
            "current_ma": None if self.current_ma is None else round(self.current_ma),
            "charging": self.charging,
            "minutes_left": None if self.minutes_left is None else round(self.minutes_left),
        }


def _swap(word: int) -> int:
    """smbus2 returns the first wire byte as the low byte; these chips send MSB first."""
    return ((word & 0xFF) << 8) | (word >> 8)


def _s16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def _check_plausible(reading: "BatteryReading", low: float, high: float, where: str) -> "BatteryReading":
    """A reading outside [low, high] volts (the pack's physical range) is a glitch, not a battery."""
    if not low <= reading.voltage <= high:
        raise ImplausibleReading(f"{where}: {reading.voltage:.3f} V is outside {low}-{high} V "
                                 "(a bus glitch, not the battery)", reading)
    return reading


def _minutes(percent: float, capacity_mah: int, draw_ma: float | None) -> float | None:
    if draw_ma is None or draw_ma <= 0:
        return None
    return percent / 100 * capacity_mah / draw_ma * 60


class Max17048:
    """Maxim MAX17048: VCELL 78.125 µV/LSB, SOC 1/256 %, CRATE 0.208 %/h."""

    name = "max17048"

    def __init__(self, bus: Bus, address: int = 0x36, capacity_mah: int = 3000) -> None:
        self.bus, self.address, self.capacity_mah = bus, address, capacity_mah

    def _word(self, register: int) -> int:
        try:
            return _swap(self.bus.read_word_data(self.address, register))
        except (OSError, ValueError, TypeError) as exc:
            raise Max17048Error(f"MAX17048 at 0x{self.address:02x} did not answer: {exc}") from None

    def check(self) -> None:
        version = self._word(0x08)
        if version & 0xFFF0 != 0x0010:
            raise Max17048Error(f"MAX17048 at 0x{self.address:02x}: VERSION 0x{version:04x} is not 0x001x")

    def read(self) -> BatteryReading:
        self.check()
        voltage = self._word(0x02) * 78.125e-6
        raw_percent = self._word(0x04) / 256
        crate = _s16(self._word(0x16)) * 0.208  # %/h, negative while discharging
        charging = crate > 0
        percent = min(100.0, raw_percent)
        minutes = percent / -crate * 60 if crate < 0 else None
        reading = BatteryReading(self.name, percent, voltage, None, charging, minutes)
        if raw_percent > 110:  # 1 % over is calibration; 110 % is not a state of charge
            raise ImplausibleReading(f"MAX17048 at 0x{self.address:02x}: SOC {raw_percent:.0f} %", reading)
        return _check_plausible(reading, 2.5, 4.5, f"MAX17048 at 0x{self.address:02x}")


INA219_VARIANTS = {
    # name: (config, calibration, current LSB mA, percent from pack voltage)
    "ina219-ups": (0x3EEF, 4096, 0.1, lambda v: (v - 6) / 2.4 * 100),
    "ina219-ups-b": (0x3EEF, 4096, 0.1, lambda v: (v - 6) / 2.4 * 100),
    "ina219-ups-c": (0x0EEF, 26868, 0.1524, lambda v: (v - 3) / 1.2 * 100),
}
# Volts a pack can physically show: 2 x 18650 (UPS HAT, (B)) or one cell ((C)), with
# margin for a cell cut off by its protection (2.5 V) and for charging (4.4 V).
INA219_PLAUSIBLE = {"ina219-ups": (5.0, 8.8), "ina219-ups-b": (5.0, 8.8), "ina219-ups-c": (2.5, 4.4)}


class Ina219Ups:
    """TI INA219 on a Waveshare UPS HAT: bus voltage 4 mV/LSB (b15:3), current s16 × LSB."""

    def __init__(self, bus: Bus, variant: str = "ina219-ups-b", address: int = 0x42,
                 capacity_mah: int = 2600) -> None:
        if variant not in INA219_VARIANTS:
            raise Ina219Error(f"unknown INA219 variant {variant!r}")
        self.name = variant
        self.bus, self.address, self.capacity_mah = bus, address, capacity_mah
        self.config, self.calibration, self.current_lsb, self.percent_of = INA219_VARIANTS[variant]

    def _write(self, register: int, value: int) -> None:
        self.bus.write_word_data(self.address, register, _swap(value))

    def _word(self, register: int) -> int:
        return _swap(self.bus.read_word_data(self.address, register))

    def read(self) -> BatteryReading:
        try:
            # The calibration register is volatile: write it before each read,
            # as Waveshare's sample code does.
            self._write(0x05, self.calibration)
            self._write(0x00, self.config)
            bus_raw = self._word(0x02)
            current = _s16(self._word(0x04)) * self.current_lsb
        except (OSError, ValueError, TypeError) as exc:
            raise Ina219Error(f"INA219 at 0x{self.address:02x} did not answer: {exc}") from None
        if bus_raw & 0x0001:
            raise Ina219Error(f"INA219 at 0x{self.address:02x}: math overflow flag set")
        voltage = (bus_raw >> 3) * 0.004
        percent = max(0.0, min(100.0, self.percent_of(voltage)))
        charging = current > 0
        minutes = _minutes(percent, self.capacity_mah, -current) if current < 0 else None
        reading = BatteryReading(self.name, percent, voltage, current, charging, minutes)
        return _check_plausible(reading, *INA219_PLAUSIBLE[self.name], f"INA219 at 0x{self.address:02x}")


PISUGAR_CURVE = [(4.10, 100.0), (4.05, 95.0), (3.90, 88.0), (3.80, 77.0), (3.70, 65.0),
                 (3.62, 55.0), (3.58, 49.0), (3.49, 25.6), (3.32, 4.5), (3.10, 0.0)]


def pisugar_percent(voltage: float, curve=PISUGAR_CURVE) -> float:
    """Linear interpolation over the battery curve, as pisugar-power-manager does."""
    if voltage >= curve[0][0]:
        return curve[0][1]
    for (v_hi, p_hi), (v_lo, p_lo) in zip(curve, curve[1:]):
        if v_lo <= voltage < v_hi:
            return p_lo + (voltage - v_lo) / (v_hi - v_lo) * (p_hi - p_lo)
    return 0.0


class PiSugar3:
    """PiSugar 3 MCU at 0x57: byte registers; level from the averaged voltage."""

    name = "pisugar3"

    def __init__(self, bus: Bus, address: int = 0x57, capacity_mah: int = 1200,
                 typical_draw_ma: int = 600, samples: int = 30) -> None:
        self.bus, self.address = bus, address
        self.capacity_mah, self.typical_draw_ma = capacity_mah, typical_draw_ma
        self._voltages: collections.deque[float] = collections.deque(maxlen=samples)

    def _byte(self, register: int) -> int:
        try:
            return self.bus.read_byte_data(self.address, register)
        except (OSError, ValueError, TypeError) as exc:
            raise PiSugar3Error(f"PiSugar 3 at 0x{self.address:02x} did not answer: {exc}") from None

    def read(self) -> BatteryReading:
        control = self._byte(0x02)
        millivolts = self._byte(0x22) << 8 | self._byte(0x23)
        if not 2500 <= millivolts <= 4500:  # kept out of the average, which it would drag
            raise ImplausibleReading(
                f"PiSugar 3 at 0x{self.address:02x}: {millivolts} mV is outside 2500-4500 mV",
                BatteryReading(self.name, pisugar_percent(millivolts / 1000), millivolts / 1000, None, None, None))
        self._voltages.append(millivolts / 1000)
        voltage = sum(self._voltages) / len(self._voltages)
        percent = pisugar_percent(voltage)
        charging = bool(control & 0x80) and bool(control & 0x40)
        # The output-current register's unit is unconfirmed: use the configured draw.
        minutes = None if charging else _minutes(percent, self.capacity_mah, self.typical_draw_ma)
        return BatteryReading(self.name, percent, voltage, None, charging, minutes)


def make_gauge(kind: str, bus: Bus, address: int, capacity_mah: int, typical_draw_ma: int):
    if kind == "max17048":
        return Max17048(bus, address, capacity_mah)
    if kind.startswith("ina219"):
        return Ina219Ups(bus, kind, address, capacity_mah)
    if kind == "pisugar3":
        return PiSugar3(bus, address, capacity_mah, typical_draw_ma)
    raise GaugeError(f"unknown gauge {kind!r}")
