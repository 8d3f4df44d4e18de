"""ffprobe helpers for the capture tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import numpy as np


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def packet_times(path: Path, stream: str) -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time",
         "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return [float(line) for line in out.stdout.split() if line]


def decode_errors(path: Path) -> str:
    """Decode every frame with ffmpeg; returns what it complained about."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True)
    return out.stderr.strip() if out.returncode == 0 else f"exit {out.returncode}: {out.stderr}"


def first_luma(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="yuv420p")[: frame.height]  # raw luma, video range
