"""Pre-roll after a long standby, and the raw-H.264 path a Pi's hardware encoder takes."""

from __future__ import annotations

import time
from fractions import Fraction

import av

from device.sealing.clock import ManualClock
from device.capture.pipeline import PreRoll, SealingQueue, Segmenter
from device.capture.camera_picamera2 import TimestampAdapter, yuv420_to_rgb
from device.config import AudioConfig
from device.recorder import Recorder
from device.sealing import pki
from device.sealing.state import SealingState
from device.sealing.unseal import unseal_recordings
from device.sealing.verifier import Verifier

from .media import decode_errors, packet_times
from .test_recording import sim_config

FPS = 30


def test_first_segment_holds_30s_from_before_the_press(agency, tmp_path):
    """60 s of standby (the sim camera runs unpaced), then a press."""
    config = sim_config(segment_seconds=60, preroll_seconds=30)
    config = config.model_copy(update={"audio": AudioConfig(backend="none")})
    state = agency.enrol(tmp_path / "rec", "Q000001")
    recorder = Recorder(config, state, config_name="sim", officer="010203", realtime=False)
    recorder.power_on()
    deadline = time.monotonic() + 120
    while recorder.camera.frames < 60 * FPS:
        assert time.monotonic() < deadline and recorder.camera.error is None
        time.sleep(0.05)
    preroll = recorder.start()
    recorder.stop()
    first = recorder.segmenter.sealed[0]
    recorder.shutdown()
    assert preroll >= 30.0
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    out = tmp_path / "out"
    assert unseal_recordings(verifier, state, out).ok
    frames = packet_times(out / f"{first}.mp4", "v")
    assert len(frames) >= 30 * FPS
    assert frames[-1] >= 30.0 - 1 / FPS
    assert decode_errors(out / f"{first}.mp4") == ""


def test_raw_h264_like_the_pi_hardware_encoder(agency, tmp_path):
    """picamera2's V4L2 encoder sends Annex-B bytes without packets and names
    its stream "video"; SPS/PPS come in-band, so the muxer must find them."""
    state_dir = agency.enrol(tmp_path / "rec", "H000001")
    sealing = SealingState.open(state_dir, ManualClock())
    sealer = SealingQueue()
    preroll = PreRoll(2.0)
    adapter = TimestampAdapter(preroll, origin_ns=time.monotonic_ns())
    # What H264Encoder._send_streams does:
    adapter._add_stream("video", "h264", width=320, height=240)
    segmenter = Segmenter(sealing, sealer, preroll.streams, segment_seconds=2, audio_only=False,
                          officer=lambda: "010203", meta=lambda: {}, container_tags=lambda: {})
    encoder = av.CodecContext.create("libx264", "w")  # no global header: in-band SPS/PPS
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base, encoder.framerate, encoder.gop_size = Fraction(1, FPS), FPS, 15
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "scenecut": "0"}
    source = av.open("testsrc2=size=320x240:rate=30", format="lavfi")
    started = False
    for n, frame in enumerate(source.decode(video=0)):
        if n == 30:
            preroll.open(segmenter)
            started = True
        if n == 150:
            break
        frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = n
        for packet in encoder.encode(frame):
            # bytes, keyframe flag, µs since the first frame, no packet:
            adapter.outputframe(bytes(packet), packet.is_keyframe, n * 1_000_000 // FPS)
    assert started
    segmenter.close()
    sealer.stop()
    sealing.close()
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    out = tmp_path / "out"
    result = unseal_recordings(verifier, state_dir, out)
    assert result.ok, result.lines
    total = 0
    for name in segmenter.sealed:
        assert decode_errors(out / f"{name}.mp4") == "", name
        total += len(packet_times(out / f"{name}.mp4", "v"))
    assert total >= 120  # from the pre-roll keyframe to frame 149


def test_yuv420_to_rgb_for_pi_stills():
    import numpy as np

    height, width = 4, 4
    array = np.zeros((height * 3 // 2, width), np.uint8)
    array[:height] = 235
    array[height:] = 128
    rgb = yuv420_to_rgb(array, width, height)
    assert rgb.shape == (4, 4, 3) and (rgb >= 254).all()  # video-range white
