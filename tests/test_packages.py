"""The Debian packages (packaging/): built with debhelper in the suite, then
bodycam-station installed with apt into a clean Debian bookworm chroot.
(bodycam-recorder is installed into the arm64 tree in test_arm64_smoke.py.)"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import socket
import subprocess
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from bodycam import __version__
from bodycam.cli import main

from .packaging import REPO, built_packages, debootstrap_tree, need


def contents(deb: Path) -> dict[str, str]:
    """path -> 'mode owner' of each entry (dpkg-deb -c)."""
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    entries = {}
    for line in out.splitlines():
        mode, owner, _size, _date, _time, path, *_ = line.split()
        entries[path.removeprefix(".").rstrip("/") or "/"] = f"{mode} {owner}"
    return entries


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True).stdout.strip()


def documentation(unit_text: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit_text.splitlines() if line.startswith("Documentation=")]


@pytest.fixture(scope="module")
def debs():
    need("dpkg-buildpackage", "dh", "/usr/bin/python3.11")
    return built_packages()


STATION_UNITS = ("bodycam-dock.service", "bodycam-archive.service")
RECORDER_UNITS = ("bodycam-recorder.service", "bodycam-gadget.service")


@pytest.mark.slow
@pytest.mark.parametrize("key, units, kind", [
    ("station-amd64", STATION_UNITS, "station"), ("station-arm64", STATION_UNITS, "station"),
    ("recorder-arm64", RECORDER_UNITS, "recorder")])
def test_each_package_carries_units_users_directories_config_and_docs(debs, key, units, kind):
    deb = debs[key]
    files = contents(deb)
    assert field(deb, "Version") == __version__ and field(deb, "Architecture") == key.split("-")[1]
    for unit in units:
        assert f"/lib/systemd/system/{unit}" in files
        for link in documentation((REPO / "systemd" / unit).read_text()):
            assert link.startswith("file:///usr/share/doc/bodycam/"), link
            assert link.removeprefix("file://") in files, f"{unit}: {link} is not in {deb.name}"
    assert f"/usr/lib/sysusers.d/bodycam-{kind}.conf" in files
    assert f"/usr/lib/tmpfiles.d/bodycam-{kind}.conf" in files
    assert files["/opt/bodycam/venv/bin/bodycam"].startswith("-rwxr-xr-x root/root")
    assert files["/opt/bodycam/venv/bin/python3.11"].startswith("l")
    conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True, text=True).stdout
    assert ("/etc/bodycam/dock.toml" if kind == "station" else "/etc/bodycam/sim.toml") in conffiles.split()
    depends = field(deb, "Depends")
    assert "python3.11" in depends and "systemd" in depends
    # the wheels are for the package's architecture, not the build machine's
    machine = {"amd64": "x86_64", "arm64": "aarch64"}[key.split("-")[1]]
    extensions = [p for p in files if ".cpython-311-" in p and p.endswith(".so")]
    assert len(extensions) > 10 and all(p.endswith(f"-{machine}-linux-gnu.so") for p in extensions), extensions[:5]


def test_units_document_only_installed_docs():
    for unit in sorted((REPO / "systemd").glob("*.service")):
        links = documentation(unit.read_text())
        assert links and all(re.fullmatch(r"file:///usr/share/doc/bodycam/[\w.-]+\.md", link) for link in links), unit
        for link in links:
            name = link.rsplit("/", 1)[1]
            assert (REPO / name).exists() or (REPO / "docs" / name).exists(), link


def test_archive_unit_runs_the_archive_service_as_its_own_user():
    text = (REPO / "systemd/bodycam-archive.service").read_text()
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(text.replace("SystemCallFilter=~", "SystemCallFilterNot="))
    service = unit["Service"]
    assert service["ExecStart"] == "/opt/bodycam/venv/bin/bodycam archive serve --config /etc/bodycam/archive.toml"
    assert service["User"] == "bodycam-archive" and service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "bodycam-archive" and service["CapabilityBoundingSet"] == ""


def test_sysusers_and_tmpfiles_match_the_units():
    """Every User= of a unit has a sysusers line; every StateDirectory a tmpfiles line, 0700, owned by it."""
    for kind, units in (("station", STATION_UNITS), ("recorder", ("bodycam-recorder.service",))):
        users = (REPO / f"systemd/bodycam-{kind}.sysusers").read_text()
        dirs = (REPO / f"systemd/bodycam-{kind}.tmpfiles").read_text()
        for unit in units:
            text = (REPO / "systemd" / unit).read_text()
            user = re.search(r"^User=(\S+)", text, re.M).group(1)
            assert re.search(rf"^u {user}\s", users, re.M), (kind, user)
            own = re.search(r"^StateDirectory=(\S+)", text, re.M).group(1)
            assert re.search(rf"^d /var/lib/{own}\s+0700 {user}\s+{user}\s", dirs, re.M), (kind, own)
        assert re.search(r"^d /etc/bodycam\s+0755 root\s+root\s", dirs, re.M)


def test_config_check_knows_the_dock_config_and_names_bad_keys(tmp_path):
    """The examples the station package installs (dock/dock.example.toml as is,
    archive/example.toml with absolute paths) pass; a bad value and an unknown
    key are named; a TOML that is no bodycam config is refused."""
    example = REPO / "dock/dock.example.toml"
    ok = CliRunner().invoke(main, ["config", "check", str(example), str(REPO / "hw-configs/sim.toml")])
    assert ok.exit_code == 0 and f"{example}: OK, dock config (2 bay(s)" in ok.output, ok.output
    assert "archive https://archive.example.internal:8444" in ok.output, ok.output
    bad = tmp_path / "dock.toml"
    text = example.read_text()
    assert "timeout_seconds = 120" in text
    bad.write_text(text.replace("timeout_seconds = 120", "timeout_seconds = 1\ncolour = 1", 1))
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 2 and "archive.timeout_seconds" in result.output and "colour: unknown key" in result.output, \
        result.output
    neither = tmp_path / "other.toml"
    neither.write_text('name = "x"\n')
    result = CliRunner().invoke(main, ["config", "check", str(neither)])
    assert result.exit_code == 2 and f"{neither}: neither a hw-config" in result.output, result.output


def test_config_check_knows_the_archive_config_and_names_bad_keys(tmp_path):
    example = REPO / "archive/example.toml"
    ok = CliRunner().invoke(main, ["config", "check", str(example)])
    assert ok.exit_code == 0 and f"{example}: OK, archive config (store local, index sqlite, 1 agency" in ok.output, \
        ok.output
    text = example.read_text()
    assert "patrol_days = 183" in text
    bad = tmp_path / "archive.toml"
    bad.write_text(text.replace("patrol_days = 183", "patrol_days = 30\nshade = 1", 1))
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 2 and "retention.patrol_days" in result.output and "shade" in result.output, result.output


# -- installed in a clean Debian chroot ---------------------------------------------------------


def chroot(root: Path, *argv: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8",
           "HOME": "/root"}
    result = subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{argv}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def station_root(debs, tmp_path_factory):
    need("debootstrap", "chroot", "tar", root=True)
    root = tmp_path_factory.mktemp("station") / "root"
    debootstrap_tree(root, "amd64")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        deb = debs["station-amd64"]
        shutil.copy(deb, root / "tmp" / deb.name)
        chroot(root, "apt-get", "update", "-qq")
        install = chroot(root, "apt-get", "install", "-y", "--no-install-recommends", f"/tmp/{deb.name}")
        yield root, install.stdout + install.stderr
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")])


@pytest.mark.slow
def test_station_installs_with_apt_and_checks_its_config(station_root):
    root, log = station_root
    assert "/etc/bodycam/dock.toml: OK, dock config (2 bay(s)" in log, log[-3000:]
    assert "/etc/bodycam/archive.toml: OK, archive config (store local, index sqlite" in log, log[-3000:]
    assert "bodycam-station: configs pass" in log
    assert chroot(root, "/opt/bodycam/venv/bin/bodycam", "--version").stdout.strip() == f"bodycam, version {__version__}"
    ok = chroot(root, "/opt/bodycam/venv/bin/bodycam", "config", "check", "/etc/bodycam/dock.toml")
    assert ok.stdout.startswith("/etc/bodycam/dock.toml: OK")
    assert (root / "etc/bodycam/dock.toml").read_text() == (REPO / "dock/dock.example.toml").read_text()
    bad = root / "tmp/archive-bad.toml"
    bad.write_text((root / "etc/bodycam/archive.toml").read_text().replace("backend = \"local\"", "backend = \"tape\""))
    refused = chroot(root, "/opt/bodycam/venv/bin/bodycam", "config", "check", "/tmp/archive-bad.toml", check=False)
    assert refused.returncode == 2 and "store" in refused.stderr, refused.stderr


@pytest.mark.slow
def test_the_packaged_archive_config_keeps_everything_in_its_state_directory(station_root):
    """archive/example.toml's relative paths would land beside /etc/bodycam/archive.toml;
    the package puts each under the archive unit's StateDirectory (0700, bodycam-archive)."""
    root, _ = station_root
    script = ("import sys; from archive.config import load_archive_config as load; c = load(sys.argv[1]); "
              "print(c.state, c.store.path, c.server.key, c.server.certificate, c.index.url.removeprefix('sqlite:///'), "
              "*[p for a in c.agencies for p in (a.ca, a.receipt_key, a.receipt_certificate)])")
    paths = chroot(root, "/opt/bodycam/venv/bin/python", "-c", script, "/etc/bodycam/archive.toml").stdout.split()
    assert len(paths) == 8 and all(p.startswith("/var/lib/bodycam-archive/") for p in paths), paths


