"""The recorder service: recorder + buttons + indicators + health + speaker,
run from one main loop that also pings systemd's watchdog.

READY=1 is sent only once the camera delivers frames and the state
directory is open; SIGTERM or a critical battery seals the open segment
before the process exits.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from pathlib import Path

from bodycam.errors import SealingError

from .capture.seam import stop_within
from .capture.speaker import NullSpeaker, Speaker, load_announcement
from .clock import SystemClock, recorder_clock
from .sealing.clock import Clock, utc_text
from .config import HwConfig
from .controls import HOLD, SHORT, Controls
from .daemon import SystemdNotifier
from .health.monitor import (
    ALARM_BATTERY_CRITICAL,
    ALARM_BATTERY_LOW,
    ALARM_STORAGE_FULL,
    Health,
    HealthMonitor,
)
from .indicators import Indicators
from .recorder import RECORDING, REFUSAL, Recorder
from .sealing import seallog as ev

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05
HEALTH_SECONDS = 5.0
FIRST_FRAME_TIMEOUT = 15.0
DOCKLINK_STOP_SECONDS = 3.0
# Seal-log event for a step of the system wall clock: step_ms, recorder_utc, state_before, state.
EV_CLOCK_STEP = "clock-step"
# Seal-log event at start-up: what the clock state rests on (state, basis, error_bound_ms, last_sync_utc).
EV_CLOCK_STATE = "clock-state"
# Seal-log event for a fault from a hardware seam (capture.seam): source, kind, detail, repeats.
EV_SOURCE_FAULT = "source-fault"
ALARM_SOURCE_FAULT = "source-fault"
ALARM_FAULTS = {"stalled", "failed", "stop-timeout"}
FAULT_EVENT_SECONDS = 10.0
STATUS_FILE = "status.json"  # in the state directory: what `bodycam status` shows of a running recorder


def make_pin_factory(name: str):
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if name == "pigpio":
        from gpiozero.pins.pigpio import PiGPIOFactory

        return PiGPIOFactory()
    from gpiozero.pins.native import NativeFactory

    return NativeFactory()


class RecorderService:
    def __init__(self, config: HwConfig, state_dir: Path, *, config_name: str = "",
                 clock: Clock | None = None, officer: str | None = None, pin_factory=None,
                 notifier: SystemdNotifier | None = None, bus=None, realtime: bool = True) -> None:
        self.config = config
        self.clock = clock or recorder_clock(config, state_dir)
        self.notifier = notifier or SystemdNotifier()
        self.announcement = load_announcement(
            Path(config.speaker.announcement) if config.speaker.announcement else None)
        self.recorder = Recorder(config, state_dir, config_name=config_name, clock=self.clock,
                                 officer=officer, realtime=realtime)
        factory = pin_factory if pin_factory is not None else make_pin_factory(config.gpio.pin_factory)
        self.indicators = Indicators(config.gpio, factory, self.clock)
        self.controls = Controls(config.gpio, factory, self.clock, {
            ("record", SHORT): self.start,
            ("record", HOLD): self.stop,
            ("notify", SHORT): self.notify,
            ("mark", SHORT): self.mark,
            ("mark", HOLD): self.refusal,
            ("photo", SHORT): self.photo,
        })
        self.health = HealthMonitor(config, state_dir, self.clock, bus=bus, faults=self.recorder.faults,
                                    sources=self.recorder.sources_report,
                                    last_sync=self._last_sync())
        self.last_health: Health | None = None
        self.recorder.health_provider = lambda: self.last_health.snapshot() if self.last_health else None
        self.speaker = Speaker(config.speaker) if config.speaker.backend == "sounddevice" else NullSpeaker()
        self.speaker.faults = self.recorder.faults  # one fault channel for every seam
        self.exit_reason: str | None = None
        self._next_health = 0.0
        self.docklink = None
        self._started = False
        self._fault_logged: dict[tuple[str, str], int] = {}
        self._fault_suppressed: dict[tuple[str, str], int] = {}
        self._shut_down: bool | None = None  # None until shutdown(); then whether it was clean
        # The officer of the last assignment a dock made sticks across restarts.
        if officer is None:
            for entry in reversed(self.recorder.sealing.log.entries):
                if entry.event == ev.EV_ASSIGNMENT:
                    self._assign({"officer": entry.data.get("officer")})
                    break

    def _last_sync(self) -> dt.datetime | None:
        for entry in reversed(self.recorder.sealing.log.entries):
            if entry.event == ev.EV_CLOCK_SET:
                return dt.datetime.fromisoformat(entry.obj["utc"].replace("Z", "+00:00"))
        return None

    def _assign(self, assignment: dict) -> None:
        """A dock assigned the recorder to an officer: stamped from the next segment on."""
        self.recorder.officer = assignment.get("officer")
        self.recorder.overlay.officer = self.recorder.officer

    # -- actions (main thread only) ------------------------------------------------

    def start(self, trigger: str = "button") -> str | None:
        """Start recording; returns why it did not (a full card), else None."""
        if self.recorder.state == RECORDING:
            return None
        if ALARM_STORAGE_FULL in self.health.alarms.raised:
            self.indicators.play(ALARM_STORAGE_FULL)  # never record over anything: refuse
            health = self.last_health
            why = (f"{self.recorder.sealing.root}: the card is full "
                   f"({(health.storage_free_bytes if health else 0) // 1_000_000} MB free, "
                   f"{self.config.recording.storage_reserve_minutes} min kept in reserve); "
                   "dock the recorder to free it")
            log.error("not recording: %s", why)
            return why
        self.recorder.start(trigger=trigger)
        self.indicators.show("recording", self.recorder.audio_only)
        self.indicators.play("start")
        return None

    def stop(self) -> None:
        if self.recorder.state != RECORDING:
            return
        self.indicators.play("stop-armed")
        self.recorder.stop(reason="button")
        self.indicators.show("standby")
        self.indicators.play("stop")

    def notify(self) -> None:
        was_recording = self.recorder.state == RECORDING
        self.recorder.notify({"source": self.announcement.source, "sha256": self.announcement.sha256,
                              "seconds_x10": round(self.announcement.seconds * 10)})
        if not was_recording:
            self.indicators.show("recording", self.recorder.audio_only)
            self.indicators.play("start")
        self.indicators.play("notify")
        self.speaker.play(self.announcement)

    def mark(self) -> None:
        self.recorder.mark()
        self.indicators.play("mark")

    def refusal(self) -> None:
        self.recorder.mark(REFUSAL)
        self.indicators.play("refusal")

    def photo(self) -> None:
        try:
            self.recorder.photo()
            self.indicators.play("photo")
        except (SealingError, RuntimeError) as exc:
            log.warning("photo failed: %s", exc)
            self.indicators.play("error")

    # -- loop ---------------------------------------------------------------------

    def start_up(self) -> None:
        """The one start-up path (idempotent): dock link, sources, first health check, READY.

        The dock link comes first: a recorder that cannot record must still
        be reachable by a dock.  A dock link that cannot bind is a clear error
        here (``DockLinkError``), before any footage is at stake.
        """
        if self._started:
            return
        self._started = True
        link = self.config.docklink
        if link.enabled:
            from .docklink import DockLink

            self.docklink = DockLink(self.recorder.sealing,
                                     health=lambda: self.last_health.snapshot() if self.last_health else None,
                                     on_assignment=self._assign, max_connections=link.max_connections,
                                     on_clock_sync=self._clock_synced, on_readiness=self._readiness)
            self.docklink.start(link.listen, link.port)
        self.recorder.power_on()
        # Wait (briefly) for the camera's first frame, so that READY means it delivers;
        # a camera that does not is a fault, and the recorder goes on with what works.
        deadline = time.monotonic() + FIRST_FRAME_TIMEOUT
        tap = self.recorder.taps.get("camera")
        while tap is not None and tap.packets == 0 and self.recorder.camera.error is None:
            if time.monotonic() > deadline:
                log.error("the camera delivered no frame within %g s", FIRST_FRAME_TIMEOUT)
                break
            time.sleep(0.01)
        if isinstance(self.clock, SystemClock):
            self.recorder.sealing.log_event(EV_CLOCK_STATE, self.clock.meta())
        self.check_health()
        self._record_faults()
        self.indicators.show("standby")
        self.notifier.ready(f"standby, device {self.recorder.device_id}")

    def check_health(self) -> list[str]:
        health, alarms = self.health.check()
        self.last_health = health
        self._publish_status(health)
        for alarm in alarms:
            self.recorder.sealing.log_event(ev.EV_ALARM, {"kind": alarm, "health": health.snapshot()})
            self.indicators.play(alarm)
            if alarm == ALARM_STORAGE_FULL:
                self.recorder.stop(reason="storage-full")
                self.indicators.show("standby")
            if alarm == ALARM_BATTERY_CRITICAL:
                self.exit_reason = "battery-critical"
        self.indicators.blink_red = ALARM_BATTERY_LOW in self.health.alarms.raised
        return alarms

    def _readiness(self, ready: bool, reasons: list[str]) -> None:
        """The dock's verdict: a refused recorder says so on its LEDs until the next verdict."""
        self.indicators.not_ready = not ready
        self.indicators.play("ready" if ready else "not-ready")
        if not ready:
            log.warning("the dock refused this recorder for a shift: %s", "; ".join(reasons))

    def _clock_synced(self, delay_ns: int) -> None:
        if isinstance(self.clock, SystemClock):
            self.clock.synced(delay_ns)

    def _check_clock(self) -> None:
        """A step of the system wall clock: a signed event; the recorder's time goes on."""
        if not isinstance(self.clock, SystemClock):
            return
        state = self.clock.state
        step = self.clock.check_step()
        if step is not None:
            self.recorder.sealing.log_event(EV_CLOCK_STEP, {
                "step_ms": step // 1_000_000, "recorder_utc": utc_text(self.clock.utc_now()),
                "state_before": state, "state": self.clock.state})
            self.indicators.play("error")

    def _publish_status(self, health: Health) -> None:
        """The running recorder's health for `bodycam status` (atomic rename; not evidence)."""
        path = self.recorder.sealing.root / STATUS_FILE
        snapshot = {"utc": utc_text(self.clock.utc_now()), "recording": self.recorder.state == RECORDING,
                    "health": health.snapshot()}
        try:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(snapshot, indent=1))
            os.replace(tmp, path)
        except OSError as exc:  # a full card must not stop the loop
            log.warning("%s: cannot write the status file: %s", path, exc.strerror or exc)

    def tick(self) -> None:
        self.controls.tick()
        self.indicators.tick()
        now = time.monotonic()
        if now >= self._next_health:
            self._next_health = now + HEALTH_SECONDS
            self.check_health()
        self._check_clock()
        self.recorder.check_sources()
        self._record_faults()
        error = self.recorder.sources_error()
        if error is not None:
            self.exit_reason = f"capture failed: {error}"
        # Fed only while something can record: when every source is down,
        # systemd's watchdog restarts the whole service.
        if self.recorder.liveness.anything_up():
            self.notifier.watchdog(now=self.clock.monotonic_ns() / 1e9)

    def _record_faults(self) -> None:
        """Each fault from the seams: a signed seal-log event, and an alarm for a source going down.

        Repeats of one (source, kind) within ``FAULT_EVENT_SECONDS`` are counted
        into the next event instead of each writing one (an overflowing card
        must not fill the seal log)."""
        now = self.clock.monotonic_ns()
        for fault in self.recorder.faults.drain():
            key = (fault.source, fault.kind)
            last = self._fault_logged.get(key)
            if last is not None and now - last < FAULT_EVENT_SECONDS * 1e9:
                self._fault_suppressed[key] = self._fault_suppressed.get(key, 0) + 1
                continue
            self._fault_logged[key] = now
            data = {**fault.as_event(), "repeats": self._fault_suppressed.pop(key, 0)}
            if fault.source == "microphone":
                data["overflows"] = self.recorder.microphone.overflows
            self.recorder.sealing.log_event(EV_SOURCE_FAULT, data)
            if fault.kind in ALARM_FAULTS:
                self.indicators.play(ALARM_SOURCE_FAULT)
        self.indicators.blink_yellow = bool(self.recorder.liveness.down())

    def run(self, stop: threading.Event, seconds: float | None = None, record_now: bool = False) -> str:
        """The main loop until ``stop``, ``seconds`` or an exit reason; returns the reason."""
        self.start_up()
        if record_now:
            self.start()
        deadline = None if seconds is None else time.monotonic() + seconds
        while not stop.is_set() and self.exit_reason is None:
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.tick()
            stop.wait(TICK_SECONDS)
        return self.exit_reason or ("signal" if stop.is_set() else "time")

    def shutdown(self, reason: str = "shutdown") -> bool:
        """The one shutdown path (idempotent), whatever failed before it.

        Seals the open segment even when the dock link or a source fails to
        stop; every step is bounded.  Returns False when a source hung in its
        driver and was left behind (the caller should then exit at once).
        """
        if self._shut_down is not None:
            return self._shut_down
        self._shut_down = False
        self.notifier.stopping()
        clean = True
        try:
            if self.docklink is not None:
                clean &= stop_within("docklink", self.docklink.stop, DOCKLINK_STOP_SECONDS,
                                     self.recorder.faults)
        finally:
            try:
                clean &= self.recorder.shutdown(reason=reason)
            finally:
                self.indicators.show("off")
                self.controls.close()
                self.indicators.close()
        self._shut_down = clean
        return clean
