"""The project on the Pi's platform: arm64 Debian bookworm under QEMU (tests/arm64/smoke.sh),
then the bodycam-recorder package installed there and its self-test run."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bodycam import __version__

from .packaging import built_packages, need

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_record_seal_verify_and_the_recorder_package_on_arm64_bookworm(tmp_path):
    need("debootstrap", "qemu-aarch64-static", "dpkg", "dpkg-buildpackage", "dh", root=True)
    deb = built_packages()["recorder-arm64"]
    work = Path(os.environ.get("ARM64_WORK", str(REPO / "build" / "arm64")))
    env = {**os.environ, "HOST_PYTHON": sys.executable, "ARM64_WORK": str(work), "RECORDER_DEB": str(deb)}
    result = subprocess.run(["bash", str(REPO / "tests/arm64/smoke.sh")], capture_output=True,
                            text=True, env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["machine"] == "aarch64" and summary["python"].startswith("3.11")
    assert summary["verification"] == "verified" and summary["segments"] >= 2
    assert summary["modules"] >= 30
    print(f"arm64 smoke: {summary}")

    # The package: its maintainer scripts made the user and the state directory,
    # checked the config, and the installed program passes its self-test.
    root = work / "root"
    assert "/etc/bodycam/sim.toml: OK, hw-config (sim, camera pyav" in result.stderr, result.stderr[-3000:]
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    assert passwd["bodycam"][5] == "/var/lib/bodycam"
    state = (root / "var/lib/bodycam").stat()
    assert oct(state.st_mode & 0o777) == "0o700" and state.st_uid == int(passwd["bodycam"][2])
    report = json.loads((root / "tmp/selftest.json").read_text())
    assert report["passed"] is True, report
    assert report["software"] == f"bodycam {__version__}"
    assert report["config"] == {"name": "sim.toml",
                                "sha256": hashlib.sha256((REPO / "hw-configs/sim.toml").read_bytes()).hexdigest()}
    results = {c["name"]: c["result"] for c in report["checks"]}
    for name in ("camera", "microphone", "button record", "led red", "fuel gauge", "storage speed", "rtc"):
        assert results[name] == "PASS", (name, report)

    # The unit's own command line, as the unit's user, in the tree: enrolled at
    # the packaged paths, it must say READY=1 on a real notify socket and seal
    # a boot and an orderly shutdown that `bodycam log` verifies.
    run_recorder_unit_in_tree(root, tmp_path, uid=int(passwd["bodycam"][2]), gid=int(passwd["bodycam"][3]))


def run_recorder_unit_in_tree(root: Path, tmp_path: Path, uid: int, gid: int) -> None:
    from device.sealing import pki

    state = root / "var/lib/bodycam"
    for old in state.iterdir():  # a previous run's enrolment in this cached scratch tree
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    ca = pki.create_ca(tmp_path / "ca", "arm64 package test")
    recipient = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "archive-1", tmp_path / "archive")
    pki.enrol_device(ca, state, "ARM6402", pki.load_cert(recipient.with_suffix(".crt")))
    subprocess.run(["chown", "-R", f"{uid}:{gid}", str(state)], check=True)
    shutil.copy(tmp_path / "ca/ca.crt", root / "tmp/agency-ca.crt")
    shutil.copy(root / "etc/bodycam/sim.toml", root / "etc/bodycam/hw.toml")
    exec_start = re.search(r"^ExecStart=(.+)$", (root / "lib/systemd/system/bodycam-recorder.service").read_text(),
                           re.M).group(1).split()

    notify_dir = root / "run/bodycam-test"
    shutil.rmtree(notify_dir, ignore_errors=True)
    notify_dir.mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_dir / "notify"))
    os.chmod(notify_dir / "notify", 0o777)
    sock.settimeout(300)
    as_bodycam = ["chroot", f"--userspec={uid}:{gid}", str(root), "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                  "HOME=/tmp", "LANG=C.UTF-8"]
    try:
        proc = subprocess.Popen([*as_bodycam, "NOTIFY_SOCKET=/run/bodycam-test/notify", *exec_start],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            messages = []
            while not any("READY=1" in m.split("\n") for m in messages):
                messages.append(sock.recv(4096).decode())
        except TimeoutError:
            proc.kill()
            pytest.fail(f"no READY=1 in 300 s: {messages} {proc.communicate()}")
        proc.terminate()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        assert "standby" in out
    finally:
        sock.close()
    shown = subprocess.run([*as_bodycam, "/opt/bodycam/venv/bin/bodycam", "log", "--json", "--ca",
                            "/tmp/agency-ca.crt", "/var/lib/bodycam"], capture_output=True, text=True, timeout=600)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-2000:]
    log = json.loads(shown.stdout)
    assert log["device"] == "ARM6402" and log["seal_log"]["status"] == "verified"
    events = [e["event"] for e in log["entries"]]
    assert events[0] == "boot" and events[-1] == "shutdown", events
    assert {e["status"] for e in log["entries"]} == {"verified"}
