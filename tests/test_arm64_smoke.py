"""The project on the Pi's platform: arm64 Debian bookworm under QEMU (tests/arm64/smoke.sh)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_record_seal_verify_on_arm64_bookworm(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (binfmt_misc, chroot); CI runs as root")
    for tool in ("debootstrap", "qemu-aarch64-static", "dpkg"):
        assert shutil.which(tool), f"{tool} missing: `make test` installs it"
    env = {**os.environ, "HOST_PYTHON": sys.executable,
           "ARM64_WORK": os.environ.get("ARM64_WORK", str(REPO / "build" / "arm64"))}
    result = subprocess.run(["bash", str(REPO / "tests/arm64/smoke.sh")], capture_output=True,
                            text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["machine"] == "aarch64" and summary["python"].startswith("3.11")
    assert summary["verification"] == "verified" and summary["segments"] >= 2
    assert summary["modules"] >= 30
    print(f"arm64 smoke: {summary}")
