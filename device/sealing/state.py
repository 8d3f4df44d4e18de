"""The sealing side of a recorder's state directory.

    STATE/identity/   device.key (0600), device.crt, ca.crt, archive-recipient.crt
    STATE/seallog/    the seal log files
    STATE/segments/   NAME.bcseg (segment) and NAME.bcman (its manifest)

``SealingState.open`` takes an exclusive lock, writes a ``boot`` entry and
recovers whatever an unclean stop left open, before anything new is sealed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import stat
import threading
from pathlib import Path
from typing import Any

from bodycam import __version__
from bodycam.errors import BodycamError, FormatError, SealingError, StateLockedError

from .clock import DEFAULT_TIMEZONE, Clock, local_text, utc_text
from .format import AEAD_TAG_LEN, log_anchor
from .fsutil import fsync_dir
from .sealer import (
    INCOMPLETE_DIR,
    MANIFEST_SUFFIX,
    SEGMENT_SUFFIX,
    SEGMENTS_DIR,
    STATUS_TRUNCATED,
    DeviceIdentity,
    SegmentWriter,
    build_header,
    build_manifest,
    new_data_key,
    wrap_data_key,
    write_manifest,
)
from .seallog import (
    EV_BOOT,
    EV_ORPHAN,
    EV_SEGMENT_LOST,
    EV_SEGMENT_OPENED,
    EV_SEGMENT_SEALED,
    EV_SHUTDOWN,
    EV_UNCLEAN_STOP,
    LOG_DIR,
    LogEntry,
    SealLog,
)
from .models import SegmentOpenedData, SegmentSealedData
from .segment_file import map_file, read_manifest, scan_segment

LOCK_FILE = "lock"


def _make_folder(path: Path) -> str | None:
    """Ensure ``path`` is a real folder.  Anything else under that name (a file, a
    link, a FIFO) is renamed aside, never deleted; returns its new name or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        path.mkdir()
        fsync_dir(path.parent)
        return None
    if stat.S_ISDIR(st.st_mode):
        return None
    aside = path.with_name(f"{path.name}.not-a-folder-{secrets.token_hex(4)}")
    os.rename(path, aside)
    path.mkdir()
    fsync_dir(path.parent)
    return aside.name


