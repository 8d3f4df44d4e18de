"""source → pre-roll → segmenter → sealer, each stage one small interface.

Every stage is an *output* in picamera2's sense: ``outputframe(frame,
keyframe, timestamp, packet, audio)`` with timestamps in microseconds and
``_add_stream(key, codec, **kwargs)`` to learn the streams, so picamera2's
encoder can feed ``PreRoll`` directly on a Pi and the PyAV sim camera feeds
it the same way here.

Why not picamera2's own ``CircularOutput2``: it keeps every frame for the
whole buffer duration even while recording, so a power cut would lose the
last 30 s.  ``PreRoll`` hands the buffer over at the press and then passes
frames straight through.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..sealing.sealer import SegmentWriter
from ..sealing.state import SealingState
from .fmp4 import SegmentMuxer

log = logging.getLogger(__name__)

Frame = tuple[bytes, bool, int, Any, bool]  # frame, keyframe, timestamp_us, packet, audio


class Output:
    """picamera2's Output interface, as the stages implement it."""

    needs_pacing = False
    needs_add_stream = True

    def __init__(self) -> None:
        self.recording = False

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False) -> None:
        raise NotImplementedError

    def _add_stream(self, encoder_stream, codec_name=None, **kwargs) -> None:
        pass


class PreRoll(Output):
    """Keeps the last ``seconds`` of encoded packets, starting at a keyframe."""

    def __init__(self, seconds: float, keep_audio: bool = False) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._duration_us = int(seconds * 1_000_000)
        self._keep_audio = keep_audio
        self._buffer: collections.deque[Frame] = collections.deque()
        self._keyframes: collections.deque[int] = collections.deque()  # their timestamps
        self._target: Output | None = None
        self.streams: dict[Any, dict[str, Any]] = {}
        self.dropped_before_keyframe = 0

    def _add_stream(self, encoder_stream, codec_name=None, **kwargs) -> None:
        # picamera2's V4L2 encoder names its stream "video" and sends raw
        # H.264; its libav encoder (Pi 5) passes its av.Stream, a template.
        spec = {"codec": codec_name, **kwargs}
        if not isinstance(encoder_stream, str):
            spec.setdefault("template", encoder_stream)
            encoder_stream = "video"
        self.streams[encoder_stream] = spec

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False) -> None:
        with self._lock:
            if self._target is not None:
                self._target.outputframe(frame, keyframe, timestamp, packet, audio)
                return
            if audio and not self._keep_audio:
                return
            if not audio and keyframe:
                self._keyframes.append(timestamp)
            elif not self._keyframes:
                self.dropped_before_keyframe += 1
                return  # the buffer always begins at a keyframe
            self._buffer.append((frame, keyframe, timestamp, packet, audio))
            self._trim(timestamp)

    def _trim(self, now_us: int) -> None:
        # Drop the oldest GOP while the GOPs after it still cover the duration
        # (with no pre-roll: keep only the newest GOP, as recording must start
        # at a keyframe).
        while len(self._keyframes) >= 2 and now_us - self._keyframes[1] >= self._duration_us:
            self._keyframes.popleft()
            head = self._keyframes[0]
            while self._buffer:
                _, keyframe, timestamp, _, audio = self._buffer[0]
                if keyframe and not audio and timestamp == head:
                    break
                self._buffer.popleft()

    def open(self, target: Output) -> float:
        """Hand the buffer to ``target`` and pass everything live from now on.

        Returns the seconds of footage handed over (from before the press).
        """
        with self._lock:
            seconds = (self._buffer[-1][2] - self._buffer[0][2]) / 1e6 if self._buffer else 0.0
            while self._buffer:
                target.outputframe(*self._buffer.popleft())
            self._keyframes.clear()
            self._target = target
            return seconds

    def close(self) -> None:
        with self._lock:
            self._target = None


# --------------------------------------------------------------------------
# sealing thread


