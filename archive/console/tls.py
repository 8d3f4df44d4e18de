"""TLS for the console.

Browsers accept ECDSA and RSA certificates, not the Ed25519 ones the
agency CA issues to the archive service for docks (RFC 8410 keys are not in
Chromium's or Firefox's TLS stacks).  So the console takes its own
certificate and key (``--tls-certificate``/``--tls-key``: the agency's web
certificate in production); :func:`make_web_certificate` makes a
self-signed ECDSA P-256 one for the demo and the tests.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

WEB_CERT_DAYS = 397  # CA/Browser Forum ceiling for a server certificate's life


def make_web_certificate(out_dir: Path, hosts: list[str], *, name: str = "bodycam station console"
                         ) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 server certificate for ``hosts`` (names or IP
    addresses).  Returns (certificate path, key path); the key file is 0600."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    alt: list[x509.GeneralName] = []
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=WEB_CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = out_dir / "console.crt", out_dir / "console.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
        f.flush()
        os.fsync(f.fileno())
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
