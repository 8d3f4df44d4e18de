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

import datetime as dt  # noqa: E402
import os  # noqa: E402

from cryptography import x509  # noqa: E402

from device.sealing.clock import ManualClock  # noqa: E402
from device.sealing import pki  # noqa: E402
from device.sealing.format import log_anchor  # noqa: E402
from device.sealing.messages import CTX_RECEIPT, sign_message  # noqa: E402
from device.sealing.seallog import EV_DELETION, EV_RECEIPT, scan_log  # noqa: E402
from device.sealing.segment_file import read_manifest, scan_segment  # noqa: E402
from device.sealing.state import SealingState  # noqa: E402
from device.sealing.verifier import Verifier  # noqa: E402
from device.sealing.attestation import sign_attestation  # noqa: E402
from device.sealing.excerpt import make_excerpt  # noqa: E402

NON_ASCII = {"当事人": "张三", "案由": "无照经营", "note": "é ü ß 😀 \u2028"}


def main() -> None:
    out = HERE / "recording"
    keys = HERE / "keys"
    cases = HERE / "cases"
    for path in (out, keys, cases):
        if path.exists():
            shutil.rmtree(path)
    ca = pki.create_ca(keys / "ca", "Test Vector Agency")
    identity = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "archive-vectors", keys)
    receipt_key = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-vectors", keys)
    rkey, rcert = pki.load_ed25519_key(receipt_key), pki.load_cert(receipt_key.with_suffix(".crt"))
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
    receipt = _receipt(rkey, rcert, first, 0, expected["segments"][0]["segment_digest"], clock)
    (HERE / "receipt.json").write_text(json.dumps(receipt, indent=1) + "\n")
    make_cases(ca, identity, rkey, rcert, cases)
    # An excerpt of the main recording (segment 1 only), and the archive's attestation of its head.
    verifier = Verifier(ca.cert)
    make_excerpt(verifier, out, [expected["segments"][1]["name"]], cases / "excerpt" / "recording",
                 "案件 VEC-001")
    _short(verifier, "excerpt", cases / "excerpt" / "recording", cases)
    head = expected["log"][-1]
    attestation = sign_attestation(rkey, rcert, archive="archive-vectors", device="V000001",
                                   device_certificate=pki.fingerprint(cert), head_seq=head["seq"],
                                   head_digest=head["digest"], when=clock.utc_now())
    (HERE / "attestation.json").write_text(json.dumps(attestation, indent=1) + "\n")
    (receipt_key).unlink()  # the receipt key is not part of the vectors either
    (keys / "ca" / "ca.key").unlink()  # nor the CA key


