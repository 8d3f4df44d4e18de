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


# -- glitches: no single implausible reading drives an alarm ------------------------------

from device.config import PowerConfig, load_hw_config  # noqa: E402
from device.health.gauges import (  # noqa: E402
    Ina219Error,
    Max17048Error,
    PiSugar3Error,
)
from device.health.monitor import ALARM_BATTERY_CRITICAL, ALARM_BATTERY_LOW, HealthMonitor  # noqa: E402
from device.health.rtc import Ds3231Error, RtcError  # noqa: E402
from device.sealing.clock import ManualClock  # noqa: E402
from pathlib import Path  # noqa: E402

SIM = load_hw_config(Path(__file__).resolve().parent.parent / "hw-configs" / "sim.toml")


def ina219_b(volts: float, milliamps: float = -800.0) -> WordRegisters:
    return WordRegisters({0x00: 0x399F, 0x02: int(volts / 0.004) << 3 | 0x2,
                          0x04: int(milliamps / 0.1) & 0xFFFF, 0x05: 0})


def pisugar(millivolts: int) -> ByteRegisters:
    return ByteRegisters({0x02: 0x00, 0x22: millivolts >> 8, 0x23: millivolts & 0xFF})


class Swap:
    """The I2C device at the gauge's address, whose register map a test replaces between reads."""

    def __init__(self, registers):
        self.map = registers

    def read(self, register, length):
        return self.map.read(register, length)

    def write(self, register, data):
        self.map.write(register, data)


# Per gauge: the config, a healthy register map, a glitched one (implausible), and one that
# is plausible but far too low (an outlier that agreement must outvote), at the gauge's address.
GAUGES = {
    "ina219-ups-b": (PowerConfig(gauge="ina219-ups-b", i2c_bus="sim", address=0x42, capacity_mah=2600),
                     lambda: ina219_b(7.8), lambda: ina219_b(0.0), lambda: ina219_b(6.02)),
    "ina219-ups-c": (PowerConfig(gauge="ina219-ups-c", i2c_bus="sim", address=0x43, capacity_mah=1000),
                     lambda: WordRegisters({0x00: 0x399F, 0x02: 0x1F42, 0x04: 0xFE00, 0x05: 0}),
                     lambda: WordRegisters({0x00: 0x399F, 0x02: 0x0002, 0x04: 0xFE00, 0x05: 0}),
                     lambda: WordRegisters({0x00: 0x399F, 0x02: int(3.01 / 0.004) << 3, 0x04: 0xFE00, 0x05: 0})),
    "max17048": (PowerConfig(gauge="max17048", i2c_bus="sim", address=0x36),
                 lambda: max17048_map(3.9, 80.0, -10.0), lambda: max17048_map(0.0, 0.0, -10.0),
                 lambda: max17048_map(3.3, 1.0, -10.0)),
    "pisugar3": (PowerConfig(gauge="pisugar3", i2c_bus="sim", address=0x57, capacity_mah=1200),
                 lambda: pisugar(3900), lambda: pisugar(0), lambda: pisugar(3150)),
}


@pytest.mark.parametrize("kind", GAUGES)
def test_one_glitched_or_outlying_reading_raises_no_alarm(kind, smbus):
    power, good, glitch, outlier = GAUGES[kind]
    config = SIM.model_copy(update={"power": power})
    clock = ManualClock()
    regs = Swap(good())

    monitor = HealthMonitor(config, Path("/"), clock, bus=smbus({power.address: regs}))
    alarms = []
    for registers in (good, good, glitch, good, outlier, good, glitch, good):
        regs.map = registers()
        clock.advance(5)
        health, new = monitor.check()
        alarms += new
        snap = health.snapshot()
        if registers is glitch:
            assert snap["battery_implausible"] and "outside" in snap["battery_implausible"]
            assert snap["battery"]["millivolts"] > 2500  # the last plausible value, not the glitch
        else:
            assert snap["battery_implausible"] is None
    assert not {ALARM_BATTERY_LOW, ALARM_BATTERY_CRITICAL} & set(alarms), alarms
    # Agreeing low readings do raise it: the glitch filter does not hide a real low battery
    # (after two reads; the PiSugar's own 30-sample voltage average takes longer).
    reads = 0
    while not {ALARM_BATTERY_LOW, ALARM_BATTERY_CRITICAL} & set(alarms) and reads < 40:
        regs.map = outlier()
        clock.advance(5)
        alarms += monitor.check()[1]
        reads += 1
    assert reads == 2 or (kind == "pisugar3" and reads < 40), (kind, reads, alarms)


