"""The microphone recovers when the audio server it records through dies and comes back.

A real JACK dummy server, the real sounddevice microphone (PortAudio in its
child process) and the real recorder service; the server is killed and
started again under it.  Deadlines and back-offs run on a ManualClock that
the test advances; the real-time waits below only wait for something to
happen (a child to start, a packet to arrive), they assert nothing by time.
"""

from __future__ import annotations

import os
import subprocess
import time

import av
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from device.capture.speaker import load_announcement
from device.config import AudioConfig, CameraConfig, SpeakerConfig
from device.daemon import SystemdNotifier
from device.liveness import DEADLINE_SECONDS
from device.sealing import pki
from device.sealing.clock import ManualClock
from device.sealing.unseal import unseal_recordings
from device.sealing.verifier import Verifier
from device.service import RecorderService

from .conftest import require_tool
from .media import notice_recorded
from .test_microphone_jack import _release_jack_slot, _start_jackd, _write_wav
from .test_recorder_liveness import source_faults, tick_after_advance, wait_for
from .test_recording import sim_config

BEEP_HZ = 1000


@pytest.fixture
def jack_server(tmp_path, monkeypatch):
    """A JACK server of this checkout's own name that the test may kill and start again.

    ``start()``/``kill()``; the recorder's PortAudio children find it through
    JACK_DEFAULT_SERVER.  Its registry slot is released at the end (see
    test_microphone_jack)."""
    require_tool("jackd")
    require_tool("jack_metro")
    name = f"{os.environ.get('JACK_DEFAULT_SERVER', 'bodycam')}-return"
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)

    class Server:
        process: subprocess.Popen | None = None
        env: dict[str, str] = {}
        starts = 0

        def start(self):
            self.starts += 1
            self.process, self.env = _start_jackd(name, tmp_path / f"jackd-{self.starts}.log")

        def kill(self):
            self.process.kill()  # dies as a crashed server does: no goodbye to its clients
            self.process.wait(timeout=10)

        def ports(self, prefix: str, direction: str) -> list[str]:
            found = subprocess.run(["jack_lsp"], capture_output=True, text=True, env=self.env).stdout.split()
            return [p for p in found if p.startswith(prefix) and f":{direction}" in p]  # "" matches all

        def connect(self, source_prefix: str, source_dir: str = "") -> None:
            """Connect every output of the clients named ``source_prefix*`` to the microphone's inputs."""
            def ready():
                return self.ports(source_prefix, source_dir) and self.ports("PortAudio", "in")
            wait_for(ready, f"{source_prefix} and the microphone's ports")
            for o in self.ports(source_prefix, source_dir):
                for i in self.ports("PortAudio", "in"):
                    subprocess.run(["jack_connect", o, i], env=self.env, check=True)

    server = Server()
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill()
    _release_jack_slot(name, tmp_path / "jackd-release.log")


