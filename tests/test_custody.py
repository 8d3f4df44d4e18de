"""Chain of custody from the seal log (Art. 25: footage deleted without a
receipt): at each docking the archive reads the recorder's seal log and
indexes who had the recorder (assignment), marks, losses, and every logged
segment that left the recorder without a valid receipt of this archive.  The
misuse timeline shows them per officer and shift.

Each kind of going is made the way it happens: a recorder docked by the real
dock (tests/dockrig.py), footage deleted by hand from its card, a deletion
signed by the recorder with no receipt, a receipt from another archive.  The
index is SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from archive import index as ix
from archive.config import load_archive_config
from archive.console import oversight
from archive.store import LocalArchive
from bodycam.cli import main
from device.sealing import pki
from device.sealing.seallog import scan_log
from dock.session import DockSession

from .archive_rig import archive_config_toml, postgres_index
from .dockrig import make_rig
from .test_dock import VALID_UNTIL, _csv

RECORDED_BY = "010203"  # the officer tests/dockrig.py's record() puts in each manifest


@pytest.fixture(params=["sqlite", "postgresql"])
def rig(request, agency, tmp_path):
    """A recorder and a dock whose archive keeps its index in SQLite or PostgreSQL."""
    rig = make_rig(agency, tmp_path / "rig")
    if request.param == "postgresql":
        index = postgres_index(request.getfixturevalue("postgres"), f"c{abs(hash(str(tmp_path))) % 10**8}")
        keys = tmp_path / "rig" / "keys" / "arch"
        rig.archive.close()
        rig.archive = LocalArchive(load_archive_config(archive_config_toml(
            tmp_path / "pg-archive", agency.ca_cert_path, keys / "archive-receipt.key",
            keys / "archive-receipt.crt", index=index)))
    rig.registry.import_csv(_csv(rig.root, ("020304", VALID_UNTIL), (RECORDED_BY, VALID_UNTIL)))
    yield rig
    rig.archive.close()
    rig.close()


def findings(archive) -> list[dict]:
    with archive.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(ix.custody_findings).order_by(ix.custody_findings.c.segment_seq))]


def log_events(archive, event: str) -> list[dict]:
    with archive.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(ix.log_events).where(ix.log_events.c.event == event).order_by(ix.log_events.c.seq))]


def sealed_digest(rig, name: str) -> str:
    for e, _ in scan_log(rig.state / "seallog").entries:
        if e.event == "segment-sealed" and e.data["segment"] == name:
            return e.data["digest"]
    raise AssertionError(f"{name} was never sealed")


def delete_by_hand(rig, name: str) -> None:
    """What someone with the card in a reader does: the files go, the log says nothing."""
    for suffix in (".bcseg", ".bcman"):
        path = rig.state / "segments" / f"{name}{suffix}"
        path.chmod(0o644)
        path.unlink()


def shift_around(utc: str) -> tuple[dt.date, dt.time, dt.time]:
    """A shift (local date, duty start, duty end) from 1 h before ``utc`` to 3 h after it."""
    local = dt.datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(oversight.SHIFT_ZONE)
    start = (local - dt.timedelta(hours=1)).replace(second=0, microsecond=0)
    return start.date(), start.time(), (start + dt.timedelta(hours=4)).time()


def flags_of(archive, officer: str, utc: str, **kw):
    day, start, end = shift_around(utc)
    return oversight.misuse_timeline(archive, archive.agency(None).id, officer, day, start, end, **kw).flags


def test_honest_dockings_leave_no_finding_and_index_the_hand_out(rig):
    rig.registry.checkout(1, RECORDED_BY)
    rig.record(2)
    assert rig.dock().outcome == "done" and rig.on_recorder() == set()
    # The recorder logs the hand-out after the commit: the archive reads it at the next docking.
    assert log_events(rig.archive, "assignment") == []
    rig.clock.advance(600)
    rig.record(1)
    assert rig.dock().outcome == "done"
    assert findings(rig.archive) == []
    [handout] = log_events(rig.archive, "assignment")
    assert handout["officer"] == RECORDED_BY and json.loads(handout["detail"])["bay"] == 1
    kinds = [f.kind for f in flags_of(rig.archive, RECORDED_BY, handout["utc"])]
    assert "deleted-without-receipt" not in kinds
    # The deletions on the second docking's receipts are read at the third; a fourth adds nothing.
    assert rig.dock().outcome == "done"
    deletions = log_events(rig.archive, "deletion")
    assert len(deletions) == 3 and {json.loads(d["detail"])["reason"] for d in deletions} == {"archive receipt"}
    assert rig.dock().outcome == "done"
    assert log_events(rig.archive, "deletion") == deletions and findings(rig.archive) == []


def test_footage_deleted_by_hand_is_found_at_the_next_docking(rig):
    names = rig.record(3)
    delete_by_hand(rig, names[1])
    progress = rig.dock()
    assert progress.outcome == "done" and progress.segments_archived == 2
    [found] = findings(rig.archive)
    assert (found["segment"], found["how"], found["officer"]) == (names[1], "gone-without-deletion", RECORDED_BY)
    assert found["segment_digest"] == sealed_digest(rig, names[1])
    assert found["source"].startswith("dock:")
    flags = [f for f in flags_of(rig.archive, RECORDED_BY, found["opened_utc"]) if f.kind == "deleted-without-receipt"]
    assert [(f.segment, f.detail["how"], f.detail["archived"]) for f in flags] == [
        (names[1], "gone-without-deletion", False)]
    # The keeper's terminal is told (English; the Chinese text is for pages and --json).
    [alert] = [a for a in rig.archive.alerts() if a["kind"] == "custody"]
    assert (alert["device"], alert["count"]) == ("D000001", 1) and "记录仪 D000001" in alert["message"]
    result = CliRunner().invoke(main, ["archive", "status"], obj={"archive": rig.archive})
    assert ("ALERT    recorder D000001: 1 segment(s) gone from the recorder without an archive receipt"
            in result.output), result.output
    # Seen again at later dockings, it stays one finding with its first sighting.
    rig.clock.advance(60)
    assert rig.dock().outcome == "done"
    assert [(f["segment"], f["found_utc"]) for f in findings(rig.archive)] == [(names[1], found["found_utc"])]


def test_a_deletion_the_recorder_signed_without_a_receipt_is_found(rig):
    names = rig.record(2)
    digest = sealed_digest(rig, names[0])
    opened = [e for e, _ in scan_log(rig.state / "seallog").entries
              if e.event == "segment-opened" and e.data["segment"] == names[0]][0]
    seq = opened.data["segment_seq"]
    delete_by_hand(rig, names[0])  # a firmware that frees space on its own, logging why
    rig.sealing.log_event("deletion", {"segment_seq": seq, "segment": names[0], "digest": digest,
                                       "reason": "card full"})
    assert rig.dock().outcome == "done"
    [found] = findings(rig.archive)
    assert (found["segment"], found["segment_seq"], found["how"]) == (names[0], seq, "deletion-without-receipt")
    [deletion] = log_events(rig.archive, "deletion")
    assert json.loads(deletion["detail"])["reason"] == "card full" and deletion["officer"] == RECORDED_BY


def test_a_receipt_from_another_archive_does_not_count_here(rig, tmp_path):
    """Deleted on a valid receipt of the agency's other archive: this archive,
    which never received the footage, flags it (the dock flags it too)."""
    other_key = pki.issue_keypair(rig.agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-2", tmp_path / "other")
    other = LocalArchive.open(tmp_path / "other-archive", rig.agency.ca_cert_path, other_key,
                              other_key.with_suffix(".crt"))
    try:
        names = rig.record(2)
        session = DockSession(identity=rig.identity, url=rig.url, bay=1, expected_device="D000001",
                              archive=other, registry=rig.registry, staging=rig.root / "dock" / "staging",
                              require_clock_synced=False, timeout=5)
        assert asyncio.run(session.run()).segments_deleted == 2
    finally:
        other.close()
    assert rig.dock().outcome == "done"
    got = findings(rig.archive)
    assert [(f["segment"], f["how"]) for f in got] == [(n, "receipt-not-held") for n in names]
    flags = [f for f in flags_of(rig.archive, RECORDED_BY, got[0]["opened_utc"]) if f.kind == "deleted-without-receipt"]
    assert len(flags) == 2 and not any(f.detail["archived"] for f in flags)


def test_the_hand_out_attributes_what_goes_missing(rig):
    """Footage whose name carries no officer (a recorder with none configured)
    is the officer's the dock handed the recorder to."""
    rig.registry.checkout(1, "020304")
    rig.record(1, officer=None)
    assert rig.dock().outcome == "done"  # archives, then hands the recorder out (assignment entry)
    names = rig.record(2, officer=None)
    delete_by_hand(rig, names[1])
    assert rig.dock().outcome == "done"
    [handout] = log_events(rig.archive, "assignment")
    assert handout["officer"] == "020304"
    [found] = findings(rig.archive)
    assert (found["segment"], found["officer"]) == (names[1], "020304") and "_000000_" in names[1]


