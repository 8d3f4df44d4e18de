"""The archive as a service: docks commit over mutual TLS; uploads resume and
repeat safely; several docks at once; bad requests and configs get clear errors."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import ssl
import threading

import aiohttp
import pytest

from bodycam.errors import ConfigError, InputError, UsageError
from device.sealing import pki
from device.sealing.messages import CTX_RECEIPT, open_message
from dock.archive_client import ArchiveClient, ArchiveUnavailable
from dock.session import DockSession

from .archive_rig import archive_config_toml, start_service
from .conftest import make_agency
from .dockrig import make_rig


@pytest.fixture
def service(agency, tmp_path):
    rig = start_service(agency, tmp_path / "svc")
    yield rig
    rig.close()


def dock_through(rig, service, bay: int = 1):
    """Dock rig's recorder with the session committing through the service."""
    session = DockSession(identity=rig.identity, url=rig.url, bay=bay, expected_device=rig.sealing.identity.device_id,
                          archive=service.client(), registry=rig.registry, staging=rig.root / "dock" / "staging",
                          require_clock_synced=False, timeout=10)
    return asyncio.run(session.run())


def test_docking_through_the_service_stores_receipts_and_frees_the_recorder(agency, tmp_path, service):
    rig = make_rig(agency, tmp_path / "r1")
    try:
        names = rig.record(3)
        progress = dock_through(rig, service)
        assert progress.outcome == "done" and progress.segments_archived == 3 and progress.segments_deleted == 3
        assert rig.on_recorder() == set()
        rows = service.archive.search(device="D000001")
        assert sorted(r["name"] for r in rows) == sorted(names)
        assert all(r["agency"] == "test-agency" and r["source"] == "dock:dock-1:bay1" for r in rows)
        # the receipts were signed with the archive's key, which the dock never held
        assert not list((tmp_path / "r1" / "dock").rglob("*.key"))
        export = service.archive.export_recording("D000001", tmp_path / "export")
        from device.sealing.verifier import Verifier
        assert Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(export)[0].status == "verified"
    finally:
        rig.close()


def test_commit_is_idempotent_and_receipts_name_the_stored_files(agency, tmp_path, service):
    rig = make_rig(agency, tmp_path / "r")
    try:
        names = rig.record(2)
        client = service.client()
        first = client.commit(rig.state, names, source="dock:dock-1:bay2")
        again = client.commit(rig.state, names, source="dock:dock-1:bay2")
        opened = [open_message(r, pki.load_cert(agency.ca_cert_path), CTX_RECEIPT, "receipt").payload for r in first]
        assert [p["segment"] for p in opened] == names
        assert [json.loads(base64.b64decode(r["payload"])) for r in again] == opened
        for p in opened:
            seg = rig.state / "segments" / f"{p['segment']}.bcseg"
            assert hashlib.sha256(seg.read_bytes()).hexdigest() == p["files"]["segment_sha256"]
            assert service.archive.store.confirm(p["files"]["segment_sha256"]).size == seg.stat().st_size
        assert len(service.archive.search()) == 2
    finally:
        rig.close()


async def _raw(service, method, path, *, data=None, headers=None, json_body=None, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=str(service.ca))
    ctx.check_hostname = False
    ctx.load_cert_chain(cert or service.dock_cert, key or service.dock_key)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
        async with http.request(method, service.url + path, data=data, headers=headers, json=json_body) as resp:
            return resp.status, await resp.json(content_type=None)


def test_an_interrupted_upload_resumes_from_what_is_staged(agency, tmp_path, service):
    blob = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256(blob).hexdigest()
    status, body = asyncio.run(_raw(service, "PUT", f"/v1/blobs/{digest}", data=blob[:300_000],
                                    headers={"Upload-Offset": "0", "Upload-Length": str(len(blob))}))
    assert status == 202 and body["staged_bytes"] == 300_000
    status, body = asyncio.run(_raw(service, "GET", f"/v1/blobs/{digest}"))
    assert body == {"stored": False, "staged": False, "staged_bytes": 300_000}
    status, body = asyncio.run(_raw(service, "PUT", f"/v1/blobs/{digest}", data=blob[100:],
                                    headers={"Upload-Offset": "100", "Upload-Length": str(len(blob))}))
    assert status == 409 and body["staged_bytes"] == 300_000  # a wrong offset is refused, not merged
    status, body = asyncio.run(_raw(service, "PUT", f"/v1/blobs/{digest}", data=blob[300_000:],
                                    headers={"Upload-Offset": "300000", "Upload-Length": str(len(blob))}))
    assert status == 200 and body == {"staged": True, "staged_bytes": len(blob)}
    assert (service.archive.config.state / "uploads" / digest).read_bytes() == blob


