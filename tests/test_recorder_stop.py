"""One start-up and one shutdown path: `bodycam record` under SIGTERM on every
shipped hw-config (hardware swapped for the sim's, everything else kept,
the dock link included), a dock link that cannot bind, and the sealed count."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from device.sealing import pki
from device.sealing.seallog import scan_log
from device.sealing.verifier import Verifier

REPO = Path(__file__).resolve().parent.parent
HW_CONFIGS = sorted((REPO / "hw-configs").glob("*.toml"))
UNIT = REPO / "systemd" / "bodycam-recorder.service"


def stop_timeout_seconds() -> float:
    match = re.search(r"^TimeoutStopSec=(\d+)s$", UNIT.read_text(), re.M)
    assert match, "the recorder unit sets TimeoutStopSec"
    return float(match.group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_text(tables: dict) -> str:
    """Enough TOML for a hw-config: top-level scalars, tables of scalars and inline tables."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(v)

    lines = [f"{k} = {value(v)}" for k, v in tables.items() if not isinstance(v, dict)]
    for name, table in tables.items():
        if isinstance(table, dict):
            lines.append(f"\n[{name}]")
            lines += [f"{k} = {value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def runnable_here(shipped: Path, tmp: Path, **overrides) -> Path:
    """The shipped hw-config with its hardware replaced by the sim's stand-ins.

    Recording, dock-link and GPIO layout stay as shipped (the dock link
    listens on loopback: the gadget interface does not exist here).
    """
    cfg = tomllib.loads(shipped.read_text())
    cfg["board"] = "sim"
    cfg["camera"] = {"backend": "pyav", "source": "testsrc2", "width": 640, "height": 360, "fps": 30,
                     "bitrate": 1_000_000, "gop_seconds": 0.5}
    cfg["audio"] = {"backend": "tone", "bitrate": 64_000}
    cfg["speaker"] = {"backend": "none"}
    cfg["gpio"] = {**cfg.get("gpio", {}), "pin_factory": "mock"}
    cfg["power"] = {"gauge": "max17048", "i2c_bus": "sim", "address": 0x36}
    cfg["rtc"] = {"kind": "host"}
    link = {**cfg.get("docklink", {}), "listen": "127.0.0.1", "port": free_port()}
    cfg["docklink"] = link
    for table, values in overrides.items():
        cfg[table] = {**cfg.get(table, {}), **values}
    path = tmp / f"here-{shipped.name}"
    path.write_text(toml_text(cfg))
    return path


def record(config: Path, state: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bodycam", "record", "--config", str(config), "--state", str(state), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})


def sealed_in_log(state: Path) -> list[str]:
    return [e.data["segment"] for e, _ in scan_log(state / "seallog").entries
            if e.event == "segment-sealed"]


@pytest.mark.parametrize("shipped", HW_CONFIGS, ids=lambda p: p.stem)
def test_sigterm_seals_within_the_stop_timeout_on_every_shipped_config(shipped, agency, tmp_path):
    config = runnable_here(shipped, tmp_path, docklink={"enabled": True})
    state = agency.enrol(tmp_path / "rec", "T000001")
    child = record(config, state, "--officer", "010203")
    line = child.stdout.readline()
    assert line.startswith(b"recording"), (line, child.stderr.read() if child.poll() is not None else b"")
    time.sleep(2.5)
    t0 = time.monotonic()
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=stop_timeout_seconds() + 30)
    took = time.monotonic() - t0
    assert child.returncode == 0, err.decode()
    assert took < stop_timeout_seconds(), took
    sealed = sealed_in_log(state)
    assert sealed, "nothing sealed"
    # The true count: every segment the log says was sealed, listed by name.
    assert f"sealed {len(sealed)} segment(s)".encode() in out, out
    for name in sealed:
        assert name.encode() in out
    events = [e.event for e, _ in scan_log(state / "seallog").entries]
    assert events[-2:] == ["record-stop", "shutdown"] and "unclean-stop" not in events
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert report.status == "verified"


def test_a_dock_link_that_cannot_bind_is_a_clear_error_at_start(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "T000002")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = runnable_here(REPO / "hw-configs" / "sim.toml", tmp_path,
                               docklink={"enabled": True, "port": port})
        t0 = time.monotonic()
        child = record(config, state)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 2, (out, err)
    assert time.monotonic() - t0 < 8
    message = err.decode()
    assert f"[127.0.0.1]:{port}" in message and "docklink" in message and "Traceback" not in message
    # Nothing was recorded, and the state was closed in order.
    events = [e.event for e, _ in scan_log(state / "seallog").entries]
    assert events[-1] == "shutdown" and "record-start" not in events


def test_an_address_not_on_this_machine_is_a_clear_error_at_start(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "T000003")
    config = runnable_here(REPO / "hw-configs" / "sim.toml", tmp_path,
                           docklink={"enabled": True, "listen": "192.0.2.1"})  # TEST-NET-1
    child = record(config, state)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 2 and "[192.0.2.1]" in err.decode() and "Traceback" not in err.decode()


def test_service_start_up_and_shutdown_are_each_one_path(agency, tmp_path):
    """run() after start_up() does not start a second dock link; shutdown twice is one shutdown."""
    import threading

    from gpiozero.pins.mock import MockFactory

    from device.config import DockLinkConfig, load_hw_config
    from device.daemon import SystemdNotifier
    from device.service import RecorderService

    sim = load_hw_config(REPO / "hw-configs" / "sim.toml")
    config = sim.model_copy(update={"docklink": DockLinkConfig(enabled=True, listen="127.0.0.1",
                                                               port=free_port())})
    state = agency.enrol(tmp_path / "rec", "T000004")
    service = RecorderService(config, state, config_name="sim.toml", pin_factory=MockFactory(),
                              notifier=SystemdNotifier({}))
    service.start_up()
    link = service.docklink
    service.start()
    assert service.run(threading.Event(), seconds=1.0) == "time"
    assert service.docklink is link
    assert service.shutdown("test") and service.shutdown("again")
    events = [e.event for e, _ in scan_log(state / "seallog").entries]
    assert events.count("shutdown") == 1 and events[-1] == "shutdown"
    assert service.recorder.sealed == sealed_in_log(state)


def test_sigterm_seals_within_the_stop_timeout_with_a_stalled_camera(agency, tmp_path):
    """The camera stops delivering (blocked in its source, no error): the stop is bounded."""
    from .test_recorder_liveness import Y4MServer

    server = Y4MServer(stall_after=30)
    try:
        config = runnable_here(REPO / "hw-configs" / "sim.toml", tmp_path, docklink={"enabled": False},
                               camera={"backend": "pyav", "source": server.url, "width": 320, "height": 240,
                                       "fps": 30, "bitrate": 300_000, "gop_seconds": 0.5})
        state = agency.enrol(tmp_path / "rec", "T000005")
        child = record(config, state, "--officer", "010203")
        assert child.stdout.readline().startswith(b"recording")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                e.event == "source-fault" and e.data["kind"] == "stalled"
                for e, _ in scan_log(state / "seallog").entries):
            time.sleep(0.1)
        t0 = time.monotonic()
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=stop_timeout_seconds() + 30)
        took = time.monotonic() - t0
    finally:
        server.close()
    print(f"shutdown with a stalled camera: {took:.2f} s")
    assert child.returncode == 0 and took < stop_timeout_seconds(), (took, err.decode()[-1000:])
    sealed = sealed_in_log(state)
    assert sealed and f"sealed {len(sealed)} segment(s)".encode() in out
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert report.status == "verified"


def test_the_default_gadget_address_binds_before_the_usb_link_is_up(agency, tmp_path):
    """No dock cable, no link-local address: the recorder still starts and records,
    and serves the link once the address appears (the shipped default listen)."""
    import subprocess as sp

    from device.config import DockLinkConfig
    from .conftest import require_root

    require_root("creating a network interface")
    name, peer = f"bcgad{os.getpid() % 10000}", f"bcgap{os.getpid() % 10000}"
    sp.run(["ip", "link", "del", name], capture_output=True)
    sp.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], check=True)
    try:
        config = runnable_here(REPO / "hw-configs" / "sim.toml", tmp_path,
                               docklink={"enabled": True, "listen": f"fe80::ff:fe00:1%{name}"})
        state = agency.enrol(tmp_path / "rec", "T000006")
        child = record(config, state, "--seconds", "2")
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()
        assert b"recording" in out and sealed_in_log(state)
    finally:
        sp.run(["ip", "link", "del", name], capture_output=True)
    assert DockLinkConfig().listen == "fe80::ff:fe00:1%usb0"  # what the shipped Pi configs use
