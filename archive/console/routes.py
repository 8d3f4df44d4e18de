"""The console's pages (see app.py for who may open which)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import aiohttp_session
from aiohttp import web
from aiohttp_sse import sse_response

from bodycam.errors import UsageError

from ..accounts import AccessDenied
from ..audit import audit_of
from ..people_api import SEARCH_FIELDS
from . import i18n, labels, oversight, queries
from .app import ACCOUNT, BOARD_POLL_SECONDS, HOME, PAGES, Console, page, public, thumbnail_jpeg
from .forms import (ID_MAX, AuditFilterForm, CheckoutForm, ConsoleForm, DecideForm, FindingForm, HoldForm, LabelForm,
                    LoginForm, MisuseForm, ReleaseForm, RequestForm, ReviewForm, RevokeForm, SearchForm, bind, problems)
from .i18n import _

log = logging.getLogger(__name__)
SEGMENT_SPLIT = re.compile(r"[\s,;]+")
SEARCH_LIMIT = 100
# WeasyPrint lays out about 50-70 audit entries a second here (420 in 6-8 s with the fixed table
# layout, 13-16 s before): a PDF beyond this many is refused with a hint to filter or take CSV
AUDIT_PDF_LIMIT = 1000


def case_url(number: str) -> str:
    """The case page's address: the number is one path segment ("/" and "?" quoted)."""
    return f"/case/{quote(number, safe='')}"


