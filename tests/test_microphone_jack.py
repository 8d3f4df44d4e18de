"""The real sounddevice microphone backend on a JACK dummy server that the
test starts itself; a tone played by a second client is routed into it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import av
import numpy as np
import pytest

from device.config import AudioConfig
from device.recorder import Recorder
from device.sealing import pki
from device.sealing.unseal import unseal_recordings
from device.sealing.verifier import Verifier

from .media import notice_recorded, packet_times
from .test_recording import sim_config

TONE_HZ = 1000


@pytest.fixture(scope="module")
def jack(tmp_path_factory):
    if shutil.which("jackd") is None:
        pytest.fail("jackd is missing: `make test` installs jackd2 (run as root)")
    server, _ = _start_jackd(os.environ.get("JACK_DEFAULT_SERVER", "default"),
                             tmp_path_factory.mktemp("jack") / "jackd.log")
    import sounddevice as sd

    sd._terminate()  # PortAudio lists host APIs at start: look again, now with JACK
    sd._initialize()
    yield sd
    sd._terminate()  # PortAudio's JACK client must go before its server does
    server.terminate()
    server.wait(timeout=10)


def _route_tone(sd):
    phase = [0]

    def play(outdata, frames, time_info, status):
        n = np.arange(phase[0], phase[0] + frames)
        outdata[:, 0] = 0.5 * np.sin(2 * np.pi * TONE_HZ * n / 48000)
        phase[0] += frames

    stream = sd.OutputStream(samplerate=48000, channels=1, device="system", callback=play)
    stream.start()
    ports = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()
    outs = [p for p in ports if p.startswith("PortAudio") and ":out" in p]
    ins = [p for p in ports if p.startswith("PortAudio") and ":in" in p]
    assert outs and ins, ports
    for o in outs:
        for i in ins:
            subprocess.run(["jack_connect", o, i], check=True)
    return stream


def test_sounddevice_microphone_records_what_it_hears(jack, agency, tmp_path):
    config = sim_config()
    config = config.model_copy(update={"audio": AudioConfig(backend="sounddevice", device="system")})
    state = agency.enrol(tmp_path / "rec", "J000001")
    recorder = Recorder(config, state, config_name="sim+jack", officer="010203")
    recorder.power_on()
    tone = _route_tone(jack)
    try:
        recorder.start()
        t0 = time.monotonic()
        time.sleep(3.0)
        recorder.stop()
        wall = time.monotonic() - t0
        sealed = list(recorder.segmenter.sealed)
    finally:
        tone.stop()
        tone.close()
        recorder.shutdown()
    assert recorder.microphone.overflows == 0
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    out = tmp_path / "out"
    assert unseal_recordings(verifier, state, out).ok
    audio_seconds = 0.0
    samples = []
    for name in sealed:
        path = out / f"{name}.mp4"
        audio_seconds += len(packet_times(path, "a")) * 1024 / 48000
        with av.open(str(path)) as container:
            for frame in container.decode(audio=0):
                samples.append(frame.to_ndarray()[0])
    assert abs(audio_seconds - wall) <= 0.15, (audio_seconds, wall)
    signal = np.concatenate(samples)[48000:]  # skip the first second (routing)
    spectrum = np.abs(np.fft.rfft(signal[:48000]))
    peak_hz = np.argmax(spectrum) * 48000 / 48000
    assert abs(peak_hz - TONE_HZ) <= 5, peak_hz
    assert np.abs(signal).max() > 0.2


def _write_wav(path, seconds=1.5, rate=22050):
    import wave

    t = np.arange(int(seconds * rate)) / rate
    chirp = 0.5 * np.sin(2 * np.pi * (300 * t + (3000 - 300) / (2 * seconds) * t ** 2))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((chirp * 32767).astype("<i2").tobytes())


def test_notify_plays_the_announcement_and_the_recording_captures_it(jack, agency, tmp_path):
    """Art. 22: the agency's WAV is played through sounddevice and is in the footage."""
    import threading

    from gpiozero.pins.mock import MockFactory

    from device.capture.speaker import load_announcement
    from device.config import SpeakerConfig
    from device.daemon import SystemdNotifier
    from device.sealing.seallog import scan_log
    from device.service import RecorderService

    wav = tmp_path / "notice.wav"
    _write_wav(wav)
    config = sim_config().model_copy(update={
        "audio": AudioConfig(backend="sounddevice", device="system"),
        "speaker": SpeakerConfig(backend="sounddevice", device="system", announcement=str(wav)),
    })
    state = agency.enrol(tmp_path / "rec", "J000002")
    factory = MockFactory()
    service = RecorderService(config, state, config_name="sim+jack", officer="010203",
                              pin_factory=factory, notifier=SystemdNotifier({}))
    stop = threading.Event()
    runner = threading.Thread(target=lambda: service.run(stop))
    runner.start()

    def route_speaker_to_microphone():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not stop.is_set():
            ports = subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout.split()
            outs = [p for p in ports if p.startswith("PortAudio") and ":out" in p]
            ins = [p for p in ports if p.startswith("PortAudio") and ":in" in p]
            if outs and ins:
                for o in outs:
                    for i in ins:
                        subprocess.run(["jack_connect", o, i])
                return
            time.sleep(0.002)

    router = threading.Thread(target=route_speaker_to_microphone)
    try:
        time.sleep(0.5)
        router.start()
        factory.pin(6).drive_low()  # the notify button: starts recording and speaks
        time.sleep(0.1)
        factory.pin(6).drive_high()
        time.sleep(3.0)
        router.join()
        factory.pin(5).drive_low()  # hold record to stop
        time.sleep(3.3)
        factory.pin(5).drive_high()
    finally:
        stop.set()
        runner.join(timeout=30)
        service.shutdown("test")
    assert service.speaker.error is None and service.speaker.played == 1
    notify = [e for e, _ in scan_log(state / "seallog").entries if e.event == "notify"]
    assert notify and notify[0].data["announcement"]["source"] == "notice.wav"
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    out = tmp_path / "out"
    assert unseal_recordings(verifier, state, out).ok
    recorded = []
    for path in sorted(out.glob("*.mp4")):
        with av.open(str(path)) as container:
            recorded += [f.to_ndarray()[0] for f in container.decode(audio=0)]
    audio = np.concatenate(recorded)
    ref = load_announcement(wav).samples
    # In order, at its spacing: at least 4 of its 6 quarter-seconds (the routing may miss the start).
    heard, _ = notice_recorded(audio, ref)
    assert heard >= 4 / 6, f"only {heard:.0%} of the notice is in the recording"


