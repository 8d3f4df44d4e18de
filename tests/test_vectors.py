"""The committed test vectors, checked by a second, minimal implementation.

This file deliberately does not import the project's format code: it reads
the bytes as docs/format.md describes them, with hashlib, cryptography and
rfc8785 (the canonical JSON of §2.1) only, so a drift between the code and
the document shows up here.  Only the tests named ``..._project_...`` run the
project's verifier, to check it agrees.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
import base64

import pytest
import rfc8785
from cryptography.x509 import BasicConstraints, load_pem_x509_certificate

VEC = Path(__file__).parent / "vectors"
REC = VEC / "recording"
EXPECTED = json.loads((VEC / "expected.json").read_text())
CASES = VEC / "cases"
SEG_MAGIC, MAN_MAGIC, LOG_MAGIC = b"BCSEG\x00\x02\n", b"BCMAN\x00\x02\n", b"BCLOG\x00\x02\n"


def records(data: bytes, magic: bytes, allow_torn: bool = False):
    assert data[:8] == magic
    pos, out = 8, []
    while pos < len(data):
        if len(data) - pos < 5:
            break
        rtype, length = struct.unpack_from(">BI", data, pos)
        if pos + 5 + length > len(data):
            break
        out.append((rtype, data[pos : pos + 5 + length]))
        pos += 5 + length
    assert allow_torn or pos == len(data)
    return out


def signed(record: bytes):
    body = record[5:]
    (n,) = struct.unpack_from(">I", body)
    payload, sig = body[4 : 4 + n], body[4 + n :]
    obj = json.loads(payload)
    assert rfc8785.dumps(obj) == payload  # RFC 8785 (JCS), §2.1
    assert obj["v"] == 2
    return obj, payload, sig


def device_key(rec: Path = REC):
    cert = load_pem_x509_certificate((rec / "identity" / "device.crt").read_bytes())
    return cert.public_key()


def check_sig(obj, payload, sig, rec: Path = REC):
    device_key(rec).verify(sig, obj["ctx"].encode() + b"\x00" + payload)


def leaf(record: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + record).digest()


def test_seal_log_vector():
    raw = device_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    anchor = hashlib.sha256(b"\x02" + b"bodycam/v2/seal-log-anchor\x00" + raw).digest()
    assert anchor.hex() == EXPECTED["log_anchor"]
    (log,) = (REC / "seallog").iterdir()
    prev = anchor
    got = []
    for rtype, rec in records(log.read_bytes(), LOG_MAGIC):
        assert rtype == 0x4C
        obj, payload, sig = signed(rec)
        check_sig(obj, payload, sig)
        assert obj["ctx"] == "bodycam/v2/seal-log" and bytes.fromhex(obj["prev"]) == prev
        prev = leaf(rec)
        got.append({"seq": obj["seq"], "event": obj["event"], "digest": prev.hex()})
    assert got == EXPECTED["log"]


def test_segment_vectors():
    identity = serialization.load_pem_private_key((VEC / "keys" / "archive-recipient.key").read_bytes(), None)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    plaintexts = json.loads((VEC / "plaintexts.json").read_text())
    for expected in EXPECTED["segments"]:
        data = (REC / "segments" / f"{expected['name']}.bcseg").read_bytes()
        recs = records(data, SEG_MAGIC)
        assert recs[0][0] == 0x48
        header, payload, sig = signed(recs[0][1])
        check_sig(header, payload, sig)
        header_digest = leaf(recs[0][1])
        assert header_digest.hex() == expected["header_digest"]
        chain = hashlib.sha256(b"\x01" + bytes(32) + header_digest).digest()
        assert chain.hex() == expected["chain_after_header"]
        info = b"bodycam/v2/segment-key\x00" + rfc8785.dumps(
            {"device": header["device"], "segment_seq": header["segment_seq"]})
        key = suite.decrypt(bytes.fromhex(header["wrapped_key"]), identity, info)
        aead = ChaCha20Poly1305(key)
        chains, count = [], 0
        for rtype, rec in recs[1:]:
            if rtype == 0x46:
                index, pt_digest = struct.unpack_from(">Q32s", rec, 5)
                assert index == count
                nonce = bytes(4) + struct.pack(">Q", index)
                aad = b"bodycam/v2/fragment\x00" + header_digest + struct.pack(">Q", index)
                plain = aead.decrypt(nonce, rec[5 + 40 :], aad)
                assert hashlib.sha256(plain).digest() == pt_digest
                assert plain.decode() == plaintexts[f"{expected['name']}/{index}"]
                chain = hashlib.sha256(b"\x01" + chain + leaf(rec)).digest()
                chains.append(chain.hex())
                count += 1
            else:
                assert rtype == 0x43
                cp, payload, sig = signed(rec)
                check_sig(cp, payload, sig)
                assert cp["fragments"] == count and cp["chain"] == chain.hex()
        assert chains == expected["chain_after_fragment"]
        mrecs = records((REC / "segments" / f"{expected['name']}.bcman").read_bytes(), MAN_MAGIC)
        manifest, payload, sig = signed(mrecs[0][1])
        check_sig(manifest, payload, sig)
        assert manifest["chain"] == chain.hex() and manifest["file_bytes"] == len(data)
        assert leaf(mrecs[0][1]).hex() == expected["segment_digest"]


def test_project_verifier_agrees_with_the_vectors():
    from device.sealing import pki
    from device.sealing.verifier import Verifier

    verifier = Verifier(pki.load_cert(VEC / "keys" / "ca" / "ca.crt"),
                        pki.load_x25519_key(VEC / "keys" / "archive-recipient.key"))
    report, _ = verifier.verify_recording(REC)
    assert report.status == "verified", report
    assert [s.digest for s in report.segments] == [s["segment_digest"] for s in EXPECTED["segments"]]


def test_receipt_vector():
    """A signed message (§12), checked from its bytes."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    message = json.loads((VEC / "receipt.json").read_text())
    payload = base64.b64decode(message["payload"])
    obj = json.loads(payload)
    assert rfc8785.dumps(obj) == payload
    cert = load_pem_x509_certificate(message["certificate"].encode())
    ca = load_pem_x509_certificate((VEC / "keys" / "ca" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string().startswith("CN=archive-vectors,OU=archive-receipt")
    key = cert.public_key()
    assert isinstance(key, Ed25519PublicKey)
    key.verify(base64.b64decode(message["signature"]), b"bodycam/v2/receipt\x00" + payload)
    segment = EXPECTED["segments"][0]
    assert obj["segment_digest"] == segment["segment_digest"] and obj["segment"] == segment["name"]
    seg = REC / "segments" / f"{segment['name']}.bcseg"
    assert obj["files"]["segment_sha256"] == hashlib.sha256(seg.read_bytes()).hexdigest()
    from device.sealing.messages import CTX_RECEIPT, open_message

    assert open_message(message, ca, CTX_RECEIPT, "vector").payload == obj


# -- negative and edge vectors (tests/vectors/cases/, docs/format.md §10) ------------


def log_entries(rec: Path):
    """The seal log's entries, file by file as named, with the torn tails (§5.2)."""
    out, torn = [], []
    for path in sorted((rec / "seallog").iterdir()):
        data = path.read_bytes()
        recs = records(data, LOG_MAGIC, allow_torn=True)
        used = 8 + sum(len(r) for _, r in recs)
        if used != len(data):
            torn.append(path.name)
        for _, rec_bytes in recs:
            obj, payload, sig = signed(rec_bytes)
            out.append((path.name, obj, payload, sig, leaf(rec_bytes)))
    return out, torn


def chain_ok(rec: Path) -> int:
    """How many entries chain from the anchor with valid signatures (the good prefix)."""
    raw = device_key(rec).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    prev = hashlib.sha256(b"\x02" + b"bodycam/v2/seal-log-anchor\x00" + raw).digest()
    count = 0
    for name, obj, payload, sig, digest in log_entries(rec)[0]:
        if obj["seq"] != count or bytes.fromhex(obj["prev"]) != prev or obj["run"] != name[13:29]:
            break
        try:
            check_sig(obj, payload, sig, rec)
        except Exception:  # noqa: BLE001 - any failure ends the good prefix
            break
        prev, count = digest, count + 1
    return count


def case(name):
    return CASES / name / "recording", json.loads((CASES / name / "expected.json").read_text())


def test_case_torn_segment_is_a_cut_sealed_file():
    rec, exp = case("torn-segment")
    bad = [s for s in exp["segments"] if s["status"] == "failed"]
    data = (rec / "segments" / f"{bad[0]['name']}.bcseg").read_bytes()
    recs = records(data, SEG_MAGIC, allow_torn=True)
    assert 8 + sum(len(r) for _, r in recs) < len(data)  # ends inside a record
    man, _, _ = signed(records((rec / "segments" / f"{bad[0]['name']}.bcman").read_bytes(), MAN_MAGIC)[0][1])
    assert man["status"] == "complete" and man["file_bytes"] > len(data)
    assert exp["recording"] == "failed"


def test_case_truncated_segment_names_its_uncovered_bytes():
    rec, exp = case("truncated-uncovered")
    (t,) = [s for s in exp["segments"] if s["status"] == "truncated"]
    data = (rec / "segments" / f"{t['name']}.bcseg").read_bytes()
    man, payload, sig = signed(records((rec / "segments" / f"{t['name']}.bcman").read_bytes(), MAN_MAGIC)[0][1])
    check_sig(man, payload, sig, rec)
    tr = man["truncated"]
    assert man["status"] == "truncated" and tr["uncovered_bytes"] > 0
    assert tr["covered_bytes"] + tr["uncovered_bytes"] == len(data) == man["file_bytes"]
    assert hashlib.sha256(data[tr["covered_bytes"]:]).hexdigest() == tr["uncovered_sha256"]
    events = [obj["event"] for _, obj, *_ in log_entries(rec)[0]]
    assert "unclean-stop" in events and exp["recording"] == "truncated"


def test_case_multifile_log_with_a_torn_older_file():
    rec, exp = case("multifile-torn-older")
    entries, torn = log_entries(rec)
    files = sorted(p.name for p in (rec / "seallog").iterdir())
    assert len(files) == 2 and torn == [files[0]]
    assert int(files[1][:12]) == sum(1 for e in entries if e[0] == files[0])
    assert chain_ok(rec) == len(entries) == exp["log_entries"]
    assert exp["recording"] == "verified"


def test_case_deletion_counts_only_with_a_receipt():
    ca = load_pem_x509_certificate((VEC / "keys" / "ca" / "ca.crt").read_bytes())
    rec, exp = case("deletion-with-receipt")
    entries = [e[1] for e in log_entries(rec)[0]]
    (receipt,) = [e for e in entries if e["event"] == "receipt"]
    (deletion,) = [e for e in entries if e["event"] == "deletion"]
    assert receipt["seq"] < deletion["seq"]
    message = receipt["data"]["receipt"]
    payload = base64.b64decode(message["payload"])
    cert = load_pem_x509_certificate(message["certificate"].encode())
    cert.verify_directly_issued_by(ca)
    cert.public_key().verify(base64.b64decode(message["signature"]), b"bodycam/v2/receipt\x00" + payload)
    assert json.loads(payload)["segment_digest"] == deletion["data"]["digest"] == receipt["data"]["digest"]
    assert [s["status"] for s in exp["segments"]] == ["deleted", "verified"]
    rec, exp = case("forged-deletion")
    entries = [e[1] for e in log_entries(rec)[0]]
    assert any(e["event"] == "deletion" for e in entries)
    assert not any(e["event"] == "receipt" for e in entries)
    assert [s["status"] for s in exp["segments"]] == ["verified", "missing"]
    assert exp["recording"] == "failed"


def test_case_overlapping_segments_prev_segment():
    rec, exp = case("overlapping-segments")
    entries = [e[1] for e in log_entries(rec)[0]]
    last_sealed, expected_prev = None, {}
    for e in entries:
        if e["event"] == "segment-opened":
            expected_prev[e["data"]["segment"]] = last_sealed
        elif e["event"] == "segment-sealed":
            last_sealed = e["data"]["digest"]
    opened = [e["data"]["segment_seq"] for e in entries if e["event"] == "segment-opened"]
    sealed = [e["data"]["segment_seq"] for e in entries if e["event"] == "segment-sealed"]
    assert opened == [0, 1, 2] and sealed == [1, 0, 2]  # 1 opened and sealed while 0 was open
    for name, prev in expected_prev.items():
        header, _, _ = signed(records((rec / "segments" / f"{name}.bcseg").read_bytes(), SEG_MAGIC)[0][1])
        assert header["prev_segment"] == prev
    assert exp["recording"] == "verified"


def test_case_non_ascii_text_is_utf8_not_escaped():
    rec, exp = case("non-ascii")
    (seg,) = (rec / "segments").glob("*.bcman")
    raw = seg.read_bytes()
    assert "当事人".encode() in raw and "😀".encode() in raw and b"\\u" not in raw
    man, payload, sig = signed(records(raw, MAN_MAGIC)[0][1])
    check_sig(man, payload, sig, rec)
    assert exp["recording"] == "verified"


def test_case_each_failure_status_has_a_vector():
    statuses = set()
    logs = set()
    for folder in CASES.iterdir():
        exp = json.loads((folder / "expected.json").read_text())
        statuses |= {s["status"] for s in exp["segments"]}
        logs.add(exp["seal_log"])
    assert {"failed", "missing", "unlogged", "truncated", "open", "deleted"} <= statuses
    assert {"verified", "broken", "failed"} <= logs


def test_case_log_broken_keeps_the_good_prefix():
    rec, exp = case("log-broken")
    assert chain_ok(rec) == exp["log_entries"] == 4
    assert exp["seal_log"] == "broken"


def test_case_device_certificate_with_ca_true_fails():
    rec, exp = case("device-cert-ca-true")
    cert = load_pem_x509_certificate((rec / "identity" / "device.crt").read_bytes())
    assert cert.extensions.get_extension_for_class(BasicConstraints).value.ca
    assert exp["recording"] == "failed"


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir()))
def test_project_verifier_agrees_with_each_case(name):
    from device.sealing import pki
    from device.sealing.verifier import Verifier

    rec, exp = case(name)
    report, _ = Verifier(pki.load_cert(VEC / "keys" / "ca" / "ca.crt")).verify_recording(rec)
    got = {
        "recording": report.status.value, "seal_log": report.seal_log.status.value,
        "log_entries": report.seal_log.entries,
        "segments": [{"name": s.name, "seq": s.seq, "status": s.status.value, "fragments": s.fragments}
                     for s in report.segments],
    }
    assert got == exp


