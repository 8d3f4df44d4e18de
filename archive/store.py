"""The archive store, first version: write-once blobs on a local file system
and a SQLite index; receipts signed only after the data is durable and verified.

    ROOT/blobs/sha256/ab/<hex>   content-addressed, mode 0444, never overwritten
    ROOT/index.sqlite            segments, seal-log files, devices

``ArchiveStore`` is the interface the dock uses; an S3 Object Lock backend
for blobs and PostgreSQL for the index can implement it without touching
the dock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bodycam.errors import SealingError
from device.sealing.clock import utc_text
from device.sealing import pki
from device.sealing.fsutil import fsync_dir
from device.sealing.messages import CTX_RECEIPT, sign_message
from device.sealing.sealer import MANIFEST_SUFFIX, SEGMENT_SUFFIX, SEGMENTS_DIR
from device.sealing.seallog import LOG_DIR
from device.sealing.verifier import Verifier

DEFAULT_RETENTION_DAYS = 183  # Art. 12: patrol footage at least six months

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    segment_digest TEXT PRIMARY KEY,
    device TEXT NOT NULL,
    segment_seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    media TEXT NOT NULL,
    officer TEXT,
    department TEXT,
    opened_utc TEXT NOT NULL,
    closed_utc TEXT,
    status TEXT NOT NULL,
    marks TEXT NOT NULL,
    events TEXT NOT NULL,
    segment_blob TEXT NOT NULL,
    manifest_blob TEXT NOT NULL,
    imported_utc TEXT NOT NULL,
    source TEXT NOT NULL,
    retain_until TEXT NOT NULL,
    UNIQUE (device, segment_seq)
);
CREATE TABLE IF NOT EXISTS seal_log_files (
    device TEXT NOT NULL,
    file TEXT NOT NULL,
    blob TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (device, file, blob)
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    certificate_blob TEXT NOT NULL,
    head_seq INTEGER,
    head_digest TEXT
);
"""


class ArchiveStore(Protocol):
    def commit(self, recording: Path, names: list[str], *, source: str,
               department: str | None = None) -> list[dict[str, str]]: ...

    def export_recording(self, device: str, out: Path) -> Path: ...

    def segments(self, **where: Any) -> list[dict[str, Any]]: ...


