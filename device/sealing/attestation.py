"""Archive-signed log-head attestations (docs/format.md §12.1).

An offline check cannot see entries that were cut from the end of a seal log
together with the newest segments: no one outside the recorder saw them.  The
archive closes that gap: at every docking it signs "device D's seal log, as I
received it, reached entry N with digest H".  A court given that attestation
checks with ``bodycam verify --attestation FILE`` that the recording it holds
reaches at least that far and agrees with it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field

from bodycam.errors import FormatError

from .clock import utc_text
from .messages import CTX_ATTESTATION, open_message, sign_message
from .models import DEVICE, HEX32, UTC, parse_payload, _Strict
from .report import RecordingReport
from .safeio import read_bounded
from .seallog import LogEntry

MAX_ATTESTATION_FILE = 128 * 1024


class AttestationPayload(_Strict):
    ctx: Literal["bodycam/v2/log-head-attestation"]
    v: Literal[2]
    archive: Annotated[str, Field(max_length=64)]
    device: Annotated[str, Field(pattern=DEVICE)]
    device_certificate: Annotated[str, Field(pattern=HEX32)]
    head_seq: Annotated[int, Field(ge=0)]
    head_digest: Annotated[str, Field(pattern=HEX32)]
    attested_utc: Annotated[str, Field(pattern=UTC)]


def sign_attestation(
    key: Ed25519PrivateKey, cert: x509.Certificate, *, archive: str, device: str,
    device_certificate: str, head_seq: int, head_digest: str, when: dt.datetime,
) -> dict[str, str]:
    """The archive's signed statement of a device's seal-log head (a §12 message)."""
    payload = {
        "ctx": CTX_ATTESTATION, "archive": archive, "device": device,
        "device_certificate": device_certificate, "head_seq": head_seq,
        "head_digest": head_digest, "attested_utc": utc_text(when),
    }
    parse_payload(AttestationPayload, {"v": 2, **payload}, "attestation")
    return sign_message(key, cert, payload)


@dataclass(frozen=True)
class Attestation:
    payload: AttestationPayload
    signer: str


def load_attestation(path, ca_cert: x509.Certificate) -> Attestation:
    """Read and check an attestation file; FormatError / TrustError / InputError."""
    import json

    data = read_bounded(path, MAX_ATTESTATION_FILE, "attestation")
    try:
        message = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError("not a JSON signed message", str(path)) from None
    opened = open_message(message, ca_cert, CTX_ATTESTATION, str(path), at=False)
    return Attestation(parse_payload(AttestationPayload, opened.payload, str(path)), opened.signer)


def check_attestation(
    attestation: Attestation, report: RecordingReport, entries: list[LogEntry]
) -> None:
    """Compare a recording's seal-log chain with what the archive attested.

    Fills ``report.attestation`` and adds a reason (so the recording fails)
    when the chain stops before the attested head or differs at it.
    """
    p = attestation.payload
    out: dict[str, Any] = {"archive": p.archive, "head_seq": p.head_seq, "head_digest": p.head_digest,
                           "attested_utc": p.attested_utc, "status": "failed", "reasons": []}
    report.attestation = out
    problem = None
    if (p.device, p.device_certificate) != (report.device, report.device_certificate):
        problem = f"attestation is for device {p.device}, certificate {p.device_certificate[:16]}…"
    elif p.head_seq >= len(entries):
        problem = (f"the seal log ends at entry {len(entries) - 1}, but the archive attested entry "
                   f"{p.head_seq} on {p.attested_utc}: entries were cut (and with them, perhaps, segments)")
    elif entries[p.head_seq].digest.hex() != p.head_digest:
        problem = f"seal-log entry {p.head_seq} differs from the one the archive attested (rewritten)"
    if problem:
        out["reasons"].append(problem)
        report.reasons.append(f"attestation: {problem}")
        return
    out["status"] = "matched"


__all__ = ["Attestation", "AttestationPayload", "check_attestation", "load_attestation",
           "sign_attestation"]
