"""Microphone seam: sounddevice (a real microphone) or a synthetic tone,
encoded to AAC (48 kHz mono) with PyAV; timestamps in microseconds from the
same monotonic origin as the camera's, so audio and video stay in sync.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from fractions import Fraction

import av
import numpy as np

from ..config import AudioConfig

log = logging.getLogger(__name__)

RATE = 48_000
BLOCK = 1024  # samples per AAC frame


def open_aac_encoder(bitrate: int):
    container = av.open(os.devnull, "w", format="null")
    stream = container.add_stream("aac", rate=RATE)
    stream.codec_context.layout = "mono"
    stream.codec_context.bit_rate = bitrate
    stream.codec_context.flags |= av.codec.context.Flags.global_header
    container.start_encoding()
    return container, stream


class _AudioSource:
    """Shared part: encode float32 blocks, emit AAC packets to the output."""

    def __init__(self, cfg: AudioConfig, origin_ns: int) -> None:
        self.cfg = cfg
        self.origin_ns = origin_ns
        self.samples = 0
        self.peak = 0.0
        self.error: BaseException | None = None
        self._first_ns: int | None = None
        self._pending = np.zeros(0, dtype=np.float32)

    def _register(self, output) -> None:
        self._container, self.stream = open_aac_encoder(self.cfg.bitrate)
        output._add_stream("audio", "aac", template=self.stream, rate=RATE)
        self._output = output

    def _encode(self, block: np.ndarray, first_sample_ns: int) -> None:
        if self._first_ns is None:
            self._first_ns = first_sample_ns
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
        assert self._first_ns is not None
        base_us = (self._first_ns - self.origin_ns) // 1000
        timestamp = base_us + int(packet.pts * 1_000_000 // RATE)
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
                    delay = start_ns + (n + BLOCK) * 1_000_000_000 // RATE - time.monotonic_ns()
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
    """A real microphone through sounddevice (PortAudio: ALSA, JACK, Pulse)."""

    def __init__(self, cfg: AudioConfig, origin_ns: int) -> None:
        super().__init__(cfg, origin_ns)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.overflows = 0

    def start(self, output) -> None:
        import sounddevice as sd  # imported here: needs libportaudio2

        self._register(output)
        self._stream = sd.InputStream(
            samplerate=RATE, channels=1, dtype="float32", blocksize=BLOCK,
            device=self.cfg.device, callback=self._callback,
        )
        self._thread = threading.Thread(target=self._run, name="microphone", daemon=True)
        self._thread.start()
        self._stream.start()

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        # The block's first sample was captured `frames` samples ago.
        first_ns = time.monotonic_ns() - frames * 1_000_000_000 // RATE
        self._queue.put((indata[:, 0].copy(), first_ns))

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                block, first_ns = item
                self._encode(block, first_ns)
            self._flush()
        except BaseException as exc:
            log.exception("microphone stopped")
            self.error = exc

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._stream.active

    def stop(self) -> None:
        self._stream.stop()
        self._stream.close()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
