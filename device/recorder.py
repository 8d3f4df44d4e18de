"""The recorder: standby (pre-roll running) → recording → sealing → standby.

start / stop / mark / notify / photo are method calls (the buttons call
them); each writes a seal-log event.  The recorder never overwrites or
deletes footage; the service watches storage and stops it cleanly, with
everything sealed, before the card is full (device/service.py).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from bodycam import __version__
from bodycam.errors import SealingError

from .capture.audio import SoundDeviceMic, ToneSource
from .capture.overlay import Overlay
from .capture.pipeline import PreRoll, SealingQueue, Segmenter
from .capture.seam import FAULT_FAILED, FaultChannel, LivenessTap, stop_within
from .clock import recorder_clock
from .sealing.clock import Clock, utc_text
from .config import HwConfig
from .liveness import Liveness
from .sealing import seallog as ev
from .sealing.sealer import SEGMENTS_DIR
from .sealing.state import SealingState

log = logging.getLogger(__name__)

STANDBY = "standby"
RECORDING = "recording"
SEALING = "sealing"
OFF = "off"

STOP_DRAIN_SECONDS = 0.5
# Each source's stop() gets this long before it is left behind (a dead JACK
# server makes PortAudio's stop hang for > 30 s): with the drain and the
# sealing this keeps SIGTERM well inside the unit's TimeoutStopSec=30s.
SOURCE_STOP_SECONDS = 3.0

MARK = "mark"
REFUSAL = "refusal"  # Art. 13(3), 14: refusal / obstruction mark


# A file of this size is kept in the state directory while there is room, and
# given up when the card is full, so that the recorder can always write its
# boot entry, alarms and the receipts that free the card (a few kB each).
RESERVE_FILE = "reserve"
RESERVE_BYTES = 4 * 1024 * 1024


def open_state(state_dir: Path, open_sealing: Callable[[], SealingState]) -> SealingState:
    """Open the sealing state even on a full card; errors name the state directory.

    On ENOSPC the reserve file is given up and the open tried again; once open,
    the reserve is made again if there is room for it.
    """
    reserve = state_dir / RESERVE_FILE
    try:
        try:
            sealing = open_sealing()
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not reserve.exists():
                raise
            log.error("%s: the card is full; giving up the %d-byte reserve to start", state_dir, RESERVE_BYTES)
            reserve.unlink()
            sealing = open_sealing()
    except SealingError:
        raise
    except OSError as exc:
        where = exc.filename or state_dir
        raise SealingError(f"{where}: cannot open the recorder's state: {exc.strerror or exc}") from None
    if not reserve.exists() and shutil.disk_usage(state_dir).free > 4 * RESERVE_BYTES:
        try:
            fd = os.open(reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("%s: cannot make the reserve: %s", reserve, exc.strerror or exc)
            reserve.unlink(missing_ok=True)
    for kept in kept_aside(state_dir):
        log.warning("%s: kept aside (it stood where the recorder's folder or lock file must be); "
                    "not read or deleted by the recorder: a technician should look at it", kept)
    return sealing


def kept_aside(state_dir: Path) -> list[Path]:
    """What opening the state moved aside, now or at an earlier start: ``NAME.not-a-folder-HEX``
    and ``NAME.not-a-file-HEX`` (device/sealing/state.py), in the state and its segments folder."""
    found: list[Path] = []
    for folder in (state_dir, state_dir / SEGMENTS_DIR):
        try:
            found += sorted(p for p in folder.iterdir() if ".not-a-folder-" in p.name or ".not-a-file-" in p.name)
        except OSError:
            pass
    return found


def make_camera(config: HwConfig, overlay: Overlay, clock: Clock, origin_ns: int, realtime: bool):
    if config.camera.backend == "picamera2":
        from .capture.camera_picamera2 import Picamera2Camera

        return Picamera2Camera(config.camera, overlay, clock, origin_ns)
    from .capture.camera_pyav import PyAVCamera

    return PyAVCamera(config.camera, overlay, clock, origin_ns, realtime=realtime)


def make_microphone(config: HwConfig, origin_ns: int, realtime: bool):
    if config.audio.backend == "sounddevice":
        return SoundDeviceMic(config.audio, origin_ns)
    if config.audio.backend == "tone":
        return ToneSource(config.audio, origin_ns, realtime=realtime)
    return None


class Recorder:
    def __init__(
        self,
        config: HwConfig,
        state_dir: Path,
        *,
        config_name: str = "",
        clock: Clock | None = None,
        officer: str | None = None,
        realtime: bool = True,
    ) -> None:
        self.config = config
        self.config_name = config_name
        self.clock = clock or recorder_clock(config, state_dir)
        rec = config.recording
        self.sealing = open_state(Path(state_dir), lambda: SealingState.open(
            state_dir, self.clock, timezone=rec.timezone,
            checkpoint_interval=rec.checkpoint_interval,
            boot_data={"hw_config": config_name, "board": config.board},
        ))
        self.device_id = self.sealing.identity.device_id
        self.officer = officer
        self.audio_only = rec.mode == "audio"
        self.origin_ns = time.monotonic_ns()
        self.overlay = Overlay(self.device_id, config.camera.width, config.camera.height, rec.timezone)
        self.overlay.officer = officer
        self.preroll = PreRoll(rec.preroll_seconds, keep_audio=rec.preroll_audio or self.audio_only)
        self.realtime = realtime
        self.camera = None if self.audio_only else make_camera(
            config, self.overlay, self.clock, self.origin_ns, realtime)
        self.microphone = make_microphone(config, self.origin_ns, realtime)
        self.sealer = SealingQueue()
        self.faults = FaultChannel(self.clock.monotonic_ns)
        # Every capture source delivers through a tap, so that one that stops
        # without raising is noticed (device/liveness.py).
        self.taps = {name: LivenessTap(self.preroll, self.clock.monotonic_ns)
                     for name, source in (("camera", self.camera), ("microphone", self.microphone))
                     if source is not None}
        self.liveness = Liveness(self.clock.monotonic_ns, self.faults)
        self.segmenter: Segmenter | None = None
        # Every segment sealed since power-on, across recordings (what `record` reports).
        self.sealed: list[str] = []
        self._closed = False
        self.state = OFF
        self.last_start_latency: float | None = None
        self.last_preroll = 0.0
        # Set by the service: a health snapshot for every segment's manifest.
        self.health_provider: Callable[[], dict[str, Any] | None] | None = None

    # -- metadata ---------------------------------------------------------------

    def _segment_meta(self) -> dict[str, Any]:
        cam = self.config.camera
        return {
            "software": __version__,
            "hw_config": self.config_name,
            "board": self.config.board,
            "mode": self.config.recording.mode,
            "video": None if self.audio_only else {
                "codec": "h264", "width": cam.width, "height": cam.height, "fps": cam.fps,
                "bitrate": cam.bitrate, "gop_ms": round(cam.gop_seconds * 1000)},
            "audio": None if self.microphone is None else {
                "codec": "aac", "samplerate": self.config.audio.samplerate,
                "channels": 1, "bitrate": self.config.audio.bitrate,
                # since power-on: overflows the driver reported, gaps filled with
                # silence, and the samples they held (docs: manifest meta)
                "overflows": self.microphone.overflows,
                "gaps": self.microphone.clock.gaps,
                "lost_samples": self.microphone.clock.lost_samples},
            "health": self.health_provider() if self.health_provider else None,
            # what the time rests on and how far it may be off (device/clock.py)
            "clock": self.clock.meta() if hasattr(self.clock, "meta") else {"state": self.clock.state},
        }

    def _container_tags(self) -> dict[str, str]:
        now = self.clock.utc_now()
        return {
            "comment": (f"device={self.device_id} officer={self.officer or '-'} "
                        f"utc={utc_text(now)} clock={self.clock.state} hw={self.config_name}"),
            "artist": self.officer or "",
            "creation_time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "encoder": f"bodycam {__version__}",
        }

    def _now_us(self) -> int:
        return (time.monotonic_ns() - self.origin_ns) // 1000

    # -- states -----------------------------------------------------------------

    def power_on(self) -> None:
        """Start the sources: the pre-roll begins filling (standby)."""
        if self.state != OFF:
            return
        for name, tap in self.taps.items():
            source = getattr(self, name)
            source.faults = self.faults
            self._start_source(name, source, tap)
            self.liveness.watch(name, source, tap, lambda name=name: self._restart_source(name))
        self.state = STANDBY

    def _start_source(self, name: str, source, tap: LivenessTap) -> None:
        """Start one source; a source that cannot start is a fault, never a reason not to record."""
        try:
            source.start(tap)
        except Exception as exc:
            source.error = exc
            self.faults.report(name, FAULT_FAILED, f"cannot start: {type(exc).__name__}: {exc}")

    def _restart_source(self, name: str):
        """Stop the old source (bounded) and start a new one on the same tap; returns it."""
        old = getattr(self, name)
        stop_within(name, old.stop, SOURCE_STOP_SECONDS, self.faults)
        if name == "camera":
            new = make_camera(self.config, self.overlay, self.clock, self.origin_ns, self.realtime)
        else:
            new = make_microphone(self.config, self.origin_ns, self.realtime)
        new.faults = self.faults
        new.start(self.taps[name])
        setattr(self, name, new)
        return new

    def check_sources(self) -> list[str]:
        """Liveness deadlines and restarts (main loop); returns the sources whose state changed."""
        changed = self.liveness.check()
        if self.segmenter is not None:
            down = self.liveness.down()
            self.segmenter.set_down(video="camera" in down, audio="microphone" in down)
        return changed

    def sources_report(self) -> dict[str, dict[str, Any]]:
        """Per source: liveness state, restarts, last fault (and the microphone's overflow counts)."""
        report = {}
        for name, st in self.liveness.states.items():
            entry = st.as_dict()
            if name == "microphone":
                mic = self.microphone
                entry |= {"overflows": mic.overflows, "gaps": mic.clock.gaps,
                          "lost_samples": mic.clock.lost_samples}
            report[name] = entry
        return report

    def start(self, trigger: str = "button") -> float:
        """Start recording; returns seconds of pre-roll handed over."""
        if self.state == RECORDING:
            return 0.0
        if self.state == OFF:
            self.power_on()
        t0 = time.perf_counter()
        self.segmenter = Segmenter(
            self.sealing, self.sealer, self.preroll.streams,
            segment_seconds=self.config.recording.segment_seconds,
            audio_only=self.audio_only,
            officer=lambda: self.officer,
            meta=self._segment_meta,
            container_tags=self._container_tags,
        )
        down = self.liveness.down()
        self.segmenter.set_down(video="camera" in down, audio="microphone" in down)
        self.sealing.log_event(ev.EV_RECORD_START, {"trigger": trigger, "mode": self.config.recording.mode})
        preroll = self.preroll.open(self.segmenter)
        self.state = RECORDING
        self.last_start_latency = time.perf_counter() - t0
        self.last_preroll = preroll
        return preroll

    def stop(self, reason: str = "button") -> None:
        if self.state != RECORDING or self.segmenter is None:
            return
        self.state = SEALING
        # Frames and audio captured before the press are still in flight
        # (encoder, audio blocks); wait for them, briefly, then seal.
        self.segmenter.end_at(self._now_us())
        deadline = time.monotonic() + STOP_DRAIN_SECONDS
        while not self.segmenter.caught_up() and time.monotonic() < deadline and self.sources_error() is None:
            time.sleep(0.01)
        self.preroll.close()
        try:
            self.segmenter.close()
        finally:
            self.sealed.extend(self.segmenter.sealed)
        self.sealing.log_event(ev.EV_RECORD_STOP, {"reason": reason, "segments": len(self.segmenter.sealed)})
        self.state = STANDBY
        self._raise_sealing_error()

    def _event(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        entry = self.sealing.log_event(kind, data)
        record = {"event": kind, "utc": entry.obj["utc"], "seal_log_seq": entry.seq,
                  "media_us": self._now_us(), **data}
        if self.segmenter is not None and self.state == RECORDING:
            self.segmenter.add_event(record)
        return record

    def mark(self, kind: str = MARK) -> dict[str, Any]:
        """Flag the moment (Art. 13); ``refusal`` marks non-cooperation."""
        if kind not in (MARK, REFUSAL):
            raise ValueError(f"mark kind must be {MARK!r} or {REFUSAL!r}")
        return self._event(ev.EV_MARK, {"kind": kind, "recording": self.state == RECORDING})

    def notify(self, announcement: dict[str, Any] | None = None) -> dict[str, Any]:
        """The party was told that recording is on (Art. 22); starts recording first."""
        if self.state != RECORDING:
            self.start(trigger="notify")
        return self._event(ev.EV_NOTIFY, {"announcement": announcement or {"source": "none"}})

    def photo(self) -> str:
        """A stamped still, sealed as its own segment; returns its name."""
        if self.camera is None:
            raise SealingError("no camera in audio-only mode")
        jpeg = self.camera.still_jpeg()
        writer = self.sealing.open_segment("image/jpeg", self.officer, self._segment_meta())
        self.sealer.submit(writer.append, jpeg)
        self.sealer.submit(writer.close, {"kind": "photo", "bytes": len(jpeg)}, wait=True)
        self._event(ev.EV_PHOTO, {"segment": writer.name})
        self._raise_sealing_error()
        return writer.name

    # -- errors -------------------------------------------------------------------

    def _raise_sealing_error(self) -> None:
        if self.sealer.error is not None:
            raise SealingError(f"sealing failed: {self.sealer.error}")

    def sources_error(self) -> BaseException | None:
        """A failure that stops recording: only the sealer's.  A camera or microphone
        that fails is down (liveness), restarted, and recording goes on without it."""
        return self.sealer.error

    def stop_sources(self) -> bool:
        """Stop camera and microphone, each within ``SOURCE_STOP_SECONDS``.

        Returns False when a source hung and was left behind (reported on
        ``faults``): the caller must then not wait for it at exit either.
        """
        clean = True
        for name in self.taps:
            clean &= stop_within(name, getattr(self, name).stop, SOURCE_STOP_SECONDS, self.faults)
        return clean

    def shutdown(self, reason: str = "shutdown") -> bool:
        """Seal what is open, stop the sources, close the state (SIGTERM, low power).

        One path whatever failed before: the open segment is sealed first,
        then the sources are stopped with a deadline each, then the state is
        closed.  Returns False when a source had to be left behind.
        """
        if self._closed:
            return True
        self._closed = True
        clean = True
        try:
            if self.state == RECORDING:
                self.stop(reason=reason)
        finally:
            try:
                if self.state != OFF:
                    clean = self.stop_sources()
            finally:
                self.sealer.stop()
                self.sealing.close()
                self.state = OFF
        return clean
