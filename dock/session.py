"""One docking: authenticate, sync the clock, pull, verify, archive, receipt,
assign, report readiness.  Each step is bounded and resumable.  Pulling the
segments, verifying them, committing them and handing over receipts overlap
(docs/format.md §13, "A docking").

A recorder is not trusted: names it sends are checked against the formats'
patterns before they touch a path; lists, JSON and files are size-limited;
a transfer longer than announced is cut off.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding

from bodycam.errors import BodycamError
from device.sealing.clock import utc_text
from device.sealing import pki
from device.sealing.messages import CTX_ASSIGNMENT, CTX_CLOCK_SYNC, sign_message
from device.sealing.sealer import MANIFEST_SUFFIX, SEGMENT_NAME_RE as NAME_RE, SEGMENT_SUFFIX, SEGMENTS_DIR
from device.sealing.seallog import LOG_DIR, LOG_FILE_RE, scan_log
from device.sealing.report import LogStatus, RecordingReport, SegmentReport, SegmentStatus
from device.sealing.verifier import Verifier

from .registry import Registry

if TYPE_CHECKING:
    from .archive_client import ArchiveCommitter

log = logging.getLogger(__name__)
MAX_JSON = 1024 * 1024
MAX_LIST = 20_000
MAX_FILE = 4 * 1024 * 1024 * 1024
CHUNK = 1024 * 1024
# A batch (one archive commit) carries at least 1/MAX_BATCHES of the docking's footage and
# at least BATCH_MIN_BYTES (unless the pull is done): each costs the dock and the archive a
# verification of the whole seal log (which grows with the recorder's age), the archive an
# index transaction and the archive client its connections; smaller batches shorten what is
# left after the pull.
MAX_BATCHES = 8
BATCH_MIN_BYTES = 16 * 1024 * 1024  # ~0.4 s of a 40 MB/s link: hides a commit's fixed costs
READ_BUFFER = WRITE_BUFFER = 4 * 1024 * 1024  # bytes per read or write call on staged files


class SessionError(BodycamError, RuntimeError):
    """The docking cannot go on; the reason is shown on the bay."""


@dataclass
class Progress:
    bay: int
    device: str | None = None
    phase: str = "connecting"
    bytes_pulled: int = 0
    bytes_resumed: int = 0
    segments_total: int = 0
    segments_archived: int = 0
    segments_deleted: int = 0
    flagged: list[str] = field(default_factory=list)
    ready: bool | None = None
    readiness: list[str] = field(default_factory=list)
    outcome: str | None = None
    clock_offset_ms: float | None = None
    # Who has the recorder: the officer it came back from, then the one it was handed out to
    # (from the dock's officer registry, format §17; None when the registry does not know them).
    officer: str | None = None
    officer_name: str | None = None


@dataclass(frozen=True)
class DockIdentity:
    key: Ed25519PrivateKey
    cert: x509.Certificate
    ca_cert: x509.Certificate
    key_path: Path
    cert_path: Path
    ca_path: Path

    @property
    def dock_id(self) -> str:
        return pki.cert_id(self.cert) or ""

    @classmethod
    def load(cls, key: Path, cert: Path, ca: Path) -> "DockIdentity":
        ca_cert = pki.load_cert(ca, "agency CA certificate")
        dock_cert = pki.load_cert(cert, "dock certificate")
        pki.check_cert(dock_cert, ca_cert, pki.ROLE_DOCK, str(cert))
        return cls(pki.load_ed25519_key(key, "dock key"), dock_cert, ca_cert, key, cert, ca)

    def tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_path))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False  # link-local address; the certificate's role and CN are checked
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx


class RecorderResolver(AbstractResolver):
    """Requests go to the name ``recorder``, resolved here to the bay's address.

    A link-local address needs its zone (fe80::ff:fe00:1%usb1); written in a
    URL, aiohttp takes it for an IP literal and mangles the zone, so the
    address never appears in the URL at all.
    """

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_UNSPEC):
        infos = await asyncio.get_running_loop().getaddrinfo(
            self.address, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        return [{"hostname": host, "host": self.address, "port": port, "family": fam,
                 "proto": proto, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV}
                for fam, _, proto, _, _ in infos]

    async def close(self) -> None:
        pass


class LinkLocalConnector(aiohttp.TCPConnector):
    """aiohttp 3 builds IPv6 socket addresses with scope id 0, but a recorder is
    reached at a link-local address that needs its link's scope id.  This
    overrides a private method; tests/test_dock_udev.py docks over a real
    link-local veth link, so an aiohttp change that breaks it is caught."""

    def _convert_hosts_to_addr_infos(self, hosts):  # type: ignore[override]
        infos = []
        for family, kind, proto, canon, addr in super()._convert_hosts_to_addr_infos(hosts):
            if family == socket.AF_INET6 and "%" in addr[0]:
                host, _, zone = addr[0].partition("%")
                addr = (host, addr[1], 0, socket.if_nametoindex(zone))
            infos.append((family, kind, proto, canon, addr))
        return infos


class DockSession:
    def __init__(self, *, identity: DockIdentity, url: str, bay: int, expected_device: str | None,
                 archive: ArchiveCommitter, registry: Registry, staging: Path,
                 shift_minutes: int = 600, require_clock_synced: bool = True,
                 on_progress: Callable[[Progress], None] = lambda p: None,
                 timeout: float = 30.0) -> None:
        self.identity = identity
        parsed = yarl.URL(url)  # the host may carry a link-local zone: [fe80::…%25usb1]
        self.address, self.port = parsed.host or "", parsed.port or 8443
        self.url = f"https://recorder:{self.port}"
        self.bay = bay
        self.expected_device = expected_device
        self.archive = archive
        self.registry = registry
        self.staging_root = staging
        self.shift_minutes = shift_minutes
        self.require_clock_synced = require_clock_synced
        self.progress = Progress(bay)
        self._report = on_progress
        self.timeout = timeout
        self._pulled = False  # every segment has landed; the tail's phases may show

    def _phase(self, phase: str) -> None:
        self.progress.phase = phase
        self._report(self.progress)

    # -- HTTP with limits ---------------------------------------------------------------------

    async def _json(self, http: aiohttp.ClientSession, path: str) -> Any:
        async with http.get(self.url + path) as resp:
            if resp.status != 200:
                raise SessionError(f"GET {path}: HTTP {resp.status}: {(await resp.content.read(300)).decode(errors='replace')}")
            body = await _read_at_most(resp, MAX_JSON + 1)
            if len(body) > MAX_JSON:
                raise SessionError(f"GET {path}: response over {MAX_JSON} bytes refused")
            try:
                return json.loads(body)
            except ValueError:
                raise SessionError(f"GET {path}: response is not JSON") from None

    async def _post(self, http: aiohttp.ClientSession, path: str, message: dict) -> tuple[int, str]:
        async with http.post(self.url + path, json=message) as resp:
            return resp.status, (await resp.content.read(2000)).decode(errors="replace")

    async def _download(self, http: aiohttp.ClientSession, path: str, target: Path, size: int,
                        *, fresh: bool = False) -> int:
        """Fetch ``path`` into ``target``, resuming after what is already there (unless
        ``fresh``); returns the bytes taken from the copy staged before.

        Not fsync'd here (that would stall the link): ``_Views.make(sync=True)``
        syncs each file before it is verified or committed; a copy torn by a power
        cut fails verification and is pulled again from scratch.  A staged file
        with another name (hard-linked into the archive's store by an earlier
        commit) is never written to: it is replaced.  Raises SessionError for a
        size out of bounds, an HTTP error, or more or fewer bytes than announced.
        """
        if not 0 <= size <= MAX_FILE:
            raise SessionError(f"{path}: announced size {size} refused")
        have = 0
        try:
            st = target.stat()
        except FileNotFoundError:
            pass
        else:
            have = st.st_size
            if fresh or have > size or (have < size and st.st_nlink > 1):
                target.unlink()  # start over: asked to, longer than the source, or shared
                have = 0
        if have == size:
            self.progress.bytes_resumed += have
            return have
        headers = {"Range": f"bytes={have}-"} if have else {}
        async with http.get(self.url + path, headers=headers) as resp:
            if resp.status not in (200, 206):
                raise SessionError(f"GET {path}: HTTP {resp.status}")
            if have and resp.status != 206:
                have = 0  # the server ignored the range
            self.progress.bytes_resumed += have
            with open(target, "ab" if have else "wb", buffering=WRITE_BUFFER) as f:
                got = have
                async for chunk in resp.content.iter_chunked(CHUNK):
                    got += len(chunk)
                    if got > size:
                        raise SessionError(f"{path}: recorder sent more than the {size} bytes it announced")
                    f.write(chunk)
                    self.progress.bytes_pulled += len(chunk)
        if target.stat().st_size != size:
            raise SessionError(f"{path}: got {target.stat().st_size} of {size} bytes")
        return have

    async def _peer_certificate(self) -> x509.Certificate:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.address, self.port, ssl=self.identity.tls()), self.timeout)
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
        return x509.load_der_x509_certificate(der)

    # -- the docking -----------------------------------------------------------------------------

    async def run(self) -> Progress:
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=self.timeout)
        connector = LinkLocalConnector(ssl=self.identity.tls(), limit=3,  # pull, receipts, a pull again
                                       resolver=RecorderResolver(self.address))
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False,
                                             read_bufsize=CHUNK) as http:
                await self._run(http)
            self.progress.outcome = "done"
        except (SessionError, BodycamError) as exc:
            self.progress.outcome = f"failed: {exc}"
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ssl.SSLError) as exc:
            self.progress.outcome = f"link lost: {exc.__class__.__name__}: {exc}"
            raise SessionError(self.progress.outcome) from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # Whatever else a recorder can send that our checks missed: the session still
            # ends, with an outcome and a reason, never a bay stuck in its last phase.  The
            # same exceptions are also what a defect in the dock raises, so the outcome does
            # not blame the recorder alone and the trace goes to the log.
            logging.getLogger(__name__).exception("bay %s: unexpected %s in phase %r", self.bay,
                                                  exc.__class__.__name__, self.progress.phase)
            self.progress.outcome = (f"failed in phase {self.progress.phase!r}: {exc.__class__.__name__}: {exc} "
                                     "(something malformed from the recorder, or a defect in the dock; "
                                     "the trace is in the dock's log)")
            raise SessionError(self.progress.outcome) from None
        finally:
            if self.progress.outcome is None:  # cancelled, or a bug: still an outcome
                self.progress.outcome = f"failed: stopped in phase {self.progress.phase!r}"
            if self.progress.outcome != "done":
                self.progress.phase = "failed"
            self._report(self.progress)
        return self.progress

    async def _run(self, http: aiohttp.ClientSession) -> None:
        # 1. Authenticate: TLS (both ways) checks the chains to the agency CA;
        # the recorder certificate's role and ID are checked on a handshake of
        # our own, and /v1/identity must name the same device.
        cert = await self._peer_certificate()
        pki.check_cert(cert, self.identity.ca_cert, pki.ROLE_DEVICE, "recorder")
        device = pki.cert_id(cert) or ""
        if self.expected_device and device != self.expected_device:
            raise SessionError(f"recorder certificate is for {device}, the USB serial says {self.expected_device}")
        self.progress.device = device
        info = _object(await self._json(http, "/v1/identity"), "/v1/identity")
        if info.get("device") != device:
            raise SessionError(f"recorder says it is {info.get('device')!r}, its certificate says {device}")
        staging = self.staging_root / device
        for sub in (pki.IDENTITY_DIR, LOG_DIR, SEGMENTS_DIR):
            (staging / sub).mkdir(parents=True, exist_ok=True)
        views = _Views(staging, self.staging_root / VIEWS_DIR / device, info.get("officer") or None)
        if views.root.exists():
            shutil.rmtree(views.root)  # hard links left by an interrupted session: names only
        (staging / pki.IDENTITY_DIR / pki.DEVICE_CERT).write_bytes(cert.public_bytes(Encoding.PEM))

        # 2. Clock: measure (four timestamps), record, then set.
        self._phase("clock")
        t1 = time.time_ns()
        t = _object(await self._json(http, "/v1/time"), "/v1/time")
        t4 = time.time_ns()
        t2, t3 = _integer(t, "t2_ns", "/v1/time"), _integer(t, "t3_ns", "/v1/time")
        offset = ((t2 - t1) + (t3 - t4)) // 2  # recorder minus dock
        delay = (t4 - t1) - (t3 - t2)
        self.progress.clock_offset_ms = offset / 1e6
        message = sign_message(self.identity.key, self.identity.cert, {
            # Nanoseconds as decimal strings: they may exceed JSON's exact integers (format §2.1).
            "ctx": CTX_CLOCK_SYNC, "device": device, "offset_ns": str(-offset), "measured_offset_ns": str(offset),
            "delay_ns": str(delay), "dock_utc": utc_text(dt.datetime.now(dt.timezone.utc)), "bay": self.bay})
        status, text = await self._post(http, "/v1/clock", message)
        if status != 200:
            raise SessionError(f"recorder refused the clock sync: HTTP {status} {text}")

        # 3. Pull the seal log; verify it before any segment is pulled.
        self._phase("pulling seal log")
        listing = _object(await self._json(http, "/v1/seallog"), "/v1/seallog").get("files")
        if not isinstance(listing, list) or len(listing) > MAX_LIST:
            raise SessionError("seal-log listing refused: 'files' is not a list of at most "
                               f"{MAX_LIST} entries")
        for item in listing:
            name = _object(item, "/v1/seallog entry").get("name", "")
            if not isinstance(name, str) or not LOG_FILE_RE.match(name):
                raise SessionError(f"recorder offered a seal-log file with a bad name {name!r}")
            _integer(item, "bytes", f"/v1/seallog {name}")
        # The dock's own leftovers: staged copies the recorder no longer offers (from a
        # refused or interrupted session) would be verified as if they were part of
        # this recording.  They are copies; the originals are on the recorder or archived.
        self._prune(staging / LOG_DIR, {i["name"] for i in listing})
        resumed = await self._pull_log(http, staging, listing, fresh=False)
        segments = _object(await self._json(http, "/v1/segments"), "/v1/segments").get("segments")
        if not isinstance(segments, list) or len(segments) > MAX_LIST:
            raise SessionError(f"segment listing refused: 'segments' is not a list of at most {MAX_LIST} entries")
        for item in segments:
            if not isinstance(_object(item, "/v1/segments entry").get("name"), str) or not NAME_RE.match(item["name"]):
                raise SessionError(f"recorder offered a segment with a bad name {item.get('name')!r}")
            _integer(item, "segment_bytes", f"/v1/segments {item['name']}")
            _integer(item, "manifest_bytes", f"/v1/segments {item['name']}")
        self._prune(staging / SEGMENTS_DIR, {f"{s['name']}{suffix}" for s in segments
                                             for suffix in (SEGMENT_SUFFIX, MANIFEST_SUFFIX)})
        segments.sort(key=lambda s: (not s.get("marked"), s["name"]))
        views.held = [s["name"] for s in segments]
        self.progress.segments_total = len(segments)

        # 4. Verify at ciphertext level; the dock holds no decryption key.  The seal log
        # first (a view of the recording without its segments), each segment as it lands.
        self._phase("verifying")
        report = await asyncio.to_thread(lambda: self._verify(views.make([], sync=True)))
        if not report.seal_log.usable and resumed:
            # A resumed copy may begin with bytes of an older file (the dock's leftover):
            # pull the seal log again from scratch, once, before judging the recorder.
            log.warning("bay %s: %s: seal log failed verification after resuming; pulling it again from "
                        "scratch", self.bay, device)
            self.progress.bytes_resumed -= resumed
            await self._pull_log(http, staging, listing, fresh=True)
            report = await asyncio.to_thread(lambda: self._verify(views.make([], sync=True)))
        seal_log = report.seal_log
        if not seal_log.usable:
            raise SessionError(f"seal log does not verify: {'; '.join(seal_log.reasons)}")
        if seal_log.status is LogStatus.BROKEN:  # the good prefix still places segments
            self.progress.flagged.append(f"seal log: {'; '.join(seal_log.reasons)}")
        head = self.registry.head(device)
        if head is not None:
            seen = seal_log.head_seq if seal_log.head_seq is not None else -1
            if seen < head[0]:
                raise SessionError(f"seal log rolled back: head {seen} is before the {head[0]} seen at the last docking")
            if not self._log_has(staging, head):
                raise SessionError(f"seal log rewritten: entry {head[0]} differs from the one seen at the last docking")
        views.shared = await asyncio.to_thread(views.digests, [])
        names = {s["name"] for s in segments}
        for seg in report.segments:  # named by the log, neither offered nor deleted
            if seg.problem and seg.name not in names:
                self.progress.flagged.append(f"{seg.name}: {seg.status}: {'; '.join(seg.reasons)}")
        deleted = [s for s in report.segments if s.status is SegmentStatus.DELETED]
        asked = [s.digest for s in deleted if s.digest]
        received = await asyncio.to_thread(self.archive.received, asked) if asked else set()
        for seg in deleted:  # deleted on a receipt this archive never issued
            if seg.digest not in received:
                self.progress.flagged.append(f"{seg.name}: deleted on the recorder, but the archive "
                                             "never received it")

        # 5. Pull the segments, marked ones first; meanwhile verify and commit to the
        # archive what has landed, and hand the receipts of earlier commits to the recorder.
        self._phase("pulling segments")
        landed: asyncio.Queue[_Staged | None] = asyncio.Queue()
        footage = sum(int(s["segment_bytes"]) + int(s["manifest_bytes"]) for s in segments)
        batch_bytes = max(footage // MAX_BATCHES, BATCH_MIN_BYTES)
        receipted: asyncio.Queue[list[dict[str, str]] | None] = asyncio.Queue()
        stages = [asyncio.create_task(self._pull_segments(http, staging, segments, landed)),
                  asyncio.create_task(self._keep(http, views, landed, receipted, batch_bytes)),
                  asyncio.create_task(self._hand_receipts(http, staging, receipted))]
        try:
            done, _ = await asyncio.wait(stages, return_when=asyncio.FIRST_EXCEPTION)
            for task in stages:
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:  # a failed stage stops the others; nothing is left running
            for task in stages:
                task.cancel()
            await asyncio.gather(*stages, return_exceptions=True)
        if views.commits == 0:
            # Nothing to archive, but the archive still reads this docking's seal log: its chain of
            # custody (deletions on earlier receipts, footage gone without one, hand-outs) and the
            # log-head attestation it signs at every docking (format §12.1, §14).
            self._phase("archiving")
            folder = await asyncio.to_thread(views.make, [])
            await asyncio.to_thread(self.archive.commit, folder, [],
                                    source=f"dock:{self.identity.dock_id}:bay{self.bay}", department=None,
                                    digests=dict(views.shared), held=views.held)
            shutil.rmtree(folder)
        shutil.rmtree(views.root)
        if seal_log.head_seq is not None:
            self.registry.set_head(device, seal_log.head_seq, seal_log.head_digest or "")

        # 6. Readiness for a shift is a decision, taken before anything is handed out:
        # a recorder that cannot cover the shift gets no officer, and is told why
        # (its LEDs show it), as the bay's status board does.
        self._phase("readiness")
        health = _object(await self._json(http, "/v1/health"), "/v1/health")
        self._readiness(health)
        pending = self.registry.pending(self.bay)
        if pending is not None and not self.progress.ready:
            self.progress.readiness.append(f"not assigned to officer {pending.officer}: not ready")
        status, text = await self._post(http, "/v1/readiness", {
            "ready": bool(self.progress.ready), "reasons": self.progress.readiness[:MAX_REASONS],
            "bay": self.bay, "shift_minutes": self.shift_minutes})
        if status != 200:
            self.progress.flagged.append(f"recorder did not take the readiness verdict: HTTP {status} {text[:200]}")
        if pending is not None and self.progress.ready:
            self._phase("assigning")
            message = sign_message(self.identity.key, self.identity.cert, {
                "ctx": CTX_ASSIGNMENT, "device": device, "officer": pending.officer, "name": pending.name,
                "department": pending.department, "certificate": pending.certificate,
                "valid_until": pending.valid_until, "bay": self.bay})
            status, text = await self._post(http, "/v1/assignment", message)
            if status != 200:
                raise SessionError(f"recorder refused the assignment: HTTP {status} {text}")
            self.registry.clear_checkout(self.bay)
            self.progress.officer, self.progress.officer_name = pending.officer, pending.name
        self._phase("done")

    async def _pull_log(self, http: aiohttp.ClientSession, staging: Path, listing: list[dict[str, Any]],
                        *, fresh: bool) -> int:
        """Pull every seal-log file in ``listing``; returns the bytes taken from copies staged before."""
        resumed = 0
        for item in listing:
            name = item["name"]
            resumed += await self._download(http, f"/v1/seallog/{name}", staging / LOG_DIR / name,
                                            item["bytes"], fresh=fresh)
        return resumed

    async def _pull_segment(self, http: aiohttp.ClientSession, staging: Path, item: dict[str, Any],
                            *, fresh: bool = False) -> "_Staged":
        resumed = 0
        for suffix, size in ((MANIFEST_SUFFIX, "manifest_bytes"), (SEGMENT_SUFFIX, "segment_bytes")):
            file = f"{item['name']}{suffix}"
            resumed += await self._download(http, f"/v1/segments/{file}", staging / SEGMENTS_DIR / file,
                                            int(item[size]), fresh=fresh)
        return _Staged(item["name"], item, resumed, int(item["segment_bytes"]) + int(item["manifest_bytes"]))

    async def _pull_segments(self, http: aiohttp.ClientSession, staging: Path, segments: list[dict[str, Any]],
                             landed: "asyncio.Queue[_Staged | None]") -> None:
        for item in segments:
            await landed.put(await self._pull_segment(http, staging, item))
        self._pulled = True
        self._phase("archiving")  # what is left: the last batches' verification, commit and receipts
        await landed.put(None)

    async def _keep(self, http: aiohttp.ClientSession, views: "_Views", landed: "asyncio.Queue[_Staged | None]",
                    receipted: "asyncio.Queue[list[dict[str, str]] | None]", batch_bytes: int) -> None:
        """Verify and commit what has landed, one batch at a time, until the pull says it
        is done (None); the receipts go to ``receipted``.  A batch is all that landed
        meanwhile, once that is ``batch_bytes`` (or the pull is done)."""
        done = False
        while not done:
            staged: list[_Staged] = []
            while not done and (not staged or sum(s.size for s in staged) < batch_bytes or not landed.empty()):
                item = await landed.get()
                if item is None:
                    done = True
                else:
                    staged.append(item)
            if staged:
                await receipted.put(await self._archive_batch(http, views, staged))
        await receipted.put(None)

    async def _hand_receipts(self, http: aiohttp.ClientSession, staging: Path,
                             receipted: "asyncio.Queue[list[dict[str, str]] | None]") -> None:
        """Hand each receipt to the recorder, then drop the segment's staged copy.  Until
        then the copy stays (it may share its inode with the archive's blob, and is
        never written to again: see :meth:`_download`), so a docking cut here does not
        pull that segment again."""
        while (receipts := await receipted.get()) is not None:
            if self._pulled:
                self._phase("receipts")
            for receipt in receipts:
                status, text = await self._post(http, "/v1/receipts", receipt)
                if status == 200 or status == 410:  # 410: already deleted at an earlier docking
                    self.progress.segments_deleted += status == 200
                else:
                    raise SessionError(f"recorder refused a receipt: HTTP {status} {text}")
                name = json.loads(base64.b64decode(receipt["payload"])).get("segment")
                if isinstance(name, str) and NAME_RE.match(name):
                    for suffix in (SEGMENT_SUFFIX, MANIFEST_SUFFIX):
                        (staging / SEGMENTS_DIR / f"{name}{suffix}").unlink(missing_ok=True)

    async def _archive_batch(self, http: aiohttp.ClientSession, views: "_Views",
                             staged: list["_Staged"]) -> list[dict[str, str]]:
        """Verify ``staged``, commit those that pass; returns the archive's receipts."""
        if self._pulled:
            self._phase("archiving")
        reports = await asyncio.to_thread(self._verify_segments, views, staged)
        again = [s for s in staged if not _acceptable(reports.get(s.name)) and s.resumed]
        if again:
            # A resumed copy may begin with bytes of an older file (the dock's leftover):
            # pull it again from scratch, once, before judging the recorder.
            log.warning("bay %s: %s failed verification after resuming; pulling again from scratch",
                        self.bay, ", ".join(s.name for s in again))
            fresh = []
            for s in again:
                self.progress.bytes_resumed -= s.resumed
                fresh.append(await self._pull_segment(http, views.staging, s.item, fresh=True))
            reports.update(await asyncio.to_thread(self._verify_segments, views, fresh))
            staged = [next((f for f in fresh if f.name == s.name), s) for s in staged]
        good = []
        for s in staged:
            rep = reports.get(s.name)
            if _acceptable(rep):
                good.append(s)
            elif rep is None:
                self.progress.flagged.append(f"{s.name}: not verified: the seal log does not place it")
            else:
                self.progress.flagged.append(f"{s.name}: {rep.status}: {'; '.join(rep.reasons)}")
        if not good:
            return []
        if views.officer is None:
            views.officer = next((reports[s.name].officer for s in good if reports[s.name].officer), None)
        officer = self.registry.officer(views.officer or "")
        if officer is not None:
            self.progress.officer, self.progress.officer_name = officer.officer, officer.name
        names = [s.name for s in good]
        views.commits += 1
        folder = await asyncio.to_thread(views.make, names)
        receipts = await asyncio.to_thread(
            self.archive.commit, folder, names, source=f"dock:{self.identity.dock_id}:bay{self.bay}",
            department=officer.department if officer else None,
            digests={**views.shared, **{path: d for s in good for path, d in s.digests.items()}}, held=views.held)
        self.progress.segments_archived += len(receipts)
        shutil.rmtree(folder)
        self._report(self.progress)
        return receipts

    def _verify(self, folder: Path) -> RecordingReport:
        report, _ = Verifier(self.identity.ca_cert).verify_recording(folder)
        shutil.rmtree(folder)
        return report

    def _verify_segments(self, views: "_Views", staged: list["_Staged"]) -> dict[str, SegmentReport]:
        """The verdict on each of ``staged`` (absent: the seal log does not place it); the
        files of those that pass get their SHA-256 (read while still in the page cache)."""
        names = {s.name for s in staged}
        report = self._verify(views.make(sorted(names), sync=True))
        reports = {r.name: r for r in report.segments if r.name in names}
        for s in staged:
            if _acceptable(reports.get(s.name)):
                s.digests = views.digests([s.name])
        return reports

    def _prune(self, folder: Path, offered: set[str]) -> None:
        for path in folder.iterdir():
            if path.name not in offered:
                logging.getLogger(__name__).info("bay %s: dropping stale staged copy %s", self.bay, path)
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()

    def _log_has(self, staging: Path, head: tuple[int, str]) -> bool:
        for entry, _ in scan_log(staging / LOG_DIR).entries:
            if entry.seq == head[0]:
                return entry.digest.hex() == head[1]
        return False

    def _readiness(self, health: dict[str, Any]) -> None:
        """The verdict: ready only if battery, storage, clock and the recorder's own checks
        cover ``shift_minutes``.  Every reason is kept (shown on the bay and the recorder)."""
        self.progress.readiness = readiness_reasons(health, self.shift_minutes, self.require_clock_synced)
        self.progress.ready = not self.progress.readiness