def test_the_client_resumes_a_partly_staged_file(agency, tmp_path, service):
    rig = make_rig(agency, tmp_path / "r")
    try:
        names = rig.record(1, fragments=4, size=200_000)
        seg = rig.state / "segments" / f"{names[0]}.bcseg"
        data = seg.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        asyncio.run(_raw(service, "PUT", f"/v1/blobs/{digest}", data=data[:123_457],
                         headers={"Upload-Offset": "0", "Upload-Length": str(len(data))}))
        receipts = service.client().commit(rig.state, names, source="dock:dock-1:bay1")
        assert len(receipts) == 1
        assert service.archive.store.confirm(digest).size == len(data)
    finally:
        rig.close()


def test_several_docks_commit_at_once(agency, tmp_path, service):
    rigs = [make_rig(agency, tmp_path / f"r{i}", device_id=f"D00000{i}") for i in range(1, 5)]
    try:
        for rig in rigs:
            rig.record(3, size=50_000)
        results: dict[int, object] = {}

        def run(i, rig):
            try:
                results[i] = dock_through(rig, service, bay=i)
            except Exception as exc:  # reported below
                results[i] = exc
        threads = [threading.Thread(target=run, args=(i, r)) for i, r in enumerate(rigs, 1)]
        [t.start() for t in threads]
        [t.join(120) for t in threads]
        assert all(getattr(results[i], "outcome", results[i]) == "done" for i in results), results
        assert len(results) == 4
        for i, rig in enumerate(rigs, 1):
            assert rig.on_recorder() == set()
            assert len(service.archive.search(device=f"D00000{i}")) == 3
    finally:
        for rig in rigs:
            rig.close()


def test_only_docks_of_a_configured_agency_are_served(agency, tmp_path, service):
    device_key = tmp_path / "x" / "device.key"
    pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-x", tmp_path / "x")  # a proper dock for contrast
    archive_role = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "other-archive", tmp_path / "y")
    status, body = asyncio.run(_raw(service, "GET", "/v1/health", cert=archive_role.with_suffix(".crt"),
                                    key=archive_role))
    assert status == 403 and "dock" in body["error"]
    status, body = asyncio.run(_raw(service, "GET", "/v1/health", cert=tmp_path / "x" / "dock.crt",
                                    key=tmp_path / "x" / "dock.key"))
    assert status == 200 and body["dock"] == "dock-x"
    rogue = make_agency(tmp_path / "rogue")
    rogue_dock = pki.issue_keypair(rogue.ca, pki.ROLE_DOCK, "dock-1", tmp_path / "rogue-dock")
    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
        asyncio.run(_raw(service, "GET", "/v1/health", cert=rogue_dock.with_suffix(".crt"), key=rogue_dock))
    ctx = ssl.create_default_context(cafile=str(service.ca))
    ctx.check_hostname = False

    async def no_certificate():
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
            async with http.get(service.url + "/v1/health") as resp:
                return resp.status
    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
        asyncio.run(no_certificate())
    assert not device_key.exists()


def test_a_dock_refuses_an_archive_that_is_not_one(agency, tmp_path, service):
    """The archive's server certificate must have the archive-receipt role."""
    from archive.server import RunningServer

    dock_as_server = pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "impostor", tmp_path / "imp")
    config = service.archive.config
    bad = config.model_copy(update={"server": config.server.model_copy(update={
        "key": dock_as_server, "certificate": dock_as_server.with_suffix(".crt")})})
    service.archive.config = bad
    impostor = RunningServer(service.archive).start()
    try:
        rig = make_rig(agency, tmp_path / "r")
        try:
            names = rig.record(1)
            client = ArchiveClient(impostor.url, key=service.dock_key, certificate=service.dock_cert, ca=service.ca)
            with pytest.raises(ArchiveUnavailable, match="archive-receipt"):
                client.commit(rig.state, names, source="dock:dock-1:bay1")
        finally:
            rig.close()
    finally:
        impostor.stop()


