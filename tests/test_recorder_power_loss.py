"""kill -9 the recorder at random moments: everything up to <= 1 s before
the kill verifies and plays."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from device.sealing.clock import ManualClock
from device.sealing import pki
from device.sealing.state import SealingState
from device.sealing.unseal import unseal_recordings
from device.sealing.verifier import Verifier

from .media import decode_errors, packet_times

REPO = Path(__file__).resolve().parent.parent
KILLS = 20
FPS = 30
MAX_LOSS = 1.0


def _start_recorder(state: Path) -> tuple[subprocess.Popen, float, float]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bodycam", "record", "--config", str(REPO / "hw-configs" / "sim.toml"),
         "--state", str(state), "--seconds", "60", "--officer", "010203"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    while True:
        line = child.stdout.readline()
        assert line, child.stderr.read().decode()
        if line.startswith(b"recording"):
            started = time.monotonic()
            preroll = float(line.split(b"pre-roll ")[1].split(b" s")[0])
            return child, started, preroll


def test_kill_minus_nine_during_recording(agency, tmp_path):
    rng = random.Random(1127)
    state = agency.enrol(tmp_path / "rec", "P000001")
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    seen: set[str] = set()
    losses = []
    for kill in range(KILLS):
        child, started, preroll = _start_recorder(state)
        time.sleep(rng.uniform(0.3, 3.0))
        child.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        child.wait()
        child.stdout.close()
        child.stderr.close()

        SealingState.open(state, ManualClock()).close()  # what the next start does first
        report, _ = verifier.verify_recording(state)
        assert {s.status for s in report.segments} <= {"verified", "truncated"}, report
        out = tmp_path / f"out{kill}"
        result = unseal_recordings(verifier, state, out)
        assert result.ok, result.lines
        this_run = sorted(s.name for s in report.segments
                          if s.name not in seen and s.media == "video/mp4")
        seen.update(s.name for s in report.segments)
        frames = 0
        for name in this_run:
            path = out / f"{name}.mp4"
            if not path.exists():  # cut before its first checkpoint: nothing covered
                continue
            assert decode_errors(path) == "", name  # what was sealed plays
            frames += len(packet_times(path, "v"))
        loss = preroll + (killed - started) - frames / FPS
        losses.append(loss)
        assert loss <= MAX_LOSS, (kill, loss, this_run)
    print(f"loss at kill -9: max {max(losses):.3f} s, mean {sum(losses) / len(losses):.3f} s")
    assert sum(1 for s in report.segments if s.status == "truncated") >= KILLS // 2