def _receipt(rkey, rcert, seg: Path, seq: int, digest: str, clock) -> dict:
    return sign_message(rkey, rcert, {
        "ctx": CTX_RECEIPT, "archive": "archive-vectors", "device": seg.name[:7], "segment": seg.stem,
        "segment_seq": seq, "segment_digest": digest,
        "files": {"segment_sha256": hashlib.sha256(seg.read_bytes()).hexdigest(),
                  "manifest_sha256": hashlib.sha256(seg.with_suffix(".bcman").read_bytes()).hexdigest()},
        "stored_utc": (clock.utc_now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "retain_until": (clock.utc_now() + dt.timedelta(days=180)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")})


def _record(state, clock, segments=2, fragments=3, meta=None):
    names = []
    for s in range(segments):
        writer = state.open_segment("application/octet-stream", "010203", meta or {"vector": s})
        for i in range(fragments):
            clock.advance(1.0)
            writer.append(f"segment {writer.seq} fragment {i} ".encode() * 8)
        writer.close(meta or {"vector": s})
        names.append(writer.name)
    return names


def _finish(root: Path) -> None:
    for p in (root / "lock", root / "identity" / "device.key"):
        if p.exists():
            p.unlink()


def make_cases(ca, identity, rkey, rcert, cases: Path) -> None:
    """Negative and edge vectors; each folder's expected.json is its report in short."""
    recipient = pki.load_cert(identity.with_suffix(".crt"))
    seen = {}

    def new(name: str, device: str):
        root = cases / name / "recording"
        pki.enrol_device(ca, root, device, recipient)
        clock = ManualClock()
        return root, clock

    # A sealed segment whose last bytes were cut off: not power loss (it was sealed).
    root, clock = new("torn-segment", "V000002")
    st = SealingState.open(root, clock)
    names = _record(st, clock)
    st.close()
    seg = root / "segments" / f"{names[1]}.bcseg"
    os.chmod(seg, 0o644)
    seg.write_bytes(seg.read_bytes()[:-30])
    seen["torn-segment"] = root

    # Power cut in the middle of a fragment after some checkpoints; recovery at the next start.
    root, clock = new("truncated-uncovered", "V000003")
    st = SealingState.open(root, clock)
    _record(st, clock, segments=1)
    w = st.open_segment("application/octet-stream", "010203", {})
    for i in range(3):
        clock.advance(1.0)
        w.append(f"fragment {i} ".encode() * 8)
    with open(w.path, "ab") as f:
        f.write(b"\x46\x00\x00\x10\x00" + b"torn" * 10)
    w.abandon()
    st.log.close()
    os.close(st._lock_fd)
    st = SealingState.open(root, clock)
    st.close()
    seen["truncated-uncovered"] = root

    # The first log file ends in a torn record; the next start continued in a new file.
    root, clock = new("multifile-torn-older", "V000004")
    st = SealingState.open(root, clock)
    _record(st, clock, segments=1)
    st.log.close()
    os.close(st._lock_fd)
    (logf,) = (root / "seallog").iterdir()
    os.chmod(logf, 0o644)
    with open(logf, "ab") as f:
        f.write(b"\x4c\x00\x00\x01\x00" + b"half an entry")
    os.chmod(logf, 0o444)
    st = SealingState.open(root, clock)
    _record(st, clock, segments=1)
    st.close()
    seen["multifile-torn-older"] = root

    # A deletion after a receipt entry that carries the archive-signed receipt.
    root, clock = new("deletion-with-receipt", "V000005")
    st = SealingState.open(root, clock)
    names = _record(st, clock)
    seg = root / "segments" / f"{names[0]}.bcseg"
    digest = read_manifest(seg.with_suffix(".bcman")).digest.hex()
    message = _receipt(rkey, rcert, seg, 0, digest, clock)
    raw = __import__("base64").b64decode(message["payload"])
    st.log_event(EV_RECEIPT, {"segment_seq": 0, "segment": names[0], "digest": digest,
                              "archive": "archive-vectors", "retain_until": None,
                              "receipt_sha256": hashlib.sha256(raw).hexdigest(), "receipt": message})
    for p in (seg, seg.with_suffix(".bcman")):
        p.unlink()
    st.log_event(EV_DELETION, {"segment_seq": 0, "segment": names[0], "digest": digest,
                               "reason": "archive receipt"})
    st.close()
    seen["deletion-with-receipt"] = root

    # A deletion the device signed without any receipt: the segment is missing.
    root, clock = new("forged-deletion", "V000006")
    st = SealingState.open(root, clock)
    names = _record(st, clock)
    seg = root / "segments" / f"{names[1]}.bcseg"
    digest = read_manifest(seg.with_suffix(".bcman")).digest.hex()
    for p in (seg, seg.with_suffix(".bcman")):
        p.unlink()
    st.log_event(EV_DELETION, {"segment_seq": 1, "segment": names[1], "digest": digest,
                               "reason": "archive receipt"})
    st.close()
    seen["forged-deletion"] = root

    # Segment 1 opened while segment 0 was still open (a photo during video).
    root, clock = new("overlapping-segments", "V000007")
    st = SealingState.open(root, clock)
    a = st.open_segment("application/octet-stream", "010203", {})
    clock.advance(1.0)
    a.append(b"video " * 20)
    b = st.open_segment("application/octet-stream", "010203", {})
    clock.advance(1.0)
    b.append(b"photo " * 20)
    b.close({})
    clock.advance(1.0)
    a.append(b"video " * 20)
    a.close({})
    c = st.open_segment("application/octet-stream", "010203", {})
    clock.advance(1.0)
    c.append(b"after " * 20)
    c.close({})
    st.close()
    seen["overlapping-segments"] = root

    # Non-ASCII text in metadata and in seal-log data.
    root, clock = new("non-ascii", "V000008")
    st = SealingState.open(root, clock)
    st.log_event("mark", {"kind": "mark", "note": NON_ASCII["案由"]})
    _record(st, clock, segments=1, meta=NON_ASCII)
    st.close()
    seen["non-ascii"] = root

    # One vector per failure status not shown above.
    root, clock = new("status-unlogged", "V000009")
    st = SealingState.open(root, clock)
    names = _record(st, clock)
    st.close()
    for suffix in (".bcseg", ".bcman"):
        src = root / "segments" / f"{names[0]}{suffix}"
        shutil.copyfile(src, root / "segments" / f"{names[0][:-4]}9999{suffix}")
    seen["status-unlogged"] = root

    root, clock = new("status-failed", "V000010")
    st = SealingState.open(root, clock)
    names = _record(st, clock)
    st.close()
    seg = root / "segments" / f"{names[0]}.bcseg"
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 1
    os.chmod(seg, 0o644)
    seg.write_bytes(bytes(data))
    seen["status-failed"] = root

    root, clock = new("status-open", "V000011")
    st = SealingState.open(root, clock)
    _record(st, clock, segments=1)
    w = st.open_segment("application/octet-stream", "010203", {})
    for i in range(2):
        clock.advance(1.0)
        w.append(f"live {i} ".encode() * 8)
    w.abandon()
    st.log.close()
    os.close(st._lock_fd)
    seen["status-open"] = root

    root, clock = new("log-broken", "V000012")
    st = SealingState.open(root, clock)
    _record(st, clock)
    st.close()
    (logf,) = (root / "seallog").iterdir()
    data = bytearray(logf.read_bytes())
    recs = [r for r in __import__("device.sealing.format", fromlist=["x"]).iter_records(
        bytes(data), "x", data[:8], frozenset({0x4C}))]
    data[recs[4].offset + 20] ^= 0x20  # inside the JSON of entry 4
    os.chmod(logf, 0o644)
    logf.write_bytes(bytes(data))
    seen["log-broken"] = root

    root, clock = new("device-cert-ca-true", "V000013")
    st = SealingState.open(root, clock)
    _record(st, clock, segments=1)
    st.close()
    old = pki.load_cert(root / "identity" / "device.crt")
    now = dt.datetime.now(dt.timezone.utc)
    bad = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(ca.cert.subject)
           .public_key(old.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(ca.key, None))
    (root / "identity" / "device.crt").unlink()
    pki.write_cert(root / "identity" / "device.crt", bad)
    seen["device-cert-ca-true"] = root

    verifier = Verifier(ca.cert)
    for name, root in seen.items():
        _finish(root)
        _short(verifier, name, root, cases)


def _short(verifier, name: str, root: Path, cases: Path) -> None:
    """Write the case's expected report in short (what tests/test_vectors.py compares)."""
    report, _ = verifier.verify_recording(root)
    short = {
        "recording": report.status.value,
        "seal_log": report.seal_log.status.value,
        "log_entries": report.seal_log.entries,
        "segments": [{"name": s.name, "seq": s.seq, "status": s.status.value,
                      "fragments": s.fragments} for s in report.segments],
    }
    (cases / name / "expected.json").write_text(json.dumps(short, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
