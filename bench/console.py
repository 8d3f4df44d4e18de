"""Station console benchmark (issue 12): each page's p95 answer time at 1 M
indexed segments (target <= 200 ms), beside a baseline measured in the same
run on the same server: the sign-in page, which does everything a page does
(TLS, session cookie, CSRF token, a Jinja2 template through the catalogue)
but no archive work.

The index holds the real footage of tests/lawful_rig.py plus
BODYCAM_BENCH_SEGMENTS synthetic segments (default 1,000,000: 2,000
officers, 500 devices over a year, as bench/archive.py, with SHA-256-like digests), a seal-log
oversight entry for every other segment and a custody finding per 1,000 (the misuse timeline reads
both), and 100,000 audit entries;
requests go over HTTPS with a signed-in session, as a browser's would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

INDEXED = int(os.environ.get("BODYCAM_BENCH_SEGMENTS", "1000000"))
AUDIT_ROWS = 100_000
REQUESTS = 60
TARGET_MS = 200
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _ok(good: bool) -> str:
    return "OK" if good else "MISSED"


def _fill_audit(archive, n: int) -> None:
    """``n`` stored audit rows (bench only reads them: not signed)."""
    from archive import lawful_index as lx

    rng = random.Random(5)
    with archive.engine.begin() as conn:
        start = conn.execute(lx.audit_log.select().with_only_columns(
            lx.audit_log.c.seq).order_by(lx.audit_log.c.seq.desc()).limit(1)).scalar() or 0
        batch = []
        for i in range(start + 1, start + 1 + n):
            actor = f"user{rng.randrange(300)}"
            payload = json.dumps({"seq": i, "utc": "2026-06-01T00:00:00.000000Z", "actor": actor, "role": "keeper",
                                  "action": "search", "outcome": "ok", "case": None,
                                  "segments": [f"{rng.randrange(1 << 60):064x}"], "detail": {}})
            batch.append({"agency": "test-agency", "seq": i, "at_utc": "2026-06-01T00:00:00.000000Z", "actor": actor,
                          "action": "search", "outcome": "ok", "case_number": None, "segments": "[]",
                          "payload": payload, "digest": f"{i:064x}", "signature": "x"})
            if len(batch) == 20_000:
                conn.execute(lx.audit_log.insert(), batch)
                batch = []
        if batch:
            conn.execute(lx.audit_log.insert(), batch)


def _fill(archive, n: int) -> tuple[list[str], dt.datetime]:
    """bench/archive.py's synthetic index (2,000 officers, 500 devices, a year),
    but with digests spread like real SHA-256 ones (the review sample walks them)."""
    import hashlib

    from archive import index as ix
    from device.sealing.clock import utc_text

    rng = random.Random(7)
    officers = [f"{i:06d}" for i in range(2000)]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    batch, entries, findings = [], [], []
    with archive.engine.begin() as conn:
        for i in range(n):
            t = utc_text(start + dt.timedelta(seconds=rng.randrange(365 * 86400)))
            device = f"D{i % 500:06d}"
            digest = hashlib.sha256(b"bench %d" % i).hexdigest()
            officer = officers[rng.randrange(2000)]
            if i % 2 == 0:  # the seal log's oversight entries: a hand-out or a mark for every other segment
                entries.append({"device": device, "seq": i, "agency": "test-agency", "utc": t, "officer": officer,
                                "event": "assignment" if i % 4 == 0 else "mark", "segment": None,
                                "detail": '{"kind": "mark", "recording": true}'})
            if i % 1000 == 0:  # and a custody finding per 1,000 segments
                findings.append({"device": device, "segment_seq": 10_000_000 + i, "agency": "test-agency",
                                 "segment": f"{device}_gone_{i}", "segment_digest": None, "officer": officer,
                                 "opened_utc": t, "how": "gone-without-deletion", "found_utc": t, "source": "bench"})
            batch.append({"segment_digest": digest, "agency": "test-agency", "sub_unit": f"股{i % 12}",
                          "device": device, "segment_seq": i // 500, "name": f"{device}_{i}", "media": "video/mp4",
                          "officer": officer, "opened_utc": t, "closed_utc": t,
                          "status": "verified", "marks": "[]", "events": "[]", "segment_blob": digest,
                          "manifest_blob": digest, "imported_utc": t, "source": "bench", "retain_until": t,
                          "retention_class": "patrol", "art13": None, "review_pending": False, "deleted_utc": None})
            if len(batch) == 20_000:
                conn.execute(ix.segments.insert(), batch)
                conn.execute(ix.log_events.insert(), entries)
                batch, entries = [], []
        if batch:
            conn.execute(ix.segments.insert(), batch)
        if entries:
            conn.execute(ix.log_events.insert(), entries)
        if findings:
            conn.execute(ix.custody_findings.insert(), findings)
    with archive.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE" if archive.engine.dialect.name == "sqlite"
                             else "ANALYZE segments, log_events, custody_findings")
        conn.commit()
    return officers, start


def _board(path: Path, bays: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"bays": {str(b): {
        "bay": b, "device": f"D{b:06d}", "phase": "pulling segments", "bytes_pulled": b * 10_000_000,
        "bytes_resumed": 0, "segments_total": 40, "segments_archived": b, "segments_deleted": 0, "flagged": [],
        "ready": None, "readiness": [], "outcome": None, "clock_offset_ms": 1.5,
        "updated": "2026-06-01T00:00:00+00:00"} for b in range(1, bays + 1)}}))


async def _measure(url: str, pages: list[tuple[str, str, str | None]]) -> dict[str, float]:
    import ssl

    import aiohttp

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the bench's self-signed web certificate
    out: dict[str, float] = {}
    sessions: dict[str, aiohttp.ClientSession] = {}
    try:
        for label, path, user in pages:
            http = sessions.get(user or "")
            if http is None:
                http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1),
                                             cookie_jar=aiohttp.CookieJar(unsafe=True))
                sessions[user or ""] = http
                if user:
                    async with http.get(f"{url}/login") as r:
                        token = CSRF.search(await r.text()).group(1)
                    async with http.post(f"{url}/login", data={"csrf_token": token, "username": user,
                                                               "password": PASSWORD}, allow_redirects=False) as r:
                        if r.status != 303:
                            raise RuntimeError(f"bench sign-in as {user}: HTTP {r.status}")
            times = []
            for i in range(REQUESTS + 3):
                t = time.perf_counter()
                async with http.get(f"{url}{path}") as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{path}: HTTP {r.status}")
                if i >= 3:  # the first few warm caches
                    times.append(time.perf_counter() - t)
            out[label] = statistics.quantiles(times, n=20)[18] * 1000
    finally:
        for http in sessions.values():
            await http.close()
    return out


def run() -> list[tuple[str, str, str]]:
    import pyotp

    from archive.accounts import Accounts
    from archive.console.app import RunningConsole
    from archive.console.tls import make_web_certificate
    from archive.grants import Grants
    from tests.conftest import make_agency
    from tests.lawful_rig import make_archive

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bodycam-bench-console-") as tmp:
        work = Path(tmp)
        agency = make_agency(work / "agency")
        law = make_archive(agency, work / "law")
        running = None
        try:
            archive = law.archive
            case = "顺市监罚〔2026〕99号"
            archive.label(None, law.names[:2], case_number=case, party="某某商店", cause="销售过期食品",
                          act_type="inspection", who="bench")
            acc = Accounts(archive)
            for username, role in (("keeper", "keeper"), ("officer", "officer"), ("reviewer", "reviewer"),
                                   ("auditor", "auditor"), ("head", "approver")):
                acc.add(None, username, username, role, PASSWORD, by="bench")
            t0 = time.perf_counter()
            officers, start = _fill(archive, INDEXED)
            _fill_audit(archive, AUDIT_ROWS)
            fill = time.perf_counter() - t0
            reviewer, head = acc.get("reviewer"), acc.get("head")
            digest = archive.search(None, case_number=case)[1]["segment_digest"]
            grant = Grants(archive).request(reviewer, grantee="reviewer", actions=["view"], reason="bench",
                                            hours=24, segments=[digest])
            Grants(archive).decide(head, grant.id, approve=True,
                                   totp=pyotp.TOTP(acc.totp_secret("head")).at(law.clock.utc_now()))
            board = work / "dock" / "state" / "status.json"
            _board(board)
            tls = make_web_certificate(work / "tls", ["127.0.0.1"])
            running = RunningConsole(archive, dock_status=[board.parent], tls=tls).start()
            rng = random.Random(3)
            since = (start + dt.timedelta(days=rng.randrange(300))).date()
            officer = rng.choice(officers)
            pages = [
                ("baseline", "/login", None),
                ("docks (8 bays)", "/docks", "keeper"),
                ("search: officer + 7-day range", f"/search?officer={officer}&since={since}"
                                                  f"&until={since + dt.timedelta(days=7)}", "officer"),
                ("search: empty form (first 100)", "/search", "officer"),
                ("case: footage + records in time order", f"/case/{case}", "keeper"),
                ("requests and approvals", "/grants", "keeper"),
                ("playback page under a grant", f"/play/{digest}?grant={grant.id}", "reviewer"),
                ("review: the reviewer's samples + statistics", "/review", "reviewer"),
                ("misuse timeline: officer, one shift", f"/misuse?officer={officer}&day={since}", "auditor"),
                ("misuse: newest custody findings", "/misuse", "auditor"),
                ("audit trail (newest 200)", "/audit", "auditor"),
                ("audit trail by person", "/audit?actor=user7", "auditor"),
            ]
            figures = asyncio.run(_measure(running.url, pages))
        finally:
            if running is not None:
                running.stop()
            law.close()
            shutil.rmtree(work, ignore_errors=True)
    base = figures.pop("baseline")
    rows.append((f"console baseline: sign-in page, no archive work (p95, {REQUESTS} requests)", f"{base:.1f} ms",
                 f"index: {INDEXED:,} segments + {INDEXED // 2:,} seal-log entries + {AUDIT_ROWS:,} audit entries, "
                 f"filled in {fill:.0f} s"))
    for label, p95 in figures.items():
        rows.append((f"console p95 at {INDEXED:,} segments: {label}", f"{p95:.1f} ms",
                     f"{p95 / base:.1f} x baseline; target <= {TARGET_MS} ms: {_ok(p95 <= TARGET_MS)}"))
    return rows


if __name__ == "__main__":
    for row in run():
        print("  ".join(row))
