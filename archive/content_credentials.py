"""C2PA Content Credentials on exported footage (c2pa-python).

Each playable file in a package gets a **sidecar** manifest store
(``media/<name>.mp4.c2pa``), not an embedded one: the evidence media must
stay byte for byte what the recorder signed.  Any C2PA reader checks it with
the media beside it (c2pa-python: ``Reader("video/mp4", stream,
manifest_data)``).  The manifest names the device (and its certificate), the
capture-time signing (segment digest, fragments, clock state), the dock that
brought it in, and the archive that stored, receipted and exported it.

The signing credential is the agency's, given in ``[lawful_use.c2pa]``
(a certificate chain fit for C2PA: end-entity with digitalSignature and an
allowed EKU such as emailProtection or documentSigning; key ES256/ES384/
PS256/Ed25519).  The agency CA that certifies recorders is not used: C2PA
has its own certificate profile.
"""

from __future__ import annotations

import io
from typing import Any

from bodycam.errors import BodycamError

CLAIM_GENERATOR = {"name": "bodycam archive", "version": "1"}
ASSERTION = "cn.gov.bodycam.provenance"
DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


class ContentCredentialsError(BodycamError, RuntimeError):
    """The C2PA library refused to sign (bad credential or media)."""


def manifest_definition(segment: dict[str, Any], *, archive_id: str, agency: str, export: dict[str, Any]) -> dict:
    """The C2PA manifest for one exported segment (see the module docstring)."""
    return {
        "claim_generator_info": [CLAIM_GENERATOR],
        "title": segment["name"],
        "format": segment["media"],
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created", "digitalSourceType": DIGITAL_CAPTURE, "when": segment["opened_utc"],
                "softwareAgent": {"name": f"bodycam recorder {segment['device']}"}}]}},
            {"label": ASSERTION, "data": {
                "device": {"id": segment["device"], "certificate_sha256": segment.get("device_certificate"),
                           "officer": segment.get("officer")},
                "capture_signing": {"segment_digest": segment["segment_digest"], "fragments": segment["fragments"],
                                    "opened_utc": segment["opened_utc"], "closed_utc": segment.get("closed_utc"),
                                    "clock_state": (segment.get("clock") or {}).get("state"),
                                    "status": segment["status"], "signed_by": "device key, at capture"},
                "dock": {"source": segment.get("source"), "imported_utc": segment.get("imported_utc")},
                "archive": {"id": archive_id, "agency": agency, "receipt": "archive-receipt signature in manifest.json",
                            "retain_until": segment.get("retain_until")},
                "export": export}},
        ],
    }


def sign_sidecar(media: bytes, media_type: str, definition: dict, *, chain_pem: bytes, key_pem: bytes,
                 alg: str = "es256", tsa_url: str | None = None) -> bytes:
    """A C2PA manifest store for ``media`` (not embedded: ``media`` is unchanged)."""
    import c2pa

    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg.encode(), chain_pem, key_pem,
                                                           tsa_url.encode() if tsa_url else None))
        builder = c2pa.Builder(definition)
        builder.set_no_embed()
        return bytes(builder.sign(signer, media_type, io.BytesIO(media), io.BytesIO()))
    except c2pa.C2paError as exc:
        raise ContentCredentialsError(f"C2PA signing failed: {exc}") from None


def read_sidecar(media: bytes, media_type: str, sidecar: bytes, trust_anchors_pem: bytes | None = None
                 ) -> tuple[str | None, dict | None, dict | None]:
    """(validation state, active manifest, validation results) as c2pa-python's Reader sees them;
    with ``trust_anchors_pem`` the signing chain is checked against them (state ``Trusted``)."""
    import c2pa

    context = None
    if trust_anchors_pem:
        context = c2pa.Context.from_dict({"trust": {"trust_anchors": trust_anchors_pem.decode()},
                                          "verify": {"verify_trust": True}})
    reader = c2pa.Reader(media_type, io.BytesIO(media), sidecar, context=context)
    try:
        return reader.get_validation_state(), reader.get_active_manifest(), reader.get_validation_results()
    finally:
        reader.close()
