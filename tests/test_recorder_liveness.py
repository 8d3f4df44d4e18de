"""Every capture source has a liveness deadline.

The camera is the real PyAV backend reading a Y4M stream over HTTP from a
server the test controls: the first connection stops sending after some
frames (a camera that stops without raising); later connections stream.
Time for the deadlines and back-offs is a ManualClock the test advances.
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from device.capture.seam import FaultChannel, LivenessTap
from device.config import AudioConfig, CameraConfig, load_hw_config
from device.daemon import SystemdNotifier
from device.liveness import BACKOFF_SECONDS, DEADLINE_SECONDS, Liveness
from device.sealing import pki
from device.sealing.clock import ManualClock
from device.sealing.seallog import scan_log
from device.sealing.verifier import Verifier
from device.service import RecorderService

REPO = Path(__file__).resolve().parent.parent
W, H, FPS = 320, 240, 30


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    """Poll a condition (real time, generous bound): not a timed assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Y4MServer:
    """Serves Y4M video; connection 1 sends ``stall_after`` frames then nothing."""

    def __init__(self, stall_after: int = 45) -> None:
        self.connections = 0
        self.sent: list[int] = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.connections += 1
                index = len(outer.sent)
                outer.sent.append(0)
                self.send_response(200)
                self.send_header("Content-Type", "video/x-yuv4mpeg")
                self.end_headers()
                self.wfile.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
                y = np.full((H, W), 120, np.uint8)
                uv = np.full((H // 2, W // 2), 128, np.uint8)
                t0 = time.monotonic()
                try:
                    n = 0
                    while not outer.release.is_set():
                        if index == 0 and n >= stall_after:
                            outer.release.wait()  # the camera stops delivering, without an error
                            return
                        y[:, :] = (n * 7) % 200 + 20
                        self.wfile.write(b"FRAME\n" + y.tobytes() + uv.tobytes() + uv.tobytes())
                        n += 1
                        outer.sent[index] = n
                        delay = t0 + n / FPS - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/camera.y4m"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Y4MServer()
    yield s
    s.close()


def make_service(agency, tmp_path, url: str, audio: str, notifier, device_id: str):
    sim = load_hw_config(REPO / "hw-configs" / "sim.toml")
    config = sim.model_copy(update={
        "camera": CameraConfig(backend="pyav", source=url, width=W, height=H, fps=FPS,
                               bitrate=300_000, gop_seconds=0.5),
        "audio": AudioConfig(backend=audio),
        "recording": sim.recording.model_copy(update={"segment_seconds": 2, "preroll_seconds": 0}),
    })
    state = agency.enrol(tmp_path / "rec", device_id)
    clock = ManualClock()
    service = RecorderService(config, state, config_name="sim.toml", officer="010203", clock=clock,
                              pin_factory=MockFactory(), notifier=notifier)
    return service, clock, state


def tick_after_advance(service, clock, seconds: float, live: list[str]) -> None:
    """Advance the clock, let each source still alive deliver once at the new time, then tick."""
    clock.advance(seconds)
    taps = service.recorder.taps
    counts = {name: taps[name].packets for name in live}
    wait_for(lambda: all(taps[n].packets > counts[n] for n in live), f"{live} to deliver")
    service.tick()


def source_faults(state):
    return [(e.data["source"], e.data["kind"]) for e, _ in scan_log(state / "seallog").entries
            if e.event == "source-fault"]


def test_a_camera_that_stops_delivering_is_down_alarmed_restarted_and_audio_goes_on(
        agency, tmp_path, server):
    service, clock, state = make_service(agency, tmp_path, server.url, "tone", SystemdNotifier({}), "L000001")
    try:
        service.start_up()
        service.start()
        cam = service.recorder.taps["camera"]
        wait_for(lambda: server.sent and server.sent[0] == 45 and cam.packets == 45, "the camera to stall")
        tick_after_advance(service, clock, 0.5, ["microphone"])
        assert service.recorder.liveness.states["camera"].state == "up"
        tick_after_advance(service, clock, DEADLINE_SECONDS, ["microphone"])
        assert service.recorder.liveness.states["camera"].state == "down"
        assert service.recorder.liveness.states["microphone"].state == "up"
        assert ("camera", "stalled") in source_faults(state)
        assert service.indicators.played[-1] == "source-fault" and service.indicators.blink_yellow
        snap = service.health.read().snapshot()
        assert snap["camera_alive"] is False and snap["microphone_alive"] is True
        assert any("camera: stalled" in f for f in snap["source_faults"])
        # Audio alone is recorded in segments of their own length, not one growing segment.
        seg = service.recorder.segmenter
        wait_for(lambda: seg.current is not None and not seg.current.muxer.has("video") and len(seg.sealed) >= 2,
                 "an audio-only segment to be cut")
        # The back-off passes: a restart (on its own thread) reconnects and delivers again.
        tick_after_advance(service, clock, BACKOFF_SECONDS[0], ["microphone"])
        assert ("camera", "restarted") in source_faults(state)
        wait_for(lambda: server.connections >= 2 and cam.packets > 45, "the restarted camera")
        for _ in range(3):
            tick_after_advance(service, clock, 0.1, ["microphone", "camera"])
        assert service.recorder.liveness.states["camera"].state == "up"
        assert ("camera", "recovered") in source_faults(state)
        assert not service.indicators.blink_yellow
        wait_for(lambda: seg.current is not None and seg.current.muxer.has("video"), "a video segment again")
        wait_for(lambda: seg.current.muxer.video_frames > 10, "video in it")
        service.stop()
    finally:
        server.release.set()
        service.shutdown("test")
    report, good = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert report.status == "verified", report
    media = [(g.report.media, g.manifest.signed.obj["meta"].get("video_missing")) for g in good]
    assert ("audio/mp4", "camera down") in media
    assert media[0][0] == "video/mp4" and media[-1][0] == "video/mp4", media
    restarts = [g.manifest.signed.obj["meta"]["health"] for g in good][-1]
    assert restarts["sources"]["camera"]["restarts"] >= 1


def test_the_watchdog_is_fed_only_while_something_can_record(agency, tmp_path, server):
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "no-listener.sock"), "WATCHDOG_USEC": "1000000"})
    sent: list[str] = []
    notifier.send = lambda message: sent.append(message) or True  # no systemd here: note what would go
    service, clock, state = make_service(agency, tmp_path, server.url, "none", notifier, "L000002")
    try:
        service.start_up()
        service.start()
        cam = service.recorder.taps["camera"]
        wait_for(lambda: server.sent and server.sent[0] == 45 and cam.packets == 45, "the camera to stall")
        service.tick()
        assert sent.count("WATCHDOG=1") == 1
        clock.advance(DEADLINE_SECONDS + 0.1)
        service.tick()  # the only source is down: nothing can record
        assert service.recorder.liveness.states["camera"].state == "down"
        for _ in range(5):
            clock.advance(0.2)
            service.tick()
        assert sent.count("WATCHDOG=1") == 1, sent  # systemd will restart the service
        assert ("camera", "stalled") in source_faults(state)
    finally:
        server.release.set()
        service.shutdown("test")


