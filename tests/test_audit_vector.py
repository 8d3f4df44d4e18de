"""The audit entry format (docs/lawful-use.md A1, format.md §19) against its
test vector, with hashlib, cryptography and rfc8785 only; and the archive's own entries follow the
same rule (digest, signature over ctx || 0x00 || payload, chain from the anchor)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

VECTOR = Path(__file__).parent / "vectors" / "audit" / "audit-vector.json"


def _check_chain(entries, public: Ed25519PublicKey, anchor: str) -> None:
    prev = anchor
    for seq, e in enumerate(entries):
        payload = e["payload"].encode()
        obj = json.loads(payload)
        assert rfc8785.dumps(obj) == payload  # RFC 8785 (JCS), format §2.1
        assert obj["seq"] == seq and obj["prev"] == prev and obj["ctx"] == "bodycam/v2/audit" and obj["v"] == 2
        assert hashlib.sha256(payload).hexdigest() == e["digest"]
        public.verify(base64.b64decode(e["signature"]), b"bodycam/v2/audit\x00" + payload)
        prev = e["digest"]


def test_the_vector_follows_the_written_rule():
    v = json.loads(VECTOR.read_text())
    assert v["anchor"] == hashlib.sha256(b"bodycam/v2/audit-anchor\x00" + v["agency"].encode()).hexdigest()
    _check_chain(v["entries"], Ed25519PublicKey.from_public_bytes(bytes.fromhex(v["public_key"])), v["anchor"])
    # and a changed byte breaks it
    bad = [dict(e) for e in v["entries"]]
    bad[1]["payload"] = bad[1]["payload"].replace("auditor", "auditer", 1)
    with pytest.raises((AssertionError, InvalidSignature)):
        _check_chain(bad, Ed25519PublicKey.from_public_bytes(bytes.fromhex(v["public_key"])), v["anchor"])


def test_the_archive_writes_entries_by_the_same_rule(agency, tmp_path):
    from archive.audit import audit_of
    from device.sealing import pki

    from .lawful_rig import make_archive

    rig = make_archive(agency, tmp_path / "a", videos=1)
    try:
        rig.archive.search(officer="010203")
        rig.archive.hold(None, reason="复议", who="keeper1", segments=[rig.names[0]])
        stored = audit_of(rig.archive).entries(None)
        public = pki.load_cert(rig.receipt_key.with_suffix(".crt")).public_key()
        anchor = hashlib.sha256(b"bodycam/v2/audit-anchor\x00test-agency").hexdigest()
        _check_chain([{"payload": e["payload"], "digest": e["digest"], "signature": e["signature"]} for e in stored],
                     public, anchor)
        assert len(stored) == 2
    finally:
        rig.close()
