"""Real recordings on the sim hardware (lavfi + libx264, tone), checked with ffprobe."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.capture.overlay import Overlay
from device.clock import SystemClock
from device.config import load_hw_config
from device.recorder import REFUSAL, Recorder
from device.sealing import pki
from device.sealing.unseal import unseal_recordings
from device.sealing.verifier import Verifier

from .media import decode_errors, first_luma, packet_times, probe

REPO = Path(__file__).resolve().parent.parent
SIM = REPO / "hw-configs" / "sim.toml"
FPS = 30
SEGMENT = 2


def sim_config(**recording):
    config = load_hw_config(SIM)
    return config.model_copy(update={
        "recording": config.recording.model_copy(update={"segment_seconds": SEGMENT, **recording})})


@pytest.fixture(scope="module")
def recorded(agency, tmp_path_factory):
    """About 1 s standby then 5 s recording, with events; stopped, verified, unsealed."""
    root = tmp_path_factory.mktemp("recorded")
    state = agency.enrol(root / "rec", "R000001")
    recorder = Recorder(sim_config(), state, config_name="sim.toml", officer="010203")
    recorder.power_on()
    time.sleep(1.0)
    t_start = time.monotonic()
    preroll = recorder.start()
    time.sleep(1.5)
    recorder.notify()
    recorder.mark()
    time.sleep(1.0)
    photo = recorder.photo()
    recorder.mark(REFUSAL)
    time.sleep(2.5)
    recorder.stop()
    wall = time.monotonic() - t_start
    sealed = list(recorder.segmenter.sealed)
    recorder.shutdown()
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    report, _ = verifier.verify_recording(state)
    out = root / "unsealed"
    result = unseal_recordings(verifier, state, out)
    assert result.ok, result.lines
    return {"state": state, "out": out, "sealed": sealed, "photo": photo, "report": report,
            "wall": wall, "preroll": preroll}


def manifest(rec, name):
    return json.loads((rec["out"] / f"{name}.json").read_text())["manifest"]


def test_recording_verifies_and_has_chained_segments(recorded):
    report = recorded["report"]
    assert report.status == "verified", report
    assert len(recorded["sealed"]) >= 3
    media = [s.media for s in report.segments]
    assert media.count("video/mp4") == len(recorded["sealed"]) and media.count("image/jpeg") == 1


def test_both_streams_present_and_decodable(recorded):
    for name in recorded["sealed"]:
        path = recorded["out"] / f"{name}.mp4"
        codecs = sorted(s["codec_name"] for s in probe(path)["streams"])
        assert codecs == ["aac", "h264"], name
        assert decode_errors(path) == "", name


def test_duration_matches_wall_time(recorded):
    frames = [len(packet_times(recorded["out"] / f"{n}.mp4", "v")) for n in recorded["sealed"]]
    recorded_seconds = sum(frames) / FPS
    expected = recorded["wall"] + recorded["preroll"]
    tolerance = len(frames) / FPS + 2 / FPS  # one frame per segment, plus start/stop edges
    assert abs(recorded_seconds - expected) <= tolerance, (recorded_seconds, expected, frames)


def test_timestamps_continuous_across_segments(recorded):
    names = recorded["sealed"]
    for a, b in zip(names, names[1:]):
        ma, mb = manifest(recorded, a)["meta"], manifest(recorded, b)["meta"]
        times = packet_times(recorded["out"] / f"{a}.mp4", "v")
        assert len(times) == ma["video_frames"]
        # No frame lost or doubled at the cut: the next segment starts one
        # frame after the last frame of this one.
        assert mb["media_start_us"] - ma["last_video_us"] == pytest.approx(1e6 / FPS, abs=1)
        assert times[0] == 0.0
        assert times[-1] == pytest.approx((len(times) - 1) / FPS, abs=0.002)


def test_audio_video_offset_within_100ms(recorded):
    names = recorded["sealed"]
    for name in names:
        path = recorded["out"] / f"{name}.mp4"
        video, audio = packet_times(path, "v"), packet_times(path, "a")
        end_offset = abs((audio[-1] + 1024 / 48000) - (video[-1] + 1 / FPS))
        assert end_offset <= 0.1, (name, end_offset)
        if name != names[0] and len(audio) > 1:  # the first begins with video-only pre-roll
            assert audio[1] - 1024 / 48000 <= 0.1, (name, audio[:2])
    first = packet_times(recorded["out"] / f"{names[0]}.mp4", "a")
    # Audio of the first segment starts at the press, after the pre-roll.
    assert abs(first[1] - 1024 / 48000 - recorded["preroll"]) <= 0.1


def test_overlay_is_burned_into_the_pixels(recorded):
    name = recorded["sealed"][1]
    meta = manifest(recorded, name)
    luma = first_luma(recorded["out"] / f"{name}.mp4")
    overlay = Overlay("R000001", 640, 360, "Asia/Shanghai")
    overlay.officer = "010203"
    from datetime import datetime, timedelta

    opened = datetime.fromisoformat(meta["opened_utc"].replace("Z", "+00:00"))
    scores = {}
    for delta in (-2, -1, 0, 1):
        patch = overlay.patch(overlay.text_at(opened + timedelta(seconds=delta), SystemClock().state))
        h, w = patch.luma.shape
        region = luma[patch.y : patch.y + h, patch.x : patch.x + w].astype(int)
        scores[delta] = np.abs(region - patch.luma.astype(int)).mean()
    best = min(scores.values())
    h, w = patch.luma.shape
    elsewhere = np.abs(luma[200 : 200 + h, 300 : 300 + w].astype(int) - patch.luma.astype(int)).mean()
    assert best < 12, scores
    assert elsewhere > 3 * best, (elsewhere, scores)


def test_metadata_in_container_and_manifest(recorded):
    name = recorded["sealed"][0]
    tags = probe(recorded["out"] / f"{name}.mp4")["format"]["tags"]
    assert tags["title"] == name
    assert "device=R000001" in tags["comment"] and "officer=010203" in tags["comment"]
    m = manifest(recorded, name)
    assert m["officer"] == "010203" and m["device"] == "R000001"
    assert m["opened_local"].endswith("+08:00") and m["closed_utc"] > m["opened_utc"]
    meta = m["meta"]
    assert meta["hw_config"] == "sim.toml" and meta["video"]["width"] == 640 and meta["audio"]["codec"] == "aac"
    events = [e for n in recorded["sealed"] for e in manifest(recorded, n)["meta"]["events"]]
    kinds = [(e["event"], e.get("kind")) for e in events]
    assert ("notify", None) in kinds and ("mark", "mark") in kinds and ("mark", "refusal") in kinds
    assert ("photo", None) in kinds


def test_photo_is_a_stamped_sealed_jpeg(recorded):
    path = recorded["out"] / f"{recorded['photo']}.jpg"
    image = Image.open(path)
    assert image.format == "JPEG" and image.size == (640, 360)
    corner = np.asarray(image.convert("L"))[4:20, 4:200]
    assert corner.max() > 200 and corner.min() < 40  # white text on the black box
