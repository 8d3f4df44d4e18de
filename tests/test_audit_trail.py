"""The audit trail: every access and change is a signed, hash-chained entry;
a tampered, reordered or shortened log fails `audit verify` naming the entry;
the head is time-stamped by a real RFC 3161 authority (openssl ts), which
`openssl ts -verify` accepts; CSV and PDF exports for a case or a person."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from archive.audit import Actor, audit_of, current_actor
from archive.standalone_verifier import Result, verify_audit_lines
from bodycam.cli import main as cli
from device.sealing import pki

from .lawful_rig import LocalTSA, make_archive, openssl_ts_verify


@pytest.fixture
def tsa(tmp_path):
    t = LocalTSA(tmp_path / "tsa")
    yield t
    t.close()


@pytest.fixture
def rig(agency, tmp_path, tsa):
    r = make_archive(agency, tmp_path / "a", tsa_url=tsa.url, tsa_cert=tsa.cert)
    yield r
    r.close()


def _busy(rig):
    a = rig.archive
    rows = a.search(officer="010203")
    a.label(None, [rows[0]["name"]], case_number="顺市监罚〔2026〕17号", party="某某餐饮有限公司", cause="未公示许可证",
            act_type="inspection", who="keeper1")
    hold = a.hold(None, reason="行政复议", who="keeper1", case_number="顺市监罚〔2026〕17号")
    a.release(None, hold[0], who="keeper1")
    with pytest.raises(ValueError):
        a.label(None, ["NO_SUCH_SEGMENT"], case_number="X", who="keeper1")
    token = current_actor.set(Actor("zhang.wei", "officer"))
    try:
        a.search(device="A123456")
    finally:
        current_actor.reset(token)
    return rows


def test_each_kind_of_access_and_change_is_one_signed_entry(rig):
    _busy(rig)
    log = audit_of(rig.archive)
    entries = [json.loads(e["payload"]) for e in log.entries(None)]
    kinds = [(e["action"], e["outcome"]) for e in entries]
    assert kinds == [("search", "ok"), ("label", "ok"), ("hold", "ok"), ("release", "ok"), ("label", "refused"),
                     ("search", "ok")]
    assert entries[1]["actor"] == "keeper1" and entries[1]["case"] == "顺市监罚〔2026〕17号"
    assert entries[-1]["actor"] == "zhang.wei" and entries[-1]["role"] == "officer"
    assert entries[0]["detail"]["results"] == len(rig.names) and len(entries[0]["segments"]) == len(rig.names)
    assert "NO_SUCH_SEGMENT" in entries[4]["detail"]["error"]
    result = Result()
    verify_audit_lines(log.export_jsonl(None).decode().splitlines(), pki.load_cert(rig.agency.ca_cert_path), result)
    assert result.passed, result.failures


def _tamper(lines: list[str], n: int, change) -> list[str]:
    out = list(lines)
    item = json.loads(out[n])
    payload = json.loads(item["entry"])
    change(payload)
    item["entry"] = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    out[n] = json.dumps(item, ensure_ascii=False)
    return out


@pytest.mark.parametrize("how, words", [
    ("edit-actor", "#2 (hold by someone.else"),
    ("edit-outcome", "#4 (label by keeper1"),
    ("drop-entry", "#2…#2 are missing"),
    ("swap", "out of order"),
    ("drop-tail", "signed head is #5"),
    ("forged-signature", "#1 (label by keeper1"),
])
def test_a_tampered_log_fails_audit_verify_naming_the_entry(rig, tmp_path, how, words):
    _busy(rig)
    lines = audit_of(rig.archive).export_jsonl(None).decode().splitlines()
    # lines[0] header, lines[1..6] entries #0..#5, then the head
    if how == "edit-actor":
        lines = _tamper(lines, 3, lambda p: p.update(actor="someone.else"))
    elif how == "edit-outcome":
        lines = _tamper(lines, 5, lambda p: p.update(outcome="ok"))
    elif how == "drop-entry":
        del lines[3]
    elif how == "swap":
        lines[3], lines[4] = lines[4], lines[3]
    elif how == "drop-tail":
        del lines[6]
    elif how == "forged-signature":
        item = json.loads(lines[2])
        sig = bytearray(base64.b64decode(item["signature"]))
        sig[5] ^= 1
        item["signature"] = base64.b64encode(bytes(sig)).decode()
        lines[2] = json.dumps(item, ensure_ascii=False)
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["archive", "audit", "verify", "--log", str(path), "--ca",
                                      str(rig.agency.ca_cert_path)])
    assert result.exit_code == 1, result.output
    assert words in result.output, result.output
    assert "NOT VERIFIED" in result.output


def test_audit_verify_passes_offline_on_the_export_and_on_the_index(rig, tmp_path):
    _busy(rig)
    path = tmp_path / "audit.jsonl"
    runner = CliRunner()
    out = runner.invoke(cli, ["archive", "--config", str(rig.config_path), "audit", "export", "--format", "jsonl",
                              "--out", str(path)])
    assert out.exit_code == 0, out.output
    ok = runner.invoke(cli, ["archive", "audit", "verify", "--log", str(path), "--ca", str(rig.agency.ca_cert_path)])
    assert ok.exit_code == 0 and "VERIFIED" in ok.output, ok.output
    # the index itself (the archive host, no service running), with the TSA's signature on its stamp
    stamped = runner.invoke(cli, ["archive", "--config", str(rig.config_path), "audit", "stamp"])
    assert stamped.exit_code == 0 and "stamped at" in stamped.output, stamped.output
    ok = runner.invoke(cli, ["archive", "--config", str(rig.config_path), "audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "TSA signature on the stamp of #" in ok.output, ok.output


def test_the_head_is_time_stamped_on_schedule_and_openssl_accepts_the_stamp(rig, tsa, tmp_path):
    _busy(rig)
    log = audit_of(rig.archive)
    first = log.stamp(None)
    assert first is not None and first["seq"] == 5 and tsa.requests == 1
    rig.archive.search(officer="010203")
    assert log.stamp(None) is None  # the head moved, but the hour has not passed
    rig.clock.advance(61 * 60)
    second = log.stamp(None)
    assert second is not None and second["seq"] == 6 and tsa.requests == 2
    assert log.stamp(None) is None  # nothing new since
    for stamp in (first, second):
        payload = next(e["payload"] for e in log.entries(None) if e["seq"] == stamp["seq"])
        done = openssl_ts_verify(base64.b64decode(stamp["token"]), payload.encode(), tsa.cert, tmp_path / "v")
        assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stdout + done.stderr
        other = openssl_ts_verify(base64.b64decode(stamp["token"]), payload.encode() + b" ", tsa.cert, tmp_path / "w")
        assert other.returncode != 0
    # rfc3161-client checks the TSA's signature against the configured root, and not against another
    from cryptography import x509

    from archive.tsa import check_stamp
    from bodycam.errors import TrustError
    payload = next(e["payload"] for e in log.entries(None) if e["seq"] == first["seq"]).encode()
    tsa_root = x509.load_pem_x509_certificate(tsa.cert.read_bytes())
    assert check_stamp(base64.b64decode(first["token"]), payload, [tsa_root]) == first["stamped_utc"]
    other = LocalTSA(tmp_path / "other-tsa")
    try:
        with pytest.raises(TrustError):
            check_stamp(base64.b64decode(first["token"]), payload,
                        [x509.load_pem_x509_certificate(other.cert.read_bytes())])
    finally:
        other.close()
    with pytest.raises(TrustError):
        check_stamp(base64.b64decode(first["token"]), payload + b"x", [tsa_root])
    # the export carries the stamps, and verify checks their imprint
    result = Result()
    verify_audit_lines(log.export_jsonl(None).decode().splitlines(), pki.load_cert(rig.agency.ca_cert_path), result)
    assert result.passed and sum("time-stamped" in c for c in result.checked) == 2, result


def test_export_for_a_case_or_a_person_as_csv_and_pdf(rig, tmp_path):
    _busy(rig)
    log = audit_of(rig.archive)
    case_csv = log.export_csv(None, case="顺市监罚〔2026〕17号").decode("utf-8-sig").splitlines()
    assert case_csv[0].startswith("seq,utc,actor") and len(case_csv) == 3  # label + hold
    person = log.export_csv(None, actor="zhang.wei").decode("utf-8-sig").splitlines()
    assert len(person) == 2 and ",zhang.wei,officer,search," in person[1]
    extract = log.export_jsonl(None, case="顺市监罚〔2026〕17号").decode().splitlines()
    result = Result()
    verify_audit_lines(extract, pki.load_cert(rig.agency.ca_cert_path), result)
    assert result.passed, result.failures
    if shutil.which("pdftotext") is None:
        from .archive_rig import unavailable
        unavailable("pdftotext not installed (Debian package poppler-utils)")
    pdf = tmp_path / "case.pdf"
    pdf.write_bytes(log.export_pdf(None, case="顺市监罚〔2026〕17号"))
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "审计日志" in text and "诉讼保全" in text and "keeper1" in text
    flat = text.replace("\n", "").replace(" ", "")
    for entry in log.entries(None, case="顺市监罚〔2026〕17号"):
        assert entry["digest"] in flat


def test_seal_log_heads_are_time_stamped_at_the_archive_and_the_package_carries_them(rig, tsa, tmp_path):
    """RFC 3161 on seal-log heads: `openssl ts -verify -digest <entry digest>` accepts the stamp,
    and the package's verifier ties it to the seal-log entry it holds."""
    import pyotp

    from archive.accounts import Accounts
    from archive.grants import Grants
    from archive.package import export_package
    from archive.provenance import stamp_seal_log_heads

    made = stamp_seal_log_heads(rig.archive)
    assert len(made) == 1 and made[0]["device"] == "A123456" and made[0]["seq"] >= 8
    assert stamp_seal_log_heads(rig.archive) == []  # nothing new
    stamp = made[0]
    (tmp_path / "s.tsr").write_bytes(base64.b64decode(stamp["token"]))
    ok = subprocess.run(["openssl", "ts", "-verify", "-digest", stamp["digest"], "-in", str(tmp_path / "s.tsr"),
                         "-CAfile", str(tsa.cert)], capture_output=True, text=True)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    other = "0" * 64
    bad = subprocess.run(["openssl", "ts", "-verify", "-digest", other, "-in", str(tmp_path / "s.tsr"),
                          "-CAfile", str(tsa.cert)], capture_output=True, text=True)
    assert bad.returncode != 0
    acc = Accounts(rig.archive)
    keeper, _ = acc.add(None, "li.na", "李娜", "keeper", "correct horse battery", by="admin")
    head, _ = acc.add(None, "head", "王局长", "approver", "correct horse battery", by="admin")
    grants = Grants(rig.archive)
    g = grants.request(keeper, grantee="li.na", actions=["export"], reason="复议", hours=1, segments=rig.names[:1])
    g = grants.decide(head, g.id, approve=True, totp=pyotp.TOTP(acc.totp_secret("head")).at(rig.clock.utc_now()))
    package = export_package(rig.archive, keeper, g.id, tmp_path / "pkg", viewing_copies=False).path
    from archive.standalone_verifier import verify_package

    result = verify_package(package)
    assert result.passed, result.failures
    assert any(f"seal-log entry #{stamp['seq']} of A123456 (and all before it) existed at" in c for c in result.checked)
    tsr = next((package / "originals" / "A123456" / "stamps").glob("*.tsr"))
    assert tsr.read_bytes() == base64.b64decode(stamp["token"])
    text = subprocess.run(["pdftotext", "-raw", str(package / "report" / "report.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "可信时间戳" in text and stamp["stamped_utc"] in text


def test_retention_changes_and_expiry_are_audited(rig):
    """A long-term classification (retention change) and the expiry job's
    deletions each leave an entry; a held segment's expiry is not attempted."""
    import datetime as dt

    a = rig.archive
    rows = a.search()
    a.classify(None, [rows[0]["name"]], situation="obstruction", who="keeper1")
    a.hold(None, reason="投诉处理中", who="keeper1", segments=[rows[1]["name"]])
    rig.clock.advance(dt.timedelta(days=a.retention.patrol_days + 1).total_seconds())
    result = a.expire(who="expiry-job", dry_run=False)
    expired = {d["digest"] for d in result["deleted"]}
    assert rows[2]["segment_digest"] in expired and rows[0]["segment_digest"] not in expired
    entries = [json.loads(e["payload"]) for e in audit_of(a).entries(None)]
    classify = [e for e in entries if e["action"] == "classify"]
    assert len(classify) == 1 and classify[0]["detail"]["situation"] == "obstruction"
    deletions = [e for e in entries if e["action"] == "expire"]
    assert {e["segments"][0] for e in deletions} == expired
    assert all(e["outcome"] == "ok" and e["actor"] == "expiry-job" for e in deletions)
    result = Result()
    verify_audit_lines(audit_of(a).export_jsonl(None).decode().splitlines(), pki.load_cert(rig.agency.ca_cert_path),
                       result)
    assert result.passed, result.failures