@pytest.mark.parametrize("method,path,kw,status,words", [
    ("GET", "/v1/blobs/xyz", {}, 400, "SHA-256"),
    ("GET", "/v1/blobs/" + "A" * 64, {}, 400, "SHA-256"),
    ("PUT", "/v1/blobs/" + "0" * 64, {"data": b"abc"}, 400, "Upload-Length"),
    ("PUT", "/v1/blobs/" + "0" * 64, {"data": b"abc", "headers": {"Upload-Length": "3"}}, 422, "hash"),
    ("PUT", "/v1/blobs/" + "0" * 64, {"data": b"abcd", "headers": {"Upload-Length": "3"}}, 400, "longer"),
    ("PUT", "/v1/blobs/" + "0" * 64, {"data": b"a", "headers": {"Upload-Length": "99999999999999"}}, 413, "refused"),
    ("POST", "/v1/commits", {"data": b"{not json"}, 400, "JSON"),
    ("POST", "/v1/commits", {"json_body": [1, 2]}, 400, "object"),
    ("POST", "/v1/commits", {"json_body": {"names": [], "files": {"../../etc/passwd": "0" * 64}}}, 400, "path"),
    ("POST", "/v1/commits", {"json_body": {"names": ["x/../y"], "files": {}}}, 400, "names"),
    ("POST", "/v1/commits", {"json_body": {"names": [], "files": {"identity/device.crt": "zz"}}}, 400, "SHA-256"),
    ("POST", "/v1/commits", {"json_body": {"names": [], "files": {"identity/device.crt": "1" * 64}}}, 400,
     "not uploaded"),
    ("POST", "/v1/commits", {"data": b"x" * (5 << 20)}, 413, "bytes"),
    ("POST", "/v1/segments/received", {"data": b"{not json"}, 400, "JSON"),
    ("POST", "/v1/segments/received", {"json_body": ["0" * 64]}, 400, "digests"),
    ("POST", "/v1/segments/received", {"json_body": {"digests": ["0" * 63]}}, 400, "SHA-256"),
    ("POST", "/v1/segments/received", {"json_body": {"digests": ["A" * 64]}}, 400, "SHA-256"),
    ("POST", "/v1/segments/received", {"json_body": {"digests": ["0" * 64] * 50_001}}, 400, "at most"),
])
def test_bad_requests_get_clear_errors(service, method, path, kw, status, words):
    got, body = asyncio.run(_raw(service, method, path, **kw))
    assert got == status, body
    assert words.lower() in body["error"].lower()


def test_forged_recording_gets_no_receipt(agency, tmp_path, service):
    rig = make_rig(agency, tmp_path / "r")
    try:
        names = rig.record(2)
        seg = rig.state / "segments" / f"{names[1]}.bcseg"
        data = bytearray(seg.read_bytes())
        data[-10] ^= 1
        seg.write_bytes(bytes(data))
        receipts = service.client().commit(rig.state, names, source="dock:dock-1:bay1")
        assert [json.loads(base64.b64decode(r["payload"]))["segment"] for r in receipts] == names[:1]
        assert [r["name"] for r in service.archive.search()] == names[:1]
    finally:
        rig.close()