def _open_lock(path: Path) -> int:
    """The lock file's descriptor; something else under its name (a FIFO, which
    would block the open, a folder, a link) is renamed aside first."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            os.rename(path, path.with_name(f"{path.name}.not-a-file-{secrets.token_hex(4)}"))
    except FileNotFoundError:
        pass
    return os.open(path, flags, 0o600)


class SealingState:
    def __init__(
        self,
        root: Path,
        identity: DeviceIdentity,
        log: SealLog,
        clock: Clock,
        lock_fd: int,
        timezone: str,
        checkpoint_interval: float,
    ) -> None:
        self.root = root
        self.identity = identity
        self.log = log
        self.clock = clock
        self._lock_fd = lock_fd
        self.timezone = timezone
        self.checkpoint_interval = checkpoint_interval
        self.segments_dir = root / SEGMENTS_DIR
        self.open_segments: dict[int, SegmentWriter] = {}
        self.recovered: list[dict[str, Any]] = []
        self._opened: dict[int, LogEntry] = {}
        self._sealed: dict[int, LogEntry] = {}
        self.last_sealed: bytes | None = None
        # Capture, sealing and control threads all log; one writer at a time.
        self._lock = threading.RLock()
        for entry in log.entries:
            self._note(entry)

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path,
        clock: Clock,
        *,
        timezone: str = DEFAULT_TIMEZONE,
        checkpoint_interval: float = 1.0,
        boot_data: dict[str, Any] | None = None,
    ) -> "SealingState":
        root = Path(root)
        if not 0.0 <= checkpoint_interval <= 10.0:
            raise SealingError("checkpoint interval must be between 0 and 10 seconds")
        identity = DeviceIdentity.load(root)
        lock_fd = _open_lock(root / LOCK_FILE)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StateLockedError(f"{root}: another recorder process owns this state") from None
        try:
            moved = [_make_folder(root / name) for name in (SEGMENTS_DIR, LOG_DIR)]
            log = SealLog(
                root / LOG_DIR, identity.device_id, identity.key,
                log_anchor(identity.public_raw), clock,
            )
            state = cls(root, identity, log, clock, lock_fd, timezone, checkpoint_interval)
            log.append(
                EV_BOOT,
                {
                    "software": __version__,
                    "clock_state": clock.state,
                    "certificate_valid": identity.valid_from <= clock.utc_now() <= identity.valid_until,
                    "torn_log_records": len(log.torn_at_start),
                    "log_breaks": [
                        {"file": b.file, "offset": b.offset, "reason": b.reason[:200]}
                        for b in log.breaks_at_start[:20]
                    ],
                    "moved_aside": [m for m in moved if m],
                    **(boot_data or {}),
                },
            )
            state._recover()
        except BaseException:
            os.close(lock_fd)
            raise
        return state

    def _note(self, entry: LogEntry) -> None:
        # Only entries on the chain reach here, with their data parsed.
        typed = entry.typed
        if isinstance(typed, SegmentOpenedData) and typed.segment_seq == len(self._opened):
            self._opened[typed.segment_seq] = entry
        elif isinstance(typed, SegmentSealedData) and typed.segment_seq in self._opened:
            self._sealed[typed.segment_seq] = entry
            self.last_sealed = bytes.fromhex(typed.digest)

    def log_event(self, event: str, data: dict[str, Any] | None = None) -> LogEntry:
        with self._lock:
            entry = self.log.append(event, data)
            self._note(entry)
            return entry

    @property
    def next_segment_seq(self) -> int:
        return max(self._opened, default=-1) + 1

    # -- recovery ------------------------------------------------------------

    def _recover(self) -> None:
        for seq in sorted(set(self._opened) - set(self._sealed)):
            entry = self._opened[seq]
            name = entry.data["segment"]
            path = self.segments_dir / f"{name}{SEGMENT_SUFFIX}"
            try:
                self._recover_one(seq, name, path, bytes.fromhex(entry.data["header_digest"]))
            except (BodycamError, OSError) as exc:
                self.log_event(
                    EV_SEGMENT_LOST, {"segment_seq": seq, "segment": name, "reason": str(exc)}
                )
                self.recovered.append({"segment": name, "lost": str(exc)})
        self._quarantine_orphans()

    def _recover_one(self, seq: int, name: str, path: Path, header_digest: bytes) -> None:
        manifest_path = path.with_suffix(MANIFEST_SUFFIX)
        if manifest_path.exists():
            # Closed cleanly; only the seal-log entry was lost.
            manifest = read_manifest(manifest_path)
            if not manifest.signed.verify(self.identity.key.public_key()):
                raise FormatError("manifest signature does not verify", str(manifest_path))
            self.log_event(
                EV_SEGMENT_SEALED,
                {
                    "segment_seq": seq,
                    "segment": name,
                    "digest": manifest.digest.hex(),
                    "status": manifest.signed.obj["status"],
                    "fragments": manifest.signed.obj["fragment_count"],
                    "recovered": True,
                },
            )
            return
        data = map_file(path)
        scan = scan_segment(data, str(path))
        if scan.header_digest != header_digest:
            raise FormatError("header differs from the one in the seal log", str(path))
        public = self.identity.key.public_key()
        # The last checkpoint this device signed whose chain matches the file.
        covered, chain, covered_end = 0, scan.chain_after(0), scan.header_end
        for cp in scan.checkpoints:
            obj = cp.signed.obj
            if (
                cp.signed.verify(public)
                and obj.get("fragments") == cp.seen
                and obj.get("chain") == cp.chain_at.hex()
            ):
                covered, chain, covered_end = cp.seen, cp.chain_at, cp.end
        trailing = memoryview(data)[covered_end:]
        now = self.clock.utc_now()
        header = scan.header.obj
        truncated = {
            "reason": "unclean-stop",
            "after_fragment": covered,
            "covered_bytes": covered_end,
            "uncovered_bytes": len(trailing),
            "uncovered_sha256": hashlib.sha256(trailing).hexdigest(),
            "recovered_utc": utc_text(now),
            "recovered_run": self.log.run,
        }
        fragments = [
            {"i": f.index, "bytes": len(f.ciphertext) - AEAD_TAG_LEN, "sha256": f.pt_digest.hex()}
            for f in scan.fragments[:covered]
        ]
        manifest = build_manifest(
            header,
            header_digest=scan.header_digest,
            chain=chain,
            fragments=fragments,
            closed_utc=utc_text(now),
            closed_local=local_text(now, header["timezone"]),
            file_bytes=len(data),
            status=STATUS_TRUNCATED,
            truncated=truncated,
            meta={"recovered": True},
        )
        self.log_event(
            EV_UNCLEAN_STOP,
            {"segment_seq": seq, "segment": name, "after_fragment": covered,
             "uncovered_bytes": len(trailing)},
        )
        digest = write_manifest(path, self.identity.key, manifest)
        self.log_event(
            EV_SEGMENT_SEALED,
            {"segment_seq": seq, "segment": name, "digest": digest.hex(),
             "status": STATUS_TRUNCATED, "fragments": covered},
        )
        self.recovered.append({"segment": name, "after_fragment": covered,
                               "uncovered_bytes": len(trailing)})

    def _quarantine_orphans(self) -> None:
        """Move segment files that never reached the seal log out of the way.

        They exist when power failed between creating a file and logging it;
        they are kept (never deleted) in segments/incomplete/.
        """
        known = {e.data.get("segment") for e in self._opened.values()}
        orphans = [p for p in sorted(self.segments_dir.glob(f"*{SEGMENT_SUFFIX}")) if p.stem not in known]
        # A manifest goes with its segment (a log cut by a broken record can leave sealed
        # ones): left behind, it would block a later segment of the same name.
        orphans += [p for p in sorted(self.segments_dir.glob(f"*{MANIFEST_SUFFIX}"))
                    if p.name[: -len(MANIFEST_SUFFIX)] not in known]
        for path in orphans:
            target_dir = self.segments_dir / INCOMPLETE_DIR
            _make_folder(target_dir)
            target = target_dir / f"{path.name}.{self.log.run}"
            os.rename(path, target)
            fsync_dir(target_dir)
            fsync_dir(self.segments_dir)
            self.log_event(
                EV_ORPHAN,
                {"file": path.name, "moved_to": f"{INCOMPLETE_DIR}/{target.name}",
                 "bytes": target.lstat().st_size},
            )

    # -- segments ------------------------------------------------------------

    def open_segment(
        self,
        media_type: str,
        officer: str | None,
        meta: dict[str, Any] | None = None,
    ) -> SegmentWriter:
        with self._lock:
            return self._open_segment(media_type, officer, meta)

    def _open_segment(
        self, media_type: str, officer: str | None, meta: dict[str, Any] | None
    ) -> SegmentWriter:
        seq = self.next_segment_seq
        data_key = new_data_key()
        header = build_header(
            self.identity,
            seq=seq,
            media_type=media_type,
            officer=officer,
            clock=self.clock,
            timezone=self.timezone,
            prev_segment=self.last_sealed,
            wrapped_key_hex=wrap_data_key(self.identity, data_key, seq),
            checkpoint_interval=self.checkpoint_interval,
            run=self.log.run,
            meta=meta or {},
        )
        path = self.segments_dir / f"{header['segment']}{SEGMENT_SUFFIX}"
        writer = SegmentWriter(
            path=path,
            identity=self.identity,
            header=header,
            data_key=data_key,
            clock=self.clock,
            checkpoint_interval=self.checkpoint_interval,
            on_close=self._segment_closed,
        )
        self.log_event(
            EV_SEGMENT_OPENED,
            {"segment_seq": seq, "segment": header["segment"],
             "header_digest": writer.header_digest.hex(), "media": media_type},
        )
        self.open_segments[seq] = writer
        return writer

    def _segment_closed(self, writer: SegmentWriter, digest: bytes, status: str) -> None:
        with self._lock:
            self.open_segments.pop(writer.seq, None)
        self.log_event(
            EV_SEGMENT_SEALED,
            {"segment_seq": writer.seq, "segment": writer.name, "digest": digest.hex(),
             "status": status, "fragments": len(writer.fragments)},
        )

    def close(self) -> None:
        """Seal what is open and write an orderly shutdown entry."""
        for writer in list(self.open_segments.values()):
            writer.close({"closed_by": "shutdown"})
        self.log_event(EV_SHUTDOWN, {})
        self.log.close()
        os.close(self._lock_fd)
