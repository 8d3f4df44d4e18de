"""Audio-only mode, an orderly SIGTERM, a full card, and `bodycam status`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner
from gpiozero.pins.mock import MockFactory

from bodycam.cli import main
from device.config import load_hw_config
from device.daemon import SystemdNotifier
from device.recorder import Recorder
from device.sealing import pki
from device.sealing.seallog import scan_log
from device.sealing.unseal import unseal_recordings
from device.sealing.verifier import Verifier
from device.service import RecorderService

from .media import decode_errors, probe

REPO = Path(__file__).resolve().parent.parent
SIM = load_hw_config(REPO / "hw-configs" / "sim.toml")


def test_audio_only_mode_records_playable_sound(agency, tmp_path):
    config = SIM.model_copy(update={"recording": SIM.recording.model_copy(
        update={"mode": "audio", "segment_seconds": 2})})
    state = agency.enrol(tmp_path / "rec", "M000001")
    recorder = Recorder(config, state, config_name="sim.toml", officer="010203")
    assert recorder.camera is None
    recorder.start()
    time.sleep(3.0)
    recorder.stop()
    sealed = list(recorder.segmenter.sealed)
    recorder.shutdown()
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    out = tmp_path / "out"
    assert unseal_recordings(verifier, state, out).ok
    assert len(sealed) >= 2
    for name in sealed:
        path = out / f"{name}.m4a"
        streams = probe(path)["streams"]
        assert [s["codec_type"] for s in streams] == ["audio"] and streams[0]["codec_name"] == "aac"
        assert decode_errors(path) == ""
    first = json.loads((out / f"{sealed[0]}.json").read_text())["manifest"]
    assert first["media"] == "audio/mp4" and first["meta"]["mode"] == "audio" and first["meta"]["video"] is None


def test_sigterm_seals_everything_and_exits_cleanly(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "M000002")
    child = subprocess.Popen(
        [sys.executable, "-m", "bodycam", "record", "--config", str(REPO / "hw-configs" / "sim.toml"),
         "--state", str(state), "--officer", "010203"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout.readline().startswith(b"recording")
    time.sleep(2.0)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert b"stopped (signal)" in out
    events = [e.event for e, _ in scan_log(state / "seallog").entries]
    assert events[-2:] == ["record-stop", "shutdown"] and "unclean-stop" not in events
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert report.status == "verified" and {s.status for s in report.segments} == {"verified"}


def test_full_card_stops_recording_with_everything_sealed(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "M000003")
    service = RecorderService(SIM, state, config_name="sim.toml", pin_factory=MockFactory(),
                              notifier=SystemdNotifier({}))
    per_minute = SIM.bytes_per_second * 60
    free = {"bytes": int(per_minute * 1000)}
    service.health.free_bytes = lambda: free["bytes"]
    service.start_up()
    service.start()
    time.sleep(1.0)
    free["bytes"] = int(per_minute * 20)  # 20 minutes left: warn ahead
    assert service.check_health() == ["storage-low"] and service.recorder.state == "recording"
    time.sleep(0.5)
    free["bytes"] = int(per_minute * 1)  # below the 2-minute reserve: stop, sealed
    assert service.check_health() == ["storage-full"]
    assert service.recorder.state == "standby"
    service.start()  # pressing record on a full card does nothing but alarm
    assert service.recorder.state == "standby" and service.indicators.played[-1] == "storage-full"
    service.shutdown("test")
    entries = [e for e, _ in scan_log(state / "seallog").entries]
    kinds = [e.data.get("kind") for e in entries if e.event == "alarm"]
    assert kinds == ["storage-low", "storage-full"]
    assert [e.data.get("reason") for e in entries if e.event == "record-stop"] == ["storage-full"]
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert report.status == "verified" and {s.status for s in report.segments} == {"verified"}


def test_status_command(tmp_path):
    result = CliRunner().invoke(main, ["status", "--config", str(REPO / "hw-configs" / "sim.toml"),
                                       "--state", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.output)
    assert snap["battery"]["gauge"] == "max17048" and snap["battery"]["percent_x100"] == 8000
    assert snap["storage_minutes"] > 0 and snap["clock_state"] == "rtc"
    table = CliRunner().invoke(main, ["status", "--config", str(REPO / "hw-configs" / "sim.toml"),
                                      "--state", str(tmp_path)])
    assert "battery   80 %" in table.output and "min of recording" in table.output
