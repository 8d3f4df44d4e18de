"""The dock on the verifier's fail-closed API: hostile bytes in one segment, deletions the
archive never received, a receipt entry that carries its receipt."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import struct

from device.sealing import pki
from device.sealing.messages import CTX_RECEIPT, sign_message
from device.sealing.seallog import EV_DELETION, EV_RECEIPT
from device.sealing.segment_file import read_manifest

from .dockrig import make_rig


def test_hostile_header_fails_one_segment_and_the_others_are_archived(agency, tmp_path):
    rig = make_rig(agency, tmp_path)
    try:
        names = rig.record(3)
        target = rig.state / "segments" / f"{names[1]}.bcseg"
        payload = b'{"ctx":"bodycam/v2/segment-header","n":' + b"9" * 5000 + b',"v":2}'
        body = struct.pack(">I", len(payload)) + payload + bytes(64)
        magic = target.read_bytes()[:8]
        target.chmod(0o644)
        target.write_bytes(magic + struct.pack(">BI", 0x48, len(body)) + body)
        progress = rig.dock()
        assert progress.segments_archived == 2
        assert any(f.startswith(names[1]) and "failed" in f for f in progress.flagged)
        assert rig.on_recorder() == {names[1]}
    finally:
        rig.close()


def test_receipt_entry_carries_the_signed_receipt(agency, tmp_path):
    rig = make_rig(agency, tmp_path)
    try:
        names = rig.record(1)
        rig.dock()
        (entry,) = [e for e in rig.sealing.log.entries if e.event == EV_RECEIPT]
        message = entry.data["receipt"]
        assert hashlib.sha256(base64.b64decode(message["payload"])).hexdigest() == entry.data["receipt_sha256"]
        assert rig.on_recorder() == set() and entry.data["segment"] == names[0]
    finally:
        rig.close()


def test_deletion_the_archive_never_received_is_flagged(agency, tmp_path):
    """A receipt from another archive of the agency: the deletion counts, but this
    archive does not hold the segment, and the dock says so."""
    rig = make_rig(agency, tmp_path)
    try:
        names = rig.record(2)
        other = pki.issue_keypair(agency.ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-2", tmp_path / "other")
        seg = rig.state / "segments" / f"{names[0]}.bcseg"
        digest = read_manifest(seg.with_suffix(".bcman")).digest.hex()
        message = sign_message(pki.load_ed25519_key(other), pki.load_cert(other.with_suffix(".crt")), {
            "ctx": CTX_RECEIPT, "archive": "archive-2", "device": "D000001", "segment": names[0],
            "segment_seq": 0, "segment_digest": digest,
            "files": {"segment_sha256": "0" * 64, "manifest_sha256": "0" * 64},
            "stored_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "retain_until": None})
        raw = base64.b64decode(message["payload"])
        rig.sealing.log_event(EV_RECEIPT, {
            "segment_seq": 0, "segment": names[0], "digest": digest, "archive": "archive-2",
            "retain_until": None, "receipt_sha256": hashlib.sha256(raw).hexdigest(), "receipt": message})
        for path in (seg, seg.with_suffix(".bcman")):
            path.chmod(0o644)
            path.unlink()
        rig.sealing.log_event(EV_DELETION, {"segment_seq": 0, "segment": names[0], "digest": digest,
                                            "reason": "archive receipt"})
        progress = rig.dock()
        assert any(f.startswith(names[0]) and "never received" in f for f in progress.flagged)
        assert progress.segments_archived == 1
    finally:
        rig.close()


def test_clock_a_year_off_is_synced(agency, tmp_path):
    """An offset beyond JSON's exact integers (2^53 ns ≈ 104 days) travels as a decimal string."""
    rig = make_rig(agency, tmp_path)
    try:
        rig.clock.advance(-400 * 86400)
        before = rig.clock.utc_now()
        rig.dock()
        (entry,) = [e for e in rig.sealing.log.entries if e.event == "clock-set"]
        offset = int(entry.data["offset_ns"])
        assert offset > 2**53 and abs(offset - 400 * 86400 * 10**9) < 60 * 10**9
        assert (rig.clock.utc_now() - before).days >= 399
    finally:
        rig.close()
