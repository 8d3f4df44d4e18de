"""``bodycam demo``: the whole flow on simulated hardware, in one folder.

    DIR/keys/ca/          agency CA (ca.key, ca.crt)
    DIR/keys/archive/     archive recipient key (the identity that decrypts)
    DIR/recorder/         the recorder's state (identity/, seallog/, segments/)
    DIR/unsealed/         what `bodycam unseal` wrote
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bodycam.errors import InputError, UsageError

from .config import load_hw_config
from .sealing import pki

DEMO_DEVICE = "A123456"
DEMO_OFFICER = "010203"
DEMO_AGENCY = "Demo District Administrative Enforcement"
SIM_CONFIG = Path(__file__).resolve().parent.parent / "hw-configs" / "sim.toml"
STANDBY_SECONDS = 2.0


@dataclass(frozen=True)
class DemoKeys:
    ca_dir: Path
    ca_cert: Path
    archive_identity: Path
    recipient_cert: Path
    state: Path


def enrol_demo(workdir: Path, device_id: str = DEMO_DEVICE) -> DemoKeys:
    """Create a CA and an archive identity and enrol a sim recorder under workdir."""
    keys = workdir / "keys"
    state = workdir / "recorder"
    if (keys / "ca" / "ca.key").exists() or (state / pki.IDENTITY_DIR).exists():
        raise UsageError(f"{workdir} already holds a demo; use a new --workdir")
    ca = pki.create_ca(keys / "ca", DEMO_AGENCY)
    archive_dir = keys / "archive"
    identity = pki.issue_keypair(ca, pki.ROLE_ARCHIVE_RECIPIENT, "archive-demo", archive_dir)
    recipient_cert = identity.with_suffix(".crt")
    pki.enrol_device(ca, state, device_id, pki.load_cert(recipient_cert))
    return DemoKeys(keys / "ca", keys / "ca" / "ca.crt", identity, recipient_cert, state)


def run_demo(workdir: Path, seconds: int, segment_seconds: int, config_path: Path | None,
             echo: Callable[[str], None]) -> bool:
    from .recorder import REFUSAL, Recorder
    from .sealing.unseal import unseal_recordings
    from .sealing.verifier import Verifier

    config_path = config_path or SIM_CONFIG
    if not config_path.exists():
        raise InputError(f"{config_path}: hw-config not found; pass --config")
    config = load_hw_config(config_path)
    config = config.model_copy(update={
        "recording": config.recording.model_copy(update={"segment_seconds": segment_seconds})})
    keys = enrol_demo(workdir)
    echo(f"enrolled device {DEMO_DEVICE}; agency CA and archive identity in {workdir / 'keys'}")
    recorder = Recorder(config, keys.state, config_name=config_path.name, officer=DEMO_OFFICER)
    events = []
    try:
        recorder.power_on()
        time.sleep(STANDBY_SECONDS)  # let the pre-roll fill a little
        preroll = recorder.start(trigger="demo")
        echo(f"recording {seconds} s (pre-roll {preroll:.1f} s) ...")
        script = {
            seconds * 0.2: ("notify", recorder.notify),
            seconds * 0.4: ("mark", recorder.mark),
            seconds * 0.6: ("photo", recorder.photo),
            seconds * 0.8: ("refusal mark", lambda: recorder.mark(REFUSAL)),
        }
        start = time.monotonic()
        for at, (name, action) in sorted(script.items()):
            time.sleep(max(0.0, start + at - time.monotonic()))
            action()
            events.append(name)
            echo(f"  {time.monotonic() - start:5.1f} s  {name}")
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        recorder.stop(reason="demo")
        sealed = list(recorder.segmenter.sealed)
    finally:
        recorder.shutdown(reason="demo")
    anchor = pki.load_cert(keys.ca_cert)
    verifier = Verifier(anchor, pki.load_x25519_key(keys.archive_identity))
    report = verifier.verify([keys.state])
    result = unseal_recordings(verifier, keys.state, workdir / "unsealed")
    media = sorted(p.name for p in result.files if p.suffix != ".json")
    echo(f"segments     {len(sealed)} video segments sealed and chained, plus {len(media) - len(sealed)} photo")
    echo(f"recorded     {seconds} s + {preroll:.1f} s pre-roll")
    echo(f"events       {', '.join(events)}")
    echo(f"verification {'VERIFIED' if report.ok else 'FAILED'} against agency CA "
         f"{report.trust_anchor['sha256'][:16]} (plaintext checked)")
    echo(f"unsealed     {len(media)} media files in {workdir / 'unsealed'}")
    for line in media:
        echo(f"               {line}")
    echo(f"try          bodycam verify --ca {keys.ca_cert} {keys.state}")
    return report.ok and result.ok
