"""The audit trail (Art. 19, 25): every search, view, export, label, retention
change, hold, expiry, grant and refusal, appended to a hash-chained log that
the archive signs with the agency's receipt key, its head time-stamped by an
RFC 3161 authority on a schedule.

Entry (one per agency and ``seq``; the exact bytes are in the report and
format.md "Audit log")::

    payload   = canonical JSON (format §2.1) of
                {"ctx": "bodycam/v2/audit", "v": 2, "archive", "agency", "seq",
                 "prev", "utc", "actor", "role", "action", "outcome",
                 "case", "segments", "detail"}
    digest    = SHA256(payload)                          hex; the TSA stamps this hash
    signature = Ed25519(receipt key, ctx || 0x00 || payload)
    prev      = digest of entry seq-1; for seq 0
                SHA256("bodycam/v2/audit-anchor" || 0x00 || agency)

Methods of :class:`~archive.service.Archive` that read or change footage carry
``@audited(action)``; the person is taken from :data:`current_actor` (set by
the access layer for an authenticated account), else the ``who`` argument,
else ``host:<login name>`` for commands run on the archive host.
"""

from __future__ import annotations

import base64
import contextvars
import csv
import datetime as dt
import functools
import getpass
import hashlib
import io
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bodycam.errors import BodycamError, UsageError

from . import evidence as ev
from . import lawful_index as lx

AUDIT_CTX = ev.CTX_AUDIT
AUDIT_HEAD_CTX = ev.CTX_AUDIT_HEAD

log = logging.getLogger(__name__)

ACTIONS = ("search", "view", "export", "label", "unlabel", "classify", "review", "retention", "hold", "release",
           "expire", "attach", "request", "approve", "refuse", "revoke", "grant-expired", "denied", "login",
           "account", "audit-export", "disc", "sample", "finding", "checkout")
OUTCOMES = ("ok", "refused", "denied", "error")
MAX_SEGMENTS_LISTED = 200  # a search that returns more lists the first 200 and the count


@dataclass(frozen=True)
class Actor:
    """Who acts: an account (username, role) or the archive host."""

    name: str
    role: str = "host"


current_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("current_actor", default=None)


def in_thread_as(actor: Actor, fn, *args, **kw):
    """``asyncio.to_thread(fn, *args, **kw)`` with ``actor`` as the audited actor
    (the people's API and the console call the archive this way)."""
    import asyncio

    def call():
        token = current_actor.set(actor)
        try:
            return fn(*args, **kw)
        finally:
            current_actor.reset(token)
    return asyncio.to_thread(call)


def host_actor() -> Actor:
    try:
        return Actor(f"host:{getpass.getuser()}", "host")
    except (KeyError, OSError):
        return Actor("host:unknown", "host")


