"""The verifier catches every tampering and names the segment; no false alarms."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.sealing.clock import ManualClock
from device.sealing import pki
from device.sealing.format import (
    REC_CHECKPOINT,
    REC_HEADER,
    REC_LOG_ENTRY,
    REC_MANIFEST,
)
from device.sealing.state import SealingState
from device.sealing.verifier import Verifier

from .conftest import fragment_bytes, make_agency, record_segments
from .mutate import flip_byte, records, rewrite_signed


def verify(root: Path, agency, identity: bool = True):
    key = pki.load_x25519_key(agency.identity_path) if identity else None
    report, _ = Verifier(pki.load_cert(agency.ca_cert_path), key).verify_recording(root)
    return report


def seg(root: Path, name: str, suffix: str = ".bcseg") -> Path:
    return root / "segments" / f"{name}{suffix}"


def log_file(root: Path) -> Path:
    (path,) = sorted((root / "seallog").iterdir())
    return path


def by_name(report, name):
    (found,) = [s for s in report.segments if s.name == name]
    return found


# -- no false alarms ----------------------------------------------------------


def test_untouched_recording_verifies_with_and_without_identity(recording, agency):
    root, names = recording
    for identity in (False, True):
        report = verify(root, agency, identity)
        assert report.status == "verified", report
        assert [s.status for s in report.segments] == ["verified"] * 4
        assert [s.name for s in report.segments] == names
        assert all(s.fragments == 5 for s in report.segments)
        assert all(s.plaintext_checked is identity for s in report.segments)


def test_verification_never_modifies_input(recording, agency):
    root, names = recording
    flip_byte(seg(root, names[1]), 200)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    verify(root, agency)
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert before == after


# -- byte flips anywhere --------------------------------------------------------


@pytest.mark.parametrize("which", [0, 2, 3])
def test_flip_any_byte_of_a_segment_file(recording, agency, which, tmp_path):
    root, names = recording
    target = seg(root, names[which])
    pristine = target.read_bytes()
    offsets = sorted(set(range(0, len(pristine), 61)) | {len(pristine) - 1}
                     | {r.offset for r in records(target)} | {r.offset + 5 for r in records(target)})
    for offset in offsets:
        target.write_bytes(pristine)
        flip_byte(target, offset)
        report = verify(root, agency, identity=False)
        assert report.status != "verified", f"flip at {offset} not caught"
        assert by_name(report, names[which]).status == "failed", f"flip at {offset}"
        others = [s.status for s in report.segments if s.name != names[which]]
        assert others == ["verified"] * 3, f"flip at {offset} blamed another segment"


def test_flip_any_byte_of_a_manifest(recording, agency):
    root, names = recording
    target = seg(root, names[1], ".bcman")
    pristine = target.read_bytes()
    for offset in range(0, len(pristine), 7):
        target.write_bytes(pristine)
        flip_byte(target, offset)
        report = verify(root, agency, identity=False)
        assert by_name(report, names[1]).status == "failed", f"flip at {offset}"
        assert report.status != "verified"


def test_flip_any_byte_of_the_seal_log(recording, agency):
    root, _ = recording
    target = log_file(root)
    pristine = target.read_bytes()
    for offset in range(0, len(pristine), 13):
        target.write_bytes(pristine)
        flip_byte(target, offset)
        report = verify(root, agency, identity=False)
        assert report.status != "verified", f"flip at {offset} not caught"
        assert report.seal_log.status != "verified" or report.seal_log.reasons or any(
            s.status != "verified" for s in report.segments
        )


def test_ciphertext_flip_is_caught_without_the_key(recording, agency):
    root, names = recording
    target = seg(root, names[2])
    frag = [r for r in records(target) if r.rtype == 0x46][3]
    flip_byte(target, frag.end - 40)
    report = verify(root, agency, identity=False)
    bad = by_name(report, names[2])
    assert bad.status == "failed"
    assert any("altered data" in r for r in bad.reasons)


# -- truncation and deletion ---------------------------------------------------------


def test_truncated_sealed_segment_is_tampering_not_power_loss(recording, agency):
    root, names = recording
    target = seg(root, names[1])
    data = target.read_bytes()
    target.write_bytes(data[: len(data) - 500])
    bad = by_name(verify(root, agency), names[1])
    assert bad.status == "failed"


@pytest.mark.parametrize("which", [0, 1, 3], ids=["first", "middle", "last"])
def test_deleted_segment_is_named_missing(recording, agency, which):
    root, names = recording
    os.unlink(seg(root, names[which]))
    os.unlink(seg(root, names[which], ".bcman"))
    report = verify(root, agency)
    assert report.status == "failed"
    gone = by_name(report, names[which])
    assert gone.status == "missing"
    assert [s.status for s in report.segments if s.name != names[which]] == ["verified"] * 3


def test_deleted_manifest_is_caught(recording, agency):
    root, names = recording
    os.unlink(seg(root, names[2], ".bcman"))
    bad = by_name(verify(root, agency), names[2])
    assert bad.status == "failed"
    assert any("manifest missing" in r for r in bad.reasons)


def test_appended_bytes_are_caught(recording, agency):
    root, names = recording
    with open(seg(root, names[3]), "ab") as f:
        f.write(b"\x46" + b"\x00" * 60)
    assert by_name(verify(root, agency), names[3]).status == "failed"


# -- reorder, duplicate, splice, replay -------------------------------------------------


def test_reordered_segments_are_caught(recording, agency):
    root, names = recording
    for suffix in (".bcseg", ".bcman"):
        a, b = seg(root, names[1], suffix), seg(root, names[2], suffix)
        tmp = a.with_name("swap")
        a.rename(tmp), b.rename(a), tmp.rename(b)
    report = verify(root, agency)
    assert by_name(report, names[1]).status == "failed"
    assert by_name(report, names[2]).status == "failed"
    assert any("replayed or substituted" in r for r in by_name(report, names[1]).reasons)


def test_duplicated_segment_is_unlogged(recording, agency):
    root, names = recording
    for suffix in (".bcseg", ".bcman"):
        shutil.copy(seg(root, names[1], suffix), seg(root, names[1] + "_copy", suffix))
    report = verify(root, agency)
    assert by_name(report, names[1] + "_copy").status == "unlogged"
    assert report.status == "failed"


def test_replayed_older_segment_in_place_of_a_newer_one(recording, agency):
    root, names = recording
    for suffix in (".bcseg", ".bcman"):
        shutil.copy(seg(root, names[0], suffix), seg(root, names[3], suffix))
    bad = by_name(verify(root, agency), names[3])
    assert bad.status == "failed"


def test_segment_spliced_from_another_enrolled_device(recording, pristine, agency):
    root, names = recording
    other_root, other_names = pristine["B"]
    # Put B's segment 2 under A's name for segment 2, and add another one as extra.
    for suffix in (".bcseg", ".bcman"):
        shutil.copy(seg(other_root, other_names[2], suffix), seg(root, names[2], suffix))
        shutil.copy(seg(other_root, other_names[1], suffix), seg(root, other_names[1], suffix))
    report = verify(root, agency)
    bad = by_name(report, names[2])
    assert bad.status == "failed"
    assert any("signature" in r or "device" in r for r in bad.reasons)
    assert by_name(report, other_names[1]).status == "unlogged"


# -- re-signing and metadata edits ----------------------------------------------------------


def test_resigned_with_key_the_ca_never_certified(recording, agency):
    root, names = recording
    forger = Ed25519PrivateKey.generate()
    rewrite_signed(seg(root, names[1], ".bcman"), REC_MANIFEST,
                   lambda m: m.update(officer="999999"), resign_with=forger)
    bad = by_name(verify(root, agency), names[1])
    assert bad.status == "failed"
    assert any("signature does not verify" in r for r in bad.reasons)


def test_whole_recording_resigned_under_a_self_made_certificate(recording, agency, tmp_path):
    """A forger with their own 'CA' re-enrols the device: trust anchor catches it."""
    root, _ = recording
    rogue = make_agency(tmp_path / "rogue")
    cert = rogue.ca.issue(pki.ROLE_DEVICE, "A123456", Ed25519PrivateKey.generate().public_key())
    path = root / "identity" / "device.crt"
    path.chmod(0o644)
    path.unlink()
    pki.write_cert(path, cert)
    report = verify(root, agency)
    assert report.status == "failed"
    assert any("not issued by the agency CA" in r for r in report.reasons)


@pytest.mark.parametrize(
    "field,value",
    [("officer", "999999"), ("device", "Z999999"), ("opened_utc", "2026-01-01T00:00:00.000000Z"),
     ("clock_state", "untrusted"), ("prev_segment", None)],
)
def test_header_metadata_edit_is_caught(recording, agency, field, value):
    root, names = recording
    rewrite_signed(seg(root, names[2]), REC_HEADER, lambda h: h.update({field: value}))
    bad = by_name(verify(root, agency), names[2])
    assert bad.status == "failed"


@pytest.mark.parametrize(
    "field,value",
    [("officer", "999999"), ("device", "Z999999"), ("closed_utc", "2027-01-01T00:00:00.000000Z"),
     ("status", "truncated"), ("meta", {"test": False})],
)
def test_manifest_metadata_edit_is_caught(recording, agency, field, value):
    root, names = recording
    rewrite_signed(seg(root, names[1], ".bcman"), REC_MANIFEST, lambda m: m.update({field: value}))
    bad = by_name(verify(root, agency), names[1])
    assert bad.status == "failed"


def test_checkpoint_edit_is_caught(recording, agency):
    root, names = recording
    rewrite_signed(seg(root, names[0]), REC_CHECKPOINT, lambda c: c.update(fragments=1), nth=2)
    assert by_name(verify(root, agency), names[0]).status == "failed"


# -- seal log ---------------------------------------------------------------------------------


def _drop_log_records(root: Path, keep) -> None:
    path = log_file(root)
    data = path.read_bytes()
    recs = records(path)
    kept = data[:8] + b"".join(bytes(r.raw) for i, r in enumerate(recs) if keep(i, len(recs)))
    path.chmod(0o644)
    path.write_bytes(kept)


def test_dropped_middle_log_entry_is_caught(recording, agency):
    root, _ = recording
    _drop_log_records(root, lambda i, n: i != 4)
    report = verify(root, agency)
    # The good prefix (entries 0-3) still places the segments it names.
    assert report.seal_log.status == "broken" and report.seal_log.entries == 4
    assert any("sequence number" in r for r in report.seal_log.reasons)
    assert report.status == "failed"


def test_rolled_back_log_leaves_segments_unlogged(recording, agency):
    root, names = recording
    _drop_log_records(root, lambda i, n: i < n - 3)  # forget the last segment's entries
    report = verify(root, agency)
    assert report.status == "failed"
    assert by_name(report, names[3]).status == "unlogged"


def test_log_entry_edited_or_resigned_is_caught(recording, agency):
    root, _ = recording
    rewrite_signed(log_file(root), REC_LOG_ENTRY, lambda e: e["data"].update(fragments=2), nth=3)
    report = verify(root, agency)
    assert (report.seal_log.status, report.seal_log.entries, report.status) == ("broken", 3, "failed")
    rewrite_signed(log_file(root), REC_LOG_ENTRY, lambda e: None, nth=3,
                   resign_with=Ed25519PrivateKey.generate())
    report = verify(root, agency)
    assert (report.seal_log.status, report.seal_log.entries, report.status) == ("broken", 3, "failed")


def test_log_entries_reordered_are_caught(recording, agency):
    root, _ = recording
    path = log_file(root)
    data = path.read_bytes()
    recs = [bytes(r.raw) for r in records(path)]
    recs[2], recs[3] = recs[3], recs[2]
    path.write_bytes(data[:8] + b"".join(recs))
    report = verify(root, agency)
    assert (report.seal_log.status, report.seal_log.entries, report.status) == ("broken", 2, "failed")


# -- power loss is not tampering --------------------------------------------------------------


def test_power_cut_is_reported_as_truncation_not_forgery(agency, tmp_path):
    root = agency.enrol(tmp_path / "rec", "C111111")
    clock = ManualClock()
    record_segments(root, clock, segments=2)
    state = SealingState.open(root, clock)
    writer = state.open_segment("application/octet-stream", "010203")
    for i in range(6):
        clock.advance(1.0)
        writer.append(fragment_bytes(writer.seq, i))
    # The power fails in the middle of writing fragment 6.
    with open(writer.path, "ab") as f:
        f.write(b"\x46\x00\x00\x10\x00" + b"x" * 100)
    writer.abandon()
    state.log.close()
    os.close(state._lock_fd)

    after = SealingState.open(root, clock)
    assert after.recovered[0]["after_fragment"] == 6
    after.close()
    report = verify(root, agency)
    statuses = [s.status for s in report.segments]
    assert statuses == ["verified", "verified", "truncated"]
    assert report.status == "truncated"
    assert "power loss" in report.segments[2].reasons[0]
    assert report.segments[2].fragments == 6
    # Appending anything after recovery is tampering.
    with open(writer.path, "ab") as f:
        f.write(b"more")
    assert verify(root, agency).segments[2].status == "failed"


# -- rules that hold even when every signature is valid (docs/format.md §7.3) -----------------

import base64  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402

from cryptography import x509  # noqa: E402

from device.sealing.messages import CTX_RECEIPT, sign_message  # noqa: E402
from device.sealing.segment_file import read_manifest  # noqa: E402
from device.sealing.seallog import EV_DELETION, EV_RECEIPT, scan_log  # noqa: E402


def _delete_with(root: Path, name: str, seq: int, *, receipt: dict | None, digest: str | None = None,
                 sign_key=None) -> None:
    """Log (optionally) a receipt entry and a deletion with the device's own key, as a
    recorder or an adversary holding its key would, and remove the files."""
    segment = seg(root, name)
    real = read_manifest(segment.with_suffix(".bcman")).digest.hex()
    state = SealingState.open(root, ManualClock())
    try:
        if receipt is not None:
            raw = base64.b64decode(receipt["payload"])
            state.log_event(EV_RECEIPT, {"segment_seq": seq, "segment": name, "digest": digest or real,
                                         "archive": "archive-test", "retain_until": None,
                                         "receipt_sha256": hashlib.sha256(raw).hexdigest(),
                                         "receipt": receipt})
        for path in (segment, segment.with_suffix(".bcman")):
            path.unlink()
        state.log_event(EV_DELETION, {"segment_seq": seq, "segment": name, "digest": digest or real,
                                      "reason": "archive receipt"})
    finally:
        state.close()


def _receipt(agency, root: Path, name: str, seq: int, role=pki.ROLE_ARCHIVE_RECEIPT, digest=None):
    key_path = agency.root / f"{role}.key"
    if not key_path.exists():
        pki.issue_keypair(agency.ca, role, "archive-test", agency.root, stem=role)
    key, cert = pki.load_ed25519_key(key_path), pki.load_cert(key_path.with_suffix(".crt"))
    segment = seg(root, name)
    ctx = CTX_RECEIPT
    return sign_message(key, cert, {
        "ctx": ctx, "archive": "archive-test", "device": "A123456", "segment": name, "segment_seq": seq,
        "segment_digest": digest or read_manifest(segment.with_suffix(".bcman")).digest.hex(),
        "files": {"segment_sha256": "0" * 64, "manifest_sha256": "0" * 64},
        "stored_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "retain_until": None})


def test_deletion_with_a_valid_receipt_is_deleted_and_verifies(recording, agency):
    root, names = recording
    _delete_with(root, names[1], 1, receipt=_receipt(agency, root, names[1], 1))
    report = verify(root, agency)
    assert by_name(report, names[1]).status == "deleted"
    assert report.status == "verified", report.reasons


@pytest.mark.parametrize("forgery", ["no-receipt", "receipt-by-a-dock", "receipt-for-another-digest",
                                     "wrong-digest-in-deletion"])
def test_forged_deletion_leaves_the_segment_missing(recording, agency, forgery):
    root, names = recording
    if forgery == "no-receipt":
        _delete_with(root, names[2], 2, receipt=None)
    elif forgery == "receipt-by-a-dock":
        _delete_with(root, names[2], 2, receipt=_receipt(agency, root, names[2], 2, role=pki.ROLE_DOCK))
    elif forgery == "receipt-for-another-digest":
        _delete_with(root, names[2], 2, receipt=_receipt(agency, root, names[2], 2, digest="ab" * 32))
    else:
        _delete_with(root, names[2], 2, receipt=None, digest="cd" * 32)
    report = verify(root, agency)
    gone = by_name(report, names[2])
    assert gone.status == "missing", gone
    assert report.status == "failed"
    assert [s.status for s in report.segments if s.name != names[2]] == ["verified"] * 3


def test_deletion_of_a_segment_never_opened_fails(recording, agency):
    root, names = recording
    state = SealingState.open(root, ManualClock())
    state.log_event(EV_DELETION, {"segment_seq": 9, "segment": "A123456_010203_20990101000000_0009",
                                  "digest": "ab" * 32, "reason": "archive receipt"})
    state.close()
    report = verify(root, agency)
    assert report.status == "failed"
    assert any("never opened" in r for r in report.reasons)
    assert [s.status for s in report.segments] == ["verified"] * 4


def _device_cert(agency, root: Path, *, ca: bool = False, start=None, end=None) -> None:
    old = pki.load_cert(root / "identity" / "device.crt")
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(agency.ca.cert.subject)
               .public_key(old.public_key()).serial_number(old.serial_number)
               .not_valid_before(start or old.not_valid_before_utc)
               .not_valid_after(end or old.not_valid_after_utc)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
    path = root / "identity" / "device.crt"
    path.unlink()
    pki.write_cert(path, builder.sign(agency.ca.key, None))
    del now


def test_device_certificate_with_ca_true_fails(recording, agency):
    root, _ = recording
    _device_cert(agency, root, ca=True)
    report = verify(root, agency)
    assert report.status == "failed"
    assert any("CA:TRUE" in r for r in report.reasons)


def test_expired_certificate_still_verifies_what_it_signed_while_valid(agency, tmp_path):
    """Footage outlives certificates: judged at the signed time, not now."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    root = agency.enrol(tmp_path / "old", "E000001")
    _device_cert(agency, root, start=now - dt.timedelta(days=30), end=now - dt.timedelta(days=10))
    record_segments(root, ManualClock(now - dt.timedelta(days=20)), segments=2)
    assert verify(root, agency).status == "verified"
    # Signed after the certificate ended: fails, whatever "now" is.
    late = agency.enrol(tmp_path / "late", "E000002")
    _device_cert(agency, late, start=now - dt.timedelta(days=30), end=now - dt.timedelta(days=10))
    record_segments(late, ManualClock(now - dt.timedelta(days=5)), segments=1)
    report = verify(late, agency)
    assert report.status == "failed"
    assert any("not at" in r for s in report.segments for r in s.reasons)


