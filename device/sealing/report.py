"""The verification report: typed statuses, and ``require()`` that fails closed.

Callers never compare status strings to decide acceptance; they call
``require()`` on the report of a segment, a recording or a whole run, which
returns nothing or raises the ``VerificationError`` subclass that names the
fault (bodycam/errors.py).  The JSON form is docs/format.md §8.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from bodycam.errors import (
    AttestationError,
    CertificateError,
    SealLogError,
    SegmentFailedError,
    SegmentIncompleteError,
    SegmentMissingError,
    SegmentUnloggedError,
    VerificationError,
)

REPORT_FORMAT = "bodycam-verify-report/2"


class SegmentStatus(enum.StrEnum):
    VERIFIED = "verified"  # every check passed
    TRUNCATED = "truncated"  # sealed by recovery after a power cut; the covered part verifies
    OPEN = "open"  # not sealed yet; verified up to its last checkpoint
    DELETED = "deleted"  # deleted from the recorder after a valid archive receipt
    EXCLUDED = "excluded"  # left out of an excerpt on purpose (docs/format.md §10)
    MISSING = "missing"  # the seal log names it; the material does not hold it
    UNLOGGED = "unlogged"  # the material holds it; the seal log does not place it
    FAILED = "failed"  # a signature, digest, chain link, field or rule does not hold


class LogStatus(enum.StrEnum):
    VERIFIED = "verified"  # every entry on disk is on the chain
    TRUNCATED = "truncated"  # ... except a record torn at the end of the last file
    BROKEN = "broken"  # a good prefix chains; something after it does not (reasons say what)
    FAILED = "failed"  # no entry chains from the anchor


class RecordingStatus(enum.StrEnum):
    VERIFIED = "verified"
    TRUNCATED = "truncated"  # verified except power-loss truncation (segment or log tail)
    FAILED = "failed"


# Segments that count as a success of the recording.
GOOD = frozenset({SegmentStatus.VERIFIED, SegmentStatus.DELETED, SegmentStatus.EXCLUDED})
INCOMPLETE = frozenset({SegmentStatus.TRUNCATED, SegmentStatus.OPEN})

_SEGMENT_ERRORS: dict[SegmentStatus, type[VerificationError]] = {
    SegmentStatus.TRUNCATED: SegmentIncompleteError,
    SegmentStatus.OPEN: SegmentIncompleteError,
    SegmentStatus.MISSING: SegmentMissingError,
    SegmentStatus.UNLOGGED: SegmentUnloggedError,
    SegmentStatus.FAILED: SegmentFailedError,
}


@dataclass
class SegmentReport:
    name: str
    seq: int | None
    status: SegmentStatus = SegmentStatus.FAILED
    reasons: list[str] = field(default_factory=list)
    fragments: int = 0
    media: str | None = None
    officer: str | None = None
    opened_utc: str | None = None
    closed_utc: str | None = None
    digest: str | None = None
    plaintext_checked: bool = False

    def fail(self, reason: str) -> None:
        self.status = SegmentStatus.FAILED
        self.reasons.append(reason)

    @property
    def failed(self) -> bool:
        """Whether a check has failed so far (the default status is FAILED
        until a check concludes otherwise, so that is not enough)."""
        return self.status is SegmentStatus.FAILED and bool(self.reasons)

    def acceptable(self, *, allow_incomplete: bool = False) -> bool:
        """``require()`` as a boolean: True exactly when it would return."""
        return self.status is SegmentStatus.VERIFIED or (
            allow_incomplete and self.status in INCOMPLETE)

    @property
    def problem(self) -> bool:
        """Missing, unlogged or failed: what a dock or archive must flag."""
        return self.status not in GOOD | INCOMPLETE

    def require(self, *, allow_incomplete: bool = False) -> None:
        """Return if this segment verified (or, with ``allow_incomplete``, is
        truncated/open with its covered part verified); raise otherwise.

        Raises SegmentFailedError, SegmentMissingError, SegmentUnloggedError,
        SegmentIncompleteError; a deleted or excluded segment raises
        SegmentMissingError (there is no footage to accept).
        """
        if self.acceptable(allow_incomplete=allow_incomplete):
            return
        error = _SEGMENT_ERRORS.get(self.status, SegmentMissingError)
        raise error(f"{self.name}: {self.status}: {'; '.join(self.reasons) or 'no reason given'}", self)


@dataclass
class LogReport:
    status: LogStatus = LogStatus.FAILED
    entries: int = 0
    files: int = 0
    head_seq: int | None = None
    head_digest: str | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether a chain exists that places segments (all but FAILED)."""
        return self.status is not LogStatus.FAILED

    def require(self, *, allow_truncated: bool = False) -> None:
        """Raise SealLogError unless the log verified (or, with
        ``allow_truncated``, ends in a torn record of a power cut)."""
        if self.status is LogStatus.VERIFIED:
            return
        if allow_truncated and self.status is LogStatus.TRUNCATED:
            return
        raise SealLogError(f"seal log {self.status}: {'; '.join(self.reasons)}", self)


