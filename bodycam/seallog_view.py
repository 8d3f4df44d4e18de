"""``bodycam log``: the seal log as a technician or an auditor reads it.

The seal log (docs/format.md) is binary, signed and hash-chained.  This
command prints its events (boot, record start and stop, notify, marks,
alarms, clock steps, recovery, receipts, deletions, …) as a table or JSON,
each with its verification status.

Trust comes only from the verifier: :func:`verified_prefix` is the one
place that calls it.  Every entry up to the first one that fails (bad
signature, broken chain, gap, foreign device) is ``verified``; that entry
and everything after it are shown marked ``UNVERIFIED``, with the
verifier's reason on stderr, and the command exits 1.  The verifier works
on a snapshot of the certificate and log files copied first, so a log that
grows while it is read (``--follow`` on a running recorder) is judged on
exactly the bytes that are listed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import signal
import stat
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from bodycam.errors import FormatError, InputError, UsageError

log = logging.getLogger(__name__)

VERIFIED, UNVERIFIED = "verified", "unverified"
TRUNCATED = "truncated"  # device/sealing/report.py LogStatus.TRUNCATED
MAX_LOG_FILE = 256 * 1024 * 1024  # far above a year of events; refuses a runaway file
IDENTITY_CERT = ("identity", "device.crt")
LOG_DIR = "seallog"


@dataclass(frozen=True)
class ShownEntry:
    """One seal-log entry as printed: its fields and whether the verifier vouched for it."""

    seq: int
    utc: str
    event: str
    segment: str | None
    data: dict[str, Any]
    status: str  # VERIFIED or UNVERIFIED
    file: str
    offset: int


@dataclass
class SealLogView:
    """The whole log of one recording folder, as judged by the verifier."""

    path: str
    device: str | None
    status: str  # the verifier's seal-log status (LogStatus): verified, truncated, broken or failed
    reasons: list[str] = field(default_factory=list)
    entries: list[ShownEntry] = field(default_factory=list)
    unreadable: int = 0  # entry records the format's parser refuses (not shown; never verified)

    @property
    def unverified(self) -> int:
        return sum(1 for e in self.entries if e.status == UNVERIFIED)

    @property
    def whole(self) -> bool:
        """Every entry on disk verified: a VERIFIED log, or TRUNCATED (whole up to
        a power cut's torn record), with no unverified or unreadable entry."""
        return self.status in (VERIFIED, TRUNCATED) and not self.unverified and not self.unreadable


# -- reading through the verifier ---------------------------------------------------------


def verified_prefix(ca_cert, snapshot: Path) -> tuple[int, str, str | None, list[str]]:
    """Ask the verifier about the seal log in ``snapshot`` (a folder holding
    identity/device.crt and seallog/).  Returns (how many entries from the
    start it trusts, the log's status, the device ID, the reasons).

    The one call into device/sealing/verifier.py, so that a change of its API
    (format v2) is a change here only.
    """
    from device.sealing.verifier import Verifier

    report, _ = Verifier(ca_cert).verify_recording(snapshot)
    if not report.certificate_trusted:
        # The log is not looked at without a trusted device certificate: the
        # reason is the recording's, and no entry is vouched for.
        return 0, str(report.seal_log.status), report.device, list(report.reasons)
    # The snapshot holds no segments, so only the log's own reasons are about the log.
    # ``entries`` counts the entries that chain from the anchor: all of them when
    # VERIFIED or TRUNCATED (the torn record is no entry), the good prefix when
    # BROKEN; a FAILED log (not ``usable``) vouches for none.
    log_report = report.seal_log
    trusted = log_report.entries if log_report.usable else 0
    return trusted, str(log_report.status), report.device, list(log_report.reasons)


def _read_regular(path: Path, limit: int) -> bytes:
    """Read a regular file without following a link or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{path}: not a regular file")
        if st.st_size > limit:
            raise InputError(f"{path}: {st.st_size} bytes, more than a seal-log file may hold ({limit})")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _snapshot(root: Path, into: Path) -> None:
    from device.sealing.seallog import log_files

    (into / IDENTITY_CERT[0]).mkdir()
    cert = root.joinpath(*IDENTITY_CERT)
    (into.joinpath(*IDENTITY_CERT)).write_bytes(_read_regular(cert, 64 * 1024))
    (into / LOG_DIR).mkdir()
    for name in log_files(root / LOG_DIR):
        (into / LOG_DIR / name).write_bytes(_read_regular(root / LOG_DIR / name, MAX_LOG_FILE))


def _scan_entries(log_dir: Path) -> tuple[list, int]:
    """Every entry record of the snapshot's seal-log files that parses, in file
    order, and how many entry records do not (format v2's total parser refuses
    them: an unknown field, a bad type).  Unlike ``scan_log`` a refused record
    does not hide the entries after it: they are shown, and being past the
    verifier's chain, shown UNVERIFIED.  A broken record frame ends that file
    (nothing after it can be delimited)."""
    from device.sealing.format import MAGIC_LOG, REC_LOG_ENTRY, TornTail, iter_records
    from device.sealing.seallog import log_files, parse_entry

    entries, unreadable = [], 0
    for name in log_files(log_dir):
        data = (log_dir / name).read_bytes()
        try:
            for item in iter_records(data, name, MAGIC_LOG, frozenset({REC_LOG_ENTRY})):
                if isinstance(item, TornTail):  # the verifier reports it
                    continue
                try:
                    entries.append(parse_entry(item, name)[0])
                except FormatError as exc:  # the verifier's reasons say why; --follow rereads often
                    unreadable += 1
                    log.debug("seal log %s: entry record not readable: %s", name, exc)
        except FormatError as exc:
            log.debug("seal log %s: stops being readable: %s", name, exc)
    return entries, unreadable


def read_seal_log(root: Path, ca_cert) -> SealLogView:
    """Snapshot, parse and verify the seal log of a recorder's state or an
    evidence export.  Raises InputError for a folder that is not a recording."""

    from device.sealing.safeio import check_folder

    root = check_folder(Path(root), "recorder state or evidence export")
    if not root.joinpath(*IDENTITY_CERT).is_file():
        raise InputError(f"{root}: no identity/device.crt; not a recorder's state or an evidence export")
    if not (root / LOG_DIR).is_dir():
        raise InputError(f"{root}: no {LOG_DIR}/ folder; not a recorder's state or an evidence export")
    with tempfile.TemporaryDirectory(prefix="bodycam-log-") as tmp:
        snapshot = Path(tmp)
        _snapshot(root, snapshot)
        trusted, status, device, reasons = verified_prefix(ca_cert, snapshot)
        scanned, unreadable = _scan_entries(snapshot / LOG_DIR)
    view = SealLogView(str(root), device, status, [r.replace(str(snapshot), str(root)) for r in reasons],
                       unreadable=unreadable)
    for i, entry in enumerate(scanned):
        segment = entry.data.get("segment")
        view.entries.append(ShownEntry(
            seq=entry.seq, utc=str(entry.obj.get("utc", "")), event=entry.event,
            segment=segment if isinstance(segment, str) else None, data=entry.data,
            status=VERIFIED if i < trusted else UNVERIFIED,
            file=Path(entry.file).name, offset=entry.offset))
    return view


# -- filters ----------------------------------------------------------------------------------


def parse_time(text: str, option: str) -> dt.datetime:
    """ISO 8601 date or time; without an offset it is UTC.  Raises UsageError."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected an ISO 8601 time such as 2026-11-29T08:00:00Z "
                         "or a date such as 2026-11-29") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def entry_time(entry: ShownEntry) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(entry.utc)
    except ValueError:
        return None


