"""The project on the Pi's platform: arm64 Debian bookworm under QEMU (tests/arm64/smoke.sh),
then the bodycam-recorder package installed there and its self-test run."""

from __future__ import annotations

import hashlib
import json
import os
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
    assert "/etc/bodycam/sim.toml: OK (sim" in result.stderr, result.stderr[-3000:]
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
