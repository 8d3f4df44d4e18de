"""Property-based tests: parsers meet arbitrary bytes with FormatError only."""

from __future__ import annotations

import shutil
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodycam.errors import FormatError, InputError
from device.sealing import pki
from device.sealing.format import (
    CTX_LOG,
    MAGIC_LOG,
    MAGIC_SEGMENT,
    REC_FRAGMENT,
    REC_HEADER,
    Record,
    TornTail,
    canonical_json,
    encode_record,
    iter_records,
    open_signed_body,
    parse_canonical,
)
from device.sealing.segment_file import parse_manifest, scan_segment
from device.sealing.seallog import parse_entry, read_chain
from device.sealing.messages import CTX_RECEIPT, open_message
from device.sealing import models
from device.sealing.verifier import Verifier

# Well-formed but hostile JSON: huge and deep numbers, lone surrogates, deep
# nesting, wrong types (spelled as JSON text, since Python's json would refuse
# to write some of them).
hostile_scalars = st.sampled_from([
    "9" * 5000, "-" + "9" * 400, "1e400", "1E-400", "-0", "0.0", "1.5", str(2**53), str(-(2**53)),
    str(2**64), '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"a\\ud83d"', "true", "null",
    "[]", "{}", '"x" ', "NaN", "Infinity", "-Infinity", '"\\ud83d\\ude00"',
    "[" * 50 + "]" * 50, '{"a":' * 40 + "1" + "}" * 40, "[" * 100000 + "]" * 100000,
])
CTXS = ["bodycam/v2/segment-header", "bodycam/v2/checkpoint", "bodycam/v2/manifest",
        "bodycam/v2/seal-log", "bodycam/v2/receipt"]


@st.composite
def hostile_payloads(draw):
    """A JSON object text with the format's field names and hostile values."""
    names = ["ctx", "v", "device", "seq", "segment_seq", "prev", "data", "meta", "fragments",
             "fragment_count", "mono_ns", "utc", "run", "event", "status", "truncated", "chain",
             "segment", "media", "officer", "wrapped_key", "file_bytes", "x"]
    keys = draw(st.lists(st.sampled_from(names), max_size=12, unique=True))
    parts = [f'"ctx":"{draw(st.sampled_from(CTXS))}"', '"v":2']
    for key in keys:
        if key in ("ctx", "v"):
            continue
        value = draw(hostile_scalars | json_values.map(lambda v: __import__("json").dumps(v)))
        parts.append(f'"{key}":{value}')
    return ("{" + ",".join(sorted(parts)) + "}").encode()