class LocalArchive:
    def __init__(self, root: Path, ca_cert: x509.Certificate, receipt_key: Ed25519PrivateKey,
                 receipt_cert: x509.Certificate, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        pki.check_cert(receipt_cert, ca_cert, pki.ROLE_ARCHIVE_RECEIPT, "archive receipt certificate")
        self.root = Path(root)
        self.ca_cert = ca_cert
        self.receipt_key = receipt_key
        self.receipt_cert = receipt_cert
        self.archive_id = pki.cert_id(receipt_cert) or ""
        self.retention_days = retention_days
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "index.sqlite", check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a committed row survives a power cut
        self.db.executescript(SCHEMA)

    @classmethod
    def open(cls, root: Path, ca_cert_path: Path, key_path: Path, cert_path: Path) -> "LocalArchive":
        return cls(root, pki.load_cert(ca_cert_path, "agency CA certificate"),
                   pki.load_ed25519_key(key_path, "archive receipt key"),
                   pki.load_cert(cert_path, "archive receipt certificate"))

    # -- blobs --------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest[:2] / digest

    def put_file(self, source: Path, link: bool = False) -> str:
        """Store a file write-once; returns its SHA-256.  Idempotent for equal content.

        With ``link``, a staged file that is already durable, will never be
        written again and is on the same file system is hard-linked (one read
        to hash it, no second write); otherwise it is copied and hashed in one
        pass and fsync'd.  Either way the blob is
        mode 0444 and linked into place, never renamed over anything.
        """
        blobs = self.root / "blobs" / "sha256"
        tmp = blobs / f".incoming-{os.getpid()}-{threading.get_ident()}"
        h = hashlib.sha256()
        linked = False
        if link:
            try:
                os.link(source, tmp)
                linked = True
            except OSError:  # another file system
                pass
        if linked:
            with open(tmp, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        else:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        digest = h.hexdigest()
        target = self.blob_path(digest)
        try:
            if target.exists():
                return digest  # the same bytes are already stored
            target.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, target)  # fails rather than overwrite
            except FileExistsError:
                return digest
            fsync_dir(target.parent)
            return digest
        finally:
            tmp.unlink()

    # -- commit -------------------------------------------------------------------------

    def commit(self, recording: Path, names: list[str], *, source: str,
               department: str | None = None) -> list[dict[str, str]]:
        """Verify the recording, store the named segments durably, return receipts.

        A segment that does not verify is not stored and gets no receipt; the
        recorder keeps it.
        """
        verifier = Verifier(self.ca_cert)
        report, good = verifier.verify_recording(recording)
        if not report.seal_log.usable:
            raise SealingError(f"seal log does not verify: {'; '.join(report.seal_log.reasons)}")
        device = report.device or ""
        by_name = {g.report.name: g for g in good}
        cert_blob = self.put_file(recording / pki.IDENTITY_DIR / pki.DEVICE_CERT)
        log_files = []
        for path in sorted((recording / LOG_DIR).iterdir()):
            log_files.append((path.name, self.put_file(path), path.stat().st_size))
        rows = []
        now = dt.datetime.now(dt.timezone.utc)
        retain = now + dt.timedelta(days=self.retention_days)
        for name in names:
            seg = by_name.get(name)
            if seg is None or not seg.report.acceptable(allow_incomplete=True) or seg.manifest is None:
                continue
            seg_dir = recording / SEGMENTS_DIR
            # Sealed segment files never change again: they may be linked.
            seg_blob = self.put_file(seg_dir / f"{name}{SEGMENT_SUFFIX}", link=True)
            man_blob = self.put_file(seg_dir / f"{name}{MANIFEST_SUFFIX}", link=True)
            m = seg.manifest.signed.obj
            events = m.get("meta", {}).get("events", []) if isinstance(m.get("meta"), dict) else []
            marks = [e.get("kind") for e in events if isinstance(e, dict) and e.get("event") == "mark"]
            rows.append((seg.report.digest, device, m["segment_seq"], name, m["media"], m["officer"],
                         department, m["opened_utc"], m["closed_utc"], m["status"], json.dumps(marks),
                         json.dumps(events, ensure_ascii=False), seg_blob, man_blob, utc_text(now),
                         source, utc_text(retain)))
        with self.db:  # one transaction, synchronous=FULL: durable before any receipt
            self.db.executemany(
                "INSERT OR IGNORE INTO seal_log_files VALUES (?, ?, ?, ?)",
                [(device, name, blob, size) for name, blob, size in log_files])
            self.db.execute(
                "INSERT INTO devices VALUES (?, ?, ?, ?) ON CONFLICT(device) DO UPDATE SET "
                "certificate_blob=excluded.certificate_blob, head_seq=excluded.head_seq, "
                "head_digest=excluded.head_digest WHERE excluded.head_seq >= devices.head_seq",
                (device, cert_blob, report.seal_log.head_seq, report.seal_log.head_digest))
            self.db.executemany(
                "INSERT OR IGNORE INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows)
        receipts = []
        for row in rows:
            stored = self.db.execute(
                "SELECT segment_blob, manifest_blob, retain_until FROM segments WHERE segment_digest=?",
                (row[0],)).fetchone()
            receipts.append(sign_message(self.receipt_key, self.receipt_cert, {
                "ctx": CTX_RECEIPT,
                "archive": self.archive_id,
                "device": device,
                "segment": row[3],
                "segment_seq": row[2],
                "segment_digest": row[0],
                "files": {"segment_sha256": stored[0], "manifest_sha256": stored[1]},
                "stored_utc": utc_text(now),
                "retain_until": stored[2],
            }))
        return receipts

    # -- queries ------------------------------------------------------------------------

    def segments(self, **where: Any) -> list[dict[str, Any]]:
        """Search by column equality (device, officer, department, media, ...)."""
        allowed = {"device", "officer", "department", "media", "status", "name"}
        if not set(where) <= allowed:
            raise ValueError(f"search by {sorted(allowed)}")
        clause = " AND ".join(f"{k}=?" for k in where) or "1=1"
        cur = self.db.execute(f"SELECT * FROM segments WHERE {clause} ORDER BY device, segment_seq",
                              tuple(where.values()))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row)) for row in cur.fetchall()]

    def export_recording(self, device: str, out: Path) -> Path:
        """Lay a device's stored footage out as a recording folder for the verifier."""
        row = self.db.execute("SELECT certificate_blob FROM devices WHERE device=?", (device,)).fetchone()
        if row is None:
            raise SealingError(f"no footage from device {device!r} in the archive")
        (out / pki.IDENTITY_DIR).mkdir(parents=True)
        (out / LOG_DIR).mkdir()
        (out / SEGMENTS_DIR).mkdir()
        shutil.copyfile(self.blob_path(row[0]), out / pki.IDENTITY_DIR / pki.DEVICE_CERT)
        latest: dict[str, tuple[int, str]] = {}
        for name, blob, size in self.db.execute(
                "SELECT file, blob, bytes FROM seal_log_files WHERE device=?", (device,)):
            if name not in latest or size > latest[name][0]:
                latest[name] = (size, blob)  # a log file only ever grows
        for name, (_, blob) in latest.items():
            shutil.copyfile(self.blob_path(blob), out / LOG_DIR / name)
        for name, seg_blob, man_blob in self.db.execute(
                "SELECT name, segment_blob, manifest_blob FROM segments WHERE device=?", (device,)):
            shutil.copyfile(self.blob_path(seg_blob), out / SEGMENTS_DIR / f"{name}{SEGMENT_SUFFIX}")
            shutil.copyfile(self.blob_path(man_blob), out / SEGMENTS_DIR / f"{name}{MANIFEST_SUFFIX}")
        return out
