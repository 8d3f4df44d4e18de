"""Verify sealed recordings against the agency CA; fail closed.

A *recording* is a folder laid out like a recorder's state directory
(``identity/device.crt``, ``seallog/``, ``segments/``); private keys and the
folder's own ``ca.crt`` are never read.  The result is a typed report
(``device.sealing.report``): each segment with a ``SegmentStatus`` and
reasons, the seal log with a ``LogStatus``, the recording with a
``RecordingStatus``, and ``require()`` on each to accept or raise.

This module gathers the parts: the device certificate (§7.1), the seal log
(``verify_log``), each segment (``verify_segment``), the plaintext with an
archive identity (``unseal.check_plaintext``).  Nothing in the folder can
make it raise: every fault of the material becomes a status and a reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bodycam.errors import FormatError, InputError, TrustError

from . import pki
from .attestation import Attestation, check_attestation
from .excerpt import apply_index, read_index
from .report import (
    LogStatus,
    RecordingReport,
    Report,
    SegmentReport,
    SegmentStatus,
)
from .revocation import RevocationList
from .safeio import list_folder
from .sealer import INCOMPLETE_DIR, MANIFEST_SUFFIX, SEGMENT_SUFFIX, SEGMENTS_DIR
from .unseal import check_plaintext
from .verify_log import LogEvidence, verify_log
from .verify_segment import SegmentContext, VerifiedSegment, verify_segment

log = logging.getLogger(__name__)


__all__ = ["Verifier", "VerifiedSegment", "Report", "RecordingReport", "SegmentReport"]


class Verifier:
    """Verifies recordings against one trust anchor.

    ``ca_cert``: the agency CA certificate (``--ca``), never one found in a
    folder.  ``identity``: the archive recipient key, to also check the
    plaintext.  ``crl``: the agency CA's revocation list, if any.
    Raises TrustError at construction if ``ca_cert`` is not an agency CA.
    """

    def __init__(
        self,
        ca_cert: x509.Certificate,
        identity: X25519PrivateKey | None = None,
        crl: RevocationList | None = None,
    ) -> None:
        pki.check_ca_cert(ca_cert, "trust anchor")
        self.ca_cert = ca_cert
        self.identity = identity
        self.crl = crl

    @property
    def anchor(self) -> dict[str, str]:
        return {
            "subject": self.ca_cert.subject.rfc4514_string(),
            "sha256": pki.fingerprint(self.ca_cert),
        }

    def verify(self, paths: list[Path], attestation: Attestation | None = None) -> Report:
        recordings = [self.verify_recording(Path(p), attestation)[0] for p in paths]
        return Report(self.anchor, self.identity is not None, recordings)

    # -- one recording -----------------------------------------------------------

    def verify_recording(
        self, root: Path, attestation: Attestation | None = None
    ) -> tuple[RecordingReport, list[VerifiedSegment]]:
        """Verify one recording folder (a whole recording or an excerpt, §10);
        never raises for what the folder holds.  With ``attestation`` (an
        archive's signed log head, §12.1) also check the log reaches it."""
        report, good, _evidence = self.inspect_recording(root, attestation)
        return report, good

    def inspect_recording(
        self, root: Path, attestation: Attestation | None = None
    ) -> tuple[RecordingReport, list[VerifiedSegment], LogEvidence | None]:
        """:meth:`verify_recording`, plus what the seal log says of each
        segment (receipts, deletions, unproven deletions, the chain's entries)
        for readers that audit custody; the evidence is None when no
        certificate or log could be read."""
        report = RecordingReport(str(root))
        good: list[VerifiedSegment] = []
        cert_path = root / pki.IDENTITY_DIR / pki.DEVICE_CERT
        try:
            cert = pki.load_cert(cert_path, "device certificate", follow_links=False)
            # Issuer, role and end-entity now; validity and revocation at the
            # time each segment was signed (§7.1): footage outlives certificates.
            pki.check_cert(cert, self.ca_cert, pki.ROLE_DEVICE, str(cert_path), at=False)
            device_id = pki.cert_id(cert) or ""
            if not pki.DEVICE_ID_RE.match(device_id):
                raise TrustError(f"{cert_path}: device ID {device_id!r} is not 7 characters A-Z/0-9")
            public = cert.public_key()
            if not isinstance(public, Ed25519PublicKey):
                raise TrustError(f"{cert_path}: device key is not Ed25519")
        except (TrustError, InputError) as exc:
            report.reasons.append(str(exc))
            return report, good, None
        report.device = device_id
        report.device_certificate = pki.fingerprint(cert)
        report.certificate_trusted = True
        revoked_at: dt.datetime | None = None
        if self.crl is not None:
            revoked_at = self.crl.revoked_at(cert)
            if revoked_at is not None:
                log.info("device %s certificate revoked at %s", device_id, revoked_at)

        try:
            evidence = verify_log(root, device_id, public, self.ca_cert, report.seal_log)
        except InputError as exc:
            report.seal_log.status = LogStatus.FAILED
            report.seal_log.reasons.append(str(exc))
            report.conclude()
            return report, good, None
        report.reasons.extend(evidence.problems)
        seal_may_be_torn = report.seal_log.status is LogStatus.TRUNCATED
        ctx = SegmentContext(device_id, public, cert, revoked_at, seal_may_be_torn)
        self._segments(root, ctx, evidence, report, good)
        try:
            index = read_index(root)
        except (FormatError, InputError) as exc:
            report.reasons.append(f"excerpt index: {exc}")
            index = None
        if index is not None:
            apply_index(index, report)
        if attestation is not None:
            check_attestation(attestation, report, evidence.chain.entries)
        report.conclude()
        return report, good, evidence

    def _segments(
        self,
        root: Path,
        ctx: SegmentContext,
        evidence: LogEvidence,
        report: RecordingReport,
        good: list[VerifiedSegment],
    ) -> None:
        seg_dir = root / SEGMENTS_DIR
        try:
            regular, other = list_folder(seg_dir, "segments folder")
        except InputError as exc:
            report.reasons.append(str(exc))
            regular, other = [], []
        files = {n[: -len(SEGMENT_SUFFIX)] for n in regular if n.endswith(SEGMENT_SUFFIX)}
        manifests = {n[: -len(MANIFEST_SUFFIX)] for n in regular if n.endswith(MANIFEST_SUFFIX)}
        for name in other:
            if name != INCOMPLETE_DIR:
                report.reasons.append(f"{seg_dir / name}: not a regular file (link, FIFO, device "
                                      "or folder); not read")
        for name in regular:
            if not name.endswith((SEGMENT_SUFFIX, MANIFEST_SUFFIX)):
                # E.g. a manifest's temporary file left by a power cut: not read, not a fault.
                report.notes.append(f"{seg_dir / name}: not a segment or manifest; not read")

        last_seq = max(evidence.segments, default=None)
        for seq, ev in sorted(evidence.segments.items()):
            rep = SegmentReport(ev.name, seq)
            report.segments.append(rep)
            present = ev.name in files
            files.discard(ev.name)
            manifests.discard(ev.name)
            if not present:
                if ev.deletion is not None:
                    rep.status = SegmentStatus.DELETED
                    rep.digest = ev.sealed_digest
                    rep.reasons.append(
                        f"deleted after archive receipt (seal log entries {ev.receipt.seq} "  # type: ignore[union-attr]
                        f"and {ev.deletion.seq})")
                else:
                    rep.status = SegmentStatus.MISSING
                    why = evidence.unproven_deletions.get(seq)
                    rep.reasons.append(
                        "the seal log names this segment but it is not here"
                        + (f"; its deletion ({why}) carries no valid archive receipt" if why else ""))
                continue
            seg_ctx = ctx if seq == last_seq else SegmentContext(
                ctx.device_id, ctx.public, ctx.certificate, ctx.revoked_at, False)
            verified = verify_segment(seg_dir / f"{ev.name}{SEGMENT_SUFFIX}", rep, ev, seg_ctx)
            if verified is not None and self.identity is not None:
                if not check_plaintext(self.identity, rep, verified.scan, verified.covered):
                    verified = None
            if verified is not None:
                good.append(verified)
        usable = report.seal_log.usable
        for name in sorted(files):
            manifests.discard(name)
            rep = SegmentReport(name, None, SegmentStatus.UNLOGGED)
            rep.reasons.append(
                "not in the seal log: inserted, copied from elsewhere, or the log was rolled back"
                if usable else "seal log unusable, so this segment cannot be placed")
            report.segments.append(rep)
        for name in sorted(manifests):
            rep = SegmentReport(name, None, SegmentStatus.UNLOGGED)
            rep.reasons.append("manifest without its segment file")
            report.segments.append(rep)
        if not report.segments:
            report.reasons.append("no segments: nothing was verified")
