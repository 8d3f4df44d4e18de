"""Archive benchmarks, each beside a baseline measured in the same run (issue 10).

- ingest into SeaweedFS (S3 Object Lock) + PostgreSQL, beside raw boto3
  put_object of the same bytes to the same server (target >= 0.8 x);
- search p95 at 1 M indexed segments, time range + officer, SQLite and
  PostgreSQL (target <= 50 ms);
- scrub throughput beside sha256sum on the same files (target >= 0.8 x).

BODYCAM_BENCH_SEGMENTS scales the search index (default 1,000,000).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.archive_rig import ACCESS_KEY, SECRET_KEY, Postgres, Seaweed, archive_config_toml  # noqa: E402
from tests.conftest import make_agency  # noqa: E402
from tests.dockrig import make_rig  # noqa: E402

SEGMENTS, FRAGMENTS, FRAGMENT = 4, 30, 1_000_000  # 2 min of 8 Mbit/s footage
INDEXED = int(os.environ.get("BODYCAM_BENCH_SEGMENTS", "1000000"))
QUERIES = 200


def _ok(good: bool) -> str:
    return "OK" if good else "MISSED"


def _archive(work: Path, agency, rig, store: str = "", index: str = ""):
    from archive.config import load_archive_config
    from archive.service import Archive

    keys = rig.root / "keys" / "arch"
    path = archive_config_toml(work, agency.ca_cert_path, keys / "archive-receipt.key", keys / "archive-receipt.crt",
                               store=store, index=index)
    return Archive(load_archive_config(path))


def ingest(work: Path, agency, rig, names, seaweed: Seaweed, pg: Postgres) -> list[tuple[str, str, str]]:
    files = [rig.state / "identity" / "device.crt", *sorted((rig.state / "seallog").iterdir())]
    for name in names:
        files += [rig.state / "segments" / f"{name}.bcman", rig.state / "segments" / f"{name}.bcseg"]
    total = sum(p.stat().st_size for p in files)
    client = seaweed.client()
    client.create_bucket(Bucket="bench-raw")
    start = time.perf_counter()
    for i, path in enumerate(files):
        with open(path, "rb") as body:
            client.put_object(Bucket="bench-raw", Key=f"raw/{i}", Body=body)
    raw = time.perf_counter() - start
    store = (f'backend = "s3"\nendpoint_url = "{seaweed.endpoint}"\nbucket = "bench-locked"\n'
             f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\ncreate_bucket = true\n')
    archive = _archive(work / "s3pg", agency, rig, store=store, index=f'url = "{pg.url}"\n')
    try:
        archive.store.check_bucket()
        start = time.perf_counter()
        receipts = archive.commit_recording(None, rig.state, names, source="bench")
        ours = time.perf_counter() - start
        assert len(receipts) == len(names)
    finally:
        archive.close()
    raw_mb, our_mb = total / raw / 1e6, total / ours / 1e6
    return [("boto3 put_object to SeaweedFS (baseline)", f"{raw_mb:,.0f} MB/s", f"{total / 1e6:.0f} MB"),
            ("archive ingest: verify+lock+confirm+PostgreSQL+receipts", f"{our_mb:,.0f} MB/s",
             f"{our_mb / raw_mb:.2f} x put_object (target >= 0.8: {_ok(our_mb / raw_mb >= 0.8)})")]


def scrub(work: Path, agency, rig, names) -> list[tuple[str, str, str]]:
    archive = _archive(work / "local", agency, rig)
    try:
        archive.commit_recording(None, rig.state, names, source="bench")
        blobs = sorted(p for p in (work / "local" / "store" / "blobs" / "sha256").rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in blobs)
        for p in blobs:  # both read from the page cache
            p.read_bytes()
        start = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, blobs)], check=True, stdout=subprocess.DEVNULL)
        base = time.perf_counter() - start
        start = time.perf_counter()
        result = archive.scrub()
        ours = time.perf_counter() - start
        assert not result.bad
    finally:
        archive.close()
    b, o = total / base / 1e6, total / ours / 1e6
    return [("sha256sum on the stored files (baseline)", f"{b:,.0f} MB/s", f"{total / 1e6:.0f} MB"),
            ("archive scrub (hash + mode check + index update)", f"{o:,.0f} MB/s",
             f"{o / b:.2f} x sha256sum (target >= 0.8: {_ok(o / b >= 0.8)})")]


def _fill(archive, n: int) -> tuple[list[str], dt.datetime]:
    """n synthetic segments: 2,000 officers, 500 devices, one year, 60 s apart per device."""
    from archive import index as ix
    from device.sealing.clock import utc_text

    rng = random.Random(7)
    officers = [f"{i:06d}" for i in range(2000)]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    batch = []
    with archive.engine.begin() as conn:
        for i in range(n):
            when = start + dt.timedelta(seconds=rng.randrange(365 * 86400))
            device = f"D{i % 500:06d}"
            digest = f"{i:064x}"
            t = utc_text(when)
            batch.append({"segment_digest": digest, "agency": "test-agency", "sub_unit": f"股{i % 12}",
                          "device": device, "segment_seq": i // 500, "name": f"{device}_{officers[i % 2000]}_{i}",
                          "media": "video/mp4", "officer": officers[rng.randrange(2000)], "opened_utc": t,
                          "closed_utc": t, "status": "closed", "marks": "[]", "events": "[]",
                          "segment_blob": digest, "manifest_blob": digest, "imported_utc": t, "source": "bench",
                          "retain_until": t, "retention_class": "patrol", "art13": None, "review_pending": False,
                          "deleted_utc": None})
            if len(batch) == 20_000:
                conn.execute(ix.segments.insert(), batch)
                batch = []
        if batch:
            conn.execute(ix.segments.insert(), batch)
    if archive.engine.dialect.name == "postgresql":
        with archive.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE segments")
            conn.commit()
    else:
        with archive.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    return officers, start


def search(work: Path, agency, rig, label: str, index: str = "") -> tuple[str, str, str]:
    archive = _archive(work / f"search-{label}", agency, rig, index=index)
    try:
        t0 = time.perf_counter()
        officers, start = _fill(archive, INDEXED)
        fill = time.perf_counter() - t0
        rng = random.Random(11)
        times = []
        for _ in range(QUERIES):
            since = start + dt.timedelta(days=rng.randrange(360))
            t = time.perf_counter()
            archive.search(officer=rng.choice(officers), since=since.isoformat(),
                           until=(since + dt.timedelta(days=7)).isoformat())
            times.append(time.perf_counter() - t)
        p95 = statistics.quantiles(times, n=20)[18] * 1000
    finally:
        archive.close()
    return (f"search p95 at {INDEXED:,} segments, {label} (officer + 7-day range)", f"{p95:.1f} ms",
            f"target <= 50 ms: {_ok(p95 <= 50)} (filled in {fill:.0f} s)")


def run() -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bodycam-bench-archive-") as tmp:
        work = Path(tmp)
        agency = make_agency(work / "agency")
        rig = make_rig(agency, work / "rig")
        seaweed = Seaweed(work / "seaweed")
        pg = Postgres(work / "pg")
        try:
            names = rig.record(SEGMENTS, FRAGMENTS, FRAGMENT)
            try:
                seaweed.start()
                pg.start()
            except Exception as exc:  # noqa: BLE001
                rows.append(("archive ingest", "skipped", f"server did not start: {exc}"))
            else:
                rows += ingest(work, agency, rig, names, seaweed, pg)
            rows += scrub(work, agency, rig, names)
            rows.append(search(work, agency, rig, "SQLite"))
            if pg.port:
                subprocess.run([pg._bin("createdb"), "-h", str(pg.root / "run"), "-p", str(pg.port), "-U",
                                "archive", "search"], check=True, capture_output=True, preexec_fn=pg._pre, cwd="/")
                url = pg.url.replace("/archive?", "/search?")
                rows.append(search(work, agency, rig, "PostgreSQL", index=f'url = "{url}"\n'))
        finally:
            rig.close()
            seaweed.stop()
            pg.stop()
            shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for row in run():
        print("  ".join(row))
