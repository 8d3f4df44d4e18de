"""The committed test vectors, checked by a second, minimal implementation.

This file deliberately does not import the project's format code: it reads
the bytes as docs/format.md describes them, with hashlib and cryptography
only, so a drift between the code and the document shows up here.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.x509 import load_pem_x509_certificate

VEC = Path(__file__).parent / "vectors"
REC = VEC / "recording"
EXPECTED = json.loads((VEC / "expected.json").read_text())


def records(data: bytes, magic: bytes):
    assert data[:8] == magic
    pos, out = 8, []
    while pos < len(data):
        rtype, length = struct.unpack_from(">BI", data, pos)
        out.append((rtype, data[pos : pos + 5 + length]))
        pos += 5 + length
    assert pos == len(data)
    return out


def signed(record: bytes):
    body = record[5:]
    (n,) = struct.unpack_from(">I", body)
    payload, sig = body[4 : 4 + n], body[4 + n :]
    obj = json.loads(payload)
    assert json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == payload
    return obj, payload, sig


def device_key():
    cert = load_pem_x509_certificate((REC / "identity" / "device.crt").read_bytes())
    return cert.public_key()


def check_sig(obj, payload, sig):
    device_key().verify(sig, obj["ctx"].encode() + b"\x00" + payload)


def leaf(record: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + record).digest()


def test_seal_log_vector():
    raw = device_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    anchor = hashlib.sha256(b"\x02" + b"bodycam/v1/seal-log-anchor\x00" + raw).digest()
    assert anchor.hex() == EXPECTED["log_anchor"]
    (log,) = (REC / "seallog").iterdir()
    prev = anchor
    got = []
    for rtype, rec in records(log.read_bytes(), b"BCLOG\x00\x01\n"):
        assert rtype == 0x4C
        obj, payload, sig = signed(rec)
        check_sig(obj, payload, sig)
        assert obj["ctx"] == "bodycam/v1/seal-log" and bytes.fromhex(obj["prev"]) == prev
        prev = leaf(rec)
        got.append({"seq": obj["seq"], "event": obj["event"], "digest": prev.hex()})
    assert got == EXPECTED["log"]


def test_segment_vectors():
    identity = serialization.load_pem_private_key((VEC / "keys" / "archive-recipient.key").read_bytes(), None)
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    plaintexts = json.loads((VEC / "plaintexts.json").read_text())
    for expected in EXPECTED["segments"]:
        data = (REC / "segments" / f"{expected['name']}.bcseg").read_bytes()
        recs = records(data, b"BCSEG\x00\x01\n")
        assert recs[0][0] == 0x48
        header, payload, sig = signed(recs[0][1])
        check_sig(header, payload, sig)
        header_digest = leaf(recs[0][1])
        assert header_digest.hex() == expected["header_digest"]
        chain = hashlib.sha256(b"\x01" + bytes(32) + header_digest).digest()
        assert chain.hex() == expected["chain_after_header"]
        info = b"bodycam/v1/segment-key\x00" + json.dumps(
            {"device": header["device"], "segment_seq": header["segment_seq"]},
            sort_keys=True, separators=(",", ":")).encode()
        key = suite.decrypt(bytes.fromhex(header["wrapped_key"]), identity, info)
        aead = ChaCha20Poly1305(key)
        chains, count = [], 0
        for rtype, rec in recs[1:]:
            if rtype == 0x46:
                index, pt_digest = struct.unpack_from(">Q32s", rec, 5)
                assert index == count
                nonce = bytes(4) + struct.pack(">Q", index)
                aad = b"bodycam/v1/fragment\x00" + header_digest + struct.pack(">Q", index)
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
        mrecs = records((REC / "segments" / f"{expected['name']}.bcman").read_bytes(), b"BCMAN\x00\x01\n")
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
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    message = json.loads((VEC / "receipt.json").read_text())
    payload = base64.b64decode(message["payload"])
    obj = json.loads(payload)
    assert json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == payload
    cert = load_pem_x509_certificate(message["certificate"].encode())
    ca = load_pem_x509_certificate((VEC / "keys" / "ca" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string().startswith("CN=archive-vectors,OU=archive-receipt")
    key = cert.public_key()
    assert isinstance(key, Ed25519PublicKey)
    key.verify(base64.b64decode(message["signature"]), b"bodycam/v1/receipt\x00" + payload)
    segment = EXPECTED["segments"][0]
    assert obj["segment_digest"] == segment["segment_digest"] and obj["segment"] == segment["name"]
    seg = REC / "segments" / f"{segment['name']}.bcseg"
    assert obj["files"]["segment_sha256"] == hashlib.sha256(seg.read_bytes()).hexdigest()
    from device.sealing.messages import CTX_RECEIPT, open_message

    assert open_message(message, ca, CTX_RECEIPT, "vector").payload == obj
