"""picamera2's own outputs, loaded without its package __init__ (which needs
libcamera): our stages compose with them as picamera2 outputs, and the test
shows why the pre-roll is ours rather than CircularOutput2."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from fractions import Fraction
from pathlib import Path

import av
import pytest

from device.capture.pipeline import PreRoll, SealingQueue, Segmenter
from device.sealing.clock import ManualClock
from device.sealing import pki
from device.sealing.state import SealingState
from device.sealing.unseal import unseal_recordings
from device.sealing.verifier import Verifier

from .media import decode_errors, packet_times


@pytest.fixture(scope="module")
def outputs():
    spec = importlib.util.find_spec("picamera2")
    if spec is None:
        pytest.fail("picamera2 is not installed: `make test` installs it with --no-deps")
    saved = {k: v for k, v in sys.modules.items() if k == "picamera2" or k.startswith("picamera2.")}
    # The packages without their __init__ files: picamera2's needs libcamera,
    # outputs' pulls in FfmpegOutput, which needs python-prctl.
    root = Path(spec.submodule_search_locations[0])
    for name, path in (("picamera2", root), ("picamera2.outputs", root / "outputs")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        sys.modules[name] = stub
    try:
        yield types.SimpleNamespace(
            CircularOutput2=importlib.import_module("picamera2.outputs.circularoutput2").CircularOutput2,
            SplittableOutput=importlib.import_module("picamera2.outputs.splittableoutput").SplittableOutput)
    finally:
        for name in [k for k in sys.modules if k == "picamera2" or k.startswith("picamera2.")]:
            del sys.modules[name]
        sys.modules.update(saved)


class Collect:
    def __init__(self):
        self.frames = []
        self.recording = False
        self.needs_add_stream = False

    def start(self):
        self.recording = True

    def stop(self):
        self.recording = False

    def _add_stream(self, *args, **kwargs):
        pass

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        self.frames.append(timestamp)


def test_circularoutput2_holds_frames_back_our_preroll_does_not(outputs):
    theirs, mine = Collect(), Collect()
    circular = outputs.CircularOutput2(buffer_duration_ms=2000)
    circular.start()
    circular.open_output(theirs)
    preroll = PreRoll(2.0)
    for n in range(90):  # 3 s at 30 fps, a keyframe each second
        ts = n * 1_000_000 // 30
        circular.outputframe(b"f", n % 30 == 0, ts, None, False)
        preroll.outputframe(b"f", n % 30 == 0, ts, None, False)
        if n == 29:
            preroll.open(mine)
    newest = 89 * 1_000_000 // 30
    # CircularOutput2 delivers a frame only once it is 2 s old, even while
    # recording: a power cut would lose those 2 s (30 s with a 30 s pre-roll).
    assert max(theirs.frames) <= newest - 2_000_000 + 40_000
    assert mine.frames[-1] == newest  # ours passes the newest frame straight on


def test_our_stages_run_behind_picamera2_splittable_output(outputs, agency, tmp_path):
    """Frames pass through picamera2's SplittableOutput into our pre-roll and
    segmenter, as a picamera2 encoder would send them; the result plays."""
    state = agency.enrol(tmp_path / "rec", "P200001")
    sealing = SealingState.open(state, ManualClock())
    sealer = SealingQueue()
    preroll = PreRoll(1.0)
    split = outputs.SplittableOutput(output=preroll)
    split._add_stream("video", "h264", width=320, height=240)
    split.start()
    segmenter = Segmenter(sealing, sealer, preroll.streams, segment_seconds=2, audio_only=False,
                          officer=lambda: "010203", meta=lambda: {}, container_tags=lambda: {})
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base, encoder.framerate, encoder.gop_size = Fraction(1, 30), 30, 15
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "scenecut": "0"}
    source = av.open("testsrc2=size=320x240:rate=30", format="lavfi")
    for n, frame in enumerate(source.decode(video=0)):
        if n == 45:
            preroll.open(segmenter)
        if n == 120:
            break
        frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = n
        for packet in encoder.encode(frame):
            split.outputframe(bytes(packet), packet.is_keyframe, n * 1_000_000 // 30)
    split.stop()
    segmenter.close()
    sealer.stop()
    sealing.close()
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    out = tmp_path / "out"
    assert unseal_recordings(verifier, state, out).ok
    frames = sum(len(packet_times(out / f"{n}.mp4", "v")) for n in segmenter.sealed)
    assert frames >= 100 and all(decode_errors(out / f"{n}.mp4") == "" for n in segmenter.sealed)
