"""Keys and certificates: the agency CA and what it certifies.

Everything is standard PEM / X.509 that ``openssl`` reads.  A certificate's
role is its subject's organizational unit (OU); its common name (CN) is the
ID of the device, dock or archive.  Private keys are PKCS#8 PEM files of mode
0600, written once and never overwritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.x509.oid import NameOID

from bodycam.errors import TrustError, UsageError

from .fsutil import write_new_file
from .safeio import MAX_CERTIFICATE_FILE, MAX_KEY_FILE, read_bounded

ROLE_CA = "agency-ca"
ROLE_DEVICE = "device"
ROLE_DOCK = "dock"
ROLE_ARCHIVE_RECIPIENT = "archive-recipient"
ROLE_ARCHIVE_RECEIPT = "archive-receipt"
ROLES = (ROLE_DEVICE, ROLE_DOCK, ROLE_ARCHIVE_RECIPIENT, ROLE_ARCHIVE_RECEIPT)

# GA/T 947 practice: a 7-character device serial; officer numbers of 6+.
DEVICE_ID_RE = re.compile(r"^[A-Z0-9]{7}$")
OFFICER_ID_RE = re.compile(r"^[A-Z0-9]{6,12}$")
ENTITY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Files in a recorder's state directory (identity/ subfolder).
IDENTITY_DIR = "identity"
DEVICE_KEY = "device.key"
DEVICE_CERT = "device.crt"
CA_CERT = "ca.crt"
RECIPIENT_CERT = "archive-recipient.crt"


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID_RE.match(device_id):
        raise UsageError(
            f"device ID {device_id!r} is not 7 characters A-Z/0-9 (e.g. A123456)"
        )
    return device_id


def check_officer_id(officer_id: str) -> str:
    if not OFFICER_ID_RE.match(officer_id):
        raise UsageError(
            f"officer ID {officer_id!r} is not 6-12 characters A-Z/0-9 (e.g. 010203)"
        )
    return officer_id


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, hex: how the formats name a cert."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _name(org: str, role: str, cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def cert_role(cert: x509.Certificate) -> str | None:
    """The subject's OU (the role), or None; TrustError if the subject cannot be parsed."""
    try:
        return _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    except ValueError:
        raise TrustError("certificate subject cannot be parsed") from None


def cert_id(cert: x509.Certificate) -> str | None:
    """The subject's CN (the ID), or None; TrustError if the subject cannot be parsed."""
    try:
        return _attr(cert.subject, NameOID.COMMON_NAME)
    except ValueError:
        raise TrustError("certificate subject cannot be parsed") from None


def parse_cert(data: bytes, where: str, what: str = "certificate") -> x509.Certificate:
    """Parse a PEM certificate completely, now.

    ``cryptography`` decodes names, validity and extensions lazily, so a
    corrupted certificate can load and then raise ValueError at first use.
    Everything the project reads of a certificate is touched here once, so
    a certificate that loads is whole; TrustError otherwise.
    """
    try:
        cert = x509.load_pem_x509_certificate(data)
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        cert.not_valid_before_utc, cert.not_valid_after_utc
        for ext in cert.extensions:
            ext.value
        cert.public_key()
        cert.public_bytes(serialization.Encoding.DER)
        cert.serial_number
    except (ValueError, TypeError, UnicodeError, KeyError, IndexError, OverflowError,
            UnsupportedAlgorithm, x509.InvalidVersion):
        # KeyError: cryptography's name decoder on an unknown ASN.1 string tag
        # (found by tests/test_parsers_fuzz.py).
        raise TrustError(f"{where}: not a well-formed PEM X.509 {what}") from None
    # cryptography can load a certificate with an unsupported key and fail only here.
    return cert


# --------------------------------------------------------------------------
# reading and writing PEM files