def test_case_excerpt_places_its_segment_and_names_the_gaps():
    rec, exp = case("excerpt")
    index = json.loads((rec / "excerpt.json").read_text())
    assert index["format"] == "bodycam-excerpt/2"
    entries = [e for e in log_entries(rec)[0]]
    assert chain_ok(rec) == len(entries) == exp["log_entries"]
    assert entries[-1][1]["seq"] == index["head_seq"] and entries[-1][4].hex() == index["head_digest"]
    held = {p.name[:-6] for p in (rec / "segments").glob("*.bcseg")}
    assert held == set(index["segments"])
    opened = [e[1]["data"]["segment"] for e in entries if e[1]["event"] == "segment-opened"]
    assert [s["status"] for s in exp["segments"]] == [
        "verified" if name in held else "excluded" for name in opened]
    # The seal log places the chosen segment: its sealed digest is the manifest's leaf.
    for name in held:
        (sealed,) = [e[1] for e in entries if e[1]["event"] == "segment-sealed" and e[1]["data"]["segment"] == name]
        mrec = records((rec / "segments" / f"{name}.bcman").read_bytes(), MAN_MAGIC)[0][1]
        assert leaf(mrec).hex() == sealed["data"]["digest"]


def test_attestation_vector():
    """The archive's signed log head (§12.1) names the recording's last entry."""
    message = json.loads((VEC / "attestation.json").read_text())
    payload = base64.b64decode(message["payload"])
    obj = json.loads(payload)
    assert rfc8785.dumps(obj) == payload and obj["ctx"] == "bodycam/v2/log-head-attestation"
    cert = load_pem_x509_certificate(message["certificate"].encode())
    cert.verify_directly_issued_by(load_pem_x509_certificate((VEC / "keys" / "ca" / "ca.crt").read_bytes()))
    assert "OU=archive-receipt" in cert.subject.rfc4514_string()
    cert.public_key().verify(base64.b64decode(message["signature"]),
                             b"bodycam/v2/log-head-attestation\x00" + payload)
    assert (obj["head_seq"], obj["head_digest"]) == (EXPECTED["log"][-1]["seq"], EXPECTED["log"][-1]["digest"])


