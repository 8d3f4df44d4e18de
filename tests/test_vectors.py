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
