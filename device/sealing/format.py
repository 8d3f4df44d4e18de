"""Byte-level building blocks of the sealed formats (see docs/format.md).

Three file kinds share one framing:

    file    = magic(8) record*
    record  = type(u8) length(u32 big-endian) body[length]

Signed bodies (header, checkpoint, manifest, seal-log entry) are

    body    = payload_len(u32 big-endian) payload signature(64)

where ``payload`` is canonical JSON and the Ed25519 signature covers
``context || 0x00 || payload``; ``context`` is the payload's own ``ctx``
string, so a signature made for one kind of record never verifies as another.

Hashing follows RFC 6962's idea of prefix bytes: 0x00 for a leaf (a whole
record), 0x01 for a chain link, 0x02 for the seal-log anchor.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass
from typing import Any, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

import rfc8785

from bodycam.errors import FormatError

FORMAT_VERSION = 2

MAGIC_SEGMENT = b"BCSEG\x00\x02\n"
MAGIC_MANIFEST = b"BCMAN\x00\x02\n"
MAGIC_LOG = b"BCLOG\x00\x02\n"
MAGIC_LEN = 8

REC_HEADER = 0x48  # 'H'
REC_FRAGMENT = 0x46  # 'F'
REC_CHECKPOINT = 0x43  # 'C'
REC_MANIFEST = 0x4D  # 'M'
REC_LOG_ENTRY = 0x4C  # 'L'
RECORD_NAMES = {
    REC_HEADER: "header",
    REC_FRAGMENT: "fragment",
    REC_CHECKPOINT: "checkpoint",
    REC_MANIFEST: "manifest",
    REC_LOG_ENTRY: "seal-log entry",
}

RECORD_PREFIX = struct.Struct(">BI")
MAX_RECORD_BODY = 64 * 1024 * 1024  # one fragment of 1080p is ~1 MB
MAX_SIGNED_PAYLOAD = 1024 * 1024
SIGNATURE_LEN = 64

# Signing contexts (also the "ctx" field of each payload).
CTX_HEADER = "bodycam/v2/segment-header"
CTX_CHECKPOINT = "bodycam/v2/checkpoint"
CTX_MANIFEST = "bodycam/v2/manifest"
CTX_LOG = "bodycam/v2/seal-log"
# Other byte strings that bind keys and nonces to their use.
HPKE_INFO_PREFIX = b"bodycam/v2/segment-key\x00"
FRAGMENT_AAD_PREFIX = b"bodycam/v2/fragment\x00"
LOG_ANCHOR_PREFIX = b"bodycam/v2/seal-log-anchor\x00"

HASH_LEAF = b"\x00"
HASH_CHAIN = b"\x01"
HASH_ANCHOR = b"\x02"
ZERO_DIGEST = bytes(32)


# --------------------------------------------------------------------------
# canonical JSON (RFC 8785, JCS)

# The integer domain of every signed payload: I-JSON's exactly representable
# integers (RFC 7493 §2.2; RFC 8785 §3.2.2.3 serialises numbers as IEEE 754
# doubles, so larger integers would have no single spelling).  Quantities
# that may exceed it (nanosecond clocks) are written as decimal strings.
MAX_SAFE_INTEGER = 2**53 - 1
# Nesting depth of objects and arrays in a payload (the whole payload is 1).
MAX_JSON_DEPTH = 16
DECIMAL_RE = re.compile(r"^-?(0|[1-9][0-9]{0,18})$")


def _check_canonical_value(value: Any, path: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise FormatError(f"nesting deeper than {MAX_JSON_DEPTH} at {path}")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        # Lone surrogates ("\ud800") cannot be UTF-8; refuse them by name.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"string with a lone surrogate at {path}") from None
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise FormatError(f"integer outside ±(2^53−1) at {path}")
        return
    if isinstance(value, float):
        raise FormatError(f"floats are not allowed in signed payloads (at {path})")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_canonical_value(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FormatError(f"object keys must be strings (at {path})")
            _check_canonical_value(key, f"{path} key", depth + 1)
            _check_canonical_value(item, f"{path}.{key}", depth + 1)
        return
    raise FormatError(f"unsupported type {type(value).__name__} at {path}")


def canonical_json(obj: dict[str, Any]) -> bytes:
    """Serialise ``obj`` by RFC 8785 (JCS) within the format's JSON profile.

    Profile: no floats, integers within ±(2^53−1), strings without lone
    surrogates, nesting at most ``MAX_JSON_DEPTH``.  Raises FormatError for
    anything outside it (naming the JSON path), never another exception.

    >>> canonical_json({"b": 1, "a": "é"})
    b'{"a":"\xc3\xa9","b":1}'
    """
    _check_canonical_value(obj, "$", 1)
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, ValueError, TypeError, RecursionError) as exc:
        raise FormatError(f"cannot canonicalise: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    # Longer than any integer of the domain: refuse before converting, so a
    # 5,000-digit number costs nothing and raises nothing but ValueError.
    if len(text) > 17:
        raise ValueError("integer outside the format's domain")
    return int(text)


def parse_canonical(payload: bytes | memoryview, where: str) -> dict[str, Any]:
    """Parse a canonical-JSON object, refusing any other spelling of it.

    Total: any byte string either gives a dict or raises FormatError naming
    ``where`` and the fault.
    """
    payload = bytes(payload)
    try:
        text = payload.decode("utf-8")
        obj = json.loads(text, parse_int=_bounded_int, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = exc.__class__.__name__
        if isinstance(exc, ValueError) and not isinstance(exc, UnicodeDecodeError):
            reason = str(exc).split(":")[0][:80]
        raise FormatError(f"payload is not JSON of the format's profile ({reason})", where) from None
    if not isinstance(obj, dict):
        raise FormatError("payload is not a JSON object", where)
    try:
        again = canonical_json(obj)
    except FormatError as exc:
        raise FormatError(str(exc), where) from None
    if again != payload:
        raise FormatError("payload is not in canonical form (RFC 8785)", where)
    return obj


def decimal_int(value: Any, where: str) -> int:
    """A decimal-string integer field (e.g. ``mono_ns``) as int; FormatError otherwise."""
    if not isinstance(value, str) or not DECIMAL_RE.match(value):
        raise FormatError(f"expected a decimal integer string, found {type(value).__name__}", where)
    return int(value)


# --------------------------------------------------------------------------
# hashing


def leaf_hash(record: bytes | memoryview) -> bytes:
    """Digest of one whole record (type, length and body)."""
    h = hashlib.sha256(HASH_LEAF)
    h.update(record)
    return h.digest()


def chain_link(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(HASH_CHAIN + previous + leaf).digest()


def log_anchor(device_public_key: bytes) -> bytes:
    """The ``prev`` of a device's first seal-log entry."""
    return hashlib.sha256(HASH_ANCHOR + LOG_ANCHOR_PREFIX + device_public_key).digest()


