"""Docking: the full flow, receipts that must be refused, enrolment, rollback, officers."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bodycam.errors import ConfigError, UsageError
from device.sealing import pki
from device.sealing.clock import utc_text
from device.sealing.messages import CTX_RECEIPT, sign_message
from device.sealing.seallog import scan_log
from device.sealing.verifier import Verifier
from dock.registry import Registry
from dock.session import DockIdentity, SessionError

from .conftest import make_agency
from .dockrig import make_rig


@pytest.fixture
def rig(agency, tmp_path):
    rig = make_rig(agency, tmp_path)
    yield rig
    rig.close()


def events(rig) -> list:
    return [e for e, _ in scan_log(rig.state / "seallog").entries]


def test_full_flow_archives_everything_and_frees_the_recorder(rig):
    names = rig.record(3)
    rig.registry.import_csv(_csv(rig.root, ("020304", VALID_UNTIL)))
    rig.registry.checkout(1, "020304")
    progress = rig.dock()
    assert progress.outcome == "done" and progress.segments_archived == 3 and progress.segments_deleted == 3
    assert rig.on_recorder() == set()
    stored = rig.archive.segments(device="D000001")
    assert sorted(s["name"] for s in stored) == sorted(names)
    assert json.loads(stored[0]["marks"]) == ["mark"]  # the index carries marks
    kinds = [e.event for e in events(rig)]
    assert kinds.count("receipt") == 3 and kinds.count("deletion") == 3
    assert "clock-set" in kinds and "assignment" in kinds
    assert rig.link.assignment["officer"] == "020304"
    # receipt before deletion, for each segment
    order = [(e.event, e.data.get("segment")) for e in events(rig) if e.event in ("receipt", "deletion")]
    for name in names:
        assert order.index(("receipt", name)) < order.index(("deletion", name))
    verifier = Verifier(pki.load_cert(rig.agency.ca_cert_path), pki.load_x25519_key(rig.agency.identity_path))
    export = rig.archive.export_recording("D000001", rig.root / "export")
    assert verifier.verify_recording(export)[0].status == "verified"
    recorder_view = verifier.verify_recording(rig.state)[0]
    assert {s.status for s in recorder_view.segments} == {"deleted"} and recorder_view.status == "verified"
    again = rig.dock()  # docking again finds nothing new and duplicates nothing
    assert again.outcome == "done" and len(rig.archive.segments(device="D000001")) == 3


def test_marked_segments_are_pulled_first(rig):
    rig.record(4)
    order = []
    session = rig.session(on_progress=lambda p: None)
    original = session._download

    async def spy(http, path, target, size, **kw):
        if path.endswith(".bcseg"):
            order.append(path)
        return await original(http, path, target, size, **kw)

    session._download = spy
    asyncio.run(session.run())
    assert order[0].endswith("_0000.bcseg") and order[1].endswith("_0003.bcseg")  # seq 0 and 3 are marked


async def _post(rig, message, identity=None):
    identity = identity or rig.identity
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=identity.tls())) as http:
        async with http.post(rig.url + "/v1/receipts", json=message) as resp:
            return resp.status, await resp.text()


def _receipt(rig, name, key=None, cert=None, **changes):
    from device.sealing.segment_file import read_manifest
    from device.docklink import _sha256

    seg = rig.state / "segments" / f"{name}.bcseg"
    payload = {"ctx": CTX_RECEIPT, "archive": "archive-1", "device": "D000001", "segment": name,
               "segment_seq": 0, "segment_digest": read_manifest(seg.with_suffix(".bcman")).digest.hex(),
               "files": {"segment_sha256": _sha256(seg), "manifest_sha256": _sha256(seg.with_suffix(".bcman"))},
               "stored_utc": utc_text(dt.datetime.now(dt.timezone.utc)),
               "retain_until": utc_text(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=183))}
    payload.update(changes)
    key = key or pki.load_ed25519_key(rig.root / "keys/arch/archive-receipt.key")
    cert = cert or pki.load_cert(rig.root / "keys/arch/archive-receipt.crt")
    return sign_message(key, cert, payload)


def test_forged_foreign_and_mismatched_receipts_delete_nothing(rig, tmp_path):
    (name,) = rig.record(1)
    rogue = make_agency(tmp_path / "rogue")
    rogue_key = pki.issue_keypair(rogue.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", tmp_path / "rk")
    dock_key = pki.load_ed25519_key(rig.root / "keys/dock/dock.key")
    dock_cert = pki.load_cert(rig.root / "keys/dock/dock.crt")
    forged = _receipt(rig, name)
    forged["signature"] = base64.b64encode(Ed25519PrivateKey.generate().sign(b"x")).decode()
    cases = {
        "forged signature": (forged, 403),
        "foreign archive": (_receipt(rig, name, pki.load_ed25519_key(rogue_key),
                                     pki.load_cert(rogue_key.with_suffix(".crt"))), 403),
        "signed by a dock": (_receipt(rig, name, dock_key, dock_cert), 403),
        "other device": (_receipt(rig, name, device="B765432"), 403),
        "wrong digest": (_receipt(rig, name, segment_digest="00" * 32), 409),
        "path-like name": (_receipt(rig, name, segment="../../identity/device"), 400),
        "not a message": ({"hello": "world"}, 403),
    }
    for label, (message, status) in cases.items():
        got, text = asyncio.run(_post(rig, message))
        assert got == status, (label, got, text)
        assert name in rig.on_recorder(), label
    assert not any(e.event == "deletion" for e in events(rig))
    assert sum(1 for e in events(rig) if e.event == "alarm") >= 5  # refusals are on record
    good = _receipt(rig, name)
    assert asyncio.run(_post(rig, good))[0] == 200
    assert name not in rig.on_recorder()
    replayed, text = asyncio.run(_post(rig, good))
    assert replayed == 410 and "already deleted" in text


def test_unenrolled_dock_and_unenrolled_recorder(rig, tmp_path):
    rig.record(1)
    rogue = make_agency(tmp_path / "rogue")
    rogue_dock = pki.issue_keypair(rogue.ca, pki.ROLE_DOCK, "dock-x", tmp_path / "rd")
    stranger = DockIdentity.load(rogue_dock, rogue_dock.with_suffix(".crt"), rogue.ca_cert_path)
    session = rig.session()
    session.identity = stranger
    with pytest.raises(SessionError):
        asyncio.run(session.run())
    assert len(rig.on_recorder()) == 1
    # A recorder enrolled by another agency: the dock's TLS refuses it.
    other = make_rig(rogue, tmp_path / "other", "R999999")
    try:
        other.record(1)
        with pytest.raises(SessionError, match="link lost|certificate"):
            rig.dock(url=other.url)
        assert len(other.on_recorder()) == 1
    finally:
        other.close()


def test_rolled_back_or_rewritten_seal_log_is_refused(rig):
    rig.record(1)
    head = rig.sealing.log.entries[-1]
    rig.registry.set_head("D000001", head.seq + 50, head.digest.hex())
    with pytest.raises(SessionError, match="rolled back"):
        rig.dock()
    rig.registry.set_head("D000001", head.seq, "ab" * 32)
    with pytest.raises(SessionError, match="rewritten"):
        rig.dock()
    assert len(rig.on_recorder()) == 1 and rig.archive.segments() == []


def test_seal_log_with_a_gap_archives_only_what_its_good_prefix_places(rig):
    names = rig.record(2)
    log = sorted((rig.state / "seallog").iterdir())[0]
    data = log.read_bytes()
    from .mutate import records

    recs = records(log)
    log.chmod(0o644)
    log.write_bytes(data[:8] + b"".join(bytes(r.raw) for i, r in enumerate(recs) if i != 3))
    progress = rig.dock()  # format v2 §5.2: the entries before the gap still place segment 0
    assert any(f.startswith("seal log:") and "sequence number" in f for f in progress.flagged)
    assert rig.on_recorder() == {names[1]}  # placed by no verified entry: kept, flagged
    assert {s["name"] for s in rig.archive.segments(device=names[0][:7])} == {names[0]}


# Certificates valid a year from today: never a fixed future date.
VALID_UNTIL = (dt.date.today() + dt.timedelta(days=365)).isoformat()


def _csv(root, *officers):
    path = root / "officers.csv"
    lines = ["officer_id,name,department,certificate_no,valid_until"]
    lines += [f"{oid},Officer {oid},Market Regulation,LN{oid},{until}" for oid, until in officers]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_officer_registry_and_checkout(tmp_path):
    reg = Registry(tmp_path / "r.sqlite")
    assert reg.import_csv(_csv(tmp_path, ("010203", VALID_UNTIL), ("999999", "2020-01-01"))) == 2
    assert reg.checkout(2, "010203").department == "Market Regulation"
    assert reg.pending(2).officer == "010203"
    with pytest.raises(UsageError, match="expired on 2020-01-01"):
        reg.checkout(1, "999999", today=dt.date(2026, 11, 27))
    with pytest.raises(UsageError, match="not in the registry"):
        reg.checkout(1, "123456")
    bad = tmp_path / "bad.csv"
    bad.write_text("officer_id,name,department,certificate_no,valid_until\nab,X,Y,Z," + VALID_UNTIL + "\n")
    with pytest.raises(ConfigError, match="bad.csv:2: field officer_id 'ab'"):
        reg.import_csv(bad)
    bad.write_text("id,name\n1,2\n")
    with pytest.raises(ConfigError, match="header must be"):
        reg.import_csv(bad)
