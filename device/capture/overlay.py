"""Burn device ID, officer ID and local time into the picture before encoding.

The text patch is rendered (Pillow) only when the text changes, i.e. once a
second, and copied in place into the frame's luma plane; chroma under it is
set neutral so the box reads as black on any picture.  On the Pi this runs in
picamera2's ``pre_callback`` on the YUV420 main stream.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..sealing.clock import CLOCK_UNTRUSTED

BLACK, WHITE, NEUTRAL = 16, 235, 128
UNTRUSTED_MARK = "CLOCK?"


@dataclass(frozen=True)
class Patch:
    text: str
    luma: np.ndarray  # (h, w) uint8, h and w even
    x: int
    y: int


class Overlay:
    def __init__(self, device_id: str, width: int, height: int, timezone: str) -> None:
        self.device_id = device_id
        self.width = width
        self.height = height
        self.zone = ZoneInfo(timezone)
        self.font = ImageFont.load_default(size=max(12, height // 28))
        self.margin = max(4, height // 60) // 2 * 2
        self._patch: Patch | None = None
        self.officer: str | None = None

    def text_at(self, utc: dt.datetime, clock_state: str) -> str:
        local = utc.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
        parts = [local, self.device_id, self.officer or "------"]
        if clock_state == CLOCK_UNTRUSTED:
            parts.append(UNTRUSTED_MARK)
        return "  ".join(parts)

    def patch(self, text: str) -> Patch:
        if self._patch is not None and self._patch.text == text:
            return self._patch
        left, top, right, bottom = self.font.getbbox(text)
        pad = self.margin // 2 * 2
        w = min(self.width - 2 * self.margin, (right + 2 * pad + 1) // 2 * 2)
        h = min(self.height - 2 * self.margin, (bottom + 2 * pad + 1) // 2 * 2)
        image = Image.new("L", (w, h), BLACK)
        ImageDraw.Draw(image).text((pad - left, pad - top // 2), text, fill=WHITE, font=self.font)
        self._patch = Patch(text, np.asarray(image, dtype=np.uint8), self.margin, self.margin)
        return self._patch

    def stamp(self, y: np.ndarray, u: np.ndarray | None, v: np.ndarray | None,
              utc: dt.datetime, clock_state: str) -> Patch:
        """Write the patch into planes (views on the frame's memory)."""
        p = self.patch(self.text_at(utc, clock_state))
        h, w = p.luma.shape
        y[p.y : p.y + h, p.x : p.x + w] = p.luma
        for plane in (u, v):
            if plane is not None:
                plane[p.y // 2 : (p.y + h) // 2, p.x // 2 : (p.x + w) // 2] = NEUTRAL
        return p


def plane_view(plane, height: int, width: int) -> np.ndarray:
    """A writable (height, width) numpy view on a PyAV VideoPlane."""
    return np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)[:height, :width]
