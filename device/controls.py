"""The four buttons, for gloved hands (Art. 13, 14, 22): gpiozero devices on
the pin factory the hw-config names.

Edges arrive on gpiozero's threads and are queued; ``tick()`` runs them in
the main loop, so the recorder is only ever driven from one thread.
Debouncing and holds are timed here with the injected clock (gpiozero's mock
pins ignore ``bounce_time``, and its hold thread sleeps on real time).

record  press: start.  Hold 3 s: stop (a bump never stops a recording).
notify  press: spoken notice (Art. 22), starting the recording if needed.
mark    press: mark (Art. 13).  Hold 2 s: refusal / obstruction mark.
photo   press: a stamped still.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Callable

from gpiozero import Button

from .sealing.clock import Clock
from .config import GpioConfig

SHORT, HOLD = "press", "hold"


@dataclass
class _State:
    pressed_at: int | None = None
    last_edge: int = -(10**18)
    hold_fired: bool = False


class Controls:
    def __init__(self, cfg: GpioConfig, pin_factory, clock: Clock,
                 actions: dict[tuple[str, str], Callable[[], object]]) -> None:
        self.cfg = cfg
        self.clock = clock
        self.actions = actions
        self._debounce_ns = cfg.debounce_ms * 1_000_000
        self._holds = {"record": cfg.hold_stop_seconds, "mark": cfg.hold_refusal_seconds}
        self._edges: queue.SimpleQueue = queue.SimpleQueue()
        self._state = {name: _State() for name in ("record", "notify", "mark", "photo")}
        self.buttons: dict[str, Button] = {}
        for name, pin in cfg.buttons.model_dump().items():
            button = Button(pin, pull_up=True, pin_factory=pin_factory)
            button.when_pressed = lambda n=name: self._edges.put((n, True, self.clock.monotonic_ns()))
            button.when_released = lambda n=name: self._edges.put((n, False, self.clock.monotonic_ns()))
            self.buttons[name] = button
        self.fired: list[tuple[str, str]] = []

    def _fire(self, name: str, kind: str) -> None:
        action = self.actions.get((name, kind))
        self.fired.append((name, kind))
        if action is not None:
            action()

    def _edge(self, name: str, pressed: bool, at: int) -> None:
        st = self._state[name]
        if pressed and st.pressed_at is None:
            st.pressed_at, st.hold_fired = at, False
            if name not in self._holds or name == "record":
                # record starts on the press itself; its hold stops.
                self._fire(name, SHORT)
        elif not pressed and st.pressed_at is not None:
            if name == "mark" and not st.hold_fired:
                self._fire(name, SHORT)
            st.pressed_at = None

    def tick(self) -> None:
        """Run queued edges, then reconcile each button with its pin, then fire holds.

        An edge within ``debounce_ms`` of the last one is contact bounce and is
        skipped; a real release can be among them (a 20 ms knock), and gpiozero
        can lose an edge outright.  So once the debounce window has passed,
        the pin's level is the truth: a button whose pin is up is released,
        whatever edges arrived.  A hold fires only while the pin is still down.
        """
        while True:
            try:
                name, pressed, at = self._edges.get_nowait()
            except queue.Empty:
                break
            st = self._state[name]
            if at - st.last_edge < self._debounce_ns:
                continue  # contact bounce
            st.last_edge = at
            self._edge(name, pressed, at)
        now = self.clock.monotonic_ns()
        down = {name: button.is_pressed for name, button in self.buttons.items()}
        for name, st in self._state.items():
            if now - st.last_edge >= self._debounce_ns and down[name] != (st.pressed_at is not None):
                st.last_edge = now
                self._edge(name, down[name], now)
        for name, seconds in self._holds.items():
            st = self._state[name]
            if (st.pressed_at is not None and down[name] and not st.hold_fired
                    and now - st.pressed_at >= seconds * 1e9):
                st.hold_fired = True
                self._fire(name, HOLD)

    def close(self) -> None:
        for button in self.buttons.values():
            button.close()
