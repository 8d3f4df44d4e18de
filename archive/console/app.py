"""The console's aiohttp application: sessions, CSRF, roles, errors, TLS.

Pages and who may open them (:data:`PAGES`); every page also keeps to the
visitor's agency, because every query names ``account.agency``::

    GET  /login, POST /login         everyone (failed attempts rate-limited: LOGIN_LIMIT per user and address)
    POST /logout                     signed-in: the session's token is revoked on the server
    GET  /lang/<zh_CN|en>            everyone: the page language (session)
    GET  /docks, /docks/stream       keeper, approver           bays live (server-sent events), Art. 11 alerts
    GET  /search                     officer, keeper, approver, reviewer
    GET  /case/<number>, POST …      officer, keeper, approver  footage + documents in time order; label; hold
    GET  /grants, POST …             officer, keeper, approver, reviewer   requests, approvals (TOTP), revoke
    GET  /play/<segment>?grant=      view roles + a live grant  <video> of the watermarked copy, timeline
    GET  /media/<segment>?grant=     same; the bytes (HTTP ranges), decrypted in this process only
    GET  /thumb/<segment>?grant=     same; a JPEG of the first frame of the watermarked copy
    GET  /audit, /audit/export       auditor, approver          filter by person, case, segment; CSV/PDF

A refused page answers 403 and the attempt is audited (``denied``); any
other failure answers a page with the reason, never a stack trace (those go
to the log).

Sessions: the encrypted cookie (aiohttp-session) carries a sign-in token of
``tokens`` (archive/accounts.py, stored there only as its SHA-256), checked
on every request: signing out revokes it, so a copied cookie stops working;
so does :data:`SESSION_IDLE_MINUTES` without a request, and the token's own
life (``[lawful_use] token_hours``).
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote
import base64
import io
import json
import logging
import secrets
import ssl
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from cryptography.exceptions import UnsupportedAlgorithm

from bodycam.errors import BodycamError, TrustError

from .. import evidence as ev
from ..access import Access
from ..accounts import AccessDenied, Account, Accounts, LoginFailed
from ..audit import audit_of, current_actor, in_thread_as
from ..grants import Grants
from . import i18n
from .i18n import _
from ..threaded import ThreadedSite

log = logging.getLogger(__name__)
CONSOLE_KEY: web.AppKey["Console"] = web.AppKey("console")  # the running Console, for handlers that need it
HERE = Path(__file__).resolve().parent
ACCOUNT: web.RequestKey = web.RequestKey("console_account", object)
LOGIN_LIMIT = "5/minute"  # failed sign-ins per username and address
ADDRESS_LIMIT = "30/minute"  # failed sign-ins from one address
SESSION_HOURS = 12
SESSION_IDLE_MINUTES = 30  # a session unused this long is revoked (the cookie alone no longer signs in)
SEEN_EVERY_SECONDS = 60  # how often a session's last-seen time is rewritten (each rewrite re-sends the cookie)
MAX_REQUEST_BODY = 1 << 20  # bytes; no console form needs more (413 page beyond)
MAX_REQUEST_LINE = 16 * 1024  # bytes of request line or header line (aiohttp's default is 8190; a case link with
                              # many segment digests can pass 8 KiB); longer ones are refused by aiohttp itself
MEDIA_CACHE = 8  # watermarked viewing copies kept in memory (per viewer, segment, grant)
MEDIA_TTL_SECONDS = 600
BOARD_POLL_SECONDS = 0.5

PAGES: dict[str, frozenset[str]] = {
    "docks": frozenset({"keeper", "approver"}),
    "checkout": frozenset({"keeper"}),
    "search": frozenset({"officer", "keeper", "approver", "reviewer"}),
    "case": frozenset({"officer", "keeper", "approver"}),
    "case-edit": frozenset({"officer", "keeper"}),
    "hold": frozenset({"keeper"}),
    "grants": frozenset({"officer", "keeper", "approver", "reviewer"}),
    "play": frozenset({"officer", "keeper", "approver", "reviewer", "recipient"}),
    "audit": frozenset({"auditor", "approver"}),
    "misuse": frozenset({"approver", "auditor", "reviewer"}),
    "review": frozenset({"reviewer", "approver"}),
    "review-work": frozenset({"reviewer"}),
}
HOME = {"keeper": "/docks", "approver": "/grants", "reviewer": "/grants", "officer": "/search",
        "auditor": "/audit", "recipient": "/grants"}
NAV = (("docks", "/docks"), ("search", "/search"), ("grants", "/grants"), ("review", "/review"),
       ("misuse", "/misuse"), ("audit", "/audit"))


def page(name: str) -> Callable:
    """Mark a handler as the page ``name`` of :data:`PAGES` (checked by the middleware)."""
    def mark(handler):
        handler.console_page = name
        return handler
    return mark


def public(handler):
    handler.console_public = True
    return handler


class Console:
    """The console over one :class:`~archive.service.Archive`.

    ``dock_status``: the docks' status boards (``status.json`` or the dock's
    state folder), read on each view.  ``session_key``: 32 bytes for the
    encrypted session cookie (random when None: sessions end with the process).
    """

    def __init__(self, archive, *, dock_status: list[Path] = (), session_key: bytes | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.archive = archive
        self.tls = tls
        self.dock_status = [Path(p) for p in dock_status]
        self.accounts = Accounts(archive)
        self.grants = Grants(archive)
        self.access = Access(archive)
        self.session_key = session_key or secrets.token_bytes(32)
        self.csrf_secret = secrets.token_bytes(32)
        self.scratch = Path(archive.config.state) / "console"
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.login_limit = parse_limit(LOGIN_LIMIT)
        self.address_limit = parse_limit(ADDRESS_LIMIT)
        self._media: OrderedDict[tuple[str, str, int], tuple[float, bytes, str]] = OrderedDict()
        self._media_lock = threading.Lock()

    # -- the application ---------------------------------------------------------------------

    def app(self) -> web.Application:
        from . import routes

        app = web.Application(middlewares=[
            aiohttp_session.session_middleware(EncryptedCookieStorage(
                self.session_key, cookie_name="BODYCAM_CONSOLE", secure=True, httponly=True, samesite="Strict",
                max_age=SESSION_HOURS * 3600)),
            self.middleware], client_max_size=MAX_REQUEST_BODY,
            handler_args={"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_REQUEST_LINE})
        env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                                   autoescape=jinja2.select_autoescape(("html", "j2")),
                                   extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined,
                                   context_processors=[self._context])
        env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
        env.filters["seconds"] = lambda s: "" if s is None else f"{s:.1f}"
        env.filters["utc"] = lambda t: (t or "")[:19].replace("T", " ")
        env.filters["mb"] = lambda n: f"{(n or 0) / 1e6:.1f}"
        # One path segment of a URL: a case number may hold "/" (Jinja's urlencode leaves it).
        env.filters["pathpart"] = lambda s: quote(str(s), safe="")
        app[CONSOLE_KEY] = self
        routes.add_routes(app, self)
        app.router.add_static("/static/", HERE / "static", name="static")
        return app

    async def _context(self, request: web.Request) -> dict[str, Any]:
        account = request.get(ACCOUNT)
        session = await aiohttp_session.get_session(request)
        return {"account": account, "locale": i18n.current_locale.get(),
                "html_lang": i18n.HTML_LANG[i18n.current_locale.get()],
                "nav": [(name, url) for name, url in NAV if account is not None and account.role in PAGES[name]],
                "path": request.path, "csrf_token": self._csrf_token(session)}

    def _csrf_token(self, session) -> str:
        from .forms import ConsoleForm, bind

        return bind(ConsoleForm, None, secret=self.csrf_secret, session=session).csrf_token.current_token

    def ssl_context(self) -> ssl.SSLContext:
        """TLS 1.2+ with ``tls`` (certificate, key), else the archive's [server] pair
        (which browsers refuse when it is Ed25519: see console/tls.py).  Raises
        InputError or TrustError naming the option and the file (see :func:`check_tls_pair`)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.tls:
            (cert, key), names = self.tls, ("--tls-certificate", "--tls-key")
        else:
            cert, key = self.archive.config.server.certificate, self.archive.config.server.key
            names = ("[server] certificate", "[server] key")
        check_tls_pair(cert, key, names=names)
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as exc:  # checked above; whatever OpenSSL still refuses, named
            raise TrustError(f"{names[0]} {cert}, {names[1]} {key}: TLS refuses the pair ({exc})") from None
        return ctx

    # -- every request -----------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        session = await aiohttp_session.get_session(request)
        locale = session.get("locale")
        i18n.current_locale.set(locale if locale in i18n.LOCALES else i18n.DEFAULT_LOCALE)
        try:
            if not getattr(handler, "console_public", False) and not request.path.startswith("/static/"):
                account = await self._signed_in(session)
                if account is None:
                    if request.method == "GET" and request.path != "/docks/stream":
                        raise web.HTTPSeeOther(f"/login?next={request.path_qs}" if request.path != "/" else "/login")
                    return await self.error_page(request, 401, _("Please sign in again."))
                request[ACCOUNT] = account
                current_actor.set(account.actor)
                name = getattr(handler, "console_page", None)
                if name is not None and account.role not in PAGES[name]:
                    await asyncio.to_thread(audit_of(self.archive).record, account.agency, "denied",
                                            outcome="denied", actor=account.actor,
                                            detail={"wanted": f"console:{name}", "path": request.path,
                                                    "why": f"role {account.role} may not open {name}"})
                    return await self.error_page(request, 403, _("Your role may not open this page."))
            response = await handler(request)
            if isinstance(response, web.Response) and "Cache-Control" not in response.headers:
                response.headers["Cache-Control"] = "no-store"
            return response
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                return await self.error_page(request, exc.status, _("There is no such page."))
            if exc.status == 413:
                return await self.error_page(request, 413, _("The request is too large."),
                                             detail=f"{MAX_REQUEST_BODY // 1024} KiB")
            if exc.status >= 400:
                return await self.error_page(request, exc.status, _("The request could not be done."),
                                             detail=exc.reason)
            raise
        except AccessDenied as exc:
            return await self.error_page(request, 403, _("Not allowed."), detail=str(exc))
        except LoginFailed as exc:
            return await self.error_page(request, 401, _("Sign-in failed."), detail=str(exc))
        except (BodycamError, ValueError) as exc:
            return await self.error_page(request, 400, _("The request could not be done."), detail=str(exc))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:  # noqa: BLE001 - the page says so, the log has the trace
            log.exception("console %s %s failed", request.method, request.path)
            return await self.error_page(request, 500, _("Internal error: the archive's log has the details."))

    async def _signed_in(self, session) -> Account | None:
        """The account of the session's live token; None (and the session
        ended) when the token is revoked or expired, the session idle longer
        than :data:`SESSION_IDLE_MINUTES`, or the account's role or agency
        changed since sign-in."""
        token = session.get("token")
        if not token:
            return None
        try:
            account = await asyncio.to_thread(self.accounts.by_token, token)
        except BodycamError:
            session.invalidate()
            return None
        now = self.archive.now().timestamp()
        seen = session.get("seen")
        if not isinstance(seen, (int, float)) or now - seen > SESSION_IDLE_MINUTES * 60:
            await asyncio.to_thread(self.accounts.revoke_token, token)
            session.invalidate()
            return None
        if account.agency != session.get("agency") or account.role != session.get("role"):
            session.invalidate()  # role or agency changed since sign-in: sign in again
            return None
        if now - seen >= SEEN_EVERY_SECONDS:
            session["seen"] = now
        return account

    async def start_session(self, request: web.Request, account: Account, token: str):
        """A fresh session (new cookie) for ``account`` signed in with ``token``."""
        old = await aiohttp_session.get_session(request)
        locale = old.get("locale")
        old.invalidate()
        session = await aiohttp_session.new_session(request)
        session.update({"token": token, "user": account.username, "role": account.role, "agency": account.agency,
                        "seen": self.archive.now().timestamp()})
        if locale:
            session["locale"] = locale
        return session

    async def end_session(self, session) -> None:
        """Sign out: revoke the session's token on the server, then drop the cookie."""
        token = session.get("token")
        if token:
            await asyncio.to_thread(self.accounts.revoke_token, token)
        session.invalidate()

    async def error_page(self, request: web.Request, status: int, message: str, detail: str | None = None):
        try:
            context = await self._context(request)
            response = aiohttp_jinja2.render_template("error.html", request, {
                **context, "status": status, "message": message, "detail": detail}, status=status)
        except Exception:  # noqa: BLE001 - the error page itself failed: plain text, never a trace
            log.exception("console error page for %s failed", request.path)
            response = web.Response(status=status, text=f"{status} {message}")
        response.headers["Cache-Control"] = "no-store"
        return response

    # -- helpers for the pages ---------------------------------------------------------------

    def as_account(self, account: Account, fn, *args, **kw):
        """Run ``fn`` in a thread with ``account`` as the audited actor."""
        return in_thread_as(account.actor, fn, *args, **kw)

    def login_allowed(self, address: str, username: str) -> bool:
        """False once :data:`LOGIN_LIMIT` failures for this user from this address, or
        :data:`ADDRESS_LIMIT` from this address, fell in the last minute (moving window)."""
        return (self.limiter.test(self.address_limit, "console-login-address", address)
                and self.limiter.test(self.login_limit, "console-login", address, username.lower()))

    def login_failed(self, address: str, username: str) -> None:
        """Count a failed sign-in toward :meth:`login_allowed`'s limits (a success counts nothing)."""
        self.limiter.hit(self.address_limit, "console-login-address", address)
        self.limiter.hit(self.login_limit, "console-login", address, username.lower())

    def now_text(self) -> str:
        return ev.utc_text(self.archive.now())

    def viewing_copy(self, account: Account, digest: str, grant_id: int) -> tuple[bytes, str]:
        """The watermarked copy for this viewer, segment and grant (made once per
        :data:`MEDIA_TTL_SECONDS`; making it is audited by :meth:`Access.view`).
        The caller has checked the grant is live on this request."""
        key = (account.username, digest, grant_id)
        now = time.monotonic()
        with self._media_lock:
            hit = self._media.get(key)
            if hit is not None and now - hit[0] < MEDIA_TTL_SECONDS:
                self._media.move_to_end(key)
                return hit[1], hit[2]
        data, media, _name = self.access.view(account, digest, grant_id=grant_id, workdir=self.scratch)
        with self._media_lock:
            self._media[key] = (now, data, media)
            while len(self._media) > MEDIA_CACHE:
                self._media.popitem(last=False)
        return data, media


