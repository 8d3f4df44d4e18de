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


BUTTONS = {"record": 5, "notify": 6, "mark": 22, "photo": 27}
KNOCK = 0.020  # shorter than debounce_ms: the release edge is taken for contact bounce


@pytest.mark.parametrize("name", BUTTONS)
def test_a_knock_never_leaves_a_button_held(rig, name):
    """A 20 ms knock: whatever it fired, the button is released once the pin is, and no hold follows."""
    factory, clock, controls, fired = rig
    assert KNOCK * 1000 < CFG.debounce_ms
    pin = BUTTONS[name]
    press(factory, pin)
    controls.tick()
    clock.advance(KNOCK)
    release(factory, pin)
    controls.tick()
    for _ in range(100):  # 10 s of main-loop ticks
        clock.advance(0.1)
        controls.tick()
    assert (name, HOLD) not in fired, fired
    assert all(n == name and kind == SHORT for n, kind in fired) and len(fired) <= 1, fired
    # and the button works normally afterwards: one press, one action
    before = len(fired)
    press(factory, pin)
    controls.tick()
    clock.advance(0.3)
    release(factory, pin)
    controls.tick()
    clock.advance(0.1)
    controls.tick()
    assert fired[before:] == [(name, SHORT)], fired


@pytest.mark.parametrize("name", BUTTONS)
def test_a_lost_release_edge_is_recovered_from_the_pin(rig, name):
    """gpiozero delivers the press but loses the release: the pin's level wins."""
    factory, clock, controls, fired = rig
    pin = BUTTONS[name]
    press(factory, pin)
    controls.tick()
    clock.advance(0.2)
    button = controls.buttons[name]
    handler, button.when_released = button.when_released, None
    release(factory, pin)  # this edge never reaches the controls
    button.when_released = handler
    for _ in range(100):
        clock.advance(0.1)
        controls.tick()
    assert (name, HOLD) not in fired, fired
    assert fired == [(name, SHORT)], fired  # a press, then (for mark) the tap on release


@pytest.mark.parametrize("name", ["record", "mark"])
def test_a_tap_never_becomes_a_hold_and_a_hold_needs_the_pin_down(rig, name):
    factory, clock, controls, fired = rig
    pin = BUTTONS[name]
    hold = CFG.hold_stop_seconds if name == "record" else CFG.hold_refusal_seconds
    for tap in (0.06, 0.3, hold - 0.2):  # taps of every length short of the hold
        press(factory, pin)
        controls.tick()
        clock.advance(tap)
        controls.tick()
        release(factory, pin)
        controls.tick()
        clock.advance(hold * 2)
        controls.tick()
    assert (name, HOLD) not in fired and fired.count((name, SHORT)) == 3, fired
    press(factory, pin)
    controls.tick()
    clock.advance(hold + 0.05)
    controls.tick()
    assert fired[-1] == (name, HOLD)


def test_a_lost_press_edge_is_recovered_from_the_pin(rig):
    factory, clock, controls, fired = rig
    button = controls.buttons["photo"]
    handler, button.when_pressed = button.when_pressed, None
    press(factory, 27)  # gpiozero missed the press edge
    button.when_pressed = handler
    controls.tick()
    clock.advance(CFG.debounce_ms / 1000)
    controls.tick()
    assert fired == [("photo", SHORT)]