@pytest.mark.slow
def test_station_users_and_directories_have_the_modes_the_units_expect(station_root):
    root, _ = station_root
    for user in ("bodycam-dock", "bodycam-archive"):
        entry = chroot(root, "getent", "passwd", user).stdout.strip().split(":")
        assert entry[5] == f"/var/lib/{user}" and entry[6] == "/usr/sbin/nologin" and int(entry[2]) < 1000
        assert chroot(root, "stat", "-c", "%a %U %G", f"/var/lib/{user}").stdout.split() == ["700", user, user]
    assert chroot(root, "stat", "-c", "%a %U", "/etc/bodycam").stdout.split() == ["755", "root"]


@pytest.mark.slow
def test_station_units_verify_in_the_chroot(station_root):
    root, _ = station_root
    result = chroot(root, "systemd-analyze", "verify", *STATION_UNITS, check=False)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr
    broken = root / "etc/systemd/system/bodycam-broken.service"
    broken.write_text((root / "lib/systemd/system/bodycam-dock.service").read_text()
                      .replace("ExecStart=/opt/bodycam/venv/bin/bodycam", "ExecStart=/opt/bodycam/venv/bin/nothing"))
    try:
        result = chroot(root, "systemd-analyze", "verify", "bodycam-broken.service", check=False)
        assert result.returncode != 0 and "/opt/bodycam/venv/bin/nothing" in result.stderr
    finally:
        broken.unlink()
    for unit in STATION_UNITS:
        for link in documentation((root / "lib/systemd/system" / unit).read_text()):
            assert (root / link.removeprefix("file:///")).is_file(), link


