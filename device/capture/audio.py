"""Microphone seam: sounddevice (a real microphone) or a synthetic tone,
encoded to AAC (48 kHz mono) with PyAV; timestamps in microseconds from the
same monotonic origin as the camera's, so audio and video stay in sync.

Audio is stamped from when it was captured (PortAudio's ``inputBufferAdcTime``,
or the monotonic clock at the callback), never from the sample count alone:
a sound card that runs slow or fast does not drift against the video, and
samples lost to an input overflow leave silence of their length, never a
shift of everything after them (``CaptureClock``).  The real microphone's
PortAudio runs in a child process (``portaudio_process``): when the audio
server dies, a restart starts a new child, which PortAudio in this process
could not survive.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from fractions import Fraction

import av
import numpy as np

from ..config import AudioConfig
from .portaudio_process import BLOCK, RATE, PortAudioChild

log = logging.getLogger(__name__)

RING_SECONDS = 0.5  # the tone's simulated capture buffer
# Seconds a PortAudio child may take to open the microphone (Python, numpy and
# PortAudio start in well under one on a Pi); inside liveness's START_DEADLINE_SECONDS.
OPEN_SECONDS = 5.0


def open_aac_encoder(bitrate: int):
    container = av.open(os.devnull, "w", format="null")
    stream = container.add_stream("aac", rate=RATE)
    stream.codec_context.layout = "mono"
    stream.codec_context.bit_rate = bitrate
    stream.codec_context.flags |= av.codec.context.Flags.global_header
    container.start_encoding()
    return container, stream


# A block whose first sample was captured later than the samples so far
# account for, by more than this, follows lost samples (an input overflow):
# the gap is filled with silence so that nothing after it is shifted.  Below
# it, the difference is callback jitter and sound-card drift, which the
# capture clock follows.  One AAC frame (21.3 ms) is well above the jitter of
# a callback and well below any overflow worth the name.
GAP_NS = BLOCK * 1_000_000_000 // RATE
# Silence is inserted for at most this long; a longer silence is a stream that
# stopped, and the capture clock starts again at the next block.
MAX_GAP_NS = 60 * 1_000_000_000
# The capture clock follows the blocks' capture times with this time constant
# (in blocks): 200 ppm of drift then leaves it 0.14 ms behind, and a callback
# jitter of a few milliseconds moves it by a fraction of one.
FOLLOW_BLOCKS = 32


class CaptureClock:
    """Maps a sample index to its capture time (monotonic ns), following the sound card.

    ``block(first_sample_ns, frames)`` is called for each block as captured
    (in order) and returns how many samples of silence to insert before the
    block (0 unless samples were lost).  ``time_ns(sample)`` is the capture time
    of a sample index, counted with the inserted silence.  The mapping is the
    card's nominal rate plus an offset that follows the measured capture times
    (a first-order loop), so a card that is 200 ppm slow or fast, and callbacks
    that jitter, neither accumulate drift nor make timestamps go backwards.
    """

    def __init__(self, rate: int = RATE) -> None:
        self.rate = rate
        self.samples = 0           # samples accounted for, silence included
        self.offset_ns: float | None = None  # capture time of sample 0
        self.gaps = 0
        self.lost_samples = 0
        self.restarts = 0

    def _nominal_ns(self, sample: int) -> float:
        return sample * 1e9 / self.rate

    def block(self, first_sample_ns: int, frames: int) -> int:
        if self.offset_ns is None:
            self.offset_ns = first_sample_ns - self._nominal_ns(self.samples)
            self.samples += frames
            return 0
        error = first_sample_ns - (self.offset_ns + self._nominal_ns(self.samples))
        silence = 0
        if error > MAX_GAP_NS or error < -MAX_GAP_NS:
            # The stream stopped, or the clock jumped: start over from this block.
            log.warning("audio capture clock restarted (%.1f s off)", error / 1e9)
            self.restarts += 1
            self.offset_ns = first_sample_ns - self._nominal_ns(self.samples)
        elif error > GAP_NS:
            silence = round(error * self.rate / 1e9)
            self.gaps += 1
            self.lost_samples += silence
            self.samples += silence
            self.offset_ns += error - self._nominal_ns(silence)
        else:
            self.offset_ns += error / FOLLOW_BLOCKS
        self.samples += frames
        return silence

    def time_ns(self, sample: int) -> int:
        assert self.offset_ns is not None
        return int(self.offset_ns + self._nominal_ns(sample))


class _AudioSource:
    """Shared part: stamp blocks by capture time, encode float32 blocks, emit AAC packets."""

    name = "microphone"

    def __init__(self, cfg: AudioConfig, origin_ns: int) -> None:
        self.cfg = cfg
        self.origin_ns = origin_ns
        self.samples = 0
        self.peak = 0.0
        self.error: BaseException | None = None
        self.overflows = 0  # input overflows the driver reported
        self.faults = None  # a capture.seam.FaultChannel, set by the recorder
        self.clock = CaptureClock()
        self._pending = np.zeros(0, dtype=np.float32)

    def _register(self, output) -> None:
        self._container, self.stream = open_aac_encoder(self.cfg.bitrate)
        output._add_stream("audio", "aac", template=self.stream, rate=RATE)
        self._output = output

    def _report_gap(self, silence: int) -> None:
        detail = f"{silence} samples ({silence * 1000 // RATE} ms) lost; filled with silence"
        if self.faults is not None:
            self.faults.report(self.name, "overflow", detail)
        else:
            log.warning("microphone: %s", detail)

    def _encode(self, block: np.ndarray, first_sample_ns: int) -> None:
        """Encode ``block`` (float32 mono) whose first sample was captured at ``first_sample_ns``."""
        silence = self.clock.block(first_sample_ns, block.size)
        if silence:
            self._report_gap(silence)
            block = np.concatenate([np.zeros(silence, dtype=np.float32), block])
        self.peak = max(self.peak, float(np.max(np.abs(block))) if block.size else 0.0)
        data = np.concatenate([self._pending, block]) if self._pending.size else block
        whole = data.size // BLOCK * BLOCK
        self._pending = data[whole:].copy()
        for start in range(0, whole, BLOCK):
            frame = av.AudioFrame.from_ndarray(
                data[start : start + BLOCK].reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = RATE
            frame.pts, frame.time_base = self.samples, Fraction(1, RATE)
            self.samples += BLOCK
            for packet in self.stream.encode(frame):
                self._emit(packet)

    def _emit(self, packet: av.Packet) -> None:
        timestamp = (self.clock.time_ns(packet.pts) - self.origin_ns) // 1000
        self._output.outputframe(None, True, timestamp, packet, True)

    def _flush(self) -> None:
        for packet in self.stream.encode(None):
            self._emit(packet)
        self._container.close()


class ToneSource(_AudioSource):
    """A 440 Hz tone with a one-second beat, paced like a microphone."""

    def __init__(self, cfg: AudioConfig, origin_ns: int, realtime: bool = True) -> None:
        super().__init__(cfg, origin_ns)
        self.realtime = realtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, output) -> None:
        self._register(output)
        self._thread = threading.Thread(target=self._run, name="tone", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            start_ns = time.monotonic_ns()
            n = 0
            while not self._stop.is_set():
                if self.realtime:
                    # A synthetic sound card clocked by the monotonic clock, with a
                    # ring buffer of RING_SECONDS: a thread starved for longer loses
                    # the oldest samples (an overflow), as a real card's driver does.
                    now = time.monotonic_ns()
                    captured = (now - start_ns) * RATE // 1_000_000_000
                    if captured - n > RING_SECONDS * RATE:
                        self.overflows += 1
                        n = captured - BLOCK
                    delay = start_ns + (n + BLOCK) * 1_000_000_000 // RATE - now
                    if delay > 0:
                        time.sleep(delay / 1e9)
                t = np.arange(n, n + BLOCK) / RATE
                gate = (t % 1.0) < 0.1  # a 100 ms beep each second
                block = (0.3 * np.sin(2 * np.pi * 440 * t) * gate).astype(np.float32)
                self._encode(block, start_ns + n * 1_000_000_000 // RATE)
                n += BLOCK
            self._flush()
        except BaseException as exc:
            log.exception("tone source stopped")
            self.error = exc

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class SoundDeviceMic(_AudioSource):
    """A real microphone through sounddevice (PortAudio: ALSA, JACK, Pulse).

    PortAudio runs in a child process of this source's own
    (``portaudio_process``): a restart after the audio server died, or the
    device went away, starts a new child that initialises PortAudio afresh,
    which PortAudio cannot do safely in-process.  Blocks arrive on the child's
    reader thread and are encoded there.
    """

    def __init__(self, cfg: AudioConfig, origin_ns: int) -> None:
        super().__init__(cfg, origin_ns)
        self._child: PortAudioChild | None = None

    def start(self, output) -> None:
        """Start the child and wait until its stream runs; raises ``DeviceError``
        when it cannot open the device within ``OPEN_SECONDS``."""
        self._register(output)
        self._child = PortAudioChild("capture", self.cfg.device, on_block=self._block, on_end=self._end)
        name = self._child.wait_ready(OPEN_SECONDS)
        log.info("microphone: capturing from %s", name)

    def _block(self, first_ns: int, overflow: bool, samples: bytes) -> None:
        if self.error is not None:
            return
        try:
            if overflow:
                self.overflows += 1
            self._encode(np.frombuffer(samples, dtype="<f4").astype(np.float32), first_ns)
        except Exception as exc:
            log.exception("microphone stopped")
            self.error = exc

    def _end(self) -> None:
        try:
            self._flush()
        except Exception as exc:
            log.exception("microphone: flushing the encoder failed")
            self.error = self.error or exc

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.running

    def stop(self) -> None:
        """End the child, then let the encoder drain (callers bound this: see capture.seam)."""
        if self._child is not None:
            self._child.end(2)
            self._child.join(2)
