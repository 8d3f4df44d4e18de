"""The embedded archive: a local write-once directory and a SQLite index in one
folder, the default for a small agency (and for ``make demo``).

    ROOT/blobs/sha256/<2 hex>/<64 hex>   write-once blobs (archive/blobstore.py)
    ROOT/index.sqlite                    the index (archive/index.py, Alembic)
    ROOT/state/                          uploads in progress

:class:`LocalArchive` keeps the round-1 call shape (``open``, ``commit``,
``segments``, ``export_recording``) over :class:`archive.service.Archive`; a
round-1 ROOT is migrated in place when opened.
"""

from __future__ import annotations

from pathlib import Path

from .config import AgencyConfig, ArchiveConfig, IndexConfig, LocalStoreConfig, ServerConfig
from .service import Archive

DEFAULT_AGENCY = "default"


def embedded_config(root: Path, ca_cert: Path, receipt_key: Path, receipt_cert: Path, *,
                    agency: str = DEFAULT_AGENCY, name: str = "agency", port: int = 0,
                    listen: str = "127.0.0.1") -> ArchiveConfig:
    """The config of an archive kept entirely under ``root``."""
    root = Path(root)
    return ArchiveConfig(
        state=root / "state",
        server=ServerConfig(listen=listen, port=port, key=receipt_key, certificate=receipt_cert),
        store=LocalStoreConfig(backend="local", path=root),
        index=IndexConfig(url=f"sqlite:///{root / 'index.sqlite'}"),
        agencies=[AgencyConfig(id=agency, name=name, ca=ca_cert, receipt_key=receipt_key,
                               receipt_certificate=receipt_cert)])


class LocalArchive(Archive):
    """An :class:`Archive` on ``root`` with one agency."""

    @classmethod
    def open(cls, root: Path, ca_cert_path: Path, key_path: Path, cert_path: Path, **kw) -> "LocalArchive":
        return cls(embedded_config(root, ca_cert_path, key_path, cert_path), **kw)

    def commit(self, recording: Path, names: list[str], *, source: str, department: str | None = None,
               agency: str | None = None, digests: dict[str, str] | None = None,
               held: list[str] | None = None) -> list[dict[str, str]]:
        """The dock session's commit interface, in process (tests, tools)."""
        return self.commit_recording(agency, recording, names, source=source, sub_unit=department,
                                     digests=digests, held=held)

    def received(self, digests: list[str]) -> set[str]:
        """The dock session's question to the archive service (``POST /v1/segments/received``),
        in process: which of these deleted segments did this archive receive?"""
        return self.received_segments(self.agency(None).id, list(digests))
