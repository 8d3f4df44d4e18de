"""Fragmented MP4 for one segment: PyAV muxes, we cut its byte stream into fragments.

ffmpeg's mp4 muxer (``movflags=frag_keyframe+empty_moov+default_base_moof``)
writes ``ftyp moov`` first and then one ``moof mdat`` pair per keyframe.
``FragmentSplitter`` is the file object it writes to: it parses top-level
box headers and hands each complete unit to the sealer — the init segment
as fragment 0, then each ``moof mdat`` (with any ``styp``/``sidx``/``prft``
before it) as one fragment.  Concatenating the fragments gives the file.
"""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from typing import Any, Callable

import av

from bodycam.errors import FormatError

MICROSECONDS = Fraction(1, 1_000_000)
VIDEO_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
# Audio-only: every AAC packet is a keyframe, so cut by duration instead.
AUDIO_MOVFLAGS = "empty_moov+default_base_moof"
AUDIO_FRAG_DURATION_US = 1_000_000
MAX_BOX = 256 * 1024 * 1024


class FragmentSplitter(io.RawIOBase):
    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self._emit = emit
        self._buf = bytearray()
        self._pending = bytearray()  # boxes waiting for their mdat
        self._init_done = False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._buf += data
        self._drain()
        return len(data)

    def _next_box(self) -> tuple[bytes, bytes] | None:
        if len(self._buf) < 8:
            return None
        size, kind = struct.unpack_from(">I4s", self._buf, 0)
        header = 8
        if size == 1:
            if len(self._buf) < 16:
                return None
            (size,) = struct.unpack_from(">Q", self._buf, 8)
            header = 16
        if size < header or size > MAX_BOX:
            raise FormatError(f"muxer wrote a box {kind!r} of impossible size {size}")
        if len(self._buf) < size:
            return None
        box = bytes(self._buf[:size])
        del self._buf[:size]
        return kind, box

    def _drain(self) -> None:
        while (item := self._next_box()) is not None:
            kind, box = item
            self._pending += box
            if (kind == b"moov" and not self._init_done) or kind == b"mdat":
                self._init_done = True
                self._flush_pending()

    def _flush_pending(self) -> None:
        if self._pending:
            self._emit(bytes(self._pending))
            self._pending = bytearray()

    def finish(self) -> None:
        """Emit what is left (e.g. an ``mfra`` box) as a last fragment."""
        if self._buf:
            raise FormatError(f"muxer left {len(self._buf)} bytes that are not a whole box")
        self._flush_pending()


class SegmentMuxer:
    """One fMP4 file: streams added from templates, packets in microseconds."""

    def __init__(
        self,
        emit: Callable[[bytes], None],
        streams: dict[Any, dict[str, Any]],
        *,
        audio_only: bool,
        metadata: dict[str, str],
        origin_us: int,
    ) -> None:
        self.splitter = FragmentSplitter(emit)
        options = {"movflags": AUDIO_MOVFLAGS if audio_only else VIDEO_MOVFLAGS}
        if audio_only:
            options["frag_duration"] = str(AUDIO_FRAG_DURATION_US)
        self.container = av.open(self.splitter, "w", format="mp4", options=options)
        for key, value in metadata.items():
            self.container.metadata[key] = value
        self._streams = {}
        for key, spec in streams.items():
            template = spec.get("template")
            if template is not None:
                out = self.container.add_stream_from_template(template)
            else:  # raw H.264 from a hardware encoder: extradata from the bitstream
                out = self.container.add_mux_stream(
                    spec["codec"], rate=spec.get("rate"),
                    width=spec.get("width", 0), height=spec.get("height", 0),
                )
            out.time_base = MICROSECONDS
            self._streams[key] = out
        if all(spec.get("template") is not None for spec in streams.values()):
            # Write the header now so the stream time bases are final before
            # the first packet is rebased to them.
            self.container.start_encoding()
        self.origin_us = origin_us
        self.first_us: int | None = None
        self.last_video_us: int | None = None
        self.video_frames = 0
        self.audio_packets = 0

    def has(self, key: Any) -> bool:
        return key in self._streams

    def mux(self, key: Any, frame: bytes, keyframe: bool, timestamp_us: int,
            packet: av.Packet | None) -> None:
        packet = av.Packet(packet) if packet is not None else av.Packet(frame)
        packet.stream = self._streams[key]
        packet.time_base = MICROSECONDS
        packet.pts = packet.dts = timestamp_us - self.origin_us
        packet.is_keyframe = keyframe
        if self.first_us is None:
            self.first_us = timestamp_us
        if key == "audio":
            self.audio_packets += 1
        else:
            self.video_frames += 1
            self.last_video_us = timestamp_us
        self.container.mux(packet)

    def close(self) -> None:
        self.container.close()
        self.splitter.finish()
