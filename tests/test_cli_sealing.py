"""The pki / verify / unseal commands: exit codes, messages, interop with openssl."""

from __future__ import annotations

import json
import subprocess
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from bodycam.cli import main
from device.sealing.format import REC_LOG_ENTRY

from .conftest import fragment_bytes
from .mutate import flip_byte, records


def run(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_verify_exit_codes_and_table(recording, agency):
    root, names = recording
    ok = run("verify", "--ca", agency.ca_cert_path, root)
    assert ok.exit_code == 0, ok.output
    assert "RESULT: VERIFIED" in ok.output and names[2] in ok.output
    flip_byte(root / "segments" / f"{names[2]}.bcseg", 300)
    bad = run("verify", "--ca", agency.ca_cert_path, root)
    assert bad.exit_code == 1
    assert "NOT VERIFIED" in bad.output and "failed" in bad.output


def test_verify_json_report(recording, agency):
    root, names = recording
    result = run("verify", "--json", "--identity", agency.identity_path, "--ca", agency.ca_cert_path, root)
    report = json.loads(result.output)
    assert result.exit_code == 0
    assert report["format"] == "bodycam-verify-report/2" and report["ok"] is True
    assert report["plaintext_checked"] is True
    segs = report["recordings"][0]["segments"]
    assert [s["name"] for s in segs] == names
    assert all(s["status"] == "verified" and s["plaintext_checked"] for s in segs)


@pytest.mark.parametrize(
    "args,message",
    [
        (["verify", "--ca", "{ca}", "/nonexistent/rec"], "/nonexistent/rec: recording folder does not exist"),
        (["verify", "--ca", "/nonexistent/ca.crt", "{root}"], "no trust anchor"),
        (["verify", "--ca", "{garbage}", "{root}"], "not a well-formed PEM X.509"),
        (["verify", "--ca", "{devcert}", "{root}"], "not an agency CA certificate"),
        (["verify", "--ca", "{ca}", "--identity", "{devkey}", "{root}"], "must be X25519"),
        (["verify", "--ca", "{ca}", "{segfile}"], ".bcseg: recording folder is a regular file, not a folder"),
        (["verify", "--ca", "{ca}"], "Missing argument"),
        (["unseal", "--ca", "{ca}", "{root}", "--out", "{out}"], "Missing option '--identity'"),
        (["pki", "enrol-device", "--ca-dir", "{cadir}", "--state", "{out}", "--device-id", "bad id",
          "--recipient-cert", "{recipient}"], "is not 7 characters"),
        (["pki", "init-ca", "--ca-dir", "{cadir}", "--agency", "X"], "never replaced"),
    ],
)
def test_bad_input_gives_exit_2_and_names_the_fault(recording, agency, tmp_path, args, message):
    root, names = recording
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"\x00not a cert")
    values = {
        "ca": agency.ca_cert_path, "root": root, "garbage": garbage,
        "devcert": root / "identity" / "device.crt", "devkey": root / "identity" / "device.key",
        "segfile": root / "segments" / f"{names[0]}.bcseg", "out": tmp_path / "out",
        "cadir": agency.ca_cert_path.parent, "recipient": agency.recipient_cert_path,
    }
    result = run(*[a.format(**{k: str(v) for k, v in values.items()}) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_unseal_writes_plain_media_and_metadata(recording, agency, tmp_path):
    root, names = recording
    out = tmp_path / "out"
    result = run("unseal", root, "--identity", agency.identity_path, "--ca", agency.ca_cert_path, "--out", out)
    assert result.exit_code == 0, result.output
    for seq, name in enumerate(names):
        media = (out / f"{name}.bin").read_bytes()
        assert media == b"".join(fragment_bytes(seq, i) for i in range(5))
        meta = json.loads((out / f"{name}.json").read_text())
        assert meta["verified"] is True and meta["status"] == "verified"
        assert meta["manifest"]["officer"] == "010203"
        assert "wrapped_key" not in meta["header"]
    again = run("unseal", root, "--identity", agency.identity_path, "--ca", agency.ca_cert_path, "--out", out)
    assert again.exit_code == 2 and "never overwrites" in again.output


def test_unseal_refuses_tampered_input_unless_unsafe(recording, agency, tmp_path):
    root, names = recording
    flip_byte(root / "segments" / f"{names[1]}.bcseg", 400)
    out = tmp_path / "out"
    refused = run("unseal", root, "--identity", agency.identity_path, "--ca", agency.ca_cert_path, "--out", out)
    assert refused.exit_code == 1 and "refused" in refused.output
    assert not out.exists()
    unsafe = run("unseal", root, "--identity", agency.identity_path, "--ca", agency.ca_cert_path,
                 "--out", out, "--unsafe-skip-verification")
    assert unsafe.exit_code == 1
    assert json.loads((out / f"{names[0]}.json").read_text())["verified"] is True
    flagged = json.loads((out / f"{names[1]}.json").read_text()) if (out / f"{names[1]}.json").exists() else None
    assert flagged is None or flagged["verified"] is False
    assert "UNVERIFIED" in unsafe.output or "cannot decrypt" in unsafe.output


def test_unseal_with_the_wrong_archive_identity_fails(recording, agency, tmp_path):
    from device.sealing import pki

    root, _ = recording
    other = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECIPIENT, "other", tmp_path / "other")
    result = run("unseal", root, "--identity", other, "--ca", agency.ca_cert_path, "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "does not decrypt with this archive identity" in result.output


def test_pki_commands_make_openssl_readable_files(tmp_path):
    ca_dir, arch, state = tmp_path / "ca", tmp_path / "arch", tmp_path / "state"
    assert run("pki", "init-ca", "--ca-dir", ca_dir, "--agency", "Shuncheng MR").exit_code == 0
    for role in ("archive-recipient", "archive-receipt", "dock"):
        r = run("pki", "issue", "--ca-dir", ca_dir, "--role", role, "--id", "station-1", "--out-dir", arch)
        assert r.exit_code == 0, r.output
    r = run("pki", "enrol-device", "--ca-dir", ca_dir, "--state", state, "--device-id", "A123456",
            "--recipient-cert", arch / "archive-recipient.crt")
    assert r.exit_code == 0, r.output
    key = state / "identity" / "device.key"
    assert key.stat().st_mode & 0o777 == 0o600
    for cert in (state / "identity" / "device.crt", arch / "dock.crt", arch / "archive-receipt.crt",
                 arch / "archive-recipient.crt"):
        out = subprocess.run(["openssl", "verify", "-CAfile", ca_dir / "ca.crt", cert],
                             capture_output=True, text=True)
        assert out.returncode == 0 and ": OK" in out.stdout, out.stderr
    shown = run("pki", "show", state / "identity" / "device.crt")
    assert "role        device" in shown.output and "A123456" in shown.output


def test_openssl_verifies_a_device_signature(recording, tmp_path):
    """A seal-log entry's signature checks out with plain openssl."""
    root, _ = recording
    (log,) = (root / "seallog").iterdir()
    body = bytes(next(r for r in records(log) if r.rtype == REC_LOG_ENTRY).body)
    (n,) = struct.unpack_from(">I", body)
    payload, sig = body[4 : 4 + n], body[4 + n :]
    ctx = json.loads(payload)["ctx"].encode()
    (tmp_path / "msg").write_bytes(ctx + b"\x00" + payload)
    (tmp_path / "sig").write_bytes(sig)
    pub = tmp_path / "pub.pem"
    subprocess.run(["openssl", "x509", "-in", root / "identity" / "device.crt", "-pubkey", "-noout",
                    "-out", pub], check=True)
    ok = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin",
                         "-in", tmp_path / "msg", "-sigfile", tmp_path / "sig"], capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    (tmp_path / "msg").write_bytes(ctx + b"\x00" + payload.replace(b"boot", b"bOot"))
    bad = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin",
                          "-in", tmp_path / "msg", "-sigfile", tmp_path / "sig"], capture_output=True)
    assert bad.returncode != 0


