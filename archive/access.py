"""Viewing under a grant, with decryption inside the archive service only.

The archive recipient key (X25519) is read by this process from the path in
``[lawful_use.recipient_keys]``; no person and no command prints or exports
it.  Plaintext exists only in memory and in what is handed out: watermarked
viewing copies, and the evidence package's media (exactly the plaintext the
recorder signed, so a court can check it).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bodycam.errors import SealingError, UsageError

from . import evidence as ev
from . import index as ix
from .accounts import Account
from .audit import audit_of
from .grants import Grants
from .watermark import viewing_media, watermark, watermark_text

MEDIA_SUFFIX = {"video/mp4": ".mp4", "audio/mp4": ".m4a", "image/jpeg": ".jpg"}


@dataclass
class Plain:
    name: str
    digest: str
    media: str
    data: bytes
    manifest: dict[str, Any]
    header: dict[str, Any]


class Access:
    def __init__(self, archive) -> None:
        self.archive = archive
        self.grants = Grants(archive)

    def rows(self, agency: str, digests: list[str]) -> list[Any]:
        s = ix.segments
        with self.archive.engine.connect() as conn:
            rows = list(conn.execute(select(s).where(s.c.agency == agency, s.c.deleted_utc.is_(None),
                                                     s.c.segment_digest.in_(digests))
                                     .order_by(s.c.device, s.c.segment_seq)))
        if len(rows) != len(set(digests)):
            raise UsageError("some segments of the grant are no longer in the archive")
        return rows

    def lay_out(self, rows: list[Any], out: Path, purpose: str = "") -> dict[str, Path]:
        """The sealed originals of ``rows`` as excerpts ``out/<device>/`` (format
        §10.1: device certificate, every seal-log file, the chosen segments and
        ``excerpt.json`` naming them, so the segments left out are ``excluded``,
        not ``missing``)."""
        folders: dict[str, Path] = {}
        with self.archive.engine.connect() as conn:
            for device in sorted({r.device for r in rows}):
                base = out / device
                for sub in (ev.IDENTITY_DIR, ev.LOG_DIR, ev.SEGMENTS_DIR):
                    (base / sub).mkdir(parents=True, exist_ok=True)
                dev = conn.execute(select(ix.devices).where(ix.devices.c.device == device)).one()
                self._copy(dev.certificate_blob, base / ev.IDENTITY_DIR / ev.DEVICE_CERT)
                latest: dict[str, tuple[int, str]] = {}
                for r in conn.execute(select(ix.seal_log_files).where(ix.seal_log_files.c.device == device)):
                    if r.file not in latest or r.bytes > latest[r.file][0]:
                        latest[r.file] = (r.bytes, r.blob)
                for name, (_, blob) in latest.items():
                    self._copy(blob, base / ev.LOG_DIR / name)
                folders[device] = base
        for r in rows:
            seg_dir = folders[r.device] / ev.SEGMENTS_DIR
            self._copy(r.segment_blob, seg_dir / f"{r.name}{ev.SEGMENT_SUFFIX}")
            self._copy(r.manifest_blob, seg_dir / f"{r.name}{ev.MANIFEST_SUFFIX}")
        for device, base in folders.items():
            ev.write_excerpt_index(base, device, sorted(r.name for r in rows if r.device == device),
                                   ev.utc_text(self.archive.now()), purpose)
        return folders

    def _copy(self, digest: str, target: Path) -> None:
        with self.archive.store.open(digest) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def decrypt(self, agency_id: str, folders: dict[str, Path], wanted: set[str]) -> dict[str, Plain]:
        """Verify each folder against the agency CA and decrypt the wanted
        segments (by digest) with the recipient key, checking every fragment's
        plaintext hash.  SealingError if one does not verify."""
        agency = self.archive.agency(agency_id)
        path = self.archive.config.lawful_use.recipient_keys.get(agency.id)
        if path is None:
            raise UsageError(f"no recipient key for agency {agency.id}: set [lawful_use.recipient_keys] "
                             f"{agency.id} in the archive config")
        out: dict[str, Plain] = {}
        for device, folder in folders.items():
            for digest, seg in ev.decrypt_recording(agency.ca_cert, path, folder, wanted).items():
                out[digest] = Plain(seg.name, seg.digest, seg.media, seg.data, seg.manifest, seg.header)
        missing = wanted - set(out)
        if missing:
            raise SealingError(f"{len(missing)} segment(s) did not verify or decrypt; nothing handed out")
        return out

    def view(self, account: Account, segment: str, *, grant_id: int | None = None, workdir: Path) -> tuple[bytes, str, str]:
        """A watermarked viewing copy of one segment under a live ``view`` grant.

        Returns (bytes, media type, file name).  AccessDenied (audited) without
        a grant; the view is audited before any byte is returned.
        """
        s = ix.segments
        with self.archive.engine.connect() as conn:
            row = conn.execute(select(s).where(s.c.agency == account.agency, s.c.deleted_utc.is_(None),
                                               (s.c.segment_digest == segment) | (s.c.name == segment))).first()
        if row is None:
            raise UsageError(f"no such segment in agency {account.agency}: {segment}")
        grant = self.grants.require(account, "view", [row.segment_digest], grant_id)
        scratch = workdir / f"view-{row.segment_digest[:16]}"
        try:
            plain = self.decrypt(account.agency, self.lay_out([row], scratch), {row.segment_digest})[row.segment_digest]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        when = ev.utc_text(self.archive.now())
        copy = watermark(plain.data, plain.media, watermark_text(f"{account.name}({account.username})", when))
        audit_of(self.archive).record(account.agency, "view", actor=account.actor, case=grant.case_number,
                                      segments=[row.segment_digest],
                                      detail={"grant": grant.id, "watermark": when, "bytes": len(copy)})
        media = viewing_media(plain.media)  # an audio-only segment's copy is a video (its picture names the viewer)
        return copy, media, f"{plain.name}-viewing{MEDIA_SUFFIX.get(media, '.bin')}"
