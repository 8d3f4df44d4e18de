"""Regenerate tests/vectors/ (run by hand; the output is committed).

    python tests/vectors/make_vectors.py

Ed25519 signatures are deterministic, but segment keys and HPKE ephemeral
keys are random, so each run gives different files; the committed set is the
reference.  The archive identity here is a published TEST key.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from device.sealing.clock import ManualClock  # noqa: E402
from device.sealing import pki  # noqa: E402
from device.sealing.format import log_anchor  # noqa: E402
from device.sealing.messages import CTX_RECEIPT, sign_message  # noqa: E402
from device.sealing.seallog import scan_log  # noqa: E402
from device.sealing.segment_file import read_manifest, scan_segment  # noqa: E402
from device.sealing.state import SealingState  # noqa: E402


def main() -> None:
    out = HERE / "recording"
    keys = HERE / "keys"
    for path in (out, keys):
        if path.exists():
            shutil.rmtree(path)
    ca = pki.create_ca(keys / "ca", "Test Vector Agency")
    (keys / "ca" / "ca.key").unlink()  # the CA key is not part of the vectors
    identity = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "archive-vectors", keys)
    receipt_key = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-vectors", keys)
    pki.enrol_device(ca, out, "V000001", pki.load_cert(identity.with_suffix(".crt")))
    clock = ManualClock()
    state = SealingState.open(out, clock, checkpoint_interval=1.0)
    plaintexts = {}
    for s in range(2):
        writer = state.open_segment("application/octet-stream", "010203", {"vector": s})
        for i in range(3):
            clock.advance(1.0)
            data = f"segment {s} fragment {i} ".encode() * 8
            writer.append(data)
            plaintexts[f"{writer.name}/{i}"] = data.decode()
        writer.close({"vector": s})
    state.close()
    (out / "lock").unlink()
    (out / "identity" / "device.key").unlink()  # never part of a recording
    (HERE / "plaintexts.json").write_text(json.dumps(plaintexts, indent=1) + "\n")
    cert = pki.load_cert(out / "identity" / "device.crt")
    expected = {
        "device": "V000001",
        "log_anchor": log_anchor(cert.public_key().public_bytes_raw()).hex(),
        "log": [{"seq": e.seq, "event": e.event, "digest": e.digest.hex()}
                for e, _ in scan_log(out / "seallog").entries],
        "segments": [],
    }
    for seg in sorted((out / "segments").glob("*.bcseg")):
        scan = scan_segment(seg.read_bytes(), seg.name)
        expected["segments"].append({
            "name": seg.stem,
            "header_digest": scan.header_digest.hex(),
            "chain_after_header": scan.chain_after(0).hex(),
            "chain_after_fragment": [c.hex() for c in scan.chains],
            "plaintext_sha256": [f.pt_digest.hex() for f in scan.fragments],
            "segment_digest": read_manifest(seg.with_suffix(".bcman")).digest.hex(),
        })
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    first = sorted((out / "segments").glob("*.bcseg"))[0]
    receipt = sign_message(pki.load_ed25519_key(receipt_key), pki.load_cert(receipt_key.with_suffix(".crt")), {
        "ctx": CTX_RECEIPT, "archive": "archive-vectors", "device": "V000001", "segment": first.stem,
        "segment_seq": 0, "segment_digest": expected["segments"][0]["segment_digest"],
        "files": {"segment_sha256": hashlib.sha256(first.read_bytes()).hexdigest(),
                  "manifest_sha256": hashlib.sha256(first.with_suffix(".bcman").read_bytes()).hexdigest()},
        "stored_utc": "2026-11-27T01:20:00.000000Z", "retain_until": "2027-05-29T01:20:00.000000Z"})
    (HERE / "receipt.json").write_text(json.dumps(receipt, indent=1) + "\n")
    (receipt_key).unlink()  # the receipt key is not part of the vectors either


if __name__ == "__main__":
    main()