def test_project_verifier_agrees_with_the_attestation_vector():
    from device.sealing import pki
    from device.sealing.attestation import load_attestation
    from device.sealing.verifier import Verifier

    ca = pki.load_cert(VEC / "keys" / "ca" / "ca.crt")
    report, _ = Verifier(ca).verify_recording(REC, load_attestation(VEC / "attestation.json", ca))
    assert report.status == "verified" and report.attestation["status"] == "matched"


# -- a second verifier, from docs/format.md alone (§5.2, §7.1-§7.5, §10.1) ----------------
#
# Written against the document, not the code: statuses for every case must come out
# exactly as the case's expected.json says.  (Certificate time, revocation and dock bounds
# are not exercised by the cases; the end-entity rule is.)

import os  # noqa: E402
import re  # noqa: E402

LOG_NAME = re.compile(r"[0-9]{12}-[0-9a-f]{16}\.log")
HEX = re.compile(r"[0-9a-f]{64}")


def _jcs_payload(rec_bytes: bytes, ctx: str):
    """(obj, payload, sig) of a signed record, or None if §2.1 is not met."""
    body = rec_bytes[5:]
    if len(body) < 68:
        return None
    (n,) = struct.unpack_from(">I", body)
    if 4 + n + 64 != len(body) or n > 1 << 20:
        return None
    payload, sig = body[4 : 4 + n], body[4 + n :]
    try:
        obj = json.loads(payload.decode("utf-8"))
        if not isinstance(obj, dict) or rfc8785.dumps(obj) != payload:
            return None
    except (ValueError, rfc8785.CanonicalizationError, RecursionError):
        return None
    if obj.get("ctx") != ctx or obj.get("v") != 2:
        return None
    return obj, payload, sig