def test_demo_command_runs(tmp_path, monkeypatch):
    # As `make demo` calls it: a workdir relative to the current folder (the archive
    # config it writes resolves relative paths against its own folder), here with a
    # quote in its name (the config is TOML).
    monkeypatch.chdir(tmp_path)
    workdir = Path("demo") / 'run "1"'
    result = run("demo", "--workdir", workdir, "--seconds", "4", "--segment-seconds", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # What a newcomer follows: recorded and verified on the recorder, docked through the
    # archive service, verified again from the archive's copy, an approved export.
    assert any(l.startswith("on recorder") and l.endswith(", VERIFIED") for l in lines), result.output
    assert any(l.startswith("docking      dock station-1 -> archive service https://") for l in lines)
    assert any(l.startswith("docked       bay 1: done;") for l in lines), result.output
    assert any(l.startswith("verification VERIFIED from the archive") for l in lines), result.output
    assert "its own verifier says: VERIFIED" in result.output  # the approved export of one case (issue 11)
    again = run("demo", "--workdir", workdir)
    assert again.exit_code == 2 and "already holds a demo" in again.output


def test_unusable_paths_get_a_clear_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for args in (["demo", "--workdir", blocker / "demo"], ["pki", "init-ca", "--ca-dir", blocker / "ca", "--agency", "X"]):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert f"bodycam: error: {blocker}" in result.output


# -- what "verified" proves offline, and the archive's attestation (docs/format.md §7.8, §12.1) ---


def _cut_newest(root, names):
    """Cut the seal log at a record boundary and delete the newest segment with it."""
    import os

    (log,) = sorted((root / "seallog").iterdir())
    recs = records(log)
    opened = [r for r in recs if b'"segment-opened"' in bytes(r.raw)][-1]
    data = log.read_bytes()
    log.write_bytes(data[: opened.offset])
    for suffix in (".bcseg", ".bcman"):
        os.unlink(root / "segments" / f"{names[-1]}{suffix}")


def _attestation(agency, root, tmp_path):
    import datetime as dt

    from device.sealing import pki
    from device.sealing.attestation import sign_attestation
    from device.sealing.verifier import Verifier

    key_path = agency.root / "attest" / "archive-receipt.key"
    if not key_path.exists():
        pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-test", key_path.parent)
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(root)
    message = sign_attestation(
        pki.load_ed25519_key(key_path), pki.load_cert(key_path.with_suffix(".crt")),
        archive="archive-test", device=report.device, device_certificate=report.device_certificate,
        head_seq=report.seal_log.head_seq, head_digest=report.seal_log.head_digest,
        when=dt.datetime.now(dt.timezone.utc))
    path = tmp_path / "attestation.json"
    path.write_text(json.dumps(message))
    return path


def test_a_cut_log_with_its_newest_segment_verifies_offline_but_not_against_an_attestation(
        recording, agency, tmp_path):
    root, names = recording
    attestation = _attestation(agency, root, tmp_path)
    assert run("verify", "--ca", agency.ca_cert_path, "--attestation", attestation, root).exit_code == 0
    _cut_newest(root, names)
    # The documented limit of an offline check: nothing outside the recorder saw the cut entries.
    offline = run("verify", "--ca", agency.ca_cert_path, root)
    assert offline.exit_code == 0, offline.output
    attested = run("verify", "--json", "--ca", agency.ca_cert_path, "--attestation", attestation, root)
    assert attested.exit_code == 1
    rec = json.loads(attested.output)["recordings"][0]
    assert rec["attestation"]["status"] == "failed"
    assert any("entries were cut" in r for r in rec["reasons"])


def test_forged_attestation_is_refused(recording, agency, tmp_path):
    root, _ = recording
    path = _attestation(agency, root, tmp_path)
    message = json.loads(path.read_text())
    import base64

    payload = json.loads(base64.b64decode(message["payload"]))
    payload["head_seq"] += 5
    from device.sealing.format import canonical_json

    message["payload"] = base64.b64encode(canonical_json(payload)).decode()
    path.write_text(json.dumps(message))
    result = run("verify", "--ca", agency.ca_cert_path, "--attestation", path, root)
    assert result.exit_code == 2 and "signature does not verify" in result.output


def test_excerpt_verifies_alone_and_names_its_intentional_gaps(recording, agency, tmp_path):
    root, names = recording
    out = tmp_path / "case-2026-001"
    made = run("excerpt", root, "--segment", names[1], "--segment", names[2], "--out", out,
               "--purpose", "案件 2026-001", "--ca", agency.ca_cert_path)
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in (out / "segments").iterdir()) == sorted(
        f"{n}{s}" for n in names[1:3] for s in (".bcseg", ".bcman"))
    result = run("verify", "--json", "--ca", agency.ca_cert_path, out)
    assert result.exit_code == 0, result.output
    rec = json.loads(result.output)["recordings"][0]
    assert [s["status"] for s in rec["segments"]] == ["excluded", "verified", "verified", "excluded"]
    assert rec["excerpt"]["excluded"] == [names[0], names[3]]
    assert rec["excerpt"]["purpose"] == "案件 2026-001"
    # A chosen segment removed from the excerpt is missing, not excluded.
    for suffix in (".bcseg", ".bcman"):
        (out / "segments" / f"{names[2]}{suffix}").unlink()
    rec = json.loads(run("verify", "--json", "--ca", agency.ca_cert_path, out).output)["recordings"][0]
    assert rec["segments"][2]["status"] == "missing" and rec["status"] == "failed"


