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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel

from bodycam.errors import FormatError, InputError, SealingError

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
    canonical_json,
    open_signed_body,
    sign_body,
)
from .fsutil import fsync_dir
from .models import (
    DeletionData,
    LogEntryPayload,
    ReceiptData,
    SegmentOpenedData,
    SegmentSealedData,
    UncleanStopData,
    parse_payload,
)
from .safeio import list_folder, map_bounded

LOG_DIR = "seallog"
LOG_FILE_RE = re.compile(r"^([0-9]{12})-([0-9a-f]{16})\.log$")
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


# The data of these kinds is interpreted by the verifier and must parse as
# its model; other kinds only need an object (later issues add kinds).
EVENT_DATA_MODELS: dict[str, type[BaseModel]] = {
    EV_SEGMENT_OPENED: SegmentOpenedData,
    EV_SEGMENT_SEALED: SegmentSealedData,
    EV_UNCLEAN_STOP: UncleanStopData,
    EV_RECEIPT: ReceiptData,
    EV_DELETION: DeletionData,
}
# A seal-log file's size bound (docs/format.md §2 "Limits"); read by mmap.
MAX_LOG_FILE = 1024**3


@dataclass(frozen=True)
class LogEntry:
    seq: int
    digest: bytes
    event: str
    data: dict[str, Any]
    obj: dict[str, Any]  # the whole payload
    file: str
    offset: int
    typed: BaseModel | None = None  # the parsed data of an interpreted event kind


@dataclass(frozen=True)
class LogBreak:
    """Where the chain could not be continued, and why (docs/format.md §5.2)."""

    file: str
    offset: int
    reason: str