def write_private_key(path: Path, key: Ed25519PrivateKey | X25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_new_file(path, pem, mode=0o600)


def write_cert(path: Path, cert: x509.Certificate) -> None:
    write_new_file(path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _read(path: Path, what: str) -> bytes:
    return read_bounded(path, MAX_KEY_FILE, what)


def load_cert(path: Path, what: str = "certificate", *, follow_links: bool = True) -> x509.Certificate:
    """Read (regular file, bounded) and parse a PEM certificate; InputError / TrustError."""
    data = read_bounded(path, MAX_CERTIFICATE_FILE, what, follow_links=follow_links)
    return parse_cert(data, str(path), what)


def load_ed25519_key(path: Path, what: str = "signing key") -> Ed25519PrivateKey:
    data = _read(path, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TrustError(f"{path}: not an unencrypted PEM private key ({what})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TrustError(f"{path}: {what} must be Ed25519, found {type(key).__name__}")
    return key


def load_x25519_key(path: Path, what: str = "archive identity") -> X25519PrivateKey:
    data = _read(path, what)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TrustError(f"{path}: not an unencrypted PEM private key ({what})") from None
    if not isinstance(key, X25519PrivateKey):
        raise TrustError(f"{path}: {what} must be X25519, found {type(key).__name__}")
    return key


# --------------------------------------------------------------------------
# the CA


@dataclass(frozen=True)
class AgencyCA:
    key: Ed25519PrivateKey
    cert: x509.Certificate

    @property
    def organization(self) -> str:
        return _attr(self.cert.subject, NameOID.ORGANIZATION_NAME) or ""

    def issue(
        self,
        role: str,
        entity_id: str,
        public_key: Ed25519PublicKey | X25519PublicKey,
        days: int = 3650,
    ) -> x509.Certificate:
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if role == ROLE_ARCHIVE_RECIPIENT:
            if not isinstance(public_key, X25519PublicKey):
                raise UsageError("the archive recipient key must be X25519")
            usage = dict(digital_signature=False, key_agreement=True)
        else:
            if not isinstance(public_key, Ed25519PublicKey):
                raise UsageError(f"a {role} key must be Ed25519")
            usage = dict(digital_signature=True, key_agreement=False)
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(self.organization, role, entity_id))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                    **usage,
                ),
                critical=True,
            )
        )
        return builder.sign(self.key, None)


def create_ca(ca_dir: Path, organization: str, days: int = 7300) -> AgencyCA:
    ca_dir = Path(ca_dir)
    ca_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    name = _name(organization, ROLE_CA, f"{organization} evidence CA")
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, None)
    )
    write_private_key(ca_dir / "ca.key", key)
    write_cert(ca_dir / "ca.crt", cert)
    return AgencyCA(key, cert)


def load_ca(ca_dir: Path) -> AgencyCA:
    ca_dir = Path(ca_dir)
    return AgencyCA(
        load_ed25519_key(ca_dir / "ca.key", "agency CA key"),
        load_cert(ca_dir / "ca.crt", "agency CA certificate"),
    )


# --------------------------------------------------------------------------
# checking a certificate against the trust anchor


def check_ca_cert(ca_cert: x509.Certificate, where: str) -> None:
    """TrustError unless an agency CA certificate (§1): OU agency-ca, Ed25519,
    basicConstraints CA:TRUE, validly self-signed."""
    if cert_role(ca_cert) != ROLE_CA:
        raise TrustError(f"{where}: not an agency CA certificate (OU={cert_role(ca_cert)!r})")
    try:
        key = ca_cert.public_key()
        is_ca = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError, UnsupportedAlgorithm):
        raise TrustError(f"{where}: CA certificate lacks a usable key or basicConstraints") from None
    if not isinstance(key, Ed25519PublicKey):
        raise TrustError(f"{where}: an agency CA key must be Ed25519, found {type(key).__name__}")
    if not is_ca:
        raise TrustError(f"{where}: CA certificate without CA:TRUE")
    try:
        ca_cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise TrustError(f"{where}: CA certificate is not validly self-signed") from None


