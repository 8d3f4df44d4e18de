"""Faults: the link cut at random points, the dock killed mid-session, a hostile recorder."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

from archive.server import RunningServer
from device.docklink import server_tls
from device.sealing import pki
from device.sealing.verifier import Verifier
from dock.session import SessionError

from .cutproxy import CutProxy
from .dockrig import make_rig

REPO = Path(__file__).resolve().parent.parent
CUTS = int(os.environ.get("BODYCAM_CUTS", "50"))


def _invariants(rig, recorded: set[str]) -> None:
    archived = {s["name"] for s in rig.archive.segments(device="D000001")}
    here = rig.on_recorder()
    assert recorded <= archived | here, "footage lost"  # nothing lost
    assert len(rig.archive.segments(device="D000001")) == len(archived)  # no duplicate
    deleted = {e.data["segment"] for e in rig.sealing.log.entries if e.event == "deletion"}
    receipted = {e.data["segment"] for e in rig.sealing.log.entries if e.event == "receipt"}
    assert deleted <= receipted and deleted <= archived  # nothing deleted without a receipt
    assert not (here & deleted)


def test_link_cut_at_random_points(agency, tmp_path):
    rng = random.Random(5)
    rig = make_rig(agency, tmp_path)
    proxy = CutProxy(rig.port)
    recorded: set[str] = set()
    outcomes = {"cut": 0, "done": 0}
    try:
        for i in range(CUTS):
            if len(rig.on_recorder()) < 2:
                recorded |= set(rig.record(3, fragments=4, size=40_000))
            proxy.arm(rng.randint(200, 600_000))
            try:
                rig.dock(url=f"https://127.0.0.1:{proxy.port}")
                outcomes["done"] += 1
            except SessionError:
                outcomes["cut"] += 1
            _invariants(rig, recorded)
        proxy.arm(None)
        rig.dock(url=f"https://127.0.0.1:{proxy.port}")  # an uncut docking finishes the job
        _invariants(rig, recorded)
        assert rig.on_recorder() == set()
        assert outcomes["cut"] >= CUTS // 2, outcomes
        export = rig.archive.export_recording("D000001", tmp_path / "export")
        report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(export)
        assert report.status == "verified" and len(report.segments) == len(recorded)
    finally:
        proxy.close()
        rig.close()


def test_dock_killed_mid_session_resumes(agency, tmp_path):
    rig = make_rig(agency, tmp_path)
    names = set(rig.record(4, fragments=6, size=200_000))
    config = tmp_path / "dock.toml"
    service = RunningServer(rig.archive).start()  # the archive service over the rig's archive
    config.write_text(
        f'key = "{rig.root}/keys/dock/dock.key"\ncertificate = "{rig.root}/keys/dock/dock.crt"\n'
        f'ca = "{agency.ca_cert_path}"\nstate = "{rig.root}/dock"\n\n[archive]\nurl = "{service.url}"\n\n'
        f'[readiness]\nrequire_clock_synced = false\n')
    cmd = [sys.executable, "-m", "bodycam", "dock", "--config", str(config), "pull", "--url", rig.url,
           "--device", "D000001"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        child = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        staging = rig.root / "dock" / "staging" / "D000001" / "segments"
        deadline = time.monotonic() + 30
        while not (staging.exists() and sum(p.stat().st_size for p in staging.iterdir()) > 300_000):
            assert time.monotonic() < deadline and child.poll() is None, child.stderr.read()
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close(), child.stderr.close()
        assert names <= rig.on_recorder() | {s["name"] for s in rig.archive.segments()}
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert rig.on_recorder() == set()
        assert sorted(s["name"] for s in rig.archive.segments()) == sorted(names)
        status = json.loads((rig.root / "dock" / "status.json").read_text())["bays"]["1"]
        assert status["outcome"] == "done" and status["bytes_resumed"] > 0
    finally:
        service.stop()
        rig.close()


# -- a hostile recorder ------------------------------------------------------------------------


def _hostile(agency, tmp_path, routes):
    """A recorder enrolled by the agency that lies on the link."""
    state = agency.enrol(tmp_path / "evil", "E000001")
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return state, app


async def _serve_and_dock(rig, state, app):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls(state))
    await site.start()
    port = runner.addresses[0][1]
    session = rig.session(url=f"https://127.0.0.1:{port}")
    session.expected_device = "E000001"
    try:
        await session.run()
    finally:
        await runner.cleanup()


async def _identity(request):
    return web.json_response({"device": "E000001", "seal_log_head": {"seq": 0, "digest": "00" * 32}})


async def _time(request):
    return web.json_response({"t2_ns": time.time_ns(), "t3_ns": time.time_ns()})


@pytest.mark.parametrize("case,message", [
    ("oversized json", "over 1048576 bytes refused"),
    ("path-like log name", "bad name '../../../etc/passwd'"),
    ("path-like segment name", "bad name '../identity/device'"),
    ("endless stream", "more than the 1000 bytes it announced"),
    ("malformed json", "not JSON"),
])
def test_hostile_recorder_is_bounded_and_refused(agency, tmp_path, case, message):
    rig = make_rig(agency, tmp_path)

    async def seallog(request):
        if case == "oversized json":
            return web.Response(body=b'{"files": [' + b'"x",' * 400_000 + b'"x"]}', content_type="application/json")
        if case == "malformed json":
            return web.Response(body=b"{nope", content_type="application/json")
        name = "../../../etc/passwd" if case == "path-like log name" else "000000000000-0123456789abcdef.log"
        return web.json_response({"files": [{"name": name, "bytes": 1000}]})

    async def logfile(request):
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(10_000 if case == "endless stream" else 1):
            await resp.write(b"x" * (1000 if case != "endless stream" else 4096))
        return resp

    async def segments(request):
        return web.json_response({"segments": [{"name": "../identity/device", "segment_bytes": 1,
                                                "manifest_bytes": 1, "marked": False}]})

    async def clock(request):
        return web.json_response({})

    state, app = _hostile(agency, tmp_path, {
        "/v1/identity": _identity, "/v1/time": _time, "/v1/seallog": seallog,
        "/v1/seallog/{name}": logfile, "/v1/segments": segments})
    app.router.add_post("/v1/clock", clock)
    try:
        with pytest.raises(SessionError) as info:
            asyncio.run(_serve_and_dock(rig, state, app))
        assert message in str(info.value)
        staged = [p for p in (rig.root / "dock").rglob("*") if p.is_file()]
        assert all(str(p).startswith(str(rig.root / "dock")) for p in staged)
        assert not (rig.root / "etc").exists() and rig.archive.segments() == []
    finally:
        rig.close()


def test_a_stuck_bay_never_stalls_the_others(agency, tmp_path):
    """Bay 1 holds a recorder that accepts the connection and never answers;
    bay 2's recorder is docked meanwhile."""
    import socket

    from dock.config import DockConfig
    from dock.daemon import DockDaemon

    rig = make_rig(agency, tmp_path)
    rig.record(2)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks
    service = RunningServer(rig.archive).start()
    config = DockConfig.model_validate({
        "key": str(rig.root / "keys/dock/dock.key"), "certificate": str(rig.root / "keys/dock/dock.crt"),
        "ca": str(agency.ca_cert_path), "state": str(tmp_path / "dockstate"),
        "archive": {"url": service.url},
        "readiness": {"require_clock_synced": False}, "recorder": {"timeout_seconds": 20}})
    daemon = DockDaemon(config)
    try:
        stuck = daemon.start_bay(1, f"https://127.0.0.1:{silent.getsockname()[1]}", "D000002")
        started = time.monotonic()
        good = daemon.start_bay(2, rig.url, "D000001")
        good.join(30)
        elapsed = time.monotonic() - started
        assert not good.is_alive() and daemon.board.bays["2"]["outcome"] == "done"
        assert stuck.is_alive() and daemon.board.bays.get("1", {}).get("outcome") is None
        assert elapsed < 20  # bay 2 did not wait for bay 1's timeout
        assert rig.on_recorder() == set()
    finally:
        daemon.stop.set()
        silent.close()
        service.stop()
        rig.close()
