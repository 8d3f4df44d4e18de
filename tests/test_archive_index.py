"""Index, labels, search, retention classes, holds, expiry with tombstones, written
records, scrub and alerts, on SQLite and on a throwaway PostgreSQL cluster; and
the in-place migration of a round-1 archive."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography import x509
from click.testing import CliRunner

from bodycam.cli import main
from bodycam.errors import UsageError
from device.sealing.clock import ManualClock

from .archive_rig import archive_config_toml, postgres_index
from .dockrig import make_rig


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, agency, tmp_path):
    """A recorder rig whose archive is configured with the index under test."""
    from archive.config import load_archive_config
    from archive.service import Archive

    index = ""
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres")
        index = postgres_index(pg, f"t{abs(hash(str(tmp_path))) % 10**8}")
    rig = make_rig(agency, tmp_path / "rig")
    keys = tmp_path / "rig" / "keys" / "arch"
    clock = ManualClock(dt.datetime.now(dt.timezone.utc))
    config = load_archive_config(archive_config_toml(tmp_path / "archive", agency.ca_cert_path,
                                                     keys / "archive-receipt.key", keys / "archive-receipt.crt",
                                                     index=index))
    archive = Archive(config, clock=clock)
    yield rig, archive, clock
    rig.close()
    archive.close()


def commit(rig, archive, names, sub_unit="执法一股"):
    return archive.commit_recording(None, rig.state, names, source="dock:dock-1:bay1", sub_unit=sub_unit)


def record_with(rig, events):
    """One segment whose manifest carries these events (marks)."""
    writer = rig.sealing.open_segment("application/octet-stream", "010203")
    for i in range(2):
        rig.clock.advance(1.0)
        writer.append(b"x" * 1000)
    writer.close({"events": events})
    return writer.name


def test_search_by_every_art20_field_and_time(world):
    rig, archive, clock = world
    plain = rig.record(2)
    refusal = record_with(rig, [{"event": "mark", "kind": "refusal"}])
    commit(rig, archive, plain + [refusal])
    archive.label(None, [plain[0]], case_number="顺市监罚〔2026〕17号", party="某某餐饮有限公司",
                  cause="未按规定公示许可证", act_type="inspection", who="keeper-1")
    assert [r["name"] for r in archive.search(party="餐饮")] == [plain[0]]
    assert [r["name"] for r in archive.search(cause="公示")] == [plain[0]]
    assert [r["name"] for r in archive.search(case_number="顺市监罚〔2026〕17号")] == [plain[0]]
    assert [r["name"] for r in archive.search(act_type="inspection")] == [plain[0]]
    assert archive.search(act_type="seizure") == []
    assert [r["name"] for r in archive.search(mark="refusal")] == [refusal]
    assert len(archive.search(officer="010203", sub_unit="执法一股", device="D000001")) == 3
    assert archive.search(officer="999999") == [] and archive.search(sub_unit="执法二股") == []
    opened = sorted(r["opened_utc"] for r in archive.search())
    assert [r["opened_utc"] for r in archive.search(since=opened[1])] == opened[1:]
    assert [r["opened_utc"] for r in archive.search(until=opened[1])] == opened[:1]
    assert archive.search(party="%") == []  # LIKE wildcards are literal
    with pytest.raises(UsageError, match="since"):
        archive.search(since="last tuesday")
    with pytest.raises(UsageError, match="not before --until"):  # a reversed range is a mistake, not "none"
        archive.search(since=opened[1], until=opened[0])
    row = archive.search(case_number="顺市监罚〔2026〕17号")[0]
    assert row["cases"][0]["party"] == "某某餐饮有限公司" and row["retention_class"] == "case"


def test_labels_never_touch_sealed_bytes_and_every_change_is_recorded(world):
    rig, archive, clock = world
    names = rig.record(1)
    commit(rig, archive, names)
    row = archive.search()[0]
    store = archive.store
    before = {d: store.confirm(d) for d in (row["segment_blob"], row["manifest_blob"])}
    archive.label(None, names, case_number="案-1", party="张三", who="officer-010203")
    clock.advance(3600)
    archive.label(None, names, case_number="案-1", cause="无照经营", who="keeper-2", retain_years=40)
    archive.unlabel(None, names, case_number="案-1", who="keeper-2")
    after = {d: store.confirm(d) for d in before}
    assert [(b.digest, b.size) for b in before.values()] == [(a.digest, a.size) for a in after.values()]
    history = archive.history(None, names[0])
    assert [(h["action"], h["who"]) for h in history] == [("label", "officer-010203"), ("label", "keeper-2"),
                                                          ("unlabel", "keeper-2")]
    assert history[1]["at_utc"] > history[0]["at_utc"]
    assert history[0]["detail"]["before"]["retention_class"] == "patrol"
    assert history[0]["detail"]["after"]["retention_class"] == "case"
    row = archive.search()[0]
    assert row["retention_class"] == "case" and row["cases"] == []  # out of the case, the date stays
    with pytest.raises(UsageError, match="lengthen"):
        archive.label(None, names, case_number="案-1", who="keeper-2", retain_years=5)


def test_retention_classes_only_lengthen(world):
    rig, archive, clock = world
    a, b = rig.record(2)
    refusal = record_with(rig, [{"event": "mark", "kind": "refusal"}])
    receipts = commit(rig, archive, [a, b, refusal])
    now = clock.utc_now()
    rows = {r["name"]: r for r in archive.search()}
    patrol = dt.datetime.fromisoformat(rows[a]["retain_until"].replace("Z", "+00:00"))
    assert patrol - now == dt.timedelta(days=183)  # Art. 12: six months
    assert json.loads(base64.b64decode(receipts[0]["payload"]))["retain_until"] == rows[a]["retain_until"]
    assert rows[refusal]["retention_class"] == "review" and rows[refusal]["review_pending"]
    archive.classify(None, [a], situation="obstruction", who="keeper-1")
    long_term = archive.search(device="D000001", retention_class="art13")[0]
    assert long_term["name"] == a and long_term["art13"] == "obstruction"
    assert long_term["retain_until"] > ev_years(now, 29)
    archive.label(None, [a], case_number="案-2", who="keeper-1", retain_years=2)  # shorter than long-term
    again = [r for r in archive.search() if r["name"] == a][0]
    assert again["retain_until"] == long_term["retain_until"] and again["retention_class"] == "art13"
    with pytest.raises(UsageError, match="situation"):
        archive.classify(None, [b], situation="jaywalking", who="keeper-1")
    with pytest.raises(UsageError, match="no such segment"):
        archive.classify(None, ["D000001_010203_20990101000000_9999"], situation="other", who="keeper-1")


def ev_years(now, years):
    from device.sealing.clock import utc_text

    return utc_text(now + dt.timedelta(days=365 * years))


def test_expiry_deletes_only_expired_unheld_reviewed_footage_with_signed_tombstones(world, agency):
    rig, archive, clock = world
    expired, held, in_case = rig.record(3)
    refusal = record_with(rig, [{"event": "mark", "kind": "refusal"}])
    commit(rig, archive, [expired, held, in_case, refusal])
    archive.hold(None, reason="court order (2026)京0101民初1号", who="keeper-1", segments=[held])
    archive.label(None, [in_case], case_number="案-3", who="keeper-1", retain_years=1)
    hold_case = archive.hold(None, reason="complaint", who="keeper-1", case_number="案-3")
    clock.advance(400 * 86400)  # past patrol (183 d) and the one-year case
    dry = archive.expire(who="job", dry_run=True)
    assert [i["name"] for i in dry["expired"]] == [expired] and dry["deleted"] == []
    kept = {i["name"]: i["reason"] for i in dry["kept"]}
    assert "hold on the segment" in kept[held] and "hold on the case" in kept[in_case]
    assert "not yet reviewed" in kept[refusal]
    assert len(archive.search()) == 4  # the dry run deleted nothing
    row = [r for r in archive.search() if r["name"] == expired][0]
    result = archive.expire(who="job", dry_run=False)
    assert [d["name"] for d in result["deleted"]] == [expired]
    with pytest.raises(Exception):
        archive.store.confirm(row["segment_blob"])
    (tomb,) = archive.tombstones(None)
    record = tomb["record"]
    payload = json.loads(base64.b64decode(record["payload"]))
    assert payload["ctx"] == "bodycam/v2/tombstone" and payload["segment"] == expired
    assert payload["files"]["segment_sha256"] == row["segment_blob"] and payload["by"] == "job"
    # a second implementation checks the signature with the certificate alone
    cert = x509.load_pem_x509_certificate(record["certificate"].encode())
    public = cert.public_key()
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(record["signature"]), b"bodycam/v2/tombstone\x00" + base64.b64decode(record["payload"]))
    # release the holds and close the review: everything past its date goes
    for h in archive.holds(None):
        archive.release(None, h["id"], who="keeper-1")
    archive.review(None, [refusal], who="keeper-1", situation=None)
    assert sorted(d["name"] for d in archive.expire(who="job", dry_run=False)["deleted"]) == sorted(
        [held, in_case, refusal])
    assert archive.search() == [] and len(archive.search(include_deleted=True)) == 4
    assert archive.scrub().bad == []
    assert hold_case


def test_written_records_are_sealed_into_the_case(world, tmp_path):
    rig, archive, clock = world
    names = rig.record(1)
    commit(rig, archive, names)
    archive.label(None, names, case_number="案-4", who="keeper-1", retain_years=10)
    doc = tmp_path / "送达回证.pdf"
    doc.write_bytes(b"%PDF-1.4 service receipt scan")
    seal = archive.attach(None, "案-4", doc, kind="service-receipt", who="keeper-1")
    payload = json.loads(base64.b64decode(seal["payload"]))
    import hashlib
    assert payload["sha256"] == hashlib.sha256(doc.read_bytes()).hexdigest() and payload["case_number"] == "案-4"
    assert payload["retain_until"] > ev_years(clock.utc_now(), 9)
    (stored,) = archive.documents(None, "案-4")
    assert stored["filename"] == "送达回证.pdf" and archive.store.confirm(stored["blob"]).size == len(doc.read_bytes())
    # the case's period lengthens: the document's lock follows
    archive.label(None, names, case_number="案-4", who="keeper-1", retain_years=12)
    longer = [e for e in archive.expiry_candidates(clock.utc_now() + dt.timedelta(days=365 * 11))[0]
              if e.kind == "document"]
    assert longer == []
    # past the case file's period: held, then kept; released, then deleted with a tombstone
    (hold_id,) = archive.hold(None, reason="reconsideration", who="keeper-1", case_number="案-4")
    clock.advance(13 * 366 * 86400)
    dry = archive.expire(who="job", dry_run=True)
    assert [i["name"] for i in dry["kept"] if i["kind"] == "document"] == ["案-4/送达回证.pdf"]
    # a case's page releases only that case's holds; the audit entry names the case
    archive.label(None, names[:1], case_number="案-5", who="keeper-1")
    with pytest.raises(UsageError, match="no active hold .* on case 案-5"):
        archive.release(None, hold_id, who="keeper-1", case_number="案-5")
    assert [h["id"] for h in archive.holds(None)] == [hold_id]
    archive.release(None, hold_id, who="keeper-1", case_number="案-4")
    from archive.console.queries import audit_entries

    released = [e["payload"] for e in audit_entries(archive, archive.agency(None).id) if e["payload"]["action"] == "release"]
    assert [(r["outcome"], r["case"]) for r in released] == [("ok", "案-4"), ("refused", "案-5")]
    done = archive.expire(who="job", dry_run=False)
    assert "案-4/送达回证.pdf" in [d["name"] for d in done["deleted"]]
    tomb = [t for t in archive.tombstones(None) if t["kind"] == "document"][0]
    assert json.loads(base64.b64decode(tomb["record"]["payload"]))["files"]["document_sha256"] == payload["sha256"]
    assert archive.documents(None, "案-4")[0]["deleted_utc"] is not None
    with pytest.raises(Exception):
        archive.store.confirm(payload["sha256"])
    with pytest.raises(UsageError, match="kind"):
        archive.attach(None, "案-4", doc, kind="selfie", who="k")
    with pytest.raises(UsageError, match="no case"):
        archive.attach(None, "案-404", doc, kind="note", who="k")
    with pytest.raises(UsageError, match="regular file"):
        archive.attach(None, "案-4", tmp_path, kind="note", who="k")


def test_scrub_finds_damage_and_status_raises_alerts(world):
    rig, archive, clock = world
    names = rig.record(2)
    commit(rig, archive, names)
    assert archive.scrub().bad == []
    status = archive.status()
    assert status["index"]["segments"] == 2 and status["index"]["revision"] == status["index"]["head"]
    assert [a["kind"] for a in status["alerts"]] == []
    clock.advance(37 * 3600)  # 12 h duty + 24 h to dock, and a bit
    kinds = [a["kind"] for a in archive.alerts()]
    assert kinds == ["not-docked", "scrub-overdue"]
    assert "D000001" in archive.alerts()[0]["message"]
    if archive.store.backend == "local":
        victim = archive.store.path(archive.search()[0]["segment_blob"])
        os.chmod(victim, 0o644)
        victim.write_bytes(b"rot")
        result = archive.scrub()
        assert [b["digest"] for b in result.bad] == [victim.name]
        assert "scrub-bad" in [a["kind"] for a in archive.alerts()]


def test_agencies_sharing_a_deployment_never_see_each_other(agency, tmp_path):
    from archive.config import load_archive_config
    from archive.service import Archive
    from device.sealing import pki

    from .conftest import make_agency

    other = make_agency(tmp_path / "other")
    rig_a = make_rig(agency, tmp_path / "a")
    rig_b = make_rig(other, tmp_path / "b", device_id="D000002")
    key_b = pki.issue_keypair(other.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-b", tmp_path / "kb")
    keys = tmp_path / "a" / "keys" / "arch"
    path = archive_config_toml(tmp_path / "archive", agency.ca_cert_path, keys / "archive-receipt.key",
                               keys / "archive-receipt.crt", agency="agency-a",
                               extra=f'[[agencies]]\nid = "agency-b"\nname = "B"\nca = "{other.ca_cert_path}"\n'
                                     f'receipt_key = "{key_b}"\nreceipt_certificate = "{key_b.with_suffix(".crt")}"\n')
    archive = Archive(load_archive_config(path))
    try:
        archive.commit_recording("agency-a", rig_a.state, rig_a.record(1), source="dock:a")
        archive.commit_recording("agency-b", rig_b.state, rig_b.record(2), source="dock:b")
        assert [r["device"] for r in archive.search("agency-a")] == ["D000001"]
        assert {r["device"] for r in archive.search("agency-b")} == {"D000002"}
        with pytest.raises(UsageError, match="several agencies"):
            archive.search()
        name_b = archive.search("agency-b")[0]["name"]
        with pytest.raises(UsageError, match="no such segment"):
            archive.label("agency-a", [name_b], case_number="x", who="k")
        with pytest.raises(Exception, match="not verify|device certificate"):
            archive.commit_recording("agency-a", rig_b.state, [name_b], source="dock:a")  # B's device, A's CA
    finally:
        archive.close()
        rig_a.close()
        rig_b.close()


def test_a_round1_archive_migrates_in_place(agency, tmp_path):
    """An index.sqlite written by the round-1 store (schema copied from it) gets the
    new columns, blobs and tables, keeps every row, and serves the new calls."""
    from archive.store import LocalArchive

    rig = make_rig(agency, tmp_path / "rig")
    try:
        names = rig.record(2)
        root = tmp_path / "old"
        archive = LocalArchive.open(root, agency.ca_cert_path, rig.root / "keys/arch/archive-receipt.key",
                                    rig.root / "keys/arch/archive-receipt.crt")
        archive.commit(rig.state, names, source="dock:dock-1:bay1", department="一股")
        archive.close()
        # turn the index back into the round-1 schema, data included
        db = sqlite3.connect(root / "index.sqlite")
        rows = db.execute("SELECT segment_digest, device, segment_seq, name, media, officer, sub_unit, opened_utc, "
                          "closed_utc, status, marks, events, segment_blob, manifest_blob, imported_utc, source, "
                          "retain_until FROM segments").fetchall()
        logs = db.execute("SELECT device, file, blob, bytes FROM seal_log_files").fetchall()
        devs = db.execute("SELECT device, certificate_blob, head_seq, head_digest FROM devices").fetchall()
        db.close()
        (root / "index.sqlite").unlink()
        for extra in ("-wal", "-shm"):
            (root / f"index.sqlite{extra}").unlink(missing_ok=True)
        db = sqlite3.connect(root / "index.sqlite")
        db.executescript(ROUND1_SCHEMA)
        db.executemany("INSERT INTO segments VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.executemany("INSERT INTO seal_log_files VALUES (?,?,?,?)", logs)
        db.executemany("INSERT INTO devices VALUES (?,?,?,?)", devs)
        db.commit()
        db.close()
        migrated = LocalArchive.open(root, agency.ca_cert_path, rig.root / "keys/arch/archive-receipt.key",
                                     rig.root / "keys/arch/archive-receipt.crt")
        try:
            found = migrated.search(sub_unit="一股")
            assert sorted(r["name"] for r in found) == sorted(names)
            assert all(r["agency"] == "default" and r["retention_class"] == "patrol" for r in found)
            assert migrated.scrub().bad == [] and migrated.scrub().objects >= 5
            migrated.label(None, names[:1], case_number="案-旧", who="keeper")
            migrated_index = migrated.status()["index"]
            assert migrated_index["revision"] == migrated_index["head"]
        finally:
            migrated.close()
    finally:
        rig.close()


# The round-1 schema, as archive/store.py created it before this change.
ROUND1_SCHEMA = """
CREATE TABLE segments (segment_digest TEXT PRIMARY KEY, device TEXT NOT NULL, segment_seq INTEGER NOT NULL,
    name TEXT NOT NULL, media TEXT NOT NULL, officer TEXT, department TEXT, opened_utc TEXT NOT NULL,
    closed_utc TEXT, status TEXT NOT NULL, marks TEXT NOT NULL, events TEXT NOT NULL, segment_blob TEXT NOT NULL,
    manifest_blob TEXT NOT NULL, imported_utc TEXT NOT NULL, source TEXT NOT NULL, retain_until TEXT NOT NULL,
    UNIQUE (device, segment_seq));
