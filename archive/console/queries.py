"""What the console reads that the archive's APIs do not already answer
(additive, read-only): the audit trail filtered by segment as well as by
person and case, the live grants of one person, the last officer seen on a
device, and the docks' status boards (format.md §15, read as JSON files;
the console never imports the dock's code).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from device.sealing.safeio import read_text_bounded

from .. import evidence as ev
from .. import index as ix
from .. import lawful_index as lx
from .oversight import SHIFT_ZONE

log = logging.getLogger(__name__)
AUDIT_PAGE_LIMIT = 200
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def beijing_text(utc: str | None) -> str:
    """An ISO 8601 UTC text as ``YYYY-MM-DD hh:mm:ss`` Beijing time (Asia/Shanghai,
    the staff's clock); "" for None or empty, the text itself if it is not a time."""
    moment = _utc(utc)
    if moment is None:
        return utc or ""
    return moment.astimezone(SHIFT_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def day_bounds(since: dt.date | None, until: dt.date | None) -> tuple[str | None, str | None]:
    """Beijing dates ``since`` .. ``until`` (both days included) as the UTC bounds
    the archive's search takes (``since`` inclusive, ``until`` exclusive): from
    00:00 Beijing time on ``since`` to 00:00 on the day after ``until``."""
    def start_of(day: dt.date) -> str:
        return ev.utc_text(dt.datetime.combine(day, dt.time(0, 0), SHIFT_ZONE).astimezone(dt.timezone.utc))

    return (start_of(since) if since else None,
            start_of(until + dt.timedelta(days=1)) if until else None)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def audit_entries(archive, agency: str, *, actor: str | None = None, case: str | None = None,
                  segment: str | None = None, limit: int | None = AUDIT_PAGE_LIMIT,
                  newest_first: bool = True, since: str | None = None, until: str | None = None,
                  before: int | None = None) -> list[dict[str, Any]]:
    """Audit entries of ``agency`` as ``{seq, digest, signature, payload(dict)}``.

    ``actor`` and ``case`` are exact; ``segment`` is a segment digest (or a
    prefix of one, at least 8 hex digits) among the entry's segments;
    ``since``/``until`` bound the entry's UTC time (ISO 8601 text, inclusive /
    exclusive, e.g. from :func:`day_bounds`); ``before`` keeps entries whose
    seq is below it (the next page, newest first).
    ``limit`` None returns all.  ValueError for a too-short segment prefix.
    """
    a = lx.audit_log
    q = select(a).where(a.c.agency == agency)
    if actor:
        q = q.where(a.c.actor == actor).with_hint(a, "INDEXED BY ix_audit_actor", "sqlite")
    elif case:
        q = q.with_hint(a, "INDEXED BY ix_audit_case", "sqlite")
    if case:
        q = q.where(a.c.case_number == case)
    if segment:
        if len(segment) < 8:
            raise ValueError("segment: at least 8 hex digits of its digest")
        q = q.where(a.c.segments.like(f'%"{_like(segment)}%', escape="\\"))
    if since:
        q = q.where(a.c.at_utc >= since)
    if until:
        q = q.where(a.c.at_utc < until)
    if before is not None:
        q = q.where(a.c.seq < before)
    # With a person or case filter, the hint and "seq + 0" keep SQLite from walking the
    # whole primary key in seq order and filtering, whatever its (possibly stale) statistics say.
    order = a.c.seq + 0 if (actor or case) else a.c.seq
    q = q.order_by(order.desc() if newest_first else order)
    if limit is not None:
        q = q.limit(limit)
    with archive.engine.connect() as conn:
        return [{"seq": r.seq, "digest": r.digest, "signature": r.signature, "payload": json.loads(r.payload)}
                for r in conn.execute(q)]


def case_segments(archive, agency: str, case_number: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the case, its live segments oldest first) through case_segments, so the
    cost follows the case's size, not the archive's."""
    c, cs, s = ix.cases, ix.case_segments, ix.segments
    with archive.engine.connect() as conn:
        case = conn.execute(select(c).where(c.c.agency == agency, c.c.case_number == case_number)).first()
        if case is None:
            return None, []
        rows = [dict(r._mapping) for r in conn.execute(
            select(s).join(cs, cs.c.segment_digest == s.c.segment_digest)
            .where(cs.c.case_id == case.id, s.c.agency == agency, s.c.deleted_utc.is_(None))
            .order_by(s.c.opened_utc, s.c.device, s.c.segment_seq))]
    for r in rows:
        r["marks"] = json.loads(r["marks"])
        r["events"] = json.loads(r["events"])
    return dict(case._mapping), rows


def grant_state(grant, now_utc: str) -> str:
    """``requested | live | expired | refused | revoked`` for a Grant at ``now_utc``."""
    if grant.status == "approved":
        return "live" if grant.valid_from_utc <= now_utc < grant.valid_until_utc else "expired"
    return grant.status


def live_view_grants(archive, account) -> dict[str, int]:
    """segment digest → id of a live ``view`` grant of ``account`` covering it."""
    now = ev.utc_text(archive.now())
    g = lx.grants
    out: dict[str, int] = {}
    with archive.engine.connect() as conn:
        for r in conn.execute(select(g).where(g.c.agency == account.agency, g.c.grantee == account.username,
                                              g.c.status == "approved", g.c.valid_until_utc > now,
                                              g.c.valid_from_utc <= now)):
            if "view" in json.loads(r.actions):
                for d in json.loads(r.segments):
                    out.setdefault(d, r.id)
    return out


def segment_row(archive, agency: str, segment: str) -> dict[str, Any] | None:
    """One live segment of ``agency`` by digest (its primary key) or, failing
    that, by name; events and marks parsed."""
    s = ix.segments
    live = (s.c.agency == agency, s.c.deleted_utc.is_(None))
    with archive.engine.connect() as conn:
        row = None
        if DIGEST_RE.match(segment):
            row = conn.execute(select(s).where(*live, s.c.segment_digest == segment)).first()
        if row is None:
            row = conn.execute(select(s).where(*live, s.c.name == segment)).first()
    if row is None:
        return None
    out = dict(row._mapping)
    out["marks"] = json.loads(out["marks"])
    out["events"] = json.loads(out["events"])
    return out


def segments_by_digest(archive, agency: str, digests: list[str]) -> dict[str, dict[str, Any]]:
    """digest → ``{name, device, opened_utc, search}`` for the live segments of ``agency``
    among ``digests``; ``search`` is the /search query that lists the segment (its
    device on its Beijing day)."""
    from urllib.parse import urlencode

    s = ix.segments
    out: dict[str, dict[str, Any]] = {}
    with archive.engine.connect() as conn:
        for i in range(0, len(digests), 500):
            for r in conn.execute(select(s.c.segment_digest, s.c.name, s.c.device, s.c.opened_utc).where(
                    s.c.agency == agency, s.c.deleted_utc.is_(None), s.c.segment_digest.in_(digests[i:i + 500]))):
                day = beijing_text(r.opened_utc)[:10]
                out[r.segment_digest] = {"name": r.name, "device": r.device, "opened_utc": r.opened_utc,
                                         "search": urlencode({"device": r.device, "since": day, "until": day})}
    return out


def devices_of(archive, agency: str, devices: list[str]) -> dict[str, dict[str, Any]]:
    """For each known device: its agency, last docking and the officer on its latest segment."""
    d, s = ix.devices, ix.segments
    out: dict[str, dict[str, Any]] = {}
    if not devices:
        return out
    with archive.engine.connect() as conn:
        for r in conn.execute(select(d).where(d.c.device.in_(devices))):
            officer = conn.execute(select(s.c.officer).where(s.c.agency == r.agency, s.c.device == r.device)
                                   .order_by(s.c.opened_utc.desc()).limit(1)).scalar()
            out[r.device] = {"agency": r.agency, "last_docked_utc": r.last_docked_utc, "officer": officer}
    return out


def duration_seconds(row: dict[str, Any]) -> float | None:
    if not row.get("closed_utc"):
        return None
    a = dt.datetime.fromisoformat(row["opened_utc"].replace("Z", "+00:00"))
    b = dt.datetime.fromisoformat(row["closed_utc"].replace("Z", "+00:00"))
    return max(0.0, (b - a).total_seconds())


@dataclass
class Bay:
    dock_index: int
    dock: str
    bay: str
    device: str | None
    phase: str
    percent: int | None
    bytes_pulled: int
    segments_total: int
    segments_archived: int
    ready: bool | None
    readiness: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    outcome: str | None = None
    clock_offset_ms: float | None = None
    updated: str | None = None
    officer: str | None = None  # the board's (dock registry), else the officer on the device's latest segment
    officer_name: str | None = None  # the board's, from the dock's officer registry
    checkout_pending: dict[str, Any] | None = None
    checkout_result: dict[str, Any] | None = None


@dataclass
class BoardProblem:
    path: str
    problem: str


def board_path(path: Path) -> Path:
    return path / "status.json" if path.is_dir() else path


MAX_BOARD_BYTES = 4 << 20  # a status board or check-out file read at most (a board is a few KiB per bay)


def read_boards(paths: list[Path]) -> tuple[list[Bay], list[BoardProblem]]:
    """Every bay of every dock's status board; a board that cannot be read is
    reported with its path and why (never an exception)."""
    bays: list[Bay] = []
    problems: list[BoardProblem] = []
    for dock_index, given in enumerate(paths):
        path = board_path(given)
        dock = path.parent.parent.name if path.parent.name == "state" else path.parent.name
        try:
            if not path.exists():
                continue  # a dock that has not docked anything yet has no board
            doc = json.loads(read_text_bounded(path, MAX_BOARD_BYTES, "dock status board"))  # no FIFO hangs
            entries = doc["bays"]
            if not isinstance(entries, dict):
                raise TypeError("bays is not an object")
        except FileNotFoundError:
            continue  # a dock that has not docked anything yet has no board
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(BoardProblem(str(path), f"{type(exc).__name__}: {exc}"))
            continue
        for key, p in sorted(entries.items(), key=lambda kv: (len(kv[0]), kv[0])):
            if not isinstance(p, dict):
                problems.append(BoardProblem(str(path), f"bay {key}: not an object"))
                continue
            total = _int(p.get("segments_total"))
            archived = _int(p.get("segments_archived"))
            bays.append(Bay(
                dock_index=dock_index, dock=dock, bay=str(key), device=p.get("device") if isinstance(p.get("device"), str) else None,
                phase=str(p.get("phase") or ""), percent=round(100 * archived / total) if total else None,
                bytes_pulled=_int(p.get("bytes_pulled")), segments_total=total, segments_archived=archived,
                ready=p.get("ready") if isinstance(p.get("ready"), bool) else None,
                readiness=[str(x) for x in p.get("readiness") or [] if isinstance(x, str)],
                flagged=[str(x) for x in p.get("flagged") or [] if isinstance(x, str)],
                outcome=p.get("outcome") if isinstance(p.get("outcome"), str) else None,
                clock_offset_ms=p.get("clock_offset_ms") if isinstance(p.get("clock_offset_ms"), (int, float)) else None,
                updated=p.get("updated") if isinstance(p.get("updated"), str) else None,
                officer=p.get("officer") if isinstance(p.get("officer"), str) else None,
                officer_name=p.get("officer_name") if isinstance(p.get("officer_name"), str) else None))
    return bays, problems


def boards_signature(paths: list[Path]) -> tuple:
    """Changes whenever a board is rewritten (the dock replaces it atomically)
    or a check-out request or result comes or goes."""
    out = []
    for given in paths:
        for path in (board_path(given), checkout_dir(given)):
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_ino, st.st_size))
            except OSError:
                out.append(None)
    return tuple(out)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


CHECKOUT_INBOX = "checkout-requests"  # format.md §15.1; the dock applies what is left here


def checkout_dir(board: Path) -> Path:
    return board_path(board).parent / CHECKOUT_INBOX


def checkouts(board: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(pending requests, latest results) by bay, from a dock's check-out inbox."""
    pending: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    folder = checkout_dir(board)
    if not folder.is_dir():
        return pending, results
    for path in folder.glob("*.json"):
        try:
            value = json.loads(read_text_bounded(path, MAX_BOARD_BYTES, "check-out request"))
        except (OSError, ValueError):
            continue
        if not isinstance(value, dict):
            continue
        if path.name.endswith(".result.json"):
            results[path.name[:-len(".result.json")]] = value
        else:
            pending[path.name[:-5]] = value
    return pending, results


def request_checkout(board: Path, bay: int, officer: str, requested_by: str, agency: str, now_utc: str) -> Path:
    """Leave a check-out request for the dock (written whole: temp file, fsync, rename)."""
    import os

    folder = checkout_dir(board)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{bay}.json"
    tmp = folder / f".{bay}.json.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"bay": bay, "officer": officer, "requested_by": requested_by, "agency": agency,
                   "requested_utc": now_utc}, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return target


def manifest_facts(archive, row: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """What the segment's manifest (signed metadata, never footage) says about
    its clock and its ending: ``clock_state``, ``opened_local``, ``timezone``,
    ``status``, ``truncated``, and ``media_start_us`` (µs on the recorder's
    media clock of this segment's first frame, format.md §11; None when the
    manifest's ``meta`` lacks it).  Empty when the manifest cannot be read."""
    import os
    import shutil
    import tempfile

    from bodycam.errors import BodycamError
    from device.sealing.segment_file import read_manifest

    fd, name = tempfile.mkstemp(prefix="manifest-", suffix=".bcman", dir=scratch)
    try:
        with os.fdopen(fd, "wb") as out, archive.store.open(row["manifest_blob"]) as src:
            shutil.copyfileobj(src, out)
        obj = read_manifest(Path(name)).signed.obj
    except (BodycamError, OSError, ValueError) as exc:
        log.warning("manifest of %s unreadable: %s", row.get("name"), exc)
        return {}
    finally:
        Path(name).unlink(missing_ok=True)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    start = meta.get("media_start_us")
    return {**{k: obj.get(k) for k in ("clock_state", "opened_local", "timezone", "status", "truncated")},
            "media_start_us": start if isinstance(start, int) and not isinstance(start, bool) else None}


def event_offsets(events: list[dict[str, Any]], *, media_start_us: int | None, opened_utc: str,
                  duration: float | None) -> list[dict[str, Any]]:
    """The segment's manifest events in the order they happened, each with
    ``offset`` (seconds into *this segment's* file, whose timeline starts at 0)
    and ``inside`` (False when the offset falls outside the segment: then no
    jump button is offered).

    An event's ``media_us`` counts on the recorder's media clock, from the start
    of the recording (pre-roll included), not from this segment's start
    (format.md §11); the segment's own first frame is ``media_start_us``, so the
    offset is their difference.  Without ``media_start_us`` (older manifests)
    the offset is the event's UTC minus the segment's opening UTC; ``offset`` is
    None when neither is known.
    """
    out = []
    opened = _utc(opened_utc)
    for e in events:
        if not isinstance(e, dict):
            continue
        offset = None
        media_us = e.get("media_us")
        if isinstance(media_us, (int, float)) and media_start_us is not None:
            offset = (media_us - media_start_us) / 1e6
        elif isinstance(e.get("utc"), str) and opened is not None and _utc(e["utc"]) is not None:
            offset = (_utc(e["utc"]) - opened).total_seconds()
        inside = offset is not None and offset >= 0 and (duration is None or offset <= duration)
        out.append({**e, "offset": offset, "inside": inside})
    out.sort(key=lambda e: (e["offset"] is None, e["offset"] if e["offset"] is not None else 0))
    return out


def _utc(text: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
