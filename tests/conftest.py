"""Shared fixtures: an agency CA, an archive identity, enrolled recorders."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.sealing.clock import ManualClock
from device.sealing import pki
from device.sealing.state import SealingState

OFFICER = "010203"


def require(condition: bool, reason: str) -> None:
    """Skip a test that needs root or a tool it cannot have here; under CI=true, fail.

    CI runs `make test` as root on a fresh machine with every tool installed,
    so a skip there would hide a test that never ran.
    """
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root(what: str) -> None:
    require(os.geteuid() == 0, f"{what} needs root")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is missing: `make test` installs it (run as root)")
    return path or name


@dataclass(frozen=True)
class Agency:
    root: Path
    ca: pki.AgencyCA
    ca_cert_path: Path
    identity_path: Path  # archive recipient private key
    recipient_cert_path: Path

    def enrol(self, state: Path, device_id: str) -> Path:
        pki.enrol_device(self.ca, state, device_id, pki.load_cert(self.recipient_cert_path))
        return state


def make_agency(root: Path) -> Agency:
    ca = pki.create_ca(root / "ca", "Test Agency")
    identity = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "archive-test", root / "archive")
    return Agency(root, ca, root / "ca" / "ca.crt", identity, identity.with_suffix(".crt"))


@pytest.fixture(scope="session")
def agency(tmp_path_factory) -> Agency:
    return make_agency(tmp_path_factory.mktemp("agency"))


def fragment_bytes(segment: int, index: int, size: int = 3000) -> bytes:
    seed = f"seg{segment}-frag{index}|".encode()
    return (seed * (size // len(seed) + 1))[:size]


def record_segments(
    state_dir: Path,
    clock: ManualClock,
    segments: int = 4,
    fragments: int = 5,
    officer: str | None = OFFICER,
) -> list[str]:
    """Seal ``segments`` segments of ``fragments`` one-second fragments."""
    state = SealingState.open(state_dir, clock)
    names = []
    try:
        for s in range(segments):
            writer = state.open_segment("application/octet-stream", officer)
            for i in range(fragments):
                clock.advance(1.0)
                writer.append(fragment_bytes(writer.seq, i))
            writer.close({"test": True})
            names.append(writer.name)
    finally:
        state.close()
    return names


@pytest.fixture(scope="session")
def pristine(agency, tmp_path_factory):
    """Two enrolled devices, each with a sealed 4-segment recording."""
    root = tmp_path_factory.mktemp("pristine")
    a = agency.enrol(root / "A", "A123456")
    b = agency.enrol(root / "B", "B765432")
    names_a = record_segments(a, ManualClock())
    names_b = record_segments(b, ManualClock())
    return {"A": (a, names_a), "B": (b, names_b)}


@pytest.fixture
def recording(pristine, tmp_path):
    """A fresh copy of device A's recording, safe to mutate."""
    src, names = pristine["A"]
    dst = tmp_path / "A"
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    return dst, names


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A throwaway PostgreSQL cluster for one test module (tests/archive_rig.py);
    give each test its own database with ``archive_rig.postgres_index``."""
    from .archive_rig import start_postgres

    pg = start_postgres(tmp_path_factory.mktemp("pg"))
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    """A real SeaweedFS S3 server with Object Lock (``weed mini`` on loopback, tests/archive_rig.py),
    one per test module; under CI a server that cannot start fails the tests instead of skipping."""
    from .archive_rig import Seaweed, unavailable

    server = Seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - reported as the reason
        server.stop()
        unavailable(f"SeaweedFS could not start: {exc}")
    yield server
    server.stop()
