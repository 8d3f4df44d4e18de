"""The dock's pipeline: segments are verified, committed and receipted while later
ones are still being pulled; a cut anywhere in it loses nothing; resumed copies
that fail are pulled again, and only they."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import types

import pytest

import dock.session
from archive.server import RunningServer
from device.sealing.report import SegmentStatus
from device.sealing.verifier import Verifier
from dock.archive_client import ArchiveClient, ArchiveUnavailable
from dock.session import SessionError

from .cutproxy import CutProxy
from .dockrig import make_rig


@pytest.fixture
def rig(agency, tmp_path):
    rig = make_rig(agency, tmp_path)
    yield rig
    rig.close()


@pytest.fixture
def small_batches(monkeypatch):
    """One segment per commit: the footage here is far below a production batch."""
    monkeypatch.setattr(dock.session, "MAX_BATCHES", 1000)
    monkeypatch.setattr(dock.session, "BATCH_MIN_BYTES", 1)


def _spy_downloads(session) -> list[tuple[str, bool]]:
    """Every file the session fetches, in order, with whether it was fetched from scratch."""
    calls: list[tuple[str, bool]] = []
    original = session._download

    async def spy(http, path, target, size, **kw):
        calls.append((path.rsplit("/", 1)[-1], kw.get("fresh", False)))
        return await original(http, path, target, size, **kw)

    session._download = spy
    return calls


def _on_hand_receipt(session, action) -> None:
    """Call ``action(segment name)`` after each receipt the recorder accepts."""
    original = session._post

    async def spy(http, path, message):
        status, text = await original(http, path, message)
        if path == "/v1/receipts" and status == 200:
            await action(text)
        return status, text

    session._post = spy


def _invariants(rig, recorded: set[str]) -> None:
    archived = {s["name"] for s in rig.archive.segments(device="D000001")}
    here = rig.on_recorder()
    assert recorded <= archived | here, "footage lost"
    deleted = {e.data["segment"] for e in rig.sealing.log.entries if e.event == "deletion"}
    receipted = {e.data["segment"] for e in rig.sealing.log.entries if e.event == "receipt"}
    assert deleted <= receipted and deleted <= archived, "deleted without a receipt"
    # What the recorder still holds is untouched: every segment on it verifies.
    report, _ = Verifier(rig.identity.ca_cert).verify_recording(rig.state)
    for seg in report.segments:
        if seg.name in here:
            assert seg.status is SegmentStatus.VERIFIED, (seg.name, seg.status, seg.reasons)


def test_the_first_segments_are_receipted_before_the_last_is_pulled(rig, small_batches):
    names = rig.record(4, fragments=4, size=20_000)
    session = rig.session()
    handed = asyncio.Event()
    freed_before_last_pull: list[set[str]] = []

    async def receipt_handed(text):
        handed.set()

    _on_hand_receipt(session, receipt_handed)
    original = session._download

    async def gated(http, path, target, size, **kw):
        if path.endswith(f"{names[2]}.bcseg"):  # the last in pull order (0 and 3 are marked)
            # With one phase after another this waits for ever: fail after 30 s instead.
            await asyncio.wait_for(handed.wait(), 30)
            freed_before_last_pull.append(set(names) - rig.on_recorder())
        return await original(http, path, target, size, **kw)

    session._download = gated
    progress = asyncio.run(session.run())
    assert progress.outcome == "done" and progress.segments_archived == 4 and progress.segments_deleted == 4
    assert freed_before_last_pull and freed_before_last_pull[0], "nothing was freed before the last pull"
    assert names[2] not in freed_before_last_pull[0]
    assert rig.on_recorder() == set()


@pytest.mark.parametrize("where", ["after the first receipt", "while the archive commits"])
def test_a_cut_in_the_overlapped_phase_loses_nothing_and_the_next_docking_completes(rig, small_batches, where):
    recorded = set(rig.record(4, fragments=4, size=20_000))
    sizes = {n: sum((rig.state / "segments" / f"{n}{suffix}").stat().st_size for suffix in (".bcseg", ".bcman"))
             for n in recorded}
    proxy = CutProxy(rig.port)
    url = f"https://127.0.0.1:{proxy.port}"
    try:
        first = rig.session(url)
        committed: list[list[str]] = []
        if where == "after the first receipt":
            async def cut(text):
                proxy.arm(0)
            _on_hand_receipt(first, cut)
        else:
            commit = rig.archive.commit

            def commit_then_cut(recording, names, **kw):
                receipts = commit(recording, names, **kw)
                committed.append(names)
                proxy.arm(0)  # the archive has it; the recorder never hears
                return receipts
            rig.archive.commit = commit_then_cut
        with pytest.raises(SessionError):
            asyncio.run(first.run())
        assert first.progress.outcome.startswith(("link lost", "failed"))
        _invariants(rig, recorded)
        assert rig.on_recorder(), "the cut came too late to test anything"
        if committed:
            assert set(committed[0]) <= rig.on_recorder(), "deleted without a handed receipt"
            rig.archive.commit = commit

        proxy.arm(None)
        second = rig.session(url)
        calls = _spy_downloads(second)
        assert asyncio.run(second.run()).outcome == "done"
        _invariants(rig, recorded)
        assert rig.on_recorder() == set()
        assert {s["name"] for s in rig.archive.segments(device="D000001")} == recorded
        assert not any(fresh for _, fresh in calls)
        if committed:  # committed but not receipted: its staged copy is used, not pulled again
            assert second.progress.bytes_resumed >= sum(sizes[n] for n in committed[0])
    finally:
        proxy.close()


@pytest.mark.parametrize("junk", ["a partial copy", "a whole-size copy"])
def test_only_the_resumed_copy_that_fails_is_pulled_again(rig, junk):
    names = rig.record(3, fragments=4, size=20_000)
    bad = names[1]
    source = rig.state / "segments" / f"{bad}.bcseg"
    staged = rig.root / "dock" / "staging" / "D000001" / "segments"
    staged.mkdir(parents=True)
    length = source.stat().st_size // 2 if junk == "a partial copy" else source.stat().st_size
    (staged / source.name).write_bytes(b"\x5a" * length)  # not the recorder's bytes
    session = rig.session()
    calls = _spy_downloads(session)
    progress = asyncio.run(session.run())
    assert progress.outcome == "done" and progress.segments_archived == 3 and not progress.flagged
    assert rig.on_recorder() == set()
    # Its two files are pulled again from scratch (which one is bad is not known), once.
    for file in (source.name, f"{bad}.bcman"):
        assert calls.count((file, False)) == 1 and calls.count((file, True)) == 1
    others = [c for c in calls if not c[0].startswith(bad)]
    assert not any(fresh for _, fresh in others) and len(others) == len({c[0] for c in others})


def test_a_later_docking_pulls_each_file_once(rig):
    """The seal log stays staged between dockings and is resumed; the segments it names
    as deleted (at the docking before) are no failed resume: nothing is pulled twice."""
    rig.record(2, fragments=4, size=20_000)
    assert rig.dock().outcome == "done"
    rig.record(3, fragments=4, size=40_000)
    footage = sum(p.stat().st_size for p in (rig.state / "segments").iterdir())
    session = rig.session()
    calls = _spy_downloads(session)
    progress = asyncio.run(session.run())
    assert progress.outcome == "done" and progress.segments_archived == 3 and not progress.flagged
    assert progress.bytes_resumed > 0  # the staged seal log
    assert not any(fresh for _, fresh in calls) and len(calls) == len(set(calls))
    log_bytes = sum(p.stat().st_size for p in (rig.state / "seallog").iterdir())  # after the docking: more
    assert footage <= progress.bytes_pulled < footage + log_bytes


def test_a_cut_after_earlier_dockings_resumes_in_place(rig):
    """Every docking after the first meets deleted segments in the seal log; they are
    not a failed resume, so a cut docking is resumed, not pulled again from scratch."""
    rig.record(2, fragments=4, size=20_000)
    assert rig.dock().outcome == "done"
    recorded = set(rig.record(3, fragments=8, size=40_000))
    total = sum(p.stat().st_size for p in (rig.state / "segments").iterdir())
    proxy = CutProxy(rig.port)
    url = f"https://127.0.0.1:{proxy.port}"
    try:
        proxy.arm(total // 2)
        with pytest.raises(SessionError):
            asyncio.run(rig.session(url).run())
        proxy.arm(None)
        second = rig.session(url)
        calls = _spy_downloads(second)
        assert asyncio.run(second.run()).outcome == "done"
        assert not any(fresh for _, fresh in calls), calls
        assert second.progress.bytes_resumed > 0
        assert second.progress.bytes_pulled < total
        _invariants(rig, recorded)
        assert rig.on_recorder() == set()
    finally:
        proxy.close()


def test_a_staged_copy_that_shares_its_inode_is_never_written_to(rig, tmp_path):
    (name,) = rig.record(1, fragments=4, size=20_000)
    source = rig.state / "segments" / f"{name}.bcseg"
    staged = rig.root / "dock" / "staging" / "D000001" / "segments"
    staged.mkdir(parents=True)
    outside = tmp_path / "another-name"  # e.g. an archive blob linked by an earlier commit
    half = source.read_bytes()[: source.stat().st_size // 2]
    outside.write_bytes(half)
    os.link(outside, staged / source.name)
    assert rig.dock().outcome == "done"
    assert outside.read_bytes() == half
    assert rig.on_recorder() == set()


def test_the_archive_client_trusts_no_claimed_digest(rig, tmp_path):
    names = rig.record(2, fragments=4, size=20_000)
    service = RunningServer(rig.archive).start()
    try:
        client = ArchiveClient(service.url, key=rig.root / "keys/dock/dock.key",
                               certificate=rig.root / "keys/dock/dock.crt", ca=rig.agency.ca_cert_path)
        recording = rig.state
        seg = f"segments/{names[0]}.bcseg"
        true = {seg: hashlib.sha256((recording / seg).read_bytes()).hexdigest()}
        false = {seg: hashlib.sha256(b"other bytes").hexdigest()}
        with pytest.raises(ArchiveUnavailable):
            client.commit(recording, names, source="dock:dock-1:bay1", digests=false)
        assert rig.archive.segments(device="D000001") == []
        receipts = client.commit(recording, names, source="dock:dock-1:bay1", digests=true)
        assert len(receipts) == 2
        assert {s["name"] for s in rig.archive.segments(device="D000001")} == set(names)
    finally:
        service.stop()


def test_without_hard_links_the_views_are_copies(rig, monkeypatch, caplog):
    """A dock state folder on a file system without hard links (FAT, some network
    shares: link(2) fails with EPERM) still docks; the views are copies."""
    names = set(rig.record(2, fragments=4, size=20_000))

    def no_links(src, dst, *a, **kw):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(dst))

    # The dock's own calls only: the archive here keeps its store on a file system with links.
    monkeypatch.setattr(dock.session, "os", types.SimpleNamespace(**{**vars(os), "link": no_links}))
    progress = rig.dock()
    assert progress.outcome == "done" and progress.segments_archived == 2
    assert {s["name"] for s in rig.archive.segments(device="D000001")} == names
    assert rig.on_recorder() == set()
    assert sum("no hard links" in r.message for r in caplog.records) == 1
