"""Readiness is a decision (Art. 23): a recorder that cannot cover the shift is
refused before anything is handed out, with the reason on the dock's board and
on the recorder's LEDs.  Each verdict is tested."""

from __future__ import annotations

import copy

import pytest
from gpiozero.pins.mock import MockFactory

from device.config import GpioConfig
from device.indicators import Indicators
from device.sealing.clock import ManualClock
from device.sealing.seallog import scan_log
from dock.session import readiness_reasons

from .dockrig import HEALTHY, make_rig
from .test_dock import VALID_UNTIL, _csv

SHIFT = 600


def verdict(change: dict, clock_state: str = "synced", require_synced: bool = True) -> list[str]:
    snap = copy.deepcopy(HEALTHY)
    for key, value in change.items():
        if key.startswith("battery."):
            snap["battery"][key.split(".", 1)[1]] = value
        else:
            snap[key] = value
    return readiness_reasons({"health": snap, "clock_state": clock_state}, SHIFT, require_synced)


@pytest.mark.parametrize("change, clock_state, expected", [
    ({}, "synced", []),
    ({"battery.minutes_left": 300}, "synced", ["battery lasts 300 min, a shift needs 600"]),
    ({"battery_minutes_recording": 200}, "synced", ["battery lasts 200 min, a shift needs 600"]),
    # charging is no pass: the charge counts, at the recording draw
    ({"battery.charging": True, "battery.minutes_left": None, "battery_minutes_recording": 240}, "synced",
     ["battery lasts 240 min (charging), a shift needs 600"]),
    ({"battery.charging": True, "battery.minutes_left": None, "battery_minutes_recording": 700}, "synced", []),
    ({"battery": None, "battery_error": "MAX17048 at 0x36 did not answer"}, "synced",
     ["no battery reading (MAX17048 at 0x36 did not answer)"]),
    ({"battery_implausible": "INA219 at 0x42: 0.000 V is outside 5.0-8.8 V"}, "synced",
     ["battery reading implausible: INA219 at 0x42: 0.000 V is outside 5.0-8.8 V"]),
    ({"battery.minutes_left": None, "battery_minutes_recording": None}, "synced", ["the battery gives no minutes left"]),
    ({"storage_minutes": 120}, "synced", ["storage holds 120 min, a shift needs 600"]),
    ({"storage_minutes": None}, "synced", ["storage unknown"]),
    ({}, "rtc", ["clock is 'rtc', not synced"]),
    ({}, "untrusted", ["clock is 'untrusted', not synced"]),
    ({"camera_alive": False, "source_faults": ["camera: stalled: nothing delivered for 2.1 s"]}, "synced",
     ["camera is down", "self-check: camera: stalled: nothing delivered for 2.1 s"]),
    ({"microphone_alive": False}, "synced", ["microphone is down"]),
])
def test_each_verdict(change, clock_state, expected):
    assert verdict(change, clock_state) == expected


def test_no_health_is_no_pass():
    assert readiness_reasons({}, SHIFT, False) == ["the recorder reports no health"]
    assert readiness_reasons({"health": None, "clock_state": "synced"}, SHIFT, False) == [
        "the recorder reports no health"]


@pytest.fixture
def rig(agency, tmp_path):
    rig = make_rig(agency, tmp_path, "D000030")
    yield rig
    rig.close()


def test_a_refused_recorder_gets_no_officer_and_is_told_why(rig):
    verdicts = []
    rig.link.on_readiness = lambda ready, reasons: verdicts.append((ready, reasons))
    rig.record(1)
    rig.registry.import_csv(_csv(rig.root, ("020304", VALID_UNTIL)))
    rig.registry.checkout(1, "020304")
    rig.health["battery_minutes_recording"] = 250  # on the charger at 25 %
    rig.health["battery"] = {**rig.health["battery"], "charging": True, "minutes_left": None}
    progress = rig.dock()
    assert progress.outcome == "done"  # the footage is docked all the same
    assert progress.ready is False
    assert progress.readiness[0] == "battery lasts 250 min (charging), a shift needs 600"
    assert "not assigned to officer 020304: not ready" in progress.readiness
    assert rig.link.assignment is None and rig.registry.pending(1).officer == "020304"
    assert verdicts == [(False, progress.readiness)]
    logged = [e for e, _ in scan_log(rig.state / "seallog").entries if e.event == "readiness"]
    assert logged[-1].data["ready"] is False and logged[-1].data["reasons"] == progress.readiness
    # Charged: the next docking hands the officer over.
    rig.health.update(copy.deepcopy(HEALTHY))
    progress = rig.dock()
    assert progress.ready is True and rig.link.assignment["officer"] == "020304"
    assert verdicts[-1] == (True, [])
    assert rig.registry.pending(1) is None


def test_the_recorders_leds_show_the_verdict():
    factory, clock = MockFactory(), ManualClock()
    ind = Indicators(GpioConfig(pin_factory="mock"), factory, clock)
    ind.show("standby")
    ind.tick()
    assert factory.pin(24).state and not factory.pin(17).state  # green: standby
    ind.not_ready = True
    reds = set()
    for _ in range(4):
        clock.advance(0.5)
        ind.tick()
        reds.add(factory.pin(17).state)
        assert not factory.pin(24).state  # no green while refused
    assert reds == {True, False}  # red blinks slowly: not ready
    ind.not_ready = False
    ind.tick()
    assert factory.pin(24).state
    ind.close()
