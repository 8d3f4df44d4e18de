"""The console's oversight logic without a browser: each kind of flag on the
misuse timeline (Art. 22, 25), with a shift that has it and one that has
not; the review sample (Art. 24) and statistics from findings in the audit
trail; and the catalogues: every message has its Chinese text, the
placeholders agree, and no template or console module shows text that
bypasses them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest

from archive import index as ix
from archive.console import oversight
from archive.console.i18n import LOCALES, catalogue_path
from device.sealing import pki
from device.sealing.clock import utc_text

from .archive_rig import archive_config_toml

CONSOLE = Path(__file__).resolve().parent.parent / "archive" / "console"
DAY = dt.date.today() - dt.timedelta(days=3)
START, END = dt.time(8, 30), dt.time(17, 30)


@pytest.fixture
def archive(agency, tmp_path):
    from archive.config import load_archive_config
    from archive.service import Archive

    key = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", tmp_path / "keys")
    a = Archive(load_archive_config(archive_config_toml(tmp_path / "a", agency.ca_cert_path, key,
                                                        key.with_suffix(".crt"))))
    yield a
    a.close()


def _local(hh: int, mm: int, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm), oversight.SHIFT_ZONE).astimezone(dt.timezone.utc)


def _add(archive, officer: str, opened: dt.datetime, minutes: float, *, status: str = "verified",
         events=(), marks=(), sub_unit: str = "一股", n=[0]) -> str:
    n[0] += 1
    digest = hashlib.sha256(f"segment {n[0]}".encode()).hexdigest()  # spread like real digests
    closed = None if status == "open" else utc_text(opened + dt.timedelta(minutes=minutes))
    with archive.engine.begin() as conn:
        conn.execute(ix.segments.insert().values(
            segment_digest=digest, agency="test-agency", sub_unit=sub_unit, device="D000001", segment_seq=n[0],
            name=f"D000001_{officer}_{n[0]}", media="video/mp4", officer=officer, opened_utc=utc_text(opened),
            closed_utc=closed, status=status, marks=json.dumps(list(marks)), events=json.dumps(list(events)),
            segment_blob=digest, manifest_blob=digest, imported_utc=utc_text(opened), source="test",
            retain_until=utc_text(opened + dt.timedelta(days=183)), retention_class="patrol", art13=None,
            review_pending=False, deleted_utc=None))
    return digest


def _kinds(archive, officer, **kw):
    return [f.kind for f in oversight.misuse_timeline(archive, "test-agency", officer, DAY, START, END, **kw).flags]


def test_a_clean_shift_has_only_the_notice_first(archive):
    t = _local(8, 40)
    _add(archive, "100001", t, 30, events=[
        {"event": "notify", "utc": utc_text(t + dt.timedelta(minutes=1))},
        {"event": "mark", "kind": "mark", "utc": utc_text(t + dt.timedelta(minutes=5))}], marks=["mark"])
    _add(archive, "100001", t + dt.timedelta(minutes=40), 30)
    assert _kinds(archive, "100001") == ["notice-first"]


def test_each_kind_of_misuse_is_flagged(archive):
    officer = "100002"
    late = _local(10, 0)  # 90 minutes after duty start
    _add(archive, officer, late, 10, events=[
        {"event": "mark", "kind": "refusal", "utc": utc_text(late + dt.timedelta(minutes=2))},
        {"event": "notify", "utc": utc_text(late + dt.timedelta(minutes=6))}], marks=["refusal"])
    _add(archive, officer, late + dt.timedelta(minutes=60), 10, status="truncated")  # 50-minute gap, unclean
    _add(archive, officer, _local(19, 0), 5)  # after duty end
    _add(archive, officer, _local(12, 0), 5, status="open")
    shift = oversight.misuse_timeline(archive, "test-agency", officer, DAY, START, END)
    kinds = [f.kind for f in shift.flags]
    assert kinds.count("late-activation") == 1
    late_flag = next(f for f in shift.flags if f.kind == "late-activation")
    assert late_flag.minutes == 90.0
    assert "gap" in kinds and "outside-duty" in kinds
    assert kinds.count("unclean-stop") == 2
    assert "mark-before-notice" in kinds and "notice-first" not in kinds
    # thresholds are the caller's: a longer allowed gap and lateness hide those flags
    relaxed = _kinds(archive, officer, late_minutes=120, gap_minutes=120)
    assert "late-activation" not in relaxed and "gap" not in relaxed


def test_a_shift_without_footage_and_a_night_shift(archive):
    assert _kinds(archive, "100003") == ["no-footage"]
    night = _local(23, 0)
    _add(archive, "100004", night + dt.timedelta(hours=3), 20)  # 02:00 the next morning, inside 22:00-06:00
    flags = oversight.misuse_timeline(archive, "test-agency", "100004", DAY, dt.time(22, 0), dt.time(6, 0)).flags
    assert [f.kind for f in flags] == ["late-activation"]  # 4 h after 22:00, but on duty, not outside


def test_review_statistics_count_the_latest_finding_per_reviewer_and_segment(archive):
    from archive import lawful_index as lx

    a = _add(archive, "300001", _local(9, 0), 1, sub_unit="一股")
    b = _add(archive, "300001", _local(9, 5), 1, sub_unit="一股")
    c = _add(archive, "300002", _local(9, 9), 1, sub_unit="二股")
    with archive.engine.begin() as conn:
        for digest, reviewer, result in ((a, "r1", "problem"), (a, "r1", "conforms"),  # the second supersedes
                                         (b, "r1", "problem"), (c, "r1", "conforms"), (c, "r2", "problem")):
            conn.execute(lx.review_findings.insert().values(
                agency="test-agency", segment_digest=digest, reviewer=reviewer, result=result, note="x",
                at_utc=utc_text(_local(12, 0)), sample_grant=None))
    stats = oversight.review_statistics(archive, "test-agency")
    officers = {g["key"]: (g["reviewed"], g["conforms"], g["problem"], g["rate"]) for g in stats["officer"]}
    assert officers == {"300001": (2, 1, 1, 50), "300002": (2, 1, 1, 50)}
    assert {g["key"]: g["reviewed"] for g in stats["sub_unit"]} == {"一股": 2, "二股": 2}
    assert stats["agency"][0]["reviewed"] == 4
    later = utc_text(_local(9, 6))
    assert oversight.review_statistics(archive, "test-agency", since=later)["agency"][0]["reviewed"] == 2


# -- catalogues ---------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"%\((\w+)\)s")
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_message_has_chinese_text_with_the_same_placeholders():
    from babel.messages.pofile import read_po

    from archive.console.catalogue import extracted

    with open(catalogue_path("zh_CN"), "rb") as f:
        zh = read_po(f)
    used = extracted()
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in zh if m.id}
    assert {k if isinstance(k, str) else k[0] for k in used} == ids, \
        "catalogue out of step: run python -m archive.console.catalogue"
    for m in zh:
        if not m.id:
            continue
        msgid = m.id if isinstance(m.id, str) else m.id[0]
        text = m.string if isinstance(m.string, str) else m.string[0]
        assert text and CJK.search(text), f"{msgid!r} has no Chinese text"
        assert set(PLACEHOLDER.findall(msgid)) == set(PLACEHOLDER.findall(text)), msgid
    for locale in LOCALES:
        assert catalogue_path(locale).exists()


ALLOWED_BARE = {"CSV", "PDF", "MB", "s", "ms", "B", "English", "中文"}


def test_no_text_bypasses_the_catalogue():
    for path in sorted((CONSOLE / "templates").glob("*.html")):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", text, flags=re.S)
        text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", text, flags=re.S)
        text = re.sub(r"<[^>]*>", " ", text)
        words = [w for w in re.findall(r"[A-Za-z\u4e00-\u9fff]+", text) if w not in ALLOWED_BARE]
        assert not words, f"{path.name}: text outside the catalogue: {words[:10]}"
    for path in sorted(CONSOLE.glob("*.py")):
        if path.name == "catalogue.py":
            continue
        assert not CJK.search(path.read_text(encoding="utf-8")), f"{path.name}: Chinese text in code"


def test_the_dock_answers_every_bad_check_out_request_and_keeps_its_registry(tmp_path):
    from dock.checkout_inbox import INBOX, apply_checkout_requests
    from dock.registry import Registry

    registry = Registry(tmp_path / "registry.sqlite")
    (tmp_path / "o.csv").write_text("officer_id,name,department,certificate_no,valid_until\n"
                                    "020304,Li Na,一股,LN1,2000-01-01\n")  # expired long ago
    registry.import_csv(tmp_path / "o.csv")
    inbox = tmp_path / INBOX
    inbox.mkdir()
    (inbox / "1.json").write_text("{not json")
    (inbox / "2.json").write_text(json.dumps({"bay": 3, "officer": "020304"}))  # bay differs from the name
    (inbox / "4.json").write_text(json.dumps({"bay": 4, "officer": "020304"}))  # expired certificate
    (inbox / "9.json").write_text(json.dumps({"bay": 9, "officer": "020304"}))  # not a bay of this dock
    results = {r["bay"]: r for r in apply_checkout_requests(tmp_path, registry, {1, 2, 3, 4})}
    assert {k: r["outcome"] for k, r in results.items()} == {"1": "refused", "2": "refused", "4": "refused",
                                                            "9": "refused"}
    assert "expired" in results["4"]["reason"] and "not a bay" in results["9"]["reason"]
    assert all(registry.pending(b) is None for b in (1, 2, 3, 4))
    assert sorted(p.name for p in inbox.iterdir()) == ["1.result.json", "2.result.json", "4.result.json",
                                                       "9.result.json"]
    assert apply_checkout_requests(tmp_path, registry) == []  # answered once
