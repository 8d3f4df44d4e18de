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