class AuditLog:
    """The audit log of every agency of one archive (thread-safe)."""

    def __init__(self, archive) -> None:
        self.archive = archive
        self._lock = threading.Lock()

    # -- writing -----------------------------------------------------------------------------

    def record(self, agency_id: str | None, action: str, *, outcome: str = "ok", actor: Actor | None = None,
               case: str | None = None, segments: Iterable[str] = (), detail: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        """Append one signed entry; returns ``{seq, digest, payload}``.

        Raises UsageError for an unknown action/outcome.  Retries when another
        process appended the same ``seq`` first (the primary key refuses).
        """
        if action not in ACTIONS:
            raise UsageError(f"audit action {action!r}: one of {', '.join(ACTIONS)}")
        if outcome not in OUTCOMES:
            raise UsageError(f"audit outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
        agency = self.archive.agency(agency_id)
        actor = actor or current_actor.get() or host_actor()
        segs = list(segments)
        listed = segs[:MAX_SEGMENTS_LISTED]
        detail = dict(detail or {})
        if len(segs) > len(listed):
            detail["segments_total"] = len(segs)
        a = lx.audit_log
        for _attempt in range(20):
            with self._lock, self.archive.engine.begin() as conn:
                last = conn.execute(select(a.c.seq, a.c.digest).where(a.c.agency == agency.id)
                                    .order_by(a.c.seq.desc()).limit(1)).first()
                seq = 0 if last is None else last.seq + 1
                prev = audit_anchor(agency.id) if last is None else last.digest
                now = ev.utc_text(self.archive.now())
                payload = ev.canonical_json({
                    "ctx": AUDIT_CTX, "v": ev.FORMAT_VERSION, "archive": agency.archive_id, "agency": agency.id, "seq": seq,
                    "prev": prev, "utc": now, "actor": actor.name, "role": actor.role, "action": action,
                    "outcome": outcome, "case": case, "segments": listed, "detail": _jsonable(detail)})
                digest = hashlib.sha256(payload).hexdigest()
                signature = agency.receipt_key.sign(AUDIT_CTX.encode() + b"\x00" + payload)
                try:
                    conn.execute(a.insert().values(
                        agency=agency.id, seq=seq, at_utc=now, actor=actor.name, action=action, outcome=outcome,
                        case_number=case, segments=json.dumps(listed), payload=payload.decode(),
                        digest=digest, signature=base64.b64encode(signature).decode()))
                except IntegrityError:
                    continue  # another process took this seq: read the new head and try again
            log.debug("audit %s #%d %s %s by %s", agency.id, seq, action, outcome, actor.name)
            return {"seq": seq, "digest": digest, "payload": payload}
        raise BodycamError(f"audit log of {agency.id}: could not append after 20 attempts")

    # -- reading -----------------------------------------------------------------------------

    def entries(self, agency_id: str | None, *, case: str | None = None, actor: str | None = None,
                since_seq: int = 0) -> list[dict[str, Any]]:
        """Entries (oldest first) as stored: ``{seq, payload (str), digest, signature}``;
        ``case``/``actor`` select an extract (a case's entries, or a person's)."""
        agency = self.archive.agency(agency_id)
        a = lx.audit_log
        q = select(a).where(a.c.agency == agency.id, a.c.seq >= since_seq)
        if case is not None:
            q = q.where(a.c.case_number == case)
        if actor is not None:
            q = q.where(a.c.actor == actor)
        with self.archive.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(a.c.seq))]

    def head(self, agency_id: str | None) -> tuple[int, str] | None:
        agency = self.archive.agency(agency_id)
        a = lx.audit_log
        with self.archive.engine.connect() as conn:
            row = conn.execute(select(a.c.seq, a.c.digest).where(a.c.agency == agency.id)
                               .order_by(a.c.seq.desc()).limit(1)).first()
        return None if row is None else (row.seq, row.digest)

    def attest_head(self, agency_id: str | None) -> dict[str, str]:
        """The archive's signed statement of the log head now (format §12 envelope,
        ctx ``bodycam/v2/audit-head``: ``archive, agency, seq, digest, utc``)."""
        agency = self.archive.agency(agency_id)
        head = self.head(agency.id)
        return ev.sign_record(agency.receipt_key, agency.receipt_cert, {
            "ctx": AUDIT_HEAD_CTX, "device": "", "archive": agency.archive_id, "agency": agency.id,
            "seq": -1 if head is None else head[0], "digest": "" if head is None else head[1],
            "utc": ev.utc_text(self.archive.now())})

    # -- time-stamps -------------------------------------------------------------------------

    def stamps(self, agency_id: str | None) -> list[dict[str, Any]]:
        agency = self.archive.agency(agency_id)
        s = lx.audit_stamps
        with self.archive.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(s).where(s.c.agency == agency.id)
                                                           .order_by(s.c.id))]

    def stamp(self, agency_id: str | None, *, force: bool = False) -> dict[str, Any] | None:
        """Time-stamp the head at the configured TSA if it moved since the last
        stamp and ``every_minutes`` passed (or ``force``).  Returns the stamp
        row, or None when nothing was due.  Raises UsageError without a TSA,
        TimeStampError when the TSA fails (the next run tries again)."""
        from .tsa import request_stamp

        tsa = self.archive.config.lawful_use.tsa
        if tsa is None:
            raise UsageError("no time-stamp authority: set [lawful_use.tsa] url in the archive config")
        agency = self.archive.agency(agency_id)
        head = self.head(agency.id)
        if head is None:
            return None
        done = self.stamps(agency.id)
        now = self.archive.now()
        if done and not force:
            last = done[-1]
            age = now - dt.datetime.fromisoformat(last["stamped_utc"].replace("Z", "+00:00"))
            if last["seq"] == head[0] or age < dt.timedelta(minutes=tsa.every_minutes):
                return None
        a = lx.audit_log
        with self.archive.engine.connect() as conn:
            payload = conn.execute(select(a.c.payload).where(a.c.agency == agency.id, a.c.seq == head[0])).scalar()
        stamp = request_stamp(tsa.url, payload.encode(), timeout=tsa.timeout_seconds)
        row = {"agency": agency.id, "seq": head[0], "digest": head[1], "tsa": tsa.url,
               "stamped_utc": stamp.gen_time_utc, "token": base64.b64encode(stamp.response).decode()}
        with self.archive.engine.begin() as conn:
            conn.execute(lx.audit_stamps.insert().values(**row))
        log.info("audit log of %s: head #%d time-stamped by %s at %s", agency.id, head[0], tsa.url,
                 stamp.gen_time_utc)
        return row

    # -- export ------------------------------------------------------------------------------

    def export_jsonl(self, agency_id: str | None, *, case: str | None = None, actor: str | None = None) -> bytes:
        """The log (or a case's / a person's extract) as ``bodycam-audit/1`` JSON lines:
        a header line, one line per entry, one per time-stamp, and the signed head."""
        agency = self.archive.agency(agency_id)
        rows = self.entries(agency.id, case=case, actor=actor)
        head = {"format": "bodycam-audit/1", "agency": agency.id, "archive": agency.archive_id,
                "extract": None if case is None and actor is None else {"case": case, "actor": actor},
                "certificate": agency.receipt_cert.public_bytes(serialization.Encoding.PEM).decode()}
        out = [json.dumps(head, ensure_ascii=False)]
        for r in rows:
            out.append(json.dumps({"entry": r["payload"], "signature": r["signature"]}, ensure_ascii=False))
        seqs = {r["seq"] for r in rows}
        for s in self.stamps(agency.id):
            if case is None and actor is None or s["seq"] in seqs:
                out.append(json.dumps({"stamp": {k: s[k] for k in ("seq", "digest", "tsa", "stamped_utc", "token")}}))
        out.append(json.dumps({"head": self.attest_head(agency.id)}))
        return ("\n".join(out) + "\n").encode()

    def export_csv(self, agency_id: str | None, *, case: str | None = None, actor: str | None = None) -> bytes:
        """UTF-8 CSV (with BOM, for spreadsheet programs) of the entries, one row each."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["seq", "utc", "actor", "role", "action", "outcome", "case", "segments", "detail", "digest"])
        for r in self.entries(agency_id, case=case, actor=actor):
            p = json.loads(r["payload"])
            w.writerow([p["seq"], p["utc"], p["actor"], p["role"], p["action"], p["outcome"], p["case"] or "",
                        " ".join(p["segments"]), json.dumps(p["detail"], ensure_ascii=False), r["digest"]])
        return ("\ufeff" + buf.getvalue()).encode()

    def export_pdf(self, agency_id: str | None, *, case: str | None = None, actor: str | None = None) -> bytes:
        """A readable Simplified Chinese PDF of the entries (WeasyPrint)."""
        from .report import render_audit_pdf

        agency = self.archive.agency(agency_id)
        rows = [json.loads(r["payload"]) | {"digest": r["digest"]}
                for r in self.entries(agency.id, case=case, actor=actor)]
        return render_audit_pdf(agency=agency, entries=rows, case=case, actor=actor,
                                head=self.head(agency.id), stamps=self.stamps(agency.id),
                                now=ev.utc_text(self.archive.now()))


def audit_anchor(agency: str) -> str:
    """``prev`` of an agency's first audit entry: SHA256("bodycam/v2/audit-anchor" || 0x00 || agency), hex."""
    return hashlib.sha256(ev.AUDIT_ANCHOR_PREFIX + agency.encode()).hexdigest()