@dataclass
class LogChain:
    """The seal log as the format defines it: the entries that chain from the anchor.

    ``entries`` are the good chain, in order; ``breaks`` everything on disk
    that is not on it (a bad entry ends its file's contribution; a file that
    does not continue the chain is skipped whole); ``torn`` is a record torn
    at the end of the last file (power loss, not yet restarted).
    """

    entries: list[LogEntry] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    breaks: list[LogBreak] = field(default_factory=list)
    torn: tuple[str, TornTail] | None = None
    torn_older: list[tuple[str, TornTail]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def head(self, anchor: bytes) -> tuple[int, bytes]:
        """(next seq, digest to chain to)."""
        if self.entries:
            return self.entries[-1].seq + 1, self.entries[-1].digest
        return 0, anchor


def log_files(log_dir: Path) -> list[str]:
    regular, other = list_folder(Path(log_dir), "seal log folder")
    return sorted(n for n in regular + other if LOG_FILE_RE.match(n))


def parse_entry(record: Record, file: str) -> tuple[LogEntry, SignedBody]:
    """Parse one L record completely; FormatError naming the field otherwise."""
    where = f"{file} at offset {record.offset}"
    signed = open_signed_body(record.body, where, CTX_LOG)
    payload = parse_payload(LogEntryPayload, signed.obj, where)
    data_model = EVENT_DATA_MODELS.get(payload.event)
    typed = parse_payload(data_model, payload.data, f"{where} {payload.event}") if data_model else None
    entry = LogEntry(
        payload.seq, leaf_hash(record.raw), payload.event, payload.data, signed.obj,
        file, record.offset, typed,
    )
    return entry, signed


@dataclass
class LogScan:
    """Every entry on disk, parsed but not trusted (tools and tests; the
    verifier and the recorder use ``read_chain``)."""

    entries: list[tuple[LogEntry, SignedBody]]
    torn: list[tuple[str, TornTail]]  # (file name, where)
    files: list[str]


def scan_log(log_dir: Path) -> LogScan:
    """Parse every seal-log file in name order, each up to its first fault
    (unreadable file, corrupt or malformed record); signatures and the
    chain are not checked.  InputError only if the folder cannot be listed."""
    scan = LogScan([], [], log_files(log_dir))
    for name in scan.files:
        try:
            data = map_bounded(Path(log_dir) / name, MAX_LOG_FILE, "seal-log file")
            for item in iter_records(data, name, MAGIC_LOG, frozenset({REC_LOG_ENTRY})):
                if isinstance(item, TornTail):
                    scan.torn.append((name, item))
                else:
                    scan.entries.append(parse_entry(item, name))
        except (FormatError, InputError):
            continue
    return scan


def read_chain(
    log_dir: Path, public_key: Ed25519PublicKey, device_id: str, anchor: bytes
) -> LogChain:
    """Walk the seal log the one way the format defines (docs/format.md §5.2).

    Files are taken in name order.  A file whose name does not continue the
    chain (its first seq is not the next one) is skipped; inside a file each
    entry must parse, carry the next ``seq``, the file's ``run``, the
    ``device``, chain to the entry before it and verify with the device
    key, else the rest of that file is skipped.  Never raises for what is in
    the folder; InputError only if the folder itself cannot be listed.
    """
    chain = LogChain()
    regular, other = list_folder(Path(log_dir), "seal log folder")
    chain.files = sorted(n for n in regular + other if LOG_FILE_RE.match(n))
    chain.ignored = sorted(n for n in regular + other if not LOG_FILE_RE.match(n))
    next_seq, prev = 0, anchor
    for index, name in enumerate(chain.files):
        path = Path(log_dir) / name
        named = LOG_FILE_RE.match(name)
        first_seq, run = int(named.group(1)), named.group(2)  # type: ignore[union-attr]
        if name in other:
            chain.breaks.append(LogBreak(name, 0, "not a regular file (link, FIFO or device); not read"))
            continue
        try:
            data = map_bounded(path, MAX_LOG_FILE, "seal-log file")
        except InputError as exc:
            chain.breaks.append(LogBreak(name, 0, str(exc)))
            continue
        whole = 0
        try:
            for item in iter_records(data, name, MAGIC_LOG, frozenset({REC_LOG_ENTRY})):
                if isinstance(item, TornTail):
                    if index == len(chain.files) - 1:
                        chain.torn = (name, item)
                    else:
                        chain.torn_older.append((name, item))
                    break
                if whole == 0 and first_seq != next_seq:
                    chain.breaks.append(LogBreak(
                        name, 0, f"file starts at entry {first_seq}; the chain continues at "
                        f"{next_seq} (superseded after a break, or inserted)"))
                    break
                whole += 1
                problem = None
                try:
                    entry, signed = parse_entry(item, name)
                except FormatError as exc:
                    problem = f"malformed entry: {exc}"
                else:
                    if entry.seq != next_seq:
                        problem = (f"sequence number {entry.seq} where {next_seq} was expected "
                                   "(entries deleted, inserted, reordered or replayed)")
                    elif entry.obj["run"] != run:
                        problem = f"entry of run {entry.obj['run']} in the file of run {run}"
                    elif entry.obj["device"] != device_id:
                        problem = f"names device {entry.obj['device']!r}, not {device_id!r}"
                    elif bytes.fromhex(entry.obj["prev"]) != prev:
                        problem = "does not chain to the entry before it"
                    elif not signed.verify(public_key):
                        problem = "signature does not verify with the device key"
                if problem:
                    chain.breaks.append(LogBreak(name, item.offset, f"entry {next_seq}: {problem}"))
                    break
                chain.entries.append(entry)
                next_seq, prev = entry.seq + 1, entry.digest
        except FormatError as exc:
            chain.breaks.append(LogBreak(name, getattr(exc, "offset", 0), f"corrupt: {exc}"))
    return chain


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
        # The same walk the verifier does: whatever is on the card, the
        # recorder continues the chain the verifier will accept, in a new
        # file, and never rewrites a byte of the old ones (docs/format.md §5.2).
        self.chain = read_chain(self.dir, key.public_key(), device_id, anchor)
        self.entries: list[LogEntry] = list(self.chain.entries)
        self.next_seq, self.head = self.chain.head(anchor)
        torn = self.chain.torn_older + ([self.chain.torn] if self.chain.torn else [])
        self.torn_at_start = [(name, t.offset) for name, t in torn]
        self.breaks_at_start = list(self.chain.breaks)
        self._fd: int | None = None

    def _open_file(self) -> int:
        # The run ID in the name keeps a file that a previous run created
        # and died in before its first entry was whole (same first seq).
        self._file_name = f"{self.next_seq:012d}-{self.run}.log"
        path = self.dir / self._file_name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o444)
        os.write(fd, MAGIC_LOG)
        os.fsync(fd)
        fsync_dir(self.dir)
        return fd

    def append(self, event: str, data: dict[str, Any] | None = None) -> LogEntry:
        """Sign and append one entry, fsync'd before returning.

        Raises SealingError, before anything is written, for an invalid
        event kind or data the format cannot carry (floats, integers beyond
        ±(2^53−1), a kind the verifier interprets with data not of its model).
        """
        if not isinstance(event, str) or not EVENT_RE.match(event):
            raise SealingError(f"invalid event kind {event!r}")
        data = data or {}
        model = EVENT_DATA_MODELS.get(event)
        try:
            if model is not None:
                parse_payload(model, data, f"seal-log {event} data")
            canonical_json(data)
        except FormatError as exc:
            raise SealingError(f"refusing to log {event}: {exc}") from None
        if self._fd is None:
            self._fd = self._open_file()
        payload = {
            "ctx": CTX_LOG,
            "v": FORMAT_VERSION,
            "device": self.device_id,
            "seq": self.next_seq,
            "prev": self.head.hex(),
            "utc": utc_text(self._clock.utc_now()),
            "mono_ns": str(self._clock.monotonic_ns()),
            "run": self.run,
            "event": event,
            "data": data,
        }
        record = encode_record(REC_LOG_ENTRY, sign_body(self._key, payload))
        offset = os.lseek(self._fd, 0, os.SEEK_END)
        written = os.write(self._fd, record)
        if written != len(record):
            raise SealingError(f"short write to the seal log ({written} of {len(record)})")
        os.fsync(self._fd)
        entry = LogEntry(
            self.next_seq, leaf_hash(record), event, payload["data"], payload,
            self._file_name, offset,
            model.model_validate(data) if model is not None else None,
        )
        self.entries.append(entry)
        self.head = entry.digest
        self.next_seq += 1
        return entry

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
