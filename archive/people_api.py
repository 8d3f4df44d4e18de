"""The archive's HTTPS API for people (aiohttp): officers, keepers, agency
heads, reviewers, auditors and external recipients, each with a bearer token
from ``POST /v1/login``.  TLS with the archive's certificate (clients check
it against the agency CA); the docks' mutual-TLS API is archive/server.py.

    POST /v1/login                {username, password, totp?}   → {token, username, role, agency}
    GET  /v1/segments?officer=…&case=…&since=…   search (Art. 20 fields)   → [rows]
    GET  /v1/grants                                                  → [grants]
    POST /v1/grants               {grantee, actions, reason, hours, case | segments} → grant
    POST /v1/grants/<id>/decision {approve: bool, totp, note}        → grant (signed decision inside)
    POST /v1/grants/<id>/revoke   {reason}                           → grant
    GET  /v1/view/<segment>?grant=<id>    watermarked viewing copy (bytes)
    POST /v1/exports              {grant, recipient?}  → the evidence package as a tar (application/x-tar)
    GET  /v1/audit?case=…&actor=…&format=jsonl|csv   (auditor, approver)
    POST /v1/review/sample        {size, criteria: {search fields}, hours?}  → a view request (Art. 24)
    POST /v1/review/findings      {segment, result: conforms|problem, note, grant}

401 without a valid token, 403 (JSON naming why) when the role or the grant
does not allow it — that attempt is in the audit log — 400 for bad input.
The audit head is time-stamped on its schedule while the service runs.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from bodycam.errors import BodycamError

from .access import Access
from .accounts import AccessDenied, Account, Accounts, LoginFailed, require_role
from .audit import audit_of, in_thread_as
from .grants import Grants
from .threaded import ThreadedSite

log = logging.getLogger(__name__)
ACCOUNT: web.RequestKey = web.RequestKey("account", object)
SEARCH_FIELDS = ("sub_unit", "device", "officer", "party", "case_number", "cause", "act_type", "mark", "event",
                 "retention_class", "media", "since", "until")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class PeopleAPI:
    def __init__(self, archive) -> None:
        self.archive = archive
        self.accounts = Accounts(archive)
        self.grants = Grants(archive)
        self.access = Access(archive)
        self.scratch = Path(archive.config.state) / "people"
        self.scratch.mkdir(parents=True, exist_ok=True)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.archive.config.server.certificate, self.archive.config.server.key)
        return ctx

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if request.path != "/v1/login":
            auth = request.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.startswith("Bearer ") else ""
            try:
                request[ACCOUNT] = await asyncio.to_thread(self.accounts.by_token, token)
            except LoginFailed as exc:
                return _error(401, str(exc))
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except AccessDenied as exc:
            return _error(403, str(exc))
        except LoginFailed as exc:
            return _error(401, str(exc))
        except (BodycamError, ValueError) as exc:
            return _error(400, str(exc))
        except Exception:  # noqa: BLE001 - the client gets a message, the log the trace
            log.exception("people API %s %s failed", request.method, request.path)
            return _error(500, "internal error; see the archive service's log")

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=1 << 20)
        app.router.add_post("/v1/login", self.login)
        app.router.add_get("/v1/segments", self.search)
        app.router.add_get("/v1/grants", self.list_grants)
        app.router.add_post("/v1/grants", self.request_grant)
        app.router.add_post("/v1/grants/{id}/decision", self.decide)
        app.router.add_post("/v1/grants/{id}/revoke", self.revoke)
        app.router.add_get("/v1/view/{segment}", self.view)
        app.router.add_post("/v1/exports", self.export)
        app.router.add_get("/v1/audit", self.audit)
        app.router.add_post("/v1/review/sample", self.review_sample)
        app.router.add_post("/v1/review/findings", self.review_finding)
        return app

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise ValueError("body must be JSON") from None
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        return body

    def _as(self, account: Account, fn, *args, **kw):
        """Run ``fn`` in a thread with ``account`` as the audited actor."""
        return in_thread_as(account.actor, fn, *args, **kw)

    async def login(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        account, token = await asyncio.to_thread(self.accounts.login, str(body.get("username", "")),
                                                 str(body.get("password", "")), body.get("totp"))
        return web.json_response({"token": token, "username": account.username, "role": account.role,
                                  "agency": account.agency})

    async def search(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT]
        await asyncio.to_thread(require_role, self.archive, account, "search")
        unknown = set(request.query) - set(SEARCH_FIELDS) - {"limit"}
        if unknown:
            return _error(400, f"unknown search fields: {', '.join(sorted(unknown))}; known: {', '.join(SEARCH_FIELDS)}")
        filters = {k: request.query[k] for k in SEARCH_FIELDS if k in request.query}
        rows = await self._as(account, self.archive.search, account.agency, limit=int(request.query.get("limit", 200)),
                              **filters)
        return web.json_response(rows, dumps=_dumps)

    async def list_grants(self, request: web.Request) -> web.Response:
        grants = await asyncio.to_thread(self.grants.list, request[ACCOUNT])
        return web.json_response([g.to_json() for g in grants], dumps=_dumps)

    async def request_grant(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        g = await asyncio.to_thread(
            self.grants.request, request[ACCOUNT], grantee=str(body.get("grantee") or request[ACCOUNT].username),
            actions=list(body.get("actions") or []), reason=str(body.get("reason") or ""),
            hours=body.get("hours"), case_number=body.get("case"), segments=list(body.get("segments") or []))
        return web.json_response(g.to_json(), dumps=_dumps)

    def _id(self, request: web.Request) -> int:
        try:
            return int(request.match_info["id"])
        except ValueError:
            raise ValueError("grant id must be a number") from None

    async def decide(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body.get("approve"), bool):
            return _error(400, "approve: true or false")
        g = await asyncio.to_thread(self.grants.decide, request[ACCOUNT], self._id(request),
                                    approve=body["approve"], totp=body.get("totp"), note=str(body.get("note") or ""))
        return web.json_response(g.to_json(), dumps=_dumps)

    async def revoke(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        g = await asyncio.to_thread(self.grants.revoke, request[ACCOUNT], self._id(request),
                                    reason=str(body.get("reason") or ""))
        return web.json_response(g.to_json(), dumps=_dumps)

    async def view(self, request: web.Request) -> web.Response:
        grant = request.query.get("grant")
        data, media, name = await asyncio.to_thread(
            self.access.view, request[ACCOUNT], request.match_info["segment"],
            grant_id=int(grant) if grant else None, workdir=self.scratch)
        return web.Response(body=data, content_type=media,
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def export(self, request: web.Request) -> web.Response:
        from .package import export_package

        body = await self._body(request)
        if not isinstance(body.get("grant"), int):
            return _error(400, "grant: the id of an approved export grant")
        account = request[ACCOUNT]

        def build() -> Path:
            work = Path(tempfile.mkdtemp(prefix="export-", dir=self.scratch))
            try:
                result = export_package(self.archive, account, body["grant"], work / "package",
                                        recipient=body.get("recipient"))
                with tarfile.open(work / "package.tar", mode="w") as tar:
                    tar.add(result.path, arcname="package")
                shutil.rmtree(result.path)
                return work
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        work = await asyncio.to_thread(build)
        try:  # streamed from disk: an hour of footage is a gigabyte
            tar = work / "package.tar"
            response = web.StreamResponse(headers={"Content-Type": "application/x-tar",
                                                   "Content-Length": str(tar.stat().st_size)})
            await response.prepare(request)
            with open(tar, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, 1 << 20):
                    await response.write(chunk)
            await response.write_eof()
            return response
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def review_sample(self, request: web.Request) -> web.Response:
        from .review import sample

        body = await self._body(request)
        criteria = body.get("criteria") or {}
        if not isinstance(criteria, dict) or not set(criteria) <= set(SEARCH_FIELDS):
            return _error(400, f"criteria: an object of search fields ({', '.join(SEARCH_FIELDS)})")
        if not isinstance(body.get("size"), int):
            return _error(400, "size: how many segments to draw")
        g = await asyncio.to_thread(sample, self.archive, request[ACCOUNT], body["size"],
                                    hours=int(body.get("hours", 72)), **criteria)
        return web.json_response(g.to_json(), dumps=_dumps)

    async def review_finding(self, request: web.Request) -> web.Response:
        from .review import record_finding

        body = await self._body(request)
        found = await asyncio.to_thread(record_finding, self.archive, request[ACCOUNT], str(body.get("segment", "")),
                                        str(body.get("result", "")), str(body.get("note", "")), body.get("grant"))
        return web.json_response(found, dumps=_dumps)

    async def audit(self, request: web.Request) -> web.Response:
        account = request[ACCOUNT]
        await asyncio.to_thread(require_role, self.archive, account, "audit")
        fmt = request.query.get("format", "jsonl")
        log_ = audit_of(self.archive)
        fn = {"jsonl": log_.export_jsonl, "csv": log_.export_csv}.get(fmt)
        if fn is None:
            return _error(400, "format: jsonl or csv")
        data = await asyncio.to_thread(fn, account.agency, case=request.query.get("case"),
                                       actor=request.query.get("actor"))
        await asyncio.to_thread(log_.record, account.agency, "audit-export", actor=account.actor,
                                case=request.query.get("case"), detail={"format": fmt})
        return web.Response(body=data, content_type="text/csv" if fmt == "csv" else "application/x-ndjson")

    async def stamp_on_schedule(self, stop: asyncio.Event) -> None:
        tsa = self.archive.config.lawful_use.tsa
        if tsa is None:
            return
        while not stop.is_set():
            from .provenance import stamp_seal_log_heads

            for agency in list(self.archive.agencies):
                try:
                    await asyncio.to_thread(audit_of(self.archive).stamp, agency)
                except BodycamError as exc:
                    log.warning("audit time-stamp for %s: %s (will retry)", agency, exc)
            try:
                await asyncio.to_thread(stamp_seal_log_heads, self.archive)
            except BodycamError as exc:
                log.warning("seal-log time-stamps: %s (will retry)", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(60.0, tsa.every_minutes * 60))
            except asyncio.TimeoutError:
                pass


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


class RunningPeopleAPI(ThreadedSite):
    """The people's API on its own thread (tests, the demo, ``archive serve``); it
    time-stamps the audit trail's head on schedule alongside."""

    thread_name = "archive-people-api"

    def __init__(self, archive, host: str | None = None, port: int | None = None) -> None:
        cfg = archive.config.lawful_use.people
        self.api = PeopleAPI(archive)
        super().__init__(host or cfg.listen, cfg.port if port is None else port)

    def app(self) -> web.Application:
        return self.api.app()

    def ssl_context(self) -> ssl.SSLContext:
        return self.api.ssl_context()

    async def alongside(self, stop: asyncio.Event) -> None:
        await self.api.stamp_on_schedule(stop)
