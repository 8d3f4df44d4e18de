"""Archive benchmarks, each beside a baseline measured in the same run (issue 10).

- ingest into SeaweedFS (S3 Object Lock) + PostgreSQL, beside raw boto3
  put_object of the same bytes to the same server (target >= 0.8 x);
- search p95 at 1 M indexed segments, time range + officer, SQLite and
  PostgreSQL (target <= 50 ms);
- scrub throughput beside sha256sum on the same files (target >= 0.8 x);
- dock offload through the archive service (pull, verify, upload, commit,
  receipts) beside ``rsync -e ssh`` of the same files (target >= 1.0 x) and
  ``rsync -e ssh`` + ``sha256sum`` (target >= 1.5 x); 4 bays against 4
  parallel rsyncs; the recorder's CPU-seconds per GB served beside sshd's.

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


SSHD_CONFIG = """Port {port}
ListenAddress 127.0.0.1
HostKey {work}/host_key
AuthorizedKeysFile {work}/authorized_keys
PidFile {work}/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
"""


def _ticks(pid: int, children: bool) -> float:
    """CPU seconds of a process (and of its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    used = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return used / os.sysconf("SC_CLK_TCK")


class Sshd:
    def __init__(self, work: Path) -> None:
        from tests.archive_rig import free_ports

        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "client_key")], check=True)
        shutil.copy(work / "client_key.pub", work / "authorized_keys")
        (work / "sshd_config").write_text(SSHD_CONFIG.format(port=self.port, work=work))
        Path("/run/sshd").mkdir(exist_ok=True)
        self.proc = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f",
                                      str(work / "sshd_config")], stderr=subprocess.DEVNULL)
        from tests.archive_rig import _wait_port

        log = work / "none.log"
        log.write_text("")
        _wait_port(self.port, self.proc, 20, log)

    def ssh(self) -> str:
        return (f"ssh -p {self.port} -i {self.work / 'client_key'} -o StrictHostKeyChecking=no "
                f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")

    def cpu(self) -> float:
        return _ticks(self.proc.pid, children=True)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _rsync_ssh(sshd: Sshd, sources: list[Path], work: Path, verify: bool) -> float:
    targets = [work / f"rsync-{i}-{time.monotonic_ns()}" for i in range(len(sources))]
    start = time.perf_counter()
    procs = [subprocess.Popen(["rsync", "-a", "-e", sshd.ssh(), f"root@127.0.0.1:{src}/", str(dst)])
             for src, dst in zip(sources, targets)]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("rsync -e ssh failed")
    if verify:
        checks = [subprocess.Popen(["sha256sum", *map(str, sorted(t.iterdir()))], stdout=subprocess.DEVNULL)
                  for t in targets]
        for p in checks:
            p.wait()
    took = time.perf_counter() - start
    for t in targets:
        shutil.rmtree(t, ignore_errors=True)
    return took


def offload(work: Path, agency, bays: int = 5) -> list[tuple[str, str, str]]:
    """Recorders in their own processes (as on a real link), docks through the service:
    one bay alone, then ``bays - 1`` (4) at once, each beside rsync -e ssh."""
    import asyncio
    import threading

    from archive.server import RunningServer
    from bench.dock import SERVE
    from device.sealing.state import SealingState  # noqa: F401 - the recorder process imports it
    from dock.session import DockSession
    from device.sealing import pki
    from dock.archive_client import ArchiveClient

    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        return [("dock offload beside rsync -e ssh", "skipped", "sshd missing: apt-get install openssh-server")]
    rigs = [make_rig(agency, work / f"bay{i}", device_id=f"B00000{i}") for i in range(1, bays + 1)]
    # The archive service in a process of its own, as on its own host.
    keys = work / "service-keys"
    receipt = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", keys / "arch")
    dock_key = pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-1", keys / "dock")
    config = archive_config_toml(work / "service", agency.ca_cert_path, receipt, receipt.with_suffix(".crt"))
    service = subprocess.Popen([sys.executable, "-m", "bodycam", "archive", "--config", str(config), "serve"],
                               cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE,
                               text=True)
    url = service.stderr.readline().split()[3].rstrip(";")

    def client() -> ArchiveClient:
        return ArchiveClient(url, key=dock_key, certificate=dock_key.with_suffix(".crt"), ca=agency.ca_cert_path)
    sshd = Sshd(work / "sshd")
    recorders: list[subprocess.Popen] = []
    rows = []
    try:
        for rig in rigs:
            rig.record(SEGMENTS, FRAGMENTS, FRAGMENT)
            rig.link.stop()
            rig.sealing.close()
        sources = []
        for i, rig in enumerate(rigs):
            snap = work / f"snapshot{i}"
            shutil.copytree(rig.state / "segments", snap)
            sources.append(snap)
        total = sum(p.stat().st_size for p in sources[0].iterdir())
        for rig in rigs:
            proc = subprocess.Popen([sys.executable, "-c", SERVE, str(rig.state)], stdout=subprocess.PIPE,
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
            rig.port = int(proc.stdout.readline())
            recorders.append(proc)

        def dock(i: int, results: dict) -> None:
            rig = rigs[i]
            session = DockSession(identity=rig.identity, url=f"https://127.0.0.1:{rig.port}", bay=i + 1,
                                  expected_device=f"B00000{i + 1}", archive=client(), registry=rig.registry,
                                  staging=rig.root / "dock" / "staging", require_clock_synced=False, timeout=60)
            results[i] = asyncio.run(session.run())

        cpu0 = sshd.cpu()
        one_rsync = _rsync_ssh(sshd, sources[:1], work, verify=False)
        sshd_cpu = sshd.cpu() - cpu0
        one_verified = _rsync_ssh(sshd, sources[:1], work, verify=True)
        rec_cpu0 = _ticks(recorders[0].pid, children=False)
        results: dict = {}
        start = time.perf_counter()
        dock(0, results)
        one_dock = time.perf_counter() - start
        rec_cpu = _ticks(recorders[0].pid, children=False) - rec_cpu0
        assert results[0].outcome == "done" and results[0].segments_archived == SEGMENTS, results[0].outcome
        many_rsync = _rsync_ssh(sshd, sources[1:], work, verify=False)
        threads = [threading.Thread(target=dock, args=(i, results)) for i in range(1, bays)]
        start = time.perf_counter()
        [t.start() for t in threads]
        [t.join() for t in threads]
        many_dock = time.perf_counter() - start
        assert all(results[i].outcome == "done" for i in range(1, bays)), {i: r.outcome for i, r in results.items()}
        mb = total / 1e6
        r1, rv, d1 = mb / one_rsync, mb / one_verified, mb / one_dock
        n = bays - 1
        rn, dn = n * mb / many_rsync, n * mb / many_dock
        gb = total / 1e9
        rows += [
            ("rsync -e ssh, one recorder (baseline)", f"{r1:,.0f} MB/s", f"{mb:.0f} MB"),
            ("rsync -e ssh + sha256sum (baseline)", f"{rv:,.0f} MB/s", ""),
            ("dock offload through the archive service", f"{d1:,.0f} MB/s",
             f"{d1 / r1:.2f} x rsync-ssh (target >= 1.0: {_ok(d1 / r1 >= 1.0)}), {d1 / rv:.2f} x rsync-ssh+sha256sum "
             f"(target >= 1.5: {_ok(d1 / rv >= 1.5)})"),
            (f"{n} bays in parallel: rsync -e ssh (baseline)", f"{rn:,.0f} MB/s", ""),
            (f"{n} bays in parallel: dock offload", f"{dn:,.0f} MB/s", f"{dn / rn:.2f} x {n} rsyncs"),
            ("recorder CPU per GB served: sshd + rsync (baseline)", f"{sshd_cpu / gb:.1f} CPU-s/GB", ""),
            ("recorder CPU per GB served: dock link", f"{rec_cpu / gb:.1f} CPU-s/GB",
             f"{rec_cpu / max(sshd_cpu, 1e-9):.2f} x sshd's"),
        ]
    finally:
        for proc in recorders:
            proc.kill()
            proc.wait()
        sshd.stop()
        service.terminate()
        service.wait(30)
        service.stderr.close()
        for rig in rigs:
            rig.registry.db.close() if hasattr(rig.registry, "db") else None
    return rows


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
            def part(name, fn):  # one failing figure does not lose the others
                try:
                    return fn()
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    return [(name, "FAILED", f"{exc.__class__.__name__}: {exc}")]

            rows += part("archive scrub", lambda: scrub(work, agency, rig, names))
            rows += part("dock offload", lambda: offload(work / "offload", agency))
            rows += part("search SQLite", lambda: [search(work, agency, rig, "SQLite")])
            if pg.port:
                def search_pg():
                    subprocess.run([pg._bin("createdb"), "-h", str(pg.root / "run"), "-p", str(pg.port), "-U",
                                    "archive", "search"], check=True, capture_output=True, preexec_fn=pg._pre,
                                   cwd="/")
                    url = pg.url.replace("/archive?", "/search?")
                    return [search(work, agency, rig, "PostgreSQL", index=f'url = "{url}"\n')]
                rows += part("search PostgreSQL", search_pg)
        finally:
            rig.close()
            seaweed.stop()
            pg.stop()
            shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    for row in run():
        print("  ".join(row))
