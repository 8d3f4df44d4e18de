"""Decryption: segment keys, fragments, and unsealing verified segments into
plain media files plus metadata JSON.  The verifier never decrypts; with an
archive identity it asks ``check_plaintext`` here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bodycam.errors import FormatError, InputError, UsageError, VerificationError

from .format import fragment_aad, fragment_nonce, hpke_info
from .fsutil import write_new_file
from .report import SegmentReport, SegmentStatus
from .sealer import HPKE_SUITE, MANIFEST_SUFFIX, MEDIA_TYPES, SEGMENT_SUFFIX, SEGMENTS_DIR
from .segment_file import SegmentScan, map_file, scan_segment

if TYPE_CHECKING:
    from .verifier import Verifier

UNSEALABLE = (SegmentStatus.VERIFIED, SegmentStatus.TRUNCATED, SegmentStatus.OPEN)


def segment_key(identity: X25519PrivateKey, scan: SegmentScan) -> bytes:
    """Unwrap a segment's data key (HPKE base mode, §3.1); ValueError / InvalidTag if it fails."""
    header = scan.header_payload
    return HPKE_SUITE.decrypt(
        bytes.fromhex(header.wrapped_key), identity, hpke_info(header.device, header.segment_seq)
    )


def decrypt_fragments(identity: X25519PrivateKey, scan: SegmentScan, count: int) -> Iterator[bytes]:
    """Decrypt the first ``count`` fragments; raises InvalidTag on forgery."""
    aead = ChaCha20Poly1305(segment_key(identity, scan))
    for frag in scan.fragments[:count]:
        yield aead.decrypt(
            fragment_nonce(frag.index), frag.ciphertext, fragment_aad(scan.header_digest, frag.index)
        )


def check_plaintext(identity: X25519PrivateKey, rep: SegmentReport, scan: SegmentScan, count: int) -> bool:
    """Decrypt the covered fragments and compare each with its signed digest."""
    try:
        for frag, plain in zip(scan.fragments, decrypt_fragments(identity, scan, count)):
            if hashlib.sha256(plain).digest() != frag.pt_digest:
                rep.fail(f"fragment {frag.index}: plaintext digest differs")
                return False
    except (InvalidTag, ValueError):
        rep.fail("does not decrypt with this archive identity (wrong key or altered data)")
        return False
    rep.plaintext_checked = True
    return True


@dataclass
class UnsealResult:
    ok: bool = True
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def unseal_recordings(verifier: "Verifier", root: Path, out: Path, unsafe: bool = False) -> UnsealResult:
    """Verify ``root`` and write each covered segment's plaintext to ``out``.

    Refuses (nothing decrypted) unless the recording verified or is
    truncated, or ``unsafe`` is set (then failed segments are decrypted too,
    marked ``"verified": false``).
    """
    if verifier.identity is None:
        raise UsageError("unsealing needs the archive identity")
    identity = verifier.identity
    result = UnsealResult()
    report, good = verifier.verify_recording(root)
    bad = [s for s in report.segments if s.status not in UNSEALABLE + (SegmentStatus.DELETED, SegmentStatus.EXCLUDED)]
    try:
        report.require(allow_truncated=True)
        refused = False
    except VerificationError:
        refused = True
    if refused and not unsafe:
        result.ok = False
        result.lines.append(f"refused: {root} does not verify; nothing was decrypted")
        for seg in bad:
            result.lines.append(f"  {seg.name}: {seg.status}: {'; '.join(seg.reasons)}")
        for reason in report.reasons + report.seal_log.reasons:
            result.lines.append(f"  {reason}")
        result.lines.append("run `bodycam verify` for the full report")
        return result
    out.mkdir(parents=True, exist_ok=True)
    for seg in good:
        ext = MEDIA_TYPES.get(seg.scan.header_payload.media, ".bin")
        plaintext = b"".join(decrypt_fragments(identity, seg.scan, seg.covered))
        media_path = out / f"{seg.report.name}{ext}"
        meta = {
            "format": "bodycam-unsealed/2",
            "verified": True,
            "status": seg.report.status,
            "trust_anchor": verifier.anchor,
            "device_certificate": report.device_certificate,
            "media_file": media_path.name,
            "header": {k: v for k, v in seg.scan.header.obj.items() if k != "wrapped_key"},
            "manifest": seg.manifest.signed.obj if seg.manifest else None,
            "segment_digest": seg.report.digest,
            "verification": asdict(seg.report),
        }
        _write_pair(media_path, plaintext, meta, result)
    if unsafe:
        done = {seg.report.name for seg in good}
        for seg in report.segments:
            if seg.name in done or seg.status in (SegmentStatus.DELETED, SegmentStatus.EXCLUDED,
                                                  SegmentStatus.MISSING):
                continue
            _unsafe_unseal(identity, root, out, seg.name, seg.status, seg.reasons, result)
    return result


def _write_pair(media_path: Path, plaintext: bytes, meta: dict, result: UnsealResult) -> None:
    if media_path.exists():
        raise UsageError(f"{media_path} exists; unseal never overwrites, choose an empty --out")
    json_path = media_path.with_suffix(".json")
    if not plaintext:
        # A power cut before the first checkpoint: no footage is covered, so
        # there is no media file, only the record of the segment.
        meta = {**meta, "media_file": None}
        write_new_file(json_path, json.dumps(meta, indent=2, ensure_ascii=False).encode(), mode=0o644)
        result.files.append(json_path)
        result.lines.append(f"{json_path}  no footage covered  {meta['status']}")
        return
    write_new_file(media_path, plaintext, mode=0o644)
    write_new_file(json_path, json.dumps(meta, indent=2, ensure_ascii=False).encode(), mode=0o644)
    result.files += [media_path, json_path]
    label = "" if meta["verified"] else "  (UNVERIFIED)"
    result.lines.append(f"{media_path}  {len(plaintext)} bytes  {meta['status']}{label}")


def _unsafe_unseal(identity: X25519PrivateKey, root: Path, out: Path, name: str, status: str,
                   reasons: list[str], result: UnsealResult) -> None:
    path = root / SEGMENTS_DIR / f"{name}{SEGMENT_SUFFIX}"
    try:
        scan = scan_segment(map_file(path), path.name)
        chunks = []
        for chunk in decrypt_fragments(identity, scan, len(scan.fragments)):
            chunks.append(chunk)
    except (FormatError, InputError, InvalidTag, ValueError) as exc:
        result.lines.append(f"{name}: cannot decrypt even unsafely: {exc}")
        result.ok = False
        return
    ext = MEDIA_TYPES.get(scan.header_payload.media, ".bin")
    meta = {
        "format": "bodycam-unsealed/2",
        "verified": False,
        "status": status,
        "reasons": reasons,
        "media_file": f"{name}{ext}",
        "header": {k: v for k, v in scan.header.obj.items() if k != "wrapped_key"},
        "manifest_present": path.with_suffix(MANIFEST_SUFFIX).exists(),
    }
    _write_pair(out / f"{name}{ext}", b"".join(chunks), meta, result)
    result.ok = False