def add_routes(app: web.Application, console: Console) -> None:
    c = console

    async def posted(request: web.Request, form_class: type) -> Any:
        """``form_class`` bound to this POST, its CSRF token tied to the session (forms.bind)."""
        session = await aiohttp_session.get_session(request)
        return bind(form_class, await request.post(), secret=c.csrf_secret, session=session)
    env = aiohttp_jinja2.get_env(app)
    env.globals.update(labels.TEMPLATE_GLOBALS)
    env.globals["problems"] = problems
    env.filters["bjt"] = queries.beijing_text  # every time on a page is Beijing time (Asia/Shanghai)
    env.filters["readable"] = lambda detail: json.dumps(detail, ensure_ascii=False) if detail else ""

    # -- sign-in, language -------------------------------------------------------------------

    @public
    async def login_get(request: web.Request):
        session = await aiohttp_session.get_session(request)
        form = bind(LoginForm, None, secret=c.csrf_secret, session=session)
        return aiohttp_jinja2.render_template("login.html", request, {"form": form, "failure": None,
                                                                      "next": _next(request)})

    @public
    async def login_post(request: web.Request):
        form = await posted(request, LoginForm)
        failure = None
        status = 200
        if form.validate():
            address = request.remote or "?"
            if not c.login_allowed(address, form.username.data):
                failure, status = _("Too many sign-in attempts: wait a minute and try again."), 429
                await asyncio.to_thread(c.accounts.refused_login, form.username.data, "rate limit")
            else:
                try:
                    account, token = await asyncio.to_thread(c.accounts.login, form.username.data,
                                                             form.password.data, form.totp.data or None)
                except LoginFailed_:
                    # one answer for an unknown user, a wrong password or a wrong code (the trail says which)
                    c.login_failed(address, form.username.data)
                    failure, status = _("Wrong user name, password or authenticator code."), 401
                else:
                    await c.start_session(request, account, token)
                    target = _next(request) or HOME.get(account.role, "/search")
                    raise web.HTTPSeeOther(target)
        else:
            status = 400
        return aiohttp_jinja2.render_template("login.html", request, {"form": form, "failure": failure,
                                                                      "next": _next(request)}, status=status)

    async def logout(request: web.Request):
        session = await aiohttp_session.get_session(request)
        form = bind(ConsoleForm, await request.post(), secret=c.csrf_secret, session=session)
        if not form.validate():
            raise UsageError(_("The form has expired; reload the page."))
        await c.end_session(session)
        raise web.HTTPSeeOther("/login")

    @public
    async def language(request: web.Request):
        locale = request.match_info["locale"]
        if locale not in i18n.LOCALES:
            raise web.HTTPNotFound()
        session = await aiohttp_session.get_session(request)
        session["locale"] = locale
        back = request.query.get("next", "/")
        raise web.HTTPSeeOther(back if back.startswith("/") and not back.startswith("//") else "/")

    async def home(request: web.Request):
        raise web.HTTPSeeOther(HOME.get(request[ACCOUNT].role, "/search"))

    # -- docks -------------------------------------------------------------------------------

    def dock_view(account) -> dict:
        bays, problems = queries.read_boards(c.dock_status)
        known = queries.devices_of(c.archive, account.agency, sorted({b.device for b in bays if b.device}))
        shown = []
        inboxes = {i: queries.checkouts(p) for i, p in enumerate(c.dock_status)}
        for b in bays:
            info = known.get(b.device or "")
            if info is not None and info["agency"] != account.agency:
                continue  # another agency's recorder in a shared dock
            if b.officer is None:
                b.officer = info["officer"] if info else None
            pending, results = inboxes.get(b.dock_index, ({}, {}))
            b.checkout_pending, b.checkout_result = pending.get(b.bay), results.get(b.bay)
            shown.append(b)
        alerts = [a for a in c.archive.alerts() if a.get("kind") == "not-docked" and a.get("agency") == account.agency]
        return {"bays": shown, "problems": problems, "alerts": alerts,
                "hours": c.archive.watch.dock_within_hours, "may_checkout": account.role == "keeper"}

    @page("docks")
    async def docks(request: web.Request):
        view = await asyncio.to_thread(dock_view, request[ACCOUNT])
        return aiohttp_jinja2.render_template("docks.html", request, view)

    @page("checkout")
    async def docks_checkout(request: web.Request):
        account = request[ACCOUNT]
        form = await posted(request, CheckoutForm)
        if not form.validate():
            raise UsageError("；".join(problems(form)))
        if not 0 <= form.dock.data < len(c.dock_status):
            raise UsageError(_("There is no such dock."))
        board = c.dock_status[form.dock.data]
        view = await asyncio.to_thread(dock_view, account)
        if not any(b.dock_index == form.dock.data and b.bay == str(form.bay.data) for b in view["bays"]):
            await asyncio.to_thread(audit_of(c.archive).record, account.agency, "denied", outcome="denied",
                                    actor=account.actor, detail={"wanted": "checkout", "bay": form.bay.data,
                                                                 "why": "bay not of this agency"})
            raise _Refused(_("Bay %(bay)s of that dock holds no recorder of your agency.", bay=form.bay.data))
        await asyncio.to_thread(queries.request_checkout, board, form.bay.data, form.officer.data,
                                account.username, account.agency, c.now_text())
        await asyncio.to_thread(audit_of(c.archive).record, account.agency, "checkout", actor=account.actor,
                                detail={"bay": form.bay.data, "officer": form.officer.data,
                                        "dock": str(queries.board_path(board))})
        raise web.HTTPSeeOther("/docks")

    @page("docks")
    async def docks_stream(request: web.Request):
        account = request[ACCOUNT]
        env = aiohttp_jinja2.get_env(request.app)
        token = c._csrf_token(await aiohttp_session.get_session(request))
        async with sse_response(request) as sse:
            last = None
            try:
                while sse.is_connected():
                    signature = await asyncio.to_thread(queries.boards_signature, c.dock_status)
                    if signature != last:
                        last = signature
                        view = await asyncio.to_thread(dock_view, account)
                        html = env.get_template("_bays.html").render(**view, csrf_token=token)
                        await sse.send(html, event="bays")
                    await asyncio.sleep(BOARD_POLL_SECONDS)
            except ConnectionResetError:  # the browser left the page: normal, the stream just ends
                log.debug("dock board stream of %s ended: the browser went away", account.username)
        return sse

    # -- search ------------------------------------------------------------------------------

    @page("search")
    async def search(request: web.Request):
        account = request[ACCOUNT]
        form = SearchForm(_Query(request.query))
        rows, error = [], None
        if not form.validate():
            error = "；".join(problems(form))
        else:
            filters = {k: getattr(form, k).data for k in SEARCH_FIELDS
                       if hasattr(form, k) and k not in ("since", "until") and getattr(form, k).data}
            since, until = queries.day_bounds(form.since.data, form.until.data)
            filters.update({k: value for k, value in (("since", since), ("until", until)) if value})
            try:
                rows = await c.as_account(account, c.archive.search, account.agency, limit=SEARCH_LIMIT, **filters)
            except UsageError:
                log.warning("console search refused: %s", filters, exc_info=True)
                error = _("The archive refused this search; check the fields.")
        grants = await asyncio.to_thread(queries.live_view_grants, c.archive, account)
        for r in rows:
            r["duration"] = queries.duration_seconds(r)
            r["grant"] = grants.get(r["segment_digest"])
        return aiohttp_jinja2.render_template("search.html", request, {
            "form": form, "rows": rows, "error": error, "limit": SEARCH_LIMIT})

    # -- case --------------------------------------------------------------------------------

    def case_view(account, number: str) -> dict:
        case, rows = queries.case_segments(c.archive, account.agency, number)
        if case is None:
            if account.role not in PAGES["case-edit"]:
                raise web.HTTPNotFound()
            # not yet a case: labelling the first segments into this number starts it
            return {"case": {"case_number": number, "id": None, "party": None, "cause": None, "act_type": None,
                             "retain_years": None}, "timeline": [], "holds": [], "new": True}
        digests = [r["segment_digest"] for r in rows]
        audit_of(c.archive).record(account.agency, "search", actor=account.actor, case=number, segments=digests,
                                   detail={"console": "case page"})
        documents = c.archive.documents(account.agency, number)
        timeline = [{"utc": r["opened_utc"], "kind": "segment", "row": r,
                     "duration": queries.duration_seconds(r)} for r in rows]
        timeline += [{"utc": d["sealed_utc"], "kind": "document", "row": d} for d in documents]
        timeline.sort(key=lambda t: t["utc"])
        holds = [h for h in c.archive.holds(account.agency)
                 if h["case_id"] == case["id"] or h["segment_digest"] in set(digests)]
        return {"case": case, "timeline": timeline, "holds": holds, "new": False}

    async def render_case(request, number, *, forms=None, status=200, done=None, failure=None):
        account = request[ACCOUNT]
        view = await c.as_account(account, case_view, account, number)
        if view["new"] and status == 200:
            status = 404  # no such case (yet): the page offers to start it
        session = await aiohttp_session.get_session(request)
        shown = {name: bind(cls, None, secret=c.csrf_secret, session=session)
                 for name, cls in (("label", LabelForm), ("hold", HoldForm))}
        shown.update(forms or {})
        done = done or await take_flash(request)
        return aiohttp_jinja2.render_template("case.html", request, {**view, "forms": shown, "done": done,
                                                                     "failure": failure}, status=status)

    @page("case")
    async def case_get(request: web.Request):
        number = request.match_info["number"]
        if number != number.strip():
            raise web.HTTPSeeOther(case_url(number.strip()))
        return await render_case(request, number)

    @page("case")
    async def case_open(request: web.Request):
        number = (request.query.get("number") or "").strip()
        if not number:
            raise web.HTTPSeeOther("/search")
        raise web.HTTPSeeOther(case_url(number))

    @page("case-edit")
    async def case_label(request: web.Request):
        account = request[ACCOUNT]
        number = request.match_info["number"].strip()
        form = await posted(request, LabelForm)
        if not form.validate():
            return await render_case(request, number, forms={"label": form}, status=400)
        segments = [s for s in SEGMENT_SPLIT.split(form.segments.data) if s]
        unknown = [s for s in segments if await asyncio.to_thread(queries.segment_row, c.archive, account.agency, s)
                   is None]
        if unknown:
            form.segments.errors.append(_("not in this archive: %(names)s", names="、".join(unknown)))
            return await render_case(request, number, forms={"label": form}, status=400)
        try:
            await c.as_account(account, c.archive.label, account.agency, segments, case_number=number,
                               who=account.username, party=form.party.data or None, cause=form.cause.data or None)
        except UsageError:
            log.info("console labelling refused", exc_info=True)
            return await render_case(request, number, forms={"label": form}, status=400,
                                     failure=_("The archive refused this labelling; check the segments and fields."))
        await flash(request, _("Labelled %(n)s segment(s).", n=len(segments)))
        raise web.HTTPSeeOther(case_url(number))

    @page("hold")
    async def case_hold(request: web.Request):
        account = request[ACCOUNT]
        number = request.match_info["number"].strip()
        form = await posted(request, HoldForm)
        if not form.validate():
            return await render_case(request, number, forms={"hold": form}, status=400)
        try:
            await c.as_account(account, c.archive.hold, account.agency, reason=form.reason.data,
                               who=account.username, case_number=number)
        except UsageError:
            log.info("console hold refused", exc_info=True)
            return await render_case(request, number, forms={"hold": form}, status=400,
                                     failure=_("The archive refused this legal hold."))
        await flash(request, _("Legal hold placed."))
        raise web.HTTPSeeOther(case_url(number))

    @page("hold")
    async def case_release(request: web.Request):
        account = request[ACCOUNT]
        number = request.match_info["number"].strip()
        form = await posted(request, ReleaseForm)
        if not form.validate():
            raise UsageError("；".join(problems(form)))
        await c.as_account(account, c.archive.release, account.agency, form.hold.data, who=account.username,
                           case_number=number)
        await flash(request, _("Legal hold released."))
        raise web.HTTPSeeOther(case_url(number))

    # -- requests and approvals --------------------------------------------------------------

    async def render_grants(request, *, request_form=None, status=200, done=None, failure=None):
        account = request[ACCOUNT]
        session = await aiohttp_session.get_session(request)
        grants = await asyncio.to_thread(c.grants.list, account)
        now = c.now_text()
        listed = sorted(({"g": g, "state": queries.grant_state(g, now)} for g in grants),
                        key=lambda x: -x["g"].id)
        # segments by name: what the approver decides on (pending requests) and what the viewer may play
        named = sorted({d for x in listed if x["state"] == "requested" or (
            x["state"] == "live" and x["g"].grantee == account.username) for d in x["g"].segments})
        segments = await asyncio.to_thread(queries.segments_by_digest, c.archive, account.agency, named)
        done = done or await take_flash(request)
        if request_form is None:
            request_form = bind(RequestForm, None, secret=c.csrf_secret, session=session)
            seg = request.query.get("segment")
            if seg:
                request_form.segments.data = seg
            if request.query.get("case"):
                request_form.case_number.data = request.query["case"]
        return aiohttp_jinja2.render_template("grants.html", request, {
            "grants": listed, "request_form": request_form, "done": done, "failure": failure, "segments": segments,
            "decide_form": bind(DecideForm, None, secret=c.csrf_secret, session=session),
            "revoke_form": bind(RevokeForm, None, secret=c.csrf_secret, session=session),
            "may_request": account.role in ("officer", "keeper", "reviewer"),
            "may_decide": account.role == "approver"}, status=status)

    @page("grants")
    async def grants_get(request: web.Request):
        return await render_grants(request)

    @page("grants")
    async def grants_request(request: web.Request):
        account = request[ACCOUNT]
        form = await posted(request, RequestForm)
        if form.validate():
            await asyncio.to_thread(_check_request_scope, c, account, form)
        if any(f.errors for f in form):
            return await render_grants(request, request_form=form, status=400)
        try:
            g = await c.as_account(account, c.grants.request, account, grantee=form.grantee.data or account.username,
                                   actions=form.actions.data, reason=form.reason.data, hours=form.hours.data,
                                   case_number=form.case_number.data or None,
                                   segments=[s for s in SEGMENT_SPLIT.split(form.segments.data or "") if s])
        except (UsageError, AccessDenied):
            log.info("console request refused", exc_info=True)
            return await render_grants(request, request_form=form, status=400,
                                       failure=_("The request was refused: check who it is for and what it covers."))
        await flash(request, _("Request %(id)s filed; the agency head decides.", id=g.id))
        raise web.HTTPSeeOther("/grants")

    @page("grants")
    async def grants_decide(request: web.Request):
        account = request[ACCOUNT]
        form = await posted(request, DecideForm)
        if not form.validate():
            return await render_grants(request, status=400, failure="；".join(problems(form)))
        grant_id = _grant_id(request)  # a malformed id is its own message
        try:
            g = await c.as_account(account, c.grants.decide, account, grant_id,
                                   approve=form.decision.data == "approve", totp=form.totp.data or None,
                                   note=form.note.data or "")
        except LoginFailed_:  # audited by Accounts.check_totp
            return await render_grants(request, status=401, failure=_("Wrong code from the authenticator app."))
        except AccessDenied:
            log.info("console decision refused", exc_info=True)
            if account.role != "approver":
                return await render_grants(request, status=403, failure=_("Your role may not decide requests."))
            return await render_grants(request, status=403, failure=_(
                "This request cannot be decided now: it is already decided, or it is your own."))
        except UsageError:
            log.info("console decision refused", exc_info=True)
            return await render_grants(request, status=400, failure=_(
                "This request cannot be decided now: it is already decided, or it is your own."))
        await flash(request, _("Request %(id)s approved.", id=g.id) if g.status == "approved"
                    else _("Request %(id)s refused.", id=g.id))
        raise web.HTTPSeeOther("/grants")

    @page("grants")
    async def grants_revoke(request: web.Request):
        account = request[ACCOUNT]
        form = await posted(request, RevokeForm)
        if not form.validate():
            return await render_grants(request, status=400, failure="；".join(problems(form)))
        g = await c.as_account(account, c.grants.revoke, account, _grant_id(request), reason=form.reason.data)
        await flash(request, _("Grant %(id)s revoked.", id=g.id))
        raise web.HTTPSeeOther("/grants")

    # -- playback ----------------------------------------------------------------------------

    async def live_grant(request):
        """(segment row, grant) for this viewer, or AccessDenied (audited by Grants.require)."""
        account = request[ACCOUNT]
        row = await asyncio.to_thread(queries.segment_row, c.archive, account.agency, request.match_info["segment"])
        if row is None:
            raise web.HTTPNotFound()
        grant_id = _int_or_none(request.query.get("grant"))
        try:
            grant = await c.as_account(account, c.grants.require, account, "view", [row["segment_digest"]], grant_id)
        except AccessDenied:
            why = await asyncio.to_thread(_why_no_view, c, account, grant_id, row["segment_digest"])
            raise _Refused(why) from None
        return row, grant

    @page("play")
    async def play(request: web.Request):
        account = request[ACCOUNT]
        row, grant = await live_grant(request)
        await asyncio.to_thread(audit_of(c.archive).record, account.agency, "view", actor=account.actor,
                                case=grant.case_number, segments=[row["segment_digest"]],
                                detail={"grant": grant.id, "console": "playback page"})
        facts = await asyncio.to_thread(queries.manifest_facts, c.archive, row, c.scratch)
        duration = queries.duration_seconds(row)
        timeline = queries.event_offsets(row["events"], media_start_us=facts.get("media_start_us"),
                                         opened_utc=row["opened_utc"], duration=duration)
        return aiohttp_jinja2.render_template("play.html", request, {
            "row": row, "grant": grant, "timeline": timeline, "duration": duration,
            "now": c.now_text(), "facts": facts})

    @page("play")
    async def media(request: web.Request):
        account = request[ACCOUNT]
        row, grant = await live_grant(request)
        data, media_type = await asyncio.to_thread(c.viewing_copy, account, row["segment_digest"], grant.id)
        headers = {"Accept-Ranges": "bytes", "Content-Disposition": "inline", "Cache-Control": "no-store"}
        try:
            wanted = request.http_range
        except ValueError:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        start, stop, _step = wanted.indices(len(data))
        if wanted.start is None and wanted.stop is None:
            return web.Response(body=data, content_type=media_type, headers=headers)
        if start >= len(data) or start >= stop:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
        return web.Response(status=206, body=data[start:stop], content_type=media_type, headers=headers)

    @page("play")
    async def thumb(request: web.Request):
        account = request[ACCOUNT]
        row, grant = await live_grant(request)
        data, media_type = await asyncio.to_thread(c.viewing_copy, account, row["segment_digest"], grant.id)
        jpeg = await asyncio.to_thread(thumbnail_jpeg, data, media_type)
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # -- misuse timeline (Art. 22, 25) -------------------------------------------------------

    @page("misuse")
    async def misuse(request: web.Request):
        account = request[ACCOUNT]
        form = MisuseForm(_Query(request.query) if request.query else None)
        shift = None
        if request.query and form.validate():
            shift = await asyncio.to_thread(
                oversight.misuse_timeline, c.archive, account.agency, form.officer.data, form.day.data,
                form.start.data or dt.time(8, 30), form.end.data or dt.time(17, 30),
                late_minutes=form.late_minutes.data if form.late_minutes.data is not None else 30,
                gap_minutes=form.gap_minutes.data or 20)
            await asyncio.to_thread(audit_of(c.archive).record, account.agency, "search", actor=account.actor,
                                    segments=[r["segment_digest"] for r in shift.segments],
                                    detail={"console": "misuse timeline", "officer": form.officer.data,
                                            "day": form.day.data.isoformat()})
        recent = [] if shift else await asyncio.to_thread(oversight.recent_custody_findings, c.archive,
                                                          account.agency)
        return aiohttp_jinja2.render_template("misuse.html", request, {"form": form, "shift": shift,
                                                                       "recent": recent})

    # -- review (Art. 24): archive/review.py samples, files the request, keeps findings ------

    def review_view(account) -> dict:
        from .. import review as rv

        now = c.now_text()
        samples = []
        if account.role == "reviewer":
            mine = {}
            for f in rv.findings(c.archive, account.agency):
                if f["reviewer"] == account.username:
                    mine[f["segment_digest"]] = f
            for g in sorted(c.grants.list(account), key=lambda g: -g.id):
                if g.grantee != account.username or g.requester != account.username or "view" not in g.actions:
                    continue
                rows = [queries.segment_row(c.archive, account.agency, d) for d in g.segments]
                samples.append({"g": g, "state": queries.grant_state(g, now),
                                "rows": [r for r in rows if r is not None], "mine": mine})
        return {"samples": samples, "stats": oversight.review_statistics(c.archive, account.agency)}

    async def render_review(request, *, form=None, done=None, failure=None, status=200):
        account = request[ACCOUNT]
        session = await aiohttp_session.get_session(request)
        view = await asyncio.to_thread(review_view, account)
        if form is None:
            form = bind(ReviewForm, None, secret=c.csrf_secret, session=session)
        done = done or await take_flash(request)
        return aiohttp_jinja2.render_template("review.html", request, {
            **view, "form": form, "done": done, "failure": failure}, status=status)

    @page("review")
    async def review(request: web.Request):
        return await render_review(request)

    @page("review-work")
    async def review_sample(request: web.Request):
        from .. import review as rv

        account = request[ACCOUNT]
        form = await posted(request, ReviewForm)
        if not form.validate():
            return await render_review(request, form=form, status=400)
        since, until = queries.day_bounds(form.since.data, form.until.data)  # Beijing days, both included
        criteria = {"since": since, "until": until}
        criteria.update({k: getattr(form, k).data for k in ("officer", "sub_unit", "mark") if getattr(form, k).data})
        try:
            g = await c.as_account(account, rv.sample, c.archive, account, form.size.data, **criteria)
        except UsageError:  # the form has checked the size: what is left is an empty population
            log.info("review sample refused", exc_info=True)
            return await render_review(request, form=form, status=400,
                                       failure=_("No recordings match these criteria."))
        await flash(request, _("Sample of %(n)s drawn; request %(id)s goes to the agency head.",
                               n=len(g.segments), id=g.id))
        raise web.HTTPSeeOther("/review")

    @page("review-work")
    async def review_finding(request: web.Request):
        from .. import review as rv

        account = request[ACCOUNT]
        form = await posted(request, FindingForm)
        if not form.validate():
            return await render_review(request, status=400, failure="；".join(problems(form)))
        try:
            await c.as_account(account, rv.record_finding, c.archive, account, form.segment.data, form.result.data,
                               form.note.data, sample_grant=form.grant.data)
        except AccessDenied:
            why = await asyncio.to_thread(_why_no_view, c, account, form.grant.data, form.segment.data)
            return await render_review(request, status=403, failure=why)
        await flash(request, _("Finding recorded."))
        raise web.HTTPSeeOther("/review")

    # -- audit -------------------------------------------------------------------------------

    def audit_filters(request) -> tuple[AuditFilterForm, dict, list[str]]:
        """The audit page's filter form, the archive query it makes, and its problems
        (in the page's language; an invalid filter shows no entries rather than all)."""
        form = AuditFilterForm(_Query(request.query))
        if not form.validate():
            return form, {}, problems(form)
        since, until = queries.day_bounds(form.since.data, form.until.data)
        return form, {"actor": form.actor.data, "case": form.case.data, "segment": form.segment.data,
                      "since": since, "until": until}, []

    @page("audit")
    async def audit(request: web.Request):
        account = request[ACCOUNT]
        form, filters, errors = audit_filters(request)
        entries = [] if errors else await asyncio.to_thread(
            queries.audit_entries, c.archive, account.agency, before=form.before.data, **filters)
        older = None
        if len(entries) == queries.AUDIT_PAGE_LIMIT:
            older = {k: v for k, v in request.query.items() if k != "before"} | {"before": entries[-1]["seq"]}
        export = {k: v for k, v in request.query.items() if k != "before"}
        return aiohttp_jinja2.render_template("audit.html", request, {
            "form": form, "entries": entries, "limit": queries.AUDIT_PAGE_LIMIT, "errors": errors,
            "older": urlencode(older) if older else None, "query": urlencode(export)})

    @page("audit")
    async def audit_export(request: web.Request):
        account = request[ACCOUNT]
        form, filters, errors = audit_filters(request)
        fmt = request.query.get("format", "csv")
        if fmt not in ("csv", "pdf"):
            errors.append(_("Export format: CSV or PDF."))
        if fmt == "pdf" and not errors:
            matched = await asyncio.to_thread(queries.audit_entries, c.archive, account.agency,
                                              limit=AUDIT_PDF_LIMIT + 1, **filters)
            if len(matched) > AUDIT_PDF_LIMIT:
                errors.append(_("A PDF holds at most %(limit)s entries: narrow the dates, person or case, or "
                                "export CSV.", limit=AUDIT_PDF_LIMIT))
        if errors:
            return await c.error_page(request, 400, _("The request could not be done."), detail="；".join(errors))
        data = await asyncio.to_thread(_audit_export, c, account.agency, fmt, filters)
        await asyncio.to_thread(audit_of(c.archive).record, account.agency, "audit-export", actor=account.actor,
                                case=form.case.data, detail={"format": fmt, "actor": form.actor.data,
                                                             "segment": form.segment.data, "since": filters["since"],
                                                             "until": filters["until"], "console": True})
        return web.Response(body=data, content_type="text/csv" if fmt == "csv" else "application/pdf",
                            charset="utf-8" if fmt == "csv" else None,
                            headers={"Content-Disposition": f'attachment; filename="audit.{fmt}"'})

    r = app.router
    r.add_get("/", home)
    r.add_get("/login", login_get)
    r.add_post("/login", login_post)
    r.add_post("/logout", logout)
    r.add_get("/lang/{locale}", language)
    r.add_get("/docks", docks)
    r.add_get("/docks/stream", docks_stream)
    r.add_post("/docks/checkout", docks_checkout)
    r.add_get("/search", search)
    r.add_get("/case", case_open)
    r.add_get("/case/{number}", case_get)
    r.add_post("/case/{number}/label", case_label)
    r.add_post("/case/{number}/hold", case_hold)
    r.add_post("/case/{number}/release", case_release)
    r.add_get("/grants", grants_get)
    r.add_post("/grants", grants_request)
    r.add_post("/grants/{id}/decision", grants_decide)
    r.add_post("/grants/{id}/revoke", grants_revoke)
    r.add_get("/play/{segment}", play)
    r.add_get("/media/{segment}", media)
    r.add_get("/thumb/{segment}", thumb)
    r.add_get("/misuse", misuse)
    r.add_get("/review", review)
    r.add_post("/review/sample", review_sample)
    r.add_post("/review/finding", review_finding)
    r.add_get("/audit", audit)
    r.add_get("/audit/export", audit_export)


