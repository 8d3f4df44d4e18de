"""Oversight read from the index: the misuse timeline of one officer's shift
(Art. 22, 25) and the yearly review sample with its findings (Art. 24).

Misuse timeline, for an officer and a shift (local date, duty start and end,
``SHIFT_ZONE``), from the segments the archive holds:

- ``late-activation``: first footage later than ``late_minutes`` after duty start;
- ``gap``: more than ``gap_minutes`` between one segment's end and the next's start during duty;
- ``outside-duty``: a segment opened before duty start or after duty end;
- ``unclean-stop``: a segment the recorder sealed by recovery (status ``truncated``) or left open;
- ``mark-before-notice``: an enforcement mark earlier than the shift's first Art. 22 notice
  (``notice-first`` when the notice came first).

Review findings are appended to the audit trail (action ``review-finding``:
signed, hash-chained, never edited; a later finding for the same segment by
the same reviewer supersedes the earlier one in the statistics).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from .. import evidence as ev
from .. import index as ix
from .. import lawful_index as lx

SHIFT_ZONE = ZoneInfo("Asia/Shanghai")  # the duty roster's clock (China Standard Time)
FINDINGS = ("compliant", "deficient", "unreviewable")
FINDING_ACTION = "review-finding"
_FINDINGS_LOCK = threading.Lock()


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Flag:
    utc: str
    kind: str
    segment: str | None = None
    minutes: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Shift:
    officer: str
    start_utc: str
    end_utc: str
    segments: list[dict[str, Any]]
    flags: list[Flag]

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.flags:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out


def shift_bounds(day: dt.date, start: dt.time, end: dt.time) -> tuple[dt.datetime, dt.datetime]:
    """Duty start and end in UTC for a local date; an end before the start is the next day."""
    a = dt.datetime.combine(day, start, SHIFT_ZONE)
    b = dt.datetime.combine(day, end, SHIFT_ZONE)
    if b <= a:
        b += dt.timedelta(days=1)
    return a.astimezone(dt.timezone.utc), b.astimezone(dt.timezone.utc)


def misuse_timeline(archive, agency: str, officer: str, day: dt.date, start: dt.time, end: dt.time, *,
                    late_minutes: float = 30, gap_minutes: float = 20, margin_hours: float = 4) -> Shift:
    """The flags of one officer's shift (see the module docstring).  Segments
    from ``margin_hours`` before duty start to as long after duty end are read,
    so that recording outside duty shows."""
    duty_a, duty_b = shift_bounds(day, start, end)
    s = ix.segments
    lo = ev.utc_text(duty_a - dt.timedelta(hours=margin_hours))
    hi = ev.utc_text(duty_b + dt.timedelta(hours=margin_hours))
    with archive.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(s).where(s.c.agency == agency, s.c.officer == officer, s.c.opened_utc >= lo, s.c.opened_utc < hi)
            .order_by(s.c.opened_utc, s.c.segment_seq))]
    flags: list[Flag] = []
    for r in rows:
        r["events"] = json.loads(r["events"])
        r["marks"] = json.loads(r["marks"])
    on_duty = [r for r in rows if duty_a <= _utc(r["opened_utc"]) < duty_b]
    if on_duty:
        first = _utc(on_duty[0]["opened_utc"])
        late = (first - duty_a).total_seconds() / 60
        if late > late_minutes:
            flags.append(Flag(on_duty[0]["opened_utc"], "late-activation", on_duty[0]["name"], round(late, 1)))
    else:
        flags.append(Flag(ev.utc_text(duty_a), "no-footage"))
    for prev, nxt in zip(on_duty, on_duty[1:]):
        prev_end = _utc(prev["closed_utc"] or prev["opened_utc"])
        gap = (_utc(nxt["opened_utc"]) - prev_end).total_seconds() / 60
        if gap > gap_minutes:
            flags.append(Flag(prev["closed_utc"] or prev["opened_utc"], "gap", nxt["name"], round(gap, 1)))
    for r in rows:
        opened = _utc(r["opened_utc"])
        if not duty_a <= opened < duty_b:
            flags.append(Flag(r["opened_utc"], "outside-duty", r["name"]))
        if r["status"] in ("truncated", "open") or not r["closed_utc"]:
            flags.append(Flag(r["closed_utc"] or r["opened_utc"], "unclean-stop", r["name"],
                              detail={"status": r["status"]}))
    notices, marks = [], []
    for r in on_duty:
        for e in r["events"]:
            if not isinstance(e, dict) or not isinstance(e.get("utc"), str):
                continue
            if e.get("event") == "notify":
                notices.append((e["utc"], r["name"]))
            elif e.get("event") == "mark":
                marks.append((e["utc"], r["name"], e.get("kind")))
    if marks:
        first_mark = min(marks)
        first_notice = min(notices) if notices else None
        if first_notice is None or first_mark[0] < first_notice[0]:
            flags.append(Flag(first_mark[0], "mark-before-notice", first_mark[1],
                              detail={"notice_utc": first_notice[0] if first_notice else None}))
        else:
            flags.append(Flag(first_notice[0], "notice-first", first_notice[1]))
    flags.sort(key=lambda f: f.utc)
    return Shift(officer, ev.utc_text(duty_a), ev.utc_text(duty_b), rows, flags)


# -- Art. 24 review ------------------------------------------------------------------------


SMALL_POPULATION = 5000  # up to this many matches are listed and sampled exactly


def review_sample(archive, agency: str, since: str, until: str, size: int, *, seed: int,
                  officer: str | None = None, sub_unit: str | None = None, mark: str | None = None
                  ) -> list[dict[str, Any]]:
    """Up to ``size`` distinct segments opened in [since, until), chosen at random
    (reproducibly from ``seed``) among those matching the criteria; oldest first.

    Up to :data:`SMALL_POPULATION` matches are listed and sampled exactly.
    Beyond that each draw takes the first match at or after a random digest
    (SHA-256 digests are spread evenly, so every segment is about equally
    likely): a walk of about (all segments / matches) rows of the primary
    key, never a scan of the period.
    """
    s = ix.segments
    where = [s.c.deleted_utc.is_(None), s.c.opened_utc >= since, s.c.opened_utc < until]
    if officer:
        where.append(s.c.officer == officer)
    if sub_unit:
        where.append(s.c.sub_unit == sub_unit)
    if mark:
        where.append(s.c.marks.like(f'%"{mark}"%'))
    rng = random.Random(seed)
    with archive.engine.connect() as conn:
        # how many match, counted only up to SMALL_POPULATION + 1: enough to choose the method
        capped = select(s.c.segment_digest).where(s.c.agency == agency, *where).limit(SMALL_POPULATION + 1).subquery()
        count = conn.execute(select(func.count()).select_from(capped)).scalar()
        if count <= SMALL_POPULATION:
            digests = sorted(d for (d,) in conn.execute(select(s.c.segment_digest).where(s.c.agency == agency, *where)))
            picked = rng.sample(digests, min(size, len(digests)))
            rows = [dict(r._mapping) for r in conn.execute(select(s).where(s.c.segment_digest.in_(picked)))]
        else:
            # "|| ''" keeps the planner off the time and agency indexes: the walk must follow the digest
            walk = [(s.c.agency.op("||")("")) == agency,
                    (s.c.opened_utc.op("||")("")) >= since, (s.c.opened_utc.op("||")("")) < until, *where[3:],
                    s.c.deleted_utc.is_(None)]
            chosen: dict[str, dict[str, Any]] = {}
            for _ in range(size * 5):
                if len(chosen) >= size:
                    break
                start = f"{rng.getrandbits(256):064x}"
                row = conn.execute(select(s).where(*walk, s.c.segment_digest >= start)
                                   .order_by(s.c.segment_digest).limit(1)).first()
                if row is None:  # past the last digest: wrap around
                    row = conn.execute(select(s).where(*walk).order_by(s.c.segment_digest).limit(1)).first()
                if row is not None:
                    chosen.setdefault(row.segment_digest, dict(row._mapping))
            rows = list(chosen.values())
    rows.sort(key=lambda r: (r["opened_utc"], r["segment_digest"]))
    for r in rows:
        r["marks"] = json.loads(r["marks"])
    return rows


def findings(archive, agency: str, *, since: str | None = None, until: str | None = None) -> dict[str, dict[str, Any]]:
    """The latest finding per (reviewer, segment) from the audit trail, keyed
    ``"<reviewer> <digest>"``: ``{reviewer, segment, finding, note, utc, officer, sub_unit, opened_utc}``;
    ``since``/``until`` bound the segment's opening time.

    The audit trail only grows, so what was read is kept (per archive and
    agency) and each call reads only the entries appended since.
    """
    a = lx.audit_log
    with _FINDINGS_LOCK:
        cache = archive.__dict__.setdefault("_console_findings", {})
        last, known = cache.get(agency, (-1, {}))
        q = select(a.c.seq, a.c.payload).where(a.c.agency == agency, a.c.seq > last,
                                               a.c.action == FINDING_ACTION).order_by(a.c.seq)
        with archive.engine.connect() as conn:
            head = conn.execute(select(a.c.seq).where(a.c.agency == agency).order_by(a.c.seq.desc()).limit(1)).scalar()
            for seq, payload in conn.execute(q):
                p = json.loads(payload)
                d = p.get("detail") or {}
                for seg in p.get("segments") or []:
                    known[f"{p['actor']} {seg}"] = {
                        "reviewer": p["actor"], "segment": seg, "finding": d.get("finding"), "note": d.get("note", ""),
                        "utc": p["utc"], "officer": d.get("officer"), "sub_unit": d.get("sub_unit"),
                        "opened_utc": d.get("opened_utc", "")}
        cache[agency] = (head if head is not None else -1, known)
        return {k: f for k, f in known.items()
                if not (since and f["opened_utc"] < since) and not (until and f["opened_utc"] >= until)}


def record_finding(archive, account, segment: dict[str, Any], finding: str, note: str) -> None:
    """Append a reviewer's finding on one segment to the audit trail; ValueError for an unknown finding."""
    from ..audit import audit_of

    if finding not in FINDINGS:
        raise ValueError(f"finding {finding!r}: one of {', '.join(FINDINGS)}")
    audit_of(archive).record(account.agency, FINDING_ACTION, actor=account.actor,
                             segments=[segment["segment_digest"]],
                             detail={"finding": finding, "note": note, "officer": segment.get("officer"),
                                     "sub_unit": segment.get("sub_unit"), "opened_utc": segment["opened_utc"]})


def statistics(archive, agency: str, found: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per agency, sub-unit and officer: reviewed, compliant, deficient,
    unreviewable, and the compliance rate (compliant / reviewable)."""
    def tally(key) -> list[dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}
        for f in found.values():
            k = key(f) or "—"
            g = groups.setdefault(k, {"key": k, "reviewed": 0, **{x: 0 for x in FINDINGS}})
            g["reviewed"] += 1
            g[f["finding"]] = g.get(f["finding"], 0) + 1
        for g in groups.values():
            reviewable = g["compliant"] + g["deficient"]
            g["rate"] = round(100 * g["compliant"] / reviewable) if reviewable else None
        return sorted(groups.values(), key=lambda g: g["key"])
    return {"agency": tally(lambda f: agency), "sub_unit": tally(lambda f: f["sub_unit"]), "officer": tally(lambda f: f["officer"])}