# --------------------------------------------------------------------------
# records


def encode_record(rtype: int, body: bytes) -> bytes:
    if len(body) > MAX_RECORD_BODY:
        raise FormatError(f"record body of {len(body)} bytes exceeds {MAX_RECORD_BODY}")
    return RECORD_PREFIX.pack(rtype, len(body)) + body


@dataclass(frozen=True)
class Record:
    rtype: int
    offset: int  # of the record's first byte in the file
    end: int  # offset just past the record
    raw: memoryview  # the whole record, prefix included

    @property
    def body(self) -> memoryview:
        return self.raw[RECORD_PREFIX.size :]


@dataclass(frozen=True)
class TornTail:
    """The file ends inside a record: what a power cut leaves behind."""

    offset: int
    length: int  # bytes from ``offset`` to the end of the file
    reason: str


def iter_records(
    data: bytes | memoryview, where: str, magic: bytes, allowed: frozenset[int]
) -> Iterator[Record | TornTail]:
    """Yield the records of a file; a torn last record is yielded as TornTail.

    Anything that cannot be a torn write (bad magic, unknown type, a length
    beyond the limit) raises FormatError naming the offset.
    """
    view = memoryview(data)
    if len(view) < MAGIC_LEN:
        if bytes(view) == magic[: len(view)]:
            yield TornTail(0, len(view), "file ends inside the magic")
            return
        raise FormatError("not a bodycam file (bad magic)", where)
    if bytes(view[:MAGIC_LEN]) != magic:
        raise FormatError(
            f"bad magic {bytes(view[:MAGIC_LEN])!r}, expected {magic!r}", where
        )
    pos = MAGIC_LEN
    size = len(view)
    prefix = RECORD_PREFIX.size
    while pos < size:
        if size - pos < prefix:
            yield TornTail(pos, size - pos, "file ends inside a record prefix")
            return
        rtype, length = RECORD_PREFIX.unpack_from(view, pos)
        if rtype not in allowed:
            raise FormatError(f"unknown record type 0x{rtype:02x} at offset {pos}", where)
        if length > MAX_RECORD_BODY:
            raise FormatError(
                f"record at offset {pos} claims {length} bytes (limit {MAX_RECORD_BODY})",
                where,
            )
        end = pos + prefix + length
        if end > size:
            yield TornTail(
                pos, size - pos, f"{RECORD_NAMES[rtype]} record cut short at end of file"
            )
            return
        yield Record(rtype, pos, end, view[pos:end])
        pos = end


