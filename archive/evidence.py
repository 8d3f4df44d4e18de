"""The archive's one seam to the evidence format (``device/sealing``).

Every call the archive makes into the verifier and the signed-message
functions goes through this module, so a change of the format's API (the
verifier's typed report, format v2) is a change here and nowhere else.

Shapes returned are the archive's own (:class:`VerifiedRecording`,
:class:`VerifiedSegment`), not the verifier's.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bodycam.errors import FormatError
from device.sealing import pki
from device.sealing.clock import utc_text
from device.sealing.format import FORMAT_VERSION, MAX_RECORD_BODY, RECORD_PREFIX, canonical_json, log_anchor
from device.sealing.messages import (AUDIT_ANCHOR_PREFIX, CTX_AUDIT, CTX_AUDIT_HEAD, CTX_DOCUMENT_SEAL,
                                     CTX_GRANT_DECISION, CTX_PACKAGE_ATTESTATION, CTX_RECEIPT, CTX_TOMBSTONE,
                                     sign_message)
from device.sealing.attestation import sign_attestation
from device.sealing.sealer import MANIFEST_SUFFIX, NO_OFFICER, SEGMENT_NAME_RE, SEGMENT_SUFFIX, SEGMENTS_DIR
from device.sealing.safeio import read_bounded
from device.sealing.seallog import LOG_DIR, LOG_FILE_RE, MAX_LOG_FILE, read_chain
from device.sealing.unseal import decrypt_fragments
from device.sealing.report import SegmentStatus
from device.sealing.verifier import Verifier
from device.sealing.verify_log import LogEvidence

# Contexts of the archive's own signed records (format.md §19) are the
# format's (device/sealing/messages.py): same envelope and signature rule as
# §12 messages, "v": 2, signer role archive-receipt.

IDENTITY_DIR = pki.IDENTITY_DIR
DEVICE_CERT = pki.DEVICE_CERT
__all__ = ["CTX_RECEIPT", "CTX_TOMBSTONE", "CTX_DOCUMENT_SEAL", "CTX_GRANT_DECISION", "CTX_PACKAGE_ATTESTATION",
           "CTX_AUDIT", "CTX_AUDIT_HEAD", "AUDIT_ANCHOR_PREFIX", "FORMAT_VERSION", "canonical_json",
           "LOG_DIR", "LOG_FILE_RE", "SEGMENTS_DIR",
           "SEGMENT_SUFFIX", "MANIFEST_SUFFIX", "SEGMENT_NAME_RE", "IDENTITY_DIR", "DEVICE_CERT",
           "verify_recording", "read_seal_log", "ChainedEntry", "sign_record", "utc_text", "now_utc"]


@dataclass(frozen=True)
class VerifiedSegment:
    name: str
    seq: int
    digest: str  # segment digest (format §2.2), hex
    media: str
    officer: str | None
    opened_utc: str
    closed_utc: str | None
    status: str  # manifest status
    events: list[dict[str, Any]]
    marks: list[str]


@dataclass
class VerifiedRecording:
    """What the archive needs from a verified recording folder."""

    device: str
    log_ok: bool
    log_reasons: list[str]
    head_seq: int | None
    head_digest: str | None
    segments: dict[str, VerifiedSegment] = field(default_factory=dict)  # receiptable only, by name
    refused: dict[str, str] = field(default_factory=dict)  # name -> why not receiptable
    device_certificate: str | None = None  # SHA-256 fingerprint of identity/device.crt (hex)
    log_events: list["LogEvent"] = field(default_factory=list)  # OVERSIGHT_EVENTS on the chain, in order
    gone: list["GoneSegment"] = field(default_factory=list)  # logged segments no longer in the folder
    present: set[int] = field(default_factory=set)  # segment_seq of logged segments the folder holds


# Seal-log kinds the oversight pages read (format §5.1): who had the recorder
# (assignment), when it recorded, what the officer flagged, and what was lost.
OVERSIGHT_EVENTS = frozenset({"assignment", "record-start", "record-stop", "notify", "mark", "segment-lost",
                              "unclean-stop", "deletion", "boot", "shutdown"})


@dataclass(frozen=True)
class LogEvent:
    """One seal-log entry of an ``OVERSIGHT_EVENTS`` kind, with the officer the
    recorder was assigned to when it was written (the data of the latest
    ``assignment`` entry before it on the chain; None before the first)."""

    seq: int
    utc: str
    event: str
    officer: str | None
    segment: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class GoneSegment:
    """A segment the seal log names that the folder no longer holds, with
    what the log proves about its going (format §7.2, §7.3):

    ``how`` is ``receipt`` (a valid archive receipt is logged for its sealed
    digest; deleted or lost after it), ``deletion-without-receipt`` (a device-
    signed deletion with no valid receipt before it), ``gone-without-deletion``
    (sealed, then gone with no deletion logged), ``lost`` (never sealed; the
    recorder logged it lost or stopped uncleanly), ``gone-unsealed`` (never
    sealed, nothing logged, and the recorder has restarted since it opened)
    or ``open`` (never sealed and no restart since: still being recorded)."""

    seq: int
    name: str
    opened_utc: str  # the signed time of its segment-opened entry
    digest: str | None  # the sealed digest, if it was sealed
    how: str
    officer: str | None  # the officer in its name, else as LogEvent.officer at its opening
    receipt_archive: str | None = None  # the receipt signer, when how == "receipt"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def verify_recording(ca_cert: x509.Certificate, recording: Path, held: set[str] | None = None
                     ) -> VerifiedRecording:
    """Verify a recording folder at ciphertext level (no decryption key).

    ``held``: the names of the segments the recorder still holds (its listing
    at this docking), when the folder carries only some of them (a dock's
    batch, segments that failed verification); None when the folder is the
    recorder's whole content.  Custody (``gone``/``present``) is judged
    against it.  Raises nothing for bad footage: problems are in
    ``log_ok``/``refused``.
    """
    report, good, evidence = Verifier(ca_cert).inspect_recording(recording)
    log = report.seal_log
    out = VerifiedRecording(device=report.device or "", log_ok=log.usable,
                            log_reasons=list(log.reasons) + list(report.reasons),
                            head_seq=log.head_seq, head_digest=log.head_digest,
                            device_certificate=report.device_certificate)
    by_name = {g.report.name: g for g in good}
    for seg in report.segments:
        g = by_name.get(seg.name)
        if not seg.acceptable(allow_incomplete=True) or g is None or g.manifest is None or seg.digest is None:
            out.refused[seg.name] = f"{seg.status}: {'; '.join(seg.reasons)}"
            continue
        m = g.manifest.signed.obj
        meta = m.get("meta") if isinstance(m.get("meta"), dict) else {}
        events = [e for e in meta.get("events", []) if isinstance(e, dict)]
        marks = [str(e.get("kind")) for e in events if e.get("event") == "mark"]
        out.segments[seg.name] = VerifiedSegment(
            name=seg.name, seq=int(m["segment_seq"]), digest=seg.digest, media=str(m["media"]),
            officer=m.get("officer"), opened_utc=str(m["opened_utc"]), closed_utc=m.get("closed_utc"),
            status=str(m["status"]), events=events, marks=marks)
    if evidence is not None:
        gone = {s.seq for s in report.segments if s.seq is not None and (
            s.name not in held if held is not None else s.status in (SegmentStatus.MISSING, SegmentStatus.DELETED))}
        out.log_events, out.gone = _custody(evidence, gone)
        out.present = {s.seq for s in report.segments if s.seq is not None and s.seq not in gone}
    return out


def _custody(evidence: LogEvidence, gone: set[int]) -> tuple[list[LogEvent], list[GoneSegment]]:
    """The oversight events on the chain and the story of each gone segment."""
    events: list[LogEvent] = []
    officer: str | None = None
    officer_at_open: dict[int, str | None] = {}
    lost: set[int] = set()
    boots: list[int] = []  # seqs of boot entries
    for entry in evidence.chain.entries:
        data = entry.data if isinstance(entry.data, dict) else {}
        if entry.event == "assignment" and isinstance(data.get("officer"), str):
            officer = data["officer"]
        elif entry.event == "segment-opened" and isinstance(data.get("segment_seq"), int):
            officer_at_open[data["segment_seq"]] = officer
        if entry.event in ("segment-lost", "unclean-stop") and isinstance(data.get("segment_seq"), int):
            lost.add(data["segment_seq"])
        if entry.event == "boot":
            boots.append(entry.seq)
        if entry.event in OVERSIGHT_EVENTS:
            segment = data.get("segment")
            events.append(LogEvent(entry.seq, str(entry.obj.get("utc", "")), entry.event, officer,
                                   segment if isinstance(segment, str) else None, data))
    out = []
    for seq in sorted(gone):
        seg = evidence.segments.get(seq)
        if seg is None:
            continue
        receipt_archive = None
        if seg.receipt is not None:
            how = "receipt"
            receipt_archive = str(seg.receipt.data.get("archive"))
        elif seg.sealed is not None:
            how = "deletion-without-receipt" if seq in evidence.unproven_deletions else "gone-without-deletion"
        elif seq in lost:
            how = "lost"
        elif any(b > seg.opened.seq for b in boots):
            how = "gone-unsealed"
        else:
            how = "open"
        named = seg.name.split("_")[1]  # the officer the recorder stamped into the name (format §3.1)
        officer = named if named != NO_OFFICER else officer_at_open.get(seq)
        out.append(GoneSegment(seq, seg.name, str(seg.opened.obj.get("utc", "")), seg.sealed_digest, how,
                               officer, receipt_archive))
    return events, out


@dataclass(frozen=True)
class ChainedEntry:
    """One seal-log entry on the chain (format §5.2): its payload, digest and record bytes."""

    payload: dict[str, Any]
    digest: str  # leaf digest, hex
    record: bytes  # type || length || body (the leaf preimage is 0x00 || record)


def read_seal_log(recording: Path) -> list[ChainedEntry]:
    """The entries of a recording folder's seal log that chain from the device's
    anchor (the format's one reading rule, ``read_chain``), oldest first.

    The device certificate is the folder's ``identity/device.crt`` (the caller
    verified the folder or took it from the archive's store).  Raises
    InputError / FormatError when the certificate or a log file cannot be read.
    """
    cert = pki.load_cert(recording / IDENTITY_DIR / DEVICE_CERT, "device certificate")
    public = cert.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    chain = read_chain(recording / LOG_DIR, public, pki.cert_id(cert) or "", log_anchor(raw))
    files: dict[str, bytes] = {}
    out = []
    for entry in chain.entries:
        data = files.get(entry.file)
        if data is None:
            data = files[entry.file] = read_bounded(recording / LOG_DIR / entry.file, MAX_LOG_FILE, "seal-log file")
        _rtype, length = RECORD_PREFIX.unpack_from(data, entry.offset)
        if length > MAX_RECORD_BODY:  # read_chain already refused it; kept total
            break
        out.append(ChainedEntry(entry.obj, entry.digest.hex(),
                                bytes(data[entry.offset:entry.offset + RECORD_PREFIX.size + length])))
    return out


def write_excerpt_index(recording: Path, device: str, names: list[str], created_utc: str, purpose: str) -> None:
    """Write ``excerpt.json`` (format §10.1) into a folder holding the device's
    whole stored seal log and only the segments ``names``; its head is the
    last entry on the chain.  FormatError if the log has no entry on its chain."""
    entries = read_seal_log(recording)
    if not entries:
        raise FormatError(f"{recording}: the seal log has no entry on its chain; no excerpt can be made")
    index = {"format": "bodycam-excerpt/2", "device": device, "segments": names,
             "head_seq": entries[-1].payload["seq"], "head_digest": entries[-1].digest,
             "created_utc": created_utc, "purpose": purpose}
    (recording / "excerpt.json").write_text(json.dumps(index, ensure_ascii=False, indent=1) + "\n", "utf-8")


def sign_record(key: Ed25519PrivateKey, cert: x509.Certificate, payload: dict[str, Any]) -> dict[str, str]:
    """Sign a receipt, tombstone or document seal (format §12 envelope)."""
    return sign_message(key, cert, payload)


def sign_log_head(key: Ed25519PrivateKey, cert: x509.Certificate, archive: str, rec: "VerifiedRecording",
                  when: dt.datetime) -> str | None:
    """The archive's log-head attestation (format §12.1) of the seal log it
    received in ``rec``, as JSON text of the signed message; None when the log
    has no head or no device certificate (nothing to attest)."""
    if rec.head_seq is None or not rec.head_digest or not rec.device_certificate or not rec.device:
        return None
    return json.dumps(sign_attestation(key, cert, archive=archive, device=rec.device,
                                       device_certificate=rec.device_certificate, head_seq=rec.head_seq,
                                       head_digest=rec.head_digest, when=when), indent=1)


def check_dock_certificate(cert: x509.Certificate, ca_cert: x509.Certificate) -> str:
    """The dock ID if ``cert`` is a dock certificate of this CA; TrustError otherwise."""
    pki.check_cert(cert, ca_cert, pki.ROLE_DOCK, "client certificate")
    return pki.cert_id(cert) or ""


def check_receipt_certificate(cert: x509.Certificate, ca_cert: x509.Certificate, where: str) -> str:
    pki.check_cert(cert, ca_cert, pki.ROLE_ARCHIVE_RECEIPT, where)
    return pki.cert_id(cert) or ""


load_cert = pki.load_cert
load_ed25519_key = pki.load_ed25519_key
fingerprint = pki.fingerprint


@dataclass
class DecryptedSegment:
    """A verified segment's plaintext (lawful use: archive/access.py), decrypted in this process."""

    name: str
    digest: str
    status: str
    media: str
    data: bytes
    manifest: dict[str, Any]
    header: dict[str, Any]  # without wrapped_key


def decrypt_recording(ca_cert: x509.Certificate, recipient_key: Path, recording: Path,
                      wanted: set[str]) -> dict[str, DecryptedSegment]:
    """Verify a recording folder and decrypt the segments whose digest is in
    ``wanted`` (every fragment's plaintext hash checked); by digest.  Segments
    that do not verify are left out (the caller names them)."""
    identity = pki.load_x25519_key(recipient_key, "archive recipient key")
    verifier = Verifier(ca_cert, identity)
    _report, good = verifier.verify_recording(recording)
    out = {}
    for seg in good:
        if (seg.report.digest not in wanted or not seg.report.acceptable(allow_incomplete=True)
                or seg.manifest is None):
            continue
        header = {k: v for k, v in seg.scan.header.obj.items() if k != "wrapped_key"}
        out[seg.report.digest] = DecryptedSegment(
            seg.report.name, seg.report.digest, str(seg.report.status), str(header["media"]),
            b"".join(decrypt_fragments(identity, seg.scan, seg.covered)), seg.manifest.signed.obj, header)
    return out
