"""Capture stages in isolation: fMP4 splitting, pre-roll, overlay."""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bodycam.errors import FormatError
from device.capture.fmp4 import FragmentSplitter
from device.capture.overlay import Overlay
from device.capture.pipeline import Output, PreRoll


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


STREAM = (box(b"ftyp", b"iso5") + box(b"moov", b"m" * 50)
          + box(b"moof", b"a" * 20) + box(b"mdat", b"A" * 300)
          + box(b"styp", b"") + box(b"moof", b"b" * 20) + box(b"mdat", b"B" * 10)
          + box(b"mfra", b"r" * 12))


@given(st.lists(st.integers(1, 60), max_size=40))
def test_splitter_cuts_at_box_boundaries_whatever_the_write_sizes(cuts):
    out: list[bytes] = []
    splitter = FragmentSplitter(out.append)
    pos = 0
    for n in cuts:
        splitter.write(STREAM[pos : pos + n])
        pos += n
    splitter.write(STREAM[pos:])
    splitter.finish()
    assert b"".join(out) == STREAM
    assert out[0] == box(b"ftyp", b"iso5") + box(b"moov", b"m" * 50)
    assert out[1] == box(b"moof", b"a" * 20) + box(b"mdat", b"A" * 300)
    assert out[2] == box(b"styp", b"") + box(b"moof", b"b" * 20) + box(b"mdat", b"B" * 10)
    assert out[3] == box(b"mfra", b"r" * 12)


def test_splitter_refuses_impossible_boxes():
    splitter = FragmentSplitter(lambda b: None)
    with pytest.raises(FormatError):
        splitter.write(struct.pack(">I4s", 3, b"moof"))
    splitter = FragmentSplitter(lambda b: None)
    splitter.write(box(b"moof", b"x")[:6])
    with pytest.raises(FormatError, match="not a whole box"):
        splitter.finish()


class Collect(Output):
    def __init__(self):
        super().__init__()
        self.frames = []

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        self.frames.append((keyframe, timestamp, audio))


def feed(preroll: PreRoll, seconds: float, fps: int = 10, gop: int = 5, audio: bool = True):
    for n in range(int(seconds * fps)):
        ts = n * 1_000_000 // fps
        preroll.outputframe(b"v", n % gop == 0, ts, None, False)
        if audio:
            preroll.outputframe(b"a", True, ts + 3, None, True)
    return ts


def test_preroll_keeps_duration_from_a_keyframe_video_only_by_default():
    preroll = PreRoll(3.0)
    last = feed(preroll, 20)
    target = Collect()
    handed = preroll.open(target)
    first_keyframe, first_ts, first_audio = target.frames[0]
    assert first_keyframe and not first_audio
    assert 3.0 <= (last - first_ts) / 1e6 < 3.0 + 0.5 + 1e-9  # within one GOP over
    assert handed == pytest.approx((last - first_ts) / 1e6)
    assert not any(a for _, _, a in target.frames)
    # Live frames now pass straight through, nothing held back.
    preroll.outputframe(b"v", False, last + 100_000, None, False)
    assert target.frames[-1] == (False, last + 100_000, False)


def test_preroll_with_audio_and_zero_duration():
    preroll = PreRoll(2.0, keep_audio=True)
    feed(preroll, 10)
    target = Collect()
    preroll.open(target)
    assert any(a for _, _, a in target.frames)
    assert target.frames[0][0] and not target.frames[0][2]

    none = PreRoll(0.0)
    last = feed(none, 10)
    target = Collect()
    none.open(target)
    # Recording must begin at a keyframe: at most the current GOP is kept.
    assert (last - target.frames[0][1]) / 1e6 < 0.5


def test_preroll_drops_frames_before_the_first_keyframe():
    preroll = PreRoll(5.0)
    preroll.outputframe(b"v", False, 0, None, False)
    preroll.outputframe(b"v", True, 100, None, False)
    target = Collect()
    preroll.open(target)
    assert [t for _, t, _ in target.frames] == [100]
    assert preroll.dropped_before_keyframe == 1


def test_overlay_writes_patch_in_place_and_marks_untrusted_clock():
    overlay = Overlay("A123456", 640, 360, "Asia/Shanghai")
    overlay.officer = "010203"
    when = dt.datetime(2026, 11, 27, 1, 15, 0, tzinfo=dt.timezone.utc)
    assert overlay.text_at(when, "synced") == "2026-11-27 09:15:00  A123456  010203"
    assert overlay.text_at(when, "untrusted").endswith("CLOCK?")
    y = np.full((360, 640), 100, np.uint8)
    u = np.full((180, 320), 50, np.uint8)
    patch = overlay.stamp(y, u, u.copy(), when, "synced")
    h, w = patch.luma.shape
    assert (y[patch.y : patch.y + h, patch.x : patch.x + w] == patch.luma).all()
    assert (u[patch.y // 2 : (patch.y + h) // 2, patch.x // 2 : (patch.x + w) // 2] == 128).all()
    assert (y[patch.y + h + 2 :, :] == 100).all()
    assert overlay.patch(patch.text) is patch  # rendered once per text
