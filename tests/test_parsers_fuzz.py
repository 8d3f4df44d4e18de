"""Property-based tests: parsers meet arbitrary bytes with FormatError only."""

from __future__ import annotations

import shutil
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodycam.errors import FormatError
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
from device.sealing.segment_file import scan_segment
from device.sealing.verifier import Verifier

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
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
