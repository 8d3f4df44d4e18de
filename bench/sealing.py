"""Sealing and verifier throughput beside raw SHA-256 and ChaCha20-Poly1305.

Targets (issue 2, kept by issue 9 for format v2): sealing >= 100 s of
8 Mbit/s footage per CPU-second; verifier >= 300 MB/s on ciphertext.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from device.sealing.clock import ManualClock
from device.sealing import pki
from device.sealing.state import SealingState
from device.sealing.verifier import Verifier

BITRATE = 8_000_000
FRAGMENT = BITRATE // 8  # one second of footage per fragment
SECONDS = 120


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def raw_sha256(buf: bytes, rounds: int) -> float:
    start = _cpu()
    for _ in range(rounds):
        hashlib.sha256(buf).digest()
    return len(buf) * rounds / (_cpu() - start) / 1e6


def raw_aead(buf: bytes, rounds: int) -> float:
    aead = ChaCha20Poly1305(os.urandom(32))
    start = _cpu()
    for i in range(rounds):
        aead.encrypt(i.to_bytes(12, "big"), buf, b"")
    return len(buf) * rounds / (_cpu() - start) / 1e6


def run() -> list[tuple[str, str, str]]:
    rows = []
    buf = os.urandom(FRAGMENT)
    sha = raw_sha256(buf, 400)
    aead = raw_aead(buf, 400)
    rows.append(("raw SHA-256 (baseline)", f"{sha:,.0f} MB/s", ""))
    rows.append(("raw ChaCha20-Poly1305 (baseline)", f"{aead:,.0f} MB/s", ""))
    # Sealing costs one AEAD pass and two SHA-256 passes (plaintext digest, leaf).
    ideal = 1 / (1 / aead + 2 / sha)
    with tempfile.TemporaryDirectory(prefix="bodycam-bench-") as tmp:
        root = Path(tmp)
        ca = pki.create_ca(root / "ca", "Bench")
        identity = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "bench", root / "arch")
        pki.enrol_device(ca, root / "rec", "B000001", pki.load_cert(identity.with_suffix(".crt")))
        clock = ManualClock()
        state = SealingState.open(root / "rec", clock)
        fragments = [os.urandom(FRAGMENT) for _ in range(4)]
        start_cpu, start_wall = _cpu(), time.perf_counter()
        for seg in range(SECONDS // 60):
            writer = state.open_segment("video/mp4", "010203")
            for i in range(60):
                clock.advance(1.0)
                writer.append(fragments[i % 4])
            writer.close({})
        cpu = _cpu() - start_cpu
        wall = time.perf_counter() - start_wall
        state.close()
        footage_per_cpu = SECONDS / cpu
        mbps = SECONDS * FRAGMENT / cpu / 1e6
        rows.append((
            "sealing, 8 Mbit/s footage",
            f"{footage_per_cpu:,.0f} s footage / CPU-s ({mbps:,.0f} MB/s; wall {wall:.2f} s incl. fsync)",
            f"{mbps / ideal:.2f} x ideal AEAD+2xSHA (target >= 100 s/CPU-s: {'OK' if footage_per_cpu >= 100 else 'MISSED'})",
        ))
        verifier = Verifier(pki.load_cert(root / "ca" / "ca.crt"))
        size = sum(p.stat().st_size for p in (root / "rec" / "segments").iterdir())
        start = _cpu()
        report, _ = verifier.verify_recording(root / "rec")
        vcpu = _cpu() - start
        if report.status != "verified":  # a bench of a failing verifier measures nothing
            raise RuntimeError(f"bench recording did not verify: {report.reasons}")
        vmbps = size / vcpu / 1e6
        rows.append((
            "verifier (ciphertext)",
            f"{vmbps:,.0f} MB/s",
            f"{vmbps / sha:.2f} x SHA-256 (target >= 300 MB/s: {'OK' if vmbps >= 300 else 'MISSED'})",
        ))
        with_key = Verifier(pki.load_cert(root / "ca" / "ca.crt"), pki.load_x25519_key(identity))
        start = _cpu()
        with_key.verify_recording(root / "rec")
        kmbps = size / (_cpu() - start) / 1e6
        rows.append(("verifier (+ plaintext)", f"{kmbps:,.0f} MB/s", f"{kmbps / ideal:.2f} x ideal"))
    return rows
