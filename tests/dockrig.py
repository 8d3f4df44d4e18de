"""A recorder with a dock link and a dock with an archive, all on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from archive.store import LocalArchive
from device.sealing.clock import ManualClock
from device.docklink import DockLink
from device.sealing import pki
from device.sealing.state import SealingState
from dock.registry import Registry
from dock.session import DockIdentity, DockSession

from .conftest import Agency, fragment_bytes


@dataclass
class Rig:
    agency: Agency
    root: Path
    state: Path
    sealing: SealingState
    link: DockLink
    port: int
    identity: DockIdentity
    archive: LocalArchive
    registry: Registry
    clock: ManualClock

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def session(self, url: str | None = None, **kw) -> DockSession:
        return DockSession(identity=self.identity, url=url or self.url, bay=1,
                           expected_device=self.sealing.identity.device_id, archive=self.archive,
                           registry=self.registry, staging=self.root / "dock" / "staging",
                           require_clock_synced=False, timeout=5, **kw)

    def dock(self, url: str | None = None, **kw):
        return asyncio.run(self.session(url, **kw).run())

    def record(self, segments: int = 2, fragments: int = 4, size: int = 3000, officer: str | None = "010203"
               ) -> list[str]:
        names = []
        for _ in range(segments):
            writer = self.sealing.open_segment("application/octet-stream", officer)
            for i in range(fragments):
                self.clock.advance(1.0)
                writer.append(fragment_bytes(writer.seq, i, size))
            writer.close({"events": [{"event": "mark", "kind": "mark"}] if writer.seq % 3 == 0 else []})
            names.append(writer.name)
        return names

    def on_recorder(self) -> set[str]:
        return {p.name[:-6] for p in (self.state / "segments").glob("*.bcseg")}

    def close(self) -> None:
        self.link.stop()
        self.sealing.close()


# A recorder's health snapshot that covers a 10-hour shift (tests change a copy).
HEALTHY = {
    "battery": {"gauge": "max17048", "percent_x100": 9500, "millivolts": 4100, "current_ma": None,
                "charging": False, "minutes_left": 900},
    "battery_error": None, "battery_implausible": None, "battery_minutes_recording": 950,
    "storage_minutes": 3000, "camera_alive": True, "microphone_alive": True, "source_faults": [],
}


def make_rig(agency: Agency, root: Path, device_id: str = "D000001") -> Rig:
    state = agency.enrol(root / "rec", device_id)
    keys = root / "keys"
    dock_key = pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-1", keys / "dock")
    receipt_key = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", keys / "arch")
    clock = ManualClock()
    sealing = SealingState.open(state, clock)
    health = dict(HEALTHY)
    link = DockLink(sealing, health=lambda: health)
    port = link.start("127.0.0.1")
    identity = DockIdentity.load(dock_key, dock_key.with_suffix(".crt"), agency.ca_cert_path)
    archive = LocalArchive.open(root / "archive", agency.ca_cert_path, receipt_key, receipt_key.with_suffix(".crt"))
    registry = Registry(root / "dock" / "registry.sqlite")
    rig = Rig(agency, root, state, sealing, link, port, identity, archive, registry, clock)
    rig.health = health
    return rig
