"""Viewing copies, visibly watermarked with the viewer and the time (Art. 25 (3):
a leaked copy names who viewed it).  Evidence originals are never touched:
these functions take plaintext bytes and return a new, re-encoded file.

Video: decoded and re-encoded with PyAV (libx264, CRF 23); the text is drawn
once with Pillow (top right and bottom left, on a half-transparent box) and
blended into the luma plane of every frame with numpy.  Stills: the same text drawn into the JPEG.  Text uses Noto Sans
CJK (Debian fonts-noto-cjk) when present, so Chinese names render.  Audio-only
segments (the camera was down, or the recorder records sound only) become a
video: the text over black for as long as the sound, with the sound, so that
the console's ``<video>`` plays them and a leaked copy still names the viewer.
"""

from __future__ import annotations

import io
import logging
from fractions import Fraction
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
    size = max(10, img.height // 22)
    font = _font(size)
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w = draw.textlength(text, font=font)
    # right, below the recorder's own overlay line (top left), and bottom left: never over the time stamp
    for x, y in ((img.width - w - size // 2, size * 2), (size // 2, img.height - size * 1.5)):
        draw.rectangle((x - 3, y - 2, x + w + 3, y + size * 1.25), fill=(0, 0, 0, 110))
        draw.text((x, y), text, font=font, fill=(255, 255, 255, 200))
    return Image.alpha_composite(img, layer).convert("RGB")


def _luma_boxes(width: int, height: int, text: str) -> list[tuple[int, int, int, int, "np.ndarray", "np.ndarray"]]:
    """The watermark as (y0, y1, x0, x1, alpha, luma) boxes, drawn once per video:
    each frame then only blends two small rectangles of its Y plane."""
    import numpy as np

    layer = _stamp(Image.new("RGB", (width, height), (0, 0, 0)), text)  # what the mark does to black …
    white = _stamp(Image.new("RGB", (width, height), (255, 255, 255)), text)  # … and to white
    black_y = np.asarray(layer.convert("L"), np.float32)
    white_y = np.asarray(white.convert("L"), np.float32)
    # out = in * (1 - alpha) + value * alpha, solved from the two renderings
    alpha = 1.0 - (white_y - black_y) / 255.0
    value = np.divide(black_y, alpha, out=np.zeros_like(black_y), where=alpha > 1e-3)
    boxes = []
    size = max(10, height // 22)
    for y0, y1 in ((size * 2 - 3, size * 4), (height - size * 2, height)):
        cols = np.nonzero(alpha[y0:y1].max(axis=0) > 1e-3)[0]
        if cols.size:
            x0, x1 = int(cols[0]), int(cols[-1]) + 1
            boxes.append((y0, y1, x0, x1, alpha[y0:y1, x0:x1].copy(), value[y0:y1, x0:x1].copy()))
    return boxes


def _mark_frame(frame: "av.VideoFrame", boxes) -> "av.VideoFrame":
    import numpy as np

    arr = frame.to_ndarray(format="yuv420p")
    for y0, y1, x0, x1, alpha, value in boxes:
        region = arr[y0:y1, x0:x1].astype(np.float32)  # the Y plane is the first `height` rows
        # video range: map the full-range mark into 16..235
        arr[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + (16 + value * 219 / 255) * alpha, 0, 255).astype(np.uint8)
    return av.VideoFrame.from_ndarray(arr, format="yuv420p")


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
        vout.options = {"crf": "23", "preset": "veryfast", "bf": "0"}  # no reordering: the picture starts at 0, with the sound
        aout = None
        if src.streams.audio:
            ain = src.streams.audio[0]
            aout = dst.add_stream("aac", rate=ain.codec_context.sample_rate or 48000)
        streams = [vin] + ([src.streams.audio[0]] if aout is not None else [])
        boxes = _luma_boxes(vout.width, vout.height, text)
        for frame in src.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                marked = _mark_frame(frame, boxes)
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


# The picture of an audio-only segment's viewing copy: black, the watermark,
# and a line saying there is no picture.  1280x720 gives the mark a 32-pixel
# font (height // 22); two frames a second, a keyframe each second, so that a
# seek shows the mark at once.  Black frames cost a few hundred bytes each.
AUDIO_PICTURE = (1280, 720)
AUDIO_PICTURE_FPS = 2
AUDIO_ONLY_LABEL = "仅录音 · 无画面"


def audio_only_picture(text: str | None = None) -> Image.Image:
    """The picture of an audio-only segment (``AUDIO_PICTURE``, RGB): black, a
    grey ``AUDIO_ONLY_LABEL`` in the middle, and ``text`` stamped as on video
    copies when given (thumbnails of the originals carry none)."""
    width, height = AUDIO_PICTURE
    img = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    font = _font(height // 12)
    w = draw.textlength(AUDIO_ONLY_LABEL, font=font)
    draw.text(((width - w) / 2, height / 2 - height // 24), AUDIO_ONLY_LABEL, font=font, fill=(110, 110, 110))
    return img if text is None else _stamp(img, text)


def watermark_audio(data: bytes, text: str) -> bytes:
    """A viewing copy of an audio-only MP4 that a ``<video>`` element plays and
    that still names its viewer: an MP4 (H.264 + AAC) whose picture is
    ``AUDIO_PICTURE`` black with ``text`` burned in, at ``AUDIO_PICTURE_FPS``
    for as long as the sound lasts, and the segment's audio re-encoded as AAC
    at its own rate.  ValueError when ``data`` has no audio stream."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as src, av.open(out, "w", format="mp4",
                                                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as dst:
        if not src.streams.audio:
            raise ValueError("no audio stream in an audio/mp4 segment")
        ain = src.streams.audio[0]
        rate = ain.codec_context.sample_rate or 48000
        dst.metadata["comment"] = text  # beside the picture: a copy stripped of it still says whose it was
        vout = dst.add_stream("libx264", rate=AUDIO_PICTURE_FPS)
        vout.width, vout.height = AUDIO_PICTURE
        vout.pix_fmt = "yuv420p"
        vout.options = {"crf": "23", "preset": "veryfast", "g": str(AUDIO_PICTURE_FPS), "bf": "0"}
        # Picture times counted in samples, so that the last picture ends with the sound.
        vout.codec_context.time_base = Fraction(1, rate)
        step = rate // AUDIO_PICTURE_FPS
        aout = dst.add_stream("aac", rate=rate)
        picture = av.VideoFrame.from_image(audio_only_picture(text)).reformat(format="yuv420p")
        sent = 0  # pictures sent; picture k shows from sample k * step
        end: int | None = None  # the sound's length in samples, once known

        def mux_pictures(packets) -> None:
            for packet in packets:
                packet.duration = step if end is None else min(step, end - packet.pts)
                dst.mux(packet)

        def pictures_before(samples: int) -> None:
            nonlocal sent
            while sent * step < samples:
                picture.pts = sent * step
                mux_pictures(vout.encode(picture))
                sent += 1

        samples = 0
        for frame in src.decode(ain):
            pictures_before(samples + 1)  # a picture for the first sample of this frame
            samples += frame.samples
            frame.pts = None
            for packet in aout.encode(frame):
                dst.mux(packet)
        end = max(samples, 1)
        pictures_before(end)  # the picture lasts as long as the sound
        for packet in aout.encode():
            dst.mux(packet)
        mux_pictures(vout.encode())
    return out.getvalue()


VIEWING_MEDIA = {"video/mp4": "video/mp4", "audio/mp4": "video/mp4", "image/jpeg": "image/jpeg"}


def viewing_media(media: str) -> str:
    """The media type of the viewing copy of a segment of type ``media``: an
    audio-only segment's copy is a video (its picture carries the watermark).
    ValueError for types that get no viewing copy."""
    try:
        return VIEWING_MEDIA[media]
    except KeyError:
        raise ValueError(f"no viewing copy for media type {media!r}") from None


def watermark(data: bytes, media: str, text: str) -> bytes:
    """A watermarked viewing copy of plaintext media, of type ``viewing_media(media)``:
    ``video/mp4`` re-encoded with ``text`` on every frame, ``audio/mp4`` made a
    video of ``text`` over black with the sound (``watermark_audio``),
    ``image/jpeg`` drawn on; ValueError for other types."""
    if media == "image/jpeg":
        return watermark_jpeg(data, text)
    if media == "video/mp4":
        return watermark_video(data, text)
    if media == "audio/mp4":
        return watermark_audio(data, text)
    raise ValueError(f"no viewing copy for media type {media!r}")
