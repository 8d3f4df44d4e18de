"""The device-wide seal log: an append-only, hash-chained, signed event list.

Each entry names its sequence number and the digest of the entry before it;
the first entry chains to an anchor derived from the device's public key.
The log lives in ``seallog/`` as files named by the sequence number of their
first entry.  Every start of the recorder begins a new file, so a record torn
by a power cut stays where it is and nothing written is ever rewritten.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bodycam.errors import FormatError, SealingError

from .clock import Clock, utc_text
from .format import (
    CTX_LOG,
    FORMAT_VERSION,
    MAGIC_LOG,
    REC_LOG_ENTRY,
    Record,
    SignedBody,
    TornTail,
    encode_record,
    iter_records,
    leaf_hash,
    open_signed_body,
    sign_body,
)
from .fsutil import fsync_dir

LOG_DIR = "seallog"
LOG_FILE_RE = re.compile(r"^(\d{12})-([0-9a-f]{16})\.log$")
EVENT_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

# Event kinds.  The sealer writes the first group itself; the recorder, the
# controls, health and dock link write the others.
EV_BOOT = "boot"
EV_SHUTDOWN = "shutdown"
EV_SEGMENT_OPENED = "segment-opened"
EV_SEGMENT_SEALED = "segment-sealed"
EV_UNCLEAN_STOP = "unclean-stop"
EV_SEGMENT_LOST = "segment-lost"
EV_ORPHAN = "orphan-file"
EV_RECORD_START = "record-start"
EV_RECORD_STOP = "record-stop"
EV_NOTIFY = "notify"
EV_MARK = "mark"
EV_PHOTO = "photo"
EV_CLOCK_SET = "clock-set"
EV_ASSIGNMENT = "assignment"
EV_ALARM = "alarm"
EV_RECEIPT = "receipt"
EV_DELETION = "deletion"


@dataclass(frozen=True)
class LogEntry:
    seq: int
    digest: bytes
    event: str
    data: dict[str, Any]
    obj: dict[str, Any]  # the whole payload
    file: str
    offset: int


@dataclass
class LogScan:
    """What is on disk, parsed but not yet trusted."""

    entries: list[tuple[LogEntry, SignedBody]]
    torn: list[tuple[str, TornTail]]  # (file name, where)
    files: list[str]


def log_files(log_dir: Path) -> list[str]:
    try:
        names = sorted(n for n in os.listdir(log_dir) if LOG_FILE_RE.match(n))
    except FileNotFoundError:
        return []
    return names


def parse_entry(record: Record, file: str) -> tuple[LogEntry, SignedBody]:
    where = f"{file} at offset {record.offset}"
    signed = open_signed_body(record.body, where, CTX_LOG)
    obj = signed.obj
    try:
        seq = obj["seq"]
        event = obj["event"]
        data = obj["data"]
        prev = bytes.fromhex(obj["prev"])
        for key in ("device", "utc", "run"):
            if not isinstance(obj[key], str):
                raise TypeError(key)
        if not isinstance(obj["mono_ns"], int):
            raise TypeError("mono_ns")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FormatError(f"seal-log entry lacks a valid field ({exc})", where) from None
    if not isinstance(seq, int) or seq < 0:
        raise FormatError("seal-log entry has an invalid seq", where)
    if not isinstance(event, str) or not EVENT_RE.match(event):
        raise FormatError(f"seal-log entry has an invalid event kind {event!r}", where)
    if not isinstance(data, dict) or len(prev) != 32:
        raise FormatError("seal-log entry has invalid data or prev", where)
    entry = LogEntry(seq, leaf_hash(record.raw), event, data, obj, file, record.offset)
    return entry, signed


def scan_log(log_dir: Path) -> LogScan:
    """Parse every seal-log file in order.  Raises FormatError on corruption."""
    scan = LogScan([], [], log_files(log_dir))
    for name in scan.files:
        path = Path(log_dir) / name
        data = path.read_bytes()
        for item in iter_records(data, str(path), MAGIC_LOG, frozenset({REC_LOG_ENTRY})):
            if isinstance(item, TornTail):
                scan.torn.append((name, item))
            else:
                scan.entries.append(parse_entry(item, str(path)))
    return scan


class SealLog:
    """The writer's view of the seal log; one per running recorder."""

    def __init__(
        self,
        log_dir: Path,
        device_id: str,
        key: Ed25519PrivateKey,
        anchor: bytes,
        clock: Clock,
    ) -> None:
        self.dir = Path(log_dir)
        self.device_id = device_id
        self._key = key
        self._clock = clock
        self.run = secrets.token_hex(8)
        self.dir.mkdir(parents=True, exist_ok=True)
        scan = scan_log(self.dir)
        self.entries: list[LogEntry] = [entry for entry, _ in scan.entries]
        if self.entries:
            last = self.entries[-1]
            self.next_seq = last.seq + 1
            self.head = last.digest
        else:
            self.next_seq = 0
            self.head = anchor
        self.torn_at_start = [(name, torn.offset) for name, torn in scan.torn]
        self._fd: int | None = None

    def _open_file(self) -> int:
        # The run ID in the name keeps a file that a previous run created
        # and died in before its first entry was whole (same first seq).
        path = self.dir / f"{self.next_seq:012d}-{self.run}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o444)
        os.write(fd, MAGIC_LOG)
        os.fsync(fd)
        fsync_dir(self.dir)
        return fd

    def append(self, event: str, data: dict[str, Any] | None = None) -> LogEntry:
        if not EVENT_RE.match(event):
            raise SealingError(f"invalid event kind {event!r}")
        if self._fd is None:
            self._fd = self._open_file()
        payload = {
            "ctx": CTX_LOG,
            "v": FORMAT_VERSION,
            "device": self.device_id,
            "seq": self.next_seq,
            "prev": self.head.hex(),
            "utc": utc_text(self._clock.utc_now()),
            "mono_ns": self._clock.monotonic_ns(),
            "run": self.run,
            "event": event,
            "data": data or {},
        }
        record = encode_record(REC_LOG_ENTRY, sign_body(self._key, payload))
        offset = os.lseek(self._fd, 0, os.SEEK_END)
        written = os.write(self._fd, record)
        if written != len(record):
            raise SealingError(f"short write to the seal log ({written} of {len(record)})")
        os.fsync(self._fd)
        entry = LogEntry(
            self.next_seq, leaf_hash(record), event, payload["data"], payload,
            str(self.dir), offset,
        )
        self.entries.append(entry)
        self.head = entry.digest
        self.next_seq += 1
        return entry

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