def test_config_errors_name_file_and_key(agency, tmp_path):
    from archive.config import load_archive_config

    key = tmp_path / "k.key"
    good = archive_config_toml(tmp_path / "a", agency.ca_cert_path, key, key.with_suffix(".crt"))
    assert load_archive_config(good).store.backend == "local"
    cases = {
        'backend = "ftp"': "store",
        'colour = "blue"': "unknown key",
    }
    text = good.read_text()
    for change, words in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(text.replace('backend = "local"', change if "backend" in change else
                                    'backend = "local"\n' + change))
        with pytest.raises(ConfigError) as err:
            load_archive_config(bad)
        assert str(bad) in str(err.value) and words in str(err.value)
    bad.write_text(text.replace("port = 0", "port = 70000"))
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_archive_config(bad)
    bad.write_text(text.replace('url = "sqlite', 'url = "mysql'))
    with pytest.raises(ConfigError, match=r"index\.url"):
        load_archive_config(bad)
    bad.write_text("[store\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_archive_config(bad)
    with pytest.raises(InputError, match="not found"):
        load_archive_config(tmp_path / "missing.toml")


def test_serve_command_runs_the_service_until_terminated(agency, tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    receipt = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", tmp_path / "arch")
    dock = pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-1", tmp_path / "dock")
    config = archive_config_toml(tmp_path / "archive", agency.ca_cert_path, receipt, receipt.with_suffix(".crt"))
    child = subprocess.Popen([sys.executable, "-m", "bodycam", "archive", "--config", str(config), "serve"],
                             cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stderr.readline()
        url = re.search(r"https://\S+", line)
        assert url, line + child.stderr.read()

        class Rig:  # what _raw needs
            pass
        rig = Rig()
        rig.url, rig.ca, rig.dock_cert, rig.dock_key = url.group(0).rstrip(";"), agency.ca_cert_path, \
            dock.with_suffix(".crt"), dock
        status, body = asyncio.run(_raw(rig, "GET", "/v1/health"))
        assert status == 200 and body["archive"] == "archive-1"
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0
        child.stderr.close()
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text().replace("[store]", "[stor]"))
    out = subprocess.run([sys.executable, "-m", "bodycam", "archive", "--config", str(bad), "serve"], cwd=repo,
                         env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and str(bad) in out.stderr and "Traceback" not in out.stderr


def test_an_unreachable_archive_fails_the_docking_and_the_recorder_keeps_its_footage(agency, tmp_path):
    from dock.session import SessionError

    from archive.server import RunningServer

    svc = start_service(agency, tmp_path / "svc")
    rig = make_rig(agency, tmp_path / "r")
    try:
        names = set(rig.record(2))
        svc.server.stop()
        with pytest.raises(SessionError, match="archive"):  # the daemon retries a SessionError
            dock_through(rig, svc)
        assert rig.on_recorder() == names and svc.archive.search() == []
        svc.server = RunningServer(svc.archive, port=svc.server.port).start()
        assert dock_through(rig, svc).outcome == "done"
        assert rig.on_recorder() == set() and {r["name"] for r in svc.archive.search()} == names
    finally:
        rig.close()
        svc.close()


def test_the_example_config_is_valid():
    from pathlib import Path

    from archive.config import load_archive_config

    example = Path(__file__).resolve().parent.parent / "archive" / "example.toml"
    config = load_archive_config(example)
    assert config.store.backend == "local" and config.store.path == example.parent / "store"
    assert config.index.url == f"sqlite:///{example.parent / 'index.sqlite'}"
    assert config.agencies[0].name == "顺城区市场监督管理局"


def test_an_unreachable_index_or_store_is_a_clear_error(agency, tmp_path):
    from click.testing import CliRunner

    from bodycam.cli import main
    from tests.archive_rig import free_ports

    key = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", tmp_path / "k")
    closed = free_ports(1)[0]
    for store, index, words in (
            ("", f'url = "postgresql+psycopg://archive:pw@127.0.0.1:{closed}/archive"\n', "archive:***@"),
            (f'backend = "s3"\nendpoint_url = "http://127.0.0.1:{closed}"\nbucket = "evidence"\n'
             f'access_key_id = "a"\nsecret_access_key = "b"\n', "", "S3")):
        config = archive_config_toml(tmp_path / f"a{len(words)}", agency.ca_cert_path, key, key.with_suffix(".crt"),
                                     store=store, index=index)
        result = CliRunner().invoke(main, ["archive", "--config", str(config), "status"])
        if index:  # no index, no archive: an error naming it, password hidden
            assert result.exit_code == 2, result.output
            assert "bodycam: error:" in result.output and words in result.output and "pw@" not in result.output
        else:  # the store is down: status says so as an alert
            assert result.exit_code == 0 and "ALERT    the store cannot be reached: " in result.output, result.output
            assert "S3" in result.output and "存储" not in result.output, result.output  # English on the terminal


def test_a_stalled_upload_is_cut_off_and_resumable_not_a_hang(agency, tmp_path, service):
    from archive.server import RunningServer

    config = service.archive.config
    service.archive.config = config.model_copy(update={"server": config.server.model_copy(
        update={"read_timeout_seconds": 1})})
    quick = RunningServer(service.archive).start()
    blob = b"evidence" * 1000
    digest = hashlib.sha256(blob).hexdigest()

    async def stall():
        ctx = ssl.create_default_context(cafile=str(service.ca))
        ctx.check_hostname = False
        ctx.load_cert_chain(service.dock_cert, service.dock_key)
        reader, writer = await asyncio.open_connection("127.0.0.1", quick.port, ssl=ctx)
        writer.write((f"PUT /v1/blobs/{digest} HTTP/1.1\r\nHost: archive\r\nUpload-Offset: 0\r\n"
                      f"Upload-Length: {len(blob)}\r\nContent-Length: {len(blob)}\r\n\r\n").encode() + blob[:1000])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 30)  # the server answers; the test never hangs
        writer.close()
        return answer
    try:
        answer = asyncio.run(stall())
        assert b" 408 " in answer.split(b"\r\n")[0] and b"resume" in answer
        status, body = asyncio.run(_raw(service, "GET", f"/v1/blobs/{digest}"))
        assert body["staged_bytes"] == 1000
    finally:
        quick.stop()


def test_stale_uploads_are_dropped_at_start_fresh_ones_kept(agency, tmp_path, service):
    import os
    import time as _time

    from archive.server import ArchiveService

    uploads = service.archive.config.state / "uploads"
    old, fresh = uploads / ("a" * 64 + ".part"), uploads / ("b" * 64)
    old.write_bytes(b"abandoned")
    fresh.write_bytes(b"in progress")
    eight_days = _time.time() - 8 * 86400
    os.utime(old, (eight_days, eight_days))
    ArchiveService(service.archive)
    assert not old.exists() and fresh.exists()


def test_the_archive_answers_which_segments_it_received(agency, tmp_path, service):
    """``POST /v1/segments/received``: the subset of the digests asked about that this
    archive committed; the dock flags a deletion on any other archive's receipt."""
    from device.sealing.messages import sign_message
    from device.sealing.seallog import EV_DELETION, EV_RECEIPT
    from device.sealing.segment_file import read_manifest

    rig = make_rig(agency, tmp_path / "r")
    try:
        first = rig.record(2)
        digests = {n: read_manifest(rig.state / "segments" / f"{n}.bcman").digest.hex() for n in first}
        assert service.client().received(list(digests.values())) == set()
        progress = dock_through(rig, service)
        assert progress.outcome == "done" and progress.segments_deleted == 2 and not progress.flagged
        unknown = hashlib.sha256(b"never sealed").hexdigest()
        assert service.client().received([*digests.values(), unknown]) == set(digests.values())
        assert service.client().received([]) == set()

        # A receipt from another archive of the agency, then a deletion on it.
        (name,) = rig.record(1)
        seg = rig.state / "segments" / f"{name}.bcseg"
        digest = read_manifest(seg.with_suffix(".bcman")).digest.hex()
        other = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-2", tmp_path / "other")
        message = sign_message(pki.load_ed25519_key(other), pki.load_cert(other.with_suffix(".crt")), {
            "ctx": CTX_RECEIPT, "archive": "archive-2", "device": "D000001", "segment": name,
            "segment_seq": 2, "segment_digest": digest,
            "files": {"segment_sha256": "0" * 64, "manifest_sha256": "0" * 64},
            "stored_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "retain_until": None})
        raw = base64.b64decode(message["payload"])
        rig.sealing.log_event(EV_RECEIPT, {
            "segment_seq": 2, "segment": name, "digest": digest, "archive": "archive-2",
            "retain_until": None, "receipt_sha256": hashlib.sha256(raw).hexdigest(), "receipt": message})
        for path in (seg, seg.with_suffix(".bcman")):
            path.chmod(0o644)
            path.unlink()
        rig.sealing.log_event(EV_DELETION, {"segment_seq": 2, "segment": name, "digest": digest,
                                            "reason": "archive receipt"})
        progress = dock_through(rig, service)
        assert progress.outcome == "done"
        flagged = [f for f in progress.flagged if "never received" in f]
        assert len(flagged) == 1 and flagged[0].startswith(name), progress.flagged
    finally:
        rig.close()


@pytest.mark.parametrize("answer", [{"received": ["f" * 64]}, {"received": [["a"]]}, {"received": "all"}, {}])
def test_the_dock_refuses_a_received_answer_out_of_shape(agency, tmp_path, service, answer):
    """An answer naming digests not asked about, or not a list of them, is refused clearly
    (it would silence the dock's never-received flag), never a crash."""
    from aiohttp import web

    async def health(request):
        return web.json_response({"status": "ok"})

    async def received(request):
        return web.json_response(answer)

    async def run():
        app = web.Application()
        app.router.add_get("/v1/health", health)
        app.router.add_post("/v1/segments/received", received)
        config = service.archive.config.server
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(config.certificate, config.key)  # a genuine archive-receipt certificate
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        try:
            client = ArchiveClient(f"https://127.0.0.1:{runner.addresses[0][1]}", key=service.dock_key,
                                   certificate=service.dock_cert, ca=service.ca)
            with pytest.raises(ArchiveUnavailable, match="segment query"):
                await asyncio.to_thread(client.received, ["0" * 64])
        finally:
            await runner.cleanup()

    asyncio.run(run())


def test_each_docking_leaves_a_log_head_attestation_the_verifier_accepts(agency, tmp_path, service):
    """format §12.1: the archive signs the seal-log head it received at every docking."""
    from click.testing import CliRunner

    from bodycam.cli import main
    from device.sealing.attestation import load_attestation
    from device.sealing.verifier import Verifier

    ca = pki.load_cert(agency.ca_cert_path)
    config = tmp_path / "svc" / "archive" / "archive.toml"  # the service fixture's
    rig = make_rig(agency, tmp_path / "r")
    try:
        heads = []
        for docking in range(2):
            rig.record(2)
            assert dock_through(rig, service).outcome == "done"
            # as a keeper hands it out: `bodycam archive attestation DEVICE --out FILE`
            path = tmp_path / f"attestation-{docking}.json"
            out = CliRunner().invoke(main, ["archive", "--config", str(config), "attestation", "D000001",
                                            "--out", str(path)])
            assert out.exit_code == 0, out.output
            assert json.loads(path.read_text()) == service.archive.log_head_attestation("D000001")
            again = CliRunner().invoke(main, ["archive", "--config", str(config), "attestation", "D000001",
                                              "--out", str(path)])
            assert again.exit_code == 2 and "exists" in again.output, again.output  # never overwritten
            attested = load_attestation(path, ca).payload
            export = service.archive.export_recording("D000001", tmp_path / f"export-{docking}")
            report, _ = Verifier(ca).verify_recording(export)
            # what the archive saw: the head of the log it holds, signed with its receipt key
            assert (attested.device, attested.device_certificate) == ("D000001", report.device_certificate)
            assert (attested.head_seq, attested.head_digest) == (report.seal_log.head_seq,
                                                                  report.seal_log.head_digest)
            assert attested.archive == service.archive.agency(None).archive_id
            result = CliRunner().invoke(main, ["verify", "--json", "--ca", str(agency.ca_cert_path),
                                               "--attestation", str(path), str(export)])
            assert result.exit_code == 0, result.output
            assert json.loads(result.output)["recordings"][0]["attestation"]["status"] == "matched"
            heads.append(attested.head_seq)
        assert heads[1] > heads[0]  # the second docking attested the longer log
    finally:
        rig.close()


def test_no_attestation_for_a_device_the_archive_never_saw(service, tmp_path):
    from click.testing import CliRunner

    from bodycam.cli import main

    with pytest.raises(UsageError, match="D999999"):
        service.archive.log_head_attestation("D999999")
    config = tmp_path / "svc" / "archive" / "archive.toml"
    out = CliRunner().invoke(main, ["archive", "--config", str(config), "attestation", "D999999"])
    assert out.exit_code == 2 and "D999999" in out.output and "Traceback" not in out.output, out.output
