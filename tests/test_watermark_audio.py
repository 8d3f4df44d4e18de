"""Viewing copies of audio-only segments: a video of the viewer's watermark over
black, with the segment's sound, that a browser plays and that names its viewer.

The segments are the recorder's own: the real Recorder in audio mode (PyAV's
AAC encoder, the segmenter's fragmented MP4), sealed, then unsealed; and one
recorded in video mode while its camera is down (``video_missing``).
"""

from __future__ import annotations

import io
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from archive.watermark import AUDIO_PICTURE, _stamp, viewing_media, watermark, watermark_text
from device.config import CameraConfig
from device.recorder import Recorder
from device.sealing import pki
from device.sealing.unseal import unseal_recordings
from device.sealing.verifier import Verifier

from .test_recording import sim_config

VIEWER = watermark_text("陈平(chen.ping)", "2026-11-29T15:00:00.000Z")
OTHER = watermark_text("李娜(li.na)", "2026-11-29T15:00:00.000Z")


def record_audio_only(agency, root, device_id: str, seconds: float = 2.5, **camera) -> tuple:
    """Record with the real recorder until an audio-only segment is sealed; returns
    (state, [(name, media, meta)], unsealed folder).  ``camera``: a camera that fails."""
    config = sim_config(mode="video" if camera else "audio", segment_seconds=2, preroll_seconds=0)
    if camera:
        config = config.model_copy(update={"camera": CameraConfig(**camera)})
    state = agency.enrol(root / "rec", device_id)
    recorder = Recorder(config, state, config_name="sim.toml", officer="010203")
    try:
        recorder.power_on()
        if camera:  # the camera could not start: liveness has it down before recording starts
            assert "camera" in recorder.check_sources() and recorder.liveness.down() == {"camera"}
        recorder.start()
        deadline = time.monotonic() + 60
        while len(recorder.segmenter.sealed) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(max(0.0, seconds - 2))
        recorder.stop()
    finally:
        recorder.shutdown()
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    out = root / "plain"
    assert unseal_recordings(verifier, state, out).ok
    _report, good = verifier.verify_recording(state)
    segments = [(g.manifest.signed.obj["segment"], g.report.media, g.manifest.signed.obj["meta"]) for g in good]
    return state, segments, out


@pytest.fixture(scope="module")
def audio_segment(agency, tmp_path_factory):
    """The plaintext of an audio-only segment of the recorder in audio mode."""
    _state, segments, out = record_audio_only(agency, tmp_path_factory.mktemp("audio"), "W000001")
    name, media, meta = segments[0]
    assert media == "audio/mp4" and meta["mode"] == "audio"
    return (out / f"{name}.m4a").read_bytes()


def decoded_audio(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray()[0] for f in container.decode(stream)]
        return np.concatenate(frames), stream.codec_context.sample_rate


def pictures(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as container:
        return [f for f in container.decode(video=0)]


def luma(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), np.float32)


