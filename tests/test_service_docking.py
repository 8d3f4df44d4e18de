"""The running recorder serves the dock link: footage offloaded while it
runs, and the dock's officer assignment stamped on every later segment,
even after a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from archive.store import LocalArchive
from device.config import DockLinkConfig, load_hw_config
from device.daemon import SystemdNotifier
from device.sealing import pki
from device.sealing.segment_file import read_manifest
from device.service import RecorderService
from dock.registry import Registry
from dock.session import DockIdentity, DockSession

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_assignment_reaches_the_recorder_and_every_later_segment(agency, tmp_path):
    port = free_port()
    sim = load_hw_config(REPO / "hw-configs" / "sim.toml")
    config = sim.model_copy(update={
        "docklink": DockLinkConfig(enabled=True, listen="127.0.0.1", port=port),
        "recording": sim.recording.model_copy(update={"segment_seconds": 2})})
    state = agency.enrol(tmp_path / "rec", "S000009")
    keys = tmp_path / "keys"
    dock_key = pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-1", keys)
    receipt_key = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", keys)
    registry = Registry(tmp_path / "dock" / "registry.sqlite")
    csv = tmp_path / "officers.csv"
    csv.write_text("officer_id,name,department,certificate_no,valid_until\n"
                   f"020304,Li Na,Market Regulation,LN210456,{dt.date.today() + dt.timedelta(days=365)}\n")
    registry.import_csv(csv)
    registry.checkout(1, "020304")

    def service():
        return RecorderService(config, state, config_name="sim.toml", pin_factory=MockFactory(),
                               notifier=SystemdNotifier({}))

    first = service()
    first.start_up()
    assert first.recorder.officer is None
    first.start()
    time.sleep(1.5)
    first.stop()
    session = DockSession(
        identity=DockIdentity.load(dock_key, dock_key.with_suffix(".crt"), agency.ca_cert_path),
        url=f"https://127.0.0.1:{port}", bay=1, expected_device="S000009",
        archive=LocalArchive.open(tmp_path / "archive", agency.ca_cert_path, receipt_key,
                                  receipt_key.with_suffix(".crt")),
        registry=registry, staging=tmp_path / "dock" / "staging")
    progress = asyncio.run(session.run())
    assert progress.outcome == "done" and progress.segments_deleted >= 1
    assert first.recorder.officer == "020304" and first.recorder.overlay.officer == "020304"
    assert first.recorder.clock.state == "synced"  # the dock's clock sync reached it
    first.start()
    time.sleep(1.0)
    first.stop()
    first.shutdown("test")
    manifests = sorted((state / "segments").glob("*.bcman"))
    assert manifests and all(read_manifest(m).signed.obj["officer"] == "020304" for m in manifests)
    assert all("_020304_" in m.name for m in manifests)

    second = service()  # a restart keeps the assignment
    assert second.recorder.officer == "020304"
    second.recorder.sealing.close()
    second.controls.close()
    second.indicators.close()
