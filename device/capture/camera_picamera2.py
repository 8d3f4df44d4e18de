"""Camera backend for the Raspberry Pi: picamera2 (libcamera) and its H.264 encoder.

Kept thin: picamera2 does capture and encoding (hardware V4L2 encoder on
Pi 4 / Zero 2 W, libav on Pi 5); the overlay is stamped in ``pre_callback``
on the YUV420 main stream; the encoder feeds our ``PreRoll`` directly, as
it would any picamera2 output.  It cannot run without libcamera, so only
its import-free parts are tested off the Pi.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
from PIL import Image

from ..sealing.clock import Clock
from ..config import CameraConfig
from .overlay import Overlay


def yuv420_to_rgb(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """picamera2's YUV420 array (h*3/2 rows) to an RGB image (BT.601, video range)."""
    stride = array.shape[1]
    y = array[:height, :width].astype(np.float32) - 16
    chroma = array[height:].reshape(-1)
    u = chroma[: stride * height // 4].reshape(height // 2, stride // 2)[:, : width // 2]
    v = chroma[stride * height // 4 : stride * height // 2].reshape(height // 2, stride // 2)[:, : width // 2]
    u = np.repeat(np.repeat(u.astype(np.float32) - 128, 2, 0), 2, 1)
    v = np.repeat(np.repeat(v.astype(np.float32) - 128, 2, 0), 2, 1)
    rgb = np.stack([1.164 * y + 1.596 * v, 1.164 * y - 0.392 * u - 0.813 * v, 1.164 * y + 2.017 * u], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


class TimestampAdapter:
    """picamera2 timestamps start at the first frame; ours at the recorder's origin."""

    needs_pacing = False
    needs_add_stream = True

    def __init__(self, output, origin_ns: int) -> None:
        self._output = output
        self._origin_ns = origin_ns
        self._offset_us: int | None = None
        self.recording = False
        self.frames = 0

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def _add_stream(self, *args, **kwargs) -> None:
        self._output._add_stream(*args, **kwargs)

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False) -> None:
        if self._offset_us is None:
            self._offset_us = (time.monotonic_ns() - self._origin_ns) // 1000 - timestamp
        self.frames += 1
        self._output.outputframe(frame, keyframe, timestamp + self._offset_us, packet, audio)


class Picamera2Camera:
    def __init__(self, cfg: CameraConfig, overlay: Overlay, clock: Clock, origin_ns: int) -> None:
        self.cfg = cfg
        self.overlay = overlay
        self.clock = clock
        self.origin_ns = origin_ns
        self.error: BaseException | None = None
        self.faults = None  # a capture.seam.FaultChannel, set by the recorder
        self._lock = threading.Lock()

    def start(self, output) -> None:
        from picamera2 import Picamera2  # from apt on the Pi
        from picamera2.encoders import H264Encoder

        cfg = self.cfg
        frame_us = 1_000_000 // cfg.fps
        self.picam2 = Picamera2()
        config = self.picam2.create_video_configuration(
            main={"size": (cfg.width, cfg.height), "format": "YUV420"},
            controls={"FrameDurationLimits": (frame_us, frame_us)},
        )
        self.picam2.configure(config)
        self.picam2.pre_callback = self._stamp
        encoder = H264Encoder(bitrate=cfg.bitrate, repeat=True,
                              iperiod=max(1, round(cfg.gop_seconds * cfg.fps)), framerate=cfg.fps)
        self.adapter = TimestampAdapter(output, self.origin_ns)
        self.picam2.start_recording(encoder, self.adapter)

    def _stamp(self, request) -> None:
        from picamera2 import MappedArray

        with MappedArray(request, "main") as m:
            self.overlay.stamp(m.array[: self.cfg.height, : self.cfg.width], None, None,
                               self.clock.utc_now(), self.clock.state)

    def still_jpeg(self) -> bytes:
        array = self.picam2.capture_array("main")
        buf = io.BytesIO()
        Image.fromarray(yuv420_to_rgb(array, self.cfg.width, self.cfg.height)).save(buf, "JPEG", quality=90)
        return buf.getvalue()

    @property
    def frames(self) -> int:
        return self.adapter.frames if hasattr(self, "adapter") else 0

    @property
    def alive(self) -> bool:
        return self.error is None and hasattr(self, "picam2") and self.picam2.started

    def stop(self) -> None:
        self.picam2.stop_recording()
        self.picam2.close()
