"""The dock's client of the archive service (HTTPS, mutual TLS).

The dock holds no archive key: it uploads the verified recording's files
(content-addressed by SHA-256, resumable, skipped when the archive already
has them) and asks the archive to commit; the archive verifies, stores,
locks and signs the receipts, which the dock passes to the recorder.

Wire: archive/server.py (``GET/PUT /v1/blobs/<sha256>``, ``POST /v1/commits``,
``POST /v1/segments/received``); docs/format.md §13b.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import yarl
from cryptography import x509

from bodycam.errors import BodycamError
from device.sealing import pki
from device.sealing.sealer import MANIFEST_SUFFIX, SEGMENT_SUFFIX, SEGMENTS_DIR
from device.sealing.seallog import LOG_DIR, LOG_FILE_RE

from .session import SessionError

log = logging.getLogger(__name__)
CHUNK = 1 << 20
MAX_JSON = 4 * 1024 * 1024
ATTEMPTS = 5


class ArchiveUnavailable(SessionError):
    """The archive service could not be reached or refused the commit; the
    docking fails and is retried (the recorder keeps its footage meanwhile)."""


class ArchiveCommitter(Protocol):
    """What a dock session needs of the archive."""

    def commit(self, recording: Path, names: list[str], *, source: str, department: str | None = None,
               digests: dict[str, str] | None = None, held: list[str] | None = None) -> list[dict[str, str]]: ...

    def received(self, digests: list[str]) -> set[str]: ...


class ArchiveClient:
    """``commit`` uploads then commits; safe to call again after any failure."""

    def __init__(self, url: str, *, key: Path, certificate: Path, ca: Path, timeout: float = 120.0,
                 parallel: int = 4) -> None:
        self.url = url.rstrip("/")
        self.key, self.certificate, self.ca = Path(key), Path(certificate), Path(ca)
        self.timeout = timeout
        self.parallel = parallel
        self.ca_cert = pki.load_cert(self.ca, "archive CA certificate")

    def tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False  # the certificate's role and CA are checked instead
        ctx.load_cert_chain(self.certificate, self.key)
        return ctx

    # -- the commit ---------------------------------------------------------------------------

    def commit(self, recording: Path, names: list[str], *, source: str, department: str | None = None,
               digests: dict[str, str] | None = None, held: list[str] | None = None) -> list[dict[str, str]]:
        """Upload ``recording``'s files for ``names`` and commit; returns the receipts.

        ``held``: every segment the recorder listed at this docking, for the
        archive's chain of custody (the recording carries only ``names``).

        ``digests`` ({path in the recording, e.g. "segments/<name>.bcseg": SHA-256
        hex}) names files already hashed as they were pulled; those are not read
        again here (the archive checks every claim as it stores).  Raises
        ArchiveUnavailable (the dock retries the docking later; the recorder
        keeps its footage).
        """
        files = self._files(Path(recording), names, digests or {})
        bay = re.search(r":bay(\d+)$", source)
        body = {"names": names, "files": {p: d for p, (d, _, _) in files.items()}, "sub_unit": department,
                "bay": int(bay.group(1)) if bay else None}
        if held is not None:
            body["held"] = list(held)
        last: Exception | None = None
        for attempt in range(ATTEMPTS):
            try:
                return asyncio.run(self._commit(files, body))
            except ArchiveUnavailable:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                last = exc
                log.warning("archive %s attempt %d: %s", self.url, attempt + 1, exc)
        raise ArchiveUnavailable(f"archive {self.url}: {last.__class__.__name__}: {last}")

    def received(self, digests: list[str]) -> set[str]:
        """The subset of ``digests`` (sealed-segment digests, lower-case SHA-256 hex) that the
        archive has committed for this dock's agency, expired ones included.

        Raises ArchiveUnavailable if the archive cannot be reached or answers out of shape.
        """
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        last: Exception | None = None
        for attempt in range(ATTEMPTS):
            try:
                return asyncio.run(self._received(wanted))
            except ArchiveUnavailable:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                last = exc
                log.warning("archive %s attempt %d: %s", self.url, attempt + 1, exc)
        raise ArchiveUnavailable(f"archive {self.url}: {last.__class__.__name__}: {last}")

    async def _received(self, digests: list[str]) -> set[str]:
        timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_read=self.timeout)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.tls()), timeout=timeout) as http:
            await self._check_server(http)
            async with http.post(f"{self.url}/v1/segments/received", json={"digests": digests}) as resp:
                answer = await _json(resp)
                if resp.status != 200:
                    raise ArchiveUnavailable(f"archive refused the segment query: HTTP {resp.status}: "
                                             f"{answer.get('error', answer)}")
        found = answer.get("received")
        if (not isinstance(found, list) or not all(isinstance(d, str) for d in found)
                or not set(found) <= set(digests)):
            raise ArchiveUnavailable("archive answered the segment query with something other than "
                                     "a subset of the digests asked about")
        return set(found)

    def _files(self, recording: Path, names: list[str],
               known: dict[str, str]) -> dict[str, tuple[str, int, Path]]:
        wanted = [recording / pki.IDENTITY_DIR / pki.DEVICE_CERT]
        wanted += [p for p in sorted((recording / LOG_DIR).iterdir()) if LOG_FILE_RE.match(p.name)]
        for name in names:
            wanted += [recording / SEGMENTS_DIR / f"{name}{MANIFEST_SUFFIX}",
                       recording / SEGMENTS_DIR / f"{name}{SEGMENT_SUFFIX}"]
        def digest(path: Path) -> tuple[str, int, Path]:
            claimed = known.get(str(path.relative_to(recording)))
            if claimed is not None:
                return claimed, path.stat().st_size, path
            h, size = hashlib.sha256(), 0
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
            return h.hexdigest(), size, path

        with ThreadPoolExecutor(self.parallel) as pool:  # hashlib releases the GIL: several cores
            return {str(p.relative_to(recording)): d for p, d in zip(wanted, pool.map(digest, wanted))}

    async def _commit(self, files: dict[str, tuple[str, int, Path]], body: dict[str, Any]) -> list[dict[str, str]]:
        timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_read=self.timeout)
        connector = aiohttp.TCPConnector(ssl=self.tls(), limit=self.parallel)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await self._check_server(http)
            queue = {d: (size, path) for d, size, path in files.values()}
            gate = asyncio.Semaphore(self.parallel)

            async def one(digest: str, size: int, path: Path) -> None:
                async with gate:
                    await self._upload(http, digest, size, path)
            await asyncio.gather(*(one(d, s, p) for d, (s, p) in queue.items()))
            async with http.post(f"{self.url}/v1/commits", json=body) as resp:
                answer = await _json(resp)
                if resp.status != 200:
                    raise ArchiveUnavailable(f"archive refused the commit: HTTP {resp.status}: "
                                             f"{answer.get('error', answer)}")
            receipts = answer.get("receipts")
            if not isinstance(receipts, list):
                raise ArchiveUnavailable("archive answered a commit without receipts")
            return receipts

    async def _check_server(self, http: aiohttp.ClientSession) -> None:
        """The server's certificate must have the archive-receipt role of our CA (own handshake)."""
        url = yarl.URL(self.url)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(url.host, url.port, ssl=self.tls()), 15)
        except ssl.SSLError as exc:
            raise ArchiveUnavailable(f"archive {self.url}: TLS: {exc}") from None
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.close()
        try:
            pki.check_cert(x509.load_der_x509_certificate(der), self.ca_cert, pki.ROLE_ARCHIVE_RECEIPT,
                           "archive server certificate")
        except (BodycamError, ValueError) as exc:
            raise ArchiveUnavailable(f"archive {self.url}: {exc}") from None
        async with http.get(f"{self.url}/v1/health") as resp:
            answer = await _json(resp)
            if resp.status != 200:
                raise ArchiveUnavailable(f"archive {self.url}: HTTP {resp.status}: {answer.get('error', answer)}")

    async def _upload(self, http: aiohttp.ClientSession, digest: str, size: int, path: Path) -> None:
        for attempt in range(120):  # resumes, or waits for another dock sending the same bytes
            async with http.get(f"{self.url}/v1/blobs/{digest}") as resp:
                state = await _json(resp)
                if resp.status != 200:
                    raise ArchiveUnavailable(f"archive: blob {digest}: HTTP {resp.status}: {state.get('error')}")
            if state.get("stored") or state.get("staged"):
                return
            offset = int(state.get("staged_bytes", 0))
            if offset > size:
                raise ArchiveUnavailable(f"archive has {offset} bytes staged of a {size}-byte file {path.name}")
            headers = {"Upload-Offset": str(offset), "Upload-Length": str(size),
                       "Content-Type": "application/octet-stream"}
            async with http.put(f"{self.url}/v1/blobs/{digest}", data=_read_from(path, offset),
                                headers=headers) as resp:
                answer = await _json(resp)
                if resp.status == 200:
                    return
                if resp.status in (202, 408, 409):
                    await asyncio.sleep(min(0.5, 0.02 * (attempt + 1)))
                    continue  # resume from what the archive now has
                raise ArchiveUnavailable(f"archive refused {path.name}: HTTP {resp.status}: {answer.get('error')}")
        raise ArchiveUnavailable(f"archive: upload of {path.name} did not complete")


async def _read_from(path: Path, offset: int):
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


async def _json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    chunks, size = [], 0
    while size <= MAX_JSON:
        chunk = await resp.content.read(MAX_JSON + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    data = b"".join(chunks)
    if len(data) > MAX_JSON:
        raise ArchiveUnavailable("archive answer too large")
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {"error": data[:300].decode(errors="replace")}
    return value if isinstance(value, dict) else {"error": "answer is not a JSON object"}
