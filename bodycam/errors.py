"""The project's exception tree.

Every error the project raises on purpose derives from ``BodycamError`` and
also from the builtin that fits it, so callers can catch either.  Messages say
what was expected, what was found, and (where it helps) what to do.
"""

from __future__ import annotations


class BodycamError(Exception):
    """Base of every error raised on purpose by bodycam."""


class UsageError(BodycamError, ValueError):
    """A command was called with arguments that cannot work (exit code 2)."""


class InputError(BodycamError, OSError):
    """An input file or directory is missing or unreadable (exit code 2)."""


class FormatError(BodycamError, ValueError):
    """Bytes do not follow a documented format.

    ``where`` names the file (and offset) so the message can point at it.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class TrustError(BodycamError, ValueError):
    """A key or certificate is missing, malformed or not trusted."""


class ConfigError(BodycamError, ValueError):
    """A configuration file is invalid; the message names file and key."""


class SealingError(BodycamError, RuntimeError):
    """The sealer could not write or recover a segment."""


class StateLockedError(SealingError):
    """Another process already owns the recorder state directory."""


class VerificationError(BodycamError, ValueError):
    """Footage did not verify.  Raised by the ``require()`` of a verification
    report (``device.sealing.report``); ``report`` is the report that failed,
    so a caller can show every reason."""

    def __init__(self, message: str, report: object | None = None) -> None:
        self.report = report
        super().__init__(message)


class SegmentFailedError(VerificationError):
    """A signature, digest, chain link or field does not match: altered or forged."""


class SegmentMissingError(VerificationError):
    """The seal log names a segment the material does not hold (and no archive receipt covers it)."""


class SegmentUnloggedError(VerificationError):
    """A segment is present that the seal log does not place (inserted, foreign, rolled back)."""


class SegmentIncompleteError(VerificationError):
    """Truncated by power loss, or still open: only part of the segment is covered."""


class SealLogError(VerificationError):
    """The seal log is missing, broken after a bad entry, or does not verify."""


class CertificateError(VerificationError, TrustError):
    """The device certificate is not trusted for this footage (issuer, role, time, revocation)."""


class AttestationError(VerificationError):
    """The recording does not reach the seal-log head an archive attestation names."""


class DeviceError(BodycamError, OSError):
    """A capture or playback device (or its driver, or its audio server) failed or is missing."""
