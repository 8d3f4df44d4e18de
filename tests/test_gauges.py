"""Fuel gauges and RTC through smbus2's own code, its ioctl answered from the
datasheet register maps; the test vectors are HARDWARE.md's."""

from __future__ import annotations

import datetime as dt

import pytest

from device.health.gauges import GaugeError, Ina219Ups, Max17048, PiSugar3, pisugar_percent
from device.health.rtc import Ds3231
from device.health.simbus import (
    ByteRegisters,
    SimulatedBus,
    WordRegisters,
    close_simulated,
    max17048_map,
    open_simulated,
)


@pytest.fixture
def smbus():
    opened = []

    def make(devices):
        bus = open_simulated(SimulatedBus(devices))
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        close_simulated(bus)


def test_max17048_vectors(smbus):
    regs = max17048_map()
    regs.values.update({0x02: 0xB900, 0x04: 0x4B80, 0x16: 0xFFF0})
    bus = smbus({0x36: regs})
    assert bus.read_word_data(0x36, 0x02) == 0x00B9  # first wire byte is the low byte
    reading = Max17048(bus).read()
    assert reading.voltage == pytest.approx(3.700000)
    assert reading.percent == pytest.approx(75.5)
    assert reading.charging is False
    assert reading.minutes_left == pytest.approx(75.5 / 3.328 * 60)


def test_max17048_wrong_chip_and_silence(smbus):
    regs = max17048_map()
    regs.values[0x08] = 0x0042
    with pytest.raises(GaugeError, match="VERSION"):
        Max17048(smbus({0x36: regs})).read()
    with pytest.raises(GaugeError, match="did not answer"):
        Max17048(smbus({})).read()


def test_ina219_ups_c_vectors(smbus):
    regs = WordRegisters({0x00: 0x399F, 0x02: 0x1F42, 0x04: 0xF32F, 0x05: 0})
    bus = smbus({0x43: regs})
    reading = Ina219Ups(bus, "ina219-ups-c", 0x43, capacity_mah=1000).read()
    assert reading.voltage == pytest.approx(4.000)
    assert reading.percent == pytest.approx(83.33, abs=0.01)
    assert reading.current_ma == pytest.approx(-500.02, abs=0.01)
    assert reading.charging is False
    assert reading.minutes_left == pytest.approx(0.8333 * 1000 / 500.02 * 60, rel=1e-3)
    # Calibration and configuration written MSB first, before the read.
    assert regs.writes[:2] == [(0x05, 26868), (0x00, 0x0EEF)]


def test_ina219_ups_b_vectors(smbus):
    regs = WordRegisters({0x00: 0x399F, 0x02: 0x3E82, 0x04: 0x0100, 0x05: 0})
    reading = Ina219Ups(smbus({0x42: regs}), "ina219-ups-b", 0x42).read()
    assert reading.voltage == pytest.approx(8.000)
    assert reading.percent == pytest.approx(83.33, abs=0.01)
    assert reading.charging is True and reading.minutes_left is None
    assert regs.writes[0] == (0x05, 4096)


def test_pisugar3_vectors(smbus):
    regs = ByteRegisters({0x02: 0x00, 0x22: 0x0E, 0x23: 0xA6})
    reading = PiSugar3(smbus({0x57: regs})).read()
    assert reading.voltage == pytest.approx(3.750)
    assert reading.percent == pytest.approx(71.0)
    assert reading.charging is False
    regs.values[0x02] = 0xC0  # external power and charging enabled
    assert PiSugar3(smbus({0x57: regs})).read().charging is True
    assert pisugar_percent(4.2) == 100 and pisugar_percent(3.0) == 0


def test_pisugar3_averages_voltage(smbus):
    regs = ByteRegisters({0x02: 0, 0x22: 0x0E, 0x23: 0xA6})
    gauge = PiSugar3(smbus({0x57: regs}))
    gauge.read()
    regs.values.update({0x22: 0x0F, 0x23: 0xA0})  # 4000 mV
    assert gauge.read().voltage == pytest.approx((3.750 + 4.000) / 2)


def test_ds3231_vectors(smbus):
    regs = ByteRegisters({0x00: 0x45, 0x01: 0x30, 0x02: 0x14, 0x03: 0x03, 0x04: 0x27,
                          0x05: 0x11, 0x06: 0x25, 0x0F: 0x00, 0x11: 0x19, 0x12: 0x40})
    bus = smbus({0x68: regs})
    reading = Ds3231(bus).read()
    assert reading.time == dt.datetime(2025, 11, 27, 14, 30, 45, tzinfo=dt.timezone.utc)
    assert reading.valid and reading.temperature_c == pytest.approx(25.25)
    regs.values.update({0x11: 0xE7, 0x12: 0x00, 0x0F: 0x80})
    reading = Ds3231(bus).read()
    assert reading.temperature_c == pytest.approx(-25.00) and not reading.valid