def test_excerpt_of_a_segment_the_recording_does_not_hold_is_bad_input(recording, agency, tmp_path):
    root, names = recording
    for name in ("NOPE_0000", "../../etc/passwd"):
        result = run("excerpt", root, "--segment", name, "--out", tmp_path / "x", "--ca", agency.ca_cert_path)
        assert result.exit_code == 2 and "no segment" in result.output and not (tmp_path / "x").exists()


def test_excerpt_refuses_a_segment_that_does_not_verify(recording, agency, tmp_path):
    root, names = recording
    flip_byte(root / "segments" / f"{names[1]}.bcseg", 300)
    result = run("excerpt", root, "--segment", names[1], "--out", tmp_path / "x", "--ca", agency.ca_cert_path)
    assert result.exit_code == 1 and names[1] in result.output


def test_pki_revoke_and_verify_crl(recording, agency, tmp_path):
    import shutil

    root, names = recording
    ca_dir = tmp_path / "ca"
    shutil.copytree(agency.ca_cert_path.parent, ca_dir)
    future = run("pki", "revoke", "--ca-dir", ca_dir, "--cert", root / "identity" / "device.crt",
                 "--at", "2099-01-01T00:00:00Z")
    assert future.exit_code == 0, future.output
    assert run("verify", "--ca", agency.ca_cert_path, "--crl", ca_dir / "crl.pem", root).exit_code == 0
    past = run("pki", "revoke", "--ca-dir", ca_dir, "--cert", root / "identity" / "device.crt",
               "--at", "2000-01-01T00:00:00Z")
    assert past.exit_code == 0
    result = run("verify", "--ca", agency.ca_cert_path, "--crl", ca_dir / "crl.pem", root)
    assert result.exit_code == 1 and "revoked" in result.output
    assert run("pki", "revoke", "--ca-dir", ca_dir, "--cert", root / "identity" / "device.crt",
               "--at", "yesterday").exit_code == 2


def test_require_raises_the_typed_error_of_the_first_fault(recording, agency, tmp_path):
    import pytest

    from bodycam.errors import AttestationError, SegmentMissingError, VerificationError
    from device.sealing import pki
    from device.sealing.attestation import load_attestation
    from device.sealing.verifier import Verifier

    root, names = recording
    anchor = pki.load_cert(agency.ca_cert_path)
    attestation = load_attestation(_attestation(agency, root, tmp_path), anchor)
    report, _ = Verifier(anchor).verify_recording(root, attestation)
    report.require()  # verified: returns
    _cut_newest(root, names)
    report, _ = Verifier(anchor).verify_recording(root, attestation)
    with pytest.raises(AttestationError):
        report.require()
    for suffix in (".bcseg", ".bcman"):
        (root / "segments" / f"{names[0]}{suffix}").unlink()
    report, _ = Verifier(anchor).verify_recording(root)
    with pytest.raises(SegmentMissingError) as caught:
        report.require()
    assert isinstance(caught.value, VerificationError) and isinstance(caught.value, ValueError)
    assert caught.value.report is report.segments[0]
