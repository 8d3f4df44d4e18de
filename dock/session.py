"""One docking: authenticate, sync the clock, pull, verify, archive, receipt,
assign, report readiness.  Each step is bounded and resumable.

A recorder is not trusted: names it sends are checked against the formats'
patterns before they touch a path; lists, JSON and files are size-limited;
a transfer longer than announced is cut off.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
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
from device.sealing.report import LogStatus, SegmentStatus
from device.sealing.verifier import Verifier

from .registry import Registry

if TYPE_CHECKING:
    from .archive_client import ArchiveCommitter

MAX_JSON = 1024 * 1024
MAX_LIST = 20_000
MAX_FILE = 4 * 1024 * 1024 * 1024
CHUNK = 1024 * 1024


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
        self._fresh = False  # staging was emptied and pulled again in this session

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

    async def _download(self, http: aiohttp.ClientSession, path: str, target: Path, size: int) -> None:
        """Fetch into ``target``, resuming after what is already there."""
        if not 0 <= size <= MAX_FILE:
            raise SessionError(f"{path}: announced size {size} refused")
        have = target.stat().st_size if target.exists() else 0
        if have > size:
            target.unlink()  # staging copy is longer than the source: start over
            have = 0
        if have == size:
            return
        headers = {"Range": f"bytes={have}-"} if have else {}
        async with http.get(self.url + path, headers=headers) as resp:
            if resp.status not in (200, 206):
                raise SessionError(f"GET {path}: HTTP {resp.status}")
            if have and resp.status != 206:
                have = 0  # the server ignored the range
            mode = "ab" if have else "wb"
            self.progress.bytes_resumed += have
            with open(target, mode) as f:
                got = have
                async for chunk in resp.content.iter_chunked(CHUNK):
                    got += len(chunk)
                    if got > size:
                        raise SessionError(f"{path}: recorder sent more than the {size} bytes it announced")
                    f.write(chunk)
                    self.progress.bytes_pulled += len(chunk)
                f.flush()
                os.fsync(f.fileno())
        if target.stat().st_size != size:
            raise SessionError(f"{path}: got {target.stat().st_size} of {size} bytes")

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
        connector = LinkLocalConnector(ssl=self.identity.tls(), limit=2,
                                       resolver=RecorderResolver(self.address))
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                             raise_for_status=False) as http:
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

        # 3. Pull the seal log, then sealed segments, marked ones first.
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
        for item in listing:
            name = item["name"]
            await self._download(http, f"/v1/seallog/{name}", staging / LOG_DIR / name, item["bytes"])
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
        self.progress.segments_total = len(segments)
        self._phase("pulling segments")
        for item in segments:
            name = item["name"]
            await self._download(http, f"/v1/segments/{name}{MANIFEST_SUFFIX}",
                                 staging / SEGMENTS_DIR / f"{name}{MANIFEST_SUFFIX}", int(item["manifest_bytes"]))
            await self._download(http, f"/v1/segments/{name}{SEGMENT_SUFFIX}",
                                 staging / SEGMENTS_DIR / f"{name}{SEGMENT_SUFFIX}", int(item["segment_bytes"]))

        # 4. Verify at ciphertext level; the dock holds no decryption key.
        self._phase("verifying")
        report, _ = Verifier(self.identity.ca_cert).verify_recording(staging)
        log = report.seal_log
        resumed_bad = not log.usable or any(not s.acceptable(allow_incomplete=True) for s in report.segments)
        if resumed_bad and self.progress.bytes_resumed and not self._fresh:
            # A resumed copy may begin with bytes of an older file (the dock's leftover):
            # pull everything again from scratch, once, before judging the recorder.
            logging.getLogger(__name__).warning(
                "bay %s: %s: verification failed after resuming; pulling again from scratch", self.bay, device)
            shutil.rmtree(staging)
            self._fresh = True
            self.progress.bytes_resumed = 0
            return await self._run(http)
        if not log.usable:
            raise SessionError(f"seal log does not verify: {'; '.join(log.reasons)}")
        if log.status is LogStatus.BROKEN:  # the good prefix still places segments
            self.progress.flagged.append(f"seal log: {'; '.join(log.reasons)}")
        head = self.registry.head(device)
        if head is not None:
            seen = log.head_seq if log.head_seq is not None else -1
            if seen < head[0]:
                raise SessionError(f"seal log rolled back: head {seen} is before the {head[0]} seen at the last docking")
            if not self._log_has(staging, head):
                raise SessionError(f"seal log rewritten: entry {head[0]} differs from the one seen at the last docking")
        names = [s["name"] for s in segments]
        bad = {s.name: s for s in report.segments if s.name in names and not s.acceptable(allow_incomplete=True)}
        for name, seg in bad.items():
            self.progress.flagged.append(f"{name}: {seg.status}: {'; '.join(seg.reasons)}")
        others = [s for s in report.segments if s.problem and s.name not in names]
        for seg in others:
            self.progress.flagged.append(f"{seg.name}: {seg.status}: {'; '.join(seg.reasons)}")
        deleted = [s for s in report.segments if s.status is SegmentStatus.DELETED]
        asked = [s.digest for s in deleted if s.digest]
        received = await asyncio.to_thread(self.archive.received, asked) if asked else set()
        for seg in deleted:  # deleted on a receipt this archive never issued
            if seg.digest not in received:
                self.progress.flagged.append(f"{seg.name}: deleted on the recorder, but the archive "
                                             "never received it")

        # 5. Commit to the archive, then hand the receipts to the recorder.
        self._phase("archiving")
        good = [n for n in names if n not in bad]
        officer = self.registry.officer(info.get("officer") or next((s.officer for s in report.segments if s.officer), ""))
        if officer is not None:
            self.progress.officer, self.progress.officer_name = officer.officer, officer.name
        receipts = await asyncio.to_thread(
            self.archive.commit, staging, good, source=f"dock:{self.identity.dock_id}:bay{self.bay}",
            department=officer.department if officer else None)
        self.progress.segments_archived = len(receipts)
        # The archive may share the staged files' inodes (hard links): drop the
        # staging names now, so that no later write to staging can reach a blob.
        for receipt in receipts:
            payload = json.loads(base64.b64decode(receipt["payload"]))
            for suffix in (SEGMENT_SUFFIX, MANIFEST_SUFFIX):
                (staging / SEGMENTS_DIR / f"{payload['segment']}{suffix}").unlink(missing_ok=True)
        self._phase("receipts")
        for receipt in receipts:
            status, text = await self._post(http, "/v1/receipts", receipt)
            if status == 200 or status == 410:  # 410: already deleted at an earlier docking
                self.progress.segments_deleted += status == 200
            else:
                raise SessionError(f"recorder refused a receipt: HTTP {status} {text}")
        if log.head_seq is not None:
            self.registry.set_head(device, log.head_seq, log.head_digest or "")

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
