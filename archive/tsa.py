"""RFC 3161 time-stamps from the time-stamp authority named in the archive
config (``[lawful_use.tsa] url``), with the ``rfc3161-client`` library.

A time-stamp covers SHA-256 of the bytes given (an audit-log entry's
canonical payload, or a seal-log entry's record): the TSA's signed
``TSTInfo.messageImprint`` equals that hash, so ``openssl ts -verify -data
FILE -in RESPONSE.tsr -CAfile TSA.crt`` accepts it without our code.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

import rfc3161_client as rfc
from cryptography import x509

from bodycam.errors import BodycamError, TrustError

log = logging.getLogger(__name__)
CONTENT_TYPE_QUERY = "application/timestamp-query"  # RFC 3161 §3.4
CONTENT_TYPE_REPLY = "application/timestamp-reply"


class TimeStampError(BodycamError, RuntimeError):
    """The TSA could not be reached, refused, or answered something that does not fit the request."""


@dataclass(frozen=True)
class TimeStamp:
    response: bytes  # DER TimeStampResp (status + token), what `openssl ts -verify -in` reads
    gen_time_utc: str  # the TSA's time, ISO 8601 UTC
    serial: int
    sha256: str  # hex of the hashed message


def request_stamp(url: str, data: bytes, *, timeout: float = 20.0) -> TimeStamp:
    """Ask the TSA at ``url`` (HTTP POST, RFC 3161 §3.4) to stamp SHA-256(``data``).

    Checks that the answer is granted, carries our nonce and the imprint of
    ``data``.  Raises TimeStampError naming the TSA and what went wrong.
    """
    request = rfc.TimestampRequestBuilder(data=data, hash_algorithm=rfc.HashAlgorithm.SHA256,
                                          nonce=True, cert_req=True).build()
    http = urllib.request.Request(url, data=request.as_bytes(), method="POST",
                                  headers={"Content-Type": CONTENT_TYPE_QUERY})
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:  # noqa: S310 - URL from the config
            body = answer.read(1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise TimeStampError(f"time-stamp authority {url}: {exc}") from None
    try:
        response = rfc.decode_timestamp_response(body)
    except Exception as exc:  # noqa: BLE001 - the library raises several kinds for bad DER
        raise TimeStampError(f"time-stamp authority {url}: not an RFC 3161 response: {exc}") from None
    if response.status not in (0, 1):  # granted, grantedWithMods
        raise TimeStampError(f"time-stamp authority {url} refused: status {response.status} "
                             f"{response.status_string}")
    info = response.tst_info
    digest = hashlib.sha256(data).digest()
    if info.message_imprint.message != digest:
        raise TimeStampError(f"time-stamp authority {url} stamped another hash than ours")
    if info.nonce != request.nonce:
        raise TimeStampError(f"time-stamp authority {url} answered with another nonce (a replay?)")
    return TimeStamp(body, info.gen_time.strftime("%Y-%m-%dT%H:%M:%SZ"), info.serial_number, digest.hex())


def check_stamp(response: bytes, data: bytes, roots: list[x509.Certificate] | None = None) -> str:
    """Check a stored stamp covers ``data``; with ``roots``, also the TSA's
    signature and certificate chain (rfc3161-client's verifier).

    Returns the TSA's time (ISO 8601 UTC).  Raises TrustError saying why not.
    """
    try:
        parsed = rfc.decode_timestamp_response(response)
    except Exception as exc:  # noqa: BLE001
        raise TrustError(f"not an RFC 3161 response: {exc}") from None
    if parsed.tst_info.message_imprint.message != hashlib.sha256(data).digest():
        raise TrustError("the time-stamp covers another hash than this entry's")
    if roots:
        builder = rfc.VerifierBuilder()
        for root in roots:
            builder = builder.add_root_certificate(root)
        try:
            builder.build().verify_message(parsed, data)
        except rfc.VerificationError as exc:
            raise TrustError(f"time-stamp signature does not verify against the TSA certificate: {exc}") from None
    return parsed.tst_info.gen_time.strftime("%Y-%m-%dT%H:%M:%SZ")
