"""Lawful use (issue 11): evidence-package export time and size per hour of
footage, and audit-log verification speed, each beside a baseline measured
in the same run.

Export: real footage (lavfi test pattern, libx264 640x360 at 30 fps,
~1 Mbit/s, 10-second segments) sealed, committed and exported twice, at
SHORT and LONG seconds.  Time per hour is extrapolated linearly from the two
(fixed cost + per-second cost x 3600); size per hour likewise.  Baseline:
copying and SHA-256-hashing the same sealed bytes (the least an export must
do).  Target (ours; the issue gives none): an hour of footage exports in
under an hour without viewing copies, and in under two with them.

Audit: N entries appended, then the whole export verified by the package
verifier's own code; baseline: SHA-256 + Ed25519 verify of the same
payloads with `cryptography` alone.  Target: >= 0.5x the baseline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import shutil
import tempfile
import time
from pathlib import Path

SHORT, LONG = 20, 60
SEGMENT_SECONDS = 10
AUDIT_ENTRIES = 3000


def _footage_fragments(seconds: int, fps: int = 30, size=(640, 360)) -> list[bytes]:
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(fps // 2), "preset": "veryfast", "b": "1000k"}
        for i in range(seconds * fps):
            img = np.full((size[1], size[0], 3), 40, np.uint8)
            img[:, :, 0] = (np.arange(size[0]) + i * 3) % 256
            img[(i * 2) % size[1]:, :, 2] = (i * 5) % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data, pos, boxes = buf.getvalue(), 0, []
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        boxes.append((data[pos + 4:pos + 8], data[pos:pos + n]))
        pos += n
    frags, current = [b"".join(b for k, b in boxes if k in (b"ftyp", b"moov"))], b""
    for kind, b in boxes:
        if kind == b"moof":
            current = b
        elif kind == b"mdat":
            frags.append(current + b)
    return frags


def _archive(root: Path, seconds: int):
    import pyotp

    from archive.accounts import Accounts
    from archive.config import load_archive_config
    from archive.grants import Grants
    from archive.service import Archive
    from device.sealing import pki
    from device.sealing.clock import ManualClock
    from device.sealing.state import SealingState

    ca = pki.create_ca(root / "ca", "Bench Agency")
    recipient = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "bench", root / "recipient")
    receipt = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECEIPT, "archive-1", root / "receipt")
    pki.enrol_device(ca, root / "rec", "B000001", pki.load_cert(recipient.with_suffix(".crt")))
    clock = ManualClock(start=dt.datetime.now(dt.timezone.utc))
    state = SealingState.open(root / "rec", clock)
    names = []
    for _ in range(seconds // SEGMENT_SECONDS):
        writer = state.open_segment("video/mp4", "010203")
        for frag in _footage_fragments(SEGMENT_SECONDS):
            clock.advance(0.5)
            writer.append(frag)
        writer.close({"events": []})
        names.append(writer.name)
    state.close()
    (root / "archive.toml").write_text(
        f'state = "{root / "state"}"\n[server]\nkey = "{receipt}"\ncertificate = "{receipt.with_suffix(".crt")}"\n'
        f'[store]\nbackend = "local"\npath = "{root / "store"}"\n[index]\nurl = "sqlite:///{root / "index.sqlite"}"\n'
        f'[[agencies]]\nid = "bench"\nname = "基准测试局"\nca = "{root / "ca" / "ca.crt"}"\nreceipt_key = "{receipt}"\n'
        f'receipt_certificate = "{receipt.with_suffix(".crt")}"\n'
        f'[lawful_use.recipient_keys]\nbench = "{recipient}"\n')
    archive = Archive(load_archive_config(root / "archive.toml"), clock=clock)
    archive.commit_recording(None, root / "rec", names, source="bench")
    archive.label(None, names, case_number="BENCH-1", who="bench")
    acc = Accounts(archive)
    keeper, _ = acc.add(None, "keeper", "keeper", "keeper", "bench-password", by="bench")
    head, _ = acc.add(None, "head", "head", "approver", "bench-password", by="bench")
    grants = Grants(archive)
    g = grants.request(keeper, grantee="keeper", actions=["export"], reason="bench", hours=24, case_number="BENCH-1")
    g = grants.decide(head, g.id, approve=True, totp=pyotp.TOTP(acc.totp_secret("head")).at(clock.utc_now()))
    sealed = sum(p.stat().st_size for p in (root / "rec" / "segments").glob("*.bcseg"))
    return archive, keeper, g.id, root / "rec", sealed


def _baseline_copy_hash(folder: Path, target: Path) -> float:
    start = time.perf_counter()
    shutil.copytree(folder, target)
    for p in sorted(target.rglob("*")):
        if p.is_file():
            hashlib.sha256(p.read_bytes()).hexdigest()
    return time.perf_counter() - start


def export_rows() -> list[tuple[str, str, str]]:
    from archive.package import export_package

    measured = {}
    for seconds in (SHORT, LONG):
        with tempfile.TemporaryDirectory(prefix="bodycam-bench-export-") as tmp:
            root = Path(tmp)
            archive, keeper, grant, rec, sealed = _archive(root, seconds)
            try:
                base = _baseline_copy_hash(rec, root / "copy")
                export_package(archive, keeper, grant, root / "warm-up", viewing_copies=False)  # fonts, codecs
                for viewing in (False, True):
                    times = []
                    for attempt in range(2):  # the machine is shared: the better of two
                        out = root / f"pkg-{viewing}-{attempt}"
                        start = time.perf_counter()
                        export_package(archive, keeper, grant, out, viewing_copies=viewing)
                        times.append(time.perf_counter() - start)
                    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
                    measured[(seconds, viewing)] = (min(times), size, base, sealed)
            finally:
                archive.close()
    rows = []
    for viewing in (False, True):
        (t1, s1, b1, _), (t2, s2, b2, _) = measured[(SHORT, viewing)], measured[(LONG, viewing)]
        per_s = max(0.0, (t2 - t1) / (LONG - SHORT))
        fixed = t1 - per_s * SHORT
        hour = fixed + per_s * 3600
        size_hour = (s2 - s1) / (LONG - SHORT) * 3600 + (s1 - (s2 - s1) / (LONG - SHORT) * SHORT)
        base_hour = max(0.0, (b2 - b1) / (LONG - SHORT)) * 3600 + b1
        target = 3600 if not viewing else 7200
        label = "with watermarked viewing copies" if viewing else "no viewing copies"
        rows.append((f"export, {label}: {SHORT}s {t1:.1f}s, {LONG}s {t2:.1f}s",
                     f"{hour / 60:,.1f} min and {size_hour / 1e9:.2f} GB per hour of footage "
                     f"(fixed {fixed:.1f} s + {per_s:.2f} s per s)",
                     f"copy+sha256 of the sealed bytes {base_hour:.0f} s/h; target < {target // 60} min/h: "
                     f"{'OK' if hour < target else 'MISSED'}"))
    return rows


def audit_rows() -> list[tuple[str, str, str]]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from archive.audit import audit_of
    from archive.standalone_verifier import AUDIT_CTX, Result, verify_audit_lines

    with tempfile.TemporaryDirectory(prefix="bodycam-bench-audit-") as tmp:
        root = Path(tmp)
        archive, keeper, grant, _, _ = _archive(root, SEGMENT_SECONDS)
        try:
            log = audit_of(archive)
            start = time.perf_counter()
            for i in range(AUDIT_ENTRIES):
                log.record(None, "search", detail={"officer": "010203", "i": i})
            append = AUDIT_ENTRIES / (time.perf_counter() - start)
            lines = log.export_jsonl(None).decode().splitlines()
            ca = x509.load_pem_x509_certificate((root / "ca" / "ca.crt").read_bytes())
            start = time.perf_counter()
            result = Result()
            info = verify_audit_lines(lines, ca, result)
            verify = info["entries"] / (time.perf_counter() - start)
            assert result.passed, result.failures
            payloads = [e["payload"].encode() for e in log.entries(None)]
        finally:
            archive.close()
    key = Ed25519PrivateKey.generate()
    sigs = [key.sign(AUDIT_CTX.encode() + b"\x00" + p) for p in payloads]
    public = key.public_key()
    start = time.perf_counter()
    for p, s in zip(payloads, sigs):
        hashlib.sha256(p).digest()
        public.verify(s, AUDIT_CTX.encode() + b"\x00" + p)
    raw = len(payloads) / (time.perf_counter() - start)
    return [("audit append (signed, chained, SQLite)", f"{append:,.0f} entries/s", ""),
            ("audit verify, whole log", f"{verify:,.0f} entries/s",
             f"{verify / raw:.2f}x raw SHA-256+Ed25519 ({raw:,.0f}/s); target >= 0.5x: "
             f"{'OK' if verify / raw >= 0.5 else 'MISSED'}")]


def run() -> list[tuple[str, str, str]]:
    return audit_rows() + export_rows()


if __name__ == "__main__":
    for row in run():
        print("  ".join(row))