def audit_of(archive) -> AuditLog:
    """The archive's audit log (made on first use)."""
    log_ = getattr(archive, "_audit_log", None)
    if log_ is None:
        log_ = AuditLog(archive)
        archive._audit_log = log_
    return log_


def _jsonable(value: Any) -> Any:
    """Canonical JSON has no floats: they become text."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


# -- the decorator on Archive methods ----------------------------------------------------------

_SUMMARY_KEYS = ("case_number", "party", "cause", "act_type", "sub_unit", "retain_years", "situation", "reason",
                 "device", "officer", "mark", "event", "retention_class", "media", "since", "until", "kind",
                 "hold_id", "dry_run", "remove")


def device_agency(archive, params: dict[str, Any]) -> str | None:
    """The agency of the ``device`` argument (for calls that name a device, not an agency)."""
    if params.get("agency"):
        return params["agency"]
    from . import index as ix

    with archive.engine.connect() as conn:
        return conn.execute(select(ix.devices.c.agency).where(ix.devices.c.device == params.get("device"))).scalar()


def audited(action: str, *, segments_from: Callable[[Any], list[str]] | None = None,
            agency_from: Callable[[Any, dict[str, Any]], str | None] | None = None) -> Callable:
    """Decorate an Archive method so that each call (and each refusal) is audited.

    The agency is the method's ``agency`` argument (or the first positional
    one); segments named in ``segments`` are listed; other keyword arguments
    of :data:`_SUMMARY_KEYS` go into ``detail``; ``segments_from(result)``
    lists the segments a call returned (search).  A call that raises is
    recorded with outcome ``refused`` (bad request) or ``error`` and the
    message, then the exception propagates.
    """
    def wrap(method: Callable) -> Callable:
        import inspect

        sig = inspect.signature(method)

        @functools.wraps(method)
        def call(self, *args, **kwargs):
            bound = sig.bind(self, *args, **kwargs)
            params = dict(bound.arguments)
            agency = agency_from(self, params) if agency_from else params.get("agency")
            named = [str(s) for s in params.get("segments") or ()]
            detail = {k: params[k] for k in _SUMMARY_KEYS if params.get(k) is not None}
            if params.get("who"):
                detail["who"] = params["who"]
            if params.get("item") is not None:  # expiry of one item
                item = params["item"]
                agency, named = item.agency, [item.digest]
                detail.update(name=item.name, reason=item.reason)
            case = params.get("case_number")
            try:
                result = method(self, *args, **kwargs)
            except BodycamError as exc:
                _safe_record(self, agency, action, "refused" if isinstance(exc, ValueError) else "error",
                             case, named, {**detail, "error": str(exc)})
                raise
            found = segments_from(result) if segments_from else []
            if found:
                detail["results"] = len(found)
            elif segments_from is not None:
                detail["results"] = 0
            _safe_record(self, agency, action, "ok", case, named + found, detail)
            return result
        return call
    return wrap


def _safe_record(archive, agency, action, outcome, case, segments, detail) -> None:
    # On the archive host a command names its person with --by (not authenticated: role "host").
    actor = current_actor.get() or (Actor(str(detail["who"]), "host") if detail.get("who") else None)
    try:
        audit_of(archive).record(agency, action, outcome=outcome, actor=actor, case=case, segments=segments,
                                 detail=detail)
    except UsageError:
        # an unknown agency was already refused by the method itself; nothing to attach the entry to
        if outcome == "ok":
            raise


def iter_lines(data: bytes) -> Iterator[str]:
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            yield line