# --------------------------------------------------------------------------
# signed bodies


def sign_body(key: Ed25519PrivateKey, payload_obj: dict[str, Any]) -> bytes:
    payload = canonical_json(payload_obj)
    if len(payload) > MAX_SIGNED_PAYLOAD:
        raise FormatError(f"signed payload of {len(payload)} bytes exceeds the limit")
    ctx = payload_obj["ctx"].encode("utf-8")
    signature = key.sign(ctx + b"\x00" + payload)
    return struct.pack(">I", len(payload)) + payload + signature


@dataclass(frozen=True)
class SignedBody:
    payload: bytes
    signature: bytes
    obj: dict[str, Any]

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        ctx = self.obj["ctx"].encode("utf-8")
        try:
            public_key.verify(self.signature, ctx + b"\x00" + self.payload)
        except InvalidSignature:
            return False
        return True


def open_signed_body(body: bytes | memoryview, where: str, ctx: str) -> SignedBody:
    """Split a signed body and parse its payload; the signature is not checked."""
    view = memoryview(body)
    if len(view) < 4 + SIGNATURE_LEN:
        raise FormatError("signed body too short", where)
    (length,) = struct.unpack_from(">I", view, 0)
    if length > MAX_SIGNED_PAYLOAD or 4 + length + SIGNATURE_LEN != len(view):
        raise FormatError(
            f"signed body length field {length} does not match body of {len(view)} bytes",
            where,
        )
    payload = bytes(view[4 : 4 + length])
    obj = parse_canonical(payload, where)
    if obj.get("ctx") != ctx:
        raise FormatError(f"context {obj.get('ctx')!r} where {ctx!r} was expected", where)
    if obj.get("v") != FORMAT_VERSION:
        raise FormatError(f"format version {obj.get('v')!r} is not supported", where)
    return SignedBody(payload, bytes(view[4 + length :]), obj)


# --------------------------------------------------------------------------
# fragments

FRAGMENT_HEAD = struct.Struct(">Q32s")  # index, SHA-256 of the plaintext
AEAD_TAG_LEN = 16


def fragment_nonce(index: int) -> bytes:
    """96-bit ChaCha20-Poly1305 nonce: 4 zero bytes and the index (u64 BE).

    Each segment has its own fresh key, so the index alone is unique per key.
    """
    return b"\x00\x00\x00\x00" + struct.pack(">Q", index)


def fragment_aad(header_digest: bytes, index: int) -> bytes:
    return FRAGMENT_AAD_PREFIX + header_digest + struct.pack(">Q", index)


def hpke_info(device_id: str, segment_seq: int) -> bytes:
    return HPKE_INFO_PREFIX + canonical_json({"device": device_id, "segment_seq": segment_seq})
