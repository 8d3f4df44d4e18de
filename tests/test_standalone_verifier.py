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
