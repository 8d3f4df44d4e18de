"""Oversight read from the index: the misuse timeline of one officer's shift
(Art. 22, 25) and the yearly review sample with its findings (Art. 24).

Misuse timeline, for an officer and a shift (local date, duty start and end,
``SHIFT_ZONE``), from the segments the archive holds:

- ``late-activation``: first footage later than ``late_minutes`` after the shift began:
  duty start, or the recorder's assignment to the officer when that came later (the
  seal log's ``assignment`` entry, written when a dock handed the recorder out);
- ``gap``: more than ``gap_minutes`` between one segment's end and the next's start during duty;
- ``outside-duty``: a segment opened before duty start or after duty end;
- ``unclean-stop``: a segment the recorder sealed by recovery (status ``truncated``) or left
  open, or one it logged lost (``segment-lost``: nothing could be sealed);
- ``deleted-without-receipt``: a logged segment that left the recorder without a valid
  receipt of this archive (``custody_findings``, read from the seal log at each docking);
- ``mark-without-recording``: an enforcement mark pressed while nothing was recorded;
- ``mark-before-notice``: an enforcement mark earlier than the shift's first Art. 22 notice
  (``notice-first`` when the notice came first).

Review (sample, request, findings) is archive/review.py's; this module adds
the statistics per agency, sub-unit and officer.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from .. import evidence as ev
from .. import index as ix

SHIFT_ZONE = ZoneInfo("Asia/Shanghai")  # the duty roster's clock (China Standard Time)


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
    """The flags of one officer's shift (see the module docstring).  Segments,
    seal-log entries and custody findings from ``margin_hours`` before duty
    start to as long after duty end are read, so that recording outside duty
    and the assignment before the shift show."""
    duty_a, duty_b = shift_bounds(day, start, end)
    s, le, cf = ix.segments, ix.log_events, ix.custody_findings
    lo = ev.utc_text(duty_a - dt.timedelta(hours=margin_hours))
    hi = ev.utc_text(duty_b + dt.timedelta(hours=margin_hours))
    with archive.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(s).where(s.c.agency == agency, s.c.officer == officer, s.c.opened_utc >= lo, s.c.opened_utc < hi)
            .order_by(s.c.opened_utc, s.c.segment_seq))]
        entries = [dict(r._mapping) for r in conn.execute(
            select(le).where(le.c.agency == agency, le.c.officer == officer, le.c.utc >= lo, le.c.utc < hi,
                             le.c.event.in_(("assignment", "mark", "segment-lost")))
            .order_by(le.c.utc, le.c.seq))]
        gone = [dict(r._mapping) for r in conn.execute(
            select(cf).where(cf.c.agency == agency, cf.c.officer == officer, cf.c.opened_utc >= lo,
                             cf.c.opened_utc < hi, cf.c.resolved_utc.is_(None)).order_by(cf.c.opened_utc))]
        digests = [g["segment_digest"] for g in gone if g["segment_digest"]]
        held = set(conn.execute(select(s.c.segment_digest).where(s.c.segment_digest.in_(digests))).scalars()
                   ) if digests else set()
    flags: list[Flag] = []
    for r in rows:
        r["events"] = json.loads(r["events"])
        r["marks"] = json.loads(r["marks"])
    for e in entries:
        e["detail"] = json.loads(e["detail"])
    on_duty = [r for r in rows if duty_a <= _utc(r["opened_utc"]) < duty_b]
    # The shift begins at duty start, or at the recorder's hand-out to the officer if later.
    first_footage = _utc(on_duty[0]["opened_utc"]) if on_duty else duty_b
    handed = [e for e in entries if e["event"] == "assignment" and _utc(e["utc"]) <= first_footage
              and _utc(e["utc"]) < duty_b]
    began, began_by = duty_a, "duty-start"
    if handed and _utc(handed[-1]["utc"]) > duty_a:
        began, began_by = _utc(handed[-1]["utc"]), "assignment"
    if on_duty:
        late = (first_footage - began).total_seconds() / 60
        if late > late_minutes:
            flags.append(Flag(on_duty[0]["opened_utc"], "late-activation", on_duty[0]["name"], round(late, 1),
                              detail={"from": began_by, "from_utc": ev.utc_text(began)}))
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
    for e in entries:
        if e["event"] == "segment-lost":
            flags.append(Flag(e["utc"], "unclean-stop", e["segment"], detail={"status": "lost",
                                                                            "device": e["device"]}))
    for g in gone:
        flags.append(Flag(g["opened_utc"], "deleted-without-receipt", g["segment"], detail={
            "how": g["how"], "device": g["device"], "archived": g["segment_digest"] in held,
            "found_utc": g["found_utc"]}))
    notices, marks = [], []
    for r in on_duty:
        for e in r["events"]:
            if not isinstance(e, dict) or not isinstance(e.get("utc"), str):
                continue
            if e.get("event") == "notify":
                notices.append((e["utc"], r["name"]))
            elif e.get("event") == "mark":
                marks.append((e["utc"], r["name"], e.get("kind")))
    for e in entries:  # a mark pressed while not recording is in the seal log only
        if e["event"] == "mark" and e["detail"].get("recording") is False and duty_a <= _utc(e["utc"]) < duty_b:
            flags.append(Flag(e["utc"], "mark-without-recording", None, detail={"kind": e["detail"].get("kind"),
                                                                                "device": e["device"]}))
            marks.append((e["utc"], None, e["detail"].get("kind")))
    if marks:
        first_mark = min(marks, key=lambda m: m[0])
        first_notice = min(notices) if notices else None
        if first_notice is None or first_mark[0] < first_notice[0]:
            flags.append(Flag(first_mark[0], "mark-before-notice", first_mark[1],
                              detail={"notice_utc": first_notice[0] if first_notice else None}))
        else:
            flags.append(Flag(first_notice[0], "notice-first", first_notice[1]))
    flags.sort(key=lambda f: f.utc)
    return Shift(officer, ev.utc_text(duty_a), ev.utc_text(duty_b), rows, flags)


def recent_custody_findings(archive, agency: str, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` unresolved custody findings of ``agency`` (format §14), newest
    sighting first, each with ``archived`` (whether this archive holds its
    sealed digest) and ``shift``: the query string of the misuse timeline of
    its officer's day (Beijing time, duty 00:00 to 23:59) to open it in."""
    from urllib.parse import urlencode

    cf, s = ix.custody_findings, ix.segments
    with archive.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(cf).where(cf.c.agency == agency, cf.c.resolved_utc.is_(None))
            .order_by(cf.c.found_utc.desc(), cf.c.device, cf.c.segment_seq)
            .limit(limit))]
        digests = [r["segment_digest"] for r in rows if r["segment_digest"]]
        held = set(conn.execute(select(s.c.segment_digest).where(s.c.segment_digest.in_(digests))).scalars()
                   ) if digests else set()
    for r in rows:
        r["archived"] = r["segment_digest"] in held
        day = _utc(r["opened_utc"]).astimezone(SHIFT_ZONE).date()
        r["shift"] = urlencode({"officer": r["officer"] or "", "day": day.isoformat(), "start": "00:00",
                                "end": "23:59"}) if r["officer"] else None
    return rows


