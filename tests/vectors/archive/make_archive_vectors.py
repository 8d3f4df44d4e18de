"""Regenerate archive-vectors.json (docs/format.md §19): a segment tombstone, a document
tombstone and a document seal, each the §12 envelope {payload, signature, certificate}
signed by an archive-receipt key certified by a test agency CA.

Both keys are derived from published seeds (SHA-256 of a text, as the audit vector's key
is), the certificates have fixed validity and serial numbers, and Ed25519 signatures are
deterministic: running it again writes the same bytes.  Only hashlib, cryptography and
rfc8785 (the canonical JSON of format §2.1), so that it is a second implementation of
§12 and §19, not the archive's code.  The tombstoned segment is segment 0 of the §10
recording (tests/vectors/expected.json, its files in tests/vectors/recording/)."""

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
OUT = HERE / "archive-vectors.json"
CA_SEED_TEXT = "bodycam archive vectors CA seed"  # published TEST keys
RECEIPT_SEED_TEXT = "bodycam archive vectors archive-receipt seed"
AGENCY = "Test Vector Agency"
ARCHIVE_ID = "archive-vectors"
NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
NOT_AFTER = dt.datetime(2076, 1, 1, tzinfo=dt.timezone.utc)  # past the 30-year case file period
DOCUMENT = b"%PDF-1.4 service receipt scan (test vector)\n"


def seeded_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(text.encode()).digest())


def name(role: str, cn: str) -> x509.Name:  # format §1: O agency, OU role, CN id
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, AGENCY),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(subject: x509.Name, issuer: x509.Name, public, signer: Ed25519PrivateKey, serial: int,
                is_ca: bool) -> x509.Certificate:
    usage = dict(digital_signature=not is_ca, key_cert_sign=is_ca, crl_sign=is_ca)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
            .serial_number(serial).not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), critical=True)
            .add_extension(x509.KeyUsage(content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False, **usage),
                           critical=True)
            .sign(signer, None))


def envelope(key: Ed25519PrivateKey, cert_pem: str, payload: dict) -> dict:
    """Format §12: canonical payload, Ed25519 over ctx || 0x00 || payload."""
    data = rfc8785.dumps({**payload, "v": 2})
    signature = key.sign(payload["ctx"].encode() + b"\x00" + data)
    return {"payload": base64.b64encode(data).decode(), "signature": base64.b64encode(signature).decode(),
            "certificate": cert_pem}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def payloads() -> dict[str, dict]:
    segment = json.loads((HERE.parent / "expected.json").read_text())["segments"][0]
    segments = HERE.parent / "recording" / "segments"
    document_sha256 = hashlib.sha256(DOCUMENT).hexdigest()
    case, filename = "顺市监罚〔2026〕17号", "送达回证.pdf"
    return {
        "tombstone-segment": {
            "ctx": "bodycam/v2/tombstone", "archive": ARCHIVE_ID, "agency": "test-agency", "device": "V000001",
            "segment": segment["name"], "segment_seq": 0, "segment_digest": segment["segment_digest"],
            "files": {"segment_sha256": file_sha256(segments / f"{segment['name']}.bcseg"),
                      "manifest_sha256": file_sha256(segments / f"{segment['name']}.bcman")},
            "retention_class": "patrol", "retain_until": "2027-06-01T00:00:00.000000Z",
            "deleted_utc": "2027-06-02T03:00:00.000000Z",
            "reason": "patrol retention ended 2027-06-01T00:00:00.000000Z, no hold", "by": "expire-job"},
        "tombstone-document": {
            "ctx": "bodycam/v2/tombstone", "archive": ARCHIVE_ID, "agency": "test-agency", "device": "",
            "document": f"{case}/{filename}", "kind": "service-receipt", "files": {"document_sha256": document_sha256},
            "retention_class": "case", "retain_until": "2056-11-27T09:00:00.000000Z",
            "deleted_utc": "2056-11-28T03:00:00.000000Z",
            "reason": "case file period ended 2056-11-27T09:00:00.000000Z, no hold", "by": "expire-job"},
        "document-seal": {
            "ctx": "bodycam/v2/document-seal", "device": "", "archive": ARCHIVE_ID, "agency": "test-agency",
            "case_number": case, "kind": "service-receipt", "filename": filename, "sha256": document_sha256,
            "bytes": len(DOCUMENT), "sealed_utc": "2026-11-27T09:00:00.000000Z",
            "retain_until": "2056-11-27T09:00:00.000000Z", "by": "li.na"},
    }


def build() -> dict:
    ca_key, receipt_key = seeded_key(CA_SEED_TEXT), seeded_key(RECEIPT_SEED_TEXT)
    ca_name = name("agency-ca", f"{AGENCY} evidence CA")
    ca = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, 0x1900, True)
    receipt = certificate(name("archive-receipt", ARCHIVE_ID), ca_name, receipt_key.public_key(), ca_key, 0x1901,
                          False)
    pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM).decode()  # noqa: E731
    raw = lambda key: key.public_key().public_bytes(serialization.Encoding.Raw,  # noqa: E731
                                                    serialization.PublicFormat.Raw).hex()
    vectors = []
    for label, payload in payloads().items():
        message = envelope(receipt_key, pem(receipt), payload)
        canonical = base64.b64decode(message["payload"])
        vectors.append({"name": label, "ctx": payload["ctx"], "payload_text": canonical.decode(),
                        "payload_sha256": hashlib.sha256(canonical).hexdigest(), "message": message})
    return {"format": "bodycam-archive-vectors/1", "ca_seed_sha256_of": CA_SEED_TEXT,
            "receipt_seed_sha256_of": RECEIPT_SEED_TEXT, "ca_public_key": raw(ca_key),
            "receipt_public_key": raw(receipt_key), "ca_certificate": pem(ca),
            "document_bytes_b64": base64.b64encode(DOCUMENT).decode(), "vectors": vectors}


def text() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(text())
