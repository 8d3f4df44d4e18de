"""Capture-time sealing: segments of encrypted fragments, checkpoints, manifests.

The order of durability (docs/format.md, "Durability"):

1. a segment file is created with its signed header, fsync'd, the folder
   fsync'd, and only then is ``segment-opened`` written to the seal log;
2. each fragment is encrypted, appended and fsync'd before a checkpoint
   may cover it; the checkpoint is appended and fsync'd in turn;
3. at close, a final checkpoint, then the manifest file (written under a
   temporary name, fsync'd, linked into place, folder fsync'd), then
   ``segment-sealed`` in the seal log.

The segment's data key exists only in this process's memory; the file holds
it wrapped to the archive's X25519 key with HPKE, so once a segment is
closed nothing on the recorder can decrypt it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bodycam.errors import SealingError

from .clock import Clock, compact_local, local_text, utc_text
from . import pki
from .format import (
    CTX_CHECKPOINT,
    CTX_HEADER,
    CTX_MANIFEST,
    FORMAT_VERSION,
    AEAD_TAG_LEN,
    FRAGMENT_HEAD,
    HASH_LEAF,
    MAGIC_MANIFEST,
    MAX_RECORD_BODY,
    RECORD_PREFIX,
    MAGIC_SEGMENT,
    REC_CHECKPOINT,
    REC_FRAGMENT,
    REC_HEADER,
    REC_MANIFEST,
    ZERO_DIGEST,
    chain_link,
    encode_record,
    fragment_aad,
    fragment_nonce,
    hpke_info,
    leaf_hash,
    sign_body,
)
from .fsutil import fsync_dir, write_new_file

HPKE_SUITE_NAME = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305"
HPKE_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
AEAD_NAME = "ChaCha20-Poly1305"

SEGMENTS_DIR = "segments"
INCOMPLETE_DIR = "incomplete"
SEGMENT_SUFFIX = ".bcseg"
MANIFEST_SUFFIX = ".bcman"
NO_OFFICER = "000000"

MEDIA_TYPES = {
    "video/mp4": ".mp4",
    "audio/mp4": ".m4a",
    "image/jpeg": ".jpg",
    "application/octet-stream": ".bin",
}

STATUS_COMPLETE = "complete"
STATUS_TRUNCATED = "truncated"


# A segment file stem as segment_name() spells it; the dock link and the dock
# accept no other name (docs/format.md §13).
SEGMENT_NAME_RE = re.compile(r"^[A-Z0-9]{7}_[A-Z0-9]{6,12}_[0-9]{14}_[0-9]{4,}$")


def segment_name(device_id: str, officer: str | None, opened_local: str, seq: int) -> str:
    """``A123456_010203_20261127091500_0042``: readable, as vendors name files."""
    return f"{device_id}_{officer or NO_OFFICER}_{opened_local}_{seq:04d}"


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    key: Ed25519PrivateKey
    public_raw: bytes
    recipient: X25519PublicKey
    recipient_fingerprint: str
    valid_from: dt.datetime
    valid_until: dt.datetime

    @classmethod
    def load(cls, state_dir: Path) -> "DeviceIdentity":
        ident = Path(state_dir) / pki.IDENTITY_DIR
        ca = pki.load_cert(ident / pki.CA_CERT, "agency CA certificate")
        cert = pki.load_cert(ident / pki.DEVICE_CERT, "device certificate")
        # Validity is not judged here: a recorder whose certificate has lapsed
        # still records (footage is judged at its signed time, and the boot
        # entry says whether the certificate was valid then).
        pki.check_cert(cert, ca, pki.ROLE_DEVICE, str(ident / pki.DEVICE_CERT), at=False)
        key = pki.load_ed25519_key(ident / pki.DEVICE_KEY, "device key")
        if key.public_key().public_bytes_raw() != cert.public_key().public_bytes_raw():
            raise SealingError(f"{ident}: device key does not match device certificate")
        rcert = pki.load_cert(ident / pki.RECIPIENT_CERT, "archive recipient certificate")
        pki.check_cert(rcert, ca, pki.ROLE_ARCHIVE_RECIPIENT, str(ident / pki.RECIPIENT_CERT), at=False)
        recipient = rcert.public_key()
        if not isinstance(recipient, X25519PublicKey):
            raise SealingError(f"{ident / pki.RECIPIENT_CERT}: recipient key is not X25519")
        return cls(
            pki.cert_id(cert) or "",
            key,
            key.public_key().public_bytes_raw(),
            recipient,
            pki.fingerprint(rcert),
            cert.not_valid_before_utc,
            cert.not_valid_after_utc,
        )


class SegmentWriter:
    """One open segment.  Not thread-safe: one capture thread feeds it."""

    def __init__(
        self,
        *,
        path: Path,
        identity: DeviceIdentity,
        header: dict[str, Any],
        data_key: bytearray,
        clock: Clock,
        checkpoint_interval: float,
        on_close,
    ) -> None:
        self.path = path
        self.name = header["segment"]
        self.seq: int = header["segment_seq"]
        self.header = header
        self._identity = identity
        self._clock = clock
        self._interval_ns = int(checkpoint_interval * 1e9)
        self._on_close = on_close
        self._key = data_key
        self._aead: ChaCha20Poly1305 | None = ChaCha20Poly1305(bytes(data_key))
        header_record = encode_record(REC_HEADER, sign_body(identity.key, header))
        self.header_digest = leaf_hash(header_record)
        self._chain = chain_link(ZERO_DIGEST, self.header_digest)
        self.fragments: list[dict[str, Any]] = []
        self._covered = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o444)
        self._size = 0
        self._write(MAGIC_SEGMENT + header_record)
        fsync_dir(path.parent)
        self._last_cp_ns = clock.monotonic_ns()
        self._last_fragment_ns = self._last_cp_ns
        self.closed = False

    # -- writing ---------------------------------------------------------

    def _write(self, *parts: bytes) -> None:
        """Append ``parts`` and fsync; one writev, no concatenation copies."""
        total = sum(len(p) for p in parts)
        written = os.writev(self._fd, parts)
        if written != total:  # short write: finish it piece by piece
            rest = memoryview(b"".join(parts))[written:]
            while rest:
                rest = rest[os.write(self._fd, rest) :]
        os.fsync(self._fd)
        self._size += total

    def append(self, plaintext: bytes | memoryview) -> int:
        """Encrypt and append one fragment; checkpoint when it is due."""
        if self.closed or self._aead is None:
            raise SealingError(f"segment {self.name} is closed")
        index = len(self.fragments)
        body_len = FRAGMENT_HEAD.size + len(plaintext) + AEAD_TAG_LEN
        if body_len > MAX_RECORD_BODY:
            raise SealingError(f"fragment of {len(plaintext)} bytes exceeds the record limit")
        pt_digest = hashlib.sha256(plaintext).digest()
        ciphertext = self._aead.encrypt(
            fragment_nonce(index), plaintext, fragment_aad(self.header_digest, index)
        )
        head = RECORD_PREFIX.pack(REC_FRAGMENT, body_len) + FRAGMENT_HEAD.pack(index, pt_digest)
        self._write(head, ciphertext)
        leaf = hashlib.sha256(HASH_LEAF + head)
        leaf.update(ciphertext)
        self._chain = chain_link(self._chain, leaf.digest())
        self.fragments.append({"i": index, "bytes": len(plaintext), "sha256": pt_digest.hex()})
        now = self._clock.monotonic_ns()
        gap = now - self._last_fragment_ns
        self._last_fragment_ns = now
        # Checkpoint now if waiting for the next fragment would leave more
        # than one interval uncovered.
        if now - self._last_cp_ns + gap >= self._interval_ns:
            self.checkpoint()
        return index

    def checkpoint(self) -> None:
        if self._covered == len(self.fragments):
            return
        payload = {
            "ctx": CTX_CHECKPOINT,
            "v": FORMAT_VERSION,
            "device": self._identity.device_id,
            "segment_seq": self.seq,
            "fragments": len(self.fragments),
            "chain": self._chain.hex(),
            "utc": utc_text(self._clock.utc_now()),
            "mono_ns": str(self._clock.monotonic_ns()),
        }
        self._write(encode_record(REC_CHECKPOINT, sign_body(self._identity.key, payload)))
        self._covered = len(self.fragments)
        self._last_cp_ns = self._clock.monotonic_ns()

    def close(self, meta: dict[str, Any] | None = None) -> bytes:
        """Seal the segment; returns the segment digest (of its manifest)."""
        if self.closed:
            raise SealingError(f"segment {self.name} is already closed")
        self.checkpoint()
        os.close(self._fd)
        self._forget_key()
        now = self._clock.utc_now()
        manifest = build_manifest(
            self.header,
            header_digest=self.header_digest,
            chain=self._chain,
            fragments=self.fragments,
            closed_utc=utc_text(now),
            closed_local=local_text(now, self.header["timezone"]),
            file_bytes=self._size,
            status=STATUS_COMPLETE,
            truncated=None,
            meta=meta or {},
        )
        digest = write_manifest(self.path, self._identity.key, manifest)
        self.closed = True
        self._on_close(self, digest, STATUS_COMPLETE)
        return digest

    def _forget_key(self) -> None:
        for i in range(len(self._key)):
            self._key[i] = 0
        self._aead = None  # OpenSSL cleanses the cipher context when freed

    def abandon(self) -> None:
        """Drop the key without a manifest: what a power cut does (tests)."""
        os.close(self._fd)
        self._forget_key()
        self.closed = True


def build_manifest(
    header: dict[str, Any],
    *,
    header_digest: bytes,
    chain: bytes,
    fragments: list[dict[str, Any]],
    closed_utc: str,
    closed_local: str,
    file_bytes: int,
    status: str,
    truncated: dict[str, Any] | None,
    meta: dict[str, Any],
) -> dict[str, Any]:
    return {
        "ctx": CTX_MANIFEST,
        "v": FORMAT_VERSION,
        "device": header["device"],
        "segment_seq": header["segment_seq"],
        "segment": header["segment"],
        "media": header["media"],
        "officer": header["officer"],
        "opened_utc": header["opened_utc"],
        "opened_local": header["opened_local"],
        "closed_utc": closed_utc,
        "closed_local": closed_local,
        "timezone": header["timezone"],
        "clock_state": header["clock_state"],
        "prev_segment": header["prev_segment"],
        "header_digest": header_digest.hex(),
        "chain": chain.hex(),
        "fragment_count": len(fragments),
        "fragments": fragments,
        "file_bytes": file_bytes,
        "status": status,
        "truncated": truncated,
        "meta": meta,
    }


def write_manifest(segment_path: Path, key: Ed25519PrivateKey, manifest: dict[str, Any]) -> bytes:
    record = encode_record(REC_MANIFEST, sign_body(key, manifest))
    write_new_file(segment_path.with_suffix(MANIFEST_SUFFIX), MAGIC_MANIFEST + record)
    return leaf_hash(record)


def new_data_key() -> bytearray:
    return bytearray(secrets.token_bytes(32))


def wrap_data_key(
    identity: DeviceIdentity, data_key: bytearray, segment_seq: int
) -> str:
    wrapped = HPKE_SUITE.encrypt(
        bytes(data_key), identity.recipient, hpke_info(identity.device_id, segment_seq)
    )
    return wrapped.hex()


def build_header(
    identity: DeviceIdentity,
    *,
    seq: int,
    media_type: str,
    officer: str | None,
    clock: Clock,
    timezone: str,
    prev_segment: bytes | None,
    wrapped_key_hex: str,
    checkpoint_interval: float,
    run: str,
    meta: dict[str, Any],
) -> dict[str, Any]:
    if media_type not in MEDIA_TYPES:
        raise SealingError(f"media type {media_type!r} not one of {', '.join(MEDIA_TYPES)}")
    now = clock.utc_now()
    return {
        "ctx": CTX_HEADER,
        "v": FORMAT_VERSION,
        "device": identity.device_id,
        "segment_seq": seq,
        "segment": segment_name(identity.device_id, officer, compact_local(now, timezone), seq),
        "media": media_type,
        "officer": officer,
        "opened_utc": utc_text(now),
        "opened_local": local_text(now, timezone),
        "opened_mono_ns": str(clock.monotonic_ns()),
        "timezone": timezone,
        "clock_state": clock.state,
        "prev_segment": prev_segment.hex() if prev_segment else None,
        "recipient": identity.recipient_fingerprint,
        "hpke_suite": HPKE_SUITE_NAME,
        "wrapped_key": wrapped_key_hex,
        "aead": AEAD_NAME,
        "checkpoint_interval_ms": int(checkpoint_interval * 1000),
        "run": run,
        "meta": meta,
    }

