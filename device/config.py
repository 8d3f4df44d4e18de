"""The recorder's hw-config: one typed model, unknown keys refused.

A hw-config names the hardware variant (camera, audio) and the recording
settings.  Errors name the file, the key and what is allowed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bodycam.errors import ConfigError, InputError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    timezone: str = "Asia/Shanghai"
    storage_warn_minutes: int = Field(30, ge=1, le=600, description="warn when this much recording time is left")
    storage_reserve_minutes: int = Field(2, ge=1, le=60, description="stop cleanly when this much is left")


class HwConfig(Strict):
    board: Literal["sim", "pi4", "pi5", "zero2w"]
    camera: CameraConfig
    audio: AudioConfig
    recording: RecordingConfig = RecordingConfig()

    @model_validator(mode="after")
    def _check(self) -> "HwConfig":
        if self.board == "sim" and self.camera.backend == "picamera2":
            raise ValueError("board 'sim' cannot use the picamera2 camera backend")
        if self.recording.mode == "audio" and self.audio.backend == "none":
            raise ValueError("audio-only mode needs an audio backend")
        return self

    @property
    def bytes_per_second(self) -> float:
        video = self.camera.bitrate if self.recording.mode == "video" else 0
        audio = self.audio.bitrate if self.audio.backend != "none" else 0
        return (video + audio) / 8


def _format_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid hw-config"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif err["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            lines.append(f"  {key}: {err['msg']} (found {err.get('input')!r})")
    return "\n".join(lines)


def load_hw_config(path: Path) -> HwConfig:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: hw-config not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read hw-config ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return HwConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