def select(entries: Iterable[ShownEntry], *, events: tuple[str, ...] = (), since: dt.datetime | None = None,
           until: dt.datetime | None = None, segment: str | None = None) -> list[ShownEntry]:
    """The entries of these event kinds, in [since, until), about this segment
    (its name, or its sequence number as digits).  An entry whose time cannot
    be read is kept only when no time filter is given."""
    out = []
    for e in entries:
        if events and e.event not in events:
            continue
        if since or until:
            when = entry_time(e)
            if when is None or (since and when < since) or (until and when >= until):
                continue
        if segment is not None:
            seq = e.data.get("segment_seq")
            if e.segment != segment and not (segment.isdigit() and seq == int(segment)):
                continue
        out.append(e)
    return out


# -- output -----------------------------------------------------------------------------------


LONG_TOKEN = 48
"""Characters beyond which a text without spaces (base64, a PEM body, hex other than a digest)
is summarised in the table as its size and a digest prefix."""
LONG_TEXT = 120
"""Characters beyond which prose (a reason, a message) is cut in the table, its size given."""
DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def _summary(text: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    return f"<{len(raw)} bytes sha256:{hashlib.sha256(raw).hexdigest()[:12]}…>"


def shorten(value: Any) -> Any:
    """``value`` as the human table shows it; the JSON output is never shortened.

    A hex SHA-256 becomes its first 16 digits and "…"; a text spanning lines
    (a PEM certificate) or a long one without spaces (base64 of a signed
    message) becomes ``<N bytes sha256:0123456789ab…>`` (its UTF-8 size and
    the digest of those bytes, so that rows can still be told apart and matched
    with --json); prose over LONG_TEXT characters is cut there with its size
    given.  Lists and objects are shortened inside; other values are returned
    unchanged."""
    if isinstance(value, dict):
        return {key: shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shorten(item) for item in value]
    if not isinstance(value, str):
        return value
    if DIGEST_RE.fullmatch(value):
        return value[:16] + "…"
    if not value.isprintable() or (len(value) > LONG_TOKEN and " " not in value):
        return _summary(value)
    if len(value) > LONG_TEXT:
        return f"{value[:LONG_TEXT]}… <{len(value.encode('utf-8', 'surrogatepass'))} bytes>"
    return value


def _details(e: ShownEntry) -> str:
    parts = []
    for key, value in e.data.items():
        if key in ("segment",):
            continue
        value = shorten(value)
        if isinstance(value, (dict, list)):
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        parts.append(f"{key}={value}")
    return " ".join(parts)


TABLE_HEADER = f"{'SEQ':>6}  {'UTC':<20}  {'EVENT':<14}  {'STATUS':<10}  {'SEGMENT':<36}  DETAILS"


def table_row(e: ShownEntry) -> str:
    status = "ok" if e.status == VERIFIED else "UNVERIFIED"
    return (f"{e.seq:>6}  {e.utc[:19] + 'Z' if len(e.utc) > 19 else e.utc:<20}  {e.event:<14}  {status:<10}  "
            f"{e.segment or '-':<36}  {_details(e)}")


def entry_json(e: ShownEntry) -> dict[str, Any]:
    return asdict(e)


def problems(view: SealLogView) -> list[str]:
    """The lines that must be seen: why entries are unverified, or why the log is not whole."""
    lines = []
    if view.unverified:
        first = next(e for e in view.entries if e.status == UNVERIFIED)
        lines.append(f"bodycam log: WARNING: {view.unverified} entries from seq {first.seq} on are UNVERIFIED; "
                     "do not rely on them")
    if view.unreadable:
        lines.append(f"bodycam log: WARNING: {view.unreadable} entry record(s) do not parse and are not shown; "
                     "the log is not whole")
    if view.status != VERIFIED or not view.whole:
        lines += [f"bodycam log: seal log {view.status}: {reason}" for reason in view.reasons]
    return lines


# -- the command ------------------------------------------------------------------------------


@click.command("log")
@click.argument("recording", metavar="STATE_OR_EXPORT", type=click.Path(path_type=Path, readable=False))
@click.option("--ca", type=click.Path(path_type=Path, dir_okay=False),
              help="Agency CA certificate to trust (default $BODYCAM_CA or /etc/bodycam/agency-ca.crt).")
@click.option("--event", "events", multiple=True, metavar="KIND",
              help="Only these event kinds (repeatable), e.g. --event alarm --event mark.")
@click.option("--since", help="Only entries at or after this UTC time (ISO 8601; a date means 00:00).")
@click.option("--until", help="Only entries before this UTC time.")
@click.option("--segment", help="Only entries about this segment (its name or sequence number).")
@click.option("--json", "as_json", is_flag=True,
              help="JSON: one document; with --follow, one JSON object per line.")
@click.option("--follow", is_flag=True, help="Keep watching the seal log of a running recorder; Ctrl-C ends.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds between looks at the seal-log folder with --follow.")
def log_command(recording: Path, ca: Path | None, events: tuple[str, ...], since: str | None, until: str | None,
                segment: str | None, as_json: bool, follow: bool, interval: float) -> None:
    """Print the seal log of a recorder's state folder or an evidence export.

    Each entry is checked by the verifier against the agency CA: signature,
    device, sequence and hash chain.  Entries after one that fails are shown
    marked UNVERIFIED, with the reason on stderr, never silently.  Exit
    status 0 when every entry of the log verified (a log torn by a power cut
    is whole up to the tear), 1 when any entry is unverified or unreadable
    (even one the filters leave out) or the verifier finds the log broken,
    2 for bad input.
    """
    from device.sealing.cli import load_trust_anchor
    from device.sealing.safeio import check_folder

    check_folder(recording, "recorder state or evidence export")  # before the CA: what was typed last
    ca_cert = load_trust_anchor(ca)
    window = {"events": events, "since": parse_time(since, "--since") if since else None,
              "until": parse_time(until, "--until") if until else None, "segment": segment}
    view = read_seal_log(recording, ca_cert)
    shown = select(view.entries, **window)
    log.info("seal log of %s (device %s): %d entries, %s, %d unverified", recording, view.device,
             len(view.entries), view.status, view.unverified)
    if as_json and not follow:
        click.echo(json.dumps({"format": "bodycam-log/1", "path": view.path, "device": view.device,
                               "seal_log": {"status": view.status, "reasons": view.reasons,
                                            "entries": len(view.entries), "unverified": view.unverified,
                                            "unreadable": view.unreadable},
                               "entries": [entry_json(e) for e in shown]}, indent=2, ensure_ascii=False))
    else:
        emit = _emitter(as_json)
        if not as_json:
            click.echo(f"seal log of {view.device or '?'} in {view.path}: {len(view.entries)} entries, "
                       f"{view.status}")
            click.echo(TABLE_HEADER)
        for e in shown:
            emit(e)
    for line in problems(view):
        click.echo(line, err=True)
    if follow:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        view = follow_log(recording, ca_cert, view, stop, interval, _emitter(as_json), window,
                          warn=lambda line: click.echo(line, err=True))
    raise SystemExit(0 if view.whole else 1)


def _emitter(as_json: bool) -> Callable[[ShownEntry], None]:
    if as_json:
        return lambda e: click.echo(json.dumps(entry_json(e), ensure_ascii=False))
    return lambda e: click.echo(table_row(e))


def follow_log(root: Path, ca_cert, view: SealLogView, stop: threading.Event, interval: float,
               emit: Callable[[ShownEntry], None], window: dict[str, Any],
               warn: Callable[[str], None]) -> SealLogView:
    """Print entries as they are appended, each verified, until ``stop`` is set.

    A log that stops verifying is reported once per new problem; entries that
    disappear or change (never by the recorder: the log is append-only) are
    reported as such.  Returns the last view.
    """
    # An entry shown as verified that no longer is was changed (or one before it was).
    seen = [(e.seq, e.file, e.offset, e.status) for e in view.entries]
    reported = set(problems(view))
    while not stop.wait(interval):
        try:
            new = read_seal_log(root, ca_cert)
        except InputError as exc:
            warn(f"bodycam log: {exc}")
            continue
        keys = [(e.seq, e.file, e.offset, e.status) for e in new.entries]
        if keys[:len(seen)] != seen:
            warn(f"bodycam log: WARNING: entries already shown were removed or changed in {root}")
        for e in select(new.entries[len(seen):], **window):
            emit(e)
        for line in problems(new):
            if line not in reported:
                warn(line)
                reported.add(line)
        seen, view = keys, new
    return view


commands = (log_command,)
