"""Decrypt verified segments into plain media files plus metadata JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag

from bodycam.errors import FormatError, UsageError

from .fsutil import write_new_file
from .sealer import MEDIA_TYPES, MANIFEST_SUFFIX, SEGMENT_SUFFIX, SEGMENTS_DIR
from .segment_file import scan_segment
from .verifier import Verifier

UNSEALABLE = ("verified", "truncated", "open")


@dataclass
class UnsealResult:
    ok: bool = True
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def unseal_recordings(verifier: Verifier, root: Path, out: Path, unsafe: bool = False) -> UnsealResult:
    result = UnsealResult()
    report, good = verifier.verify_recording(root)
    bad = [s for s in report.segments if s.status not in UNSEALABLE + ("deleted",)]
    if (bad or report.seal_log.status not in ("verified", "truncated") or report.reasons) and not unsafe:
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
        ext = MEDIA_TYPES.get(seg.scan.header.obj["media"], ".bin")
        plaintext = b"".join(verifier.plaintext(seg.scan, seg.covered))
        media_path = out / f"{seg.report.name}{ext}"
        meta = {
            "format": "bodycam-unsealed/1",
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
            if seg.name in done or seg.status == "deleted":
                continue
            _unsafe_unseal(verifier, root, out, seg.name, seg.status, seg.reasons, result)
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


def _unsafe_unseal(verifier: Verifier, root: Path, out: Path, name: str, status: str,
                   reasons: list[str], result: UnsealResult) -> None:
    path = root / SEGMENTS_DIR / f"{name}{SEGMENT_SUFFIX}"
    try:
        scan = scan_segment(path.read_bytes(), path.name)
        chunks = []
        for chunk in verifier.plaintext(scan, len(scan.fragments)):
            chunks.append(chunk)
    except (FormatError, OSError, InvalidTag, ValueError, KeyError) as exc:
        result.lines.append(f"{name}: cannot decrypt even unsafely: {exc}")
        result.ok = False
        return
    ext = MEDIA_TYPES.get(scan.header.obj.get("media"), ".bin")
    meta = {
        "format": "bodycam-unsealed/1",
        "verified": False,
        "status": status,
        "reasons": reasons,
        "media_file": f"{name}{ext}",
        "header": {k: v for k, v in scan.header.obj.items() if k != "wrapped_key"},
        "manifest_present": path.with_suffix(MANIFEST_SUFFIX).exists(),
    }
    _write_pair(out / f"{name}{ext}", b"".join(chunks), meta, result)
    result.ok = False