def test_late_activation_counts_from_the_hand_out_when_it_came_after_duty_start(rig):
    rig.registry.checkout(1, "020304")
    rig.record(1)  # the previous shift's footage, another officer's
    assert rig.dock().outcome == "done"
    rig.clock.advance(50 * 60)
    rig.record(1, officer="020304")  # first footage 50 minutes after the hand-out
    assert rig.dock().outcome == "done"
    [handout] = log_events(rig.archive, "assignment")
    t = dt.datetime.fromisoformat(handout["utc"].replace("Z", "+00:00"))

    def late(duty_start: dt.datetime):
        local = duty_start.astimezone(oversight.SHIFT_ZONE)
        shift = oversight.misuse_timeline(rig.archive, rig.archive.agency(None).id, "020304", local.date(),
                                          local.time(), (local + dt.timedelta(hours=4)).time())
        return [(f.minutes, f.detail["from"]) for f in shift.flags if f.kind == "late-activation"]

    assert late(t - dt.timedelta(minutes=30)) == [(50.0, "assignment")]  # not 80, from duty start
    assert late(t + dt.timedelta(minutes=10)) == [(40.0, "duty-start")]  # handed out before duty
    assert late(t + dt.timedelta(minutes=40)) == []  # 10 minutes after duty start: in time


