"""What the seal log says about segments (docs/format.md §7.2–§7.3).

``read_evidence`` walks the good chain once and returns, per segment number,
its ``segment-opened``, ``segment-sealed``, ``unclean-stop`` and a
``deletion`` that counts — one preceded by a ``receipt`` entry carrying an
archive-receipt signature (checked against the agency CA) over that segment's
digest.  Every rule broken by an entry that is validly signed is a
*problem* of the recording: the device key signs whatever its holder wants,
so a valid signature is not enough.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bodycam.errors import BodycamError

from . import pki
from .format import log_anchor
from .messages import CTX_CLOCK_SYNC, CTX_RECEIPT, open_message
from .models import (
    DeletionData,
    ReceiptData,
    SegmentOpenedData,
    SegmentSealedData,
    UncleanStopData,
)
from .report import LogReport, LogStatus
from .seallog import (
    EV_CLOCK_SET,
    LOG_DIR,
    LogChain,
    LogEntry,
    read_chain,
)


@dataclass
class SegmentEvidence:
    opened: LogEntry
    expected_prev: str | None  # hex digest prev_segment must name
    sealed: LogEntry | None = None
    unclean: LogEntry | None = None
    receipt: LogEntry | None = None  # a verified receipt for the sealed digest
    deletion: LogEntry | None = None  # a deletion that counts
    # Dock-signed clock syncs around the segment on the chain (§7.1): it was
    # opened after ``time_floor`` and sealed before ``time_ceiling``.
    time_floor: dt.datetime | None = None
    time_ceiling: dt.datetime | None = None

    @property
    def name(self) -> str:
        return self.opened.typed.segment  # type: ignore[union-attr]

    @property
    def sealed_digest(self) -> str | None:
        return self.sealed.typed.digest if self.sealed else None  # type: ignore[union-attr]


@dataclass
class LogEvidence:
    chain: LogChain
    segments: dict[int, SegmentEvidence] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # Deletions signed by the device that do not count (no valid receipt before them).
    unproven_deletions: dict[int, str] = field(default_factory=dict)


def verify_log(
    root: Path,
    device_id: str,
    public: Ed25519PublicKey,
    ca_cert: x509.Certificate,
    out: LogReport,
) -> LogEvidence:
    """Read the chain of ``root/seallog`` (format §5.2) into ``out`` (status,
    entries, head, reasons) and return what it says about each segment (§7.2),
    with the rules a validly signed entry breaks as ``problems``.  Raises only
    InputError, when ``root/seallog`` exists but cannot be listed."""
    anchor = log_anchor(public.public_bytes_raw())
    chain = read_chain(root / LOG_DIR, public, device_id, anchor)
    evidence = LogEvidence(chain)
    out.files = len(chain.files)
    out.entries = len(chain.entries)
    for brk in chain.breaks:
        out.reasons.append(f"{brk.file} offset {brk.offset}: {brk.reason}")
    for name in chain.ignored:
        out.reasons.append(f"{name}: not a seal-log file name; ignored")
    for name, torn in chain.torn_older:
        out.reasons.append(
            f"{name}: ends in a record torn at offset {torn.offset} (power loss; the recorder "
            "restarted and continued in a new file)")
    if not chain.entries:
        out.status = LogStatus.FAILED
        out.reasons.append("no seal-log entry chains from the device's anchor; "
                           "completeness cannot be checked")
        return evidence
    out.head_seq = chain.entries[-1].seq
    out.head_digest = chain.entries[-1].digest.hex()
    if chain.breaks:
        out.status = LogStatus.BROKEN
    elif chain.torn is not None:
        out.status = LogStatus.TRUNCATED
        out.reasons.append(
            f"{chain.torn[0]}: last file ends in a record torn at offset {chain.torn[1].offset} "
            "(power loss; the recorder has not restarted since)")
    else:
        out.status = LogStatus.VERIFIED
    _collect(evidence, device_id, ca_cert)
    return evidence


def dock_time(entry: LogEntry, device_id: str, ca_cert: x509.Certificate) -> dt.datetime | None:
    """The dock's time from a ``clock-set`` entry that carries its dock-signed sync
    message (§12) for this device; None for any other entry (never raises)."""
    if entry.event != EV_CLOCK_SET or not isinstance(entry.data.get("sync"), dict):
        return None
    try:
        opened = open_message(entry.data["sync"], ca_cert, CTX_CLOCK_SYNC, "clock sync", at=False)
        if opened.payload.get("device") != device_id:
            return None
        when = dt.datetime.strptime(str(opened.payload.get("dock_utc")), "%Y-%m-%dT%H:%M:%S.%fZ")
        when = when.replace(tzinfo=dt.timezone.utc)
        pki.check_validity(opened.certificate, "dock", when)
    except (BodycamError, ValueError):
        return None
    return when


def _collect(evidence: LogEvidence, device_id: str, ca_cert: x509.Certificate) -> None:
    segs = evidence.segments
    problems = evidence.problems
    last_sealed: str | None = None
    floor: dt.datetime | None = None
    awaiting_ceiling: list[SegmentEvidence] = []
    for entry in evidence.chain.entries:
        typed = entry.typed
        where = f"seal log entry {entry.seq} ({entry.event})"
        synced = dock_time(entry, device_id, ca_cert)
        if synced is not None:
            floor = max(floor, synced) if floor else synced
            for waiting in awaiting_ceiling:
                waiting.time_ceiling = synced
            awaiting_ceiling.clear()
            continue
        if isinstance(typed, SegmentOpenedData):
            if typed.segment_seq != len(segs):
                problems.append(f"{where}: opens segment {typed.segment_seq} where "
                                f"{len(segs)} was next")
                continue
            segs[typed.segment_seq] = SegmentEvidence(entry, last_sealed, time_floor=floor)
            continue
        if not isinstance(typed, (SegmentSealedData, UncleanStopData, ReceiptData, DeletionData)):
            continue
        ev = segs.get(typed.segment_seq)
        if ev is None or typed.segment != ev.name:
            problems.append(f"{where}: names segment {typed.segment_seq} {typed.segment!r}, "
                            "which was never opened")
            continue
        if isinstance(typed, SegmentSealedData):
            if ev.sealed is not None:
                problems.append(f"{where}: segment {typed.segment_seq} sealed twice")
                continue
            ev.sealed = entry
            last_sealed = typed.digest
            awaiting_ceiling.append(ev)
        elif isinstance(typed, UncleanStopData):
            if ev.sealed is not None or ev.unclean is not None:
                problems.append(f"{where}: unclean stop of a segment already sealed or stopped")
                continue
            ev.unclean = entry
        elif isinstance(typed, ReceiptData):
            reason = _receipt_problem(typed, ev, device_id, ca_cert)
            if reason:
                problems.append(f"{where}: {reason}")
                continue
            ev.receipt = entry
        elif isinstance(typed, DeletionData):
            if ev.sealed is None or typed.digest != ev.sealed_digest:
                problems.append(f"{where}: deletes segment {typed.segment_seq} with digest "
                                "other than the sealed one")
                evidence.unproven_deletions[typed.segment_seq] = f"entry {entry.seq}"
            elif ev.receipt is None:
                problems.append(f"{where}: deletion without an archive receipt before it")
                evidence.unproven_deletions[typed.segment_seq] = f"entry {entry.seq}"
            elif ev.deletion is None:
                ev.deletion = entry


def _receipt_problem(
    typed: ReceiptData, ev: SegmentEvidence, device_id: str, ca_cert: x509.Certificate
) -> str | None:
    if ev.sealed is None or typed.digest != ev.sealed_digest:
        return "receipt for a digest other than the segment's sealed digest"
    try:
        opened = open_message(typed.receipt.model_dump(), ca_cert, CTX_RECEIPT, "receipt", at=False)
        stored = dt.datetime.strptime(str(opened.payload.get("stored_utc")), "%Y-%m-%dT%H:%M:%S.%fZ")
        pki.check_validity(opened.certificate, "receipt signer", stored.replace(tzinfo=dt.timezone.utc))
    except BodycamError as exc:
        return f"the receipt it carries is not a valid archive receipt ({exc})"
    except ValueError:
        return "the receipt it carries has no valid stored_utc"
    p = opened.payload
    if hashlib.sha256(opened.raw).hexdigest() != typed.receipt_sha256:
        return "receipt_sha256 differs from the receipt it carries"
    if (p.get("device"), p.get("segment"), p.get("segment_seq"), p.get("segment_digest")) != (
        device_id, typed.segment, typed.segment_seq, typed.digest
    ):
        return "the archive receipt it carries is for another device, segment or digest"
    return None
