"""The dock's configuration: one typed model, unknown keys refused."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bodycam.errors import ConfigError
from device.sealing.configfile import read_toml, validation_error_text


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# A path written as a TOML string (strict models take no str for a Path otherwise).
FilePath = Annotated[Path, Field(strict=False)]


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
    serial_pattern: str = Field("^[A-Z0-9]{7}$", max_length=200,
                                description="regex the USB serial (device ID) must match")

    @field_validator("serial_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except (re.error, RecursionError, OverflowError) as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value


class BayConfig(Strict):
    bay: int = Field(ge=1, le=64)
    usb_path: str = Field(min_length=1, max_length=200, description="udev ID_PATH of the bay's USB port")


class ReadinessConfig(Strict):
    shift_minutes: int = Field(600, ge=30, le=1440, description="a recorder must last this long to go out")
    require_clock_synced: bool = True


class RecorderLink(Strict):
    address: str = Field("fe80::ff:fe00:1", description="the recorder's link-local address (EUI-64 of 02:00:00:00:00:01)")

    @field_validator("address")
    @classmethod
    def _ip(cls, value: str) -> str:
        # The dock adds the interface (%enx...) of the bay itself: no scope here.
        try:
            if "%" in value:
                raise ValueError(value)
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (without %interface: the dock "
                             "adds the bay's)") from None
        return value

    port: int = Field(8443, ge=1, le=65535)
    timeout_seconds: int = Field(30, ge=1, le=600)


class DockConfig(Strict):
    key: FilePath
    certificate: FilePath
    ca: FilePath
    state: FilePath
    archive: ArchiveConfig
    match: MatchConfig = MatchConfig()
    bays: list[BayConfig] = Field(default_factory=list)
    readiness: ReadinessConfig = ReadinessConfig()
    recorder: RecorderLink = RecorderLink()

    @model_validator(mode="after")
    def _unique_bays(self) -> "DockConfig":
        for attr in ("bay", "usb_path"):
            values = [getattr(b, attr) for b in self.bays]
            dup = next((v for v in values if values.count(v) > 1), None)
            if dup is not None:
                raise ValueError(f"bays: two bays have {attr} {dup!r}")
        return self


def load_dock_config(path: Path) -> DockConfig:
    """Read and validate a dock config; ``ConfigError``/``InputError`` name the file and key."""
    path = Path(path)
    data = read_toml(path, "dock config")
    try:
        return DockConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_error_text(path, "dock config", exc.errors())) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid dock config: values nested too deeply") from None


def describe_dock_config(config: DockConfig) -> str:
    """One line for `bodycam config check`."""
    return (f"{len(config.bays)} bay(s), state {config.state}, archive {config.archive.url}, "
            f"shift {config.readiness.shift_minutes} min")
