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


def notice_recorded(audio: np.ndarray, ref: np.ndarray, rate: int = 48000, window_s: float = 0.25,
                    threshold: float = 0.9) -> tuple[float, list[int]]:
    """How much of ``ref`` (a played notice, float samples) the recorded ``audio``
    holds, in order: ``ref`` is cut into ``window_s`` windows; each is looked for
    in ``audio`` by normalised cross-correlation, and counts when it matches
    above ``threshold`` later than the previous matching window and at its
    spacing (within one window).  Returns (fraction of windows found, their
    offsets in ``audio``).  A whole-notice correlation falls with any start-up
    routing delay or scheduler dropout of a loaded machine; windows do not,
    while a notice missing or out of order still scores low."""
    n = int(rate * window_s)
    found: list[int] = []
    total = 0
    last_i = last_at = None
    for i in range(0, len(ref) - n + 1, n):
        total += 1
        w = ref[i:i + n]
        if np.sum(w ** 2) < 1e-6:
            continue  # silence in the notice matches anywhere: not evidence either way
        corr = np.correlate(audio, w, mode="valid")
        energy = np.sqrt(np.convolve(audio ** 2, np.ones(n), mode="valid") * np.sum(w ** 2))
        score = corr / np.maximum(energy, 1e-9)
        at = int(np.argmax(score))
        if score[at] < threshold:
            continue
        if last_at is not None and not (0 < at - last_at and abs((at - last_at) - (i - last_i)) <= n):
            continue
        found.append(at)
        last_i, last_at = i, at
    return (len(found) / total if total else 0.0), found
