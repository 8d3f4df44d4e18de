#!/usr/bin/env python3
"""Standalone verifier of a bodycam evidence package (package format
``bodycam-package/1`` around evidence format v2, docs/format.md).

One file; it needs Python 3.11+ and the ``cryptography`` package, nothing
else (``pip install cryptography``).  Run it from the package folder::

    python3 verify_package.py .                # trust anchor: trust/ca.crt in the package
    python3 verify_package.py . --ca ca.crt    # a CA certificate obtained from the agency itself
    python3 verify_package.py --recording DIR --ca ca.crt [--crl crl.pem]   # one recording folder (§7)
    python3 verify_package.py --audit audit.jsonl --ca ca.crt

It is a second implementation of docs/format.md v2, written from the
document: RFC 8785 canonical JSON within the format's profile (§2.1), the
seal log's good prefix (§5.2), certificates judged at the signed time with
CRL revocation and dock bounds (§7.1), receipts before deletions (§7.2),
segment checks and statuses (§7.3–§7.5) and excerpts (§10.1).

What a pass proves: every file in the package is the one the archive listed
and signed (attestation); the archive's signing certificate and every
recorder's certificate were issued by the trust anchor; each segment's
header, checkpoints and manifest were signed by the recorder's key at a time
its certificate was valid, its fragments chain to its signed manifest, and
its place in the recorder's hash-chained seal log is where the log says; the
playable media file's bytes are exactly the plaintext whose SHA-256 the
recorder signed, fragment by fragment; the audit entries were signed by the
archive and chain as stated.  What it does not prove: that the trust anchor
is the agency's (compare its fingerprint with the one the agency publishes,
or use ``--ca``); that the recorder's clock was right (see the clock state
and the dock's clock-sync entries); that the seal log shown is the device's
whole log beyond the archive's log-head attestation in the package (§12.1: a log
cut below it fails; entries after it were not yet received); what
happened outside the picture; anything about the watermarked viewing copies
(they are re-encoded for viewing and are not evidence).

Exit status: 0 verified, 1 not verified, 2 unreadable input.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import json
import mmap
import os
import re
import stat
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

PACKAGE_FORMAT = "bodycam-package/1"
AUDIT_FORMAT = "bodycam-audit/1"
EXCERPT_FORMAT = "bodycam-excerpt/2"
FORMAT_VERSION = 2
# Contexts (docs/format.md §2.1, §12, §12.1 and §19, the archive's own payloads).
AUDIT_CTX = "bodycam/v2/audit"
AUDIT_HEAD_CTX = "bodycam/v2/audit-head"
ATTESTATION_CTX = "bodycam/v2/package-attestation"
RECEIPT_CTX = "bodycam/v2/receipt"
CLOCK_SYNC_CTX = "bodycam/v2/clock-sync"
LOG_HEAD_CTX = "bodycam/v2/log-head-attestation"
MAGIC_SEGMENT = b"BCSEG\x00\x02\n"
MAGIC_MANIFEST = b"BCMAN\x00\x02\n"
MAGIC_LOG = b"BCLOG\x00\x02\n"
REC_H, REC_F, REC_C, REC_M, REC_L = 0x48, 0x46, 0x43, 0x4D, 0x4C
CTX = {REC_H: "bodycam/v2/segment-header", REC_C: "bodycam/v2/checkpoint", REC_M: "bodycam/v2/manifest",
       REC_L: "bodycam/v2/seal-log"}
# Limits (docs/format.md §2 "Limits").
MAX_BODY = 64 * 1024 * 1024
MAX_PAYLOAD = 1024 * 1024
MAX_DEPTH = 16
MAX_SAFE_INTEGER = 2**53 - 1
MAX_SEGMENT_FILE = 64 * 1024**3
MAX_MANIFEST_FILE = 8 + 5 + 4 + MAX_PAYLOAD + 64
MAX_LOG_FILE = 1024**3
MAX_CERT_FILE = 64 * 1024
MAX_CRL_FILE = 16 * 1024 * 1024
MAX_EXCERPT_FILE = 4 * 1024 * 1024
MAX_MESSAGE = 65536
SAME_AS_HEADER = ("device", "segment_seq", "segment", "media", "officer", "opened_utc", "opened_local", "timezone",
                  "clock_state", "prev_segment")
LOG_NAME = re.compile(r"[0-9]{12}-[0-9a-f]{16}\.log", re.ASCII)
# Files of a package that the manifest does not list (they hold or sign the list).
UNLISTED = ("manifest.json", "attestation.json")


class Unreadable(Exception):
    """Input that cannot be read at all (exit 2)."""


class Malformed(ValueError):
    """A payload or record outside the format (§2.1, §3–§5)."""


# -- canonical JSON: RFC 8785 (JCS) within the profile of docs/format.md §2.1 ----------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _jcs_string(text: str) -> str:
    """RFC 8785 §3.2.2.2: only ``"``, ``\\`` and control characters are escaped
    (the short forms where JSON has them, else ``\\u00xx`` in lower case)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed("a string holds a lone surrogate (no UTF-8 form)") from None
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _jcs(value: Any, depth: int, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise Malformed("integer outside ±(2^53−1)")
        out.append(str(value))
    elif isinstance(value, float):
        raise Malformed("floating-point numbers are not allowed")
    elif isinstance(value, str):
        out.append(_jcs_string(value))
    elif isinstance(value, (list, dict)):
        if depth > MAX_DEPTH:
            raise Malformed(f"nesting deeper than {MAX_DEPTH}")
        if isinstance(value, list):
            out.append("[")
            for i, item in enumerate(value):
                if i:
                    out.append(",")
                _jcs(item, depth + 1, out)
            out.append("]")
        else:
            if not all(isinstance(k, str) for k in value):
                raise Malformed("object keys must be strings")
            out.append("{")
            # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
            for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))):
                if i:
                    out.append(",")
                out.append(_jcs_string(key))
                out.append(":")
                _jcs(value[key], depth + 1, out)
            out.append("}")
    else:
        raise Malformed(f"unsupported type {type(value).__name__}")


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical form of ``obj`` (objects, arrays, strings, integers
    within ±(2^53−1), booleans, null; nesting ≤ 16); Malformed otherwise."""
    out: list[str] = []
    _jcs(obj, 1, out)
    return "".join(out).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise Malformed("duplicate key")
    return obj


def _bounded_int(text: str) -> int:
    if len(text) > 17:
        raise Malformed("integer outside ±(2^53−1)")
    return int(text)


def _refuse(what: str) -> Any:
    raise Malformed(f"{what} is not allowed")


def parse_canonical(data: bytes) -> dict[str, Any]:
    """The object whose RFC 8785 form is exactly ``data``; Malformed otherwise."""
    try:
        obj = json.loads(bytes(data).decode("utf-8"), object_pairs_hook=_no_duplicates, parse_int=_bounded_int,
                         parse_float=lambda t: _refuse("a fraction or exponent"), parse_constant=_refuse)
    except Malformed:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Malformed(f"not JSON ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise Malformed("not a JSON object")
    if canonical_json(obj) != bytes(data):
        raise Malformed("not in canonical form (RFC 8785)")
    return obj


# -- field formats (§2.1 "Field formats", §3–§5) ------------------------------------------------

Check = Callable[[Any], bool]


def _re(pattern: str) -> Check:
    rx = re.compile(pattern, re.ASCII)
    return lambda v: isinstance(v, str) and rx.fullmatch(v) is not None


def _int(lo: int = 0, hi: int = MAX_SAFE_INTEGER) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _one_of(*values: Any) -> Check:
    return lambda v: isinstance(v, str) and v in values


def _or_null(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _text(limit: int) -> Check:
    return lambda v: isinstance(v, str) and len(v) <= limit


HEX32 = _re(r"[0-9a-f]{64}")
UTC = _re(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
LOCAL = _re(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}")
RUN = _re(r"[0-9a-f]{16}")
DEC = _re(r"-?(0|[1-9][0-9]{0,18})")
DEVICE_ID = _re(r"[A-Z0-9]{7}")
OFFICER_ID = _re(r"[A-Z0-9]{6,12}")
SEGMENT = _re(r"[A-Z0-9]{7}_[A-Z0-9]{6,12}_[0-9]{14}_[0-9]{4,}")
EVENT = _re(r"[a-z][a-z0-9-]{0,31}")
ZONE = _re(r"[A-Za-z0-9_+-]{1,64}(/[A-Za-z0-9_+-]+){0,2}")
MEDIA = _one_of("video/mp4", "audio/mp4", "image/jpeg", "application/octet-stream")
COUNT = _int()
OBJECT: Check = lambda v: isinstance(v, dict)  # noqa: E731
BOOL: Check = lambda v: isinstance(v, bool)  # noqa: E731
STR: Check = lambda v: isinstance(v, str)  # noqa: E731


def _version(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v == FORMAT_VERSION


HEADER = {"ctx": STR, "v": _version, "device": DEVICE_ID, "segment_seq": COUNT, "segment": SEGMENT, "media": MEDIA,
          "officer": _or_null(OFFICER_ID), "opened_utc": UTC, "opened_local": LOCAL, "opened_mono_ns": DEC,
          "timezone": ZONE, "clock_state": _one_of("synced", "rtc", "untrusted"), "prev_segment": _or_null(HEX32),
          "recipient": HEX32, "hpke_suite": _one_of("DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305"),
          "wrapped_key": _re(r"[0-9a-f]{160}"), "aead": _one_of("ChaCha20-Poly1305"),
          "checkpoint_interval_ms": _int(0, 10_000), "run": RUN, "meta": OBJECT}
CHECKPOINT = {"ctx": STR, "v": _version, "device": DEVICE_ID, "segment_seq": COUNT, "fragments": _int(1),
              "chain": HEX32, "utc": UTC, "mono_ns": DEC}
FRAGMENT_ENTRY = {"i": COUNT, "bytes": COUNT, "sha256": HEX32}
TRUNCATION = {"reason": _one_of("unclean-stop"), "after_fragment": COUNT, "covered_bytes": COUNT,
              "uncovered_bytes": COUNT, "uncovered_sha256": HEX32, "recovered_utc": UTC, "recovered_run": RUN}
MANIFEST = {"ctx": STR, "v": _version, "device": DEVICE_ID, "segment_seq": COUNT, "segment": SEGMENT, "media": MEDIA,
            "officer": _or_null(OFFICER_ID), "opened_utc": UTC, "opened_local": LOCAL, "closed_utc": UTC,
            "closed_local": LOCAL, "timezone": ZONE, "clock_state": _one_of("synced", "rtc", "untrusted"),
            "prev_segment": _or_null(HEX32), "header_digest": HEX32, "chain": HEX32, "fragment_count": COUNT,
            "fragments": lambda v: isinstance(v, list), "file_bytes": COUNT,
            "status": _one_of("complete", "truncated"), "truncated": lambda v: v is None or isinstance(v, dict),
            "meta": OBJECT}
LOG_ENTRY = {"ctx": STR, "v": _version, "device": DEVICE_ID, "seq": COUNT, "prev": HEX32, "utc": UTC, "mono_ns": DEC,
             "run": RUN, "event": EVENT, "data": OBJECT}
MESSAGE = {"payload": _text(128 * 1024), "signature": _text(128), "certificate": _text(16 * 1024)}
EVENT_DATA = {  # §5.1: the kinds the verifier interprets
    "segment-opened": {"segment_seq": COUNT, "segment": SEGMENT, "header_digest": HEX32, "media": MEDIA},
    "segment-sealed": {"segment_seq": COUNT, "segment": SEGMENT, "digest": HEX32,
                       "status": _one_of("complete", "truncated"), "fragments": COUNT, "recovered": BOOL},
    "unclean-stop": {"segment_seq": COUNT, "segment": SEGMENT, "after_fragment": COUNT, "uncovered_bytes": COUNT},
    "receipt": {"segment_seq": COUNT, "segment": SEGMENT, "digest": HEX32, "archive": _text(64),
                "retain_until": _or_null(STR), "receipt_sha256": HEX32, "receipt": OBJECT},
    "deletion": {"segment_seq": COUNT, "segment": SEGMENT, "digest": HEX32, "reason": _text(200)},
}
OPTIONAL = {"segment-sealed": {"recovered"}}
LOG_HEAD = {"ctx": STR, "v": _version, "archive": _text(64), "device": DEVICE_ID, "device_certificate": HEX32,
            "head_seq": COUNT, "head_digest": HEX32, "attested_utc": UTC}  # §12.1


def check_fields(obj: Any, schema: dict[str, Check], what: str, optional: set[str] | frozenset = frozenset()) -> None:
    """Exactly the fields of ``schema`` (those in ``optional`` may be absent), each
    of its format; Malformed naming the first that is not."""
    if not isinstance(obj, dict):
        raise Malformed(f"{what} is not an object")
    for name in obj:
        if name not in schema:
            raise Malformed(f"{what}: field {name!r} is not in the format")
    for name, check in schema.items():
        if name not in obj:
            if name in optional:
                continue
            raise Malformed(f"{what}: field {name!r} is missing")
        if not check(obj[name]):
            raise Malformed(f"{what}: field {name!r} has the wrong type or form")


def check_manifest(m: dict[str, Any]) -> None:
    check_fields(m, MANIFEST, "manifest")
    for n, entry in enumerate(m["fragments"]):
        check_fields(entry, FRAGMENT_ENTRY, f"manifest fragments[{n}]")
        if entry["i"] != n:
            raise Malformed(f"manifest fragments[{n}] has i={entry['i']}")
    if m["fragment_count"] != len(m["fragments"]):
        raise Malformed("manifest fragment_count differs from the length of fragments")
    if (m["status"] == "complete") != (m["truncated"] is None):
        raise Malformed("manifest: truncated must be null exactly when status is complete")
    if m["truncated"] is not None:
        t = m["truncated"]
        check_fields(t, TRUNCATION, "manifest truncated")
        if t["after_fragment"] != m["fragment_count"] or t["covered_bytes"] + t["uncovered_bytes"] != m["file_bytes"]:
            raise Malformed("manifest truncation record disagrees with fragment_count or file_bytes")


def _utc(text: str) -> dt.datetime:
    """UTC text (§0) as an aware datetime; Malformed for an impossible date."""
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        raise Malformed(f"{text!r} is not UTC text") from None


# -- hashes (§2.2) -------------------------------------------------------------------------------


def _leaf(raw: bytes | memoryview) -> bytes:
    """Digest of a whole record (type || length || body)."""
    h = hashlib.sha256(b"\x00")
    h.update(raw)
    return h.digest()


def _link(prev: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + prev + leaf).digest()


def _log_anchor(public_raw: bytes) -> bytes:
    return hashlib.sha256(b"\x02bodycam/v2/seal-log-anchor\x00" + public_raw).digest()


# -- certificates (§1, §7.1) ---------------------------------------------------------------------


def _attr(name: x509.Name, oid) -> str | None:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_ca(ca: x509.Certificate) -> None:
    if _attr(ca.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) != "agency-ca":
        raise ValueError("trust anchor is not an agency CA certificate (OU must be agency-ca)")
    ca.verify_directly_issued_by(ca)


def check_cert(cert: x509.Certificate, ca: x509.Certificate, role: str, at: dt.datetime | None = None) -> str:
    """The certificate's ID (CN) if the CA issued it as an end-entity certificate
    for ``role`` (and it was valid ``at``); ValueError naming the fault otherwise."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ValueError(f"certificate {_attr(cert.subject, NameOID.COMMON_NAME)!r} was not issued by the "
                         f"trust anchor {fingerprint(ca)[:16]}") from None
    got = _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if got != role:
        raise ValueError(f"certificate role is {got!r}, expected {role!r}")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        raise ValueError("certificate lacks basicConstraints or keyUsage (an end-entity certificate has both)") \
            from None
    if bc.ca or ku.key_cert_sign or ku.crl_sign:
        raise ValueError("certificate may issue certificates or CRLs (CA:TRUE or keyCertSign/cRLSign); "
                         "not an end-entity certificate")
    if at is not None and not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise ValueError(f"certificate not valid at {at:%Y-%m-%d %H:%M:%S}Z")
    return _attr(cert.subject, NameOID.COMMON_NAME) or ""