class SealingQueue:
    """Runs sealing (encrypt, append, fsync, checkpoint) off the capture thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)
        self.error: BaseException | None = None
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            func, args, done = item
            try:
                if self.error is None:
                    func(*args)
            except BaseException as exc:  # reported to the recorder, which stops
                log.exception("sealing failed")
                self.error = exc
            finally:
                if done is not None:
                    done.set()

    def submit(self, func: Callable, *args, wait: bool = False) -> None:
        done = threading.Event() if wait else None
        self._queue.put((func, args, done))
        if done is not None:
            done.wait()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()


# --------------------------------------------------------------------------
# segmenter


@dataclass
class SegmentInfo:
    writer: SegmentWriter
    muxer: SegmentMuxer
    start_us: int
    events: list[dict[str, Any]] = field(default_factory=list)


class Segmenter(Output):
    """Cuts the packet stream into sealed fMP4 segments at keyframes."""

    def __init__(
        self,
        sealing: SealingState,
        sealer: SealingQueue,
        streams: dict[Any, dict[str, Any]],
        *,
        segment_seconds: float,
        audio_only: bool,
        officer: Callable[[], str | None],
        meta: Callable[[], dict[str, Any]],
        container_tags: Callable[[], dict[str, str]],
    ) -> None:
        super().__init__()
        self._sealing = sealing
        self._sealer = sealer
        self._streams = streams
        self._segment_us = int(segment_seconds * 1_000_000)
        self._audio_only = audio_only
        self._officer = officer
        self._meta = meta
        self._tags = container_tags
        self.current: SegmentInfo | None = None
        self._retiring: SegmentInfo | None = None  # still takes late audio
        self.sealed: list[str] = []
        self.end_us: int | None = None
        self.audio_until = -1
        self.video_until = -1
        video = streams.get("video") or {}
        self._frame_us = int(1_000_000 / float(video["rate"])) if video.get("rate") else 0
        self.video_end_us: int | None = None  # end of the last video frame taken
        # Sources that are down (capture.seam / liveness): with the camera down,
        # segments are cut on audio and hold audio only; the first keyframe after
        # the camera is back cuts at once.  A down stream is not waited for.
        self.video_down = False
        self.audio_down = False
        self._force_cut = False
        self._lock = threading.Lock()

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False) -> None:
        with self._lock:
            if audio:
                self.audio_until = timestamp
            else:
                self.video_until = timestamp
            if self.end_us is not None and timestamp > self.end_us and not (
                    audio and self.video_end_us is not None and timestamp < self.video_end_us):
                return  # captured after the stop (audio: after the last video frame's end)
            cut_here = keyframe and (audio == self._audio_cut)
            if self.current is None:
                if not cut_here:
                    return
                self._open(timestamp)
            elif cut_here and (self._force_cut or timestamp - self.current.start_us >= self._segment_us):
                self._retire_current()
                self._open(timestamp)
            self._force_cut = False
            target = self.current
            if audio and not self._audio_only and self._retiring is not None:
                # Audio from before the cut may arrive after the video keyframe
                # that made it; it belongs to the segment before.
                if timestamp < self.current.start_us:
                    target = self._retiring
                else:
                    self._close(self._retiring)
                    self._retiring = None
            key = "audio" if audio else "video"
            if not target.muxer.has(key):
                return  # video while the segment is audio-only (camera down), before its keyframe
            if not audio and not self._audio_only:
                self.video_end_us = timestamp + self._frame_us
            target.muxer.mux(key, frame, keyframe, timestamp, packet)

    @property
    def _audio_cut(self) -> bool:
        """Cut segments on audio packets: audio-only mode, or while the camera is down."""
        return self._audio_only or self.video_down

    def set_down(self, video: bool, audio: bool) -> None:
        """Which sources are down (from the recorder's liveness checks)."""
        with self._lock:
            if self.video_down and not video:
                self._force_cut = True  # the camera is back: a segment with video starts at its keyframe
            self.video_down, self.audio_down = video, audio

    def _retire_current(self) -> None:
        if self._retiring is not None:
            self._close(self._retiring)
        if "audio" in self._streams and not self._audio_cut:
            self._retiring = self.current
        else:
            self._close(self.current)
        self.current = None

    def _open(self, timestamp_us: int) -> None:
        audio_only = self._audio_cut
        media = "audio/mp4" if audio_only else "video/mp4"
        meta = {**self._meta(), "media_start_us": timestamp_us}
        if audio_only and not self._audio_only:
            meta["video_missing"] = "camera down"
        writer = self._sealing.open_segment(media, self._officer(), meta)
        tags = {**self._tags(), "title": writer.name}
        streams = {k: v for k, v in self._streams.items() if not (audio_only and k == "video")}
        muxer = SegmentMuxer(
            lambda fragment, w=writer: self._sealer.submit(w.append, fragment),
            streams, audio_only=audio_only, metadata=tags, origin_us=timestamp_us,
        )
        self.current = SegmentInfo(writer, muxer, timestamp_us)

    def _close(self, info: SegmentInfo) -> None:
        info.muxer.close()
        meta = {
            **self._meta(),
            "media_start_us": info.start_us,
            "video_frames": info.muxer.video_frames,
            "audio_packets": info.muxer.audio_packets,
            "last_video_us": info.muxer.last_video_us,
            "events": info.events,
        }
        if not self._audio_only and not info.muxer.has("video"):
            meta["video_missing"] = "camera down"
        self._sealer.submit(info.writer.close, meta)
        self.sealed.append(info.writer.name)

    def add_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self.current is not None:
                self.current.events.append(event)

    def end_at(self, end_us: int) -> None:
        """Take nothing captured after ``end_us`` (the stop press)."""
        with self._lock:
            self.end_us = end_us

    def caught_up(self) -> bool:
        """Every stream has delivered what was captured before the stop.

        Audio must also cover the last video frame to its end, so that a
        segment cut just before the stop has the sound of its pictures.
        """
        with self._lock:
            end = self.end_us or 0
            audio_end = max(end, self.video_end_us or 0) if not self._audio_only else end
            return all(
                until >= want
                for key, until, want in (("video", self.video_until, end), ("audio", self.audio_until, audio_end))
                if key in self._streams and not (self._audio_only and key == "video")
                and not (self.video_down if key == "video" else self.audio_down)
            )

    def close(self) -> None:
        """Seal the open segment (waits until it is durable)."""
        with self._lock:
            for info in (self._retiring, self.current):
                if info is not None:
                    self._close(info)
            self._retiring = self.current = None
        self._sealer.submit(lambda: None, wait=True)
