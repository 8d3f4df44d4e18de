"""Checks of one segment file and its manifest (docs/format.md §7.4–§7.5).

Structure and payloads are parsed by ``segment_file`` (typed models); here
every signature, chain value, cross-reference with the seal log and rule of
the format is checked.  Results go into a ``SegmentReport``; nothing raises
for what the files hold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bodycam.errors import FormatError, InputError, TrustError

from . import pki
from .report import SegmentReport, SegmentStatus
from .segment_file import ManifestFile, SegmentScan, map_file, read_manifest, scan_segment
from .verify_log import SegmentEvidence

# Fields a manifest repeats from its header; they must agree.
HEADER_FIELDS = (
    "device", "segment_seq", "segment", "media", "officer", "opened_utc",
    "opened_local", "timezone", "clock_state", "prev_segment",
)


@dataclass
class VerifiedSegment:
    """What unsealing needs of a segment that passed verification."""

    report: SegmentReport
    scan: SegmentScan
    manifest: ManifestFile | None
    covered: int  # fragments covered by a valid checkpoint / manifest


@dataclass(frozen=True)
class SegmentContext:
    device_id: str
    public: Ed25519PublicKey
    certificate: x509.Certificate
    revoked_at: dt.datetime | None  # from the agency CA's CRL, if given
    seal_may_be_torn: bool  # last segment and the log ends in a torn record


def _utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def check_signed_time(rep: SegmentReport, ctx: SegmentContext, label: str, text: str) -> None:
    """The device certificate judged at the time the device signed (§7.1)."""
    when = _utc(text)
    try:
        pki.check_validity(ctx.certificate, f"device certificate at {label}", when)
    except TrustError as exc:
        rep.fail(str(exc))
    if ctx.revoked_at is not None and when >= ctx.revoked_at:
        rep.fail(f"signed at {text} ({label}), after the device certificate was revoked "
                 f"at {ctx.revoked_at:%Y-%m-%dT%H:%M:%SZ}")


def check_dock_bounds(rep: SegmentReport, ctx: SegmentContext, ev: SegmentEvidence) -> None:
    """Dock-signed clock syncs on the chain bound when the segment was made, whatever
    the device's clock claimed (§7.1): a floor after the certificate's end or its
    revocation, or a ceiling before its start, fails the segment."""
    cert = ctx.certificate
    if ev.time_floor is not None:
        if ev.time_floor > cert.not_valid_after_utc:
            rep.fail(f"opened after a dock-synced time {ev.time_floor:%Y-%m-%dT%H:%M:%SZ}, after the "
                     "device certificate ended")
        if ctx.revoked_at is not None and ev.time_floor >= ctx.revoked_at:
            rep.fail(f"opened after a dock-synced time {ev.time_floor:%Y-%m-%dT%H:%M:%SZ}, after the "
                     "device certificate was revoked (its own clock says otherwise)")
    if ev.time_ceiling is not None and ev.time_ceiling < cert.not_valid_before_utc:
        rep.fail(f"sealed before a dock-synced time {ev.time_ceiling:%Y-%m-%dT%H:%M:%SZ}, before the "
                 "device certificate began")


def verify_segment(
    path: Path, rep: SegmentReport, ev: SegmentEvidence, ctx: SegmentContext
) -> VerifiedSegment | None:
    """Check the segment file ``path`` and the manifest beside it as format §7.4
    says, against what the seal log says of it (``ev``).  Fills ``rep``
    (status, reasons, covered fragments, digest); returns what unsealing
    needs, or None if it failed.  Never raises for what the files hold."""
    try:
        data = map_file(path)
        scan = scan_segment(data, path.name)
    except (FormatError, InputError) as exc:
        rep.fail(str(exc))
        return None
    header = scan.header_payload
    rep.media = header.media
    rep.officer = header.officer
    rep.opened_utc = header.opened_utc
    if not scan.header.verify(ctx.public):
        rep.fail("header signature does not verify with the device key")
        return None
    if header.device != ctx.device_id:
        rep.fail(f"header names device {header.device!r}, not {ctx.device_id!r}")
    if header.segment_seq != rep.seq or header.segment != rep.name:
        rep.fail(
            f"header says segment {header.segment_seq} {header.segment!r}; the seal log "
            f"expects {rep.seq} {rep.name!r} (replayed or substituted segment)"
        )
    if scan.header_digest.hex() != ev.opened.typed.header_digest:  # type: ignore[union-attr]
        rep.fail("header differs from the one recorded in the seal log")
    if header.run != ev.opened.obj["run"]:
        rep.fail("header run differs from the run that logged its opening")
    if header.prev_segment != ev.expected_prev:
        rep.fail("does not chain to the segment sealed before it was opened (prev_segment)")
    check_signed_time(rep, ctx, "opening", header.opened_utc)
    check_dock_bounds(rep, ctx, ev)

    covered = check_checkpoints(rep, scan, ctx)
    if rep.failed:
        return None

    manifest_path = path.with_suffix(".bcman")
    manifest: ManifestFile | None = None
    if manifest_path.exists() or manifest_path.is_symlink():
        try:
            manifest = read_manifest(manifest_path)
        except (FormatError, InputError) as exc:
            rep.fail(f"manifest: {exc}")
            return None
        got = check_manifest(rep, scan, manifest, ev, ctx, data)
        if got is None:
            return None
        covered = got
    elif ev.sealed is not None:
        rep.fail("manifest missing although the seal log says the segment was sealed")
        return None
    else:
        rep.status = SegmentStatus.OPEN
        rep.reasons.append(
            f"not sealed yet: {covered} of {len(scan.fragments)} fragments covered by a checkpoint"
        )
        if scan.corrupt is not None:
            rep.reasons.append(f"bytes from offset {scan.corrupt.offset} do not parse (not covered)")
    rep.fragments = covered
    return VerifiedSegment(rep, scan, manifest, covered)


CP_SIGNATURE = "signature does not verify"
CP_FOREIGN = "belongs to another device or segment"
CP_COUNT = "fragment count differs from the fragments before it (fragments removed or inserted)"
CP_CHAIN = "chain differs from the fragments before it (altered data)"


def check_checkpoints(rep: SegmentReport, scan: SegmentScan, ctx: SegmentContext) -> int:
    """Every checkpoint's signature, owner, fragment count and chain (§7.4 item 3).

    Returns how many fragments the last good checkpoint covers.  Fails ``rep``
    with one reason per distinct problem, naming how many checkpoints it
    concerns and their offsets, not one per checkpoint: the chain is cumulative,
    so one altered fragment makes every later checkpoint differ."""
    covered = 0
    problems: dict[str, list] = {}  # problem -> its checkpoints, in file order
    first_chain_break: int | None = None  # fragments covered by the last good checkpoint before it
    for cp in scan.checkpoints:
        obj = cp.payload
        if not cp.signed.verify(ctx.public):
            problem = CP_SIGNATURE
        elif obj.device != ctx.device_id or obj.segment_seq != rep.seq:
            problem = CP_FOREIGN
        elif obj.fragments != cp.seen:
            problem = CP_COUNT
        elif obj.chain != cp.chain_at.hex():
            problem = CP_CHAIN
            if first_chain_break is None:
                first_chain_break = covered
        else:
            covered = cp.seen
            continue
        problems.setdefault(problem, []).append(cp)
    for problem, cps in problems.items():
        if len(cps) == 1:
            where = f"checkpoint at offset {cps[0].offset} (after fragment {cps[0].seen})"
        else:
            where = (f"{len(cps)} of {len(scan.checkpoints)} checkpoints, at offsets {cps[0].offset} … "
                     f"{cps[-1].offset} (after fragments {cps[0].seen} … {cps[-1].seen})")
        if problem == CP_CHAIN:
            low, high = first_chain_break + 1, cps[0].seen  # counted from 1
            problem += (f"; the first altered fragment is fragment {high}" if low == high else
                        f"; the first altered fragment is among fragments {low}–{high}") + " (counted from 1)"
        rep.fail(f"{where}: {problem}")
    return covered


def check_manifest(
    rep: SegmentReport,
    scan: SegmentScan,
    manifest: ManifestFile,
    ev: SegmentEvidence,
    ctx: SegmentContext,
    data: bytes | memoryview,
) -> int | None:
    """Format §7.4 item 4: the manifest against the file and the seal log;
    returns the number of covered fragments, or None after ``rep.fail``."""
    m = manifest.payload
    rep.digest = manifest.digest.hex()
    rep.closed_utc = m.closed_utc
    if not manifest.signed.verify(ctx.public):
        rep.fail("manifest signature does not verify with the device key")
        return None
    header = scan.header_payload
    for key in HEADER_FIELDS:
        if getattr(m, key) != getattr(header, key):
            rep.fail(f"manifest field {key!r} differs from the header")
    if m.header_digest != scan.header_digest.hex():
        rep.fail("manifest names another header")
    if ev.sealed is None:
        if not ctx.seal_may_be_torn:
            rep.fail("sealed manifest is not recorded in the seal log")
    elif ev.sealed_digest != manifest.digest.hex():
        rep.fail("manifest differs from the one recorded in the seal log")
    check_signed_time(rep, ctx, "sealing", m.closed_utc)
    count = m.fragment_count
    if count > len(scan.fragments):
        rep.fail(f"manifest covers {count} fragments but the file holds {len(scan.fragments)} "
                 "(fragments removed)")
        return None
    if m.chain != scan.chain_after(count).hex():
        rep.fail("manifest chain does not match the fragments in the file (altered data)")
        return None
    for listed, frag in zip(m.fragments, scan.fragments):
        if listed.sha256 != frag.pt_digest.hex():
            rep.fail(f"fragment {listed.i}: digest differs from the manifest")
            return None
    if m.file_bytes != len(data):
        rep.fail(f"file is {len(data)} bytes; the manifest sealed {m.file_bytes} "
                 "(bytes appended or cut)")
        return None
    if m.status == "complete":
        # A complete segment ends exactly after its last checkpoint: a torn
        # tail or fragments beyond the manifest in a *sealed* file are not
        # power loss (the manifest was written after them), so they fail.
        if scan.corrupt is not None:
            rep.fail(f"sealed segment is corrupt at offset {scan.corrupt.offset}: {scan.corrupt.reason}")
            return None
        if count != len(scan.fragments) or scan.torn is not None:
            rep.fail("sealed segment holds bytes or fragments its manifest does not list")
            return None
        if scan.chain_boundary(count) != len(data):
            rep.fail("a complete segment must end with the checkpoint covering all its fragments")
            return None
        if rep.failed:
            return None
        rep.status = SegmentStatus.VERIFIED
        return count
    t = m.truncated
    if t is None:  # excluded by the model; kept for type checkers
        rep.fail("truncated manifest without its truncation record")
        return None
    boundary = scan.chain_boundary(count)
    trailing = hashlib.sha256(memoryview(data)[t.covered_bytes:]).hexdigest()
    if t.covered_bytes != boundary or t.uncovered_sha256 != trailing:
        rep.fail("truncation record does not match the file (covered_bytes must end the "
                 "checkpoint that covers after_fragment fragments)")
        return None
    if ev.unclean is None:
        rep.fail("truncated, but the seal log records no unclean stop")
        return None
    if rep.failed:
        return None
    rep.status = SegmentStatus.TRUNCATED
    rep.reasons.append(
        f"power loss: sealed at recovery after fragment {count}; "
        f"{t.uncovered_bytes} bytes after the last checkpoint are not covered"
    )
    return count
