"""Verify sealed recordings against the agency CA; fail closed.

A *recording* is a folder laid out like a recorder's state directory
(``identity/device.crt``, ``seallog/``, ``segments/``); private keys in it
are never read.  The report names every segment with a status and reasons:

verified   every check passed
truncated  sealed by recovery after a power cut: what the last checkpoint
           covered verifies; the bytes after it are reported, not trusted
open       not sealed yet (copied while recording): verified up to the last
           checkpoint
deleted    removed from the recorder after an archive receipt (seal log)
missing    the seal log names it, the folder does not hold it
unlogged   the folder holds it, the seal log does not (inserted / foreign)
failed     a signature, digest, chain link or field does not match

Only ``verified`` and ``deleted`` count as success.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bodycam.errors import FormatError, TrustError

from . import pki
from .format import fragment_aad, fragment_nonce, hpke_info, log_anchor
from .sealer import (
    HPKE_SUITE,
    MANIFEST_SUFFIX,
    SEGMENT_SUFFIX,
    SEGMENTS_DIR,
    STATUS_COMPLETE,
    STATUS_TRUNCATED,
)
from .seallog import (
    EV_DELETION,
    EV_SEGMENT_OPENED,
    EV_SEGMENT_SEALED,
    EV_UNCLEAN_STOP,
    LOG_DIR,
    LogEntry,
    scan_log,
)
from .segment_file import ManifestFile, SegmentScan, map_file, read_manifest, scan_segment

OK_STATUSES = ("verified", "deleted")

# Fields a manifest repeats from its header; they must agree.
HEADER_FIELDS = (
    "device", "segment_seq", "segment", "media", "officer", "opened_utc",
    "opened_local", "timezone", "clock_state", "prev_segment",
)


@dataclass
class SegmentReport:
    name: str
    seq: int | None
    status: str = "failed"
    reasons: list[str] = field(default_factory=list)
    fragments: int = 0
    media: str | None = None
    officer: str | None = None
    opened_utc: str | None = None
    closed_utc: str | None = None
    digest: str | None = None
    plaintext_checked: bool = False

    def fail(self, reason: str) -> None:
        self.status = "failed"
        self.reasons.append(reason)


@dataclass
class LogReport:
    status: str = "failed"
    entries: int = 0
    files: int = 0
    head_seq: int | None = None
    head_digest: str | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class RecordingReport:
    path: str
    device: str | None = None
    device_certificate: str | None = None
    status: str = "failed"
    reasons: list[str] = field(default_factory=list)
    seal_log: LogReport = field(default_factory=LogReport)
    segments: list[SegmentReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "verified"


@dataclass
class Report:
    trust_anchor: dict[str, str]
    plaintext_checked: bool
    recordings: list[RecordingReport]

    @property
    def ok(self) -> bool:
        return bool(self.recordings) and all(r.ok for r in self.recordings)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "bodycam-verify-report/1",
            "ok": self.ok,
            "trust_anchor": self.trust_anchor,
            "plaintext_checked": self.plaintext_checked,
            "recordings": [asdict(r) for r in self.recordings],
        }


@dataclass
class VerifiedSegment:
    """What unsealing needs of a segment that passed verification."""

    report: SegmentReport
    scan: SegmentScan
    manifest: ManifestFile | None
    covered: int  # fragments covered by a valid checkpoint / manifest


class Verifier:
    def __init__(
        self, ca_cert: x509.Certificate, identity: X25519PrivateKey | None = None
    ) -> None:
        pki.check_ca_cert(ca_cert, "trust anchor")
        self.ca_cert = ca_cert
        self.identity = identity

    @property
    def anchor(self) -> dict[str, str]:
        return {
            "subject": self.ca_cert.subject.rfc4514_string(),
            "sha256": pki.fingerprint(self.ca_cert),
        }

    def verify(self, paths: list[Path]) -> Report:
        recordings = [self.verify_recording(Path(p))[0] for p in paths]
        return Report(self.anchor, self.identity is not None, recordings)

    # -- one recording -----------------------------------------------------------

    def verify_recording(self, root: Path) -> tuple[RecordingReport, list[VerifiedSegment]]:
        report = RecordingReport(str(root))
        good: list[VerifiedSegment] = []
        cert_path = root / pki.IDENTITY_DIR / pki.DEVICE_CERT
        try:
            cert = pki.load_cert(cert_path, "device certificate")
            pki.check_cert(cert, self.ca_cert, pki.ROLE_DEVICE, str(cert_path), at=None)
        except (TrustError, OSError) as exc:
            report.reasons.append(str(exc))
            return report, good
        # check_cert compared validity with now; footage outlives certificates,
        # so an expired device certificate is reported, not fatal, above.
        device_id = pki.cert_id(cert) or ""
        public = cert.public_key()
        assert isinstance(public, Ed25519PublicKey)
        report.device = device_id
        report.device_certificate = pki.fingerprint(cert)

        entries = self._verify_log(root, device_id, public, report.seal_log)
        segments, problems = self._verify_segments(root, device_id, public, entries, report, good)
        report.segments = segments
        report.reasons.extend(problems)
        if report.seal_log.status == "verified" and not problems and all(
            s.status in OK_STATUSES for s in segments
        ):
            report.status = "verified"
        elif report.seal_log.status in ("verified", "truncated") and not problems and all(
            s.status in OK_STATUSES + ("truncated", "open") for s in segments
        ):
            report.status = "truncated"
        return report, good

    def _verify_log(
        self, root: Path, device_id: str, public: Ed25519PublicKey, out: LogReport
    ) -> list[LogEntry]:
        log_dir = root / LOG_DIR
        if not log_dir.is_dir():
            out.reasons.append(f"{log_dir}: no seal log; completeness cannot be checked")
            return []
        try:
            scan = scan_log(log_dir)
        except FormatError as exc:
            out.reasons.append(f"seal log is corrupt: {exc}")
            return []
        except OSError as exc:
            out.reasons.append(f"seal log unreadable: {exc}")
            return []
        out.files = len(scan.files)
        trusted: list[LogEntry] = []
        expected_prev = log_anchor(public.public_bytes_raw())
        for entry, signed in scan.entries:
            where = f"seal log entry {entry.seq} ({Path(entry.file).name} offset {entry.offset})"
            problem = None
            if entry.seq != len(trusted):
                problem = (
                    f"{where}: sequence number {entry.seq} where {len(trusted)} was expected "
                    "(entries deleted, inserted, reordered or replayed)"
                )
            elif not signed.verify(public):
                problem = f"{where}: signature does not verify with the device key"
            elif entry.obj["device"] != device_id:
                problem = f"{where}: names device {entry.obj['device']!r}, not {device_id!r}"
            elif bytes.fromhex(entry.obj["prev"]) != expected_prev:
                problem = f"{where}: does not chain to the entry before it"
            if problem:
                out.reasons.append(problem)
                out.entries = len(trusted)
                return trusted
            trusted.append(entry)
            expected_prev = entry.digest
        out.entries = len(trusted)
        if not trusted:
            out.reasons.append("seal log holds no entries")
            return trusted
        out.head_seq = trusted[-1].seq
        out.head_digest = trusted[-1].digest.hex()
        last_file = scan.files[-1] if scan.files else None
        torn_last = [t for name, t in scan.torn if name == last_file]
        out.status = "truncated" if torn_last else "verified"
        if torn_last:
            out.reasons.append(
                f"last seal-log file ends in a torn record at offset {torn_last[0].offset} "
                "(power loss; the recorder has not restarted since)"
            )
        return trusted

    def _verify_segments(
        self,
        root: Path,
        device_id: str,
        public: Ed25519PublicKey,
        entries: list[LogEntry],
        recording: RecordingReport,
        good: list[VerifiedSegment],
    ) -> tuple[list[SegmentReport], list[str]]:
        problems: list[str] = []
        seg_dir = root / SEGMENTS_DIR
        try:
            on_disk = {
                p.name[: -len(SEGMENT_SUFFIX)]: p
                for p in seg_dir.iterdir()
                if p.name.endswith(SEGMENT_SUFFIX) and p.is_file()
            }
            manifests = {
                p.name[: -len(MANIFEST_SUFFIX)]
                for p in seg_dir.iterdir()
                if p.name.endswith(MANIFEST_SUFFIX)
            }
        except FileNotFoundError:
            on_disk, manifests = {}, set()

        opened: dict[int, LogEntry] = {}
        sealed: dict[int, LogEntry] = {}
        unclean: set[int] = set()
        deleted: dict[int, LogEntry] = {}
        expected_prev: dict[int, bytes | None] = {}
        last_sealed: bytes | None = None
        for entry in entries:
            seq = entry.data.get("segment_seq")
            if entry.event == EV_SEGMENT_OPENED:
                if seq in opened or seq != len(opened):
                    problems.append(
                        f"seal log entry {entry.seq} opens segment {seq!r} out of order"
                    )
                    continue
                opened[seq] = entry
                expected_prev[seq] = last_sealed
            elif entry.event == EV_SEGMENT_SEALED and seq in opened:
                sealed[seq] = entry
                last_sealed = bytes.fromhex(entry.data.get("digest", ""))
            elif entry.event == EV_UNCLEAN_STOP:
                unclean.add(seq)
            elif entry.event == EV_DELETION and seq in sealed:
                deleted[seq] = entry

        reports: list[SegmentReport] = []
        log_usable = recording.seal_log.status in ("verified", "truncated")
        for seq, entry in sorted(opened.items()):
            name = entry.data.get("segment", "")
            rep = SegmentReport(name, seq)
            reports.append(rep)
            path = on_disk.pop(name, None)
            manifests.discard(name)
            if path is None:
                if seq in deleted:
                    rep.status = "deleted"
                    rep.digest = sealed[seq].data.get("digest")
                    rep.reasons.append(f"deleted after receipt (seal log entry {deleted[seq].seq})")
                else:
                    rep.status = "missing"
                    rep.reasons.append("the seal log names this segment but it is not here")
                continue
            verified = self._verify_segment(
                path, rep, device_id, public, entry, sealed.get(seq),
                expected_prev[seq], seq in unclean,
                is_last=seq == max(opened), log_truncated=recording.seal_log.status == "truncated",
            )
            if verified is not None:
                good.append(verified)
        for name, path in sorted(on_disk.items()):
            manifests.discard(name)
            rep = SegmentReport(name, None, "unlogged")
            rep.reasons.append(
                "not in the seal log: inserted, copied from elsewhere, or the log was rolled back"
                if log_usable else "seal log unusable, so this segment cannot be placed"
            )
            reports.append(rep)
        for name in sorted(manifests):
            rep = SegmentReport(name, None, "unlogged")
            rep.reasons.append("manifest without its segment file")
            reports.append(rep)
        if not reports:
            problems.append("no segments: nothing was verified")
        return reports, problems

    def _verify_segment(
        self,
        path: Path,
        rep: SegmentReport,
        device_id: str,
        public: Ed25519PublicKey,
        opened: LogEntry,
        sealed: LogEntry | None,
        expected_prev: bytes | None,
        had_unclean_stop: bool,
        *,
        is_last: bool,
        log_truncated: bool,
    ) -> VerifiedSegment | None:
        try:
            data = map_file(path)
            scan = scan_segment(data, path.name)
        except (FormatError, OSError) as exc:
            rep.fail(str(exc))
            return None
        header = scan.header.obj
        rep.media = header.get("media")
        rep.officer = header.get("officer")
        rep.opened_utc = header.get("opened_utc")
        if not scan.header.verify(public):
            rep.fail("header signature does not verify with the device key")
            return None
        if header.get("device") != device_id:
            rep.fail(f"header names device {header.get('device')!r}, not {device_id!r}")
        if header.get("segment_seq") != rep.seq or header.get("segment") != rep.name:
            rep.fail(
                f"header says segment {header.get('segment_seq')!r} "
                f"{header.get('segment')!r}; the seal log expects {rep.seq} {rep.name!r} "
                "(replayed or substituted segment)"
            )
        if scan.header_digest.hex() != opened.data.get("header_digest"):
            rep.fail("header differs from the one recorded in the seal log")
        prev = header.get("prev_segment")
        if prev != (expected_prev.hex() if expected_prev else None):
            rep.fail("does not chain to the segment sealed before it (prev_segment)")

        covered = 0
        for cp in scan.checkpoints:
            obj = cp.signed.obj
            where = f"checkpoint at offset {cp.offset}"
            if not cp.signed.verify(public):
                rep.fail(f"{where}: signature does not verify")
            elif obj.get("device") != device_id or obj.get("segment_seq") != rep.seq:
                rep.fail(f"{where}: belongs to another device or segment")
            elif obj.get("fragments") != cp.seen or obj.get("chain") != cp.chain_at.hex():
                rep.fail(f"{where}: does not match the fragments before it (altered data)")
            else:
                covered = cp.seen
        if rep.status == "failed" and rep.reasons:
            return None

        manifest_path = path.with_suffix(MANIFEST_SUFFIX)
        manifest: ManifestFile | None = None
        if manifest_path.exists():
            try:
                manifest = read_manifest(manifest_path)
            except (FormatError, OSError) as exc:
                rep.fail(f"manifest: {exc}")
                return None
            covered = self._check_manifest(rep, scan, manifest, public, sealed, had_unclean_stop,
                                           data, log_truncated and is_last)
            if covered is None:
                return None
        elif sealed is not None:
            rep.fail("manifest missing although the seal log says the segment was sealed")
            return None
        else:
            rep.status = "open"
            rep.reasons.append(
                f"not sealed yet: {covered} of {len(scan.fragments)} fragments covered by a "
                "checkpoint"
            )
        rep.fragments = covered
        if self.identity is not None and not self._check_plaintext(rep, scan, covered):
            return None
        return VerifiedSegment(rep, scan, manifest, covered)

    def _check_manifest(
        self,
        rep: SegmentReport,
        scan: SegmentScan,
        manifest: ManifestFile,
        public: Ed25519PublicKey,
        sealed: LogEntry | None,
        had_unclean_stop: bool,
        data: bytes | memoryview,
        seal_may_be_torn: bool,
    ) -> int | None:
        m = manifest.signed.obj
        rep.digest = manifest.digest.hex()
        rep.closed_utc = m.get("closed_utc")
        if not manifest.signed.verify(public):
            rep.fail("manifest signature does not verify with the device key")
            return None
        header = scan.header.obj
        for key in HEADER_FIELDS:
            if m.get(key) != header.get(key):
                rep.fail(f"manifest field {key!r} differs from the header")
        if m.get("header_digest") != scan.header_digest.hex():
            rep.fail("manifest names another header")
        if sealed is None:
            if not seal_may_be_torn:
                rep.fail("sealed manifest is not recorded in the seal log")
        elif sealed.data.get("digest") != manifest.digest.hex():
            rep.fail("manifest differs from the one recorded in the seal log")
        count = m.get("fragment_count")
        fragments = m.get("fragments")
        if not isinstance(count, int) or not isinstance(fragments, list) or count != len(fragments):
            rep.fail("manifest fragment list is malformed")
            return None
        if count > len(scan.fragments):
            rep.fail(
                f"manifest covers {count} fragments but the file holds {len(scan.fragments)} "
                "(fragments removed)"
            )
            return None
        if m.get("chain") != scan.chain_after(count).hex():
            rep.fail("manifest chain does not match the fragments in the file (altered data)")
            return None
        for i, (listed, frag) in enumerate(zip(fragments, scan.fragments)):
            if not isinstance(listed, dict) or listed.get("sha256") != frag.pt_digest.hex():
                rep.fail(f"fragment {i}: digest differs from the manifest")
                return None
        if m.get("file_bytes") != len(data):
            rep.fail(
                f"file is {len(data)} bytes; the manifest sealed {m.get('file_bytes')} "
                "(bytes appended or cut)"
            )
            return None
        status = m.get("status")
        if status == STATUS_COMPLETE:
            if count != len(scan.fragments) or scan.torn is not None:
                rep.fail("sealed segment holds fragments its manifest does not list")
                return None
            if rep.status == "failed" and rep.reasons:
                return None
            rep.status = "verified"
            return count
        if status == STATUS_TRUNCATED:
            t = m.get("truncated") or {}
            trailing = hashlib.sha256(memoryview(data)[t.get("covered_bytes", -1):]).hexdigest()
            if (
                t.get("after_fragment") != count
                or not isinstance(t.get("covered_bytes"), int)
                or t.get("uncovered_sha256") != trailing
            ):
                rep.fail("truncation record does not match the file")
                return None
            if not had_unclean_stop:
                rep.fail("truncated, but the seal log records no unclean stop")
                return None
            if rep.status == "failed" and rep.reasons:
                return None
            rep.status = "truncated"
            rep.reasons.append(
                f"power loss: sealed at recovery after fragment {count}; "
                f"{t.get('uncovered_bytes')} bytes after the last checkpoint are not covered"
            )
            return count
        rep.fail(f"manifest status {status!r} is unknown")
        return None

    # -- plaintext ---------------------------------------------------------------

    def data_key(self, scan: SegmentScan) -> bytes:
        assert self.identity is not None
        header = scan.header.obj
        wrapped = bytes.fromhex(header["wrapped_key"])
        return HPKE_SUITE.decrypt(
            wrapped, self.identity, hpke_info(header["device"], header["segment_seq"])
        )

    def plaintext(self, scan: SegmentScan, count: int) -> Iterator[bytes]:
        """Decrypt the first ``count`` fragments; raises InvalidTag on forgery."""
        aead = ChaCha20Poly1305(self.data_key(scan))
        for frag in scan.fragments[:count]:
            yield aead.decrypt(
                fragment_nonce(frag.index), frag.ciphertext,
                fragment_aad(scan.header_digest, frag.index),
            )

    def _check_plaintext(self, rep: SegmentReport, scan: SegmentScan, count: int) -> bool:
        try:
            for frag, plain in zip(scan.fragments, self.plaintext(scan, count)):
                if hashlib.sha256(plain).digest() != frag.pt_digest:
                    rep.fail(f"fragment {frag.index}: plaintext digest differs")
                    return False
        except (InvalidTag, ValueError, KeyError):
            rep.fail("does not decrypt with this archive identity (wrong key or altered data)")
            return False
        rep.plaintext_checked = True
        return True
