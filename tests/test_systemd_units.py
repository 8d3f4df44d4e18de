"""The systemd units pass `systemd-analyze verify` without a single warning and
stay under an exposure threshold in `systemd-analyze security --offline=true`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import require_root, require_tool

REPO = Path(__file__).resolve().parent.parent
UNITS = sorted((REPO / "systemd").glob("*.service"))
THRESHOLDS = {"bodycam-recorder.service": 2.5, "bodycam-gadget.service": 5.0, "bodycam-dock.service": 2.0,
              "bodycam-archive.service": 2.0}
EXECUTABLES = ["/opt/bodycam/venv/bin/bodycam", "/usr/lib/bodycam/gadget.sh"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A root with the host's base units, our units, and their executables."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing: `make test` installs systemd (run as root)")
    root = tmp_path_factory.mktemp("sysroot")
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, units / unit.name)
    for exe in EXECUTABLES:
        path = root / exe.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return root


def verify(root: Path, *units: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", *map(str, units)],
                          capture_output=True, text=True)


def test_units_verify_without_any_warning(root):
    assert {u.name for u in UNITS} >= set(THRESHOLDS)
    result = verify(root, *(root / "etc/systemd/system" / u.name for u in UNITS))
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr


def test_a_broken_unit_is_noticed(root, tmp_path):
    broken = root / "etc/systemd/system/bodycam-broken.service"
    broken.write_text((REPO / "systemd/bodycam-recorder.service").read_text()
                      .replace("Type=notify", "Type=notify\nRestrat=always"))
    result = verify(root, broken)
    assert "Restrat" in result.stderr
    broken.unlink()


@pytest.mark.parametrize("unit", sorted(THRESHOLDS))
def test_exposure_under_threshold(root, unit):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}",
                             f"--threshold={int(THRESHOLDS[unit] * 10)}", unit],
                            capture_output=True, text=True)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert level, result.stdout + result.stderr
    assert float(level.group(1)) <= THRESHOLDS[unit]
    assert result.returncode == 0


def test_recorder_unit_has_what_the_design_asks():
    text = (REPO / "systemd/bodycam-recorder.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=\n", "ReadWritePaths=/var/lib/bodycam",
                 "SupplementaryGroups=video gpio i2c audio", "DevicePolicy=closed"):
        assert line in text, line
    assert "PrivateDevices=yes" not in text


def test_dock_unit_allows_netlink_for_udev():
    text = (REPO / "systemd/bodycam-dock.service").read_text()
    assert "RestrictAddressFamilies=AF_UNIX AF_NETLINK" in text and "Type=notify" in text


def _udev_errors(rules_text: str, name: str) -> list[str]:
    """Load rules into udev's rule engine (udevadm test) and return its complaints."""
    path = Path("/run/udev/rules.d") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rules_text)
    try:
        out = subprocess.run(["udevadm", "test", "--action=add", "/sys/class/net/lo"],
                             capture_output=True, text=True)
    finally:
        path.unlink()
    return [line for line in (out.stdout + out.stderr).splitlines()
            if name in line and not line.startswith("Reading rules file")]


@pytest.mark.parametrize("rules", sorted((REPO / "systemd").glob("*.rules")), ids=lambda p: p.name)
def test_udev_rules_load_without_errors(rules):
    require_root("udevadm test")
    require_tool("udevadm")
    assert _udev_errors(rules.read_text(), "97-bodycam-under-test.rules") == []
    assert _udev_errors('SUBSYSTEM=="net", BOGUS{x}="1"\n', "97-bodycam-broken.rules"), \
        "udevadm test must report a broken rule"


def test_gadget_script_uses_the_device_id_as_serial(tmp_path):
    """Run the script's ID extraction against a real certificate."""
    from device.sealing import pki

    ca = pki.create_ca(tmp_path / "ca", "Test")
    ident = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "a", tmp_path / "a")
    pki.enrol_device(ca, tmp_path / "state", "G123456", pki.load_cert(ident.with_suffix(".crt")))
    script = (REPO / "systemd/gadget.sh").read_text()
    function = script[script.index("device_id() {"):script.index("\n}\n") + 3]
    out = subprocess.run(["sh", "-c", f"{function}\ndevice_id"], capture_output=True, text=True,
                         env={"CERT": str(tmp_path / "state/identity/device.crt"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "G123456", out.stderr


# -- the archive unit is Type=notify: `bodycam archive serve` must say READY=1 ----------------


def _notify_listener(path: Path):
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(120)
    return sock


def test_sd_notify_reaches_a_real_socket_and_is_quiet_outside_systemd(tmp_path, caplog):
    """The one sd_notify of the recorder, dock and archive (device/sealing/systemd_notify.py)."""
    from device.sealing.systemd_notify import SystemdNotifier

    with _notify_listener(tmp_path / "notify") as sock:
        assert SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify")}).ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    assert not SystemdNotifier({}).ready()  # not under systemd: nothing sent, no error
    nobody = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level("DEBUG", logger="device.sealing.systemd_notify"):
        assert not nobody.ready() and not nobody.stopping() and nobody.sent == []
    assert [r.levelname for r in caplog.records] == ["WARNING", "DEBUG"]  # warned once, not per ping
    assert "nobody-listens" in caplog.records[0].getMessage()


def test_sd_notify_reaches_an_abstract_socket():
    import socket

    from device.sealing.systemd_notify import SystemdNotifier

    name = f"bodycam-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).stopping()
        assert sock.recv(4096) == b"STOPPING=1"


def test_one_sd_notify_for_every_program():
    """The recorder, the dock and the archive share one implementation (none of their own)."""
    import ast

    from device.daemon import SystemdNotifier as recorders
    from device.sealing.systemd_notify import SystemdNotifier

    assert recorders is SystemdNotifier
    for path in sorted(REPO.glob("*/**/*.py")):
        if ".venv" in path.parts or path.name == "systemd_notify.py" or path.parts[len(REPO.parts)] == "tests":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert "NOTIFY_SOCKET" not in node.value, f"{path}: a second sd_notify"


def test_archive_serve_as_the_unit_runs_it_says_ready_then_stopping(agency, tmp_path):
    """The unit's ExecStart= arguments (with a test config): READY=1 only once the
    listeners are up (its STATUS names the address), STOPPING=1 on SIGTERM, exit 0."""
    import signal
    import sys

    from device.sealing import pki

    from .archive_rig import archive_config_toml

    exec_start = re.search(r"^ExecStart=\S+/bodycam (.+)$", (REPO / "systemd/bodycam-archive.service").read_text(),
                           re.M).group(1).split()
    assert exec_start == ["archive", "serve", "--config", "/etc/bodycam/archive.toml"]
    receipt = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", tmp_path / "arch")
    config = archive_config_toml(tmp_path / "archive", agency.ca_cert_path, receipt, receipt.with_suffix(".crt"))
    with _notify_listener(tmp_path / "notify") as sock:
        child = subprocess.Popen([sys.executable, "-m", "bodycam", *exec_start[:-1], str(config)], cwd=REPO,
                                 env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            sock.settimeout(1)
            for _ in range(120):
                try:
                    ready = sock.recv(4096).decode().split("\n")
                    break
                except TimeoutError:
                    if child.poll() is not None:
                        pytest.fail(f"archive serve exited {child.returncode} before READY=1: {child.communicate()}")
            else:
                child.kill()
                pytest.fail(f"no READY=1 in 120 s: {child.communicate()}")
            sock.settimeout(60)
            assert ready[0] == "READY=1" and re.match(r"STATUS=archive service on https://127\.0\.0\.1:\d+", ready[1]), ready
            child.send_signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            _, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