def open_envelope(envelope: Any, ca: x509.Certificate, ctx: str, role: str,
                  at: Callable[[dict[str, Any]], dt.datetime] | None = None) -> tuple[dict[str, Any], str]:
    """docs/format.md §12 signed message: (payload, signer ID); ValueError says why not.

    ``at(payload)`` gives the time the signer's certificate is judged at (a
    receipt: its ``stored_utc``); by default validity is not judged here.
    """
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "signature", "certificate"} \
            or not all(isinstance(v, str) for v in envelope.values()):
        raise ValueError("not a signed message {payload, signature, certificate}")
    try:
        data = base64.b64decode(envelope["payload"], validate=True)
        signature = base64.b64decode(envelope["signature"], validate=True)
        if len(envelope["certificate"]) > MAX_MESSAGE:
            raise ValueError("certificate too large")
        cert = x509.load_pem_x509_certificate(envelope["certificate"].encode())
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise ValueError(f"signed message fields are not base64 / PEM ({exc})") from None
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"signed message payload over {MAX_MESSAGE} bytes")
    payload = parse_canonical(data)
    if payload.get("ctx") != ctx or not _version(payload.get("v")):
        raise ValueError(f"context is {payload.get('ctx')!r} v {payload.get('v')!r}, expected {ctx!r} v 2")
    when = at(payload) if at is not None else None
    signer = check_cert(cert, ca, role, when)
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("signer key is not Ed25519")
    try:
        public.verify(signature, ctx.encode() + b"\x00" + data)
    except InvalidSignature:
        raise ValueError("signature does not verify") from None
    return payload, signer


