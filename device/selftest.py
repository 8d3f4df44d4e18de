"""``bodycam selftest``: what a technician runs before a recorder goes out.

Each check passes, fails, warns or is skipped (with the reason).  Attended
mode prompts for button presses and for confirming lights, vibration, buzzer
and speaker; unattended mode reads outputs back from their pins, drives
mock buttons on the sim board, and skips what only a person can judge.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from bodycam.errors import BodycamError

from .capture.overlay import Overlay
from .capture.speaker import Announcement
from .clock import SystemClock, derive_state
from .sealing.clock import CLOCK_RTC, CLOCK_UNTRUSTED
from .config import HwConfig
from .health.gauges import GaugeError
from .health.monitor import HealthMonitor
from .sealing.sealer import DeviceIdentity

log = logging.getLogger(__name__)

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
RESULT_LEVELS = {PASS: logging.INFO, SKIP: logging.INFO, WARN: logging.WARNING, FAIL: logging.ERROR}
BUTTON_TIMEOUT = 10.0
STORAGE_PROBE_BYTES = 16 * 1024 * 1024


@dataclass
class Check:
    name: str
    result: str
    detail: str


class Collector:
    """Minimal picamera2-style output that counts what a source delivers."""

    needs_add_stream = True
    needs_pacing = False

    def __init__(self) -> None:
        self.video = 0
        self.audio = 0
        self.recording = True

    def _add_stream(self, *args, **kwargs) -> None:
        pass

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False) -> None:
        if audio:
            self.audio += 1
        else:
            self.video += 1


class SelfTest:
    def __init__(self, config: HwConfig, *, state: Path | None, unattended: bool,
                 ask: Callable[[str], bool] | None = None, pin_factory=None, bus=None) -> None:
        self.config = config
        self.state = state
        self.unattended = unattended
        self.ask = ask or (lambda question: False)
        self.pin_factory = pin_factory
        self.bus = bus
        self.checks: list[Check] = []

    def add(self, name: str, result: str, detail: str) -> None:
        self.checks.append(Check(name, result, detail))
        log.log(RESULT_LEVELS.get(result, logging.WARNING), "%s: %s %s", name, result, detail)

    @property
    def passed(self) -> bool:
        return not any(c.result == FAIL for c in self.checks)

    def run(self) -> bool:
        for step in (self.check_identity, self.check_camera, self.check_microphone,
                     self.check_speaker, self.check_buttons, self.check_outputs,
                     self.check_gauge, self.check_storage, self.check_clock):
            try:
                step()
            except (BodycamError, OSError, RuntimeError, ValueError) as exc:
                self.add(step.__name__.removeprefix("check_"), FAIL, str(exc))
        return self.passed

    # -- checks ---------------------------------------------------------------------

    def check_identity(self) -> None:
        if self.state is None:
            self.add("device key", SKIP, "no --state given: the recorder is not enrolled here")
            return
        identity = DeviceIdentity.load(self.state)
        key = self.state / "identity" / "device.key"
        mode = key.stat().st_mode & 0o777
        if mode & 0o077:
            self.add("device key", FAIL, f"{key} has mode {mode:o}; must be 0600")
            return
        self.add("device key", PASS, f"device {identity.device_id}, certificate valid, key 0600")

    def check_camera(self) -> None:
        if self.config.recording.mode == "audio":
            self.add("camera", SKIP, "audio-only configuration")
            return
        from .recorder import make_camera

        cfg = self.config.camera
        overlay = Overlay("SELFTST", cfg.width, cfg.height, self.config.recording.timezone)
        camera = make_camera(self.config, overlay, SystemClock(), time.monotonic_ns(), realtime=True)
        sink = Collector()
        camera.start(sink)
        start = time.monotonic()
        try:
            while sink.video < cfg.fps and time.monotonic() - start < 5 and camera.error is None:
                time.sleep(0.02)
            elapsed = time.monotonic() - start
            still = camera.still_jpeg() if sink.video else b""
        finally:
            camera.stop()
        if sink.video < cfg.fps:
            self.add("camera", FAIL, f"only {sink.video} frames in {elapsed:.1f} s: {camera.error or 'too slow'}")
        else:
            self.add("camera", PASS, f"{sink.video} frames in {elapsed:.2f} s ({cfg.width}x{cfg.height}), "
                                     f"still {len(still) // 1024} KiB")

    def check_microphone(self) -> None:
        if self.config.audio.backend == "none":
            self.add("microphone", SKIP, "no microphone configured")
            return
        from .recorder import make_microphone

        mic = make_microphone(self.config, time.monotonic_ns(), realtime=True)
        sink = Collector()
        mic.start(sink)
        time.sleep(1.0)
        mic.stop()
        level_db = 20 * np.log10(max(mic.peak, 1e-9))
        if mic.samples < 40_000 or mic.error is not None:
            self.add("microphone", FAIL, f"{mic.samples} samples in 1 s: {mic.error or 'stream too slow'}")
        elif mic.peak < 1e-4:
            self.add("microphone", FAIL, f"silent (peak {level_db:.0f} dBFS): is it connected?")
        else:
            self.add("microphone", PASS, f"{mic.samples} samples/s, peak {level_db:.0f} dBFS")

    def check_speaker(self) -> None:
        if self.config.speaker.backend == "none":
            self.add("speaker", SKIP, "no speaker configured")
            return
        from .capture.speaker import RATE, Speaker

        t = np.arange(int(0.4 * RATE)) / RATE
        beep = Announcement((0.4 * np.sin(2 * np.pi * 880 * t)).astype(np.float32), "", "beep")
        speaker = Speaker(self.config.speaker)
        speaker.play(beep, wait=True)
        speaker.close()  # its player started ahead for a next press
        if speaker.error is not None:
            self.add("speaker", FAIL, f"cannot play: {speaker.error}")
        elif self.unattended:
            self.add("speaker", PASS, "played a 0.4 s beep (not heard: unattended)")
        else:
            heard = self.ask("Did you hear a beep from the speaker?")
            self.add("speaker", PASS if heard else FAIL, "beep heard" if heard else "beep not heard")

    def _factory(self):
        if self.pin_factory is None:
            from .service import make_pin_factory

            self.pin_factory = make_pin_factory(self.config.gpio.pin_factory)
        return self.pin_factory

    def check_buttons(self) -> None:
        from gpiozero import Button

        mock = self.config.gpio.pin_factory == "mock"
        if self.unattended and not mock:
            self.add("buttons", SKIP, "pressing buttons needs a person (run attended)")
            return
        for name, pin in self.config.gpio.buttons.model_dump().items():
            button = Button(pin, pull_up=True, pin_factory=self._factory())
            try:
                if mock and self.unattended:
                    button.pin.drive_low()  # the sim presses its own buttons
                    pressed = button.wait_for_press(timeout=1)
                    button.pin.drive_high()
                else:
                    print(f"  press {name.upper()} (GPIO{pin}) within {BUTTON_TIMEOUT:.0f} s ...", flush=True)
                    pressed = button.wait_for_press(timeout=BUTTON_TIMEOUT)
                self.add(f"button {name}", PASS if pressed else FAIL,
                         f"GPIO{pin} pressed" if pressed else f"GPIO{pin}: no press within the timeout")
            finally:
                button.close()

    def check_outputs(self) -> None:
        from gpiozero import LED, Buzzer, DigitalOutputDevice

        gpio = self.config.gpio
        outputs = [(f"led {n}", LED, p) for n, p in gpio.leds.model_dump().items()]
        outputs += [("vibration", DigitalOutputDevice, gpio.vibration), ("buzzer", Buzzer, gpio.buzzer)]
        for name, kind, pin in outputs:
            device = kind(pin, pin_factory=self._factory())
            try:
                device.on()
                read_back = device.value
                confirmed = True
                if not self.unattended:
                    confirmed = self.ask(f"Is the {name} on (GPIO{pin})?")
                device.off()
                if not read_back:
                    self.add(name, FAIL, f"GPIO{pin} does not read back high")
                elif not confirmed:
                    self.add(name, FAIL, f"GPIO{pin} high but not seen/felt: check wiring")
                else:
                    self.add(name, PASS, f"GPIO{pin} on/off" + (" (read back)" if self.unattended else ""))
            finally:
                device.close()

    def check_gauge(self) -> None:
        power = self.config.power
        if power.gauge == "none":
            self.add("fuel gauge", SKIP, "no fuel gauge configured")
            return
        monitor = HealthMonitor(self.config, self.state or Path(tempfile.gettempdir()), SystemClock(), bus=self.bus)
        if monitor.gauge is None:
            self.add("fuel gauge", FAIL, monitor.gauge_error or "not available")
            return
        try:
            reading = monitor.gauge.read()
        except GaugeError as exc:
            self.add("fuel gauge", FAIL, str(exc))
            return
        cells = 2 if power.gauge in ("ina219-ups", "ina219-ups-b") else 1
        plausible = 2.8 * cells <= reading.voltage <= 4.5 * cells and 0 <= reading.percent <= 100
        detail = (f"{power.gauge} at 0x{power.address:02x}: {reading.percent:.0f} %, {reading.voltage:.2f} V"
                  + (f", {reading.current_ma:.0f} mA" if reading.current_ma is not None else "")
                  + (f", {reading.minutes_left:.0f} min left" if reading.minutes_left is not None else ""))
        self.add("fuel gauge", PASS if plausible else FAIL, detail if plausible else f"implausible: {detail}")

    def check_storage(self) -> None:
        target = self.state or Path(tempfile.gettempdir())
        need = 4 * self.config.bytes_per_second
        chunk = os.urandom(1024 * 1024)
        fd, path = tempfile.mkstemp(prefix=".selftest-", dir=target)
        try:
            start = time.perf_counter()
            for _ in range(STORAGE_PROBE_BYTES // len(chunk)):
                os.write(fd, chunk)
                os.fsync(fd)  # the sealer fsyncs every fragment; so does this probe
            rate = STORAGE_PROBE_BYTES / (time.perf_counter() - start)
        finally:
            os.close(fd)
            os.unlink(path)  # our own probe file, never footage
        detail = f"{rate / 1e6:.1f} MB/s with fsync; recording needs 4 x {self.config.bytes_per_second / 1e6:.2f} MB/s"
        self.add("storage speed", PASS if rate >= need else FAIL, detail)

    def check_clock(self) -> None:
        rtc = self.config.rtc
        if rtc.kind == "none":
            self.add("rtc", SKIP, "no RTC configured: time comes from the dock sync")
            state = CLOCK_UNTRUSTED
        elif rtc.kind == "host":
            self.add("rtc", PASS, "the sim board uses the host's clock")
            state = CLOCK_RTC
        else:
            monitor = HealthMonitor(self.config, Path(tempfile.gettempdir()), SystemClock(), bus=self.bus)
            reading = monitor.read().rtc
            # Present is not enough: the kernel must accept its time (a lost backup
            # cell leaves the device there and its time refused).
            state, why = derive_state(rtc.kind, reading.present, reading.time if reading.valid else None,
                                      dt.datetime.now(dt.timezone.utc))
            ok = state == CLOCK_RTC
            self.add("rtc", PASS if ok else FAIL,
                     f"{rtc.kind} at {rtc.device}" + ("" if ok else f": {why} (check the overlay and the cell)"))
        self.add("clock state", PASS if state != CLOCK_UNTRUSTED else WARN,
                 f"{state}: " + ("footage says 'CLOCK?' until the next docking" if state == CLOCK_UNTRUSTED
                                 else "kept by the RTC; synced at every docking"))

    # -- output -----------------------------------------------------------------------

    def table(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{'CHECK':<{width}}  RESULT  DETAIL"]
        lines += [f"{c.name:<{width}}  {c.result:<6}  {c.detail}" for c in self.checks]
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines)

    def summary(self) -> str:
        counts = {r: sum(1 for c in self.checks if c.result == r) for r in (PASS, FAIL, WARN, SKIP)}
        return (f"SELFTEST {'PASSED' if self.passed else 'FAILED'} "
                f"({counts[PASS]} passed, {counts[FAIL]} failed, {counts[WARN]} warnings, "
                f"{counts[SKIP]} skipped)")

    def to_json(self, config_path: Path, now: dt.datetime | None = None) -> dict:
        """The report (docs/format.md §16): device ID, UTC time, software version,
        config name and SHA-256, and each check's result."""
        from .selftest_report import build_report, device_id_of

        return build_report(passed=self.passed, unattended=self.unattended,
                            checks=[asdict(c) for c in self.checks], config_path=config_path,
                            device_id=device_id_of(self.state),
                            now=now or dt.datetime.now(dt.timezone.utc))


__all__ = ["SelfTest", "Check", "PASS", "FAIL", "WARN", "SKIP"]
