"""Signed messages between archive, dock and recorder (docs/format.md §12).

    {"payload": base64(canonical JSON), "signature": base64(Ed25519), "certificate": PEM}

The signature covers ``ctx || 0x00 || payload`` like every signed record;
the certificate must be issued by the agency CA and carry the role the
context requires, so an archive receipt signed by a dock — or by another
agency's archive — is refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bodycam.errors import FormatError, TrustError

from . import pki
from .format import FORMAT_VERSION, canonical_json, parse_canonical

CTX_RECEIPT = "bodycam/v2/receipt"
CTX_CLOCK_SYNC = "bodycam/v2/clock-sync"
CTX_ASSIGNMENT = "bodycam/v2/assignment"
CTX_ATTESTATION = "bodycam/v2/log-head-attestation"
# The archive's own signed payloads (docs/format.md §19): same envelope, same
# signature rule, signed with the archive-receipt key.
CTX_TOMBSTONE = "bodycam/v2/tombstone"
CTX_DOCUMENT_SEAL = "bodycam/v2/document-seal"
CTX_GRANT_DECISION = "bodycam/v2/grant-decision"
CTX_PACKAGE_ATTESTATION = "bodycam/v2/package-attestation"
CTX_AUDIT_HEAD = "bodycam/v2/audit-head"
# An audit entry is not an envelope (payload and signature are stored apart),
# but it is signed the same way: Ed25519(receipt key, ctx || 0x00 || payload).
CTX_AUDIT = "bodycam/v2/audit"
AUDIT_ANCHOR_PREFIX = b"bodycam/v2/audit-anchor\x00"
ROLE_FOR = {
    CTX_RECEIPT: pki.ROLE_ARCHIVE_RECEIPT,
    CTX_ATTESTATION: pki.ROLE_ARCHIVE_RECEIPT,
    CTX_TOMBSTONE: pki.ROLE_ARCHIVE_RECEIPT,
    CTX_DOCUMENT_SEAL: pki.ROLE_ARCHIVE_RECEIPT,
    CTX_GRANT_DECISION: pki.ROLE_ARCHIVE_RECEIPT,
    CTX_PACKAGE_ATTESTATION: pki.ROLE_ARCHIVE_RECEIPT,
    CTX_AUDIT_HEAD: pki.ROLE_ARCHIVE_RECEIPT,
    CTX_CLOCK_SYNC: pki.ROLE_DOCK,
    CTX_ASSIGNMENT: pki.ROLE_DOCK,
}
MAX_MESSAGE = 64 * 1024


def sign_message(key: Ed25519PrivateKey, cert: x509.Certificate, payload: dict[str, Any]) -> dict[str, str]:
    body = {"v": FORMAT_VERSION, **payload}
    data = canonical_json(body)
    signature = key.sign(body["ctx"].encode() + b"\x00" + data)
    return {
        "payload": base64.b64encode(data).decode(),
        "signature": base64.b64encode(signature).decode(),
        "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }


@dataclass(frozen=True)
class OpenedMessage:
    payload: dict[str, Any]
    signer: str  # CN of the certificate
    certificate: x509.Certificate
    raw: bytes  # the canonical payload


def open_message(
    message: Any, ca_cert: x509.Certificate, ctx: str, where: str,
    at: dt.datetime | None | bool = None,
) -> OpenedMessage:
    """Check a signed message completely; raise TrustError / FormatError naming the fault.

    The signer's certificate is judged at ``at`` (default now; ``False``:
    not judged here, the caller judges it at the message's own time).
    """
    if not isinstance(message, dict) or set(message) != {"payload", "signature", "certificate"}:
        raise FormatError("a signed message has exactly payload, signature and certificate", where)
    try:
        data = base64.b64decode(message["payload"], validate=True)
        signature = base64.b64decode(message["signature"], validate=True)
        if not all(isinstance(message[k], str) for k in ("payload", "signature", "certificate")):
            raise TypeError("not text")
        cert_pem = message["certificate"].encode("utf-8")
    except (binascii.Error, ValueError, TypeError, UnicodeError):
        raise FormatError("signed message fields are not valid base64 / PEM", where) from None
    if len(cert_pem) > MAX_MESSAGE:
        raise FormatError("signed message certificate is too large", where)
    cert = pki.parse_cert(cert_pem, f"{where}: signer", "signer certificate")
    if len(data) > MAX_MESSAGE:
        raise FormatError(f"signed message payload over {MAX_MESSAGE} bytes", where)
    payload = parse_canonical(data, where)
    if payload.get("ctx") != ctx or payload.get("v") != FORMAT_VERSION:
        raise FormatError(f"message context {payload.get('ctx')!r} where {ctx!r} was expected", where)
    pki.check_cert(cert, ca_cert, ROLE_FOR[ctx], f"{where}: signer", at=at)
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise TrustError(f"{where}: signer key is not Ed25519")
    try:
        public.verify(signature, ctx.encode() + b"\x00" + data)
    except InvalidSignature:
        raise TrustError(f"{where}: signature does not verify with the signer's certificate") from None
    return OpenedMessage(payload, pki.cert_id(cert) or "", cert, data)