CREATE TABLE seal_log_files (device TEXT NOT NULL, file TEXT NOT NULL, blob TEXT NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (device, file, blob));
CREATE TABLE devices (device TEXT PRIMARY KEY, certificate_blob TEXT NOT NULL, head_seq INTEGER, head_digest TEXT);
"""


def test_cli_commands_answer_json_and_explain(world, tmp_path):
    rig, archive, clock = world
    names = rig.record(1)
    commit(rig, archive, names)
    config = tmp_path / "archive" / "archive.toml"
    runner = CliRunner()
    for command in ("serve", "search", "label", "hold", "expire", "scrub", "attach", "status"):
        result = runner.invoke(main, ["archive", command, "--help"])
        assert result.exit_code == 0 and len(result.output) > 200, command
    out = runner.invoke(main, ["archive", "--config", str(config), "search", "--officer", "010203", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)[0]["name"] == names[0]
    out = runner.invoke(main, ["archive", "--config", str(config), "label", names[0], "--case", "案-9",
                               "--party", "李四", "--by", "keeper", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["party"] == "李四"
    out = runner.invoke(main, ["archive", "--config", str(config), "expire", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["dry_run"] is True
    out = runner.invoke(main, ["archive", "--config", str(config), "status", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["index"]["cases"] == 1
    out = runner.invoke(main, ["archive", "--config", str(config), "scrub", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["bad"] == []
    bad = runner.invoke(main, ["archive", "--config", str(config), "search", "--since", "yesterday-ish"])
    assert bad.exit_code == 2 and "bodycam: error:" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(main, ["archive", "--config", str(config), "label", "NOPE", "--case", "x", "--by", "k"])
    assert bad.exit_code == 2 and "no such segment" in bad.output


def test_the_migrated_schema_is_the_one_the_code_queries(world):
    """Schema changes go through migrations: after upgrading, Alembic's
    autogenerate finds nothing between the database and archive/index.py."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from archive import index as ix

    rig, archive, clock = world
    with archive.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), ix.metadata)
    assert diffs == []


