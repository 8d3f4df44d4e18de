"""The recorder's hw-config: one typed model, unknown keys refused.

A hw-config names the hardware variant (camera, audio) and the recording
settings.  Errors name the file, the key and what is allowed.
"""

from __future__ import annotations

import ipaddress
import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bodycam.errors import ConfigError

from .sealing.configfile import read_toml, validation_error_text


class Strict(BaseModel):
    # strict: a TOML string is not a number, a number is not a bool; what is
    # written is what the program uses.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def check_timezone(value: str) -> str:
    """An IANA zone the system knows (tzdata), e.g. Asia/Shanghai; 'Asia/Beijing' is not one."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as 'Asia/Shanghai'): {exc}") from None
    return value


def check_listen_address(value: str) -> str:
    """An IP address, IPv6 with an optional %interface scope (fe80::ff:fe00:1%usb0)."""
    address, _, scope = value.partition("%")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address (e.g. fe80::ff:fe00:1%usb0 or 127.0.0.1)") from None
    if scope and (ip.version != 6 or not scope.replace("-", "").replace("_", "").isalnum()):
        raise ValueError(f"{value!r}: a %scope is an interface name on an IPv6 address")
    if ip.is_link_local and ip.version == 6 and not scope:
        raise ValueError(f"{value!r}: a link-local address needs its interface, e.g. {address}%usb0")
    return value


class CameraConfig(Strict):
    backend: Literal["pyav", "picamera2"] = Field(
        description="pyav: lavfi test source, a file or a V4L2 webcam; picamera2: the Pi camera"
    )
    source: str = Field(
        "testsrc2",
        description="pyav only: a lavfi source name (testsrc2, smptebars), a media file, or /dev/videoN",
    )
    width: int = Field(1920, ge=160, le=4096, multiple_of=2)
    height: int = Field(1080, ge=120, le=2160, multiple_of=2)
    fps: int = Field(30, ge=1, le=60)
    bitrate: int = Field(8_000_000, ge=100_000, le=50_000_000, description="bits per second")
    gop_seconds: float = Field(
        0.5, gt=0, le=1.0,
        description="keyframe interval; a fragment per keyframe, so at most this much is lost at a power cut",
    )


class AudioConfig(Strict):
    backend: Literal["sounddevice", "tone", "none"] = Field(
        description="sounddevice: a real microphone; tone: a synthetic source; none: video without sound"
    )
    device: str | None = Field(None, description="sounddevice device name substring, e.g. 'googlevoicehat'")
    samplerate: Literal[48000] = 48000
    bitrate: int = Field(64_000, ge=16_000, le=320_000)


class SpeakerConfig(Strict):
    backend: Literal["sounddevice", "none"] = Field(
        "none", description="sounddevice: play the announcement through the amplifier")
    device: str | None = Field(None, description="sounddevice device name substring")
    announcement: str | None = Field(
        None, description="an agency's own WAV file (16-bit PCM); default: the built-in Mandarin notice")


# Pins a layout may not use (HARDWARE.md §8): HAT EEPROM, I2C, UART, I2S.
RESERVED_PINS = {0: "HAT EEPROM", 1: "HAT EEPROM", 2: "I2C SDA", 3: "I2C SCL",
                 14: "UART TX", 15: "UART RX", 18: "I2S BCLK", 19: "I2S LRCLK",
                 20: "I2S DIN", 21: "I2S DOUT"}
BcmPin = int


class ButtonPins(Strict):
    record: BcmPin = Field(5, ge=0, le=27, description="one press starts; a 3 s hold stops")
    notify: BcmPin = Field(6, ge=0, le=27, description="Art. 22 spoken notice; starts recording")
    mark: BcmPin = Field(22, ge=0, le=27, description="press: mark; 2 s hold: refusal mark")
    photo: BcmPin = Field(27, ge=0, le=27)


class LedPins(Strict):
    red: BcmPin = Field(17, ge=0, le=27, description="video recording")
    yellow: BcmPin = Field(23, ge=0, le=27, description="audio-only recording")
    green: BcmPin = Field(24, ge=0, le=27, description="powered, standby")


class GpioConfig(Strict):
    pin_factory: Literal["mock", "lgpio", "rpigpio", "pigpio", "native"] = Field(
        description="gpiozero pin factory; lgpio is the only one that works on a Pi 5")
    buttons: ButtonPins = ButtonPins()
    leds: LedPins = LedPins()
    vibration: BcmPin = Field(25, ge=0, le=27)
    buzzer: BcmPin = Field(12, ge=0, le=27, description="PWM-capable pin")
    gauge_alert: BcmPin | None = Field(26, ge=0, le=27, description="fuel-gauge ALRT input, or none")
    debounce_ms: int = Field(50, ge=5, le=500)
    hold_stop_seconds: float = Field(3.0, ge=1.0, le=10.0)
    hold_refusal_seconds: float = Field(2.0, ge=0.5, le=10.0)

    def assignments(self) -> dict[str, int]:
        pins = {f"buttons.{k}": v for k, v in self.buttons.model_dump().items()}
        pins |= {f"leds.{k}": v for k, v in self.leds.model_dump().items()}
        pins |= {"vibration": self.vibration, "buzzer": self.buzzer}
        if self.gauge_alert is not None:
            pins["gauge_alert"] = self.gauge_alert
        return pins


class PowerConfig(Strict):
    gauge: Literal["max17048", "ina219-ups", "ina219-ups-b", "ina219-ups-c", "pisugar3", "none"]
    i2c_bus: str = Field("1", pattern=r"^(sim|[0-9]{1,3})$",
                         description="bus number (/dev/i2c-N), or 'sim' for the simulated bus of the sim board")
    address: int = Field(0x36, ge=0x08, le=0x77)
    capacity_mah: int = Field(3000, ge=100, le=50_000, description="battery capacity")
    typical_draw_ma: int = Field(900, ge=50, le=5000, description="draw while recording, for gauges without a current sensor")


class RtcConfig(Strict):
    kind: Literal["pi5", "ds3231", "pisugar3", "host", "none"] = Field(
        description="host: the sim board's own (NTP-disciplined) clock; none: untrusted until a dock sync")
    device: str = Field("/dev/rtc0", description="the kernel RTC device")
    drift_ppm: float = Field(2.0, ge=0, le=100, description="datasheet accuracy, for the drift estimate")


class DockLinkConfig(Strict):
    enabled: bool = Field(True, description="serve the dock link while the recorder runs")
    listen: str = Field("fe80::ff:fe00:1%usb0",
                        description="address to listen on: by default only the USB gadget interface's "
                        "link-local address (systemd/gadget.sh sets dev_addr 02:00:00:00:00:01)")
    port: int = Field(8443, ge=1, le=65535)
    max_connections: int = Field(8, ge=1, le=256, description="connections served at once; more are refused")

    _listen = field_validator("listen")(check_listen_address)


class RecordingConfig(Strict):
    mode: Literal["video", "audio"] = Field("video", description="audio: audio-only recording")
    segment_seconds: int = Field(60, ge=2, le=600)
    preroll_seconds: float = Field(30.0, ge=0, le=120)
    preroll_audio: bool = Field(False, description="keep audio in the pre-roll too")
    checkpoint_interval: float = Field(
        0.5, ge=0, le=1.0,
        description="seconds between signed checkpoints; with fragments every gop_seconds, "
        "an interval equal to the GOP checkpoints each fragment as soon as it is written",
    )
    timezone: str = Field("Asia/Shanghai", description="IANA time zone of the overlay and local times")
    storage_warn_minutes: int = Field(30, ge=1, le=600, description="warn when this much recording time is left")
    storage_reserve_minutes: int = Field(2, ge=1, le=60, description="stop cleanly when this much is left")

    _timezone = field_validator("timezone")(check_timezone)


class HwConfig(Strict):
    board: Literal["sim", "pi4", "pi5", "zero2w"]
    camera: CameraConfig
    audio: AudioConfig
    speaker: SpeakerConfig = SpeakerConfig()
    gpio: GpioConfig
    power: PowerConfig
    rtc: RtcConfig
    docklink: DockLinkConfig = DockLinkConfig()
    recording: RecordingConfig = RecordingConfig()

    @model_validator(mode="after")
    def _check(self) -> "HwConfig":
        if self.board == "sim":
            if self.camera.backend == "picamera2":
                raise ValueError("board 'sim' cannot use the picamera2 camera backend")
            if self.gpio.pin_factory != "mock":
                raise ValueError("board 'sim' has no GPIO: gpio.pin_factory must be 'mock'")
        elif self.gpio.pin_factory == "mock":
            raise ValueError(f"board {self.board!r} needs a real gpio.pin_factory, not 'mock'")
        if self.board == "pi5" and self.gpio.pin_factory not in ("lgpio", "native"):
            raise ValueError("on a Pi 5 only gpio.pin_factory = 'lgpio' works")
        if self.recording.mode == "audio" and self.audio.backend == "none":
            raise ValueError("audio-only mode needs an audio backend")
        if (self.power.i2c_bus == "sim") != (self.board == "sim") and self.power.gauge != "none":
            raise ValueError("power.i2c_bus 'sim' is the sim board's simulated bus, and only the sim board has it")
        if self.rtc.kind == "host" and self.board != "sim":
            raise ValueError("rtc.kind 'host' is for the sim board only")
        if self.rtc.kind == "pi5" and self.board != "pi5":
            raise ValueError("rtc.kind 'pi5' exists only on board 'pi5'")
        if self.rtc.kind == "pisugar3" and self.power.gauge != "pisugar3":
            raise ValueError("rtc.kind 'pisugar3' is the PiSugar 3's emulated RTC; power.gauge must be 'pisugar3'")
        if self.rtc.kind == "ds3231" and self.power.gauge == "pisugar3":
            raise ValueError("a DS3231 and the PiSugar 3 both answer at I2C 0x68")
        by_pin: dict[int, str] = {}
        for name, pin in self.gpio.assignments().items():
            if pin in RESERVED_PINS:
                raise ValueError(f"gpio.{name} = {pin} is reserved for {RESERVED_PINS[pin]}")
            if pin == 16 and "googlevoicehat" in f"{self.audio.device}{self.speaker.device}":
                raise ValueError(f"gpio.{name} = 16 is the voiceHAT amplifier's SD_MODE")
            if pin in by_pin:
                raise ValueError(f"gpio.{name} and gpio.{by_pin[pin]} both use GPIO{pin}")
            by_pin[pin] = name
        return self

    @property
    def initial_clock_state(self) -> str:
        """Before any dock sync: trusted only as far as an RTC keeps time."""
        return "untrusted" if self.rtc.kind == "none" else "rtc"

    @property
    def bytes_per_second(self) -> float:
        video = self.camera.bitrate if self.recording.mode == "video" else 0
        audio = self.audio.bitrate if self.audio.backend != "none" else 0
        return (video + audio) / 8


def load_hw_config(path: Path) -> HwConfig:
    """Read and validate a hw-config; ``ConfigError``/``InputError`` name the file and key."""
    path = Path(path)
    data = read_toml(path, "hw-config")
    try:
        return HwConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_error_text(path, "hw-config", exc.errors())) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid hw-config: values nested too deeply") from None
