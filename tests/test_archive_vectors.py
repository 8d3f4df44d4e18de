"""docs/format.md §19: the tombstone and the document seal against their test vectors
(tests/vectors/archive/), and the archive's own records against the document.

Three checks, so that the document, the vectors and the code cannot drift apart:
the vectors follow the written rule (checked with hashlib, cryptography and rfc8785 only)
and carry exactly the fields §19's table names; the generator, rerun, writes the
committed file byte for byte; and the project's signer, its message checker and the real
archive (attach, expire) produce and accept exactly those fields."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import pytest
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors" / "archive"
FORMAT = REPO / "docs" / "format.md"


def generator():
    spec = importlib.util.spec_from_file_location("make_archive_vectors", VECTORS / "make_archive_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed() -> dict:
    return json.loads((VECTORS / "archive-vectors.json").read_text())


def documented_fields() -> dict[str, dict[str, set[str] | None]]:
    """Payload fields per vector name as §19's table lists them (besides ctx and v): a field
    maps to its sub-fields (``files: {a, b}``) or None.  Values in parentheses (`""`, `case`)
    are not fields."""
    text = FORMAT.read_text()
    section = text[text.index("## 19. "):text.index("## 20. ")]

    def fields(cell: str) -> dict[str, set[str] | None]:
        out: dict[str, set[str] | None] = {}
        for span in re.findall(r"`([^`]+)`", re.sub(r"\(`[^`]*`\)", "", cell)):
            found = re.fullmatch(r"([a-z0-9_]+)(?:: \{([a-z0-9_, ]+)\})?", span)
            assert found, f"§19: cannot read the field {span!r}"
            out[found[1]] = {f.strip() for f in found[2].split(",")} if found[2] else None
        return out

    def row(ctx: str) -> str:
        (line,) = [line for line in section.splitlines() if line.startswith(f"| `{ctx}` |")]
        return line.split("|")[2]

    segment, document = row("bodycam/v2/tombstone").split("; document:")
    assert segment.strip().startswith("segment:")
    return {"tombstone-segment": fields(segment), "tombstone-document": fields(document),
            "document-seal": fields(row("bodycam/v2/document-seal"))}


def shape(payload: dict) -> dict[str, set[str] | None]:
    return {key: set(value) if isinstance(value, dict) else None
            for key, value in payload.items() if key not in ("ctx", "v")}


def check_by_the_written_rule(vector: dict, ca: x509.Certificate, receipt_public: str) -> dict:
    """§12 and §19 from the text alone; returns the payload."""
    message = vector["message"]
    assert set(message) == {"payload", "signature", "certificate"}
    payload = base64.b64decode(message["payload"], validate=True)
    obj = json.loads(payload)
    assert rfc8785.dumps(obj) == payload and len(payload) <= 65536  # canonical JSON, §2.1
    assert payload.decode() == vector["payload_text"]
    assert hashlib.sha256(payload).hexdigest() == vector["payload_sha256"]
    assert obj["ctx"] == vector["ctx"] and obj["v"] == 2
    cert = x509.load_pem_x509_certificate(message["certificate"].encode())
    cert.verify_directly_issued_by(ca)
    assert "OU=archive-receipt" in cert.subject.rfc4514_string()
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    public = cert.public_key()
    assert public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex() == receipt_public
    public.verify(base64.b64decode(message["signature"], validate=True), obj["ctx"].encode() + b"\x00" + payload)
    return obj


def test_the_generator_rewrites_the_committed_vectors_byte_for_byte():
    assert generator().text() == (VECTORS / "archive-vectors.json").read_text()


def test_the_vectors_follow_the_written_rule_and_name_the_documented_fields():
    v = committed()
    ca = x509.load_pem_x509_certificate(v["ca_certificate"].encode())
    ca.verify_directly_issued_by(ca)
    for seed, public in (("ca_seed_sha256_of", "ca_public_key"), ("receipt_seed_sha256_of", "receipt_public_key")):
        key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(v[seed].encode()).digest())
        assert key.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw).hex() == v[public]
    documented = documented_fields()
    assert [vector["name"] for vector in v["vectors"]] == list(documented)
    for vector in v["vectors"]:
        obj = check_by_the_written_rule(vector, ca, v["receipt_public_key"])
        assert shape(obj) == documented[vector["name"]], vector["name"]
    seal, document_tomb = (json.loads(x["payload_text"]) for x in v["vectors"][2:0:-1])
    content = base64.b64decode(v["document_bytes_b64"])
    assert seal["sha256"] == document_tomb["files"]["document_sha256"] == hashlib.sha256(content).hexdigest()
    assert seal["bytes"] == len(content) and seal["device"] == document_tomb["device"] == ""
    segment_tomb = json.loads(v["vectors"][0]["payload_text"])
    expected = json.loads((REPO / "tests" / "vectors" / "expected.json").read_text())["segments"][0]
    assert (segment_tomb["segment"], segment_tomb["segment_digest"]) == (expected["name"], expected["segment_digest"])


@pytest.mark.parametrize("where", ["payload", "signature", "certificate"])
def test_a_changed_byte_fails_the_written_rule(where):
    v = committed()
    ca = x509.load_pem_x509_certificate(v["ca_certificate"].encode())
    vector = json.loads(json.dumps(v["vectors"][1]))
    message = vector["message"]
    if where == "certificate":  # another key's certificate: issued by nobody we trust
        other = generator().certificate(x509.load_pem_x509_certificate(message["certificate"].encode()).subject,
                                        ca.subject, Ed25519PrivateKey.generate().public_key(),
                                        Ed25519PrivateKey.generate(), 7, False)
        message["certificate"] = other.public_bytes(serialization.Encoding.PEM).decode()
    else:
        raw = bytearray(base64.b64decode(message[where]))
        raw[len(raw) // 2] ^= 0x01
        message[where] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises((AssertionError, InvalidSignature, ValueError)):
        check_by_the_written_rule(vector, ca, v["receipt_public_key"])


def test_the_projects_signer_and_checker_agree_with_the_vectors():
    from device.sealing.messages import open_message, sign_message

    v = committed()
    make = generator()
    ca = x509.load_pem_x509_certificate(v["ca_certificate"].encode())
    key = make.seeded_key(make.RECEIPT_SEED_TEXT)
    for vector, payload in zip(v["vectors"], make.payloads().values()):
        cert = x509.load_pem_x509_certificate(vector["message"]["certificate"].encode())
        assert sign_message(key, cert, payload) == vector["message"]  # the archive's signer (evidence.sign_record)
        obj = json.loads(vector["payload_text"])
        when = dt.datetime.fromisoformat(obj.get("deleted_utc") or obj["sealed_utc"])
        opened = open_message(vector["message"], ca, vector["ctx"], vector["name"], at=when)
        assert opened.payload == obj


def test_the_archive_writes_the_documented_fields(agency, tmp_path):
    """A real archive attaches a case document and, past the case file's period, expires
    it and the case's segment: its seal and tombstones carry exactly §19's fields, with the
    vectors' types, and open under the agency CA."""
    from archive.evidence import CTX_DOCUMENT_SEAL, CTX_TOMBSTONE
    from device.sealing.messages import open_message

    from .lawful_rig import make_archive

    rig = make_archive(agency, tmp_path / "a", videos=1)
    try:
        archive = rig.archive
        archive.label(None, rig.names, case_number="案-9", who="keeper-1", retain_years=10)
        document = tmp_path / "送达回证.pdf"
        document.write_bytes(b"%PDF-1.4 service receipt scan")
        seal = archive.attach(None, "案-9", document, kind="service-receipt", who="keeper-1")
        rig.clock.advance(11 * 366 * 86400)
        done = archive.expire(who="expire-job", dry_run=False)
        records = {"document-seal": (seal, CTX_DOCUMENT_SEAL)}
        for item in done["deleted"]:
            kind = "document" if item["name"].startswith("案-9/") else "segment"
            records.setdefault(f"tombstone-{kind}", (item["tombstone"], CTX_TOMBSTONE))
        assert set(records) == {"document-seal", "tombstone-segment", "tombstone-document"}, done
        documented = documented_fields()
        vectors = {x["name"]: json.loads(x["payload_text"]) for x in committed()["vectors"]}
        for name, (message, ctx) in records.items():
            obj = open_message(message, agency.ca.cert, ctx, name, at=False).payload
            assert shape(obj) == documented[name], name
            assert {k: type(v) for k, v in obj.items()} == {k: type(v) for k, v in vectors[name].items()}, name
    finally:
        rig.close()