from ..accounts import LoginFailed as LoginFailed_  # noqa: E402 - a name that reads apart from the form's


def _audit_export(c: Console, agency: str, fmt: str, filters: dict) -> bytes:
    import csv
    import io
    import json

    from ..report import render_audit_pdf

    rows = queries.audit_entries(c.archive, agency, limit=None, newest_first=False, **filters)
    if fmt == "csv":  # the same columns as ``bodycam archive audit export --format csv``
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["seq", "utc", "actor", "role", "action", "outcome", "case", "segments", "detail", "digest"])
        for r in rows:
            p = r["payload"]
            w.writerow([p["seq"], p["utc"], p["actor"], p["role"], p["action"], p["outcome"], p["case"] or "",
                        " ".join(p["segments"]), json.dumps(p["detail"], ensure_ascii=False), r["digest"]])
        return ("\ufeff" + buf.getvalue()).encode()
    a = c.archive.agency(agency)
    log_ = audit_of(c.archive)
    return render_audit_pdf(agency=a, entries=[r["payload"] | {"digest": r["digest"]} for r in rows],
                            case=filters["case"], actor=filters["actor"], head=log_.head(agency),
                            stamps=log_.stamps(agency), now=c.now_text())


class _Refused(AccessDenied):
    """AccessDenied whose text is already the page's (catalogue) message."""