def test_a_mark_pressed_while_not_recording_is_flagged(rig):
    names = rig.record(1)
    rig.clock.advance(120)
    # What device/recorder.py mark() logs when the officer flags a moment with recording off.
    rig.sealing.log_event("mark", {"kind": "mark", "recording": False})
    assert rig.dock().outcome == "done"
    [mark] = log_events(rig.archive, "mark")
    assert mark["officer"] == RECORDED_BY
    kinds = [f.kind for f in flags_of(rig.archive, RECORDED_BY, mark["utc"])]
    assert "mark-without-recording" in kinds and "mark-before-notice" in kinds
    assert names and findings(rig.archive) == []


def test_a_device_docked_before_revision_0005_has_its_history_read_at_its_next_docking(rig):
    for _ in range(2):
        rig.registry.checkout(1, RECORDED_BY)
        rig.record(1)
        assert rig.dock().outcome == "done"
    with rig.archive.engine.begin() as conn:  # as an index upgraded from 0004 holds it: nothing read yet
        conn.execute(ix.log_events.delete())
    rig.clock.advance(60)
    assert rig.dock().outcome == "done"
    assert [e["officer"] for e in log_events(rig.archive, "assignment")] == [RECORDED_BY, RECORDED_BY]
    assert len(log_events(rig.archive, "deletion")) == 2


def test_a_segment_back_on_the_card_resolves_its_finding_and_the_row_stays(rig, tmp_path):
    names = rig.record(2)
    keep = tmp_path / "backup"
    keep.mkdir()
    for suffix in (".bcseg", ".bcman"):
        (keep / f"{names[0]}{suffix}").write_bytes((rig.state / "segments" / f"{names[0]}{suffix}").read_bytes())
    delete_by_hand(rig, names[0])
    assert rig.dock().outcome == "done"
    [found] = findings(rig.archive)
    assert found["resolved_utc"] is None
    for suffix in (".bcseg", ".bcman"):  # someone puts the files back
        (rig.state / "segments" / f"{names[0]}{suffix}").write_bytes((keep / f"{names[0]}{suffix}").read_bytes())
    rig.clock.advance(60)
    progress = rig.dock()
    assert progress.outcome == "done" and progress.segments_archived == 1
    [found] = findings(rig.archive)
    assert found["resolved_utc"] is not None and found["resolved_by"].startswith("dock:")
    assert "deleted-without-receipt" not in [f.kind for f in flags_of(rig.archive, RECORDED_BY, found["opened_utc"])]
    assert oversight.recent_custody_findings(rig.archive, rig.archive.agency(None).id) == []
    assert [a for a in rig.archive.alerts() if a["kind"] == "custody"] == []


def test_footage_the_dock_does_not_commit_is_not_gone(rig):
    """A segment that fails the dock's verification stays on the recorder and is
    not sent; the archive judges custody by the recorder's listing, not by the
    files it was sent, so it is no finding (the dock flags it)."""
    names = rig.record(3)
    damaged = rig.state / "segments" / f"{names[1]}.bcseg"
    damaged.chmod(0o644)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    progress = rig.dock()
    assert progress.segments_archived == 2 and any(names[1] in f for f in progress.flagged)
    assert names[1] in rig.on_recorder()
    assert findings(rig.archive) == []


def test_a_docking_with_nothing_new_still_hands_the_archive_its_seal_log(rig):
    names = rig.record(1)
    assert rig.dock().segments_archived == 1
    before = rig.archive.log_head_attestation("D000001")
    assert rig.on_recorder() == set() and log_events(rig.archive, "deletion") == []
    rig.clock.advance(60)
    progress = rig.dock()  # the recorder holds no footage now
    assert progress.outcome == "done" and progress.segments_archived == 0
    assert [json.loads(d["detail"])["segment"] for d in log_events(rig.archive, "deletion")] == names
    assert rig.archive.log_head_attestation("D000001") != before  # a new head, attested
