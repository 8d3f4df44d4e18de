"""``bodycam pki``, ``bodycam verify`` and ``bodycam unseal``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from cryptography import x509

from bodycam.errors import InputError, UsageError

from . import pki
from .attestation import load_attestation
from .excerpt import make_excerpt
from .report import Report
from .safeio import check_folder
from .revocation import RevocationList, load_crl, revoke
from .unseal import unseal_recordings
from .verifier import Verifier

DEFAULT_CA = Path("/etc/bodycam/agency-ca.crt")


def load_trust_anchor(ca: Path | None) -> x509.Certificate:
    path = ca or Path(os.environ.get("BODYCAM_CA", DEFAULT_CA))
    if not path.exists() and not path.is_symlink():
        raise UsageError(
            f"no trust anchor: {path} does not exist; pass --ca AGENCY_CERT "
            "(the agency CA certificate, ca.crt)"
        )
    cert = pki.load_cert(path, "agency CA certificate")
    pki.check_ca_cert(cert, str(path))
    return cert


def check_recording_dirs(paths: tuple[Path, ...]) -> list[Path]:
    """The recording folders named on a command line, each checked by ``check_folder``
    (click's own checks are off, ``readable=False``, so that one message says what is wrong
    with which path) and holding identity/device.crt.  Raises InputError (exit 2)."""
    out = []
    for path in paths:
        check_folder(path, "recording folder")
        cert = path / pki.IDENTITY_DIR / pki.DEVICE_CERT
        if not cert.exists() and not cert.is_symlink():
            raise InputError(f"{path}: no identity/device.crt; not a recording folder (expected "
                             "identity/device.crt, seallog/, segments/ as in a recorder's state or an "
                             "evidence export)")
        out.append(path)
    return out


ca_option = click.option(
    "--ca", type=click.Path(path_type=Path, dir_okay=False),
    help="Agency CA certificate to trust (default $BODYCAM_CA or /etc/bodycam/agency-ca.crt).",
)
identity_option_help = "Archive recipient private key (X25519 PEM)"
ca_dir_option = click.option(
    "--ca-dir", required=True, type=click.Path(path_type=Path, file_okay=False),
    help="The agency CA's folder (ca.key, ca.crt, crl.pem) made by `bodycam pki init-ca`.",
)


# --------------------------------------------------------------------------
# verify


def render_table(report: Report) -> str:
    lines = [
        f"trust anchor  {report.trust_anchor['subject']}",
        f"              sha256 {report.trust_anchor['sha256']}",
        f"plaintext     {'checked with the archive identity' if report.plaintext_checked else 'not checked (no --identity)'}",
    ]
    for rec in report.recordings:
        log = rec.seal_log
        lines += [
            "",
            f"recording     {rec.path}",
            f"device        {rec.device or '?'}  certificate {(rec.device_certificate or '?')[:16]}",
            f"seal log      {log.status}, {log.entries} entries in {log.files} files",
        ]
        lines += [f"  ! {reason}" for reason in rec.reasons + log.reasons]
        lines += [f"  - {note}" for note in rec.notes]
        if rec.segments:
            lines.append(f"  {'SEQ':>4}  {'SEGMENT':<36} {'MEDIA':<11} {'FRAGS':>5}  {'STATUS':<9} REASON")
        for seg in rec.segments:
            seq = "-" if seg.seq is None else str(seg.seq)
            reason = "; ".join(seg.reasons)
            lines.append(
                f"  {seq:>4}  {seg.name:<36} {seg.media or '?':<11} {seg.fragments:>5}  "
                f"{seg.status:<9} {reason}"
            )
        lines.append(f"  => {rec.status.upper()}")
    bad = sum(1 for r in report.recordings if not r.ok)
    lines += ["", "RESULT: VERIFIED" if report.ok else f"RESULT: NOT VERIFIED ({bad} recording(s))"]
    return "\n".join(lines)


def load_revocations(crl: Path | None, anchor: x509.Certificate) -> RevocationList | None:
    return load_crl(crl, anchor) if crl is not None else None


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (docs/format.md §8).")
@click.option("--identity", type=click.Path(path_type=Path, dir_okay=False),
              help=f"{identity_option_help}: also decrypt and check the plaintext.")
@ca_option
@click.option("--crl", type=click.Path(path_type=Path, dir_okay=False),
              help="The agency CA's revocation list (crl.pem from `bodycam pki revoke`): footage a "
                   "revoked device signed at or after its revocation time fails.")
@click.option("--attestation", type=click.Path(path_type=Path, dir_okay=False),
              help="An archive-signed log-head attestation (docs/format.md §12.1): the recording "
                   "must reach the seal-log entry it names and agree with it; closes the gap of a "
                   "log cut together with its newest segments.")
def verify(paths: tuple[Path, ...], as_json: bool, identity: Path | None, ca: Path | None,
           crl: Path | None, attestation: Path | None) -> None:
    """Verify sealed recordings against the agency CA.

    Each PATH is a recording folder (a recorder's state directory or a copy
    of its identity/device.crt, seallog/ and segments/).  Checks signatures,
    the certificate chain, the seal log's chain, that no segment is missing,
    inserted, reordered, duplicated or replayed, and the ciphertext; with
    --identity also the plaintext.

    What this proves offline, and what it cannot (a seal log cut at a record
    boundary together with its newest segments): docs/format.md §7.8.
    The folder's own identity/ca.crt is never trusted: only --ca.

    Exit status: 0 everything verified; 1 the material was read and something
    failed or is truncated (power loss); 2 bad usage, or an input named on
    the command line (--ca, --identity, --crl, a PATH) unusable.
    """
    roots = check_recording_dirs(paths)  # the paths first: they are what was typed last
    anchor = load_trust_anchor(ca)
    key = pki.load_x25519_key(identity) if identity else None
    attested = load_attestation(attestation, anchor) if attestation else None
    report = Verifier(anchor, key, load_revocations(crl, anchor)).verify(roots, attested)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_table(report))
    raise SystemExit(0 if report.ok else 1)


# --------------------------------------------------------------------------
# unseal


@click.command()
@click.argument("src", type=click.Path(path_type=Path, readable=False))
@click.option("--identity", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help=identity_option_help)
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the media files and their metadata JSON (created; existing files are never overwritten).")
@ca_option
@click.option("--unsafe-skip-verification", is_flag=True,
              help="UNSAFE: also decrypt segments that failed verification. The output is marked unverified.")
def unseal(src: Path, identity: Path, out: Path, ca: Path | None, unsafe_skip_verification: bool) -> None:
    """Decrypt a verified recording into playable media files.

    Writes NAME.mp4 / .m4a / .jpg and NAME.json (the signed manifest and the
    verification result) for every segment.  A recording that does not
    verify is refused unless --unsafe-skip-verification is given.
    """
    (root,) = check_recording_dirs((src,))
    anchor = load_trust_anchor(ca)
    key = pki.load_x25519_key(identity)
    result = unseal_recordings(Verifier(anchor, key), root, out, unsafe=unsafe_skip_verification)
    for line in result.lines:
        click.echo(line)
    raise SystemExit(0 if result.ok else 1)


# --------------------------------------------------------------------------
# excerpt


@click.command()
@click.argument("src", type=click.Path(path_type=Path, readable=False))
@click.option("--segment", "names", multiple=True, required=True,
              help="A segment to include (its name, e.g. A123456_010203_20261127091500_0042); repeat.")
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="New folder for the excerpt (must not exist).")
@click.option("--purpose", default="", help="What the excerpt is for, e.g. the case number.")
@ca_option
def excerpt(src: Path, names: tuple[str, ...], out: Path, purpose: str, ca: Path | None) -> None:
    """Write an excerpt: chosen segments plus the seal log that places them.

    The excerpt verifies on its own with `bodycam verify OUT`; every other
    segment of the device is reported as `excluded` (an intentional gap).
    See docs/format.md §10.
    """
    (root,) = check_recording_dirs((src,))
    anchor = load_trust_anchor(ca)
    make_excerpt(Verifier(anchor), root, list(names), out, purpose)
    click.echo(f"excerpt of {len(names)} segment(s) in {out}")


# --------------------------------------------------------------------------
# pki


@click.group()
def pki_group() -> None:
    """Create the agency CA and certify devices, docks and the archive.

    Keys are PEM (PKCS#8, mode 0600) and certificates X.509 PEM, readable
    with openssl.  Existing keys are never overwritten.
    """


@pki_group.command("init-ca")
@click.option("--ca-dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the new CA's key and certificate (created); keep it offline.")
@click.option("--agency", required=True, help="Agency name, e.g. 'Shuncheng District Market Regulation'.")
def init_ca(ca_dir: Path, agency: str) -> None:
    """Create the agency CA (ca.key, ca.crt) in CA_DIR; keep it offline."""
    if (ca_dir / "ca.key").exists():
        raise UsageError(f"{ca_dir}/ca.key exists; a CA is never replaced")
    ca = pki.create_ca(ca_dir, agency)
    click.echo(f"agency CA {pki.fingerprint(ca.cert)} in {ca_dir}")


@pki_group.command("issue")
@ca_dir_option
@click.option("--role", required=True,
              type=click.Choice([pki.ROLE_DOCK, pki.ROLE_ARCHIVE_RECIPIENT, pki.ROLE_ARCHIVE_RECEIPT]),
              help="dock: a dock's TLS and signing key (Ed25519); archive-recipient: the X25519 key "
                   "recorders encrypt footage to; archive-receipt: the archive's TLS and receipt-signing "
                   "key (Ed25519).")
@click.option("--id", "entity_id", required=True, help="ID of the dock or archive.")
@click.option("--out-dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the key (mode 0600) and its certificate (created; a key there is never "
                   "overwritten).")
def issue(ca_dir: Path, role: str, entity_id: str, out_dir: Path) -> None:
    """Generate a dock or archive key in OUT_DIR and certify it."""
    key_path = pki.issue_keypair(pki.load_ca(ca_dir), role, entity_id, out_dir)
    click.echo(f"{role} key {key_path} and certificate {key_path.with_suffix('.crt')}")


@pki_group.command("enrol-device")
@ca_dir_option
@click.option("--state", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The recorder's state directory; its key is generated here.")
@click.option("--device-id", required=True, help="7-character device serial, e.g. A123456.")
@click.option("--recipient-cert", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The archive recipient certificate the recorder encrypts to.")
def enrol_device(ca_dir: Path, state: Path, device_id: str, recipient_cert: Path) -> None:
    """Enrol a recorder: generate its key in STATE and certify it."""
    ca = pki.load_ca(ca_dir)
    rcert = pki.load_cert(recipient_cert, "archive recipient certificate")
    key_path = pki.enrol_device(ca, state, device_id, rcert)
    click.echo(f"device {device_id} enrolled; key {key_path} (never leaves this folder)")


@pki_group.command("show")
@click.argument("cert", type=click.Path(path_type=Path, dir_okay=False))
def show(cert: Path) -> None:
    """Print a certificate's role, ID, validity and fingerprint."""
    c = pki.load_cert(cert)
    click.echo(f"role        {pki.cert_role(c)}")
    click.echo(f"id          {pki.cert_id(c)}")
    click.echo(f"issuer      {c.issuer.rfc4514_string()}")
    click.echo(f"valid       {c.not_valid_before_utc:%Y-%m-%d} to {c.not_valid_after_utc:%Y-%m-%d}")
    click.echo(f"sha256      {pki.fingerprint(c)}")


@pki_group.command("revoke")
@ca_dir_option
@click.option("--cert", "cert_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The device certificate to revoke (identity/device.crt of the lost recorder).")
@click.option("--at", "at_text", default=None,
              help="UTC time from which its signatures are refused, YYYY-MM-DDThh:mm:ssZ "
                   "(default now): when the recorder was lost or stolen.")
def revoke_cmd(ca_dir: Path, cert_path: Path, at_text: str | None) -> None:
    """Revoke a lost or stolen recorder: add it to CA_DIR/crl.pem.

    Footage the device signed before --at still verifies; footage signed at
    or after it fails with `bodycam verify --crl CA_DIR/crl.pem`.
    """
    import datetime as dt

    if at_text is None:
        when = dt.datetime.now(dt.timezone.utc)
    else:
        try:
            when = dt.datetime.strptime(at_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise UsageError(f"--at {at_text!r} is not YYYY-MM-DDThh:mm:ssZ") from None
    ca = pki.load_ca(ca_dir)
    cert = pki.load_cert(cert_path, "device certificate")
    path = revoke(ca, ca_dir, cert, when)
    click.echo(f"revoked {pki.cert_id(cert)} (serial {cert.serial_number:x}) from "
               f"{when:%Y-%m-%dT%H:%M:%SZ}; CRL {path}")


pki_group.name = "pki"
commands = (pki_group, verify, unseal, excerpt)