def signed_body(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload + bytes(64)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.text(max_size=20)
    .filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_canonical_json_round_trips(obj):
    encoded = canonical_json(obj)
    assert parse_canonical(encoded, "x") == obj
    assert canonical_json(parse_canonical(encoded, "x")) == encoded


@given(st.binary(max_size=200))
def test_parse_canonical_only_raises_format_error(data):
    try:
        parse_canonical(data, "x")
    except FormatError:
        pass


def test_non_canonical_spellings_are_refused():
    for spelling in (b'{"b":1,"a":2}', b'{"a": 1}', b'{"a":1.0}', b'{"a":1}\n'):
        with pytest.raises(FormatError):
            parse_canonical(spelling, "x")


@given(st.binary(max_size=300))
def test_iter_records_only_raises_format_error(tail):
    try:
        for item in iter_records(MAGIC_LOG + tail, "x", MAGIC_LOG, frozenset({0x4C})):
            assert isinstance(item, (Record, TornTail))
    except FormatError:
        pass


@given(st.lists(st.binary(max_size=50), max_size=5), st.integers(0, 400))
def test_any_cut_of_valid_records_is_a_torn_tail(bodies, cut):
    data = MAGIC_LOG + b"".join(encode_record(0x4C, b) for b in bodies)
    cut = min(cut, len(data))
    items = list(iter_records(data[:cut], "x", MAGIC_LOG, frozenset({0x4C})))
    whole = [i for i in items if isinstance(i, Record)]
    torn = [i for i in items if isinstance(i, TornTail)]
    assert len(torn) <= 1 and (not torn or items[-1] is torn[0])
    assert [bytes(r.body) for r in whole] == bodies[: len(whole)]


@given(st.binary(max_size=200))
def test_open_signed_body_only_raises_format_error(body):
    try:
        open_signed_body(body, "x", CTX_LOG)
    except FormatError:
        pass


@given(st.binary(min_size=0, max_size=100), st.integers(0, 2**32 - 1))
def test_signed_body_with_bad_length_field_is_refused(payload, length):
    body = struct.pack(">I", length) + payload + bytes(64)
    if length == len(payload):
        return
    with pytest.raises(FormatError):
        open_signed_body(body, "x", CTX_LOG)


@given(st.binary(max_size=300))
def test_scan_segment_only_raises_format_error(tail):
    try:
        scan_segment(MAGIC_SEGMENT + tail, "x")
    except FormatError:
        pass


def test_oversized_record_is_refused_not_allocated():
    data = MAGIC_SEGMENT + bytes([REC_FRAGMENT]) + struct.pack(">I", 2**31) + b"x" * 10
    with pytest.raises(FormatError, match="claims"):
        list(iter_records(data, "x", MAGIC_SEGMENT, frozenset({REC_HEADER, REC_FRAGMENT})))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_verifier_survives_random_corruption(pristine, agency, tmp_path_factory, data):
    """Random byte edits anywhere in a recording give a report, never a crash."""
    src, names = pristine["A"]
    root = tmp_path_factory.mktemp("fuzz") / "A"
    shutil.copytree(src, root)
    # What the verifier reads: the device certificate, the seal log, the segments.
    files = sorted([root / "identity" / "device.crt", *(root / "seallog").iterdir(),
                    *(root / "segments").iterdir()])
    target = data.draw(st.sampled_from(files))
    content = bytearray(target.read_bytes())
    target.chmod(0o644)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, max(0, len(content) - 1)))
        if content:
            content[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        content = content[: data.draw(st.integers(0, len(content)))]
    target.write_bytes(bytes(content))
    try:
        report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(root)
    except pki.TrustError:
        return
    if bytes(content) != (src / target.relative_to(root)).read_bytes():
        assert report.status != "verified", target


@settings(max_examples=300, deadline=None)
@given(hostile_payloads())
def test_every_reader_gives_a_verdict_on_hostile_json(payload):
    """Each reader of a signed body either parses it or raises FormatError."""
    body = signed_body(payload)
    for reader in (
        lambda: open_signed_body(body, "x", CTX_LOG),
        lambda: scan_segment(MAGIC_SEGMENT + encode_record(REC_HEADER, body), "x"),
        lambda: parse_manifest(b"BCMAN\x00\x02\n" + encode_record(0x4D, body), "x"),
        lambda: parse_entry(Record(0x4C, 8, 8 + 5 + len(body), memoryview(encode_record(0x4C, body))), "x"),
    ):
        try:
            reader()
        except FormatError:
            pass
    try:
        obj = parse_canonical(payload, "x")
    except FormatError:
        return
    for model in (models.SegmentHeader, models.Checkpoint, models.Manifest, models.LogEntryPayload,
                  models.SegmentSealedData, models.ReceiptData):
        try:
            models.parse_payload(model, obj, "x")
        except FormatError:
            pass


@pytest.mark.parametrize("text", [
    b'{"ctx":"bodycam/v2/segment-header","n":' + b"9" * 5000 + b',"v":2}',
    b'{"ctx":"bodycam/v2/segment-header","n":"\\ud800","v":2}',
    b'{"ctx":"bodycam/v2/segment-header","n":' + b"[" * 200000 + b"]" * 200000 + b',"v":2}',
    b'{"ctx":"bodycam/v2/segment-header","n":9007199254740992,"v":2}',
    b'{"ctx":"bodycam/v2/segment-header","n":1.0,"v":2}',
])
def test_the_reported_hostile_values_are_format_errors(text):
    with pytest.raises(FormatError):
        parse_canonical(text, "x")
    with pytest.raises(FormatError):
        scan_segment(MAGIC_SEGMENT + encode_record(REC_HEADER, signed_body(text)), "x")


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text() | st.binary(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=10))
def test_open_message_gives_a_verdict_on_anything(agency, message):
    ca = pki.load_cert(agency.ca_cert_path)
    for candidate in (message, {"payload": message, "signature": message, "certificate": message}):
        try:
            open_message(candidate, ca, CTX_RECEIPT, "x")
        except (FormatError, pki.TrustError):
            pass


