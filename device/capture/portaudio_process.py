"""PortAudio in a child process of its own: the microphone's capture and the speaker's play.

Why a process: PortAudio keeps its host APIs (and JACK's one client) from
``Pa_Initialize`` until ``Pa_Terminate``.  When the audio server dies, that
state is dead for good: a new stream on it fails, stopping a running stream
waits ten minutes for a JACK process callback that never comes
(pa_jack.c ``RealStop``/``WaitCondition``), and ``Pa_Terminate`` after the
death fails an assertion on ``jack_deactivate`` and aborts the whole process
(Debian's libportaudio2 19.6 keeps its asserts).  So PortAudio cannot be
re-initialised safely inside the recorder.  Each microphone source, and each
announcement played, runs PortAudio in a child of its own instead: a restart
ends the child (the kernel releases its device and its JACK client) and a
new child initialises PortAudio afresh, seeing the server as it is now.
Nothing in the recorder's process ever loads PortAudio, so a speaker playing
is not disturbed by a microphone restart, nor the other way round.

Run as ``python -m device.capture.portaudio_process capture|play DEVICE``
(``DEVICE`` as sounddevice takes it; ``-`` for the default).  Messages to the
parent on stdout, each ``kind`` (1 byte) + payload length (uint32 LE) + payload:

- ``R`` ready: the stream runs; payload the device's name (UTF-8);
- ``B`` block (capture): int64 LE capture time of its first sample (monotonic
  ns, the same clock as the parent's: ``CLOCK_MONOTONIC`` is system-wide),
  uint8 1 when PortAudio reported an input overflow before it, then float32 LE
  mono samples at ``RATE``;
- ``E`` error: ``Type: message`` (UTF-8); the child then exits 1;
- ``D`` done (play): the announcement was played to its end.

``capture`` delivers blocks of ``BLOCK`` samples until its stdin closes (the
parent stopped it, or died), then exits.  ``play`` reads float32 LE mono
samples at ``RATE`` from stdin until EOF, and only then initialises PortAudio,
plays them, and exits (nothing to play: it exits without touching PortAudio,
so a player can be started ahead of the press).
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import subprocess
import sys
import threading
import time
from typing import Callable

from bodycam.errors import DeviceError

log = logging.getLogger(__name__)

RATE = 48_000
BLOCK = 1024  # samples per block: one AAC frame
HEADER = struct.Struct("<cI")
BLOCK_HEAD = struct.Struct("<qB")
READY, BLOCK_MSG, ERROR, DONE = b"R", b"B", b"E", b"D"
PLAY_GRACE_SECONDS = 5  # beyond the announcement's length before a play counts as hung


def first_sample_ns(now_ns: int, frames: int, time_info) -> int:
    """Capture time (monotonic ns) of a callback block's first sample.

    PortAudio gives ``inputBufferAdcTime`` (when the first sample reached the
    ADC) and ``currentTime`` (now) on its own stream clock; their difference
    placed before the monotonic time at the callback is the capture time.
    Host APIs that report no times (0) fall back to ``frames`` samples before
    the callback.
    """
    adc = getattr(time_info, "inputBufferAdcTime", 0.0) or 0.0
    current = getattr(time_info, "currentTime", 0.0) or 0.0
    if adc > 0 and current > 0 and 0 <= current - adc < 10.0:
        return now_ns - round((current - adc) * 1e9)
    return now_ns - frames * 1_000_000_000 // RATE


def encode_message(kind: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def read_message(stream) -> tuple[bytes, bytes] | None:
    """One message from a binary stream: (kind, payload), or None at EOF (a torn one too)."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    kind, size = HEADER.unpack(head)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return kind, payload


class _Writer:
    """Writes messages to stdout from its own thread: a slow parent never blocks PortAudio's callback."""

    def __init__(self) -> None:
        # Messages go to a private copy of stdout; fd 1 becomes stderr, so that
        # anything a library prints cannot tear a message.
        self._out = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    def put(self, kind: bytes, payload: bytes = b"") -> None:
        self._queue.put(encode_message(kind, payload))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._out.write(item)
                self._out.flush()
            except OSError:  # the parent is gone
                os._exit(0)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


def _device(arg: str) -> str | None:
    return None if arg == "-" else arg


def capture(device: str | None, writer: _Writer) -> None:
    import sounddevice as sd  # PortAudio is initialised here, fresh in every child

    def callback(indata, frames, time_info, status) -> None:
        first = first_sample_ns(time.monotonic_ns(), frames, time_info)
        writer.put(BLOCK_MSG, BLOCK_HEAD.pack(first, 1 if status.input_overflow else 0)
                   + indata[:, 0].astype("<f4").tobytes())

    stream = sd.InputStream(samplerate=RATE, channels=1, dtype="float32", blocksize=BLOCK,
                            device=device, callback=callback)
    stream.start()
    writer.put(READY, str(sd.query_devices(stream.device)["name"]).encode())
    sys.stdin.buffer.read()  # until the parent closes it; the stream is not stopped:
    # on a dead audio server that would hang (see above); the kernel releases it.


