"""The recorder's dock-link server under hostile or sloppy peers: RFC 9110 ranges
and HEAD, a connection cap, rate-limited logs and alarm entries."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import aiohttp
import pytest

from device.linkserver import AlarmLimiter, RateLimitFilter, byte_range
from device.sealing.seallog import scan_log

from .dockrig import make_rig


@pytest.fixture
def rig(agency, tmp_path):
    rig = make_rig(agency, tmp_path, "D000020")
    yield rig
    rig.close()


async def _get(rig, path, method="GET", headers=None):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=rig.identity.tls())) as http:
        async with http.request(method, rig.url + path, headers=headers or {}) as resp:
            return resp.status, dict(resp.headers), await resp.read()


@pytest.mark.parametrize("header, expected", [
    ("bytes=0-99", (0, 99)), ("bytes=100-", (100, 999)), ("bytes=-10", (990, 999)),
    ("bytes=990-5000", (990, 999)), ("bytes=-5000", (0, 999)), (" bytes = 5 - 9 ", (5, 9)),
    ("bytes=1000-", False), ("bytes=5-4", False), ("bytes=-0", False), ("bytes=-", False),
    ("bytes=abc", False), ("bytes=0-1,5-6", False), ("bytes=" + "9" * 300, False),
    ("items=0-5", None),  # another unit: ignored, the whole file is sent
])
def test_byte_range_parser(header, expected):
    assert byte_range(header, 1000) == expected


def test_ranges_and_head_over_the_link(rig):
    (name,) = rig.record(1)
    path = f"/v1/segments/{name}.bcseg"
    status, headers, whole = asyncio.run(_get(rig, path))
    size = len(whole)
    assert status == 200 and headers["Accept-Ranges"] == "bytes" and size > 1000
    status, headers, body = asyncio.run(_get(rig, path, "HEAD"))
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == size
    status, headers, body = asyncio.run(_get(rig, path, headers={"Range": "bytes=10-19"}))
    assert status == 206 and body == whole[10:20] and headers["Content-Range"] == f"bytes 10-19/{size}"
    status, headers, body = asyncio.run(_get(rig, path, headers={"Range": "bytes=-7"}))
    assert status == 206 and body == whole[-7:]
    status, headers, body = asyncio.run(_get(rig, path, "HEAD", headers={"Range": "bytes=100-"}))
    assert status == 206 and body == b"" and int(headers["Content-Length"]) == size - 100
    for bad in ("bytes=abc", f"bytes={size}-", "bytes=0-1,4-5", "bytes=9-3"):
        status, headers, body = asyncio.run(_get(rig, path, headers={"Range": bad}))
        assert status == 416 and headers["Content-Range"] == f"bytes */{size}", bad
    status, _, body = asyncio.run(_get(rig, path, headers={"Range": "lines=1-2"}))
    assert status == 200 and body == whole


def test_idle_connections_are_capped_and_the_dock_is_still_served(rig, caplog):
    """400 idle TCP connections: beyond the cap they are refused; the dock still docks."""
    caplog.set_level(logging.WARNING)
    idle = []
    try:
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", rig.port))
            idle.append(s)
        deadline = time.monotonic() + 10
        while rig.link.gate.refused < 400 - rig.link.gate.limit and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rig.link.gate.active <= rig.link.gate.limit
        assert rig.link.gate.refused >= 400 - rig.link.gate.limit
        # The handshake timeout frees the held ones; then a dock is served.
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, _ = asyncio.run(_get(rig, "/v1/identity"))
                break
            except aiohttp.ClientError:
                assert time.monotonic() < deadline, "the dock was never served"
                time.sleep(0.2)
        assert status == 200
    finally:
        for s in idle:
            s.close()
    text = "".join(r.getMessage() for r in caplog.records)
    assert len(text) < 20_000, len(text)  # a few lines, not a traceback per connection


def test_refused_messages_write_rate_limited_alarms(rig):
    async def spam(n):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=rig.identity.tls())) as http:
            for _ in range(n):
                async with http.post(rig.url + "/v1/clock", json={"hello": "world"}) as resp:
                    assert resp.status == 403

    asyncio.run(spam(200))
    alarms = [e for e, _ in scan_log(rig.state / "seallog").entries
              if e.event == "alarm" and e.data["kind"] == "refused-message"]
    assert 1 <= len(alarms) <= 5


def test_alarm_limiter_and_log_filter_with_a_manual_clock():
    now = [0.0]
    limiter = AlarmLimiter(burst=2, seconds=60, clock=lambda: now[0])
    assert [limiter.admit("x") for _ in range(5)] == [0, 0, None, None, None]
    assert limiter.admit("y") == 0  # per kind
    now[0] = 60.0
    assert limiter.admit("x") == 3  # the next admitted carries the count suppressed
    f = RateLimitFilter(burst=3, seconds=60, clock=lambda: now[0])
    records = [logging.LogRecord("test.ratelimit", logging.ERROR, "", 0, "boom", None, None) for _ in range(50)]
    passed = [r for r in records if f.filter(r)]
    assert len(passed) == 3 and f.suppressed == 47 and "suppressed" in passed[-1].msg
    now[0] = 200.0
    r = logging.LogRecord("test.ratelimit", logging.ERROR, "", 0, "again", None, None)
    assert f.filter(r) and "47 similar messages suppressed" in r.msg
