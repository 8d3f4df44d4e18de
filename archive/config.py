"""The archive service's configuration: one TOML file, one typed model.

Unknown keys and out-of-range values are refused with the file and the key
named (like the hw-configs).  Example (docs: archive.toml in the README)::

    state = "/var/lib/bodycam-archive"     # uploads in progress, scrub reports

    [server]
    listen = "0.0.0.0"
    port = 8444
    key = "/etc/bodycam/archive/archive-receipt.key"
    certificate = "/etc/bodycam/archive/archive-receipt.crt"

    [store]
    backend = "local"                      # or "s3"
    path = "/srv/bodycam/store"

    [index]
    url = "sqlite:////srv/bodycam/index.sqlite"   # or postgresql+psycopg://…

    [retention]
    patrol_days = 183

    [[agencies]]
    id = "shuncheng-market"
    name = "顺城区市场监督管理局"
    ca = "/etc/bodycam/ca.crt"
    receipt_key = "/etc/bodycam/archive/archive-receipt.key"
    receipt_certificate = "/etc/bodycam/archive/archive-receipt.crt"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bodycam.errors import ConfigError
from device.sealing.configfile import read_toml, validation_error_text

from .lawful_config import LawfulUseConfig

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Strict):
    listen: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8444, ge=0, le=65535, description="0 picks a free port (tests)")
    key: Path = Field(description="TLS key (Ed25519, role archive-receipt, issued by the first agency's CA)")
    certificate: Path
    max_upload_mb: int = Field(4096, ge=1, le=1 << 20, description="largest single upload")
    read_timeout_seconds: int = Field(60, ge=1, le=3600, description="a request body stalled this long is cut off")
    stale_upload_days: int = Field(7, ge=1, le=365, description="unfinished uploads older than this are removed")


class LocalStoreConfig(Strict):
    backend: Literal["local"]
    path: Path = Field(description="write-once directory: blobs named by SHA-256, mode 0444")


class S3StoreConfig(Strict):
    backend: Literal["s3"]
    endpoint_url: str | None = Field(None, pattern=r"^https?://", description="omit for AWS")
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = "us-east-1"
    access_key_id: str | None = Field(None, description="omit to use boto3's credential chain")
    secret_access_key: str | None = None
    prefix: str = Field("blobs/sha256/", pattern=r"^[A-Za-z0-9/_.-]*$")
    multipart_threshold_mb: int = Field(64, ge=5, le=5120, description="objects above this go up in parts")
    part_size_mb: int = Field(16, ge=5, le=5120)
    create_bucket: bool = Field(False, description="create the bucket with Object Lock if it is missing")


StoreConfig = Annotated[Union[LocalStoreConfig, S3StoreConfig], Field(discriminator="backend")]


class IndexConfig(Strict):
    url: str = Field(pattern=r"^(sqlite|postgresql)(\+[a-z0-9]+)?://",
                     description="sqlite:///path or postgresql+psycopg://user@host/db")


class RetentionConfig(Strict):
    """Retention classes (Art. 12, 13).  Source of the defaults: Art. 12 (patrol
    footage at least six months = 183 days); 长期 (long-term) in Chinese archive
    practice is 30 years; the case file's period defaults to long-term."""

    patrol_days: int = Field(183, ge=183, le=36500, description="Art. 12: at least six months")
    long_term_years: int = Field(30, ge=10, le=100, description="Art. 13 situations")
    case_file_years: int = Field(30, ge=1, le=100, description="default case-file period")


class WatchConfig(Strict):
    duty_hours: float = Field(12, gt=0, le=48, description="a shift after a docking lasts this long")
    dock_within_hours: float = Field(24, gt=0, le=240, description="Art. 11 / Liaoning practice: 24 h")
    scrub_every_hours: float = Field(24, gt=0, le=24 * 90)
    custody_alert_days: float = Field(7, gt=0, le=366, description="alert on custody findings this recent")


class AgencyConfig(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    ca: Path = Field(description="the agency CA certificate: docks and recorders chain to it")
    receipt_key: Path
    receipt_certificate: Path


class ArchiveConfig(Strict):
    state: Path = Field(description="uploads in progress and scrub reports")
    server: ServerConfig
    store: StoreConfig
    index: IndexConfig
    retention: RetentionConfig = RetentionConfig()
    watch: WatchConfig = WatchConfig()
    agencies: list[AgencyConfig] = Field(min_length=1)
    lawful_use: LawfulUseConfig = LawfulUseConfig()  # approvals, audit, export (archive/lawful_config.py)

    @model_validator(mode="after")
    def _unique_agencies(self) -> "ArchiveConfig":
        ids = [a.id for a in self.agencies]
        if len(ids) != len(set(ids)):
            raise ValueError(f"agency ids must be unique: {ids}")
        return self


STORE_TAGS = frozenset({"local", "s3"})  # the store's tagged union: tags, not keys, in an error's location
SECRET_KEYS = frozenset({"store.secret_access_key"})  # never shown in an error


def load_archive_config(path: Path) -> ArchiveConfig:
    """Read and validate; ConfigError names the file, every bad key and the value found
    (device/sealing/configfile.py, as for the hw-config and the dock config); InputError a
    file that cannot be read (missing, a FIFO, a folder).

    Relative paths in the file are taken relative to the file's folder.
    """
    path = Path(path)
    raw = read_toml(path, "archive config")
    try:
        config = ArchiveConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(validation_error_text(path, "archive config", exc.errors(),
                                                hidden_locations=STORE_TAGS, secrets=SECRET_KEYS)) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid archive config: values nested too deeply") from None
    return _relative_to(config, path.parent)


def _relative_to(config: ArchiveConfig, base: Path) -> ArchiveConfig:
    def fix(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    store = config.store
    if isinstance(store, LocalStoreConfig):
        store = store.model_copy(update={"path": fix(store.path)})
    index = config.index
    if index.url.startswith("sqlite:///") and not index.url.startswith("sqlite:////"):
        rel = index.url[len("sqlite:///"):]
        if rel and rel != ":memory:":
            index = IndexConfig(url=f"sqlite:///{fix(Path(rel))}")
    server = config.server.model_copy(update={"key": fix(config.server.key),
                                              "certificate": fix(config.server.certificate)})
    agencies = [a.model_copy(update={"ca": fix(a.ca), "receipt_key": fix(a.receipt_key),
                                     "receipt_certificate": fix(a.receipt_certificate)})
                for a in config.agencies]
    return config.model_copy(update={"state": fix(config.state), "store": store, "index": index,
                                     "server": server, "agencies": agencies})
