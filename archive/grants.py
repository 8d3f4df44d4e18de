"""Approval before viewing or export (Art. 19).

A request names who (the grantee), which segments or which case, why, for
how long and for what (``view``, ``export``).  An approver (agency head) of
the same agency, not the requester, approves or refuses it, confirming with
a TOTP code; the decision is signed by the archive (format §12 envelope,
ctx ``bodycam/v2/grant-decision``) naming the approver.  A grant is live
from its approval until ``valid_until`` unless revoked; viewing and export
check it on every call (:meth:`Grants.require`), so expiry or revocation
ends access at once.  Every step, and every refusal, is audited.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import select, update

from bodycam.errors import UsageError

from . import evidence as ev
from . import index as ix
from . import lawful_index as lx
from .accounts import Account, AccessDenied, Accounts, require_role
from .audit import audit_of

CTX_GRANT_DECISION = ev.CTX_GRANT_DECISION
GRANT_ACTIONS = ("view", "export")


@dataclass(frozen=True)
class Grant:
    id: int
    agency: str
    requester: str
    grantee: str
    actions: tuple[str, ...]
    case_number: str | None
    segments: tuple[str, ...]  # segment digests in scope
    reason: str
    hours: int
    status: str
    decided_by: str | None
    valid_from_utc: str | None
    valid_until_utc: str | None
    decision: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _grant(row: Any) -> Grant:
    return Grant(row.id, row.agency, row.requester, row.grantee, tuple(json.loads(row.actions)), row.case_number,
                 tuple(json.loads(row.segments)), row.reason, row.hours, row.status, row.decided_by,
                 row.valid_from_utc, row.valid_until_utc, json.loads(row.decision) if row.decision else None)


class Grants:
    def __init__(self, archive) -> None:
        self.archive = archive
        self.accounts = Accounts(archive)

    def _scope(self, agency: str, case_number: str | None, segments: Iterable[str]) -> list[str]:
        s, c, cs = ix.segments, ix.cases, ix.case_segments
        wanted = list(segments)
        with self.archive.engine.connect() as conn:
            if case_number:
                case = conn.execute(select(c.c.id).where(c.c.agency == agency, c.c.case_number == case_number)).first()
                if case is None:
                    raise UsageError(f"no case {case_number!r} in agency {agency}")
                found = [d for (d,) in conn.execute(select(cs.c.segment_digest).join(
                    s, s.c.segment_digest == cs.c.segment_digest).where(
                    cs.c.case_id == case.id, s.c.deleted_utc.is_(None)).order_by(s.c.opened_utc))]
                if not found:
                    raise UsageError(f"case {case_number!r} has no segments")
                return found
            if not wanted:
                raise UsageError("name a case or segments")
            rows = list(conn.execute(select(s.c.segment_digest, s.c.name).where(
                s.c.agency == agency, s.c.deleted_utc.is_(None),
                (s.c.segment_digest.in_(wanted)) | (s.c.name.in_(wanted)))))
        known = {r.segment_digest for r in rows} | {r.name for r in rows}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise UsageError(f"no such segment in agency {agency}: {', '.join(missing[:5])}")
        return [r.segment_digest for r in rows]

    def request(self, requester: Account, *, grantee: str, actions: Iterable[str], reason: str, hours: int,
                case_number: str | None = None, segments: Iterable[str] = ()) -> Grant:
        """File a request; returns it (status ``requested``)."""
        require_role(self.archive, requester, "request", case=case_number)
        actions = sorted(set(actions))
        if not actions or not set(actions) <= set(GRANT_ACTIONS):
            raise UsageError(f"actions: some of {', '.join(GRANT_ACTIONS)}")
        if not reason or not reason.strip():
            raise UsageError("a reason is required (Art. 19)")
        limit = self.archive.config.lawful_use.grant_max_hours
        if not isinstance(hours, int) or not 1 <= hours <= limit:
            raise UsageError(f"hours: 1 to {limit} ([lawful_use] grant_max_hours)")
        target = self.accounts.get(grantee)
        if target.agency != requester.agency:
            raise UsageError(f"{grantee} belongs to another agency")
        if grantee != requester.username:
            require_role(self.archive, requester, "request-for-others", case=case_number)
        for action in actions:
            if target.role not in {"view": {"officer", "keeper", "approver", "reviewer", "recipient"},
                                   "export": {"keeper", "recipient"}}[action]:
                raise UsageError(f"{grantee} ({target.role}) cannot be granted {action}")
        scope = self._scope(requester.agency, case_number, segments)
        now = ev.utc_text(self.archive.now())
        with self.archive.engine.begin() as conn:
            gid = conn.execute(lx.grants.insert().values(
                agency=requester.agency, requester=requester.username, grantee=grantee,
                actions=json.dumps(actions), case_number=case_number, segments=json.dumps(scope), reason=reason,
                hours=hours, requested_utc=now, status="requested")).inserted_primary_key[0]
        audit_of(self.archive).record(requester.agency, "request", actor=requester.actor, case=case_number,
                                      segments=scope, detail={"grant": gid, "grantee": grantee, "actions": actions,
                                                              "reason": reason, "hours": hours})
        return self.get(gid)

    def get(self, grant_id: int) -> Grant:
        with self.archive.engine.connect() as conn:
            row = conn.execute(select(lx.grants).where(lx.grants.c.id == grant_id)).first()
        if row is None:
            raise UsageError(f"no grant {grant_id}")
        return _grant(row)

    def list(self, account: Account) -> list[Grant]:
        g = lx.grants
        q = select(g).where(g.c.agency == account.agency)
        if account.role not in ("approver", "auditor", "keeper"):
            q = q.where((g.c.grantee == account.username) | (g.c.requester == account.username))
        with self.archive.engine.connect() as conn:
            return [_grant(r) for r in conn.execute(q.order_by(g.c.id))]

    def decide(self, approver: Account, grant_id: int, *, approve: bool, totp: str | None,
               note: str = "") -> Grant:
        """Approve or refuse; the archive signs the decision naming the approver."""
        grant = self.get(grant_id)
        require_role(self.archive, approver, "decide", case=grant.case_number, segments=list(grant.segments))
        if grant.agency != approver.agency:
            raise AccessDenied(f"grant {grant_id} belongs to another agency")
        if grant.requester == approver.username:
            audit_of(self.archive).record(approver.agency, "denied", outcome="denied", actor=approver.actor,
                                          case=grant.case_number, detail={"grant": grant_id,
                                                                          "why": "approving own request"})
            raise AccessDenied("an approver may not decide their own request")
        if grant.status != "requested":
            raise UsageError(f"grant {grant_id} is {grant.status}, not awaiting a decision")
        if self.archive.config.lawful_use.approver_totp:
            self.accounts.check_totp(approver, totp, action="approve" if approve else "refuse",
                                     case=grant.case_number, detail={"grant": grant.id})
        now = self.archive.now()
        until = now + dt.timedelta(hours=grant.hours)
        agency = self.archive.agency(grant.agency)
        status = "approved" if approve else "refused"
        decision = ev.sign_record(agency.receipt_key, agency.receipt_cert, {
            "ctx": CTX_GRANT_DECISION, "device": "", "archive": agency.archive_id, "agency": agency.id,
            "grant": grant.id, "decision": status, "approver": approver.username, "approver_name": approver.name,
            "requester": grant.requester, "grantee": grant.grantee, "actions": list(grant.actions),
            "case": grant.case_number, "segments": list(grant.segments), "reason": grant.reason, "note": note,
            "decided_utc": ev.utc_text(now), "valid_until": ev.utc_text(until) if approve else None})
        with self.archive.engine.begin() as conn:
            n = conn.execute(update(lx.grants).where(lx.grants.c.id == grant.id, lx.grants.c.status == "requested")
                             .values(status=status, decided_by=approver.username, decided_utc=ev.utc_text(now),
                                     decision_note=note, valid_from_utc=ev.utc_text(now) if approve else None,
                                     valid_until_utc=ev.utc_text(until) if approve else None,
                                     decision=json.dumps(decision))).rowcount
        if n != 1:
            raise UsageError(f"grant {grant_id} was decided meanwhile")
        audit_of(self.archive).record(grant.agency, "approve" if approve else "refuse", actor=approver.actor,
                                      case=grant.case_number, segments=list(grant.segments),
                                      detail={"grant": grant.id, "grantee": grant.grantee, "note": note,
                                              "valid_until": ev.utc_text(until) if approve else None})
        return self.get(grant.id)

    def revoke(self, account: Account, grant_id: int, *, reason: str) -> Grant:
        grant = self.get(grant_id)
        require_role(self.archive, account, "decide", case=grant.case_number)
        if grant.agency != account.agency or grant.status != "approved":
            raise UsageError(f"grant {grant_id} is {grant.status}; only an approved grant of your agency is revoked")
        now = ev.utc_text(self.archive.now())
        with self.archive.engine.begin() as conn:
            conn.execute(update(lx.grants).where(lx.grants.c.id == grant.id)
                         .values(status="revoked", revoked_by=account.username, revoked_utc=now))
        audit_of(self.archive).record(grant.agency, "revoke", actor=account.actor, case=grant.case_number,
                                      detail={"grant": grant.id, "reason": reason})
        return self.get(grant.id)

    def require(self, account: Account, action: str, segments: list[str], grant_id: int | None = None) -> Grant:
        """The live grant letting ``account`` do ``action`` on every one of
        ``segments`` (digests); else AccessDenied, audited with the reason."""
        require_role(self.archive, account, action, segments=segments)
        now = ev.utc_text(self.archive.now())
        candidates = [g for g in self.list(account) if g.grantee == account.username
                      and (grant_id is None or g.id == grant_id)]
        why = "no grant"
        for g in candidates:
            if action not in g.actions or not set(segments) <= set(g.segments):
                why = f"grant {g.id} does not cover this"
                continue
            if g.status != "approved":
                why = f"grant {g.id} is {g.status}"
                continue
            if not (g.valid_from_utc <= now < g.valid_until_utc):
                why = f"grant {g.id} expired at {g.valid_until_utc}"
                audit_of(self.archive).record(account.agency, "grant-expired", outcome="denied", actor=account.actor,
                                              case=g.case_number, detail={"grant": g.id})
                continue
            return g
        audit_of(self.archive).record(account.agency, "denied", outcome="denied", actor=account.actor,
                                      segments=segments, detail={"wanted": action, "why": why, "grant": grant_id})
        raise AccessDenied(f"{account.username} may not {action} this: {why} (Art. 19: ask the agency head)")
