"""Recorder commands: ``bodycam demo`` (and, with the capture pipeline, ``record``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click

from .clock import SystemClock
from .demo import DEMO_OFFICER, enrol_demo
from .sealing import pki
from .sealing.state import SealingState
from .sealing.unseal import unseal_recordings
from .sealing.verifier import Verifier


@click.command()
@click.option("--workdir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Empty folder for the demo's keys, recorder state and output.")
@click.option("--seconds", default=20, show_default=True, type=click.IntRange(1, 3600),
              help="How long to record.")
@click.option("--segment-seconds", default=5, show_default=True, type=click.IntRange(1, 600),
              help="Segment length; several chained segments are the point.")
def demo(workdir: Path, seconds: int, segment_seconds: int) -> None:
    """Enrol a simulated recorder, record, seal, verify and unseal.

    Leaves the recorder's state in WORKDIR/recorder, the keys (agency CA and
    the archive identity that decrypts) in WORKDIR/keys, and the decrypted
    media in WORKDIR/unsealed.
    """
    keys = enrol_demo(workdir)
    clock = SystemClock()
    state = SealingState.open(keys.state, clock)
    segments = 0
    try:
        for first in range(0, seconds, segment_seconds):
            writer = state.open_segment("application/octet-stream", DEMO_OFFICER)
            for second in range(first, min(first + segment_seconds, seconds)):
                # A stand-in fragment: one second of "footage" as bytes.
                writer.append(hashlib.sha256(str(second).encode()).digest() * 4096)
            writer.close({"demo": "synthetic fragments"})
            segments += 1
    finally:
        state.close()
    anchor = pki.load_cert(keys.ca_cert)
    verifier = Verifier(anchor, pki.load_x25519_key(keys.archive_identity))
    report = verifier.verify([keys.state])
    result = unseal_recordings(verifier, keys.state, workdir / "unsealed")
    click.echo(f"segments     {segments} sealed, chained")
    click.echo(f"recorded     {seconds} s")
    click.echo(f"verification {'VERIFIED' if report.ok else 'FAILED'} against {report.trust_anchor['sha256'][:16]}")
    click.echo(f"unsealed     {len(result.files) // 2} files in {workdir / 'unsealed'}")
    click.echo(f"try          bodycam verify --ca {keys.ca_cert} {keys.state}")
    raise SystemExit(0 if report.ok and result.ok else 1)


commands = (demo,)
