"""Review by the justice bureau (Art. 24): a reviewer draws a random sample
of recordings, at random or by Art. 20 criteria; the sample becomes a view
request that the agency head approves like any other (Art. 19); the reviewer
plays the sample back under that grant and records a finding per segment.
Sampling and findings are audited."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy import select

from bodycam.errors import UsageError

from . import evidence as ev
from . import index as ix
from . import lawful_index as lx
from .accounts import Account, require_role
from .audit import audit_of, current_actor
from .grants import Grant, Grants

RESULTS = ("conforms", "problem")
MAX_SAMPLE = 200


def sample(archive, reviewer: Account, size: int, *, hours: int = 72, reason: str = "执法全过程记录抽样审查（第二十四条）",
           **criteria: Any) -> Grant:
    """Draw ``size`` segments at random (``random.SystemRandom``) among those
    matching ``criteria`` (search fields), and file a view request for them.

    UsageError if nothing matches or ``size`` is out of 1..200."""
    require_role(archive, reviewer, "review")
    if not 1 <= size <= MAX_SAMPLE:
        raise UsageError(f"sample size: 1 to {MAX_SAMPLE}")
    token = current_actor.set(reviewer.actor)
    try:
        rows = archive.search(reviewer.agency, limit=100_000, **criteria)
    finally:
        current_actor.reset(token)
    if not rows:
        raise UsageError("no recordings match these criteria")
    chosen = random.SystemRandom().sample(rows, min(size, len(rows)))
    digests = [r["segment_digest"] for r in chosen]
    audit_of(archive).record(reviewer.agency, "sample", actor=reviewer.actor, segments=digests,
                             detail={"criteria": criteria, "population": len(rows), "drawn": len(digests)})
    return Grants(archive).request(reviewer, grantee=reviewer.username, actions=["view"], reason=reason,
                                   hours=hours, segments=digests)


def record_finding(archive, reviewer: Account, segment: str, result: str, note: str,
                   sample_grant: int | None = None) -> dict[str, Any]:
    """Record the reviewer's finding on a segment they were granted to view."""
    require_role(archive, reviewer, "review")
    if result not in RESULTS:
        raise UsageError(f"result: one of {', '.join(RESULTS)}")
    if not note or not note.strip():
        raise UsageError("a note is required")
    s = ix.segments
    with archive.engine.connect() as conn:
        digest = conn.execute(select(s.c.segment_digest).where(
            s.c.agency == reviewer.agency, (s.c.segment_digest == segment) | (s.c.name == segment))).scalar()
    if digest is None:
        raise UsageError(f"no such segment in agency {reviewer.agency}: {segment}")
    Grants(archive).require(reviewer, "view", [digest], sample_grant)  # findings only on what was seen
    values = {"agency": reviewer.agency, "segment_digest": digest, "reviewer": reviewer.username,
              "result": result, "note": note, "at_utc": ev.utc_text(archive.now()), "sample_grant": sample_grant}
    with archive.engine.begin() as conn:
        values["id"] = conn.execute(lx.review_findings.insert().values(**values)).inserted_primary_key[0]
    audit_of(archive).record(reviewer.agency, "finding", actor=reviewer.actor, segments=[digest],
                             detail={"result": result, "note": note, "grant": sample_grant})
    return values


def findings(archive, agency: str | None) -> list[dict[str, Any]]:
    a = archive.agency(agency)
    f = lx.review_findings
    with archive.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(f).where(f.c.agency == a.id).order_by(f.c.id))]
