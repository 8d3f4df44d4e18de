"""The standalone verifier shipped in evidence packages (archive/standalone_verifier.py:
standard library + cryptography only) against every committed test vector
(docs/format.md §10): the main recording, and each negative and edge case in
tests/vectors/cases/ with the report it must give.  It must also agree with the
independent reader of tests/test_vectors.py and with the project's verifier,
and its RFC 8785 serialiser with the rfc8785 package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import rfc8785
from cryptography import x509

from archive import standalone_verifier as sv

from .test_vectors import CASES, EXPECTED, REC, VEC, case, independent_report

CA = x509.load_pem_x509_certificate((VEC / "keys" / "ca" / "ca.crt").read_bytes())


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir()))
def test_standalone_verifier_gives_each_case_its_expected_report(name):
    rec, exp = case(name)
    got = sv.verify_recording(rec, CA).short()
    assert got == exp
    assert got == independent_report(rec)


def test_standalone_verifier_on_the_main_recording():
    rep = sv.verify_recording(REC, CA)
    assert rep.status == "verified" and rep.log.status == "verified", rep
    assert rep.log.digests == [e["digest"] for e in EXPECTED["log"]]
    assert [s.digest for s in rep.segments] == [s["segment_digest"] for s in EXPECTED["segments"]]
    assert [s.status for s in rep.segments] == ["verified", "verified"]


def test_standalone_verifier_command_line_exit_status(tmp_path):
    script = Path(sv.__file__)
    ok = subprocess.run([sys.executable, "-I", str(script), "--recording", str(REC),
                         "--ca", str(VEC / "keys" / "ca" / "ca.crt"), "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["recording"] == "verified"
    rec, exp = case("forged-deletion")
    bad = subprocess.run([sys.executable, "-I", str(script), "--recording", str(rec),
                          "--ca", str(VEC / "keys" / "ca" / "ca.crt"), "--json"], capture_output=True, text=True)
    assert bad.returncode == 1 and json.loads(bad.stdout)["segments"] == exp["segments"]


@pytest.mark.parametrize("value", [
    {"b": 1, "a": "é", "c": [True, False, None, -(2**53 - 1), 2**53 - 1]},
    {"\u20ac": 1, "\U0001f600": 2, "\ufb33": 3, "a\nb": "\u0001\u001f\u007f\"\\/"},  # UTF-16 order, escapes
    {"nested": {"z": {"y": [{"x": ""}]}}, "当事人": "案由 😀"},
])
def test_canonical_json_is_rfc_8785(value):
    assert sv.canonical_json(value) == rfc8785.dumps(value)
    assert sv.parse_canonical(rfc8785.dumps(value)) == value


@pytest.mark.parametrize("text", [
    b'{"a":1.0}', b'{"a":1e3}', b'{"a":9007199254740992}', b'{"b":1,"a":2}', b'{"a":1,"a":1}',
    b'{ "a":1}', b'{"a":"\\u00e9"}', b'{"a":"\\ud800"}', b'{"a":NaN}', b'[1]', b'\xef\xbb\xbf{}',
    b'{"a":' + b"[" * 16 + b"]" * 16 + b"}",
])
def test_other_spellings_and_values_outside_the_profile_are_refused(text):
    with pytest.raises(ValueError):
        sv.parse_canonical(text)


def _project_short(rec: Path, ca_path: Path, crl_path: Path | None = None) -> dict:
    from device.sealing import pki
    from device.sealing.revocation import load_crl
    from device.sealing.verifier import Verifier

    ca = pki.load_cert(ca_path)
    report, _ = Verifier(ca, crl=load_crl(crl_path, ca) if crl_path else None).verify_recording(rec)
    return {"recording": report.status.value, "seal_log": report.seal_log.status.value,
            "log_entries": report.seal_log.entries,
            "segments": [{"name": s.name, "seq": s.seq, "status": s.status.value, "fragments": s.fragments}
                         for s in report.segments]}


def test_certificate_time_and_revocation_agree_with_the_project(agency, tmp_path):
    """§7.1: validity is judged at the signed time, and a CRL refuses what was
    signed at or after the revocation date, not what was signed before."""
    import datetime as dt

    from device.sealing import pki
    from device.sealing.clock import ManualClock
    from device.sealing.revocation import revoke

    from .conftest import record_segments

    ca = x509.load_pem_x509_certificate(agency.ca_cert_path.read_bytes())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    # Signed a day before the device certificate was issued (a clock set back).
    early = agency.enrol(tmp_path / "early", "T000001")
    record_segments(early, ManualClock(start=now - dt.timedelta(days=1)), segments=2, fragments=2)
    got = sv.verify_recording(early, ca).short()
    assert got == _project_short(early, agency.ca_cert_path)
    assert got["recording"] == "failed" and {s["status"] for s in got["segments"]} == {"failed"}
    # Revoked between two segments: the first still verifies, the second fails.
    late = agency.enrol(tmp_path / "late", "T000002")
    clock = ManualClock(start=now)
    record_segments(late, clock, segments=1, fragments=2)
    clock.advance(10)
    revoked_from = clock.utc_now()
    clock.advance(10)
    record_segments(late, clock, segments=1, fragments=2)
    (tmp_path / "ca-dir").mkdir()
    crl_path = revoke(agency.ca, tmp_path / "ca-dir", pki.load_cert(late / "identity" / "device.crt"), revoked_from)
    got = sv.verify_recording(late, ca, sv.load_crl(crl_path.read_bytes(), ca)).short()
    assert got == _project_short(late, agency.ca_cert_path, crl_path)
    assert [s["status"] for s in got["segments"]] == ["verified", "failed"] and got["recording"] == "failed"
    assert sv.verify_recording(late, ca).short()["recording"] == "verified"  # without the CRL


def test_hostile_folders_are_reported_not_read_and_agree_with_the_project(tmp_path):
    """§2 "Hostile folders": a FIFO named like a log file is a break, a link in
    segments/ is a problem, and neither is opened (no hang)."""
    import os
    import shutil

    rec = tmp_path / "rec"
    shutil.copytree(REC, rec)
    os.mkfifo(rec / "seallog" / "000000000999-0123456789abcdef.log")
    got = sv.verify_recording(rec, CA).short()
    assert got == _project_short(rec, VEC / "keys" / "ca" / "ca.crt")
    assert got["seal_log"] == "broken" and got["recording"] == "failed"
    assert [s["status"] for s in got["segments"]] == ["verified", "verified"]  # the good prefix still places them
    os.unlink(rec / "seallog" / "000000000999-0123456789abcdef.log")
    (rec / "segments" / "extra.bcseg").symlink_to("/dev/zero")
    got = sv.verify_recording(rec, CA)
    assert got.short() == _project_short(rec, VEC / "keys" / "ca" / "ca.crt")
    assert got.status == "failed" and any("symbolic link" in r for r in got.reasons)
    # A FIFO where the device certificate belongs: exit 2 with a named error, not a hang.
    (rec / "identity" / "device.crt").unlink()
    os.mkfifo(rec / "identity" / "device.crt")
    done = subprocess.run([sys.executable, "-I", str(Path(sv.__file__)), "--recording", str(rec),
                           "--ca", str(VEC / "keys" / "ca" / "ca.crt")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "device certificate is not a regular file" in done.stderr


@pytest.mark.parametrize("base", ["recording", "cases/deletion-with-receipt", "cases/excerpt",
                                  "cases/truncated-uncovered"])
def test_one_changed_or_cut_file_gets_the_same_report_from_both_verifiers(base, tmp_path):
    """A flipped bit or a cut at spread offsets of every file (certificate, log,
    segments, manifests, excerpt index): the standalone verifier's report equals
    the project verifier's each time."""
    import shutil

    src = VEC / base / "recording" if base.startswith("cases/") else VEC / base
    files = sorted(p for p in src.rglob("*") if p.is_file())
    checked = 0
    for f in files:
        size = f.stat().st_size
        for off in sorted({0, 5, size // 3, size // 2, size - 70, size - 1} & set(range(size))):
            for mode in ("flip", "cut"):
                rec = tmp_path / f"m{checked}"
                shutil.copytree(src, rec)
                target = rec / f.relative_to(src)
                data = bytearray(target.read_bytes())
                if mode == "flip":
                    data[off] ^= 0x01
                else:
                    del data[off:]
                target.write_bytes(bytes(data))
                got = sv.verify_recording(rec, CA).short()
                assert got == _project_short(rec, VEC / "keys" / "ca" / "ca.crt"), (f, off, mode)
                checked += 1
                shutil.rmtree(rec)
    assert checked > 50