def _sig_ok(pub, obj, payload, sig) -> bool:
    try:
        pub.verify(sig, obj["ctx"].encode() + b"\x00" + payload)
        return True
    except Exception:  # noqa: BLE001 - InvalidSignature
        return False


INTERPRETED = {
    "segment-opened": {"segment_seq", "segment", "header_digest", "media"},
    "segment-sealed": {"segment_seq", "segment", "digest", "status", "fragments"},
    "unclean-stop": {"segment_seq", "segment", "after_fragment", "uncovered_bytes"},
    "receipt": {"segment_seq", "segment", "digest", "archive", "retain_until", "receipt_sha256", "receipt"},
    "deletion": {"segment_seq", "segment", "digest", "reason"},
}


def _entry_ok(obj) -> bool:
    keys = {"ctx", "v", "device", "seq", "prev", "utc", "mono_ns", "run", "event", "data"}
    if set(obj) != keys or not isinstance(obj["data"], dict) or not isinstance(obj["seq"], int):
        return False
    want = INTERPRETED.get(obj["event"])
    if want is None:
        return True
    have = set(obj["data"]) - ({"recovered"} if obj["event"] == "segment-sealed" else set())
    return have == want and isinstance(obj["data"]["segment_seq"], int)


def _walk_log(rec: Path, pub, device: str):
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    prev = hashlib.sha256(b"\x02" + b"bodycam/v2/seal-log-anchor\x00" + raw).digest()
    names = sorted(n for n in os.listdir(rec / "seallog") if LOG_NAME.fullmatch(n))
    entries, breaks, torn_last = [], 0, False
    for idx, name in enumerate(names):
        data = (rec / "seallog" / name).read_bytes()
        if data[:8] != LOG_MAGIC:
            if not (len(data) < 8 and LOG_MAGIC.startswith(data)):
                breaks += 1
            continue
        pos, first = 8, True
        while pos < len(data):
            if len(data) - pos < 5:
                torn_last |= idx == len(names) - 1
                break
            rtype, length = struct.unpack_from(">BI", data, pos)
            if rtype != 0x4C or length > 64 << 20:
                breaks += 1
                break
            if pos + 5 + length > len(data):
                torn_last |= idx == len(names) - 1
                break
            rec_bytes = data[pos : pos + 5 + length]
            if first and int(name[:12]) != len(entries):
                breaks += 1
                break
            first = False
            parsed = _jcs_payload(rec_bytes, "bodycam/v2/seal-log")
            if (parsed is None or not _entry_ok(parsed[0]) or parsed[0]["seq"] != len(entries)
                    or parsed[0]["run"] != name[13:29] or parsed[0]["device"] != device
                    or parsed[0]["prev"] != prev.hex() or not _sig_ok(pub, *parsed)):
                breaks += 1
                break
            prev = leaf(rec_bytes)
            entries.append((parsed[0], prev))
            pos += 5 + length
    status = "failed" if not entries else "broken" if breaks else "truncated" if torn_last else "verified"
    return entries, status