def beeper(server) -> subprocess.Popen:
    """jack_metro: a 1 kHz beep of 500 ms each second, as a JACK client of its own."""
    return subprocess.Popen(["jack_metro", "-n", "beeper", "-f", str(BEEP_HZ), "-A", "0.5", "-D", "500",
                             "-b", "60"], env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_service(agency, tmp_path, device_id: str, speaker: str | None = None):
    sim = sim_config(segment_seconds=2, preroll_seconds=0)
    update = {
        "camera": CameraConfig(backend="pyav", source="testsrc2", width=320, height=240, fps=30,
                               bitrate=300_000, gop_seconds=0.5),
        "audio": AudioConfig(backend="sounddevice", device="system"),
    }
    if speaker is not None:
        update["speaker"] = SpeakerConfig(backend="sounddevice", device="system", announcement=speaker)
    config = sim.model_copy(update=update)
    state = agency.enrol(tmp_path / "rec", device_id)
    clock = ManualClock()
    service = RecorderService(config, state, config_name="sim+jack", officer="010203", clock=clock,
                              pin_factory=MockFactory(), notifier=SystemdNotifier({}))
    return service, clock, state


def record_with_the_microphone_up(service, clock, route=None):
    """Start recording, route sound in (``route()``), and see the microphone up; returns its tap."""
    service.start_up()
    service.start()
    if route is not None:
        route()
    mic = service.recorder.taps["microphone"]
    wait_for(lambda: mic.packets > 20, "the microphone")
    tick_after_advance(service, clock, 0.1, ["camera", "microphone"])
    assert service.recorder.liveness.states["microphone"].state == "up"
    return mic


def quiet(tap) -> None:
    """Wait until a tap has had no packet for half a second (what was in flight arrived)."""
    last = [tap.packets, time.monotonic()]

    def settled():
        if tap.packets != last[0]:
            last[:] = [tap.packets, time.monotonic()]
        return time.monotonic() - last[1] > 0.5
    wait_for(settled, "the microphone to fall silent")


def die(service, clock, server) -> None:
    """Kill the server; the microphone is down (stalled) by the liveness deadline."""
    mic = service.recorder.taps["microphone"]
    server.kill()
    quiet(mic)
    tick_after_advance(service, clock, DEADLINE_SECONDS + 0.1, ["camera"])
    assert service.recorder.liveness.states["microphone"].state == "down"


def restart(service, clock) -> None:
    """Advance to the microphone's next restart and wait until that restart returned."""
    live = service.recorder.liveness
    st = live.states["microphone"]
    tick_after_advance(service, clock, (st.next_restart_ns - clock.monotonic_ns()) / 1e9, ["camera"])
    assert st.state == "starting"
    wait_for(lambda: live._pending["microphone"].done.is_set(), "the restart to return")
    service.tick()


def recover(service, clock, server, source_prefix: str = "beeper") -> None:
    """With the server back: restart, route the sound in, and see the microphone deliver again."""
    restart(service, clock)  # started: "starting", or "up" if it delivered before that tick
    assert service.recorder.liveness.states["microphone"].state in ("starting", "up")
    server.connect(source_prefix)
    mic = service.recorder.taps["microphone"]
    count = mic.packets
    wait_for(lambda: mic.packets > count + 10, "the restarted microphone to deliver")
    tick_after_advance(service, clock, 0.1, ["camera", "microphone"])
    assert service.recorder.liveness.states["microphone"].state == "up"


def unsealed_audio(agency, state, tmp_path, names: list[str]) -> np.ndarray:
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    out = tmp_path / "out"
    assert unseal_recordings(verifier, state, out).ok
    samples = []
    for name in names:
        with av.open(str(out / f"{name}.mp4")) as container:
            if container.streams.audio:
                samples += [f.to_ndarray()[0] for f in container.decode(audio=0)]
    return np.concatenate(samples) if samples else np.zeros(0, np.float32)


def beeps_in(audio: np.ndarray) -> bool:
    """Some whole second of ``audio`` has its spectral peak at BEEP_HZ and is loud."""
    for start in range(0, audio.size - 48000 + 1, 24000):
        second = audio[start:start + 48000]
        peak_hz = np.argmax(np.abs(np.fft.rfft(second)))  # 1 Hz bins over one second
        if abs(peak_hz - BEEP_HZ) <= 5 and np.abs(second).max() > 0.2:
            return True
    return False


def test_the_microphone_recovers_after_the_jack_server_dies_and_returns_twice(agency, tmp_path, jack_server):
    service, clock, state = make_service(agency, tmp_path, "J000011")
    metro = beeper(jack_server)
    try:
        record_with_the_microphone_up(service, clock, lambda: jack_server.connect("beeper"))
        seg = service.recorder.segmenter
        recovered_in = []
        for cycle in (1, 2):
            metro.kill()
            metro.wait()
            die(service, clock, jack_server)
            faults = source_faults(state)
            assert faults.count(("microphone", "stalled")) == cycle, faults
            # While the server is away a restart cannot open the microphone: it fails, backs off.
            restart(service, clock)
            assert service.recorder.liveness.states["microphone"].state == "down"
            assert ("microphone", "failed") in source_faults(state)
            assert "restart failed" in service.recorder.liveness.states["microphone"].last_fault
            jack_server.start()
            metro = beeper(jack_server)
            recover(service, clock, jack_server)
            assert source_faults(state).count(("microphone", "recovered")) == cycle
            sealed_before = len(seg.sealed)
            wait_for(lambda: len(seg.sealed) >= sealed_before + 2, "two segments after the recovery")
            recovered_in.append(list(seg.sealed[sealed_before:]))
            # 10 s between the cycles, so that the second cycle's faults are not
            # counted as repeats of the first's (docs/format.md §5.1).
            for _ in range(10):
                tick_after_advance(service, clock, 1.0, ["camera", "microphone"])
            assert service.recorder.liveness.states["microphone"].state == "up"
        service.stop()
    finally:
        metro.kill()
        metro.wait()
        service.shutdown("test")
    st = service.recorder.liveness.states["microphone"]
    assert st.restarts == 4 and st.attempts == 0  # two failed and two good restarts; back-off reset
    for cycle, names in enumerate(recovered_in, 1):  # the beeps are recorded again after each return
        assert beeps_in(unsealed_audio(agency, state, tmp_path / f"cycle{cycle}", names)), (cycle, names)


def test_the_notice_is_heard_and_recorded_again_after_the_jack_server_returns(agency, tmp_path, jack_server):
    """The speaker's PortAudio is fresh for each notice: it plays again after the server's death."""
    wav = tmp_path / "notice.wav"
    _write_wav(wav, seconds=3.0)  # long enough that routing after the start still leaves most of it
    service, clock, state = make_service(agency, tmp_path, "J000012", speaker=str(wav))
    try:
        record_with_the_microphone_up(service, clock)
        service.notify()  # before the death: PortAudio for the speaker was initialised once
        wait_for(lambda: not service.speaker.playing, "the first notice")
        assert service.speaker.error is None and service.speaker.played == 1
        die(service, clock, jack_server)
        service.notify()  # while the server is away: not heard, and the seal log says so
        wait_for(lambda: not service.speaker.playing, "the notice that cannot play")
        assert service.speaker.error is not None and service.speaker.played == 1
        service.tick()
        assert ("speaker", "failed") in source_faults(state)
        jack_server.start()
        restart(service, clock)  # the first restart (after 1 s) finds the server back
        seg = service.recorder.segmenter
        sealed_before = len(seg.sealed)
        service.notify()
        jack_server.connect("PortAudio", "out")  # the speaker's child into the microphone's
        wait_for(lambda: not service.speaker.playing, "the second notice")
        assert service.speaker.error is None and service.speaker.played == 2
        tick_after_advance(service, clock, 0.1, ["camera", "microphone"])
        assert service.recorder.liveness.states["microphone"].state == "up"
        assert ("microphone", "recovered") in source_faults(state)
        wait_for(lambda: len(seg.sealed) >= sealed_before + 2, "the notice to be sealed")
        service.stop()
    finally:
        service.shutdown("test")
        service.speaker.close()
    audio = unsealed_audio(agency, state, tmp_path, seg.sealed[sealed_before:])
    ref = load_announcement(wav).samples
    # In order, at its spacing: at least half of its 12 quarter-seconds (routing the speaker's new
    # JACK client to the microphone takes a while on a loaded machine, and misses the start).
    heard, _ = notice_recorded(audio, ref)
    assert heard >= 0.5, f"only {heard:.0%} of the notice is in the recording"


def test_a_microphone_child_that_dies_is_noticed_and_restarted(agency, tmp_path, jack_server):
    """The other way PortAudio's process can go: killed (out of memory, a crash in a driver)."""
    import signal

    service, clock, state = make_service(agency, tmp_path, "J000013")
    try:
        mic = record_with_the_microphone_up(service, clock)
        child = service.recorder.microphone._child
        os.kill(child.proc.pid, signal.SIGKILL)
        wait_for(lambda: not service.recorder.microphone.alive, "the microphone to notice its child died")
        tick_after_advance(service, clock, DEADLINE_SECONDS + 0.1, ["camera"])
        assert ("microphone", "stalled") in source_faults(state)
        restart(service, clock)
        count = mic.packets
        wait_for(lambda: mic.packets > count + 10, "the new child to deliver")
        tick_after_advance(service, clock, 0.1, ["camera", "microphone"])
        assert ("microphone", "recovered") in source_faults(state)
        assert service.recorder.microphone._child.proc.pid != child.proc.pid
        service.stop()
    finally:
        service.shutdown("test")


def test_a_microphone_or_speaker_that_cannot_open_is_a_clear_device_error(tmp_path):
    """No such device: the child says so, the source raises DeviceError naming it, nothing is left running."""
    from bodycam.errors import DeviceError
    from device.capture.audio import SoundDeviceMic
    from device.capture.portaudio_process import encode_message, read_message
    from device.capture.seam import FaultChannel, LivenessTap
    from device.capture.speaker import Announcement, Speaker

    class Sink:
        def _add_stream(self, *args, **kwargs):
            pass

        def outputframe(self, *args, **kwargs):
            pass

    mic = SoundDeviceMic(AudioConfig(backend="sounddevice", device="no-such-microphone"), 0)
    with pytest.raises(DeviceError, match="no-such-microphone") as raised:
        mic.start(LivenessTap(Sink()))
    assert "capture on no-such-microphone" in str(raised.value)
    assert mic._child.proc.returncode is not None and not mic.alive
    faults = FaultChannel()
    speaker = Speaker(SpeakerConfig(backend="sounddevice", device="no-such-speaker"))
    speaker.faults = faults
    try:
        speaker.play(Announcement(np.zeros(4800, np.float32), "", "beep"), wait=True)
        assert isinstance(speaker.error, DeviceError) and "no-such-speaker" in str(speaker.error)
        assert [(f.source, f.kind) for f in faults.drain()] == [("speaker", "failed")]
    finally:
        speaker.close()
    # the pipe's framing: a torn message is the end, never a short block
    import io as _io

    whole = encode_message(b"B", b"x" * 20)
    assert read_message(_io.BytesIO(whole)) == (b"B", b"x" * 20)
    assert read_message(_io.BytesIO(whole[:-1])) is None and read_message(_io.BytesIO(whole[:3])) is None