def test_status_alerts_are_english_on_the_technicians_terminal(world):
    """`bodycam archive status` prints each alert in English from its fields (the Chinese
    `message` is for pages and --json): overdue docking, scrub overdue, damaged objects."""
    import re

    rig, archive, clock = world
    commit(rig, archive, rig.record(1))
    clock.advance(37 * 3600)  # 12 h duty + 24 h to dock, and a bit
    kinds = ["not-docked", "scrub-overdue"]
    if archive.store.backend == "local":
        victim = archive.store.path(archive.search()[0]["segment_blob"])
        os.chmod(victim, 0o644)
        victim.write_bytes(b"rot")
        archive.scrub()
        kinds = ["not-docked", "scrub-bad"]
    assert [a["kind"] for a in archive.alerts()] == kinds
    result = CliRunner().invoke(main, ["archive", "status"], obj={"archive": archive})
    assert result.exit_code == 0, result.output
    alerts = [line for line in result.output.splitlines() if line.startswith("ALERT")]
    docked = archive.alerts()[0]
    assert alerts[0] == (f"ALERT    recorder D000001 not docked within 24 h of its duty end "
                         f"(last docked {docked['last_docked_utc']}, due {docked['due_utc']})")
    assert alerts[1] == ("ALERT    the last scrub found 1 stored object(s) damaged (bodycam archive scrub)"
                         if "scrub-bad" in kinds else "ALERT    no scrub of the store for over 24 h (last never)")
    assert not re.search(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", result.output), result.output
    doc = json.loads(CliRunner().invoke(main, ["archive", "status", "--json"], obj={"archive": archive}).output)
    assert "记录仪 D000001" in doc["alerts"][0]["message"]  # the staff's text stays in the JSON