def _start_jackd(name: str, log_path) -> tuple[subprocess.Popen, dict[str, str]]:
    """A JACK dummy server named ``name``, up (jack_lsp reaches it); fails with its log."""
    env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1", "JACK_DEFAULT_SERVER": name}
    with open(log_path, "wb") as log:
        server = subprocess.Popen(["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "1024"],
                                  stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 10
    while subprocess.run(["jack_lsp"], capture_output=True, env=env).returncode != 0:
        if time.monotonic() > deadline or server.poll() is not None:
            if server.poll() is None:
                server.kill()
            server.wait()
            pytest.fail(f"jackd {name!r} did not start (exit {server.returncode}): "
                        f"{log_path.read_text(errors='replace')[-1500:]}")
        time.sleep(0.1)
    return server, env


def _release_jack_slot(name: str, log_path) -> None:
    """Free a killed server's registry slot and shared memory: a server of the same name
    reclaims them, and a clean stop (SIGTERM) unregisters it."""
    server, _ = _start_jackd(name, log_path)
    server.terminate()
    server.wait(timeout=10)


def test_sigterm_seals_within_the_stop_timeout_when_the_jack_server_died(agency, tmp_path):
    """PortAudio's stop on a dead JACK server hangs: the stop is bounded, the footage sealed."""
    import signal

    from device.sealing.seallog import scan_log

    from .test_recorder_stop import REPO, record, runnable_here, sealed_in_log, stop_timeout_seconds

    if shutil.which("jackd") is None:
        pytest.fail("jackd is missing: `make test` installs jackd2 (run as root)")
    # JACK keeps at most 8 servers in its registry (/dev/shm/jack-shm-registry) and frees
    # a killed server's slot only when a server of the same name starts again.  A name
    # per run (it was per pid) leaked one slot per run until no jackd could start on the
    # machine ("Too many servers already active", exit 255).  So: one name per checkout
    # (JACK_DEFAULT_SERVER is per engineer, see the brief), and the slot released after.
    name = f"{os.environ.get('JACK_DEFAULT_SERVER', 'bodycam')}-dead"
    server, env = _start_jackd(name, tmp_path / "jackd.log")
    try:
        config = runnable_here(REPO / "hw-configs" / "sim.toml", tmp_path,
                               audio={"backend": "sounddevice", "device": "system"},
                               docklink={"enabled": False})
        state = agency.enrol(tmp_path / "rec", "J000003")
        old = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = name
        try:
            child = record(config, state, "--officer", "010203")
        finally:
            os.environ.pop("JACK_DEFAULT_SERVER") if old is None else os.environ.update(JACK_DEFAULT_SERVER=old)
        assert child.stdout.readline().startswith(b"recording")
        time.sleep(2.0)
        server.kill()  # the audio server dies under the recorder
        server.wait(timeout=10)
        # Past the microphone's liveness deadline (2 s) and its first restart (1 s later).
        # Polling the seal log for the event: the recorder is another process.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                e.event == "source-fault" and e.data["source"] == "microphone" and e.data["kind"] == "stalled"
                for e, _ in scan_log(state / "seallog").entries):
            time.sleep(0.2)
        time.sleep(2.0)  # video goes on being recorded without sound
        t0 = time.monotonic()
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=stop_timeout_seconds() + 60)
        took = time.monotonic() - t0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        _release_jack_slot(name, tmp_path / "jackd-release.log")
    print(f"shutdown with a dead JACK server: {took:.2f} s")
    assert took < stop_timeout_seconds(), (took, err.decode()[-2000:])
    sealed = sealed_in_log(state)
    assert sealed and f"sealed {len(sealed)} segment(s)".encode() in out, (out, err.decode()[-2000:])
    entries = [e for e, _ in scan_log(state / "seallog").entries]
    events = [e.event for e in entries]
    assert events[-1] == "shutdown" and "record-stop" in events
    faults = [(e.data["source"], e.data["kind"]) for e in entries if e.event == "source-fault"]
    assert ("microphone", "stalled") in faults and ("microphone", "restarted") in faults, faults
    report, good = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert report.status == "verified"
    # The video went on: the last segment has frames and reports the microphone down.
    last = good[-1].manifest.signed.obj["meta"]
    assert last["video_frames"] > 0 and last["health"]["microphone_alive"] is False
