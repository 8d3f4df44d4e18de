"""Speaker seam: plays the Art. 22 announcement through sounddevice (in a child process)."""

from __future__ import annotations

import hashlib
import logging
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from bodycam.errors import ConfigError, DeviceError

from ..config import SpeakerConfig
from .portaudio_process import PLAY_GRACE_SECONDS, PortAudioChild

log = logging.getLogger(__name__)

# Seconds the child may take to start playing (Python, PortAudio, the device).
OPEN_SECONDS = 5.0

RATE = 48_000
DEFAULT_ANNOUNCEMENT = Path(__file__).resolve().parent.parent / "assets" / "announcement-zh.wav"


@dataclass(frozen=True)
class Announcement:
    samples: np.ndarray  # float32 mono, 48 kHz
    sha256: str  # of the WAV file, stamped into the notify event
    source: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


def load_announcement(path: Path | None) -> Announcement:
    path = Path(path) if path else DEFAULT_ANNOUNCEMENT
    try:
        raw = path.read_bytes()
        with wave.open(str(path)) as w:
            if w.getsampwidth() != 2:
                raise ConfigError(f"{path}: announcement must be 16-bit PCM WAV, "
                                  f"found {8 * w.getsampwidth()}-bit")
            rate, channels = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except FileNotFoundError:
        raise ConfigError(f"{path}: announcement WAV not found (speaker.announcement)") from None
    except (wave.Error, EOFError) as exc:
        raise ConfigError(f"{path}: not a WAV file the speaker can play: {exc}") from None
    mono = pcm.reshape(-1, channels).mean(axis=1).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    samples = np.concatenate(chunks).astype(np.float32)
    name = "default" if path == DEFAULT_ANNOUNCEMENT else path.name
    return Announcement(samples, hashlib.sha256(raw).hexdigest(), name)


class Speaker:
    """Plays on a background thread so the controls stay responsive.

    PortAudio runs in a child process for each announcement
    (``portaudio_process``): a fresh PortAudio every time, so that the notice
    is heard again once an audio server that died is back, and a microphone
    restart never disturbs it.  One child is kept started ahead (``_spare``,
    Python and numpy loaded, PortAudio not yet), so a press does not wait
    for an interpreter to start.  ``error`` is what made the last play fail
    (None after a play that worked).
    """

    def __init__(self, cfg: SpeakerConfig) -> None:
        self.cfg = cfg
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.played = 0
        self.faults = None  # a capture.seam.FaultChannel, set by the service
        self._spare: PortAudioChild | None = None
        self._start_spare()

    def _start_spare(self) -> None:
        try:
            self._spare = PortAudioChild("play", self.cfg.device)
        except OSError as exc:  # no process to spare now: the next play starts its own
            log.warning("speaker: cannot start a player ahead: %s", exc)
            self._spare = None

    def _take_child(self) -> PortAudioChild:
        child, self._spare = self._spare, None
        if child is not None and child.running:
            return child
        if child is not None:
            child.end(0)
        return PortAudioChild("play", self.cfg.device)

    def play(self, announcement: Announcement, wait: bool = False) -> None:
        if self.playing:
            return  # a second press while speaking does not restart it
        self._thread = threading.Thread(target=self._play, args=(announcement,), daemon=True,
                                        name="speaker")
        self._thread.start()
        if wait:
            self._thread.join()

    def _play(self, announcement: Announcement) -> None:
        child = None
        try:
            child = self._take_child()
            child.send(announcement.samples.astype("<f4").tobytes())
            child.wait_ready(OPEN_SECONDS)
            if not child.done.wait(announcement.seconds + PLAY_GRACE_SECONDS + OPEN_SECONDS):
                raise DeviceError(f"{child.what()}: the announcement did not finish playing")
            if child.error is not None or child.proc.wait(2) != 0:
                raise DeviceError(f"{child.what()}: {child.error or f'exited with {child.proc.returncode}'}")
            self.played += 1
            self.error = None
        except Exception as exc:  # a missing amplifier must not stop the recording
            self.error = exc
            if self.faults is not None:  # the seal log says the notice may not have been heard
                self.faults.report("speaker", "failed", f"{type(exc).__name__}: {exc}")
        finally:
            if child is not None:
                child.end(1)
            self._start_spare()

    @property
    def playing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """End the player started ahead (it would also end when this process does)."""
        if self._spare is not None:
            self._spare.end(1)
            self._spare = None


class NullSpeaker:
    error = None
    played = 0
    playing = False

    def play(self, announcement: Announcement, wait: bool = False) -> None:
        self.played += 1

    def close(self) -> None:
        pass