def test_revocation_fails_footage_signed_after_it_only(agency, tmp_path):
    from device.sealing.revocation import load_crl, revoke
    from device.sealing.verifier import Verifier as V

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    root = agency.enrol(tmp_path / "lost", "R000001")
    clock = ManualClock(now)
    record_segments(root, clock, segments=1)
    clock.advance(3600)
    record_segments(root, clock, segments=1)
    ca_dir = tmp_path / "ca-copy"
    shutil.copytree(agency.ca_cert_path.parent, ca_dir)
    crl_path = revoke(pki.load_ca(ca_dir), ca_dir, pki.load_cert(root / "identity" / "device.crt"),
                      now + dt.timedelta(minutes=30))
    anchor = pki.load_cert(agency.ca_cert_path)
    report, _ = V(anchor, None, load_crl(crl_path, anchor)).verify_recording(root)
    assert [s.status for s in report.segments] == ["verified", "failed"]
    assert any("revoked" in r for r in report.segments[1].reasons)
    # A CRL not signed by the agency CA is refused, not used.
    rogue = make_agency(tmp_path / "rogue")
    with pytest.raises(pki.TrustError):
        load_crl(crl_path, rogue.ca.cert)


# -- the good prefix and the recorder's start in any state of its log (docs/format.md §5.2) -----