@dataclass
class RecordingReport:
    path: str
    device: str | None = None
    device_certificate: str | None = None
    status: RecordingStatus = RecordingStatus.FAILED
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # reported, not a fault
    seal_log: LogReport = field(default_factory=LogReport)
    segments: list[SegmentReport] = field(default_factory=list)
    excerpt: dict[str, Any] | None = None
    attestation: dict[str, Any] | None = None
    certificate_trusted: bool = False

    @property
    def ok(self) -> bool:
        return self.status is RecordingStatus.VERIFIED

    def segment(self, name: str) -> SegmentReport:
        """The report of segment ``name``; SegmentMissingError if the report has none."""
        for seg in self.segments:
            if seg.name == name:
                return seg
        raise SegmentMissingError(f"{name}: not in this recording", self)

    def conclude(self) -> None:
        """Set ``status`` from the parts (docs/format.md §7.7)."""
        statuses = {s.status for s in self.segments}
        if (
            not self.reasons
            and self.certificate_trusted
            and self.seal_log.status is LogStatus.VERIFIED
            and statuses <= GOOD
            and self.segments
        ):
            self.status = RecordingStatus.VERIFIED
        elif (
            not self.reasons
            and self.certificate_trusted
            and self.seal_log.status in (LogStatus.VERIFIED, LogStatus.TRUNCATED)
            and statuses <= GOOD | INCOMPLETE
            and self.segments
        ):
            self.status = RecordingStatus.TRUNCATED
        else:
            self.status = RecordingStatus.FAILED

    def require(self, *, allow_truncated: bool = False) -> None:
        """Return if the recording verified; raise the VerificationError of its
        first fault otherwise: CertificateError, AttestationError, then
        VerificationError for a problem of the recording, SealLogError, and the
        Segment…Error of the first segment that is not good."""
        if self.status is RecordingStatus.VERIFIED:
            return
        if allow_truncated and self.status is RecordingStatus.TRUNCATED:
            return
        if not self.certificate_trusted:
            raise CertificateError(f"{self.path}: {'; '.join(self.reasons)}", self)
        if self.attestation is not None and self.attestation.get("status") != "matched":
            raise AttestationError(f"{self.path}: {'; '.join(self.attestation.get('reasons', []))}", self)
        if self.reasons:
            raise VerificationError(f"{self.path}: {'; '.join(self.reasons)}", self)
        self.seal_log.require(allow_truncated=allow_truncated)
        for seg in self.segments:
            if seg.status not in GOOD:
                seg.require(allow_incomplete=allow_truncated)
        raise VerificationError(f"{self.path}: not verified", self)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if out["excerpt"] is None:
            del out["excerpt"]
        if out["attestation"] is None:
            del out["attestation"]
        del out["certificate_trusted"]
        return out


@dataclass
class Report:
    trust_anchor: dict[str, str]
    plaintext_checked: bool
    recordings: list[RecordingReport]

    @property
    def ok(self) -> bool:
        return bool(self.recordings) and all(r.ok for r in self.recordings)

    def require(self, *, allow_truncated: bool = False) -> None:
        """Raise the first recording's VerificationError unless all verified."""
        if not self.recordings:
            raise VerificationError("nothing was verified", self)
        for rec in self.recordings:
            rec.require(allow_truncated=allow_truncated)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "ok": self.ok,
            "trust_anchor": self.trust_anchor,
            "plaintext_checked": self.plaintext_checked,
            "recordings": [r.to_json() for r in self.recordings],
        }