def mark_boxes(text: str) -> list[tuple[int, int, int, int]]:
    """Where the mark is drawn on the copy's picture: (y0, y1, x0, x1) of each box."""
    drawn = luma(_stamp(Image.new("RGB", AUDIO_PICTURE, (0, 0, 0)), text)) > 10
    h = AUDIO_PICTURE[1]
    boxes = []
    for y0, y1 in ((0, h // 3), (2 * h // 3, h)):  # top right and bottom left
        ys, xs = np.nonzero(drawn[y0:y1])
        boxes.append((y0 + int(ys.min()), y0 + int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1))
    return boxes


def test_an_audio_only_segment_gets_a_video_copy_with_its_sound_and_the_viewers_mark(audio_segment):
    copy = watermark(audio_segment, "audio/mp4", VIEWER)
    assert viewing_media("audio/mp4") == "video/mp4"
    with av.open(io.BytesIO(copy)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        assert container.metadata.get("comment") == VIEWER
    # the sound: as long as the segment's (AAC's priming frame aside), and the tone still the tone
    original, rate = decoded_audio(audio_segment)
    copied, copy_rate = decoded_audio(copy)
    assert copy_rate == rate == 48000
    assert abs(copied.size - original.size) <= 2 * 1024, (copied.size, original.size)
    assert original.size >= 2 * rate
    peak_hz = np.argmax(np.abs(np.fft.rfft(copied[: rate]))) * rate / rate  # 1 Hz bins over one second
    assert abs(peak_hz - 440) <= 2, peak_hz
    # the picture: one every half second for as long as the sound, each carrying the mark
    frames = pictures(copy)
    seconds = copied.size / rate
    assert abs(len(frames) - seconds * 2) <= 2, (len(frames), seconds)
    with av.open(io.BytesIO(copy)) as container:  # the picture starts with the sound and ends with it
        shown = [(p.pts * p.time_base, (p.pts + p.duration) * p.time_base)
                 for p in container.demux(video=0) if p.pts is not None]
    assert shown[0][0] == 0 and shown[-1][1] == Fraction(original.size, rate), (shown[-1], original.size)
    for frame in (frames[0], frames[-1]):
        y = luma(frame.to_image())
        assert (frame.width, frame.height) == AUDIO_PICTURE
        for y0, y1, x0, x1 in mark_boxes(VIEWER):
            box = y[y0:y1, x0:x1]
            assert box.max() > 150 and box.std() > 20, (box.max(), box.std())  # text, not black
        assert np.median(y) < 20  # the rest is black
    # it is this viewer's mark: the picture matches their rendering far better than another's
    seen = luma(frames[len(frames) // 2].to_image())
    own = np.abs(seen - luma(_stamp(Image.new("RGB", AUDIO_PICTURE), VIEWER))).mean()
    other = np.abs(seen - luma(_stamp(Image.new("RGB", AUDIO_PICTURE), OTHER))).mean()
    assert own * 2 < other, (own, other)


def test_an_audio_segment_recorded_while_the_camera_was_down_plays_too(agency, tmp_path):
    """The other way audio-only segments are made: a video recorder whose camera never delivers."""
    _state, segments, out = record_audio_only(
        agency, tmp_path, "W000002", seconds=4.5,
        backend="pyav", source=str(tmp_path / "no-such-camera.y4m"), width=320, height=240, fps=30)
    audio = [(n, meta) for n, media, meta in segments if media == "audio/mp4"]
    assert audio, segments
    name, meta = audio[0]
    assert meta["video_missing"] == "camera down"
    data = (out / f"{name}.m4a").read_bytes()
    copy = watermark(data, "audio/mp4", VIEWER)
    copied, rate = decoded_audio(copy)
    assert abs(copied.size - decoded_audio(data)[0].size) <= 2 * 1024
    y = luma(pictures(copy)[0].to_image())
    for y0, y1, x0, x1 in mark_boxes(VIEWER):
        assert y[y0:y1, x0:x1].max() > 150


def test_media_without_a_viewing_copy_is_refused_by_name():
    with pytest.raises(ValueError, match="application/octet-stream"):
        watermark(b"\0" * 100, "application/octet-stream", VIEWER)
    with pytest.raises(ValueError, match="application/octet-stream"):
        viewing_media("application/octet-stream")


def test_an_evidence_package_of_an_audio_only_segment_has_its_thumbnail_and_viewing_copy(agency, tmp_path):
    """The package's viewing/ copies and thumbnails are made for audio-only segments too."""
    import json
    import subprocess
    import sys

    import pyotp

    from archive.accounts import Accounts
    from archive.grants import Grants
    from archive.package import export_package

    from .lawful_rig import make_archive

    rig = make_archive(agency, tmp_path / "a")
    try:
        state, segments, _plain = record_audio_only(agency, tmp_path, "W000004")
        names = [name for name, media, _meta in segments if media == "audio/mp4"]
        rig.archive.commit_recording(None, state, names, source="test")
        acc = Accounts(rig.archive)
        keeper, _ = acc.add(None, "li.na", "李娜", "keeper", "correct horse battery", by="admin")
        head, _ = acc.add(None, "head", "王局长", "approver", "correct horse battery", by="admin")
        rig.archive.label(None, names, case_number="顺市监罚〔2026〕34号", party="某某商店", cause="录音取证",
                          act_type="inspection", who="li.na")
        grants = Grants(rig.archive)
        g = grants.request(keeper, grantee="li.na", actions=["export"], reason="法院调取证据", hours=24,
                           case_number="顺市监罚〔2026〕34号")
        g = grants.decide(head, g.id, approve=True, totp=pyotp.TOTP(acc.totp_secret("head")).at(rig.clock.utc_now()))
        result = export_package(rig.archive, keeper, g.id, tmp_path / "package", recipient="顺城区人民法院")
    finally:
        rig.close()
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert sorted(s["name"] for s in manifest["segments"]) == sorted(names)
    for seg in manifest["segments"]:
        assert seg["media"] == "audio/mp4" and seg["media_file"].endswith(".m4a")
        thumb = Image.open(result.path / seg["thumbnail"])
        assert thumb.format == "JPEG" and luma(thumb).max() > 60  # the "no picture" line, not a blank
        viewing = result.path / "viewing" / f"{seg['name']}-viewing.mp4"
        copy = viewing.read_bytes()
        with av.open(io.BytesIO(copy)) as container:
            assert [s.type for s in container.streams] == ["video", "audio"]
            assert "顺城区人民法院" in container.metadata["comment"]
        y = luma(pictures(copy)[0].to_image())
        for y0, y1, x0, x1 in mark_boxes(container.metadata["comment"]):
            assert y[y0:y1, x0:x1].max() > 150
    done = subprocess.run([sys.executable, "-I", str(result.path / "verify_package.py"), str(result.path)],
                          capture_output=True, text=True, cwd="/")
    assert done.returncode == 0 and done.stdout.strip().endswith("VERIFIED"), done.stdout + done.stderr


def test_a_video_copy_starts_its_picture_with_its_sound(agency, tmp_path):
    """The video copy of a recorder's segment (H.264 + AAC) keeps picture and sound
    together: no reordering delay before the first picture, no first sound stretched over it."""
    config = sim_config(segment_seconds=2, preroll_seconds=0)
    state = agency.enrol(tmp_path / "rec", "W000005")
    recorder = Recorder(config, state, config_name="sim.toml", officer="010203")
    try:
        recorder.power_on()
        recorder.start()
        deadline = time.monotonic() + 60
        while not recorder.segmenter.sealed and time.monotonic() < deadline:
            time.sleep(0.05)
        recorder.stop()
    finally:
        recorder.shutdown()
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    assert unseal_recordings(verifier, state, tmp_path / "plain").ok
    name = recorder.sealed[0]
    original = (tmp_path / "plain" / f"{name}.mp4").read_bytes()
    copy = watermark(original, "video/mp4", VIEWER)
    with av.open(io.BytesIO(original)) as container:
        first_picture = next(p for p in container.demux(video=0) if p.pts is not None)
        assert first_picture.pts == 0  # the recorder's own segment: picture and sound from 0
    with av.open(io.BytesIO(copy)) as container:
        video = [p for p in container.demux(video=0) if p.pts is not None]
        container.seek(0)
        audio = [p for p in container.demux(audio=0) if p.pts is not None]
    assert min(p.pts for p in video) == 0
    assert audio[0].pts == 0 and audio[0].duration == 1024, (audio[0].pts, audio[0].duration)