def test_one_malformed_entry_keeps_the_good_prefix(recording, agency):
    """A validly signed entry whose data is malformed counts like a bad signature."""
    root, names = recording
    key = pki.load_ed25519_key(root / "identity" / "device.key")
    # Entry 5 is segment 1's segment-sealed; its digest becomes a wrong type.
    rewrite_signed(log_file(root), REC_LOG_ENTRY, lambda e: e["data"].update(digest=12), nth=5,
                   resign_with=key)
    report = verify(root, agency)
    assert (report.seal_log.status, report.seal_log.entries) == ("broken", 5)
    assert any("malformed" in r for r in report.seal_log.reasons)
    assert report.segments[0].status == "verified"


def test_recorder_starts_after_a_corrupt_byte_in_an_old_log_file(recording, agency):
    root, names = recording
    # A second run adds a second log file; then a byte of the first one rots.
    record_segments(root, ManualClock(), segments=1)
    first, second = sorted((root / "seallog").iterdir())
    recs = records(first)
    flip_byte(first, recs[6].offset + 40)
    before = {p.name: p.read_bytes() for p in (root / "seallog").iterdir()}

    state = SealingState.open(root, ManualClock())  # must not raise
    writer = state.open_segment("application/octet-stream", "010203")
    writer.append(fragment_bytes(writer.seq, 0))
    writer.close({})
    state.close()
    after = {p.name: p.read_bytes() for p in (root / "seallog").iterdir()}
    assert all(after[name] == data for name, data in before.items())  # nothing rewritten
    (new,) = set(after) - set(before)
    assert int(new[:12]) == 6  # continues the good prefix, in a new file

    report = verify(root, agency)
    assert report.seal_log.status == "broken"
    by_seq = {s.seq: s.status for s in report.segments if s.seq is not None}
    assert by_seq[0] == "verified" and by_seq[1] == "verified"  # in the prefix
    assert by_seq[max(by_seq)] == "verified"  # recorded after the restart
    # What the break cut off was moved aside, never deleted: segments with their manifests.
    assert sorted((root / "segments" / "incomplete").iterdir())
    segments = root / "segments"
    assert [m.name for m in segments.glob("*.bcman") if not m.with_suffix(".bcseg").exists()] == []
    # And the recorder starts again, and again.
    SealingState.open(root, ManualClock()).close()


