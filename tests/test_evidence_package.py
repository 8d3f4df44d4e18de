"""Evidence packages (Art. 17-18): exported under a grant, verified by their
own one-file verifier in a clean venv holding only `cryptography`; a one-byte
change to the footage, a sealed original, a manifest, the report's hash
table or the attestation fails it; the report's PDF holds the hashes and
renders; the agency keeps a register entry and a write-once copy."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from archive.accounts import AccessDenied, Accounts
from archive.grants import Grants
from archive.package import export_package, register

from .lawful_rig import make_archive, next_totp

CASE = "顺市监罚〔2026〕17号"


@pytest.fixture(scope="session")
def clean_python(tmp_path_factory):
    """A venv with nothing but cryptography (and what it needs: cffi, pycparser)."""
    root = tmp_path_factory.mktemp("cleanvenv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    done = subprocess.run([str(root / "bin" / "pip"), "install", "-q", "cryptography>=47,<49"],
                          capture_output=True, text=True)
    if done.returncode:
        from .archive_rig import unavailable
        unavailable(f"cannot install cryptography into a clean venv: {done.stderr[-500:]}")
    listed = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert names <= {"cryptography", "cffi", "pycparser", "pip", "setuptools"}, names
    return root / "bin" / "python"


@pytest.fixture(scope="module")
def exported(agency, tmp_path_factory):
    root = tmp_path_factory.mktemp("pkg")
    rig = make_archive(agency, root / "a")
    acc = Accounts(rig.archive)
    keeper, _ = acc.add(None, "li.na", "李娜", "keeper", "correct horse battery", by="admin")
    head, _ = acc.add(None, "head", "王局长", "approver", "correct horse battery", by="admin")
    rig.archive.label(None, rig.names, case_number=CASE, party="某某餐饮有限公司", cause="未按规定公示食品经营许可证",
                      act_type="inspection", who="li.na")
    grants = Grants(rig.archive)
    g = grants.request(keeper, grantee="li.na", actions=["export"], reason="法院调取证据", hours=24, case_number=CASE)
    code = next_totp(rig.clock, acc.totp_secret("head"))
    g = grants.decide(head, g.id, approve=True, totp=code)
    result = export_package(rig.archive, keeper, g.id, root / "package", recipient="顺城区人民法院")
    yield rig, result, keeper, g
    rig.close()


def run_verifier(python: Path, package: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-I", str(package / "verify_package.py"), str(package)],
                          capture_output=True, text=True, cwd="/")


def test_the_package_verifies_with_its_own_verifier_in_a_clean_venv(exported, clean_python):
    rig, result, _, _ = exported
    done = run_verifier(clean_python, result.path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("VERIFIED")
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert len(manifest["segments"]) == len(rig.names) == 3
    for seg in manifest["segments"]:
        assert f"{seg['name']}: complete" in done.stdout and "exactly the signed plaintext" in done.stdout
    assert "audit log of test-agency (extract" in done.stdout
    # playable: ffprobe reads the MP4s, and the viewing copies carry a watermark (different bytes)
    for seg in manifest["segments"]:
        media = result.path / seg["media_file"]
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_format", str(media)], capture_output=True, text=True)
        assert probe.returncode == 0, probe.stderr
        viewing = next((result.path / "viewing").glob(f"{seg['name']}-viewing.*"))
        assert viewing.read_bytes() != media.read_bytes()


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("target, words", [
    ("footage", "media/"),
    ("sealed-original", "originals/"),
    ("segment-manifest", ".bcman"),
    ("package-manifest", "manifest.json differs"),
    ("report-hash-table", "report/report.html"),
    ("attestation", "attestation.json"),
    ("audit-extract", "audit/audit.jsonl"),
    ("added-file", "not listed"),
])
def test_a_one_byte_change_anywhere_fails_the_package(exported, clean_python, tmp_path, target, words):
    _, result, _, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(result.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    seg = manifest["segments"][1]
    if target == "footage":
        _flip_byte(copy / seg["media_file"], 2000)
    elif target == "sealed-original":
        _flip_byte(copy / seg["original_dir"] / "segments" / f"{seg['name']}.bcseg", 3000)
    elif target == "segment-manifest":
        _flip_byte(copy / seg["original_dir"] / "segments" / f"{seg['name']}.bcman", 100)
    elif target == "package-manifest":
        text = (copy / "manifest.json").read_text()
        (copy / "manifest.json").write_text(text.replace("顺城区人民法院", "顺城区人民法阮", 1))
    elif target == "report-hash-table":
        html = (copy / "report" / "report.html").read_text()
        digest = seg["segment_digest"]
        changed = digest[:10] + ("0" if digest[10] != "0" else "1") + digest[11:]
        (copy / "report" / "report.html").write_text(html.replace(digest, changed, 1))
    elif target == "attestation":
        att = json.loads((copy / "attestation.json").read_text())
        sig = bytearray(base64.b64decode(att["signature"]))
        sig[10] ^= 0x01
        att["signature"] = base64.b64encode(bytes(sig)).decode()
        (copy / "attestation.json").write_text(json.dumps(att))
    elif target == "audit-extract":
        _flip_byte(copy / "audit" / "audit.jsonl", 400)
    else:
        (copy / "media" / "extra.mp4").write_bytes(b"\x00" * 10)
    done = run_verifier(clean_python, copy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "NOT VERIFIED" in done.stdout and words in done.stdout, done.stdout


def test_the_verifier_checks_the_footage_itself_not_only_the_list(exported, tmp_path):
    """Even with manifest.json re-listed to match a changed media file (so only
    the archive's signature over the list would catch it), the recorder's
    signed fragment hashes catch the change."""
    from archive.standalone_verifier import verify_package

    _, result, _, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(result.path, copy)
    (copy / "attestation.json").unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    seg = manifest["segments"][0]
    _flip_byte(copy / seg["media_file"], 1500)
    from archive.standalone_verifier import Result, verify_segment, verify_seal_log
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    base = copy / seg["original_dir"]
    cert = x509.load_pem_x509_certificate((base / "identity" / "device.crt").read_bytes())
    key = cert.public_key()
    r = Result()
    ca = x509.load_pem_x509_certificate((copy / "trust" / "ca.crt").read_bytes())
    log = verify_seal_log(base / "seallog", seg["device"], key,
                          key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw), r, ca)
    with pytest.raises(ValueError, match="differ from what the recorder signed"):
        verify_segment(base / "segments" / f"{seg['name']}.bcseg", base / "segments" / f"{seg['name']}.bcman",
                       seg["device"], key, log, copy / seg["media_file"], r)
    with pytest.raises(Exception):
        verify_package(copy)  # and without the attestation the package is not even readable as one


def test_the_report_pdf_holds_the_hashes_and_renders(exported, tmp_path):
    _, result, _, _ = exported
    for tool in ("pdftotext", "pdftoppm"):
        if shutil.which(tool) is None:
            from .archive_rig import unavailable
            unavailable(f"{tool} not installed (Debian package poppler-utils)")
    pdf = result.path / "report" / "report.pdf"
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = text.replace("\n", "").replace(" ", "")
    manifest = json.loads((result.path / "manifest.json").read_text())
    for seg in manifest["segments"]:
        assert seg["segment_digest"] in flat and seg["media_sha256"] in flat
    for words in ("执法音视频证据包报告", "当事人", "某某餐饮有限公司", "核验通过可以证明", "核验不能证明", "拒不配合标记", "告知"):
        assert words in text, words
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True, capture_output=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and all(p.stat().st_size > 2000 for p in pages)
    from PIL import Image
    with Image.open(pages[0]) as img:
        assert img.convert("L").getextrema()[0] < 100  # there is ink on the first page


def test_the_register_keeps_what_went_to_whom_with_a_retained_copy(exported, tmp_path):
    rig, result, _, g = exported
    rows = register(rig.archive, None)
    assert len(rows) == 1
    row = rows[0]
    assert row["recipient"] == "顺城区人民法院" and row["grant_id"] == g.id and row["case_number"] == CASE
    assert row["package_sha256"] == result.package_sha256 and row["retained_blob"] == result.tar_sha256
    kept = rig.archive.store.confirm(row["retained_blob"])  # stored, locked, re-hashed
    assert kept.size == row["bytes"]
    with rig.archive.store.open(row["retained_blob"]) as src:
        (tmp_path / "kept.tar").write_bytes(src.read())
    with tarfile.open(tmp_path / "kept.tar") as tar:
        tar.extractall(tmp_path / "kept", filter="data")
    for p in result.path.rglob("*"):
        if p.is_file():
            assert (tmp_path / "kept" / p.relative_to(result.path)).read_bytes() == p.read_bytes()


def test_no_grant_no_package(exported, tmp_path):
    rig, _, keeper, g = exported
    acc = Accounts(rig.archive)
    officer, _ = acc.add(None, "zhao.lei", "赵磊", "officer", "correct horse battery", by="admin")
    with pytest.raises(AccessDenied):
        export_package(rig.archive, officer, g.id, tmp_path / "p1")
    Grants(rig.archive).revoke(Accounts(rig.archive).get("head"), g.id, reason="done")
    with pytest.raises(AccessDenied):
        export_package(rig.archive, keeper, g.id, tmp_path / "p2")
    assert not (tmp_path / "p1").exists() and not (tmp_path / "p2").exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_input_gets_a_clear_error_not_a_hang(exported, tmp_path):
    """A FIFO or a link inside a package, a FIFO given as the audit log, a folder
    that is not a package: named errors, never a traceback or a blocked read."""
    import os

    from click.testing import CliRunner

    from archive.standalone_verifier import verify_package
    from bodycam.cli import main as cli

    _, result, _, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(result.path, copy)
    os.mkfifo(copy / "media" / "pipe")
    (copy / "report" / "link.html").symlink_to(copy / "report" / "report.html")
    checked = verify_package(copy)
    assert not checked.passed
    assert any("media/pipe: not a regular file" in f for f in checked.failures)
    assert any("report/link.html: not a regular file" in f for f in checked.failures)
    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    out = CliRunner().invoke(cli, ["archive", "audit", "verify", "--log", str(fifo), "--ca",
                                   str(result.path / "trust" / "ca.crt")])
    assert out.exit_code == 2 and "not a regular file" in out.output
    (tmp_path / "empty").mkdir()
    out = CliRunner().invoke(cli, ["archive", "disc", str(tmp_path / "empty"), "--out", str(tmp_path / "x.iso")])
    assert out.exit_code == 2 and "not an evidence package" in out.output and not (tmp_path / "x.iso").exists()
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\xff\xfe not json")
    out = CliRunner().invoke(cli, ["archive", "audit", "verify", "--log", str(garbage), "--ca",
                                   str(result.path / "trust" / "ca.crt")])
    assert out.exit_code == 1 and "FAIL" in out.output and "Traceback" not in out.output


def test_a_refused_or_expired_export_grant_gets_no_package(exported, tmp_path):
    rig, _, keeper, _ = exported
    acc = Accounts(rig.archive)
    head = acc.get("head")
    grants = Grants(rig.archive)

    def decided(approve: bool):
        g = grants.request(keeper, grantee="li.na", actions=["export"], reason="复议", hours=1, case_number=CASE)
        code = next_totp(rig.clock, acc.totp_secret("head"))
        return grants.decide(head, g.id, approve=approve, totp=code)

    refused = decided(False)
    with pytest.raises(AccessDenied, match="refused"):
        export_package(rig.archive, keeper, refused.id, tmp_path / "refused")
    live = decided(True)
    rig.clock.advance(3600)
    with pytest.raises(AccessDenied, match="expired"):
        export_package(rig.archive, keeper, live.id, tmp_path / "expired")
    assert list(tmp_path.iterdir()) == []
    assert len(register(rig.archive, None)) == 1  # nothing new in the register


def _cut_newest(folder: Path, name: str) -> None:
    """What an attacker without the archive's key can do (format §7.6): cut the
    seal log at a record boundary before the segment's opening, drop it and
    every later segment, and make the (unsigned) excerpt.json agree with the
    cut log, re-signing nothing."""
    import os

    from cryptography import x509

    from archive.standalone_verifier import verify_recording

    from .mutate import records

    (log,) = sorted((folder / "seallog").iterdir())
    opened = [r for r in records(log) if b'"segment-opened"' in bytes(r.raw) and name.encode() in bytes(r.raw)]
    log.write_bytes(log.read_bytes()[: opened[0].offset])
    excerpt = json.loads((folder / "excerpt.json").read_text())
    ca = x509.load_pem_x509_certificate((folder.parent.parent / "trust" / "ca.crt").read_bytes())
    cut = verify_recording(folder, ca).log
    kept = {s["name"] for s in cut.segments.values()}
    for gone in [n for n in excerpt["segments"] if n not in kept]:
        for suffix in (".bcseg", ".bcman"):
            os.unlink(folder / "segments" / f"{gone}{suffix}")
    excerpt.update(segments=[n for n in excerpt["segments"] if n in kept], head_seq=len(cut.entries) - 1,
                   head_digest=cut.digests[-1])
    (folder / "excerpt.json").write_text(json.dumps(excerpt))


def test_the_package_carries_the_archives_log_head_attestation(exported, clean_python, tmp_path):
    """format §12.1: each device's originals come with the head the archive signed
    at docking; both the package's own verifier and `bodycam verify --attestation`
    accept it for the folder."""
    from click.testing import CliRunner

    from bodycam.cli import main

    rig, result, _, _ = exported
    manifest = json.loads((result.path / "manifest.json").read_text())
    devices = {s["device"] for s in manifest["segments"]}
    assert set(manifest["log_head_attestations"]) == devices
    for device, rel in manifest["log_head_attestations"].items():
        assert rel in manifest["files"]  # listed, so covered by the package attestation too
        assert json.loads((result.path / rel).read_text()) == rig.archive.log_head_attestation(device)
        folder = result.path / "originals" / device
        done = CliRunner().invoke(main, ["verify", "--json", "--ca", str(result.path / "trust" / "ca.crt"),
                                         "--attestation", str(result.path / rel), str(folder)])
        assert done.exit_code == 0, done.output
        assert json.loads(done.output)["recordings"][0]["attestation"]["status"] == "matched"
    done = run_verifier(clean_python, result.path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(log-head attestation): it was not cut below what the archive received" in done.stdout


@pytest.mark.parametrize("newest", [1, 2], ids=["newest-segment", "two-newest-segments"])
def test_a_seal_log_cut_with_its_newest_segments_fails_because_of_the_attestation(exported, clean_python,
                                                                                   tmp_path, newest):
    from cryptography import x509

    from archive.standalone_verifier import check_log_head, verify_recording

    _, result, _, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(result.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    seg = manifest["segments"][-newest]
    folder = copy / seg["original_dir"]
    ca = x509.load_pem_x509_certificate((copy / "trust" / "ca.crt").read_bytes())
    attestation = folder / "log-head-attestation.json"
    check_log_head(attestation, verify_recording(folder, ca), folder, ca)  # whole: passes
    _cut_newest(folder, seg["name"])
    cut = verify_recording(folder, ca)
    # the documented limit: on its own the cut folder is a clean recording (the dropped segments
    # are no longer on the chain, and excerpt.json is not signed) ...
    assert cut.status == "verified" and not cut.reasons, cut.reasons
    # ... but it does not reach the head the archive signed
    with pytest.raises(ValueError, match="entries were cut"):
        check_log_head(attestation, cut, folder, ca)
    done = run_verifier(clean_python, copy)
    assert done.returncode == 1, done.stdout
    assert f"log-head attestation of {seg['device']}" in done.stdout and "entries were cut" in done.stdout
