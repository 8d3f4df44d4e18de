"""The recorder starts in every state its card can be found in.

A real full filesystem (a small tmpfs): `bodycam record` still starts, says why
it does not record, raises the storage alarm, serves the dock link, and a
docking frees the card."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from device.sealing.seallog import scan_log

from .conftest import require_root
from .test_recorder_stop import REPO, record, runnable_here


@pytest.fixture
def small_card(tmp_path):
    require_root("mounting a small tmpfs as the recorder's card")
    card = tmp_path / "card"
    card.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(card)], check=True)
    try:
        yield card
    finally:
        subprocess.run(["umount", "-l", str(card)], check=False)


def fill(card: Path) -> None:
    """Write until the filesystem refuses: ENOSPC."""
    fd = os.open(card / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_full_card_still_starts_alarms_and_serves_the_dock_link(agency, small_card, tmp_path):
    from dock.session import DockIdentity, DockSession
    from archive.store import LocalArchive
    from device.sealing import pki
    from dock.registry import Registry
    import asyncio

    state = agency.enrol(small_card / "rec", "F000001")
    config = runnable_here(REPO / "hw-configs" / "sim.toml", tmp_path, docklink={"enabled": True},
                           recording={"segment_seconds": 2})
    first = record(config, state, "--seconds", "3")
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err.decode()
    assert (state / "reserve").exists()  # made while there was room
    fill(small_card)
    child = record(config, state)
    try:
        line = child.stderr.readline().decode()
        while "not recording" not in line and line:
            line = child.stderr.readline().decode()
        assert "not recording" in line and str(state) in line and "card is full" in line, line
        entries = [e for e, _ in scan_log(state / "seallog").entries]
        assert entries[-1].event == "alarm" or any(
            e.event == "alarm" and e.data.get("kind") == "storage-full" for e in entries[-3:])
        # The dock link is served: a docking archives and frees the card.
        import tomllib

        port = tomllib.loads(config.read_text())["docklink"]["port"]
        keys = tmp_path / "keys"
        dock_key = pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-1", keys / "dock")
        receipt_key = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", keys / "arch")
        identity = DockIdentity.load(dock_key, dock_key.with_suffix(".crt"), agency.ca_cert_path)
        archive = LocalArchive.open(tmp_path / "archive", agency.ca_cert_path, receipt_key,
                                    receipt_key.with_suffix(".crt"))
        session = DockSession(identity=identity, url=f"https://127.0.0.1:{port}", bay=1,
                              expected_device="F000001", archive=archive,
                              registry=Registry(tmp_path / "dock" / "registry.sqlite"),
                              staging=tmp_path / "dock" / "staging", require_clock_synced=False, timeout=10)
        progress = asyncio.run(session.run())
        assert progress.outcome == "done" and progress.segments_deleted >= 1
        assert not list((state / "segments").glob("*.bcseg"))
    finally:
        child.terminate()
        child.communicate(timeout=60)
    assert child.returncode == 0


@pytest.mark.parametrize("spoil", ["read-only card", "identity gone"])
def test_state_errors_name_the_path(agency, small_card, tmp_path, spoil):
    """A state the recorder cannot use: exit 1 or 2 naming the path and the reason, never a
    bare strerror or a traceback.  (A card that turned read-only is how worn SD cards fail.)"""
    state = agency.enrol(small_card / "rec", "F000002")
    config = runnable_here(REPO / "hw-configs" / "sim.toml", tmp_path, docklink={"enabled": False})
    if spoil == "read-only card":
        subprocess.run(["mount", "-o", "remount,ro", str(small_card)], check=True)
        where, why = state, "Read-only file system"
    else:
        (state / "identity" / "ca.crt").unlink()
        where, why = state / "identity" / "ca.crt", "not found"
    child = record(config, state, "--seconds", "1")
    out, err = child.communicate(timeout=60)
    message = err.decode()
    assert child.returncode in (1, 2), message
    assert str(where) in message and why in message and "Traceback" not in message, message


def test_a_file_where_a_state_folder_should_be_is_kept_aside_and_recording_goes_on(agency, tmp_path):
    """A file where segments/ should be no longer stops the recorder (format: moved aside,
    never deleted, named in the boot entry); the recorder records and says what it kept aside."""
    state = agency.enrol(tmp_path / "rec", "F000003")
    (state / "segments").rmdir() if (state / "segments").exists() else None
    (state / "segments").write_text("not a folder")
    config = runnable_here(REPO / "hw-configs" / "sim.toml", tmp_path, docklink={"enabled": False})
    child = record(config, state, "--seconds", "1")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err.decode()
    (aside,) = [p for p in state.iterdir() if p.name.startswith("segments.not-a-folder-")]
    assert aside.read_text() == "not a folder"  # kept, unchanged
    assert str(aside) in err.decode() and "Traceback" not in err.decode(), err.decode()
    boots = [e.data for e, _ in scan_log(state / "seallog").entries if e.event == "boot"]
    assert boots[-1]["moved_aside"] == [aside.name]
    assert list((state / "segments").glob("*.bcseg")), out.decode()