def test_a_segment_cut_off_by_a_broken_log_never_blocks_a_new_one_of_the_same_name(tmp_path, agency):
    """The recorder names a segment by its seq and its opening second; after a
    break cuts sealed segments off the chain, the next one reuses their seq.
    With the clock at the same second (an RTC set back, a restart within the
    second) the new name is the old one: the old files must already be aside."""
    import datetime as dt

    root = agency.enrol(tmp_path / "R", "R123456")
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    record_segments(root, ManualClock(start=start), segments=3, fragments=2)
    record_segments(root, ManualClock(start=start + dt.timedelta(hours=1)), segments=1)
    first = sorted((root / "seallog").iterdir())[0]
    entries = [e for e, _ in scan_log(root / "seallog").entries]
    opened = next(e for e in entries if e.event == "segment-opened" and e.data["segment_seq"] == 1)
    assert entries.index(opened) < len(records(first))  # in the first run's file
    flip_byte(first, records(first)[entries.index(opened)].offset + 40)  # segments 1 and 2 are cut off
    name = opened.data["segment"]
    state = SealingState.open(root, ManualClock(start=start + dt.timedelta(seconds=2)))  # segment 1's second
    try:
        writer = state.open_segment("application/octet-stream", "010203")
        assert writer.name == name  # the very same name
        writer.append(fragment_bytes(writer.seq, 0))
        writer.close({})
    finally:
        state.close()
    moved = sorted(p.name for p in (root / "segments" / "incomplete").iterdir())
    assert f"{name}.bcseg" in {n.rsplit(".", 1)[0] for n in moved} and f"{name}.bcman" in {
        n.rsplit(".", 1)[0] for n in moved}


