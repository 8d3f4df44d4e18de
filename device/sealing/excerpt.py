"""Excerpts: the segments of one case, placed in the device's chain (docs/format.md §10).

A court receives the segments of one case, not a device's whole history
(Art. 18).  An excerpt is a recording folder holding

* ``identity/device.crt``;
* ``seallog/``: the device's seal log up to the head the excerpt was made at.
  Its entries are the proof that places each chosen segment in the chain
  (sequence, ``prev_segment``, sealed digest); they hold names, times and
  digests, never footage;
* ``segments/``: only the chosen segments and their manifests;
* ``excerpt.json``: ``{"format": "bodycam-excerpt/2", "device", "segments": [names],
  "head_seq", "head_digest", "created_utc", "purpose"}``.

It verifies on its own: every chosen segment must be present and verify;
every other segment the log names is reported ``excluded`` — an intentional
gap, listed by name — instead of ``missing``.  ``excerpt.json`` is not
signed and cannot make anything verify: a name it omits only turns
``missing`` into ``excluded``, which the report shows.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from bodycam.errors import FormatError, UsageError

from . import pki
from .clock import utc_text
from .fsutil import write_new_file
from .models import DEVICE, HEX32, SEGMENT, UTC, _Strict, parse_payload
from .report import SegmentStatus
from .safeio import MAX_CERTIFICATE_FILE, list_folder, map_bounded, read_bounded
from .sealer import MANIFEST_SUFFIX, SEGMENT_SUFFIX, SEGMENTS_DIR
from .seallog import LOG_DIR, LOG_FILE_RE, MAX_LOG_FILE
from .segment_file import MAX_MANIFEST_FILE, MAX_SEGMENT_FILE

EXCERPT_FILE = "excerpt.json"
EXCERPT_FORMAT = "bodycam-excerpt/2"
MAX_EXCERPT_FILE = 4 * 1024 * 1024


class ExcerptIndex(_Strict):
    format: Literal["bodycam-excerpt/2"]
    device: Annotated[str, Field(pattern=DEVICE)]
    segments: Annotated[list[Annotated[str, Field(pattern=SEGMENT)]], Field(min_length=1, max_length=100_000)]
    head_seq: Annotated[int, Field(ge=0)]
    head_digest: Annotated[str, Field(pattern=HEX32)]
    created_utc: Annotated[str, Field(pattern=UTC)]
    purpose: Annotated[str, Field(max_length=500)]


def read_index(root: Path) -> ExcerptIndex | None:
    """The folder's excerpt.json, or None if it is a whole recording; FormatError / InputError."""
    path = Path(root) / EXCERPT_FILE
    if not path.exists() and not path.is_symlink():
        return None
    data = read_bounded(path, MAX_EXCERPT_FILE, "excerpt index", follow_links=False)
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise FormatError("not JSON", str(path)) from None
    return parse_payload(ExcerptIndex, obj, str(path))


def make_excerpt(verifier, source: Path, names: list[str], out: Path, purpose: str = "") -> Path:
    """Write an excerpt of ``source`` with the segments ``names`` to the new folder ``out``.

    ``verifier``: a ``Verifier``; the source must place and verify each
    chosen segment (truncated counts), else VerificationError.  Raises
    UsageError if ``out`` exists or a name is not in the recording.
    Returns ``out``.  The archive calls this on its export folder.
    """
    if out.exists():
        raise UsageError(f"{out} exists; an excerpt is written to a new folder")
    if not names:
        raise UsageError("an excerpt needs at least one segment")
    report, _ = verifier.verify_recording(source)
    if not report.seal_log.usable or report.seal_log.head_seq is None:
        raise UsageError(f"{source}: the seal log does not verify; no excerpt can place segments")
    known = {seg.name for seg in report.segments}
    for name in names:
        if name not in known:  # a name asked for, not a check that failed: bad input
            raise UsageError(f"{source}: no segment {name!r} in this recording")
        report.segment(name).require(allow_incomplete=True)
    (out / pki.IDENTITY_DIR).mkdir(parents=True)
    (out / LOG_DIR).mkdir()
    (out / SEGMENTS_DIR).mkdir()
    cert = read_bounded(source / pki.IDENTITY_DIR / pki.DEVICE_CERT, MAX_CERTIFICATE_FILE,
                        "device certificate", follow_links=False)
    write_new_file(out / pki.IDENTITY_DIR / pki.DEVICE_CERT, cert, mode=0o444)
    # Only regular files, bounded, as the verifier reads them (a link or FIFO in the
    # source is not followed; the verifier has already reported it).
    regular, _ = list_folder(source / LOG_DIR, "seal log folder")
    for name in regular:
        if LOG_FILE_RE.match(name):
            data = map_bounded(source / LOG_DIR / name, MAX_LOG_FILE, "seal-log file")
            write_new_file(out / LOG_DIR / name, bytes(data), mode=0o444)
    for name in names:
        for suffix, limit in ((SEGMENT_SUFFIX, MAX_SEGMENT_FILE), (MANIFEST_SUFFIX, MAX_MANIFEST_FILE)):
            data = map_bounded(source / SEGMENTS_DIR / f"{name}{suffix}", limit, "segment file")
            write_new_file(out / SEGMENTS_DIR / f"{name}{suffix}", bytes(data), mode=0o444)
    index = {
        "format": EXCERPT_FORMAT, "device": report.device, "segments": sorted(names),
        "head_seq": report.seal_log.head_seq, "head_digest": report.seal_log.head_digest,
        "created_utc": utc_text(dt.datetime.now(dt.timezone.utc)), "purpose": purpose,
    }
    parse_payload(ExcerptIndex, index, "excerpt index")
    write_new_file(out / EXCERPT_FILE, json.dumps(index, indent=1, ensure_ascii=False).encode(), mode=0o644)
    return out


def apply_index(index: ExcerptIndex, report) -> None:
    """Mark what the excerpt left out as EXCLUDED and check what it promises."""
    chosen = set(index.segments)
    excluded = []
    for seg in report.segments:
        if seg.name in chosen:
            continue
        if seg.status is SegmentStatus.MISSING and seg.seq is not None:
            seg.status = SegmentStatus.EXCLUDED
            seg.reasons = ["left out of this excerpt on purpose"]
            excluded.append(seg.name)
    names = {s.name for s in report.segments}
    for name in sorted(chosen - names):
        report.reasons.append(f"excerpt: {name} is listed but the seal log does not name it")
    if index.device != report.device:
        report.reasons.append(f"excerpt: index names device {index.device}, not {report.device}")
    log = report.seal_log
    if (log.head_seq, log.head_digest) != (index.head_seq, index.head_digest):
        report.reasons.append(
            f"excerpt: made at seal-log head {index.head_seq}, but the log here ends at {log.head_seq} "
            "or differs")
    report.excerpt = {"segments": sorted(chosen), "excluded": excluded, "purpose": index.purpose,
                      "created_utc": index.created_utc, "head_seq": index.head_seq}