def _receipt_ok(data, sealed_digest, device, ca) -> bool:
    message = data["receipt"]
    try:
        payload = base64.b64decode(message["payload"])
        cert = load_pem_x509_certificate(message["certificate"].encode())
        cert.verify_directly_issued_by(ca)
        cert.public_key().verify(base64.b64decode(message["signature"]), b"bodycam/v2/receipt\x00" + payload)
        obj = json.loads(payload)
    except Exception:  # noqa: BLE001 - any fault: not a valid receipt
        return False
    return ("OU=archive-receipt" in cert.subject.rfc4514_string()
            and hashlib.sha256(payload).hexdigest() == data["receipt_sha256"]
            and data["digest"] == sealed_digest
            and (obj.get("device"), obj.get("segment"), obj.get("segment_seq"), obj.get("segment_digest"))
            == (device, data["segment"], data["segment_seq"], data["digest"]))


def _check_segment(rec, name, pub, device, seq, ev, last_and_torn):
    """(status, covered fragments) of a present segment, §7.4."""
    data = (rec / "segments" / f"{name}.bcseg").read_bytes()
    if data[:8] != SEG_MAGIC:
        return "failed", 0
    recs = records(data, SEG_MAGIC, allow_torn=True)
    torn = 8 + sum(len(r) for _, r in recs) != len(data)
    if not recs or recs[0][0] != 0x48:
        return "failed", 0
    parsed = _jcs_payload(recs[0][1], "bodycam/v2/segment-header")
    if parsed is None or not _sig_ok(pub, *parsed):
        return "failed", 0
    header = parsed[0]
    hd = leaf(recs[0][1])
    if (header["device"], header["segment_seq"], header["segment"]) != (device, seq, name) \
            or hd.hex() != ev["opened"]["data"]["header_digest"] or header["prev_segment"] != ev["prev"] \
            or header["run"] != ev["opened"]["run"]:
        return "failed", 0
    chain = hashlib.sha256(b"\x01" + bytes(32) + hd).digest()
    chains, digests, covered, ends, pos = [], [], 0, {0: len(recs[0][1]) + 8}, 8 + len(recs[0][1])
    for rtype, rb in recs[1:]:
        pos += len(rb)
        if rtype == 0x46:
            index, pt = struct.unpack_from(">Q32s", rb, 5)
            if index != len(chains):
                return "failed", 0
            chain = hashlib.sha256(b"\x01" + chain + leaf(rb)).digest()
            chains.append(chain)
            digests.append(pt.hex())
        elif rtype == 0x43:
            cp = _jcs_payload(rb, "bodycam/v2/checkpoint")
            if cp is None or not _sig_ok(pub, *cp) or cp[0]["fragments"] != len(chains) \
                    or cp[0]["chain"] != chain.hex() or (cp[0]["device"], cp[0]["segment_seq"]) != (device, seq):
                return "failed", 0
            covered = len(chains)
            ends[covered] = pos
        else:
            return "failed", 0
    man_path = rec / "segments" / f"{name}.bcman"
    if not man_path.exists():
        return ("failed", 0) if ev.get("sealed") else ("open", covered)
    mrecs = records(man_path.read_bytes(), MAN_MAGIC, allow_torn=True)
    if len(mrecs) != 1 or 8 + len(mrecs[0][1]) != len(man_path.read_bytes()):
        return "failed", 0
    mp = _jcs_payload(mrecs[0][1], "bodycam/v2/manifest")
    if mp is None or not _sig_ok(pub, *mp):
        return "failed", 0
    m = mp[0]
    same = ("device", "segment_seq", "segment", "media", "officer", "opened_utc", "opened_local",
            "timezone", "clock_state", "prev_segment")
    sealed = ev.get("sealed")
    if any(m[k] != header[k] for k in same) or m["header_digest"] != hd.hex():
        return "failed", 0
    if sealed is None and not last_and_torn or sealed is not None and sealed["data"]["digest"] != leaf(mrecs[0][1]).hex():
        return "failed", 0
    n = m["fragment_count"]
    if n > len(chains) or m["chain"] != (chains[n - 1] if n else hashlib.sha256(
            b"\x01" + bytes(32) + hd).digest()).hex():
        return "failed", 0
    if [f["sha256"] for f in m["fragments"]] != digests[:n] or m["file_bytes"] != len(data):
        return "failed", 0
    if m["status"] == "complete":
        ok = n == len(chains) and not torn and ends.get(n) == len(data) and m["truncated"] is None
        return ("verified", n) if ok else ("failed", 0)
    t = m["truncated"]
    if (t is None or t["covered_bytes"] != ends.get(n) or t["after_fragment"] != n
            or hashlib.sha256(data[t["covered_bytes"]:]).hexdigest() != t["uncovered_sha256"]
            or not ev.get("unclean")):
        return "failed", 0
    return "truncated", n