VIEWS_DIR = ".views"  # under the staging root: per-batch views of a recording (hard links)


@dataclass
class _Staged:
    """One segment's files, landed in staging."""
    name: str
    item: dict[str, Any]  # the recorder's listing entry
    resumed: int  # bytes taken from copies staged before this session
    size: int = 0  # bytes of both files
    digests: dict[str, str] = field(default_factory=dict)  # {path in the recording: SHA-256 hex}


@dataclass
class _Views:
    """Recording folders that hold the staged certificate and seal log and only the
    named segments, as hard links: what the dock verifies and the archive commits
    while other segments are still arriving (a partial file is in no view)."""
    staging: Path
    root: Path
    officer: str | None  # whose department the commits name (the recorder's, else the footage's)
    shared: dict[str, str] = field(default_factory=dict)  # digests of the certificate and seal log
    held: list[str] = field(default_factory=list)  # every segment the recorder listed (the archive's custody check)
    commits: int = 0  # commits made from these views at this docking
    made: int = 0
    copying: bool = False  # hard links failed once: views are copies

    def files(self, names: list[str]) -> list[str]:
        """Paths in the recording: the certificate and seal log without ``names``, else
        the named segments' files."""
        if names:
            return [f"{SEGMENTS_DIR}/{n}{suffix}" for n in names for suffix in (SEGMENT_SUFFIX, MANIFEST_SUFFIX)]
        return [f"{pki.IDENTITY_DIR}/{pki.DEVICE_CERT}"] + [
            f"{LOG_DIR}/{p.name}" for p in sorted((self.staging / LOG_DIR).iterdir()) if LOG_FILE_RE.match(p.name)]

    def make(self, names: list[str], *, sync: bool = False) -> Path:
        """A new view with the certificate, the seal log and the ``names`` segments; with
        ``sync``, the staged files are made durable first (they were not as they landed)."""
        self.made += 1
        folder = self.root / str(self.made)
        for sub in (pki.IDENTITY_DIR, LOG_DIR, SEGMENTS_DIR):
            (folder / sub).mkdir(parents=True)
        for path in self.files([]) + (self.files(names) if names else []):
            if sync:
                fd = os.open(self.staging / path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            try:
                os.link(self.staging / path, folder / path)
            except OSError as exc:  # a file system without hard links (FAT, some network shares)
                if not self.copying:
                    log.warning("%s: no hard links (%s): the dock copies staged files instead",
                                self.root, exc.strerror)
                    self.copying = True
                shutil.copyfile(self.staging / path, folder / path)
        return folder

    def digests(self, names: list[str]) -> dict[str, str]:
        return {path: _sha256_file(self.staging / path) for path in self.files(names)}


def _acceptable(report: SegmentReport | None) -> bool:
    return report is not None and report.acceptable(allow_incomplete=True)


MAX_REASONS = 10


def readiness_reasons(health: dict[str, Any], shift_minutes: int, require_clock_synced: bool) -> list[str]:
    """Why a recorder cannot go out for a shift of ``shift_minutes`` (empty: it can).

    ``health`` is the recorder's /v1/health answer: {"health": snapshot, "clock_state": ...}.
    Nothing known is nothing proven: a recorder that reports no health, no
    battery reading or an implausible one is refused.  A charging battery
    counts for its charge at the recording draw, not for being on the charger.
    """
    snap = health.get("health")
    if not isinstance(snap, dict):
        return ["the recorder reports no health"]
    reasons = []
    battery = snap.get("battery")
    at_draw = snap.get("battery_minutes_recording")
    if snap.get("battery_implausible"):
        reasons.append(f"battery reading implausible: {str(snap['battery_implausible'])[:120]}")
    elif not isinstance(battery, dict):
        reasons.append(f"no battery reading ({snap.get('battery_error') or 'no gauge'})")
    else:
        minutes = [m for m in (at_draw, None if battery.get("charging") else battery.get("minutes_left"))
                   if isinstance(m, int)]
        if not minutes:
            reasons.append("the battery gives no minutes left")
        elif min(minutes) < shift_minutes:
            reasons.append(f"battery lasts {min(minutes)} min"
                           + (" (charging)" if battery.get("charging") else "")
                           + f", a shift needs {shift_minutes}")
    storage = snap.get("storage_minutes")
    if not isinstance(storage, int):
        reasons.append("storage unknown")
    elif storage < shift_minutes:
        reasons.append(f"storage holds {storage} min, a shift needs {shift_minutes}")
    if require_clock_synced and health.get("clock_state") != "synced":
        reasons.append(f"clock is {health.get('clock_state')!r}, not synced")
    for name, alive in (("camera", snap.get("camera_alive")), ("microphone", snap.get("microphone_alive"))):
        if alive is False:
            reasons.append(f"{name} is down")
    for fault in snap.get("source_faults") or []:
        reasons.append(f"self-check: {str(fault)[:120]}")
    reasons += selftest_reasons(health.get("selftest"))
    return reasons


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SessionError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _integer(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SessionError(f"{where}: {key!r} must be an integer, got {value!r:.60}")
    return value


def selftest_reasons(summary: Any) -> list[str]:
    """Why the recorder's last self-test (``/v1/health`` "selftest", docs/format.md §16)
    makes it not ready: failed, or unreadable.  None when the recorder sends no
    summary (older software) or has never kept a report; both are not reasons."""
    if not isinstance(summary, dict) or not summary.get("present"):
        return []
    if not summary.get("valid"):
        return [f"last self-test report unreadable: {str(summary.get('error'))[:200]}"]
    if summary.get("passed") is not True:
        failed = ", ".join(str(n)[:40] for n in (summary.get("failed") or [])[:10]) or "?"
        return [f"last self-test ({str(summary.get('time_utc'))[:32]}) failed: {failed}"]
    return []


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read the body up to ``limit`` bytes (``read(n)`` may return less than n)."""
    chunks, size = [], 0
    while size < limit:
        chunk = await resp.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)



def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(READ_BUFFER):
            digest.update(chunk)
    return digest.hexdigest()
