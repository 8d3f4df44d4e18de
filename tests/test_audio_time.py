"""Audio is stamped from its capture time: drift of the sound card, callback
jitter and input overflows, on the capture clock and through the real AAC
encoder; and a segment cut just before the stop keeps its sound."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from device.capture.audio import BLOCK, GAP_NS, RATE, CaptureClock, _AudioSource
from device.capture.portaudio_process import first_sample_ns
from device.capture.seam import FaultChannel
from device.config import AudioConfig

FRAME_NS = 1_000_000_000 // 30  # one video frame at 30 fps


def card_blocks(seconds: float, ppm: float, jitter_ms: float = 0.0, lost: dict[int, int] | None = None,
                seed: int = 1):
    """(true capture ns of the block's first sample, frames, index) of a sound card
    running ``ppm`` slow (positive) or fast; ``lost`` maps a block index to samples lost before it."""
    rng = random.Random(seed)
    period = 1e9 / (RATE * (1 - ppm * 1e-6))  # ns per sample on the monotonic clock
    sample = 0
    for i in range(int(seconds * RATE / BLOCK)):
        sample += (lost or {}).get(i, 0)
        true_ns = 10**12 + sample * period
        # the stamp a callback gives: the true time plus scheduling jitter
        stamp = true_ns + (rng.uniform(0, jitter_ms) * 1e6 if jitter_ms else 0)
        yield int(true_ns), int(stamp), i
        sample += BLOCK


@pytest.mark.parametrize("ppm", [200, -200, 50])
def test_drift_stays_within_one_frame_over_two_hours(ppm):
    clock = CaptureClock()
    worst = 0
    stamped = 0  # sample index as the clock counts it
    last = None
    for true_ns, stamp, _ in card_blocks(2 * 3600, ppm, jitter_ms=3.0):
        assert clock.block(stamp, BLOCK) == 0  # no overflow: nothing inserted
        t = clock.time_ns(stamped)
        worst = max(worst, abs(t - true_ns))
        if last is not None:
            assert t > last  # never backwards
        last = t
        stamped += BLOCK
    print(f"audio drift at {ppm:+d} ppm over 2 h (3 ms jitter): worst {worst / 1e6:.2f} ms")
    assert worst <= FRAME_NS, worst / 1e6
    # The old rule (first stamp + sample count) would be off by the whole drift:
    assert abs(ppm) * 1e-6 * 7200 * 1e9 > FRAME_NS


@pytest.mark.parametrize("lost_ms", [50, 500, 5000])
def test_an_overflow_leaves_a_gap_never_a_shift(lost_ms):
    lost = lost_ms * RATE // 1000
    clock = CaptureClock()
    counted = 0
    inserted = 0
    for true_ns, stamp, i in card_blocks(20, ppm=0, jitter_ms=1.0, lost={400: lost}):
        inserted += clock.block(stamp, BLOCK)
        counted = clock.samples - BLOCK
        assert abs(clock.time_ns(counted) - true_ns) <= GAP_NS, (i, clock.time_ns(counted) - true_ns)
    assert clock.gaps == 1
    assert abs(inserted - lost) <= RATE * 0.002  # the silence is the length of what was lost


class Collect:
    def __init__(self):
        self.packets = []

    def _add_stream(self, *args, **kwargs):
        pass

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        self.packets.append((packet.pts, timestamp))


class Fed(_AudioSource):
    """The shared microphone part (capture clock + real AAC encoder), fed blocks by the test."""

    def __init__(self, origin_ns):
        super().__init__(AudioConfig(backend="tone"), origin_ns)
        self.sink = Collect()
        self._register(self.sink)


def test_encoded_packets_carry_capture_times_across_an_overflow():
    origin = 10**12
    mic = Fed(origin)
    mic.faults = FaultChannel()
    truth = {}  # block index -> true capture time of its first sample
    lost = 24_000  # 0.5 s
    tone = np.sin(np.arange(BLOCK) / 10).astype(np.float32)
    for true_ns, stamp, i in card_blocks(4, ppm=200, jitter_ms=2.0, lost={90: lost}):
        truth[i] = true_ns
        mic._encode(tone, stamp)
    mic._flush()
    faults = mic.faults.drain()
    assert [(f.source, f.kind) for f in faults] == [("microphone", "overflow")]
    assert "ms) lost" in faults[0].detail
    stamps = [ts for pts, ts in mic.sink.packets if pts >= 0]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    big = [g for g in gaps if g > 30_000]
    assert big == [], "the gap is filled with silence: packets stay evenly spaced"
    # The packet holding block 90's first sample is stamped with its true time, 0.5 s after
    # the samples before the overflow: later audio is not shifted early.
    pts90 = 90 * BLOCK + lost
    first_after = next(ts for pts, ts in mic.sink.packets if pts <= pts90 < pts + BLOCK)
    expected_us = (truth[90] - origin) // 1000 - (pts90 - (pts90 // BLOCK) * BLOCK) * 1_000_000 // RATE
    assert abs(first_after - expected_us) <= 2_000, (first_after, expected_us)


def test_first_sample_from_portaudio_times_or_the_callback():
    class TimeInfo:
        inputBufferAdcTime = 100.010
        currentTime = 100.030

    now = 5_000_000_000
    assert first_sample_ns(now, BLOCK, TimeInfo()) == now - 20_000_000

    class NoTimes:
        inputBufferAdcTime = 0.0
        currentTime = 0.0

    assert first_sample_ns(now, BLOCK, NoTimes()) == now - BLOCK * 1_000_000_000 // RATE


def test_a_segment_cut_just_before_the_stop_keeps_its_sound(agency, tmp_path):
    """The stop lands a few ms after a segment cut: the last segment still has audio to its end."""
    from device.recorder import Recorder
    from device.sealing import pki
    from device.sealing.unseal import unseal_recordings
    from device.sealing.verifier import Verifier

    from .media import packet_times
    from .test_recording import sim_config

    for i, delay in enumerate((0.0, 0.01)):
        state = agency.enrol(tmp_path / f"rec{i}", "R000010")
        recorder = Recorder(sim_config(), state, config_name="sim.toml", officer="010203")
        recorder.power_on()
        recorder.start()
        first = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the segmenter opens its second segment
            current = recorder.segmenter.current
            if current is not None:
                if first is None:
                    first = current.start_us
                elif current.start_us != first:
                    break
            time.sleep(0.001)
        time.sleep(delay)
        recorder.stop()
        sealed = list(recorder.sealed)
        recorder.shutdown()
        verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
        out = tmp_path / f"out{i}"
        assert unseal_recordings(verifier, state, out).ok
        last = out / f"{sealed[-1]}.mp4"
        video, audio = packet_times(last, "v"), packet_times(last, "a")
        assert audio, (delay, video)
        assert abs((audio[-1] + BLOCK / RATE) - (video[-1] + 1 / 30)) <= 0.1


def test_overflow_counts_reach_the_manifest_and_status(agency, tmp_path):
    """The tone's simulated card overflows when its thread is starved: counts in meta and `status`."""
    import json
    import threading

    from click.testing import CliRunner
    from gpiozero.pins.mock import MockFactory

    from bodycam.cli import main
    from device.daemon import SystemdNotifier
    from device.sealing import pki
    from device.sealing.verifier import Verifier
    from device.service import RecorderService

    from .test_recording import SIM, sim_config

    state = agency.enrol(tmp_path / "rec", "R000011")
    service = RecorderService(sim_config(), state, config_name="sim.toml", officer="010203",
                              pin_factory=MockFactory(), notifier=SystemdNotifier({}))
    service.start_up()
    service.start()
    mic = service.recorder.microphone
    time.sleep(0.5)
    import sys

    # Starve every other thread for 1 s (the GIL is not handed over inside this loop),
    # longer than the tone card's 0.5 s buffer: it overflows, as a real card does.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pass
    finally:
        sys.setswitchinterval(interval)
    deadline = time.monotonic() + 10
    while mic.clock.gaps == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mic.overflows == 1 and mic.clock.gaps == 1, (mic.overflows, mic.clock.gaps)
    assert mic.clock.lost_samples > 0.3 * RATE
    service.check_health()
    status = CliRunner().invoke(main, ["status", "--config", str(SIM), "--state", str(state), "--json"])
    assert status.exit_code == 0, status.output
    running = json.loads(status.output)["recorder"]
    assert running["health"]["audio_overflows"] == 1 and running["health"]["audio_gaps"] == 1
    table = CliRunner().invoke(main, ["status", "--config", str(SIM), "--state", str(state)])
    assert "audio overflows 1, gaps 1" in table.output
    assert service.run(threading.Event(), seconds=0.5) == "time"
    service.shutdown("test")
    _, good = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    audio = [g.manifest.signed.obj["meta"]["audio"] for g in good if g.report.media == "video/mp4"]
    assert audio[-1]["overflows"] == 1 and audio[-1]["gaps"] == 1
    assert audio[-1]["lost_samples"] == mic.clock.lost_samples
