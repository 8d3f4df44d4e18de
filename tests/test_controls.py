"""Buttons and indicators: real gpiozero devices on MockFactory pins, a ManualClock."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from device.sealing.clock import ManualClock
from device.config import GpioConfig
from device.controls import HOLD, SHORT, Controls
from device.indicators import REMINDER_SECONDS, Indicators

CFG = GpioConfig(pin_factory="mock")


@pytest.fixture
def rig():
    factory = MockFactory()
    clock = ManualClock()
    actions = {}
    fired = []
    for key in [("record", SHORT), ("record", HOLD), ("notify", SHORT), ("mark", SHORT),
                ("mark", HOLD), ("photo", SHORT)]:
        actions[key] = lambda key=key: fired.append(key)
    controls = Controls(CFG, factory, clock, actions)
    yield factory, clock, controls, fired
    controls.close()


def press(factory, pin):
    factory.pin(pin).drive_low()


def release(factory, pin):
    factory.pin(pin).drive_high()


def test_one_press_starts_and_a_bump_never_stops(rig):
    factory, clock, controls, fired = rig
    press(factory, 5)
    controls.tick()
    assert fired == [("record", SHORT)]
    clock.advance(0.3)
    release(factory, 5)
    controls.tick()
    clock.advance(1.0)
    press(factory, 5)  # a bump: 0.5 s press
    clock.advance(0.5)
    controls.tick()
    release(factory, 5)
    clock.advance(5)
    controls.tick()
    assert ("record", HOLD) not in fired


def test_deliberate_hold_stops_while_still_held(rig):
    factory, clock, controls, fired = rig
    press(factory, 5)
    controls.tick()
    clock.advance(2.9)
    controls.tick()
    assert ("record", HOLD) not in fired
    clock.advance(0.2)
    controls.tick()
    assert fired[-1] == ("record", HOLD)
    clock.advance(5)
    controls.tick()
    assert fired.count(("record", HOLD)) == 1  # once per hold


def test_mark_short_and_long(rig):
    factory, clock, controls, fired = rig
    press(factory, 22)
    clock.advance(0.4)
    release(factory, 22)
    controls.tick()
    assert fired == [("mark", SHORT)]
    clock.advance(1)
    press(factory, 22)
    controls.tick()
    clock.advance(2.1)
    controls.tick()
    release(factory, 22)
    controls.tick()
    assert fired == [("mark", SHORT), ("mark", HOLD)]  # a long press is only the refusal mark


def test_contact_bounce_is_one_press(rig):
    factory, clock, controls, fired = rig
    for _ in range(5):  # 5 ms chatter
        press(factory, 27)
        clock.advance(0.002)
        release(factory, 27)
        clock.advance(0.003)
    press(factory, 27)
    controls.tick()
    assert fired == [("photo", SHORT)]
    clock.advance(0.2)
    release(factory, 27)
    clock.advance(0.2)
    press(factory, 6)
    controls.tick()
    assert fired == [("photo", SHORT), ("notify", SHORT)]


def test_indicator_states_patterns_and_reminder():
    factory, clock = MockFactory(), ManualClock()
    ind = Indicators(CFG, factory, clock)
    ind.show("standby")
    ind.tick()
    assert [factory.pin(p).state for p in (17, 23, 24)] == [False, False, True]
    ind.show("recording")
    ind.play("start")
    ind.tick()
    assert factory.pin(17).state and not factory.pin(24).state
    assert factory.pin(25).state  # vibrating
    clock.advance(0.41)
    ind.tick()
    assert factory.pin(12).state  # then the buzzer
    clock.advance(0.11)
    ind.tick()
    assert not factory.pin(25).state and not factory.pin(12).state
    clock.advance(REMINDER_SECONDS)
    ind.tick()
    assert ind.played[-1] == "reminder" and factory.pin(25).state
    ind.show("recording", audio_only=True)
    ind.tick()
    assert factory.pin(23).state and not factory.pin(17).state
    ind.show("recording")
    ind.blink_red = True
    states = set()
    for _ in range(4):
        clock.advance(0.125)
        ind.tick()
        states.add(factory.pin(17).state)
    assert states == {True, False}  # fast red blink for a battery alarm
    ind.close()