class Silent:
    """A source that starts and never delivers, or raises on start."""

    def __init__(self, fail: bool = False):
        self.error = None
        self.fail = fail
        self.stopped = 0

    def start(self, output):
        if self.fail:
            raise OSError("no such device")

    def stop(self):
        self.stopped += 1


def test_back_off_grows_and_resets_on_recovery():
    clock = ManualClock()
    faults = FaultChannel(clock.monotonic_ns)
    tap = LivenessTap(type("Sink", (), {"outputframe": lambda *a, **k: None})(), clock.monotonic_ns)
    made = []

    def restart():
        source = Silent(fail=len(made) < 3)
        made.append(source)
        source.start(tap)
        return source

    live = Liveness(clock.monotonic_ns, faults, deadline=2, start_deadline=5, backoff=(1, 2, 4))
    live.watch("microphone", Silent(), tap, restart)
    clock.advance(5.1)
    live.check()
    assert live.states["microphone"].state == "down"
    waits = []
    for _ in range(3):  # three failed restarts: 1 s, 2 s, 4 s, then 4 s again
        st = live.states["microphone"]
        wait = (st.next_restart_ns - clock.monotonic_ns()) / 1e9
        waits.append(wait)
        clock.advance(wait)
        live.check()
        wait_for(lambda: live._pending["microphone"].done.is_set(), "the restart thread")
        live.check()
        assert live.states["microphone"].state == "down"
    assert waits == [1, 2, 4]
    st = live.states["microphone"]
    clock.advance((st.next_restart_ns - clock.monotonic_ns()) / 1e9)
    live.check()
    wait_for(lambda: live._pending["microphone"].done.is_set(), "the restart thread")
    tap.outputframe(None, True, 0, None, True)  # it delivers
    live.check()
    assert live.states["microphone"].state == "up" and live.states["microphone"].attempts == 0
    kinds = [f.kind for f in faults.drain()]
    assert kinds[0] == "stalled" and kinds.count("restarted") == 4 and kinds[-1] == "recovered"
    assert kinds.count("failed") == 3