def test_hostile_header_case_fails_that_segment_only(pristine, agency, tmp_path):
    """The hostile-header case handed over with the issue (kept in tests/cases/):
    no key, one rewritten header."""
    import subprocess
    import sys
    from pathlib import Path

    case = Path(__file__).resolve().parent / "cases" / "hostile-header.py"
    src, names = pristine["A"]
    root = tmp_path / "A"
    shutil.copytree(src, root)
    subprocess.run([sys.executable, str(case), str(root)], check=True, capture_output=True)
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(root)
    assert [s.status for s in report.segments] == ["verified", "failed", "verified", "verified"]
    assert report.status == "failed"
    with pytest.raises(__import__("bodycam.errors").errors.SegmentFailedError):
        report.segments[1].require()


# -- hostile payloads that carry a *valid* device signature --------------------------------

HOSTILE_VALUES = [None, True, 0, -1, 2**53 - 1, "", "x" * 300, "\u202e", [], {}, [[[[]]]], {"a": {"b": {}}},
                  "ffff", "0" * 64, "2026-13-45T99:99:99.000000Z"]


def _resign(path, rtype, nth, key, edit):
    from .mutate import rewrite_signed

    rewrite_signed(path, rtype, edit, nth=nth, resign_with=key)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_validly_signed_hostile_payloads_get_a_verdict(pristine, agency, tmp_path_factory, data):
    """The device key signs whatever its holder wants: a header, checkpoint, manifest or
    log entry with wrong types, missing or extra fields is a reason, never a crash."""
    src, names = pristine["A"]
    root = tmp_path_factory.mktemp("signed") / "A"
    shutil.copytree(src, root)
    for p in root.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    key = pki.load_ed25519_key(root / "identity" / "device.key")
    target_kind = data.draw(st.sampled_from(["header", "checkpoint", "manifest", "log"]))
    field = data.draw(st.sampled_from(["segment_seq", "device", "fragments", "chain", "status",
                                       "truncated", "data", "prev", "seq", "meta", "officer", "new"]))
    action = data.draw(st.sampled_from(["set", "delete"]))
    value = data.draw(st.sampled_from(HOSTILE_VALUES))

    def edit(obj):
        if action == "delete":
            obj.pop(field, None)
            obj.setdefault("extra", 1)  # make sure the payload changes
        else:
            obj[field] = value

    seg_path = root / "segments" / f"{names[2]}.bcseg"
    if target_kind == "header":
        _resign(seg_path, 0x48, 0, key, edit)
    elif target_kind == "checkpoint":
        _resign(seg_path, 0x43, 1, key, edit)
    elif target_kind == "manifest":
        _resign(seg_path.with_suffix(".bcman"), 0x4D, 0, key, edit)
    else:
        (log,) = (root / "seallog").iterdir()
        _resign(log, 0x4C, data.draw(st.integers(0, 9)), key, edit)
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(root)
    assert report.status in ("failed", "verified", "truncated")
    if target_kind != "log":
        assert [s.status for i, s in enumerate(report.segments) if i != 2] == ["verified"] * 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_recorder_starts_whatever_its_log_files_hold(pristine, agency, tmp_path_factory, data):
    """SealingState.open after random damage to the seal log: starts, never rewrites,
    and what it records next verifies."""
    from device.sealing.clock import ManualClock
    from device.sealing.state import SealingState

    src, _ = pristine["A"]
    root = tmp_path_factory.mktemp("start") / "A"
    shutil.copytree(src, root)
    (log,) = (root / "seallog").iterdir()
    content = bytearray(log.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        content = content[: data.draw(st.integers(0, len(content)))]
    log.chmod(0o644)
    log.write_bytes(bytes(content))
    before = log.read_bytes()
    state = SealingState.open(root, ManualClock())
    writer = state.open_segment("application/octet-stream", "010203")
    writer.append(b"after the damage" * 10)
    writer.close({})
    state.close()
    assert log.read_bytes() == before
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(root)
    newest = [s for s in report.segments if s.seq is not None][-1]
    assert newest.name == writer.name and newest.status == "verified", report


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_read_chain_gives_a_verdict_on_any_log_file(tmp_path_factory, tail):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    folder = tmp_path_factory.mktemp("log")
    (folder / "000000000000-0123456789abcdef.log").write_bytes(MAGIC_LOG + tail)
    (folder / "000000000001-0123456789abcdef.log").write_bytes(tail)
    chain = read_chain(folder, Ed25519PrivateKey.generate().public_key(), "A123456", bytes(32))
    assert chain.entries == []  # nothing chains without the device key


@settings(max_examples=150, deadline=None)
@given(hostile_payloads())
def test_attestation_and_excerpt_index_readers_are_total(tmp_path_factory, agency, payload):
    from device.sealing.attestation import load_attestation
    from device.sealing.excerpt import read_index

    folder = tmp_path_factory.mktemp("idx")
    (folder / "excerpt.json").write_bytes(payload)
    (folder / "att.json").write_bytes(payload)
    for reader in (lambda: read_index(folder),
                   lambda: load_attestation(folder / "att.json", pki.load_cert(agency.ca_cert_path))):
        try:
            reader()
        except (FormatError, pki.TrustError, InputError):  # InputError: over the file's size limit
            pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.data())