def load_crl(data: bytes, ca: x509.Certificate) -> x509.CertificateRevocationList:
    """A CRL signed by the trust anchor (§1 Revocation); ValueError otherwise."""
    crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_crl(data)
    if crl.issuer != ca.subject or not crl.is_signature_valid(ca.public_key()):
        raise ValueError("CRL is not signed by the trust anchor")
    return crl


# -- safe reading (§2 "Hostile folders") --------------------------------------------------------


def _kind(path: Path) -> str | None:
    """None for a regular file, else what it is (never follows a link)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISREG(mode):
        return None
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device")


def read_regular(path: Path, limit: int, what: str) -> bytes | memoryview:
    """The bytes of a regular file (mmap when large); ValueError for anything
    else (link, FIFO, device, folder, over ``limit``) before a byte is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        raise ValueError(f"{path}: cannot open {what}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: {what} is not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{path}: {what} is {st.st_size} bytes; the limit is {limit}")
        if st.st_size == 0:
            return b""
        if st.st_size > (1 << 24):
            return memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


# -- records (§2) --------------------------------------------------------------------------------


@dataclass
class Record:
    rtype: int
    raw: memoryview  # type || length || body, a view into the file (never copied whole)
    offset: int
    end: int

    @property
    def body(self) -> memoryview:
        return self.raw[5:]


@dataclass
class Records:
    records: list[Record]
    torn: bool = False  # ends inside a record (or the magic)
    corrupt: str | None = None  # why the walk stopped early (unknown type, oversize length)


def read_records(data: bytes | memoryview, magic: bytes, allowed: tuple[int, ...], where: str) -> Records:
    """Walk ``magic record*``; ValueError on bad magic, else the records up to a
    torn tail or the first corrupt record (§2)."""
    if len(data) < 8:
        if bytes(data) == magic[:len(data)]:
            return Records([], torn=True)
        raise ValueError(f"{where}: bad magic")
    if bytes(data[:8]) != magic:
        raise ValueError(f"{where}: bad magic")
    view = memoryview(data)
    out, pos, size = [], 8, len(view)
    while pos < size:
        if size - pos < 5:
            return Records(out, torn=True)
        rtype, length = struct.unpack_from(">BI", data, pos)
        if rtype not in allowed or length > MAX_BODY:
            return Records(out, corrupt=f"{where}: corrupt record at byte {pos}")
        if pos + 5 + length > size:
            return Records(out, torn=True)
        out.append(Record(rtype, view[pos:pos + 5 + length], pos, pos + 5 + length))
        pos += 5 + length
    return Records(out)


def open_signed(record: Record, schema: dict[str, Check], where: str) -> tuple[dict[str, Any], bytes, bytes]:
    """(payload object, payload bytes, signature) of a signed body whose payload
    is canonical, of its record's context, v 2 and the fields of ``schema``."""
    body = record.body
    if len(body) < 4 + 64:
        raise Malformed(f"{where}: signed record too short")
    n = struct.unpack_from(">I", body)[0]
    if n > MAX_PAYLOAD or 4 + n + 64 != len(body):
        raise Malformed(f"{where}: bad payload length")
    payload, signature = bytes(body[4:4 + n]), bytes(body[4 + n:])
    try:
        obj = parse_canonical(payload)
    except Malformed as exc:
        raise Malformed(f"{where}: {exc}") from None
    ctx = CTX[record.rtype]
    if obj.get("ctx") != ctx or not _version(obj.get("v")):
        raise Malformed(f"{where}: context {obj.get('ctx')!r} v {obj.get('v')!r}, expected {ctx!r} v 2")
    try:
        check_fields(obj, schema, where)
    except Malformed as exc:
        raise Malformed(str(exc)) from None
    return obj, payload, signature


def _signature_ok(key: Ed25519PublicKey, obj: dict[str, Any], payload: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, obj["ctx"].encode() + b"\x00" + payload)
        return True
    except InvalidSignature:
        return False


# -- results ----------------------------------------------------------------------------------


@dataclass
class Result:
    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ok(self, what: str) -> None:
        self.checked.append(what)

    def fail(self, what: str) -> None:
        self.failures.append(what)

    @property
    def passed(self) -> bool:
        return not self.failures and bool(self.checked)


def audit_anchor(agency: str) -> str:
    """prev of an agency's first audit entry (format §19)."""
    return hashlib.sha256(b"bodycam/v2/audit-anchor\x00" + agency.encode()).hexdigest()


# -- the seal log (§5.2, §7.2) -------------------------------------------------------------------


@dataclass
class SealLog:
    """The chain (good prefix) and what its entries say about segments."""

    status: str = "failed"  # verified | truncated | broken | failed
    entries: list[dict[str, Any]] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    breaks: list[str] = field(default_factory=list)
    torn_older: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # segment_seq -> {"name", "opened", "opened_index", "prev", "sealed", "sealed_index", "unclean",
    #                 "receipt", "deletion"}
    segments: dict[int, dict[str, Any]] = field(default_factory=dict)
    syncs: list[tuple[int, dt.datetime]] = field(default_factory=list)  # (entry index, dock_utc) §7.1.4

    # the older interface of this module (segment_seq -> data)
    @property
    def opened(self) -> dict[int, dict[str, Any]]:
        return {k: {**s["opened"]["data"], "expected_prev": s["prev"]} for k, s in self.segments.items()}

    @property
    def sealed(self) -> dict[int, dict[str, Any]]:
        return {k: s["sealed"]["data"] for k, s in self.segments.items() if s.get("sealed")}

    @property
    def unclean(self) -> dict[int, dict[str, Any]]:
        return {k: s["unclean"]["data"] for k, s in self.segments.items() if s.get("unclean")}