def thumbnail_jpeg(data: bytes, media: str, width: int = 160) -> bytes:
    """A small JPEG of the first picture of a (watermarked) viewing copy."""
    from PIL import Image

    if media == "image/jpeg":
        img = Image.open(io.BytesIO(data))
    elif media == "video/mp4":
        import av

        with av.open(io.BytesIO(data)) as src:
            frame = next(src.decode(video=0))
            img = frame.to_image()
    else:
        raise ValueError(f"no picture in {media}")
    img.thumbnail((width, width))
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def check_tls_pair(cert: Path, key: Path, *, names: tuple[str, str] = ("--tls-certificate", "--tls-key")) -> None:
    """Check a TLS certificate file and its key file before the server loads them.

    Each must be a regular file (a FIFO or a device is refused unread, so it
    cannot hang; bounds of device/sealing/safeio.py), the first PEM
    certificate(s), the second an unencrypted PEM private key whose public key
    is the (first) certificate's.  ``names``: how the caller calls the two
    (option names).  Raises InputError or TrustError naming the option and the file.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from device.sealing.safeio import MAX_CERTIFICATE_FILE, MAX_KEY_FILE, read_bounded

    cert_data = read_bounded(cert, MAX_CERTIFICATE_FILE, f"{names[0]} file")
    key_data = read_bounded(key, MAX_KEY_FILE, f"{names[1]} file")
    try:
        chain = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise TrustError(f"{names[0]} {cert}: not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    try:
        private = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise TrustError(f"{names[1]} {key}: the key is encrypted; give it unencrypted (mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TrustError(f"{names[1]} {key}: not a PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if chain[0].public_key().public_bytes(*spki) != private.public_key().public_bytes(*spki):
        raise TrustError(f"{names[1]} {key} is not the key of {names[0]} {cert}")


def session_key_from(text: str) -> bytes:
    """32 bytes from a base64 text (a key file's content); ValueError otherwise."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ValueError("session key: base64 text of 32 random bytes") from None
    if len(key) != 32:
        raise ValueError(f"session key: 32 bytes needed, {len(key)} found")
    return key


class RunningConsole(ThreadedSite):
    """The console on its own thread (tests, the demo, ``archive console``)."""

    thread_name = "archive-console"
    runner_options = {"shutdown_timeout": 2}

    def __init__(self, archive, *, host: str = "127.0.0.1", port: int = 0, dock_status: list[Path] = (),
                 session_key: bytes | None = None, tls: tuple[Path, Path] | None = None) -> None:
        self.console = Console(archive, dock_status=dock_status, session_key=session_key, tls=tls)
        super().__init__(host, port)

    def app(self) -> web.Application:
        return self.console.app()

    def ssl_context(self) -> ssl.SSLContext:
        return self.console.ssl_context()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