def check_cert(
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    role: str,
    where: str,
    entity_id: str | None = None,
    at: dt.datetime | None | bool = None,
) -> None:
    """Raise TrustError unless ``cert`` is a ``role`` end-entity certificate issued
    by ``ca_cert`` and valid at ``at`` (default now; ``False``: time not judged
    here, the caller judges it at the signed time of what it signed)."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise TrustError(
            f"{where}: certificate {cert_id(cert)!r} was not issued by the agency CA "
            f"{fingerprint(ca_cert)[:16]}…"
        ) from None
    if cert_role(cert) != role:
        raise TrustError(f"{where}: certificate role is {cert_role(cert)!r}, expected {role!r}")
    if entity_id is not None and cert_id(cert) != entity_id:
        raise TrustError(f"{where}: certificate is for {cert_id(cert)!r}, expected {entity_id!r}")
    check_end_entity(cert, where)
    if at is not False:
        check_validity(cert, where, at or _now())


def check_end_entity(cert: x509.Certificate, where: str) -> None:
    """An end-entity certificate: basicConstraints CA:FALSE (present), keyUsage present
    and without keyCertSign / cRLSign; TrustError otherwise."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise TrustError(f"{where}: certificate lacks basicConstraints (CA:FALSE required)") from None
    if bc.ca:
        raise TrustError(f"{where}: certificate has CA:TRUE; a device, dock or archive key may not issue certificates")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise TrustError(f"{where}: certificate lacks keyUsage; not an end-entity certificate") from None
    if ku.key_cert_sign or ku.crl_sign:
        raise TrustError(f"{where}: certificate may sign certificates or CRLs (keyUsage)")


def check_validity(cert: x509.Certificate, where: str, when: dt.datetime) -> None:
    """TrustError unless ``when`` lies within the certificate's validity."""
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise TrustError(
            f"{where}: certificate valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}, not at {when:%Y-%m-%d %H:%M} UTC"
        )


# --------------------------------------------------------------------------
# enrolment


def issue_keypair(
    ca: AgencyCA, role: str, entity_id: str, out_dir: Path, stem: str | None = None
) -> Path:
    """Generate a key for an archive or dock in ``out_dir`` and certify it."""
    if not ENTITY_ID_RE.match(entity_id):
        raise UsageError(f"ID {entity_id!r} must be 1-64 characters A-Z a-z 0-9 . _ -")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or role
    key: Ed25519PrivateKey | X25519PrivateKey
    if role == ROLE_ARCHIVE_RECIPIENT:
        key = X25519PrivateKey.generate()
    else:
        key = Ed25519PrivateKey.generate()
    key_path = out_dir / f"{stem}.key"
    write_private_key(key_path, key)
    write_cert(out_dir / f"{stem}.crt", ca.issue(role, entity_id, key.public_key()))
    return key_path


def enrol_device(
    ca: AgencyCA, state_dir: Path, device_id: str, recipient_cert: x509.Certificate
) -> Path:
    """Enrol a recorder whose state lives in ``state_dir``.

    The Ed25519 key is generated inside the state directory and only its
    public half goes to the CA, as a certificate signing request would.
    """
    check_device_id(device_id)
    check_cert(recipient_cert, ca.cert, ROLE_ARCHIVE_RECIPIENT, "archive recipient certificate")
    ident = Path(state_dir) / IDENTITY_DIR
    ident.mkdir(parents=True, exist_ok=True)
    os.chmod(ident, 0o700)
    key_path = ident / DEVICE_KEY
    if key_path.exists():
        raise UsageError(f"{key_path}: this recorder is already enrolled; keys are never replaced")
    key = Ed25519PrivateKey.generate()
    write_private_key(key_path, key)
    write_cert(ident / DEVICE_CERT, ca.issue(ROLE_DEVICE, device_id, key.public_key()))
    write_cert(ident / CA_CERT, ca.cert)
    write_cert(ident / RECIPIENT_CERT, recipient_cert)
    return key_path
