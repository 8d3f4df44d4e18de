"""The archive service's HTTPS API (aiohttp), mutual TLS from the agency CAs.

Only docks (certificate role ``dock`` of a configured agency's CA) are
served; the agency of every request is the one whose CA issued the dock's
certificate, so agencies sharing a deployment never see each other's data.

    GET  /v1/health                      → {status, archive}
    GET  /v1/blobs/<sha256>              → {stored: bool, staged_bytes: int}
    PUT  /v1/blobs/<sha256>              body = bytes from Upload-Offset; headers
                                           Upload-Offset, Upload-Length (total)
                                           → 200 {stored|staged}, 409 {staged_bytes} on a wrong
                                           offset, 422 if the bytes' SHA-256 differs
    POST /v1/commits                     {device, source, sub_unit, names, files: {path: sha256}, held}
                                           → 200 {receipts: [...]} (format §12)
    POST /v1/segments/received           {digests: [sealed segment digest, …]} (at most 50,000)
                                           → 200 {received: [the digests this agency's archive
                                           has committed, expired ones included]}

Uploads are resumable (the offset is the staged length) and idempotent (a
blob already stored or staged is not sent again).  Bad requests get a JSON
``{"error": …}`` with a 4xx status, never a traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509

from bodycam.errors import BodycamError, SealingError

from . import evidence as ev
from .blobstore import HEX, LocalBlobStore, StoreError
from .config import ArchiveConfig
from .service import Archive, ArchiveError, staging_dir, temp_recording
from .threaded import ThreadedSite

log = logging.getLogger(__name__)
MAX_JSON = 4 * 1024 * 1024
MAX_FILES = 50_000
CHUNK = 1 << 20
PATH_RE = re.compile(r"^(identity/device\.crt|seallog/[^/]+|segments/[^/]+)$")
AGENCY: web.RequestKey = web.RequestKey("agency", object)
DOCK: web.RequestKey = web.RequestKey("dock", str)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _valid_path(path: str) -> bool:
    if not PATH_RE.match(path):
        return False
    kind, _, name = path.partition("/")
    if kind == "seallog":
        return bool(ev.LOG_FILE_RE.match(name))
    if kind == "segments":
        for suffix in (ev.SEGMENT_SUFFIX, ev.MANIFEST_SUFFIX):
            if name.endswith(suffix) and ev.SEGMENT_NAME_RE.match(name[: -len(suffix)]):
                return True
        return False
    return True


class ArchiveService:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.config: ArchiveConfig = archive.config
        self.uploads = staging_dir(self.config)
        self.max_upload = self.config.server.max_upload_mb << 20
        self.read_timeout = float(self.config.server.read_timeout_seconds)
        self._receiving: set[str] = set()
        self._drop_stale_uploads()

    def _drop_stale_uploads(self) -> None:
        """Unfinished or uncommitted uploads older than ``stale_upload_days`` go: they are
        staging copies (the dock keeps its own until it has a receipt), never stored evidence."""
        limit = time.time() - self.config.server.stale_upload_days * 86400
        for path in self.uploads.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < limit:
                    path.unlink()
                    log.info("removed stale upload %s", path.name)
            except OSError as exc:
                log.warning("stale upload %s: %s", path, exc)

    # -- TLS and identity --------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.config.server.certificate, self.config.server.key)
        for agency in self.config.agencies:
            ctx.load_verify_locations(cafile=str(agency.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            return _error(401, "a dock client certificate is required")
        try:
            agency, dock = self.archive.agency_of_dock(x509.load_der_x509_certificate(der))
        except (ArchiveError, ValueError) as exc:
            return _error(403, str(exc))
        request[AGENCY], request[DOCK] = agency, dock
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except SealingError as exc:
            return _error(422, str(exc))
        except StoreError as exc:
            log.error("store: %s", exc)
            return _error(503, f"store unavailable: {exc}")
        except (BodycamError, ValueError) as exc:
            return _error(400, str(exc))
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # noqa: BLE001 - the client gets a message, the log the trace
            log.exception("archive request %s %s failed", request.method, request.path)
            return _error(500, "internal error; see the archive service's log")

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=MAX_JSON)
        app.router.add_get("/v1/health", self.health)
        app.router.add_get("/v1/blobs/{digest}", self.blob_state)
        app.router.add_put("/v1/blobs/{digest}", self.upload)
        app.router.add_post("/v1/commits", self.commit)
        app.router.add_post("/v1/segments/received", self.received)
        return app

    # -- handlers -------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        agency = request[AGENCY]
        return web.json_response({"status": "ok", "archive": agency.archive_id, "agency": agency.id,
                                  "dock": request[DOCK]})

    def _digest(self, request: web.Request) -> str:
        digest = request.match_info["digest"]
        if len(digest) != 64 or not set(digest) <= HEX:
            raise web.HTTPBadRequest(text=json.dumps({"error": "blob name must be a lower-case SHA-256 hex"}),
                                     content_type="application/json")
        return digest

    def _stored(self, digest: str) -> bool:
        from sqlalchemy import select

        from . import index as ix

        with self.archive.engine.connect() as conn:
            return conn.execute(select(ix.blobs.c.digest).where(
                ix.blobs.c.digest == digest, ix.blobs.c.deleted_utc.is_(None))).first() is not None

    def _staged(self, digest: str) -> tuple[Path, Path]:
        return self.uploads / digest, self.uploads / f"{digest}.part"

    async def blob_state(self, request: web.Request) -> web.Response:
        digest = self._digest(request)
        done, part = self._staged(digest)
        stored = await asyncio.to_thread(self._stored, digest)
        staged = done.stat().st_size if done.exists() else part.stat().st_size if part.exists() else 0
        return web.json_response({"stored": stored, "staged": done.exists(), "staged_bytes": staged})

    async def upload(self, request: web.Request) -> web.Response:
        digest = self._digest(request)
        try:
            offset = int(request.headers.get("Upload-Offset", "0"))
            total = int(request.headers["Upload-Length"])
        except (KeyError, ValueError):
            return _error(400, "Upload-Length (total bytes) and Upload-Offset headers are required integers")
        if not 0 <= offset <= total or total > self.max_upload:
            return _error(413 if total > self.max_upload else 400,
                          f"upload of {total} bytes at offset {offset} refused (limit {self.max_upload})")
        if digest in self._receiving:  # one writer per staged file
            return _error(409, "this blob is being uploaded by another request", staged_bytes=0)
        self._receiving.add(digest)
        try:
            return await self._receive(request, digest, offset, total)
        finally:
            self._receiving.discard(digest)

    async def _receive(self, request: web.Request, digest: str, offset: int, total: int) -> web.Response:
        done, part = self._staged(digest)
        if done.exists():
            await request.release()
            return web.json_response({"staged": True, "staged_bytes": done.stat().st_size})
        have = part.stat().st_size if part.exists() else 0
        if have != offset:
            await request.release()
            return _error(409, f"upload offset {offset} but {have} bytes are staged", staged_bytes=have)
        h = hashlib.sha256() if offset == 0 else None
        got = offset
        def write(f, chunk: bytes) -> None:  # off the event loop: hashing and writing use other cores
            f.write(chunk)
            if h is not None:
                h.update(chunk)

        stalled = False
        with open(part, "ab") as f:
            while True:
                try:
                    async with asyncio.timeout(self.read_timeout):
                        chunk = await request.content.read(CHUNK)
                except TimeoutError:
                    stalled = True  # keep what came (the dock resumes from it), answer, close
                    break
                if not chunk:
                    break
                got += len(chunk)
                if got > total:
                    f.truncate(offset)
                    return _error(400, f"body longer than Upload-Length {total}")
                await asyncio.to_thread(write, f, chunk)
            f.flush()
            await asyncio.to_thread(os.fsync, f.fileno())
        if stalled:
            return _error(408, f"no data for {self.read_timeout:g} s; {got} bytes staged, resume from there",
                          staged_bytes=got)
        if got < total:
            return web.json_response({"staged": False, "staged_bytes": got}, status=202)
        if h is None:
            h = await asyncio.to_thread(_sha256_path, part)
        if h.hexdigest() != digest:
            part.unlink(missing_ok=True)
            return _error(422, f"uploaded bytes hash to {h.hexdigest()}, not {digest}")
        os.replace(part, done)
        return web.json_response({"staged": True, "staged_bytes": got})

    async def commit(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await request.json()
        except TimeoutError:
            return _error(408, f"commit body not received within {self.read_timeout:g} s")
        except (ValueError, UnicodeDecodeError):
            return _error(400, "commit body must be JSON")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"commit body over {MAX_JSON} bytes")
        if not isinstance(body, dict):
            return _error(400, "commit body must be a JSON object")
        names, files = body.get("names"), body.get("files")
        sub_unit = body.get("sub_unit")
        if (not isinstance(names, list) or not all(isinstance(n, str) and ev.SEGMENT_NAME_RE.match(n) for n in names)
                or not isinstance(files, dict) or len(files) > MAX_FILES or len(names) > MAX_FILES):
            return _error(400, "commit needs names (segment names) and files ({path: sha256})")
        if sub_unit is not None and (not isinstance(sub_unit, str) or len(sub_unit) > 200):
            return _error(400, "sub_unit must be text up to 200 characters")
        held = body.get("held")
        if held is not None and (not isinstance(held, list) or len(held) > MAX_FILES or not all(
                isinstance(n, str) and ev.SEGMENT_NAME_RE.match(n) for n in held)):
            return _error(400, f"held must be a list of at most {MAX_FILES} segment names")
        for path, digest in files.items():
            if not isinstance(path, str) or not _valid_path(path):
                return _error(400, f"file path {str(path)[:100]!r} is not one of a recording's")
            if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= HEX:
                return _error(400, f"{path}: not a SHA-256 hex digest")
        if "identity/device.crt" not in files:
            return _error(400, "files must include identity/device.crt")
        source = f"dock:{request[DOCK]}"
        bay = body.get("bay")
        if isinstance(bay, int) and 0 <= bay < 1000:
            source += f":bay{bay}"
        agency = request[AGENCY]
        receipts = await asyncio.to_thread(self._commit, agency.id, files, names, source, sub_unit, held)
        return web.json_response({"receipts": receipts})

    async def received(self, request: web.Request) -> web.Response:
        """Which of the given sealed-segment digests this agency's archive has committed (the
        dock flags a segment the recorder deleted on a receipt this archive never issued)."""
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await request.json()
        except TimeoutError:
            return _error(408, f"body not received within {self.read_timeout:g} s")
        except (ValueError, UnicodeDecodeError):
            return _error(400, "body must be JSON")
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body over {MAX_JSON} bytes")
        digests = body.get("digests") if isinstance(body, dict) else None
        if (not isinstance(digests, list) or len(digests) > MAX_FILES
                or not all(isinstance(d, str) and len(d) == 64 and set(d) <= HEX for d in digests)):
            return _error(400, f"body must be {{\"digests\": [at most {MAX_FILES} lower-case SHA-256 hex]}}")
        found = await asyncio.to_thread(self.archive.received_segments, request[AGENCY].id, digests)
        return web.json_response({"received": sorted(found)})

    def _commit(self, agency: str, files: dict[str, str], names: list[str], source: str,
                sub_unit: str | None, held: list[str] | None = None) -> list[dict[str, str]]:
        recording = temp_recording(self.config)
        try:
            for sub in (ev.IDENTITY_DIR, ev.LOG_DIR, ev.SEGMENTS_DIR):
                (recording / sub).mkdir()
            missing = []
            for path, digest in files.items():
                if not self._lay_out(digest, recording / path):
                    missing.append(path)
            if missing:
                raise ArchiveError(f"not uploaded: {', '.join(missing[:5])}" + (" …" if len(missing) > 5 else ""))
            receipts = self.archive.commit_recording(agency, recording, names, source=source, sub_unit=sub_unit,
                                                     digests=files, held=held)
            for digest in set(files.values()):
                if self._stored(digest):
                    self._staged(digest)[0].unlink(missing_ok=True)
            return receipts
        finally:
            shutil.rmtree(recording, ignore_errors=True)

    def _lay_out(self, digest: str, target: Path) -> bool:
        done, _ = self._staged(digest)
        try:
            os.link(done, target)  # survives another commit removing the staged name
            return True
        except FileNotFoundError:
            pass
        if not self._stored(digest):
            return False
        store = self.archive.store
        if isinstance(store, LocalBlobStore):
            try:
                os.link(store.path(digest), target)
                return True
            except OSError:
                pass
        with store.open(digest) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        return True




def _sha256_path(path: Path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h


class RunningServer(ThreadedSite):
    """The service on its own thread and event loop (tests, the demo, the bench)."""

    thread_name = "archive-service"
    runner_options = {"handler_cancellation": True}

    def __init__(self, archive: Archive, host: str | None = None, port: int | None = None) -> None:
        self.service = ArchiveService(archive)
        super().__init__(host or archive.config.server.listen,
                         archive.config.server.port if port is None else port)

    def app(self) -> web.Application:
        return self.service.app()

    def ssl_context(self) -> ssl.SSLContext:
        return self.service.ssl_context()


def serve_forever(archive: Archive, on_ready=lambda url: None) -> None:
    """``bodycam archive serve``: run until SIGINT/SIGTERM; scrub every
    ``[watch] scrub_every_hours`` meanwhile (Art. 9, 12), logging what it finds."""
    import signal

    from .people_api import RunningPeopleAPI  # people: approvals, viewing, export (archive/people_api.py)

    # The stop handlers come first: under systemd a stop may follow READY=1 at once.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = RunningServer(archive).start()
    people = RunningPeopleAPI(archive).start()
    on_ready(f"{server.url} (docks), {people.url} (people)")

    def scrubber() -> None:
        while not stop.wait(archive.watch.scrub_every_hours * 3600):
            try:
                result = archive.scrub()
                (log.error if result.bad else log.info)("scheduled scrub: %d objects, %d bad",
                                                        result.objects, len(result.bad))
            except Exception:  # noqa: BLE001 - the next scrub tries again; the service goes on
                log.exception("scheduled scrub failed")
    threading.Thread(target=scrubber, name="scrub", daemon=True).start()
    try:
        while not stop.wait(1):
            pass
    finally:
        people.stop()
        server.stop()