def _check_request_scope(c: Console, account, form) -> None:
    """Field errors (in the page's language) for a request naming no case or segment,
    a case that does not exist, or segments this archive does not hold."""
    segments = [s for s in SEGMENT_SPLIT.split(form.segments.data or "") if s]
    if not form.case_number.data and not segments:
        form.case_number.errors.append(_("give a case number or segments"))
    if form.case_number.data and queries.case_segments(c.archive, account.agency, form.case_number.data)[0] is None:
        form.case_number.errors.append(_("there is no such case"))
    unknown = [s for s in segments if queries.segment_row(c.archive, account.agency, s) is None]
    if unknown:
        form.segments.errors.append(_("not in this archive: %(names)s", names="、".join(unknown)))


def _why_no_view(c: Console, account, grant_id: int | None, digest: str) -> str:
    """Why ``account`` may not view ``digest`` under ``grant_id``, in the page's language
    (the archive's AccessDenied text is English for the log and the CLI)."""
    grant = next((g for g in c.grants.list(account) if g.id == grant_id), None) if grant_id is not None else None
    if grant is None or grant.grantee != account.username or "view" not in grant.actions:
        return _("You have no grant to view this segment: request access and wait for the agency head's "
                 "approval (Art. 19).")
    if digest not in grant.segments:
        return _("Grant %(id)s does not cover this segment.", id=grant.id)
    state = queries.grant_state(grant, c.now_text())
    if state == "expired":
        return _("Grant %(id)s expired at %(time)s (Beijing time).", id=grant.id,
                 time=queries.beijing_text(grant.valid_until_utc))
    if state == "requested":
        return _("Grant %(id)s still awaits the agency head's decision.", id=grant.id)
    return _("Grant %(id)s was refused or revoked.", id=grant.id)