@pytest.mark.parametrize("damage", ["torn-middle-of-file", "garbage-file", "bad-magic", "fifo", "link-to-zero",
                                    "empty-file", "malformed-last-entry"])
def test_recorder_starts_in_any_state_of_its_log(recording, agency, damage):
    root, names = recording
    logdir = root / "seallog"
    (first,) = sorted(logdir.iterdir())
    data = first.read_bytes()
    if damage == "torn-middle-of-file":
        first.write_bytes(data[: len(data) // 2])
    elif damage == "garbage-file":
        (logdir / "000000000010-00000000000000aa.log").write_bytes(os.urandom(500))
    elif damage == "bad-magic":
        first.write_bytes(b"XXXXXXXX" + data[8:])
    elif damage == "fifo":
        os.mkfifo(logdir / "000000000010-00000000000000bb.log")
    elif damage == "link-to-zero":
        os.symlink("/dev/zero", logdir / "000000000010-00000000000000cc.log")
    elif damage == "empty-file":
        (logdir / "000000000010-00000000000000dd.log").write_bytes(b"")
    else:
        key = pki.load_ed25519_key(root / "identity" / "device.key")
        rewrite_signed(first, REC_LOG_ENTRY, lambda e: e.update(data={"segment_seq": "x"}),
                       nth=len(records(first)) - 1, resign_with=key)
    state = SealingState.open(root, ManualClock())
    writer = state.open_segment("application/octet-stream", "010203")
    writer.append(fragment_bytes(writer.seq, 0))
    writer.close({})
    state.close()
    report = verify(root, agency)
    newest = [s for s in report.segments if s.seq is not None][-1]
    assert newest.status == "verified", (damage, report)


def test_dock_synced_time_catches_footage_backdated_after_revocation(agency, tmp_path):
    """A thief with the key sets the recorder's clock back; the dock sync on the chain
    still places the footage after the revocation."""
    from device.sealing.messages import CTX_CLOCK_SYNC
    from device.sealing.revocation import load_crl, revoke
    from device.sealing.verifier import Verifier as V

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    root = agency.enrol(tmp_path / "stolen", "S000001")
    clock = ManualClock(now)
    record_segments(root, clock, segments=1)
    dock_dir = tmp_path / "dock"
    pki.issue_keypair(agency.ca, pki.ROLE_DOCK, "dock-1", dock_dir)
    sync = sign_message(pki.load_ed25519_key(dock_dir / "dock.key"), pki.load_cert(dock_dir / "dock.crt"), {
        "ctx": CTX_CLOCK_SYNC, "device": "S000001", "offset_ns": "0", "measured_offset_ns": "0",
        "delay_ns": "1000", "dock_utc": (now + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "bay": 1})
    state = SealingState.open(root, ManualClock(now + dt.timedelta(hours=2)))
    state.log_event("clock-set", {"offset_ns": "0", "dock": "dock-1", "sync": sync})
    state.close()
    # Backdated: the device clock says 10 minutes after the first segment.
    record_segments(root, ManualClock(now + dt.timedelta(minutes=10)), segments=1)
    ca_dir = tmp_path / "ca-copy"
    shutil.copytree(agency.ca_cert_path.parent, ca_dir)
    crl = revoke(pki.load_ca(ca_dir), ca_dir, pki.load_cert(root / "identity" / "device.crt"),
                 now + dt.timedelta(hours=1))
    anchor = pki.load_cert(agency.ca_cert_path)
    report, _ = V(anchor, None, load_crl(crl, anchor)).verify_recording(root)
    assert [s.status for s in report.segments] == ["verified", "failed"]
    assert any("dock-synced" in r for r in report.segments[1].reasons)
    # Without the revocation both verify: the bound alone is not a fault.
    report, _ = V(anchor).verify_recording(root)
    assert [s.status for s in report.segments] == ["verified", "verified"]


def test_recorder_records_with_its_clock_before_its_certificates_notbefore(agency, tmp_path):
    """A recorder whose clock reads earlier than its certificates' notBefore (a lost RTC
    cell, no dock sync yet) still opens its state and records (Art. 23); the footage is
    then judged at its signed time, where the certificate was not yet valid."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    root = agency.enrol(tmp_path / "early", "F000001")
    later = now + dt.timedelta(days=3)
    _device_cert(agency, root, start=later, end=later + dt.timedelta(days=365))
    recipient = pki.load_cert(root / "identity" / "archive-recipient.crt")
    reissued = (x509.CertificateBuilder().subject_name(recipient.subject).issuer_name(agency.ca.cert.subject)
                .public_key(recipient.public_key()).serial_number(recipient.serial_number)
                .not_valid_before(later).not_valid_after(later + dt.timedelta(days=365)))
    for ext in recipient.extensions:
        reissued = reissued.add_extension(ext.value, critical=ext.critical)
    (root / "identity" / "archive-recipient.crt").unlink()
    pki.write_cert(root / "identity" / "archive-recipient.crt", reissued.sign(agency.ca.key, None))
    names = record_segments(root, ManualClock(start=now), segments=1, fragments=2)
    assert len(names) == 1 and (root / "segments" / f"{names[0]}.bcman").exists()
    report = verify(root, agency)
    assert report.status == "failed"
    assert any("certificate" in r for r in report.reasons + [x for s in report.segments for x in s.reasons])


# -- one reason per distinct problem ------------------------------------------------------


def _checkpoints_and_fragments(path: Path):
    kinds = records(path)
    return [r for r in kinds if r.rtype == REC_CHECKPOINT], [r for r in kinds if r.rtype == 0x46]


@pytest.mark.parametrize("fragment", [0, 2, 4])
def test_an_altered_fragment_is_one_reason_naming_the_checkpoints_it_breaks(recording, agency, fragment):
    """The chain is cumulative: one altered fragment makes every later checkpoint differ. The
    report says so once, with how many checkpoints and which fragments, not once per checkpoint."""
    root, names = recording
    target = seg(root, names[1])
    checkpoints, fragments = _checkpoints_and_fragments(target)
    assert len(checkpoints) == len(fragments) == 5  # one checkpoint after each fragment
    flip_byte(target, fragments[fragment].end - 40)
    bad = by_name(verify(root, agency, identity=False), names[1])
    assert bad.status == "failed"
    broken = checkpoints[fragment:]
    if len(broken) == 1:
        where = f"checkpoint at offset {broken[0].offset} (after fragment {fragment + 1})"
    else:
        where = (f"{len(broken)} of 5 checkpoints, at offsets {broken[0].offset} … {broken[-1].offset} "
                 f"(after fragments {fragment + 1} … 5)")
    assert bad.reasons == [f"{where}: chain differs from the fragments before it (altered data); the first "
                           f"altered fragment is fragment {fragment + 1} (counted from 1)"]


def test_distinct_checkpoint_problems_are_distinct_reasons(recording, agency):
    """A forged checkpoint signature and, after it, an altered fragment: two reasons, each once."""
    root, names = recording
    target = seg(root, names[2])
    checkpoints, fragments = _checkpoints_and_fragments(target)
    flip_byte(target, checkpoints[1].end - 10)  # inside the signature of the second checkpoint
    flip_byte(target, fragments[3].end - 40)
    bad = by_name(verify(root, agency, identity=False), names[2])
    assert bad.status == "failed"
    assert len(bad.reasons) == 2, bad.reasons
    assert bad.reasons[0] == (f"checkpoint at offset {checkpoints[1].offset} (after fragment 2): "
                              "signature does not verify")
    assert bad.reasons[1].startswith(f"2 of 5 checkpoints, at offsets {checkpoints[3].offset} … "
                                     f"{checkpoints[4].offset} (after fragments 4 … 5): chain differs")
    assert bad.reasons[1].endswith("the first altered fragment is fragment 4 (counted from 1)")


def test_an_altered_fragment_between_sparse_checkpoints_names_the_range(recording, agency):
    """Checkpoints after fragments 1, 3, 4, 5 (the one after fragment 2 cut out) and fragment 2
    altered: the first altered fragment is among fragments 2–3, reported once."""
    root, names = recording
    target = seg(root, names[0])
    checkpoints, _ = _checkpoints_and_fragments(target)
    data = target.read_bytes()
    target.write_bytes(data[:checkpoints[1].offset] + data[checkpoints[1].end:])
    checkpoints, fragments = _checkpoints_and_fragments(target)
    assert len(checkpoints) == 4 and len(fragments) == 5
    flip_byte(target, fragments[1].end - 40)
    bad = by_name(verify(root, agency, identity=False), names[0])
    assert bad.reasons == [f"3 of 4 checkpoints, at offsets {checkpoints[1].offset} … {checkpoints[3].offset} "
                           "(after fragments 3 … 5): chain differs from the fragments before it (altered data); "
                           "the first altered fragment is among fragments 2–3 (counted from 1)"]