def walk_log(folder: Path, device: str, key: Ed25519PublicKey) -> SealLog:
    """The chain as §5.2 defines it: files in name order, each continuing the
    chain or skipped whole; inside a file the first bad entry ends it."""
    log = SealLog()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if _kind(folder) != "a folder":
        log.breaks.append(f"{folder.name}: the seal-log folder is {_kind(folder) or 'a file'}")
        return log
    names = sorted(os.listdir(folder))
    files = [n for n in names if LOG_NAME.fullmatch(n)]
    log.ignored = [n for n in names if not LOG_NAME.fullmatch(n)]
    prev, torn_last = _log_anchor(raw), False
    for index, name in enumerate(files):
        last = index == len(files) - 1
        try:
            data = read_regular(folder / name, MAX_LOG_FILE, "seal-log file")
            recs = read_records(data, MAGIC_LOG, (REC_L,), name)
        except (ValueError, OSError) as exc:
            log.breaks.append(str(exc))
            continue
        for n, rec in enumerate(recs.records):
            seq = len(log.entries)
            if n == 0 and int(name[:12]) != seq:
                log.breaks.append(f"{name}: starts at entry {int(name[:12])}; the chain continues at {seq}")
                break
            where = f"{name} entry {seq}"
            try:
                obj, payload, signature = open_signed(rec, LOG_ENTRY, where)
                spec = EVENT_DATA.get(obj["event"])
                if spec is not None:
                    check_fields(obj["data"], spec, f"{where} {obj['event']} data", OPTIONAL.get(obj["event"], set()))
            except Malformed as exc:
                log.breaks.append(f"malformed entry: {exc}")
                break
            if obj["seq"] != seq or obj["run"] != name[13:29] or obj["device"] != device or obj["prev"] != prev.hex():
                log.breaks.append(f"{where}: seq, run, device or prev does not continue the chain")
                break
            if not _signature_ok(key, obj, payload, signature):
                log.breaks.append(f"{where}: signature does not verify with the device key")
                break
            prev = _leaf(rec.raw)
            log.entries.append(obj)
            log.digests.append(prev.hex())
        else:
            if recs.corrupt:
                log.breaks.append(recs.corrupt)
        if recs.torn:
            if last:
                torn_last = True
            else:
                log.torn_older.append(name)
    log.status = ("failed" if not log.entries else "broken" if log.breaks else "truncated" if torn_last
                  else "verified")
    return log


def interpret_log(log: SealLog, device: str, ca: x509.Certificate) -> None:
    """What the entries on the chain say about segments (§7.2); a validly signed
    entry that breaks a rule is a problem of the recording."""
    last_sealed: str | None = None
    for index, obj in enumerate(log.entries):
        event, d = obj["event"], obj["data"]
        if event == "clock-set" and isinstance(d.get("sync"), dict):
            try:
                payload, _ = open_envelope(d["sync"], ca, CLOCK_SYNC_CTX, "dock", at=lambda p: _utc(p["dock_utc"]))
                if payload.get("device") == device:
                    log.syncs.append((index, _utc(payload["dock_utc"])))
            except (ValueError, KeyError, TypeError):
                pass  # no bound, not a fault (§7.1.4)
            continue
        if event not in EVENT_DATA:
            continue
        where = f"seal-log entry {obj['seq']} ({event})"
        if event == "segment-opened":
            if d["segment_seq"] != len(log.segments):
                log.problems.append(f"{where}: opens segment {d['segment_seq']} where {len(log.segments)} was next")
                continue
            log.segments[d["segment_seq"]] = {"name": d["segment"], "opened": obj, "opened_index": index,
                                              "prev": last_sealed}
            continue
        s = log.segments.get(d["segment_seq"])
        if s is None or s["name"] != d["segment"]:
            log.problems.append(f"{where}: names segment {d['segment_seq']} {d['segment']} that was not opened before")
            continue
        if event == "segment-sealed":
            if s.get("sealed"):
                log.problems.append(f"{where}: {d['segment']} sealed a second time")
                continue
            s["sealed"], s["sealed_index"], last_sealed = obj, index, d["digest"]
        elif event == "unclean-stop":
            if s.get("sealed"):
                log.problems.append(f"{where}: unclean stop of {d['segment']} after its sealing")
            else:
                s["unclean"] = obj
        elif event == "receipt":
            why = _receipt_fault(d, s, device, ca)
            if why:
                log.problems.append(f"{where}: {why}")
            else:
                s["receipt"] = obj
        elif event == "deletion":
            if not s.get("receipt") or not s.get("sealed") or d["digest"] != s["sealed"]["data"]["digest"]:
                log.problems.append(f"{where}: deletion of {d['segment']} without a valid receipt before it "
                                    "(it does not count)")
            else:
                s["deletion"] = obj