def test_a_single_glitch_does_not_stop_the_service(agency, tmp_path, smbus):
    """The INA219 bus voltage of 0: no alarm, no shutdown, the next good read is used."""
    from gpiozero.pins.mock import MockFactory

    from device.daemon import SystemdNotifier
    from device.sealing.seallog import scan_log
    from device.service import RecorderService

    power, good, glitch, _ = GAUGES["ina219-ups-b"]
    config = SIM.model_copy(update={"power": power})
    regs = Swap(good())

    state = agency.enrol(tmp_path / "rec", "G000001")
    service = RecorderService(config, state, config_name="sim.toml", clock=ManualClock(),
                              pin_factory=MockFactory(), notifier=SystemdNotifier({}),
                              bus=smbus({0x42: regs}))
    try:
        service.check_health()
        regs.map = glitch()
        service.clock.advance(5)
        assert service.check_health() == []
        assert service.exit_reason is None
        regs.map = good()
        service.clock.advance(5)
        assert service.check_health() == [] and service.last_health.snapshot()["battery_confirmed"]
    finally:
        service.shutdown("test")
    assert not [e for e, _ in scan_log(state / "seallog").entries if e.event == "alarm"]


@pytest.mark.parametrize("make, error", [
    (lambda bus: Max17048(bus), Max17048Error),
    (lambda bus: Ina219Ups(bus, "ina219-ups-b", 0x42), Ina219Error),
    (lambda bus: PiSugar3(bus), PiSugar3Error),
    (lambda bus: Ds3231(bus), Ds3231Error),
])
def test_every_driver_raises_its_own_error_type(make, error, smbus):
    with pytest.raises(error, match="did not answer") as caught:
        make(smbus({})).read()
    assert isinstance(caught.value, OSError)  # and the builtin that fits


@pytest.mark.parametrize("registers, message", [
    ({r: 0xFF for r in range(0x13)}, "every register reads 0xFF"),
    ({0x00: 0x4A, 0x01: 0x30, 0x02: 0x14, 0x03: 3, 0x04: 0x27, 0x05: 0x11, 0x06: 0x25}, "seconds .* not BCD"),
    ({0x00: 0x45, 0x01: 0x30, 0x02: 0x14, 0x03: 3, 0x04: 0x31, 0x05: 0x02, 0x06: 0x25}, "day is out of range"),
    ({0x00: 0x45, 0x01: 0x30, 0x02: 0x25, 0x03: 3, 0x04: 0x27, 0x05: 0x11, 0x06: 0x25}, "hours 25"),
    ({0x00: 0x45, 0x01: 0x30, 0x02: 0x14, 0x03: 3, 0x04: 0x27, 0x05: 0x13, 0x06: 0x25}, "month 13"),
])
def test_ds3231_registers_that_are_not_a_time(registers, message, smbus):
    regs = ByteRegisters({0x0F: 0x00, 0x11: 0x19, 0x12: 0x40, **registers})
    with pytest.raises(Ds3231Error, match=message) as caught:
        Ds3231(smbus({0x68: regs})).read()
    assert isinstance(caught.value, RtcError) and "0x68" in str(caught.value)


def test_sensor_faults_reach_the_one_fault_channel_on_their_transitions(smbus, agency, tmp_path):
    """Gauge and RTC faults go through the same channel as camera and microphone:
    once when they start, once when they clear, and into the seal log as signed events."""
    from gpiozero.pins.mock import MockFactory

    from device.capture.seam import FaultChannel
    from device.daemon import SystemdNotifier
    from device.sealing.seallog import scan_log
    from device.service import RecorderService

    power, good, glitch, _ = GAUGES["ina219-ups-b"]
    config = SIM.model_copy(update={"power": power})
    regs = Swap(good())

    clock = ManualClock()
    faults = FaultChannel(clock.monotonic_ns)
    monitor = HealthMonitor(config, Path("/"), clock, bus=smbus({0x42: regs}), faults=faults)
    for registers in (good, glitch, glitch, glitch, good, good):
        regs.map = registers()
        clock.advance(5)
        monitor.check()
    assert [(f.source, f.kind) for f in faults.drain()] == [("gauge", "implausible"), ("gauge", "recovered")]
    state = agency.enrol(tmp_path / "rec", "G000002")
    service = RecorderService(config, state, config_name="sim.toml", clock=ManualClock(),
                              pin_factory=MockFactory(), notifier=SystemdNotifier({}),
                              bus=smbus({}))  # the gauge does not answer at all
    try:
        service.check_health()
        service._record_faults()
    finally:
        service.shutdown("test")
    events = [e.data for e, _ in scan_log(state / "seallog").entries if e.event == "source-fault"]
    assert {"source": "gauge", "kind": "read-error"}.items() <= events[0].items()
    assert "did not answer" in events[0]["detail"]
