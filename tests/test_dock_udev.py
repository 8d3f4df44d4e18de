"""Recorder detection: real udev events from a running systemd-udevd, seen by
the real pyudev monitor in the dock daemon; match rules on udev properties."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from archive.server import RunningServer
from archive.store import LocalArchive
from dock.config import DockConfig, MatchConfig
from dock.registry import Registry

from .conftest import require_root
from dock.daemon import DockDaemon, bay_for, match_recorder

RULES = Path("/run/udev/rules.d/99-bodycam-test.rules")
# Interface and namespace names unique to this run, so that two runs on one machine never collide.
TAG = f"{os.getpid() % 10000:04d}"
# What udev's usb_id would set for a recorder's CDC-NCM link, given to veth
# interfaces by name so that a test can make one appear.
RULE_TEXT = """\
SUBSYSTEM=="net", KERNEL=="bcrec*", ENV{ID_VENDOR_ID}="1d6b", ENV{ID_MODEL_ID}="0104", \
ENV{ID_SERIAL_SHORT}="A123456", ENV{ID_USB_DRIVER}="cdc_ncm", ENV{ID_PATH}="test-port-3"
SUBSYSTEM=="net", KERNEL=="bcbad*", ENV{ID_VENDOR_ID}="1d6b", ENV{ID_MODEL_ID}="0104", \
ENV{ID_SERIAL_SHORT}="NOT A SERIAL", ENV{ID_USB_DRIVER}="cdc_ncm", ENV{ID_PATH}="test-port-3"
"""

RECORDER = {"SUBSYSTEM": "net", "ID_VENDOR_ID": "1d6b", "ID_MODEL_ID": "0104",
            "ID_SERIAL_SHORT": "A123456", "ID_USB_DRIVER": "cdc_ncm", "ID_PATH": "p1"}


@pytest.mark.parametrize("change,matches", [
    ({}, True),
    ({"ID_VENDOR_ID": "046d"}, False),
    ({"ID_MODEL_ID": "0105"}, False),
    ({"ID_USB_DRIVER": "cdc_ether"}, False),
    ({"ID_SERIAL_SHORT": "A12345"}, False),
    ({"ID_SERIAL_SHORT": "a123456"}, False),
    ({"SUBSYSTEM": "block"}, False),
    ({"ID_VENDOR_ID": "1D6B"}, True),
])
def test_match_rules(change, matches):
    props = {**RECORDER, **change}
    assert (match_recorder(props, MatchConfig()) == "A123456") is matches


@pytest.fixture(scope="module")
def udevd():
    require_root("running systemd-udevd and creating interfaces")
    daemon = "/lib/systemd/systemd-udevd"
    assert Path(daemon).exists(), "systemd-udevd missing: `make test` installs udev"
    RULES.parent.mkdir(parents=True, exist_ok=True)
    RULES.write_text(RULE_TEXT)
    started = None
    if subprocess.run(["udevadm", "control", "--ping"], capture_output=True).returncode != 0:
        started = subprocess.Popen([daemon], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["udevadm", "control", "--ping"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "systemd-udevd did not start"
            time.sleep(0.1)
    subprocess.run(["udevadm", "control", "--reload"], check=True)
    yield
    RULES.unlink()
    if started is not None:
        started.terminate()
        started.wait(10)


class SpyDaemon(DockDaemon):
    """The real daemon loop; docking itself is replaced by a note of what would be docked."""

    def __init__(self, config: DockConfig) -> None:  # no keys or archive needed to watch
        self.config = config
        self.registry = Registry(config.state / "registry.sqlite")  # the loop applies check-out requests
        self._active = {}
        self._requests = {}
        self._wake = {}
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.docked: list[tuple[int, str, str | None]] = []
        self.board = type("Board", (), {"update": lambda self, p: None})()

    def dock(self, bay, url, device, retries=1):
        self.docked.append((bay, url, device))


def test_recorder_link_appearing_is_docked_on_its_bay(udevd, tmp_path):
    config = DockConfig.model_validate({
        "key": "k", "certificate": "c", "ca": "ca", "state": str(tmp_path),
        "archive": {"url": "https://127.0.0.1:8444"},
        "bays": [{"bay": 3, "usb_path": "test-port-3"}]})
    assert bay_for({"ID_PATH": "test-port-3"}, config) == 3
    daemon = SpyDaemon(config)
    watcher = threading.Thread(target=daemon.run, daemon=True)
    watcher.start()
    time.sleep(0.5)  # the monitor is listening
    links = [(f"bcrec{TAG}", f"bcpeer{TAG}a"), (f"bcbad{TAG}", f"bcpeer{TAG}b")]
    try:
        for name, peer in links:
            subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], check=True)
        deadline = time.monotonic() + 10
        while not daemon.docked and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let any wrong match show up too
    finally:
        daemon.stop.set()
        for name, _ in links:
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        watcher.join(5)
    ours = [d for d in daemon.docked if any(f"%25{name}]" in d[1] for name, _ in links)]
    assert len(ours) == 1, daemon.docked  # bcrec0 docked; bcbad0 (bad serial) and the peers not
    bay, url, device = ours[0]
    assert bay == 3 and device == "A123456"
    assert url == f"https://[fe80::ff:fe00:1%25bcrec{TAG}]:8443"  # link-local, scoped to the link


SERVE_IN_NAMESPACE = """
import sys, threading
from pathlib import Path
from device.clock import SystemClock
from device.docklink import DockLink
from device.sealing.state import SealingState
state = SealingState.open(Path(sys.argv[1]), SystemClock())
DockLink(state).start("::", 8443)
print("listening", flush=True)
threading.Event().wait(120)
"""


def _ip(*args, ns=None):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    subprocess.run(cmd, check=True, capture_output=True)


def test_recorder_in_its_own_namespace_is_detected_and_docked(udevd, agency, tmp_path):
    """The recorder's endpoint in a network namespace behind a veth pair, on the
    gadget's link-local address; the real daemon sees the link through udev and docks it."""
    import sys

    from device.sealing import pki as _pki

    from .conftest import record_segments
    from device.sealing.clock import ManualClock

    repo = Path(__file__).resolve().parent.parent
    state = agency.enrol(tmp_path / "rec", "A123456")
    names = record_segments(state, ManualClock(), segments=2)
    keys = tmp_path / "keys"
    dock_key = _pki.issue_keypair(agency.ca, _pki.ROLE_DOCK, "dock-1", keys)
    receipt_key = _pki.issue_keypair(agency.ca, _pki.ROLE_ARCHIVE_RECEIPT, "archive-1", keys)
    archive = LocalArchive.open(tmp_path / "archive", agency.ca_cert_path, receipt_key, receipt_key.with_suffix(".crt"))
    service = RunningServer(archive).start()
    config = DockConfig.model_validate({
        "key": str(dock_key), "certificate": str(dock_key.with_suffix(".crt")), "ca": str(agency.ca_cert_path),
        "state": str(tmp_path / "dock"),
        "archive": {"url": service.url},
        "bays": [{"bay": 3, "usb_path": "test-port-3"}],
        "readiness": {"require_clock_synced": False}})
    daemon = DockDaemon(config)
    watcher = threading.Thread(target=daemon.run, daemon=True)
    ns, host_if, dev_if = f"bcrecns{TAG}", f"bcrec{TAG}n", f"bcdev{TAG}"
    server = None
    try:
        _ip("ip", "netns", "add", ns)
        watcher.start()
        time.sleep(0.5)
        _ip("ip", "link", "add", host_if, "type", "veth", "peer", "name", dev_if)
        _ip("ip", "link", "set", dev_if, "netns", ns)
        _ip("sysctl", "-qw", f"net.ipv6.conf.{dev_if}.accept_dad=0", ns=ns)
        _ip("ip", "link", "set", dev_if, "address", "02:00:00:00:00:01", ns=ns)  # the gadget's dev_addr
        _ip("ip", "link", "set", dev_if, "up", ns=ns)
        _ip("sysctl", "-qw", f"net.ipv6.conf.{host_if}.accept_dad=0")
        _ip("ip", "link", "set", host_if, "up")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVE_IN_NAMESPACE, str(state)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=repo,
                                  env={**os.environ, "PYTHONPATH": str(repo)})
        assert server.stdout.readline().strip() == b"listening", server.stderr.read()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = daemon.board.bays.get("3", {})
            if status.get("outcome") == "done":
                break
            time.sleep(0.2)
        assert daemon.board.bays["3"]["outcome"] == "done", daemon.board.bays
        assert daemon.board.bays["3"]["device"] == "A123456"
        assert sorted(s["name"] for s in archive.segments(device="A123456")) == sorted(names)
        assert not list((state / "segments").glob("*.bcseg"))
    finally:
        daemon.stop.set()
        if server is not None:
            server.kill()
            server.wait()
            server.stdout.close(), server.stderr.close()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        watcher.join(5)
        service.stop()