def play(device: str | None, writer: _Writer) -> None:
    import numpy as np  # loaded while the child waits, started ahead of a press

    samples = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4").astype(np.float32)
    if not samples.size:  # a player started ahead and never used: PortAudio never touched
        return
    import sounddevice as sd  # PortAudio initialised now, seeing the audio server as it is
    position = [0]
    done = threading.Event()

    def feed(outdata, frames, time_info, status) -> None:
        chunk = samples[position[0] : position[0] + frames]
        outdata[: len(chunk), 0] = chunk
        outdata[len(chunk) :, 0] = 0
        position[0] += frames
        if position[0] >= len(samples):
            raise sd.CallbackStop

    # Callback mode: PortAudio's blocking writes are fragile on JACK.
    stream = sd.OutputStream(samplerate=RATE, channels=1, dtype="float32", device=device,
                             callback=feed, finished_callback=done.set)
    stream.start()
    writer.put(READY, str(sd.query_devices(stream.device)["name"]).encode())
    if not done.wait(timeout=len(samples) / RATE + PLAY_GRACE_SECONDS):
        raise TimeoutError(f"the announcement did not finish within {PLAY_GRACE_SECONDS} s of its length")
    stream.close()
    writer.put(DONE)


class PortAudioChild:
    """The recorder's end of one child: starts it, reads its messages on a thread of its own.

    ``on_block(first_sample_ns, overflow, payload_samples_bytes)`` runs on that
    thread for each block (capture); ``on_end()`` runs there once the child's
    output ends (it exited or was killed).  Raises nothing itself: what the
    child reports is ``error``; ``wait_ready`` turns it into ``DeviceError``.
    """

    def __init__(self, mode: str, device: str | None, *,
                 on_block: Callable[[int, bool, bytes], None] | None = None,
                 on_end: Callable[[], None] | None = None) -> None:
        self.mode = mode
        self.device = device
        self.device_name: str | None = None
        self.error: str | None = None
        self.ready = threading.Event()
        self.done = threading.Event()
        self.ended = threading.Event()
        self._on_block, self._on_end = on_block, on_end
        self.proc = subprocess.Popen(
            # -P: not the working directory on sys.path (nothing there may stand in for a module)
            [sys.executable, "-P", "-m", __name__, mode, device or "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, name=f"portaudio-{mode}", daemon=True)
        self._reader.start()
        threading.Thread(target=self._log_stderr, name=f"portaudio-{mode}-log", daemon=True).start()

    def _read(self) -> None:
        try:
            while (message := read_message(self.proc.stdout)) is not None:
                kind, payload = message
                if kind == BLOCK_MSG and self._on_block is not None:
                    first_ns, overflow = BLOCK_HEAD.unpack_from(payload)
                    self._on_block(first_ns, bool(overflow), payload[BLOCK_HEAD.size:])
                elif kind == READY:
                    self.device_name = payload.decode(errors="replace")
                    self.ready.set()
                elif kind == ERROR:
                    self.error = payload.decode(errors="replace")
                elif kind == DONE:
                    self.done.set()
        finally:
            try:
                if self._on_end is not None:
                    self._on_end()  # before `ended`: what it emits comes before the child counts as gone
            finally:
                self.ended.set()
                self.ready.set()  # wakes a waiter: ready, failed or gone
                self.done.set()

    def _log_stderr(self) -> None:
        for line in self.proc.stderr:  # PortAudio's and JACK's own messages
            log.debug("portaudio %s: %s", self.mode, line.decode(errors="replace").rstrip())

    @property
    def running(self) -> bool:
        return not self.ended.is_set() and self.proc.poll() is None

    def what(self) -> str:
        return f"{self.mode} on {self.device or 'the default device'!s}"

    def wait_ready(self, seconds: float) -> str:
        """Wait until the stream runs; returns the device's name.

        Raises ``DeviceError`` (and ends the child) when it reported an error,
        exited, or did not open within ``seconds``.
        """
        if not self.ready.wait(seconds):
            self.end(0)
            raise DeviceError(f"{self.what()}: PortAudio did not open within {seconds:g} s")
        if self.device_name is None:
            self.end(0)
            self.ended.wait(2)
            raise DeviceError(f"{self.what()}: {self.error or f'exited with {self.proc.poll()}'}")
        return self.device_name

    def send(self, data: bytes) -> None:
        """Write ``data`` to the child's stdin and close it (play: the samples)."""
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except OSError as exc:  # the child is already gone: its error says why
            log.debug("portaudio %s: stdin: %s", self.mode, exc)

    def end(self, seconds: float) -> None:
        """Close the child's stdin (it exits), wait ``seconds``, then kill it; reaps it."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def join(self, seconds: float) -> None:
        self._reader.join(seconds)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("capture", "play"):
        print("usage: python -m device.capture.portaudio_process capture|play DEVICE|-", file=sys.stderr)
        return 2
    writer = _Writer()
    try:
        (capture if argv[0] == "capture" else play)(_device(argv[1]), writer)
        code = 0
    except BaseException as exc:  # everything goes to the parent as an error message
        writer.put(ERROR, f"{type(exc).__name__}: {exc}".encode())
        code = 1
    writer.close()
    # os._exit: no atexit handlers.  sounddevice's would call Pa_Terminate, which
    # hangs or aborts when the audio server died (see above).
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
