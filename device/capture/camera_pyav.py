"""Camera backend on PyAV: ffmpeg's lavfi test source, a media file or a V4L2
webcam, stamped and encoded with libx264 (zerolatency, GOP <= 1 s).

This is the ``sim`` camera; the pipeline after it is the one the Pi runs.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from fractions import Fraction

import av

from bodycam.errors import BodycamError, ConfigError

from ..sealing.clock import Clock
from ..config import CameraConfig
from .overlay import Overlay, plane_view

log = logging.getLogger(__name__)


def open_h264_encoder(width: int, height: int, fps: int, bitrate: int, gop: int):
    """libx264 as a stream of a null container, opened, with global headers.

    Opening it through the container fills the stream's codec parameters
    (SPS/PPS as extradata), which the fMP4 muxer copies from it.
    """
    container = av.open(os.devnull, "w", format="null")
    stream = container.add_stream(
        "libx264", rate=fps,
        options={"preset": "ultrafast", "tune": "zerolatency", "scenecut": "0",
                 "keyint": str(gop), "min-keyint": str(gop)},
    )
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    ctx = stream.codec_context
    ctx.gop_size = gop
    ctx.bit_rate = bitrate
    ctx.flags |= av.codec.context.Flags.global_header
    container.start_encoding()
    return container, stream


def _open_source(cfg: CameraConfig):
    src = cfg.source
    try:
        if src.startswith("/dev/video"):
            return av.open(src, format="v4l2", options={
                "video_size": f"{cfg.width}x{cfg.height}", "framerate": str(cfg.fps)})
        if "/" in src or "." in src:
            return av.open(src)
        return av.open(f"{src}=size={cfg.width}x{cfg.height}:rate={cfg.fps}", format="lavfi")
    except (av.error.FFmpegError, OSError) as exc:
        raise ConfigError(f"camera.source {src!r} cannot be opened: {exc}") from None


class CameraError(BodycamError, RuntimeError):
    """The camera source failed or would not stop."""


class PyAVCamera:
    def __init__(self, cfg: CameraConfig, overlay: Overlay, clock: Clock, origin_ns: int,
                 realtime: bool = True) -> None:
        self.cfg = cfg
        self.overlay = overlay
        self.clock = clock
        self.origin_ns = origin_ns
        self.realtime = realtime
        self.gop = max(1, round(cfg.gop_seconds * cfg.fps))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_frame: av.VideoFrame | None = None
        self.frames = 0
        self.error: BaseException | None = None
        self.faults = None  # a capture.seam.FaultChannel, set by the recorder

    def start(self, output) -> None:
        self._input = _open_source(self.cfg)
        self._container, self.stream = open_h264_encoder(
            self.cfg.width, self.cfg.height, self.cfg.fps, self.cfg.bitrate, self.gop)
        output._add_stream("video", "h264", template=self.stream, rate=self.cfg.fps,
                           width=self.cfg.width, height=self.cfg.height)
        self._output = output
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def _frames(self):
        while not self._stop.is_set():
            got = False
            for frame in self._input.decode(video=0):
                got = True
                yield frame
            if not got:
                return
            self._input.seek(0)  # a file loops

    def _run(self) -> None:
        cfg = self.cfg
        tb = Fraction(1, cfg.fps)
        try:
            start_ns = time.monotonic_ns()
            base_us = (start_ns - self.origin_ns) // 1000
            for n, frame in enumerate(self._frames()):
                if self._stop.is_set():
                    break
                if self.realtime:
                    delay = start_ns + n * 1_000_000_000 // cfg.fps - time.monotonic_ns()
                    if delay > 0:
                        time.sleep(delay / 1e9)
                if (frame.width, frame.height, frame.format.name) != (cfg.width, cfg.height, "yuv420p"):
                    frame = frame.reformat(cfg.width, cfg.height, "yuv420p")
                frame.pict_type = av.video.frame.PictureType.NONE  # let x264 place keyframes
                self.overlay.stamp(
                    plane_view(frame.planes[0], cfg.height, cfg.width),
                    plane_view(frame.planes[1], cfg.height // 2, cfg.width // 2),
                    plane_view(frame.planes[2], cfg.height // 2, cfg.width // 2),
                    self.clock.utc_now(), self.clock.state,
                )
                frame.pts, frame.time_base = n, tb
                self._last_frame = frame
                self.frames += 1
                for packet in self.stream.encode(frame):
                    self._emit(packet, base_us)
            for packet in self.stream.encode(None):
                self._emit(packet, base_us)
        except BaseException as exc:  # reported to the recorder
            log.exception("camera stopped")
            self.error = exc

    def _emit(self, packet: av.Packet, base_us: int) -> None:
        timestamp = base_us + int(packet.pts * 1_000_000 // self.cfg.fps)
        self._output.outputframe(None, packet.is_keyframe, timestamp, packet, False)

    def still_jpeg(self) -> bytes:
        frame = self._last_frame
        if frame is None:
            raise RuntimeError("the camera has not delivered a frame yet")
        buf = io.BytesIO()
        frame.to_image().save(buf, format="JPEG", quality=90)
        return buf.getvalue()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.error is None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive():  # blocked in the source (a stalled pipe or device)
                raise CameraError(f"camera source {self.cfg.source!r} did not stop within 5 s")
        if hasattr(self, "_container"):
            self._container.close()
