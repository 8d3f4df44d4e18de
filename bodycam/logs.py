"""Logging set-up, done once at the ``bodycam`` command's entry.

Every module logs through ``logging.getLogger(__name__)``; this module only
decides where the records go and how they are spelled:

- **stderr connected to the journal** (systemd sets ``JOURNAL_STREAM`` to
  ``"<st_dev>:<st_ino>"`` of the stream it connects, see systemd.exec(5)):
  with python-systemd importable, its ``JournalHandler`` sends each record
  with its fields (``PRIORITY``, ``LOGGER``, ``CODE_FILE``, ``THREAD_NAME``…);
  otherwise every line starts with an sd-daemon(3) priority prefix
  (``<3>`` error … ``<7>`` debug), which journald turns into ``PRIORITY=``.
  journald adds the time stamp, so the line carries none.
- **anything else** (a terminal, a file, a pipe): plain lines
  ``2026-11-29 12:00:00,123 WARNING device.recorder: …``.

The level is ``--log-level`` if given, else ``$BODYCAM_LOG_LEVEL``, else
INFO under the journal and WARNING on a terminal (so a technician's command
output stays the command's own).

Nothing here logs footage bytes or keys; callers log names, counts and
outcomes only.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Mapping, TextIO

#: sd-daemon(3) / syslog(3) priorities for Python's levels.
PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
LEVELS = ("debug", "info", "warning", "error", "critical")
ENV_LEVEL = "BODYCAM_LOG_LEVEL"
TERMINAL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"


def priority(levelno: int) -> int:
    """The syslog priority (0–7) for a ``logging`` level number.  A level in
    between takes that of the standard level above it (25 → 4, as WARNING)
    and above CRITICAL is 1 (alert): python-systemd's JournalHandler maps
    levels the same way, so both paths agree."""
    for level in sorted(PRIORITIES):
        if levelno <= level:
            return PRIORITIES[level]
    return 1


def stderr_is_journal(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` (default: stderr) is the journal stream systemd
    connected: ``$JOURNAL_STREAM`` equals its ``st_dev:st_ino`` (systemd.exec(5)).

    A child that inherited ``JOURNAL_STREAM`` but whose stderr was redirected
    elsewhere compares unequal and gets plain lines.
    """
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    value = environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # closed, or no real file (a test's StringIO)
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class JournalPrefixFormatter(logging.Formatter):
    """Prefix every line of a record with ``<N>`` so that a multi-line record
    (a traceback) keeps its priority on each journal entry."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines() or [""])


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (click's
    test runner and daemons both replace it after set-up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _journal_handler() -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler  # python3-systemd, where installed
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER="bodycam")


def setup_logging(level: str | None = None, *, stream: TextIO | None = None,
                  environ: Mapping[str, str] | None = None) -> logging.Handler:
    """Install the one root handler; calling again replaces it (never stacks).

    ``level`` is one of :data:`LEVELS` or None for the default described in
    the module docstring.  Raises ``ValueError`` for an unknown level name.
    Returns the handler installed.
    """
    environ = os.environ if environ is None else environ
    journal = stderr_is_journal(stream, environ)
    name = (level or environ.get(ENV_LEVEL) or ("info" if journal else "warning")).lower()
    if name not in LEVELS:
        raise ValueError(f"log level {name!r} is not one of {', '.join(LEVELS)}")
    handler = _journal_handler() if journal else None
    if handler is None:
        handler = StderrHandler() if stream is None else logging.StreamHandler(stream)
        handler.setFormatter(JournalPrefixFormatter(JOURNAL_FORMAT) if journal
                             else logging.Formatter(TERMINAL_FORMAT))
    handler._bodycam = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_bodycam", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name.upper())
    if journal:
        # An unexpected traceback would otherwise reach the journal at the
        # stream's default priority (info); log it as critical, line by line.
        sys.excepthook = _log_uncaught
        threading.excepthook = lambda args: _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback,
                                                          thread=args.thread)
    return handler


def _log_uncaught(exc_type, exc_value, exc_traceback, thread=None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc_value, exc_traceback)
        return
    where = f" in thread {thread.name}" if thread is not None else ""
    logging.getLogger("bodycam").critical("unexpected error%s", where,
                                          exc_info=(exc_type, exc_value, exc_traceback))


__all__ = ["setup_logging", "stderr_is_journal", "priority", "JournalPrefixFormatter", "PRIORITIES", "LEVELS"]
