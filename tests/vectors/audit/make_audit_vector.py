"""Regenerate audit-vector.json (docs/lawful-use.md A1): two audit entries of
agency "test-agency", signed by a key derived from a published seed.  Only
hashlib, cryptography and rfc8785 (the canonical JSON of format §2.1); Ed25519 signatures are deterministic, so running it
again writes the same file."""

import base64
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import rfc8785

CTX = "bodycam/v2/audit"
SEED = hashlib.sha256(b"bodycam audit test vector seed").digest()  # a published TEST key


def canonical(obj) -> bytes:
    return rfc8785.dumps(obj)  # RFC 8785 (JCS), format §2.1


def main() -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    agency = "test-agency"
    prev = hashlib.sha256(b"bodycam/v2/audit-anchor\x00" + agency.encode()).hexdigest()
    entries = []
    for seq, (action, outcome, actor, role, case, detail) in enumerate([
        ("request", "ok", "li.na", "keeper", "顺市监罚〔2026〕17号", {"grant": 1, "reason": "法院调取", "hours": 24}),
        ("denied", "denied", "auditor", "auditor", None, {"wanted": "view", "why": "role auditor may not view"}),
    ]):
        payload = canonical({"ctx": CTX, "v": 2, "archive": "archive-1", "agency": agency, "seq": seq, "prev": prev,
                             "utc": f"2026-11-27T01:15:0{seq}.000000Z", "actor": actor, "role": role,
                             "action": action, "outcome": outcome, "case": case,
                             "segments": ["7584bda3fee45ed1f2752ea3ca3fa3ed19d29719a77060726d0df80236305d50"],
                             "detail": detail})
        digest = hashlib.sha256(payload).hexdigest()
        signature = key.sign(CTX.encode() + b"\x00" + payload)
        entries.append({"payload": payload.decode(), "digest": digest,
                        "signature": base64.b64encode(signature).decode()})
        prev = digest
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    anchor = hashlib.sha256(b"bodycam/v2/audit-anchor\x00" + agency.encode()).hexdigest()
    out = {"agency": agency, "seed_sha256_of": "bodycam audit test vector seed", "public_key": public,
           "anchor": anchor, "entries": entries}
    (Path(__file__).parent / "audit-vector.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
