"""Viewing copies, visibly watermarked with the viewer and the time (Art. 25 (3):
a leaked copy names who viewed it).  Evidence originals are never touched:
these functions take plaintext bytes and return a new, re-encoded file.

Video: decoded and re-encoded with PyAV (libx264, CRF 23), the text drawn
with Pillow into every frame, twice (top right and bottom left) and half
transparent.  Stills: the same text drawn into the JPEG.  Text uses Noto Sans
CJK (Debian fonts-noto-cjk) when present, so Chinese names render.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)
FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
         "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc")


@lru_cache(maxsize=8)
def _font(size: int):
    for path in FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    log.warning("no CJK font (Debian fonts-noto-cjk): watermark drawn with Pillow's default font")
    return ImageFont.load_default(size)


def watermark_text(viewer: str, when_utc: str, purpose: str = "查看副本") -> str:
    return f"{purpose} {viewer} {when_utc[:19].replace('T', ' ')}Z 非证据原件"


def _stamp(img: Image.Image, text: str) -> Image.Image:
    img = img.convert("RGBA")
    size = max(10, img.height // 18)
    font = _font(size)
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w = draw.textlength(text, font=font)
    for x, y in ((img.width - w - size // 2, size // 3), (size // 2, img.height - size * 1.5)):
        draw.rectangle((x - 3, y - 2, x + w + 3, y + size * 1.25), fill=(0, 0, 0, 110))
        draw.text((x, y), text, font=font, fill=(255, 255, 255, 200))
    return Image.alpha_composite(img, layer).convert("RGB")


def watermark_jpeg(data: bytes, text: str) -> bytes:
    img = _stamp(Image.open(io.BytesIO(data)), text)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def watermark_video(data: bytes, text: str) -> bytes:
    """Re-encode an MP4 with ``text`` burned into every frame (video only:
    audio is copied through re-encoded as AAC when present)."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, "w", format="mp4",
                                                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as dst:
        vin = src.streams.video[0]
        rate = vin.average_rate or vin.base_rate or 25
        vout = dst.add_stream("libx264", rate=rate)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.options = {"crf": "23", "preset": "veryfast"}
        aout = None
        if src.streams.audio:
            ain = src.streams.audio[0]
            aout = dst.add_stream("aac", rate=ain.codec_context.sample_rate or 48000)
        streams = [vin] + ([src.streams.audio[0]] if aout is not None else [])
        for frame in src.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                marked = av.VideoFrame.from_image(_stamp(frame.to_image(), text))
                for packet in vout.encode(marked):
                    dst.mux(packet)
            elif aout is not None:
                frame.pts = None
                for packet in aout.encode(frame):
                    dst.mux(packet)
        for packet in vout.encode():
            dst.mux(packet)
        if aout is not None:
            for packet in aout.encode():
                dst.mux(packet)
    return out.getvalue()


def watermark(data: bytes, media: str, text: str) -> bytes:
    """A watermarked viewing copy of plaintext media (``video/mp4``, ``audio/mp4``
    are re-encoded; ``image/jpeg`` drawn on); ValueError for other types."""
    if media == "image/jpeg":
        return watermark_jpeg(data, text)
    if media == "video/mp4":
        return watermark_video(data, text)
    raise ValueError(f"no viewing copy for media type {media!r}")
