"""kill -9 a sealing process at random moments; recovery loses at most one
checkpoint interval and everything checkpointed verifies."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from device.sealing.clock import ManualClock
from device.sealing import pki
from device.sealing.seallog import scan_log
from device.sealing.segment_file import scan_segment
from device.sealing.state import SealingState
from device.sealing.unseal import decrypt_fragments
from device.sealing.verifier import Verifier

INTERVAL = 0.1
KILLS = 20
REPO = Path(__file__).resolve().parent.parent


def test_kill_minus_nine_at_random_moments(agency, tmp_path):
    rng = random.Random(20261127)
    state = agency.enrol(tmp_path / "rec", "K000001")
    verifier = Verifier(pki.load_cert(agency.ca_cert_path), pki.load_x25519_key(agency.identity_path))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    truncations = 0
    for kill in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.seal_loop", str(state), str(INTERVAL)],
            stdout=subprocess.PIPE, env=env, cwd=REPO,
        )
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()

        recovered = SealingState.open(state, ManualClock())
        recovered.close()
        report, good = verifier.verify_recording(state)
        statuses = {s.status for s in report.segments}
        assert statuses <= {"verified", "truncated"}, (kill, report)
        assert report.seal_log.status == "verified", report.seal_log
        for seg in good:
            if seg.report.status != "truncated" or seg.scan.header.obj["run"] in _checked:
                continue
            _checked.add(seg.scan.header.obj["run"])
            truncations += 1
            _assert_loss_within_one_interval(verifier, seg)
    assert truncations >= KILLS // 2, "most kills should land inside a segment"


_checked: set[str] = set()


def _assert_loss_within_one_interval(verifier, seg) -> None:
    scan = seg.scan
    everything = list(decrypt_fragments(verifier.identity, scan, len(scan.fragments)))  # intact records too
    if len(everything) == seg.covered:
        return  # nothing after the last checkpoint survived
    last_intact_ns = struct.unpack(">QQ", everything[-1][:16])[1]
    valid = [cp for cp in scan.checkpoints if cp.seen == seg.covered]
    covered_at_ns = int(valid[-1].payload.mono_ns if valid else scan.header_payload.opened_mono_ns)
    lost = (last_intact_ns - covered_at_ns) / 1e9
    assert lost < INTERVAL, f"{scan.path}: {lost:.3f} s after the last checkpoint"


def test_recovery_rewrites_nothing(agency, tmp_path):
    """Every byte written before the cut is still there, unchanged, after recovery."""
    state = agency.enrol(tmp_path / "rec", "K000002")
    clock = ManualClock()
    sealing = SealingState.open(state, clock)
    writer = sealing.open_segment("application/octet-stream", "010203")
    for i in range(3):
        clock.advance(1)
        writer.append(b"x" * 1000)
    writer.abandon()
    sealing.log.close()
    os.close(sealing._lock_fd)
    before = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    SealingState.open(state, clock).close()
    after = {p: p.read_bytes() for p in state.rglob("*") if p.is_file()}
    for path, data in before.items():
        assert after[path][: len(data)] == data, path
    events = [e.event for e, _ in scan_log(state / "seallog").entries]
    assert events.count("unclean-stop") == 1
    assert events[-1] == "shutdown"


def test_recording_continues_after_recovery(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "K000003")
    clock = ManualClock()
    first = SealingState.open(state, clock)
    w = first.open_segment("application/octet-stream", "010203")
    clock.advance(1)
    w.append(b"a" * 100)
    w.abandon()
    first.log.close()
    os.close(first._lock_fd)
    second = SealingState.open(state, clock)
    w2 = second.open_segment("application/octet-stream", "010203")
    clock.advance(1)
    w2.append(b"b" * 100)
    w2.close()
    second.close()
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert [s.status for s in report.segments] == ["truncated", "verified"]
    assert report.segments[1].seq == 1


def test_orphan_file_is_quarantined_not_deleted(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "K000004")
    SealingState.open(state, ManualClock()).close()
    orphan = state / "segments" / "K000004_010203_20261127091500_0000.bcseg"
    orphan.write_bytes(b"BCSEG\x00\x02\nH\x00\x00")  # header torn before logging
    SealingState.open(state, ManualClock()).close()
    assert not orphan.exists()
    (kept,) = (state / "segments" / "incomplete").iterdir()
    assert kept.read_bytes() == b"BCSEG\x00\x02\nH\x00\x00"
    events = [e.event for e, _ in scan_log(state / "seallog").entries]
    assert "orphan-file" in events


def test_second_process_cannot_open_the_same_state(agency, tmp_path):
    from bodycam.errors import StateLockedError
    import pytest

    state = agency.enrol(tmp_path / "rec", "K000005")
    first = SealingState.open(state, ManualClock())
    with pytest.raises(StateLockedError):
        SealingState.open(state, ManualClock())
    first.close()


def test_key_is_gone_after_close(agency, tmp_path):
    """After a segment closes, nothing on the device decrypts it."""
    state = agency.enrol(tmp_path / "rec", "K000006")
    clock = ManualClock()
    sealing = SealingState.open(state, clock)
    writer = sealing.open_segment("application/octet-stream", "010203")
    key_copy = bytes(writer._key)
    clock.advance(1)
    writer.append(b"secret footage" * 100)
    writer.close()
    sealing.close()
    assert bytes(writer._key) == bytes(32)  # wiped in memory
    for path in state.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert key_copy not in data and b"secret footage" not in data, path
    # The device key cannot unwrap it (HPKE to the archive's X25519 key only).
    scan = scan_segment(writer.path.read_bytes(), "x")
    assert scan.header.obj["recipient"] == pki.fingerprint(pki.load_cert(agency.recipient_cert_path))


def test_recorder_starts_when_its_folders_are_not_folders(agency, tmp_path):
    """seallog/ or segments/ replaced by a file or a link: moved aside (never deleted),
    the recorder starts and what it records verifies (against a fresh chain)."""
    import shutil

    for name, make in (("seallog", lambda p: p.write_bytes(b"junk")),
                       ("segments", lambda p: p.symlink_to("/dev/null"))):
        state = agency.enrol(tmp_path / name / "rec", "K000005")
        shutil.rmtree(state / name, ignore_errors=True)
        make(state / name)
        sealing = SealingState.open(state, ManualClock())
        writer = sealing.open_segment("application/octet-stream", "010203")
        writer.append(b"x" * 100)
        writer.close({})
        sealing.close()
        aside = [p for p in state.iterdir() if p.name.startswith(f"{name}.not-a-folder-")]
        assert len(aside) == 1 and (aside[0].is_symlink() or aside[0].read_bytes() == b"junk")
        report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
        assert report.status == "verified", report


def test_recorder_starts_with_a_fifo_lock_and_a_file_where_incomplete_should_be(agency, tmp_path):
    state = agency.enrol(tmp_path / "rec", "K000006")
    SealingState.open(state, ManualClock()).close()
    (state / "lock").unlink()
    os.mkfifo(state / "lock")  # an open() without O_NONBLOCK would wait here for ever
    (state / "segments" / "incomplete").write_bytes(b"not a folder")
    (state / "segments" / "K000006_010203_20261127091500_0099.bcseg").write_bytes(b"orphan")
    sealing = SealingState.open(state, ManualClock())
    sealing.close()
    kept = sorted(p.name for p in (state / "segments").iterdir())
    assert any(n.startswith("incomplete.not-a-folder-") for n in kept)
    assert [p.read_bytes() for p in (state / "segments" / "incomplete").iterdir()] == [b"orphan"]
    assert any(p.name.startswith("lock.not-a-file-") for p in state.iterdir())


def test_power_cut_while_writing_a_manifest_is_not_a_fault(agency, tmp_path):
    """write_new_file's temporary name survives a power cut between create and link."""
    state = agency.enrol(tmp_path / "rec", "K000007")
    clock = ManualClock()
    sealing = SealingState.open(state, clock)
    writer = sealing.open_segment("application/octet-stream", "010203")
    clock.advance(1)
    writer.append(b"x" * 1000)
    writer.abandon()
    (state / "segments" / f".{writer.name}.bcman.tmp-4242").write_bytes(b"BCMAN\x00\x02\nM\x00")
    sealing.log.close()
    os.close(sealing._lock_fd)
    SealingState.open(state, clock).close()
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(state)
    assert report.status == "truncated", report
    assert any("tmp-4242" in n for n in report.notes)


def test_power_cut_leaving_a_zero_filled_block_is_truncation(agency, tmp_path):
    """A file system may leave zeros (not a torn record) after a crash: recovery seals
    what the last checkpoint covered and hashes the rest; the verifier agrees."""
    state = agency.enrol(tmp_path / "rec", "K000008")
    clock = ManualClock()
    sealing = SealingState.open(state, clock)
    writer = sealing.open_segment("application/octet-stream", "010203")
    for i in range(4):
        clock.advance(1)
        writer.append(b"%d" % i * 2000)
    writer.abandon()
    with open(writer.path, "ab") as f:
        f.write(bytes(4096))
    sealing.log.close()
    os.close(sealing._lock_fd)
    verifier = Verifier(pki.load_cert(agency.ca_cert_path))
    before, _ = verifier.verify_recording(state)
    assert before.segments[0].status == "open" and before.segments[0].fragments == 4
    recovered = SealingState.open(state, clock)
    assert recovered.recovered[0]["after_fragment"] == 4
    recovered.close()
    report, _ = verifier.verify_recording(state)
    assert report.segments[0].status == "truncated" and report.segments[0].fragments == 4
    assert report.status == "truncated"
