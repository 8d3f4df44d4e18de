"""The recorder's side of the dock link: HTTPS with mutual TLS (aiohttp).

The recorder presents its device certificate; the dock must present a dock
certificate from the same agency CA.  The link serves identity, health, the
seal log and sealed segments (with HTTP ranges, for resume), and accepts
archive receipts — the only thing that makes the recorder delete footage —
plus dock-signed clock syncs and officer assignments.  Every accepted
message is written to the seal log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Callable

from aiohttp import web
from cryptography import x509

from bodycam.errors import BodycamError, FormatError, TrustError

from .sealing.clock import CLOCK_SYNCED, utc_text
from .sealing import pki
from .sealing import seallog as ev
from .sealing.format import decimal_int
from .sealing.fsutil import fsync_dir
from .sealing.messages import CTX_ASSIGNMENT, CTX_CLOCK_SYNC, CTX_RECEIPT, open_message
from .sealing.sealer import MANIFEST_SUFFIX, SEGMENT_NAME_RE as NAME_RE, SEGMENT_SUFFIX
from .sealing.seallog import LOG_DIR, LOG_FILE_RE
from .linkserver import AlarmLimiter, ConnectionGate, byte_range, limit_noisy_logs
from .sealing.segment_file import read_manifest
from .sealing.state import SealingState
from .selftest_report import last_selftest

log = logging.getLogger(__name__)

API = "/v1"
HANDSHAKE_SECONDS = 5.0  # a peer that does not finish TLS in this time is dropped
EV_READINESS = "readiness"  # seal-log event: the dock's verdict (ready, reasons, dock, bay)
MAX_BODY = 256 * 1024
DOCK = web.RequestKey("dock", str)
CHUNK = 1024 * 1024


IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # linux/in.h


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on ``host`` (an IP, IPv6 with an optional %interface).

    The gadget's link-local address exists only while the USB link is up (no
    cable, no address), and a recorder must start and record without a dock:
    a scoped link-local address is bound with IP_FREEBIND, so the link is
    served as soon as the address appears.  Any other address must exist now.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_NUMERICHOST | socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and "%" in host and host.lower().startswith("fe80"):
            sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def server_tls(state_dir: Path) -> ssl.SSLContext:
    ident = Path(state_dir) / pki.IDENTITY_DIR
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ident / pki.CA_CERT))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(ident / pki.DEVICE_CERT, ident / pki.DEVICE_KEY)
    return ctx


class DockLinkError(BodycamError, OSError):
    """The dock link could not be served (address not on this machine, port taken)."""


class DockLink:
    def __init__(self, sealing: SealingState, *, health: Callable[[], dict[str, Any] | None] = lambda: None,
                 on_assignment: Callable[[dict[str, Any]], None] | None = None,
                 on_clock_sync: Callable[[int], None] | None = None,
                 on_readiness: Callable[[bool, list[str]], None] | None = None,
                 max_connections: int = 8) -> None:
        self.sealing = sealing
        self.root = sealing.root
        ident = self.root / pki.IDENTITY_DIR
        self.ca_cert = pki.load_cert(ident / pki.CA_CERT, "agency CA certificate")
        self.health = health
        self.on_assignment = on_assignment
        self.on_clock_sync = on_clock_sync
        self.on_readiness = on_readiness
        self.readiness_verdict: dict[str, Any] | None = None
        self.assignment: dict[str, Any] | None = None
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._only_docks])
        r = self.app.router
        r.add_get(f"{API}/identity", self.identity)
        r.add_get(f"{API}/health", self.get_health)
        r.add_get(f"{API}/time", self.time)
        r.add_get(f"{API}/seallog", self.list_log)
        r.add_get(f"{API}/seallog/{{name}}", self.get_log)
        r.add_get(f"{API}/segments", self.list_segments)
        r.add_get(f"{API}/segments/{{file}}", self.get_segment)
        r.add_post(f"{API}/receipts", self.receipt)
        r.add_post(f"{API}/clock", self.clock)
        r.add_post(f"{API}/assignment", self.assign)
        r.add_post(f"{API}/readiness", self.readiness)
        self.gate = ConnectionGate(max_connections, HANDSHAKE_SECONDS)
        self.alarms = AlarmLimiter()
        self._server: asyncio.AbstractServer | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # -- authentication ------------------------------------------------------------------

    @web.middleware
    async def _only_docks(self, request: web.Request, handler):
        sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = sslobj.getpeercert(binary_form=True) if sslobj else None
        if not der:
            raise web.HTTPForbidden(text="a dock certificate is required")
        cert = x509.load_der_x509_certificate(der)
        try:
            pki.check_cert(cert, self.ca_cert, pki.ROLE_DOCK, "client")
        except TrustError as exc:
            raise web.HTTPForbidden(text=str(exc)) from None
        request[DOCK] = pki.cert_id(cert) or ""
        return await handler(request)

    def _alarm(self, kind: str, data: dict[str, Any]) -> None:
        """A signed alarm entry, rate-limited per kind (AlarmLimiter)."""
        suppressed = self.alarms.admit(kind)
        if suppressed is None:
            return
        self.sealing.log_event(ev.EV_ALARM, {"kind": kind, **data, "suppressed": suppressed})

    # -- reads ------------------------------------------------------------------------------

    async def identity(self, request: web.Request) -> web.Response:
        head = self.sealing.log.entries[-1]
        return web.json_response({
            "device": self.sealing.identity.device_id,
            "seal_log_head": {"seq": head.seq, "digest": head.digest.hex()},
            "recording": bool(self.sealing.open_segments),
            "officer": (self.assignment or {}).get("officer"),
        })

    async def get_health(self, request: web.Request) -> web.Response:
        return web.json_response({"health": self.health(), "clock_state": self.sealing.clock.state,
                                  "selftest": last_selftest(self.sealing.root)})

    async def time(self, request: web.Request) -> web.Response:
        t2 = self._now_ns()
        return web.json_response({"t2_ns": t2, "t3_ns": self._now_ns()})

    def _now_ns(self) -> int:
        return int(self.sealing.clock.utc_now().timestamp() * 1e9)

    async def list_log(self, request: web.Request) -> web.Response:
        log_dir = self.root / LOG_DIR
        files = [{"name": p.name, "bytes": p.stat().st_size}
                 for p in sorted(log_dir.iterdir()) if LOG_FILE_RE.match(p.name)]
        return web.json_response({"files": files})

    async def get_log(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if not LOG_FILE_RE.match(name):
            raise web.HTTPNotFound(text="no such seal-log file")
        return await self._send_file(request, self.root / LOG_DIR / name)

    async def list_segments(self, request: web.Request) -> web.Response:
        seg_dir = self.sealing.segments_dir
        open_names = {w.name for w in self.sealing.open_segments.values()}
        out = []
        for man in sorted(seg_dir.glob(f"*{MANIFEST_SUFFIX}")):
            name = man.name[: -len(MANIFEST_SUFFIX)]
            seg = seg_dir / f"{name}{SEGMENT_SUFFIX}"
            if name in open_names or not seg.exists():
                continue
            try:
                meta = read_manifest(man).signed.obj.get("meta") or {}
            except (FormatError, OSError):
                meta = {}
            events = meta.get("events", []) if isinstance(meta, dict) else []
            marked = any(isinstance(e, dict) and e.get("event") == "mark" for e in events)
            out.append({"name": name, "segment_bytes": seg.stat().st_size,
                        "manifest_bytes": man.stat().st_size, "marked": marked})
        return web.json_response({"segments": out})

    async def get_segment(self, request: web.Request) -> web.StreamResponse:
        file = request.match_info["file"]
        stem, _, suffix = file.rpartition(".")
        if not NAME_RE.match(stem) or f".{suffix}" not in (SEGMENT_SUFFIX, MANIFEST_SUFFIX):
            raise web.HTTPNotFound(text="no such segment file")
        if stem in {w.name for w in self.sealing.open_segments.values()}:
            raise web.HTTPConflict(text="segment still open")
        return await self._send_file(request, self.sealing.segments_dir / file)

    async def _send_file(self, request: web.Request, path: Path) -> web.StreamResponse:
        """Serve a file, or the single byte range a resumed transfer asks for (RFC 9110 §14).

        ``HEAD`` sends the headers only.  A ``Range`` that is malformed, names
        several ranges, or lies outside the file is answered 416 with
        ``Content-Range: bytes */size``; a range in another unit is ignored.
        """
        if not path.is_file():
            raise web.HTTPNotFound(text="not found")
        size = path.stat().st_size
        header = request.headers.get("Range")
        span = byte_range(header, size) if header is not None else None
        if span is False:
            raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        start, end = span if span else (0, size - 1)
        resp = web.StreamResponse(status=206 if span else 200)
        resp.content_length = end - start + 1 if size else 0
        resp.content_type = "application/octet-stream"
        resp.headers["Accept-Ranges"] = "bytes"
        if span:
            resp.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        await resp.prepare(request)
        if request.method != "HEAD":
            request.transport.set_write_buffer_limits(high=4 * CHUNK)
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start + 1 if size else 0
                while left > 0 and (chunk := f.read(min(CHUNK, left))):
                    left -= len(chunk)
                    await resp.write(chunk)
        await resp.write_eof()
        return resp

    # -- writes ------------------------------------------------------------------------------

    async def _message(self, request: web.Request, ctx: str) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="body is not JSON") from None
        try:
            opened = open_message(body, self.ca_cert, ctx, "message")
        except BodycamError as exc:
            self._alarm("refused-message", {"ctx": ctx, "dock": request[DOCK], "reason": str(exc)[:200]})
            raise web.HTTPForbidden(text=str(exc)) from None
        payload = opened.payload
        if payload.get("device") != self.sealing.identity.device_id:
            raise web.HTTPForbidden(text=f"message is for device {payload.get('device')!r}")
        payload["_sha256"] = hashlib.sha256(opened.raw).hexdigest()
        payload["_signer"] = opened.signer
        payload["_message"] = body
        return payload

    async def receipt(self, request: web.Request) -> web.Response:
        r = await self._message(request, CTX_RECEIPT)
        name = r.get("segment")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise web.HTTPBadRequest(text="receipt names no valid segment")
        seg = self.sealing.segments_dir / f"{name}{SEGMENT_SUFFIX}"
        man = seg.with_suffix(MANIFEST_SUFFIX)
        if not seg.exists():
            raise web.HTTPGone(text=f"{name}: no such segment here (already deleted, or never ours)")
        if name in {w.name for w in self.sealing.open_segments.values()}:
            raise web.HTTPConflict(text="segment still open")
        manifest = read_manifest(man)
        files = r.get("files") or {}
        if (manifest.digest.hex() != r.get("segment_digest")
                or _sha256(seg) != files.get("segment_sha256")
                or _sha256(man) != files.get("manifest_sha256")):
            self._alarm("refused-receipt", {"segment": name, "reason": "digests differ from the footage here"})
            raise web.HTTPConflict(text="receipt does not match the footage here; nothing deleted")
        seq = manifest.signed.obj["segment_seq"]
        self.sealing.log_event(ev.EV_RECEIPT, {
            "segment_seq": seq, "segment": name, "digest": r["segment_digest"],
            "archive": r["_signer"], "retain_until": r.get("retain_until"), "receipt_sha256": r["_sha256"],
            "receipt": r["_message"]})  # the signed receipt itself: a deletion counts only with it
        for path in (seg, man):
            os.chmod(path, 0o644)
            path.unlink()
        fsync_dir(self.sealing.segments_dir)
        self.sealing.log_event(ev.EV_DELETION, {"segment_seq": seq, "segment": name,
                                                "digest": r["segment_digest"], "reason": "archive receipt"})
        return web.json_response({"deleted": name})

    async def clock(self, request: web.Request) -> web.Response:
        m = await self._message(request, CTX_CLOCK_SYNC)
        try:  # decimal strings (format §2.1: may exceed JSON's exact integers)
            offset = decimal_int(m.get("offset_ns"), "offset_ns")
        except FormatError:
            raise web.HTTPBadRequest(text="offset_ns must be a decimal integer string") from None
        if abs(offset) > 10 * 365 * 86400 * 10**9:
            raise web.HTTPBadRequest(text="offset_ns must be within ten years")
        self.sealing.log_event(ev.EV_CLOCK_SET, {
            "offset_ns": str(offset), "delay_ns": m.get("delay_ns"), "dock": m["_signer"],
            "dock_utc": m.get("dock_utc"), "message_sha256": m["_sha256"],
            "sync": m["_message"]})  # the dock-signed sync: bounds the time of what follows
        # Applied to the recorder's clock; the service persists it (on_clock_sync), so
        # that it survives a restart with an error bound.
        self.sealing.clock.adjust(offset)
        self.sealing.clock.state = CLOCK_SYNCED
        if self.on_clock_sync is not None:
            try:
                delay = decimal_int(m.get("delay_ns"), "delay_ns")
            except FormatError:
                delay = 0
            self.on_clock_sync(max(delay, 0))
        return web.json_response({"clock_state": CLOCK_SYNCED})

    async def assign(self, request: web.Request) -> web.Response:
        a = await self._message(request, CTX_ASSIGNMENT)
        officer = a.get("officer")
        if not isinstance(officer, str) or not pki.OFFICER_ID_RE.match(officer):
            raise web.HTTPBadRequest(text="assignment names no valid officer ID")
        valid_until = a.get("valid_until")
        if not isinstance(valid_until, str) or valid_until < utc_text(dt.datetime.now(dt.timezone.utc))[:10]:
            raise web.HTTPForbidden(text="the officer's enforcement certificate has expired")
        self.sealing.log_event(ev.EV_ASSIGNMENT, {
            "officer": officer, "department": a.get("department"), "dock": a["_signer"],
            "bay": a.get("bay"), "valid_until": valid_until, "message_sha256": a["_sha256"]})
        self.assignment = {k: v for k, v in a.items() if not k.startswith("_")}
        if self.on_assignment:
            self.on_assignment(self.assignment)
        return web.json_response({"officer": officer})

    async def readiness(self, request: web.Request) -> web.Response:
        """The dock's verdict on this recorder for the next shift (the dock is known by
        its TLS certificate); logged, and shown on the LEDs by the service."""
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="body is not JSON") from None
        ready = body.get("ready") if isinstance(body, dict) else None
        reasons = body.get("reasons") if isinstance(body, dict) else None
        if (not isinstance(ready, bool) or not isinstance(reasons, list) or len(reasons) > 10
                or not all(isinstance(r, str) and len(r) <= 300 for r in reasons)):
            raise web.HTTPBadRequest(text="readiness is {ready: bool, reasons: [at most 10 strings]}")
        self.sealing.log_event(EV_READINESS, {"ready": ready, "reasons": reasons, "dock": request[DOCK],
                                              "bay": body.get("bay") if isinstance(body.get("bay"), int) else None})
        self.readiness_verdict = {"ready": ready, "reasons": reasons}
        if self.on_readiness is not None:
            self.on_readiness(ready, reasons)
        return web.json_response({"ready": ready})

    # -- running ---------------------------------------------------------------------------------

    def start(self, host: str, port: int = 0) -> int:
        """Serve on a background thread; returns the port.

        Raises ``DockLinkError`` naming the address when it cannot be bound
        (no such address or interface here, port in use, no permission).
        """
        ready = threading.Event()
        failure: list[BaseException] = []
        limit_noisy_logs()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
                self._loop.run_until_complete(self._runner.setup())
                self._server = self._loop.run_until_complete(self._loop.create_server(
                    self.gate.wrap(self._runner.server), sock=listening_socket(host, port, self.gate.limit),
                    ssl=server_tls(self.root), ssl_handshake_timeout=HANDSHAKE_SECONDS))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # handed to the caller, which names the address
                failure.append(exc)
                self._loop.run_until_complete(self._runner.cleanup())
                self._loop.close()
                self._loop = None
                return
            finally:
                ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="docklink", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise DockLinkError(f"dock link on [{host}]:{port}: did not start within 10 s")
        if failure:
            exc = failure[0]
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DockLinkError(f"dock link cannot listen on [{host}]:{port}: {reason} "
                                f"(docklink.listen / docklink.port in the hw-config)") from None
        return self.port or 0

    def stop(self) -> None:
        if self._loop is None:
            return
        loop, self._loop = self._loop, None

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