def test_certificate_key_and_crl_readers_are_total(agency, tmp_path_factory, noise, data):
    """PEM readers meet arbitrary bytes, and real PEM with bytes changed inside."""
    from device.sealing.revocation import parse_crl

    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from device.sealing.revocation import CRL_FILE, revoke

    ca = pki.load_cert(agency.ca_cert_path)
    crl_dir = agency.root / "fuzz-crl"
    if not (crl_dir / CRL_FILE).exists():
        crl_dir.mkdir(exist_ok=True)
        device = agency.ca.issue(pki.ROLE_DEVICE, "F000001", Ed25519PrivateKey.generate().public_key())
        revoke(agency.ca, crl_dir, device, dt.datetime.now(dt.timezone.utc))
    blobs = [noise]
    for source in (agency.ca_cert_path, crl_dir / CRL_FILE):
        real = bytearray(source.read_bytes())
        for _ in range(data.draw(st.integers(1, 4))):
            real[data.draw(st.integers(30, len(real) - 30))] = data.draw(st.sampled_from(b"ABCDEFabc019+/=\n"))
        blobs.append(bytes(real))
    folder = tmp_path_factory.mktemp("pem")
    for blob in (*blobs, b"-----BEGIN CERTIFICATE-----\n" + noise + b"\n-----END CERTIFICATE-----\n"):
        (folder / "f.pem").write_bytes(blob)
        for reader in (lambda: pki.parse_cert(blob, "x"), lambda: parse_crl(blob, ca, "x"),
                       lambda: pki.load_ed25519_key(folder / "f.pem"),
                       lambda: pki.load_x25519_key(folder / "f.pem")):
            try:
                reader()
            except pki.TrustError:
                pass
        try:
            cert = pki.parse_cert(blob, "x")
        except pki.TrustError:
            continue
        for check in (lambda: pki.check_ca_cert(cert, "x"),
                      lambda: pki.check_cert(cert, ca, pki.ROLE_DEVICE, "x", at=False),
                      lambda: (pki.cert_id(cert), pki.cert_role(cert), pki.fingerprint(cert))):
            try:
                check()
            except pki.TrustError:
                pass
