"""The dock's configuration: one typed model, unknown keys refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bodycam.errors import ConfigError, InputError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArchiveConfig(Strict):
    """The archive service the dock commits to; the dock's own key and certificate
    (role dock) authenticate it there.  The dock holds no archive key."""

    url: str = Field(pattern=r"^https://[^/\s]+/?$", description="https://host:port of `bodycam archive serve`")
    ca: Path | None = Field(None, description="CA of the archive's certificate, if not the dock's own CA")
    timeout_seconds: int = Field(120, ge=5, le=3600)


class MatchConfig(Strict):
    """Which network interfaces are recorders (udev properties set by usb_id)."""

    vendor_id: str = Field("1d6b", pattern="^[0-9a-f]{4}$")
    product_id: str = Field("0104", pattern="^[0-9a-f]{4}$")
    driver: str = "cdc_ncm"
    serial_pattern: str = Field("^[A-Z0-9]{7}$", description="regex the USB serial (device ID) must match")


class BayConfig(Strict):
    bay: int = Field(ge=1, le=64)
    usb_path: str = Field(description="udev ID_PATH of the bay's USB port")


class ReadinessConfig(Strict):
    shift_minutes: int = Field(600, ge=30, le=1440, description="a recorder must last this long to go out")
    require_clock_synced: bool = True


class RecorderLink(Strict):
    address: str = Field("fe80::ff:fe00:1", description="the recorder's link-local address (EUI-64 of 02:00:00:00:00:01)")
    port: int = Field(8443, ge=1, le=65535)
    timeout_seconds: int = Field(30, ge=1, le=600)


class DockConfig(Strict):
    key: Path
    certificate: Path
    ca: Path
    state: Path
    archive: ArchiveConfig
    match: MatchConfig = MatchConfig()
    bays: list[BayConfig] = Field(default_factory=list)
    readiness: ReadinessConfig = ReadinessConfig()
    recorder: RecorderLink = RecorderLink()


def load_dock_config(path: Path) -> DockConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: dock config not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return DockConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: invalid dock config"]
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {key}: {'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}")
        raise ConfigError("\n".join(lines)) from None
