"""Revocation of lost or stolen recorders: an X.509 CRL signed by the agency CA.

``bodycam pki revoke`` adds a device certificate to ``CA_DIR/crl.pem`` with
the time from which its signatures are no longer accepted; ``bodycam verify
--crl FILE`` fails footage the device signed at or after that time and still
verifies what it signed before (docs/format.md §7.1).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from bodycam.errors import TrustError

from . import pki
from .fsutil import fsync_dir
from .safeio import MAX_CRL_FILE, read_bounded

CRL_FILE = "crl.pem"
# How long a CRL is announced as current; a verifier uses it regardless (the
# question it answers is "revoked from when", not "is this list fresh").
NEXT_UPDATE = dt.timedelta(days=30)


@dataclass(frozen=True)
class RevocationList:
    crl: x509.CertificateRevocationList

    def revoked_at(self, cert: x509.Certificate) -> dt.datetime | None:
        """When ``cert`` was revoked (UTC), or None if this list does not revoke it."""
        entry = self.crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        return entry.revocation_date_utc if entry is not None else None


def parse_crl(data: bytes, ca_cert: x509.Certificate, where: str) -> RevocationList:
    """A PEM CRL issued and signed by ``ca_cert``; TrustError otherwise."""
    try:
        crl = x509.load_pem_x509_crl(data)
        for revoked in crl:
            revoked.serial_number, revoked.revocation_date_utc
        valid = crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
        issuer_ok = crl.issuer == ca_cert.subject
    except (ValueError, TypeError, UnicodeError, KeyError, IndexError, OverflowError,
            UnsupportedAlgorithm, x509.InvalidVersion):
        raise TrustError(f"{where}: not a well-formed PEM X.509 CRL") from None
    if not (valid and issuer_ok):
        raise TrustError(f"{where}: CRL is not signed by the agency CA {pki.fingerprint(ca_cert)[:16]}…")
    return RevocationList(crl)


def load_crl(path: Path, ca_cert: x509.Certificate) -> RevocationList:
    return parse_crl(read_bounded(path, MAX_CRL_FILE, "CRL"), ca_cert, str(path))


def revoke(ca: pki.AgencyCA, ca_dir: Path, cert: x509.Certificate, when: dt.datetime) -> Path:
    """Add ``cert`` (revoked from ``when``) to ``ca_dir/crl.pem``, keeping earlier entries.

    The new list is written beside the old one and renamed over it (atomic);
    it is the CA's own file, not evidence.  Returns the CRL path.
    """
    pki.check_cert(cert, ca.cert, pki.ROLE_DEVICE, "certificate to revoke", at=False)
    path = Path(ca_dir) / CRL_FILE
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now)
        .next_update(now + NEXT_UPDATE)
    )
    if path.exists():
        for old in load_crl(path, ca.cert).crl:
            if old.serial_number != cert.serial_number:
                builder = builder.add_revoked_certificate(old)
    builder = builder.add_revoked_certificate(
        x509.RevokedCertificateBuilder()
        .serial_number(cert.serial_number)
        .revocation_date(when)
        .build()
    )
    crl = builder.sign(ca.key, None)
    tmp = path.with_name(f".{CRL_FILE}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, crl.public_bytes(serialization.Encoding.PEM))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path