# -- Art. 24 review ------------------------------------------------------------------------
# Sampling, the view request for the sample and the findings are archive/review.py's;
# the console adds the statistics for the yearly assessment.


def review_statistics(archive, agency: str, *, since: str | None = None, until: str | None = None
                      ) -> dict[str, list[dict[str, Any]]]:
    """Per agency, sub-unit and officer: reviewed, conforms, problem and the
    conformity rate (percent), from ``archive.review.findings``; the latest
    finding of a reviewer on a segment counts; ``since``/``until`` bound the
    segment's opening time."""
    from ..review import findings

    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for f in findings(archive, agency):
        latest[(f["reviewer"], f["segment_digest"])] = f
    s = ix.segments
    digests = sorted({d for _r, d in latest})
    facts: dict[str, Any] = {}
    with archive.engine.connect() as conn:
        for i in range(0, len(digests), 500):
            for r in conn.execute(select(s.c.segment_digest, s.c.officer, s.c.sub_unit, s.c.opened_utc)
                                  .where(s.c.segment_digest.in_(digests[i:i + 500]))):
                facts[r.segment_digest] = r
    rows = []
    for (_reviewer, digest), f in latest.items():
        r = facts.get(digest)
        opened = r.opened_utc if r else ""
        if since and opened < since or until and opened >= until:
            continue
        rows.append({"result": f["result"], "officer": r.officer if r else None, "sub_unit": r.sub_unit if r else None})

    def tally(key) -> list[dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}
        for f in rows:
            k = key(f) or "—"
            g = groups.setdefault(k, {"key": k, "reviewed": 0, "conforms": 0, "problem": 0})
            g["reviewed"] += 1
            g[f["result"]] = g.get(f["result"], 0) + 1
        for g in groups.values():
            g["rate"] = round(100 * g["conforms"] / g["reviewed"]) if g["reviewed"] else None
        return sorted(groups.values(), key=lambda g: g["key"])
    return {"agency": tally(lambda f: agency), "sub_unit": tally(lambda f: f["sub_unit"]),
            "officer": tally(lambda f: f["officer"])}