async def flash(request: web.Request, message: str) -> None:
    """Keep ``message`` for the next page this visitor opens (POST-redirect-GET)."""
    session = await aiohttp_session.get_session(request)
    session["flash"] = message


async def take_flash(request: web.Request) -> str | None:
    session = await aiohttp_session.get_session(request)
    return session.pop("flash", None)


class _Query:
    """A GET query as WTForms formdata (None when empty, so defaults apply)."""

    def __init__(self, query) -> None:
        self._q = query

    def __iter__(self):
        return iter(self._q)

    def __len__(self) -> int:
        return len(self._q)

    def __contains__(self, key: str) -> bool:
        return key in self._q

    def getlist(self, key: str):
        return self._q.getall(key, [])


def _next(request: web.Request) -> str | None:
    target = request.query.get("next")
    return target if target and target.startswith("/") and not target.startswith("//") else None


def _grant_id(request: web.Request) -> int:
    value = _int_or_none(request.match_info["id"])
    if value is None:
        raise UsageError(_("There is no such request."))
    return value


def _int_or_none(text: str | None) -> int | None:
    """A row id from a URL (ASCII digits, 1..ID_MAX), None when absent; UsageError otherwise."""
    if text is None or text == "":
        return None
    if not re.fullmatch(r"[0-9]{1,10}", text) or not 1 <= int(text) <= ID_MAX:
        raise UsageError(_("%(text)s is not a number from 1 to %(max)s.", text=text[:40], max=ID_MAX))
    return int(text)