def _receipt_fault(d: dict[str, Any], s: dict[str, Any], device: str, ca: x509.Certificate) -> str | None:
    if not s.get("sealed"):
        return f"receipt for {d['segment']}, which is not sealed"
    if d["digest"] != s["sealed"]["data"]["digest"]:
        return "receipt names another digest than the sealed one"
    try:
        check_fields(d["receipt"], MESSAGE, "receipt message")
        payload, _ = open_envelope(d["receipt"], ca, RECEIPT_CTX, "archive-receipt",
                                   at=lambda p: _utc(p.get("stored_utc")))
        raw = base64.b64decode(d["receipt"]["payload"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        return f"the archive receipt does not verify: {exc}"
    if hashlib.sha256(raw).hexdigest() != d["receipt_sha256"]:
        return "receipt_sha256 is not the receipt payload's digest"
    if (payload.get("device"), payload.get("segment"), payload.get("segment_seq"), payload.get("segment_digest")) \
            != (device, d["segment"], d["segment_seq"], d["digest"]):
        return "the archive receipt is for another device, segment or digest"
    return None


# -- one present segment (§7.4) ------------------------------------------------------------------


@dataclass
class Segment:
    name: str
    seq: int | None
    status: str
    fragments: int = 0
    reasons: list[str] = field(default_factory=list)
    digest: str | None = None
    manifest: dict[str, Any] | None = None
    header: dict[str, Any] | None = None


class SegmentFault(ValueError):
    pass


@dataclass
class Trust:
    """What judges signed times (§7.1)."""

    cert: x509.Certificate
    revoked_at: dt.datetime | None = None

    def at(self, when: str, what: str) -> None:
        t = _utc(when)
        if not self.cert.not_valid_before_utc <= t <= self.cert.not_valid_after_utc:
            raise SegmentFault(f"{what} {when} is outside the device certificate's validity")
        if self.revoked_at is not None and t >= self.revoked_at:
            raise SegmentFault(f"{what} {when}: signed after the device certificate was revoked")


def check_segment(folder: Path, name: str, seq: int, s: dict[str, Any], log: SealLog, device: str,
                  key: Ed25519PublicKey, trust: Trust, newest: bool) -> Segment:
    """Status and covered fragments of a present segment opened on the chain."""
    out = Segment(name, seq, "failed")
    try:
        _check_segment(folder, name, seq, s, log, device, key, trust, newest, out)
    except (SegmentFault, Malformed, ValueError, OSError) as exc:
        out.status, out.fragments = "failed", 0
        out.reasons.append(str(exc))
    return out


def _check_segment(folder: Path, name: str, seq: int, s: dict[str, Any], log: SealLog, device: str,
                   key: Ed25519PublicKey, trust: Trust, newest: bool, out: Segment) -> None:
    seg_path, man_path = folder / f"{name}.bcseg", folder / f"{name}.bcman"
    data = read_regular(seg_path, MAX_SEGMENT_FILE, "segment file")
    recs = read_records(data, MAGIC_SEGMENT, (REC_H, REC_F, REC_C), name)
    if not recs.records or recs.records[0].rtype != REC_H:
        raise SegmentFault(f"{name}: no segment header")
    header, payload, sig = open_signed(recs.records[0], HEADER, f"{name} header")
    if not _signature_ok(key, header, payload, sig):
        raise SegmentFault(f"{name}: header signature does not verify with the device key")
    header_digest = _leaf(recs.records[0].raw)
    opened = s["opened"]
    if (header["device"], header["segment_seq"], header["segment"]) != (device, seq, name):
        raise SegmentFault(f"{name}: header names another device, number or name than the seal log")
    if header_digest.hex() != opened["data"]["header_digest"] or header["run"] != opened["run"]:
        raise SegmentFault(f"{name}: header differs from the seal log's segment-opened entry")
    if header["prev_segment"] != s["prev"]:
        raise SegmentFault(f"{name}: prev_segment is not the segment sealed last before it was opened")
    trust.at(header["opened_utc"], "opened_utc")
    out.header = header
    chain = _link(bytes(32), header_digest)
    chains, digests, ends = [chain], [], {0: recs.records[0].end}
    cut = recs.torn or recs.corrupt is not None
    last_cover = 0
    for rec in recs.records[1:]:
        if rec.rtype == REC_F:
            if len(rec.body) < 8 + 32 + 16:
                cut = True  # a malformed record: the walk ends here (§2)
                break
            index = struct.unpack_from(">Q", rec.body)[0]
            if index != len(digests):
                raise SegmentFault(f"{name}: fragment {index} where {len(digests)} was expected")
            digests.append((bytes(rec.body[8:40]).hex(), len(rec.body) - 40 - 16))
            chain = _link(chain, _leaf(rec.raw))
            chains.append(chain)
        elif rec.rtype == REC_C:
            try:
                cp, payload, sig = open_signed(rec, CHECKPOINT, f"{name} checkpoint")
            except Malformed:
                cut = True
                break
            if not _signature_ok(key, cp, payload, sig) or (cp["device"], cp["segment_seq"]) != (device, seq) \
                    or cp["fragments"] != len(digests) or cp["chain"] != chain.hex():
                raise SegmentFault(f"{name}: checkpoint after {len(digests)} fragments does not verify or "
                                   "does not cover exactly the fragments before it")
            last_cover = len(digests)
            ends[last_cover] = rec.end
        else:
            cut = True  # a second header
            break
    sealed = s.get("sealed")
    if _kind(man_path) == "missing":
        if sealed:
            raise SegmentFault(f"{name}: the seal log seals it but its manifest is missing")
        _dock_bounds(s, log, trust, name)
        out.status, out.fragments = "open", last_cover
        return
    mdata = read_regular(man_path, MAX_MANIFEST_FILE, "manifest file")
    mrecs = read_records(mdata, MAGIC_MANIFEST, (REC_M,), f"{name}.bcman")
    if len(mrecs.records) != 1 or mrecs.torn or mrecs.corrupt or mrecs.records[0].end != len(mdata):
        raise SegmentFault(f"{name}: the manifest must hold exactly one M record and nothing after it")
    m, payload, sig = open_signed(mrecs.records[0], MANIFEST, f"{name} manifest")
    check_manifest(m)
    if not _signature_ok(key, m, payload, sig):
        raise SegmentFault(f"{name}: manifest signature does not verify with the device key")
    for k in SAME_AS_HEADER:
        if m[k] != header[k]:
            raise SegmentFault(f"{name}: manifest {k} differs from the header's")
    if m["header_digest"] != header_digest.hex():
        raise SegmentFault(f"{name}: manifest names another header")
    digest = _leaf(mrecs.records[0].raw).hex()
    if sealed is None:
        if not (newest and log.status == "truncated"):
            raise SegmentFault(f"{name}: the seal log has no segment-sealed entry for it")
    elif sealed["data"]["digest"] != digest:
        raise SegmentFault(f"{name}: segment digest differs from the seal log's segment-sealed entry")
    trust.at(m["closed_utc"], "closed_utc")
    n = m["fragment_count"]
    if n > len(digests) or m["chain"] != chains[n].hex():
        raise SegmentFault(f"{name}: manifest covers {n} fragments whose chain is not the file's")
    if [f["sha256"] for f in m["fragments"]] != [d for d, _ in digests[:n]]:
        raise SegmentFault(f"{name}: a fragment digest differs from the manifest")
    if m["file_bytes"] != len(data):
        raise SegmentFault(f"{name}: the file is {len(data)} bytes, the manifest says {m['file_bytes']}")
    if m["status"] == "complete":
        if cut or n != len(digests) or ends.get(n) != len(data):
            raise SegmentFault(f"{name}: sealed complete, but the file does not end exactly after the checkpoint "
                               f"covering its {n} fragments (cut, extended or altered after sealing)")
    else:
        t = m["truncated"]
        if t["covered_bytes"] != ends.get(n):
            raise SegmentFault(f"{name}: covered_bytes is not the end of the checkpoint covering {n} fragments")
        if hashlib.sha256(memoryview(data)[t["covered_bytes"]:]).hexdigest() != t["uncovered_sha256"]:
            raise SegmentFault(f"{name}: bytes after the last checkpoint differ from the manifest")
        if not s.get("unclean"):
            raise SegmentFault(f"{name}: truncated, but the seal log has no unclean-stop entry for it")
    _dock_bounds(s, log, trust, name)
    out.status = "verified" if m["status"] == "complete" else "truncated"
    out.fragments, out.digest, out.manifest = n, digest, m


def _dock_bounds(s: dict[str, Any], log: SealLog, trust: Trust, name: str) -> None:
    """§7.1.4: dock-signed times before the opening and after the sealing."""
    floor = max((t for i, t in log.syncs if i < s["opened_index"]), default=None)
    ceiling = None
    if s.get("sealed"):
        ceiling = min((t for i, t in log.syncs if i > s["sealed_index"]), default=None)
    cert = trust.cert
    if floor is not None and (floor > cert.not_valid_after_utc
                              or (trust.revoked_at is not None and floor >= trust.revoked_at)):
        raise SegmentFault(f"{name}: a dock saw the time {floor:%Y-%m-%d %H:%M:%S}Z before it was opened, after "
                           "the device certificate expired or was revoked")
    if ceiling is not None and ceiling < cert.not_valid_before_utc:
        raise SegmentFault(f"{name}: a dock saw the time {ceiling:%Y-%m-%d %H:%M:%S}Z after it was sealed, before "
                           "the device certificate was valid")


# -- a recording folder (§7, §10.1) ---------------------------------------------------------------

EXCERPT_FIELDS = {"format": _one_of(EXCERPT_FORMAT), "device": DEVICE_ID,
                  "segments": lambda v: isinstance(v, list) and 1 <= len(v) <= 100_000 and all(SEGMENT(x) for x in v),
                  "head_seq": COUNT, "head_digest": HEX32, "created_utc": UTC, "purpose": STR}


@dataclass
class RecordingReport:
    path: str
    status: str = "failed"
    device: str | None = None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    log: SealLog = field(default_factory=SealLog)
    segments: list[Segment] = field(default_factory=list)
    excerpt: dict[str, Any] | None = None

    def short(self) -> dict[str, Any]:
        """The report in short, as tests/vectors/cases/*/expected.json give it (§10)."""
        return {"recording": self.status, "seal_log": self.log.status, "log_entries": len(self.log.entries),
                "segments": [{"name": s.name, "seq": s.seq, "status": s.status, "fragments": s.fragments}
                             for s in self.segments]}


def verify_recording(folder: Path, ca: x509.Certificate, crl: x509.CertificateRevocationList | None = None
                     ) -> RecordingReport:
    """Verify a recording folder (or an excerpt) as docs/format.md §7 says.

    Never raises for what is inside the folder: faults are in the report.
    ValueError only if ``identity/device.crt`` cannot be read at all.
    """
    folder = Path(folder)
    rep = RecordingReport(str(folder))
    cert_bytes = read_regular(folder / "identity" / "device.crt", MAX_CERT_FILE, "device certificate")
    try:
        cert = x509.load_pem_x509_certificate(bytes(cert_bytes))
        device = check_cert(cert, ca, "device")
        if not DEVICE_ID(device):
            raise ValueError(f"device ID {device!r} is not 7 capital letters or digits")
        key = cert.public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("device key is not Ed25519")
    except ValueError as exc:
        rep.reasons.append(f"device certificate: {exc}")
        return rep
    rep.device = device
    trust = Trust(cert)
    if crl is not None:
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            trust.revoked_at = entry.revocation_date_utc
    log = rep.log = walk_log(folder / "seallog", device, key)
    interpret_log(log, device, ca)
    rep.reasons += log.problems
    rep.notes += [f"seallog/{name}: not a seal-log file name; not read" for name in log.ignored]
    rep.notes += [f"seallog/{name}: torn last record (a power cut the next start recovered from)"
                  for name in log.torn_older]
    seg_dir = folder / "segments"
    present: set[str] = set()
    stems: set[str] = set()
    seg_kind = _kind(seg_dir)
    if seg_kind not in ("missing", "a folder"):
        rep.reasons.append(f"segments: {seg_kind or 'a file'}, not a folder")
    elif seg_kind == "a folder":
        for entry in sorted(os.listdir(seg_dir)):
            kind = _kind(seg_dir / entry)
            if kind == "a folder" and entry == "incomplete":
                continue
            if kind is not None:
                rep.reasons.append(f"segments/{entry}: {kind}; not read")
            elif entry.endswith((".bcseg", ".bcman")):
                stems.add(entry[:-6])
                if entry.endswith(".bcseg"):
                    present.add(entry[:-6])
            else:
                rep.notes.append(f"segments/{entry}: neither .bcseg nor .bcman; not read")
    chosen = _read_excerpt(folder, rep, device, log)
    newest = max(log.segments, default=None)
    for seq, s in sorted(log.segments.items()):
        name = s["name"]
        if name in present:
            rep.segments.append(check_segment(seg_dir, name, seq, s, log, device, key, trust, seq == newest))
        elif name in stems:
            rep.segments.append(Segment(name, seq, "failed", reasons=[f"{name}: manifest without segment file"]))
        elif s.get("deletion"):
            rep.segments.append(Segment(name, seq, "deleted"))
        elif chosen is not None and name not in chosen:
            rep.segments.append(Segment(name, seq, "excluded"))
        else:
            rep.segments.append(Segment(name, seq, "missing", reasons=[f"{name}: absent, and no deletion counts"]))
    placed = {s["name"] for s in log.segments.values()}
    for name in sorted(stems - placed):
        rep.segments.append(Segment(name, None, "unlogged", reasons=[f"{name}: not opened on the seal log's chain"]))
    statuses = {s.status for s in rep.segments}
    if rep.reasons or not rep.segments:
        rep.status = "failed"
    elif log.status == "verified" and statuses <= {"verified", "deleted", "excluded"}:
        rep.status = "verified"
    elif log.status in ("verified", "truncated") and statuses <= {"verified", "deleted", "excluded", "truncated",
                                                                     "open"}:
        rep.status = "truncated"
    else:
        rep.status = "failed"
    return rep


def _read_excerpt(folder: Path, rep: RecordingReport, device: str, log: SealLog) -> set[str] | None:
    path = folder / "excerpt.json"
    if _kind(path) == "missing":
        return None
    try:
        index = json.loads(bytes(read_regular(path, MAX_EXCERPT_FILE, "excerpt index")).decode("utf-8"),
                           object_pairs_hook=_no_duplicates)
        check_fields(index, EXCERPT_FIELDS, "excerpt.json")
    except (ValueError, UnicodeDecodeError) as exc:
        rep.reasons.append(f"excerpt.json: {exc}")
        return None
    rep.excerpt = index
    if index["device"] != device:
        rep.reasons.append(f"excerpt.json names device {index['device']}, the certificate {device}")
    if not log.entries or index["head_seq"] != len(log.entries) - 1 or index["head_digest"] != log.digests[-1]:
        rep.reasons.append("excerpt.json: the seal log's head is not the one the excerpt was made at")
    named = {s["name"] for s in log.segments.values()}
    for name in index["segments"]:
        if name not in named:
            rep.reasons.append(f"excerpt.json lists {name}, which the seal log does not name")
    return set(index["segments"])


# -- the older entry points of this module (kept for callers and tests) -------------------------


def verify_seal_log(folder: Path, device: str, key: Ed25519PublicKey, public_raw: bytes, result: "Result",
                    ca: x509.Certificate) -> SealLog:
    """Walk and interpret a seal log (``ca`` judges the receipts and clock syncs in
    it); ValueError unless it is ``verified`` or ``truncated`` without problems.
    ``public_raw`` is ``key``'s raw bytes (kept for callers; the key gives them)."""
    log = walk_log(folder, device, key)
    interpret_log(log, device, ca)
    if log.status not in ("verified", "truncated") or log.problems:
        raise ValueError(f"{folder}: seal log {log.status}: {'; '.join(log.breaks + log.problems)}")
    for name in log.torn_older:
        result.notes.append(f"{name}: torn last record (a power cut the next start recovered from)")
    result.ok(f"seal log of {device}: {len(log.entries)} entries signed by the device and chained from its "
              f"certificate; head #{len(log.entries) - 1} {log.digests[-1]}")
    return log


def verify_segment(seg_path: Path, man_path: Path, device: str, key: Ed25519PublicKey, log: SealLog,
                   media_path: Path | None, result: "Result", trust: Trust | None = None) -> str:
    """Verify one segment (§7.4) and its media file; returns the segment digest (hex).
    ValueError unless it is ``verified`` or ``truncated`` and the media is its plaintext."""
    name = seg_path.name[:-len(".bcseg")]
    found = [(seq, s) for seq, s in log.segments.items() if s["name"] == name]
    if not found:
        raise ValueError(f"{name}: not opened on the seal log's chain")
    seq, s = found[0]
    if trust is None:
        trust = Trust(x509.load_pem_x509_certificate(
            bytes(read_regular(seg_path.parent.parent / "identity" / "device.crt", MAX_CERT_FILE, "certificate"))))
    seg = check_segment(seg_path.parent, name, seq, s, log, device, key, trust, seq == max(log.segments))
    return _accept_segment(seg, media_path, result)


def _accept_segment(seg: Segment, media_path: Path | None, result: "Result") -> str:
    if seg.status not in ("verified", "truncated") or seg.manifest is None or seg.digest is None:
        raise ValueError(f"{seg.name}: {seg.status}: {'; '.join(seg.reasons)}")
    listed = seg.manifest["fragments"]
    what = (f"{seg.name}: {seg.manifest['status']}, {seg.fragments} fragments signed and chained; "
            f"digest {seg.digest}")
    if media_path is not None:
        media = memoryview(read_regular(media_path, MAX_SEGMENT_FILE, "media file"))
        pos = 0
        for i, f in enumerate(listed):
            part = media[pos:pos + f["bytes"]]
            if hashlib.sha256(part).hexdigest() != f["sha256"]:
                raise ValueError(f"{media_path.name}: bytes of fragment {i} differ from what the recorder signed")
            pos += f["bytes"]
        if pos != len(media):
            raise ValueError(f"{media_path.name}: {len(media) - pos} bytes more than the recorder signed")
        what += f"; {media_path.name} is exactly the signed plaintext"
    result.ok(what)
    return seg.digest


# -- audit log ---------------------------------------------------------------------------------


def verify_audit_lines(lines: list[str], ca: x509.Certificate, result: Result) -> dict[str, Any]:
    """Check a ``bodycam-audit/1`` export (the whole log or an extract).

    Each entry: canonical payload, archive signature, and the chain to the
    entry before it when that one is present (always for the whole log).
    Stamps must cover their entry's digest; the signed head must match the
    last entry of a whole log.  Failures name the entry by ``seq``.
    """
    if not lines:
        raise ValueError("empty audit export")
    head = json.loads(lines[0])
    if head.get("format") != AUDIT_FORMAT:
        raise ValueError(f"not a {AUDIT_FORMAT} export")
    cert = x509.load_pem_x509_certificate(head["certificate"].encode())
    archive = check_cert(cert, ca, "archive-receipt")
    key = cert.public_key()
    agency, whole = head["agency"], head.get("extract") is None
    digests: dict[int, str] = {}
    payloads: dict[int, bytes] = {}
    prev_seq, prev_digest = -1, audit_anchor(agency)
    attestation = None
    bad = 0
    for n, line in enumerate(lines[1:], 2):
        item = json.loads(line)
        if "entry" in item:
            payload = item["entry"].encode()
            try:
                p = parse_canonical(payload)
            except ValueError as exc:
                result.fail(f"audit line {n}: {exc}")
                bad += 1
                continue
            seq = p.get("seq")
            where = f"audit entry #{seq} ({p.get('action')} by {p.get('actor')} at {p.get('utc')})"
            try:
                key.verify(base64.b64decode(item["signature"]), AUDIT_CTX.encode() + b"\x00" + payload)
            except (InvalidSignature, ValueError):
                result.fail(f"{where}: signature does not verify (entry altered)")
                bad += 1
            if p.get("ctx") != AUDIT_CTX or not _version(p.get("v")) or p.get("agency") != agency \
                    or p.get("archive") != archive:
                result.fail(f"{where}: not an audit entry of {agency} at {archive}")
                bad += 1
            if not isinstance(seq, int) or seq <= prev_seq:
                result.fail(f"{where}: out of order after #{prev_seq}")
                bad += 1
            elif whole and seq != prev_seq + 1:
                result.fail(f"audit entries #{prev_seq + 1}…#{seq - 1} are missing before {where}")
                bad += 1
            elif seq == prev_seq + 1 and p.get("prev") != prev_digest:
                result.fail(f"{where}: does not chain to entry #{prev_seq} (prev differs)")
                bad += 1
            digest = hashlib.sha256(payload).hexdigest()
            digests[seq] = digest
            payloads[seq] = payload
            prev_seq, prev_digest = seq, digest
        elif "stamp" in item:
            s = item["stamp"]
            if digests.get(s["seq"]) != s["digest"]:
                result.fail(f"time-stamp of audit entry #{s['seq']}: the entry's digest differs")
                bad += 1
            else:
                try:
                    imprint = _tst_imprint(base64.b64decode(s["token"]))
                except ValueError as exc:
                    result.fail(f"time-stamp of audit entry #{s['seq']}: {exc}")
                    bad += 1
                else:
                    if imprint != bytes.fromhex(s["digest"]):
                        result.fail(f"time-stamp of audit entry #{s['seq']}: covers another hash")
                        bad += 1
                    else:
                        result.ok(f"audit entry #{s['seq']} time-stamped by {s['tsa']} at {s['stamped_utc']} "
                                  "(imprint checked; the TSA signature: openssl ts -verify)")
        elif "head" in item:
            attestation, _ = open_envelope(item["head"], ca, AUDIT_HEAD_CTX, "archive-receipt")
    if attestation is None:
        result.fail("audit export has no signed head")
    elif whole and (attestation["seq"] != prev_seq or (prev_seq >= 0 and attestation["digest"] != prev_digest)):
        result.fail(f"audit log ends at #{prev_seq} but the archive's signed head is #{attestation['seq']} "
                    "(entries removed or added)")
    elif not bad:
        kind = "whole log" if whole else f"extract {head['extract']}"
        result.ok(f"audit log of {agency} ({kind}): {len(digests)} entries signed by archive {archive}"
                  + (", chained, ending at the signed head" if whole else ""))
    return {"agency": agency, "entries": len(digests), "head": attestation}


def _tst_imprint(resp: bytes) -> bytes:
    """The SHA-256 messageImprint inside a DER TimeStampResp (RFC 3161), found by
    its AlgorithmIdentifier; the signature is for ``openssl ts -verify``."""
    oid = bytes.fromhex("0609608648016503040201")  # sha256
    at = resp.find(oid)
    while at >= 0:
        rest = resp[at + len(oid):]
        if rest[:2] == b"\x05\x00":
            rest = rest[2:]
        if rest[:2] == b"\x04\x20":
            return rest[2:34]
        at = resp.find(oid, at + 1)
    raise ValueError("no SHA-256 message imprint in the time-stamp")


# -- the package -------------------------------------------------------------------------------


def verify_package(root: Path, ca_path: Path | None = None) -> Result:
    result = Result()
    root = Path(root)
    for name in ("manifest.json", "attestation.json"):
        if (root / name).exists() and not (root / name).is_file():
            raise Unreadable(f"{root / name}: not a regular file")
    try:
        manifest_bytes = (root / "manifest.json").read_bytes()
        manifest = json.loads(manifest_bytes)
        envelope = json.loads((root / "attestation.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise Unreadable(f"{root}: not a package (manifest.json and attestation.json): {exc}") from None
    if manifest.get("format") != PACKAGE_FORMAT:
        raise Unreadable(f"{root}/manifest.json: format is {manifest.get('format')!r}, not {PACKAGE_FORMAT}")
    anchor_path = ca_path or root / "trust" / "ca.crt"
    try:
        ca = x509.load_pem_x509_certificate(Path(anchor_path).read_bytes())
        check_ca(ca)
    except (OSError, ValueError, InvalidSignature) as exc:
        raise Unreadable(f"{anchor_path}: not a usable agency CA certificate: {exc}") from None
    result.ok(f"trust anchor {ca.subject.rfc4514_string()} SHA-256 {fingerprint(ca)}"
              + ("" if ca_path else " (from the package: compare with the agency's published fingerprint)"))
    try:
        att, archive = open_envelope(envelope, ca, ATTESTATION_CTX, "archive-receipt")
    except (ValueError, KeyError) as exc:
        result.fail(f"attestation.json: {exc}")
        return result
    try:
        check_cert(x509.load_pem_x509_certificate(envelope["certificate"].encode()), ca, "archive-receipt",
                   at=_utc(att["utc"]))
    except (ValueError, KeyError) as exc:
        result.fail(f"attestation.json: the archive's certificate at the time of export: {exc}")
        return result
    if att.get("manifest_sha256") != hashlib.sha256(manifest_bytes).hexdigest():
        result.fail("manifest.json differs from the one the archive signed (attestation.json)")
        return result
    result.ok(f"attestation signed by archive {archive} at {att.get('utc')}: manifest.json is the archive's")
    files: dict[str, str] = manifest.get("files") or {}
    if not files:
        result.fail("manifest.json lists no files")
    for rel, want in sorted(files.items()):
        path = root / rel
        if ".." in Path(rel).parts or path.is_symlink() or not path.is_file():
            result.fail(f"{rel}: listed but missing")
            continue
        if _sha256_file(path) != want:
            result.fail(f"{rel}: SHA-256 differs from the manifest (the file was changed)")
    present = set()
    for p in root.rglob("*"):
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            result.fail(f"{p.relative_to(root)}: not a regular file or folder (link, FIFO or device)")
        elif p.is_file():
            present.add(str(p.relative_to(root)))
    for extra in sorted(present - set(files) - set(UNLISTED)):
        result.fail(f"{extra}: not listed in the manifest (added after export)")
    if not result.failures:
        result.ok(f"{len(files)} files have the SHA-256 the archive listed")
    recordings: dict[str, RecordingReport] = {}
    for seg in manifest.get("segments") or []:
        name = seg["name"]
        try:
            rel = seg["original_dir"]
            if rel not in recordings:
                recordings[rel] = _verify_original(root / rel, ca, result)
            rep = recordings[rel]
            if rep.device != seg["device"]:
                raise ValueError(f"the recording is of device {rep.device}, the segment of {seg['device']}")
            found = [s for s in rep.segments if s.name == name]
            if not found:
                raise ValueError("not opened on the recorder's seal log")
            media = root / seg["media_file"] if seg.get("media_file") else None
            digest = _accept_segment(found[0], media, result)
            if digest != seg["segment_digest"]:
                raise ValueError(f"segment digest {digest} differs from the manifest's {seg['segment_digest']}")
            for receipt in seg.get("receipts", []):
                p, _ = open_envelope(receipt, ca, RECEIPT_CTX, "archive-receipt")
                if p.get("segment_digest") != digest or p.get("device") != seg["device"]:
                    raise ValueError("archive receipt names another segment")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            result.fail(f"segment {name}: {exc}")
    for device, rel in sorted((manifest.get("log_head_attestations") or {}).items()):
        try:
            if rel != f"originals/{device}/log-head-attestation.json":
                raise ValueError(f"named {rel!r}, not in the device's folder")
            key = f"originals/{device}"
            rep = recordings.get(key) or verify_recording(root / key, ca)
            result.ok(check_log_head(root / rel, rep, root / key, ca))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            result.fail(f"log-head attestation of {device}: {exc}")
    for key in sorted(recordings):
        if Path(key).name not in (manifest.get("log_head_attestations") or {}):
            result.notes.append(f"{key}: no log-head attestation of the archive; that its seal log is whole is "
                                "not shown (§12.1)")
    for device, stamps in (manifest.get("seal_log_stamps") or {}).items():
        log = next((r.log for k, r in recordings.items() if Path(k).name == device), None)
        for st in stamps:
            try:
                imprint = _tst_imprint((root / st["file"]).read_bytes())
                if log is None or st["seq"] >= len(log.digests) or log.digests[st["seq"]] != st["digest"]:
                    raise ValueError("the stamped digest is not that seal-log entry's")
                if imprint.hex() != st["digest"]:
                    raise ValueError("the time-stamp covers another hash")
                result.ok(f"seal-log entry #{st['seq']} of {device} (and all before it) existed at {st['stamped_utc']} "
                          f"by the RFC 3161 time-stamp of {st['tsa']} (imprint checked; its signature: "
                          f"openssl ts -verify -digest {st['digest']} -in {st['file']} -CAfile <TSA certificate>)")
            except (OSError, ValueError, KeyError) as exc:
                result.fail(f"time-stamp {st.get('file')}: {exc}")
    if not manifest.get("segments"):
        result.fail("the package holds no segments")
    report = root / (manifest.get("report_html") or "report/report.html")
    if report.is_file():
        text = report.read_text("utf-8")
        missing = [s["name"] for s in manifest.get("segments") or [] if s["segment_digest"] not in text]
        if missing:
            result.fail(f"{report.name}: the hash table lacks the digest of {', '.join(missing)}")
    audit = root / (manifest.get("audit") or "audit/audit.jsonl")
    if audit.is_file():
        try:
            verify_audit_lines([line for line in audit.read_text("utf-8").splitlines() if line.strip()], ca, result)
        except (ValueError, KeyError) as exc:
            result.fail(f"{audit.name}: {exc}")
    return result


def _verify_original(base: Path, ca: x509.Certificate, result: Result) -> RecordingReport:
    """A package's sealed originals of one device: a recording folder or an
    excerpt (§10.1) that must verify on its own (§7)."""
    rep = verify_recording(base, ca)
    if rep.status not in ("verified", "truncated"):
        problems = rep.reasons + rep.log.breaks + [r for s in rep.segments for r in s.reasons]
        raise ValueError(f"{base.name}: recording {rep.status} (seal log {rep.log.status}): "
                         + "; ".join(problems[:5]))
    for name in rep.log.torn_older:
        result.notes.append(f"{base.name}/seallog/{name}: torn last record (a power cut the next start recovered "
                            "from)")
    excluded = [s.name for s in rep.segments if s.status == "excluded"]
    result.ok(f"seal log of {rep.device}: {len(rep.log.entries)} entries signed by the device and chained from its "
              f"certificate; head #{len(rep.log.entries) - 1} {rep.log.digests[-1]}"
              + (f"; {len(excluded)} segments of other cases left out (excerpt)" if excluded else ""))
    return rep


def check_log_head(path: Path, rep: RecordingReport, folder: Path, ca: x509.Certificate) -> str:
    """The archive's log-head attestation (§12.1) at ``path`` against the seal
    log of ``folder`` (verified in ``rep``): the chain must reach the attested
    entry and hold the attested digest there, so a log cut at a record boundary
    together with its newest segments fails.  Returns what was shown; ValueError
    says why not."""
    try:
        envelope = json.loads(bytes(read_regular(path, 2 * MAX_MESSAGE, "log-head attestation")))
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path.name}: not JSON ({exc})") from None
    p, archive = open_envelope(envelope, ca, LOG_HEAD_CTX, "archive-receipt", at=lambda q: _utc(q["attested_utc"]))
    try:
        check_fields(p, LOG_HEAD, path.name)
    except Malformed as exc:
        raise ValueError(str(exc)) from None
    cert = x509.load_pem_x509_certificate(bytes(read_regular(folder / "identity" / "device.crt", MAX_CERT_FILE,
                                                             "device certificate")))
    if (p["device"], p["device_certificate"]) != (rep.device, fingerprint(cert)):
        raise ValueError(f"it is for device {p['device']} certificate {p['device_certificate'][:16]}…, not this "
                         "folder's")
    entries = len(rep.log.digests)
    if p["head_seq"] >= entries:
        raise ValueError(f"the seal log ends at entry {entries - 1}, but archive {archive} attested entry "
                         f"{p['head_seq']} on {p['attested_utc']}: entries were cut (and with them, perhaps, "
                         "segments)")
    if rep.log.digests[p["head_seq"]] != p["head_digest"]:
        raise ValueError(f"seal-log entry {p['head_seq']} differs from the one archive {archive} attested "
                         "(rewritten)")
    return (f"seal log of {p['device']} reaches entry #{p['head_seq']}, the head archive {archive} signed on "
            f"{p['attested_utc']} (log-head attestation): it was not cut below what the archive received")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _main_recording(args: argparse.Namespace) -> int:
    ca = x509.load_pem_x509_certificate(bytes(read_regular(args.ca, MAX_CERT_FILE, "CA certificate")))
    check_ca(ca)
    crl = load_crl(bytes(read_regular(args.crl, MAX_CRL_FILE, "CRL")), ca) if args.crl else None
    rep = verify_recording(args.recording, ca, crl)
    if args.json:
        out = rep.short() | {"device": rep.device, "reasons": rep.reasons + rep.log.breaks, "notes": rep.notes}
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        print(f"{rep.path}: {rep.status}; seal log {rep.log.status}, {len(rep.log.entries)} entries")
        for s in rep.segments:
            print(f"  {s.status:9} {s.name} ({s.fragments} fragments){': ' + '; '.join(s.reasons) if s.reasons else ''}")
        for line in rep.log.breaks + rep.reasons:
            print(f"FAIL  {line}")
    return 0 if rep.status == "verified" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a bodycam evidence package or audit export offline.")
    parser.add_argument("package", nargs="?", type=Path, help="the package folder (default: this file's folder)")
    parser.add_argument("--ca", type=Path, help="agency CA certificate (default: trust/ca.crt in the package)")
    parser.add_argument("--audit", type=Path, help="verify a bodycam-audit/1 export instead (needs --ca)")
    parser.add_argument("--recording", type=Path,
                        help="verify one recording folder or excerpt (docs/format.md §7, §10.1) instead (needs --ca)")
    parser.add_argument("--crl", type=Path, help="with --recording: the agency's CRL (revocation, §7.1)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        if args.recording:
            if not args.ca:
                parser.error("--recording needs --ca")
            return _main_recording(args)
        if args.audit:
            if not args.ca:
                parser.error("--audit needs --ca")
            result = Result()
            ca = x509.load_pem_x509_certificate(args.ca.read_bytes())
            lines = [line for line in args.audit.read_text("utf-8").splitlines() if line.strip()]
            try:
                verify_audit_lines(lines, ca, result)
            except (ValueError, KeyError) as exc:
                result.fail(f"{args.audit}: {exc}")
        else:
            result = verify_package(args.package or Path(__file__).resolve().parent, args.ca)
    except (Unreadable, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"verified": result.passed, "checked": result.checked, "failures": result.failures,
                          "notes": result.notes}, ensure_ascii=False, indent=2))
    else:
        for line in result.checked:
            print(f"ok    {line}")
        for line in result.notes:
            print(f"note  {line}")
        for line in result.failures:
            print(f"FAIL  {line}")
        print("VERIFIED" if result.passed else "NOT VERIFIED")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