def independent_report(rec: Path) -> dict:
    ca = load_pem_x509_certificate((VEC / "keys" / "ca" / "ca.crt").read_bytes())
    cert = load_pem_x509_certificate((rec / "identity" / "device.crt").read_bytes())
    failed = {"recording": "failed", "seal_log": "failed", "log_entries": 0, "segments": []}
    try:
        cert.verify_directly_issued_by(ca)
        if cert.extensions.get_extension_for_class(BasicConstraints).value.ca:
            return failed
    except Exception:  # noqa: BLE001
        return failed
    device = cert.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    pub = cert.public_key()
    entries, log_status = _walk_log(rec, pub, device)
    problems, segs, last_sealed = 0, {}, None
    for obj, _ in entries:
        d, ev = obj["data"], obj["event"]
        if ev == "segment-opened":
            if d["segment_seq"] != len(segs):
                problems += 1
                continue
            segs[d["segment_seq"]] = {"opened": obj, "prev": last_sealed, "name": d["segment"]}
        elif ev in INTERPRETED:
            s = segs.get(d["segment_seq"])
            if s is None or s["name"] != d["segment"]:
                problems += 1
            elif ev == "segment-sealed":
                s["sealed"], last_sealed = obj, d["digest"]
            elif ev == "unclean-stop":
                s["unclean"] = obj
            elif ev == "receipt":
                if s.get("sealed") and _receipt_ok(d, s["sealed"]["data"]["digest"], device, ca):
                    s["receipt"] = obj
                else:
                    problems += 1
            elif ev == "deletion":
                if s.get("receipt") and d["digest"] == s["sealed"]["data"]["digest"]:
                    s["deletion"] = obj
                else:
                    problems += 1
    index_path = rec / "excerpt.json"
    chosen = set(json.loads(index_path.read_text())["segments"]) if index_path.exists() else None
    present = {p.name[:-6] for p in (rec / "segments").glob("*.bcseg")}
    out = []
    for seq, s in sorted(segs.items()):
        name = s["name"]
        if name not in present:
            status = ("deleted" if s.get("deletion") else
                      "excluded" if chosen is not None and name not in chosen else "missing")
            out.append({"name": name, "seq": seq, "status": status, "fragments": 0})
            continue
        status, covered = _check_segment(rec, name, pub, device, seq, s,
                                         seq == max(segs) and log_status == "truncated")
        out.append({"name": name, "seq": seq, "status": status, "fragments": covered})
    placed = {s["name"] for s in segs.values()}
    for name in sorted(present - placed):
        out.append({"name": name, "seq": None, "status": "unlogged", "fragments": 0})
    statuses = {s["status"] for s in out}
    if not problems and out and log_status == "verified" and statuses <= {"verified", "deleted", "excluded"}:
        recording = "verified"
    elif not problems and out and log_status in ("verified", "truncated") and statuses <= {
            "verified", "deleted", "excluded", "truncated", "open"}:
        recording = "truncated"
    else:
        recording = "failed"
    return {"recording": recording, "seal_log": log_status, "log_entries": len(entries), "segments": out}


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir()))
def test_second_verifier_from_the_document_agrees_with_each_case(name):
    rec, exp = case(name)
    assert independent_report(rec) == exp


def test_second_verifier_agrees_on_the_main_recording():
    got = independent_report(REC)
    assert got["recording"] == "verified" and got["log_entries"] == len(EXPECTED["log"])
    assert [s["status"] for s in got["segments"]] == ["verified", "verified"]
