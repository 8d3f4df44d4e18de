"""Dock robustness: every session ends with an outcome and a reason (malformed JSON
of every shape included), no arrival on a bay is lost, and the dock recovers from
its own leftovers in staging/."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from archive.server import RunningServer
from dock.config import load_dock_config
from dock.daemon import DockDaemon
from dock.session import SessionError

from .dockrig import make_rig
from .test_dock_faults import _hostile, _identity, _time


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _json(value):
    async def handler(request):
        return web.Response(body=json.dumps(value).encode(), content_type="application/json")
    return handler


LOG = "000000000000-0123456789abcdef.log"
SHAPES = {
    # endpoint replaced -> what it answers (valid JSON, wrong shape)
    "identity is a list": ({"/v1/identity": _json([1, 2])}, "/v1/identity: expected a JSON object"),
    "time without t2": ({"/v1/time": _json({"t3_ns": 1})}, "'t2_ns' must be an integer"),
    "time as strings": ({"/v1/time": _json({"t2_ns": "1", "t3_ns": "2"})}, "'t2_ns' must be an integer"),
    "time is null": ({"/v1/time": _json(None)}, "/v1/time: expected a JSON object"),
    "files not a list": ({"/v1/seallog": _json({"files": {"a": 1}})}, "'files' is not a list"),
    "files missing": ({"/v1/seallog": _json({})}, "'files' is not a list"),
    "file entry a string": ({"/v1/seallog": _json({"files": ["x"]})}, "seallog entry: expected a JSON object"),
    "file size a float": ({"/v1/seallog": _json({"files": [{"name": LOG, "bytes": 1.5}]})},
                          "'bytes' must be an integer"),
    "file size true": ({"/v1/seallog": _json({"files": [{"name": LOG, "bytes": True}]})},
                       "'bytes' must be an integer"),
}


@pytest.mark.parametrize("case", SHAPES)
def test_malformed_json_of_every_shape_ends_the_session_with_a_reason(agency, tmp_path, case):
    routes, message = SHAPES[case]
    rig = make_rig(agency, tmp_path)
    reported = []

    async def clock(request):
        return web.json_response({})

    base = {"/v1/identity": _identity, "/v1/time": _time, "/v1/seallog": _json({"files": []}),
            "/v1/segments": _json({"segments": []})}
    state, app = _hostile(agency, tmp_path, {**base, **routes})
    app.router.add_post("/v1/clock", clock)
    try:
        with pytest.raises(SessionError) as info:
            async def run():
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                from device.docklink import server_tls

                site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls(state))
                await site.start()
                session = rig.session(url=f"https://127.0.0.1:{runner.addresses[0][1]}",
                                      on_progress=lambda p: reported.append((p.phase, p.outcome)))
                session.expected_device = "E000001"
                try:
                    await session.run()
                finally:
                    await runner.cleanup()

            asyncio.run(run())
        assert message in str(info.value), str(info.value)
        phase, outcome = reported[-1]
        assert phase == "failed" and outcome.startswith("failed: ") and message in outcome
    finally:
        rig.close()


def dock_config(rig, tmp_path, archive_url: str):
    """A dock config (as `bodycam dock` reads it) for the rig's dock key, committing to archive_url."""
    path = tmp_path / "dock.toml"
    keys = rig.root / "keys"
    path.write_text(f"""
key = "{keys}/dock/dock.key"
certificate = "{keys}/dock/dock.crt"
ca = "{rig.agency.ca_cert_path}"
state = "{rig.root}/dock"
[archive]
url = "{archive_url}"
[readiness]
require_clock_synced = false
[[bays]]
bay = 1
usb_path = "pci-0000:00:14.0-usb-0:1:1.0"
""")
    return load_dock_config(path)


def test_an_arrival_during_the_back_off_is_docked_at_once(agency, tmp_path):
    """The link drops and comes back while the bay waits to retry: docked, not dropped."""
    rig = make_rig(agency, tmp_path)
    service = RunningServer(rig.archive).start()  # the archive service over the rig's archive
    try:
        names = rig.record(2)
        daemon = DockDaemon(dock_config(rig, tmp_path, service.url))
        dead = "https://127.0.0.1:9"  # nothing listens: the first arrival fails at once
        daemon.start_bay(1, dead, rig.sealing.identity.device_id)
        wait_for(lambda: daemon.board.bays.get("1", {}).get("outcome", "") or "", "the first failure")
        assert daemon.board.bays["1"]["outcome"].startswith("link lost")
        t0 = time.monotonic()
        thread = daemon.start_bay(1, rig.url, rig.sealing.identity.device_id)  # the second "add"
        wait_for(lambda: daemon.board.bays["1"].get("outcome") == "done", "the second arrival to dock")
        # Docked within one back-off step of the arrival, not after the old tries ran out.
        took = time.monotonic() - t0
        print(f"arrival during the back-off docked in {took:.2f} s")
        assert took < 10
        assert sorted(s["name"] for s in rig.archive.segments()) == sorted(names)
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        service.stop()
        rig.close()


def test_stale_staging_from_an_earlier_session_does_not_block_the_device(agency, tmp_path):
    rig = make_rig(agency, tmp_path)
    try:
        names = rig.record(2)
        staging = rig.root / "dock" / "staging" / rig.sealing.identity.device_id
        (staging / "segments").mkdir(parents=True)
        (staging / "seallog").mkdir(parents=True)
        # A segment the recorder no longer has, a seal-log file that is not its,
        # and a partial copy whose first bytes are not the recorder's.
        (staging / "segments" / f"{names[0][:-4]}9999.bcseg").write_bytes(b"left over")
        (staging / "seallog" / "000000000007-0123456789abcdef.log").write_bytes(b"junk")
        real_log = sorted((rig.state / "seallog").glob("*.log"))[0]
        (staging / "seallog" / real_log.name).write_bytes(b"\0" * 100)
        progress = rig.dock()
        assert progress.outcome == "done", progress
        assert rig.on_recorder() == set()
        assert sorted(s["name"] for s in rig.archive.segments()) == sorted(names)
        assert not (staging / "segments" / f"{names[0][:-4]}9999.bcseg").exists()
    finally:
        rig.close()
