"""``bodycam demo``: the whole flow on simulated hardware, in one folder.

    DIR/keys/ca/          agency CA (ca.key, ca.crt)
    DIR/keys/archive/     archive recipient key (the identity that decrypts)
    DIR/recorder/         the recorder's state (identity/, seallog/, segments/)
    DIR/unsealed/         what `bodycam unseal` wrote
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bodycam.errors import UsageError

from .sealing import pki

DEMO_DEVICE = "A123456"
DEMO_OFFICER = "010203"
DEMO_AGENCY = "Demo District Administrative Enforcement"


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
