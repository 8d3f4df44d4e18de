"""LEDs, vibration motor and buzzer: what an officer feels and sees.

green = powered / standby, red = recording video, yellow = recording audio
only (GA/T 947 practice).  Patterns confirm start and stop, remind every two
minutes while recording, and raise alarms; they are stepped by ``tick()``
with the injected clock, never by sleeping threads.
"""

from __future__ import annotations

import collections

from gpiozero import LED, Buzzer, DigitalOutputDevice

from .sealing.clock import Clock
from .config import GpioConfig

REMINDER_SECONDS = 120

# (output, on, milliseconds) steps.
PATTERNS: dict[str, list[tuple[str, bool, int]]] = {
    "start": [("vibration", True, 400), ("buzzer", True, 100), ("vibration", False, 0), ("buzzer", False, 0)],
    "stop": [("vibration", True, 150), ("vibration", False, 150), ("vibration", True, 150),
             ("vibration", False, 0), ("buzzer", True, 80), ("buzzer", False, 80),
             ("buzzer", True, 80), ("buzzer", False, 0)],
    "stop-armed": [("vibration", True, 80), ("vibration", False, 0)],
    "reminder": [("vibration", True, 120), ("vibration", False, 0)],
    "notify": [("buzzer", True, 60), ("buzzer", False, 0)],
    "mark": [("vibration", True, 80), ("vibration", False, 0)],
    "refusal": [("vibration", True, 80), ("vibration", False, 80), ("vibration", True, 80),
                ("vibration", False, 80), ("vibration", True, 80), ("vibration", False, 0)],
    "photo": [("buzzer", True, 40), ("buzzer", False, 0)],
    "battery-low": [("buzzer", True, 100), ("buzzer", False, 100)] * 3,
    "storage-low": [("buzzer", True, 300), ("buzzer", False, 200)] * 2,
    "battery-critical": [("buzzer", True, 1000), ("buzzer", False, 0)],
    "storage-full": [("buzzer", True, 1000), ("buzzer", False, 0)],
    "gauge-failed": [("buzzer", True, 100), ("buzzer", False, 0)],
    "error": [("buzzer", True, 500), ("buzzer", False, 0)],
    # the dock's readiness verdict: refused = three long buzzes; ready = one short
    "not-ready": [("buzzer", True, 600), ("buzzer", False, 300)] * 3,
    "ready": [("buzzer", True, 60), ("buzzer", False, 0)],
    # a camera or microphone stopped: three long pulses; the yellow LED blinks while it is down
    "source-fault": [("vibration", True, 300), ("vibration", False, 200)] * 3,
}
FAST_BLINK_MS = 125  # red LED while a battery alarm is active
SLOW_BLINK_MS = 500  # yellow LED while a capture source is down


class Indicators:
    def __init__(self, cfg: GpioConfig, pin_factory, clock: Clock) -> None:
        self.clock = clock
        self.leds = {name: LED(pin, pin_factory=pin_factory) for name, pin in cfg.leds.model_dump().items()}
        self.outputs = {
            "vibration": DigitalOutputDevice(cfg.vibration, pin_factory=pin_factory),
            "buzzer": Buzzer(cfg.buzzer, pin_factory=pin_factory),
        }
        self._steps: collections.deque = collections.deque()
        self._step_until = 0
        self.state = "off"
        self.audio_only = False
        self.blink_red = False
        self.blink_yellow = False  # a capture source is down
        self.not_ready = False  # the dock refused this recorder: red blinks slowly in standby
        self._next_reminder: int | None = None
        self.played: list[str] = []

    def play(self, pattern: str) -> None:
        self.played.append(pattern)
        self._steps.extend(PATTERNS[pattern])

    def show(self, state: str, audio_only: bool = False) -> None:
        """standby / recording / off: which LED is lit."""
        self.state, self.audio_only = state, audio_only
        now = self.clock.monotonic_ns()
        self._next_reminder = now + REMINDER_SECONDS * 10**9 if state == "recording" else None
        self._apply_leds(now)

    def _apply_leds(self, now: int) -> None:
        recording = self.state == "recording"
        red = recording and not self.audio_only
        if self.blink_red:
            red = (now // (FAST_BLINK_MS * 1_000_000)) % 2 == 0
        yellow = recording and self.audio_only
        if self.blink_yellow:
            yellow = (now // (SLOW_BLINK_MS * 1_000_000)) % 2 == 0
        self.leds["yellow"].value = yellow
        green = self.state == "standby"
        if self.not_ready and self.state == "standby":
            green = False
            red = (now // (SLOW_BLINK_MS * 1_000_000)) % 2 == 0
        self.leds["red"].value = red
        self.leds["green"].value = green

    def tick(self) -> None:
        now = self.clock.monotonic_ns()
        if self._next_reminder is not None and now >= self._next_reminder:
            self._next_reminder += REMINDER_SECONDS * 10**9
            self.play("reminder")
        while self._steps and now >= self._step_until:
            output, on, ms = self._steps.popleft()
            self.outputs[output].value = on
            self._step_until = now + ms * 1_000_000
        self._apply_leds(now)

    def close(self) -> None:
        for device in [*self.leds.values(), *self.outputs.values()]:
            device.close()