@pytest.mark.slow
def test_the_packaged_dock_starts_as_its_user_with_the_example_config(station_root, tmp_path):
    """Enrol the dock at the example config's paths, then run the unit's
    ExecStart= as bodycam-dock in the chroot: it must tell a real AF_UNIX
    NOTIFY_SOCKET READY=1 (Type=notify), and stop cleanly on SIGTERM."""
    from device.sealing import pki

    root, _ = station_root
    config = tomllib.loads((root / "etc/bodycam/dock.toml").read_text())
    ca = pki.create_ca(tmp_path / "ca", "Package Test Agency")
    key = root / config["key"].lstrip("/")
    issued = pki.issue_keypair(ca, pki.ROLE_DOCK, "station-1", key.parent, stem=key.stem)
    assert issued == key and key.with_suffix(".crt") == root / config["certificate"].lstrip("/")
    shutil.copy(tmp_path / "ca/ca.crt", root / config["ca"].lstrip("/"))
    chroot(root, "chown", "-R", "bodycam-dock:bodycam-dock", "/var/lib/bodycam-dock", str(Path(config["key"]).parent))
    uid, gid = chroot(root, "id", "-u", "bodycam-dock").stdout.strip(), chroot(root, "id", "-g", "bodycam-dock").stdout.strip()
    exec_start = re.search(r"^ExecStart=(.+)$", (root / "lib/systemd/system/bodycam-dock.service").read_text(), re.M)

    notify_dir = root / "run/bodycam-test"
    notify_dir.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_dir / "notify"))
    os.chmod(notify_dir / "notify", 0o777)
    sock.settimeout(120)
    subprocess.run(["mount", "--bind", "-o", "ro", "/sys", str(root / "sys")], check=True)
    try:
        proc = subprocess.Popen(["chroot", f"--userspec={uid}:{gid}", str(root), "/usr/bin/env", "-i",
                                 "PATH=/usr/bin:/bin", "NOTIFY_SOCKET=/run/bodycam-test/notify",
                                 *exec_start.group(1).split()],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            proc.kill()
            pytest.fail(f"no READY=1 in 120 s: {proc.communicate()}")
        assert "READY=1" in message.split("\n"), message
        assert f"STATUS=watching {len(config['bays'])} bays" in message
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert (root / "var/lib/bodycam-dock/registry.sqlite").stat().st_uid == int(uid)
    finally:
        sock.close()
        subprocess.run(["umount", "-l", str(root / "sys")])


@pytest.mark.slow
def test_the_packaged_archive_starts_as_its_user_with_the_example_config(station_root, tmp_path):
    """Put the archive's keys at the packaged config's paths, then run the unit's
    ExecStart= as bodycam-archive in the chroot (free ports: the example's fixed
    ones are changed to 0): READY=1 on a real AF_UNIX NOTIFY_SOCKET once it
    listens, STOPPING=1 and exit 0 on SIGTERM, its index made in its state."""
    from device.sealing import pki

    root, _ = station_root
    installed = root / "etc/bodycam/archive.toml"
    config = tomllib.loads(installed.read_text())
    ca = pki.create_ca(tmp_path / "ca", "Package Test Agency")
    key = root / config["server"]["key"].lstrip("/")
    assert pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", key.parent, stem=key.stem) == key
    (agency,) = config["agencies"]
    assert (root / agency["receipt_key"].lstrip("/")) == key
    shutil.copy(tmp_path / "ca/ca.crt", root / agency["ca"].lstrip("/"))
    text = installed.read_text()
    assert 'listen = "0.0.0.0"\nport = 8444\n' in text
    installed.write_text(text.replace('listen = "0.0.0.0"\nport = 8444\n', 'listen = "127.0.0.1"\nport = 0\n')
                         + "\n[lawful_use.people]\nport = 0\n")
    chroot(root, "chown", "-R", "bodycam-archive:bodycam-archive", "/var/lib/bodycam-archive")
    uid = chroot(root, "id", "-u", "bodycam-archive").stdout.strip()
    gid = chroot(root, "id", "-g", "bodycam-archive").stdout.strip()
    exec_start = re.search(r"^ExecStart=(.+)$", (root / "lib/systemd/system/bodycam-archive.service").read_text(), re.M)

    notify_dir = root / "run/bodycam-test-archive"
    notify_dir.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_dir / "notify"))
    os.chmod(notify_dir / "notify", 0o777)
    try:
        proc = subprocess.Popen(["chroot", f"--userspec={uid}:{gid}", str(root), "/usr/bin/env", "-i",
                                 "PATH=/usr/bin:/bin", "NOTIFY_SOCKET=/run/bodycam-test-archive/notify",
                                 *exec_start.group(1).split()],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sock.settimeout(1)
        for _ in range(180):
            try:
                message = sock.recv(4096).decode()
                break
            except TimeoutError:
                if proc.poll() is not None:
                    pytest.fail(f"archive serve exited {proc.returncode} before READY=1: {proc.communicate()}")
        else:
            proc.kill()
            pytest.fail(f"no READY=1 in 180 s: {proc.communicate()}")
        assert message.split("\n")[0] == "READY=1", message
        assert re.search(r"^STATUS=archive service on https://127\.0\.0\.1:\d+", message, re.M), message
        sock.settimeout(60)
        proc.terminate()
        assert sock.recv(4096) == b"STOPPING=1"
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert (root / "var/lib/bodycam-archive/index.sqlite").stat().st_uid == int(uid)
    finally:
        sock.close()


@pytest.mark.slow
def test_purging_the_station_keeps_the_evidence(station_root):
    """Removing the package never removes what the archive holds."""
    root, _ = station_root
    kept = root / "var/lib/bodycam-archive/store/segment.bcseg"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(b"sealed footage")
    chroot(root, "apt-get", "purge", "-y", "bodycam-station")
    assert kept.read_bytes() == b"sealed footage"
    assert not (root / "opt/bodycam/venv/bin/bodycam").exists()
