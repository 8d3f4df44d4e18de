"""The recorder service: sd_notify on a real socket, buttons driving a real
recording, health alarms from register maps, and the self-test."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from gpiozero.pins.mock import MockFactory

from bodycam.cli import main
from device.sealing.clock import ManualClock
from device.config import load_hw_config
from device.daemon import SystemdNotifier
from device.health.monitor import (
    ALARM_BATTERY_CRITICAL,
    ALARM_BATTERY_LOW,
    ALARM_STORAGE_LOW,
    HealthMonitor,
)
from device.health.simbus import SimulatedBus, close_simulated, max17048_map, open_simulated
from device.sealing import pki
from device.sealing.seallog import scan_log
from device.sealing.verifier import Verifier
from device.service import RecorderService

REPO = Path(__file__).resolve().parent.parent
SIM = load_hw_config(REPO / "hw-configs" / "sim.toml")


class Listener:
    """Reads the notify socket continuously, as systemd does."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass

    def wait_for(self, prefix: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if m.startswith(prefix):
                    return m
            time.sleep(0.01)
        raise AssertionError(f"no {prefix} in {self.messages}")

    def close(self) -> list[str]:
        time.sleep(0.2)
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.messages


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    listener = Listener(path)
    yield path, listener
    listener.close()


def test_sd_notify_sends_to_the_socket_and_nothing_outside_systemd(notify_socket):
    path, sock = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
    assert notifier.ready("standby")
    assert notifier.watchdog(now=10.0) and not notifier.watchdog(now=10.5) and notifier.watchdog(now=11.0)
    assert notifier.stopping()
    assert sock.close() == ["READY=1\nSTATUS=standby", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]
    quiet = SystemdNotifier({})
    assert not quiet.ready() and not quiet.watchdog() and not quiet.enabled


def gauge_bus(soc: float, crate: float):
    return open_simulated(SimulatedBus({0x36: max17048_map(3.7, soc, crate)}))


def test_battery_and_storage_alarms(tmp_path):
    clock = ManualClock()
    bus = gauge_bus(50.0, -60.0)  # 50 % at 60 %/h: 50 minutes left
    monitor = HealthMonitor(SIM, tmp_path, clock, bus=bus)
    health, alarms = monitor.check()
    assert alarms == [] and round(health.battery.minutes_left) == 50
    bus.close()
    close_simulated(bus)
    monitor.gauge.bus = gauge_bus(25.0, -60.0)  # 25 minutes
    clock.advance(5)
    assert monitor.check()[1] == []  # one low reading is not yet agreement
    clock.advance(5)
    assert monitor.check()[1] == [ALARM_BATTERY_LOW]  # two of the last three agree
    clock.advance(5)
    assert monitor.check()[1] == []  # raised once, not every check
    monitor.gauge.bus = gauge_bus(9.0, -60.0)  # 9 minutes
    clock.advance(5)
    assert monitor.check()[1] == []
    clock.advance(5)
    assert monitor.check()[1] == [ALARM_BATTERY_CRITICAL]
    tight = SIM.model_copy(update={"recording": SIM.recording.model_copy(
        update={"storage_warn_minutes": 10**6, "storage_reserve_minutes": 1})})
    storage = HealthMonitor(tight, tmp_path, clock, bus=gauge_bus(90.0, -10.0))
    assert storage.check()[1] == [ALARM_STORAGE_LOW]
    snap = storage.read().snapshot()
    assert snap["battery"]["percent_x100"] == 9000 and isinstance(snap["storage_minutes"], int)


def test_service_buttons_record_and_everything_is_sealed(agency, tmp_path, notify_socket):
    path, sock = notify_socket
    factory = MockFactory()
    state = agency.enrol(tmp_path / "rec", "S000001")
    config = SIM.model_copy(update={"recording": SIM.recording.model_copy(update={"segment_seconds": 2})})
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"})
    service = RecorderService(config, state, config_name="sim.toml", officer="010203",
                              pin_factory=factory, notifier=notifier)
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("reason", service.run(stop)))
    thread.start()
    sock.wait_for("READY=1")
    assert service.recorder.camera.frames > 0  # READY only once the camera delivers

    def tap(pin, seconds=0.1):
        factory.pin(pin).drive_low()
        time.sleep(seconds)
        factory.pin(pin).drive_high()
        time.sleep(0.15)

    tap(5)  # record
    time.sleep(1.0)
    tap(6)  # notify
    tap(22)  # mark
    tap(22, 2.2)  # refusal
    tap(27)  # photo
    tap(5, 0.5)  # a bump: still recording
    assert service.recorder.state == "recording"
    tap(5, 3.3)  # deliberate hold: stops
    assert service.recorder.state == "standby", service.controls.fired
    stop.set()
    thread.join(timeout=30)
    service.shutdown(result["reason"])
    messages = sock.close()
    assert "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1"
    events = [e.event for e, _ in scan_log(state / "seallog").entries]
    for kind in ("record-start", "notify", "mark", "photo", "record-stop", "shutdown"):
        assert kind in events, kind
    marks = [e.data["kind"] for e, _ in scan_log(state / "seallog").entries if e.event == "mark"]
    assert marks == ["mark", "refusal"]
    assert {"start", "notify", "mark", "refusal", "photo", "stop"} <= set(service.indicators.played)
    verifier = Verifier(pki.load_cert(agency.ca_cert_path))
    report, good = verifier.verify_recording(state)
    assert report.status == "verified", report
    video = [g for g in good if g.report.media == "video/mp4"]
    health = video[0].manifest.signed.obj["meta"]["health"]
    assert health["battery"]["gauge"] == "max17048" and health["clock_state"] == "rtc"


def test_critical_battery_seals_and_exits(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "S000002")
    bus = gauge_bus(5.0, -60.0)  # 5 minutes left
    service = RecorderService(SIM, state, config_name="sim.toml", pin_factory=MockFactory(),
                              notifier=SystemdNotifier({}), bus=bus)
    reason = service.run(threading.Event(), seconds=10, record_now=True)
    service.shutdown(reason)
    assert reason == "battery-critical"
    entries = [e for e, _ in scan_log(state / "seallog").entries]
    alarms = [e.data["kind"] for e in entries if e.event == "alarm"]
    assert alarms[:2] == [ALARM_BATTERY_CRITICAL, ALARM_BATTERY_LOW]
    assert entries[-2].event == "record-stop" and entries[-1].event == "shutdown"
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert report.status == "verified"


def test_selftest_sim_passes_unattended_and_reports_json(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "S000003")
    result = CliRunner().invoke(main, ["selftest", "--config", str(REPO / "hw-configs" / "sim.toml"),
                                       "--state", str(state), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["passed"] is True
    by_name = {c["name"]: c["result"] for c in report["checks"]}
    for name in ("device key", "camera", "microphone", "button record", "led red", "vibration",
                 "buzzer", "fuel gauge", "storage speed", "rtc", "clock state"):
        assert by_name[name] == "PASS", (name, report)
    table = CliRunner().invoke(main, ["selftest", "--config", str(REPO / "hw-configs" / "sim.toml"),
                                      "--unattended"])
    assert table.exit_code == 0 and "SELFTEST PASSED" in table.output


def test_selftest_fails_on_a_broken_gauge(tmp_path):
    from device.selftest import SelfTest

    broken = open_simulated(SimulatedBus({}))  # nothing answers at 0x36
    test = SelfTest(SIM, state=None, unattended=True, pin_factory=MockFactory(), bus=broken)
    test.check_gauge()
    assert test.checks[-1].result == "FAIL" and "did not answer" in test.checks[-1].detail
    assert not test.passed
