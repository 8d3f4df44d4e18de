"""Clock truth: the clock state comes from evidence (the RTC as the kernel reads it,
a persisted dock sync, the wall clock against the monotonic one); steps are signed
events; the recorder always records, marking the time untrusted when it must."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from device.clock import ClockSync, SystemClock, derive_state, recorder_clock
from device.config import RtcConfig, load_hw_config
from device.daemon import SystemdNotifier
from device.health import rtc as rtc_module
from device.sealing import pki
from device.sealing.seallog import scan_log
from device.sealing.verifier import Verifier
from device.service import RecorderService

REPO = Path(__file__).resolve().parent.parent
SIM = load_hw_config(REPO / "hw-configs" / "sim.toml")
NOW = dt.datetime.now(dt.timezone.utc)


@pytest.mark.parametrize("kind, present, when, system, state, why", [
    ("host", True, NOW, NOW, "rtc", "host"),
    ("none", False, None, NOW, "untrusted", "no RTC"),
    ("ds3231", False, None, NOW, "untrusted", "not there"),
    ("ds3231", True, None, NOW, "untrusted", "kernel refuses"),
    ("pi5", True, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), NOW, "untrusted", "kernel refuses"),
    ("pi5", True, NOW, NOW, "rtc", "pi5 RTC"),
    ("ds3231", True, NOW, dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), "untrusted", "before"),
])
def test_clock_state_from_evidence(kind, present, when, system, state, why):
    got, reason = derive_state(kind, present, when, system)
    assert got == state and why in reason, reason


@pytest.fixture
def fake_rtc(tmp_path, monkeypatch):
    """A kernel RTC as sysfs shows it: /dev/rtcX present, since_epoch as the test writes it."""
    sysfs = tmp_path / "sys-class-rtc"
    (sysfs / "rtc9").mkdir(parents=True)
    device = tmp_path / "rtc9"
    device.write_text("")
    monkeypatch.setattr(rtc_module, "RTC_SYSFS", str(sysfs))
    config = SIM.model_copy(update={"rtc": RtcConfig(kind="ds3231", device=str(device), drift_ppm=2.0)})
    return config, sysfs / "rtc9" / "since_epoch"


def test_a_refused_rtc_makes_the_clock_untrusted_and_selftest_fail(fake_rtc, tmp_path):
    from device.selftest import SelfTest

    config, since_epoch = fake_rtc
    since_epoch.mkdir()  # the kernel refuses the time: reading since_epoch fails (EINVAL on a Pi)
    clock = recorder_clock(config, None)
    assert clock.state == "untrusted" and "kernel refuses" in clock.why
    test = SelfTest(config, state=None, unattended=True, pin_factory=MockFactory())
    test.check_clock()
    rtc = next(c for c in test.checks if c.name == "rtc")
    assert rtc.result == "FAIL" and "kernel refuses" in rtc.detail
    since_epoch.rmdir()
    since_epoch.write_text(str(int(NOW.timestamp())))
    assert recorder_clock(config, None).state == "rtc"


def test_untrusted_time_still_records_and_says_so(fake_rtc, agency, tmp_path):
    config, since_epoch = fake_rtc
    since_epoch.write_text("946684800")  # 2000-01-01: a reset RTC
    state = agency.enrol(tmp_path / "rec", "K000001")
    config = config.model_copy(update={"recording": config.recording.model_copy(update={"segment_seconds": 2})})
    service = RecorderService(config, state, config_name="sim.toml", pin_factory=MockFactory(),
                              notifier=SystemdNotifier({}))
    assert service.start() is None
    service.run(threading.Event(), seconds=1.0)
    service.shutdown("test")
    _, good = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    meta = [g.manifest.signed.obj["meta"] for g in good]
    assert meta and all(m["clock"]["state"] == "untrusted" for m in meta)
    assert "kernel refuses" in meta[0]["clock"]["basis"]
    events = [e for e, _ in scan_log(state / "seallog").entries if e.event == "clock-state"]
    assert events[-1].data["state"] == "untrusted"


class Wall:
    """The system wall clock, steppable; the monotonic clock stays real."""

    def __init__(self):
        self.skew = 0

    def __call__(self) -> int:
        return time.time_ns() + self.skew


def test_a_wall_clock_step_is_a_signed_event_and_names_keep_their_order(agency, tmp_path):
    wall = Wall()
    clock = SystemClock("rtc", wall_ns=wall)
    state = agency.enrol(tmp_path / "rec", "K000002")
    config = SIM.model_copy(update={"recording": SIM.recording.model_copy(update={"segment_seconds": 2})})
    service = RecorderService(config, state, config_name="sim.toml", clock=clock, pin_factory=MockFactory(),
                              notifier=SystemdNotifier({}))
    service.start_up()
    service.start()
    service.run(threading.Event(), seconds=2.5)
    before = clock.utc_now()
    wall.skew = -3600 * 10**9  # someone sets the system clock back an hour
    service.tick()
    after = clock.utc_now()
    assert dt.timedelta(0) <= after - before < dt.timedelta(seconds=1)  # the recorder's time goes on
    assert clock.state == "untrusted"
    service.run(threading.Event(), seconds=2.5)
    service.stop()
    service.shutdown("test")
    steps = [e for e, _ in scan_log(state / "seallog").entries if e.event == "clock-step"]
    assert len(steps) == 1 and abs(steps[0].data["step_ms"] + 3_600_000) < 1000
    assert steps[0].data["state_before"] == "rtc" and steps[0].data["state"] == "untrusted"
    names = service.recorder.sealed
    assert names == sorted(names)  # later footage never sorts first


def test_a_sync_survives_a_restart_with_an_error_bound(tmp_path):
    path = tmp_path / "clock.json"
    mono = [10**12]
    first = SystemClock("rtc", drift_ppm=2.0, mono_ns=lambda: mono[0], wall_ns=lambda: 1_800_000_000 * 10**9 + mono[0])
    first.sync_path = path
    first.adjust(-1_500_000_000)
    first.synced(delay_ns=4_000_000)
    assert first.state == "synced" and first.error_bound_ms() == 2
    mono[0] += 10 * 3600 * 10**9  # ten hours later the service restarts (same boot)
    second = SystemClock("rtc", drift_ppm=2.0, mono_ns=lambda: mono[0], wall_ns=lambda: 1_800_000_000 * 10**9 + mono[0])
    sync = ClockSync.load(path)
    assert sync is not None and second.resume_sync(sync)
    second.state = "synced"
    assert second.offset_ns == -1_500_000_000
    assert second.error_bound_ms() == 2 + 72  # half the delay + 2 ppm of 10 h
    assert second.meta()["error_bound_ms"] == 74 and second.meta()["last_sync_utc"]
    # A system clock now before the sync was reset in between: not resumed.
    third = SystemClock("rtc", wall_ns=lambda: 1_700_000_000 * 10**9, mono_ns=lambda: mono[0])
    assert not third.resume_sync(sync)


def test_the_docks_sync_reaches_later_segments_after_a_restart(agency, tmp_path):
    """A real docking syncs the running recorder; after a restart, segments carry the bound."""
    import asyncio

    from archive.store import LocalArchive
    from device.config import DockLinkConfig
    from dock.registry import Registry
    from dock.session import DockIdentity, DockSession

    from .test_recorder_stop import free_port

    port = free_port()
    config = SIM.model_copy(update={
        "docklink": DockLinkConfig(enabled=True, listen="127.0.0.1", port=port),
        "recording": SIM.recording.model_copy(update={"segment_seconds": 2})})
    state = agency.enrol(tmp_path / "rec", "K000003")
    keys = tmp_path / "keys"
    dock_key = pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-1", keys / "dock")
    receipt_key = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", keys / "arch")
    service = RecorderService(config, state, config_name="sim.toml", pin_factory=MockFactory(),
                              notifier=SystemdNotifier({}))
    try:
        service.start_up()
        session = DockSession(
            identity=DockIdentity.load(dock_key, dock_key.with_suffix(".crt"), agency.ca_cert_path),
            url=f"https://127.0.0.1:{port}", bay=1, expected_device="K000003",
            archive=LocalArchive.open(tmp_path / "archive", agency.ca_cert_path, receipt_key,
                                      receipt_key.with_suffix(".crt")),
            registry=Registry(tmp_path / "dock" / "registry.sqlite"), staging=tmp_path / "staging",
            require_clock_synced=True, timeout=10)
        progress = asyncio.run(session.run())
        assert progress.outcome == "done" and service.clock.state == "synced"
    finally:
        service.shutdown("test")
    restarted = RecorderService(config, state, config_name="sim.toml", pin_factory=MockFactory(),
                                notifier=SystemdNotifier({}))
    try:
        assert restarted.clock.state == "synced"
        restarted.start_up()
        restarted.start()
        restarted.run(threading.Event(), seconds=1.0)
    finally:
        restarted.shutdown("test")
    _, good = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    meta = [g.manifest.signed.obj["meta"]["clock"] for g in good]
    assert meta and all(m["state"] == "synced" and isinstance(m["error_bound_ms"], int) for m in meta)
    assert all(0 <= m["error_bound_ms"] < 1000 for m in meta)
