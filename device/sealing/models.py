"""Typed payloads of the signed records (docs/format.md §3–§5), parsed once.

Each model is strict: every field required unless said, of exactly its JSON
type (no coercion: ``"1"`` is not 1, ``true`` is not 1), with its format
(hex digests, timestamps, IDs), and no fields the format does not define,
except inside ``meta`` and the ``data`` of seal-log events the verifier does
not interpret.  ``parse_payload`` turns any validation failure into a
``FormatError`` that names the field, so a hostile payload gets a reason,
never an exception of another kind.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bodycam.errors import FormatError

from .format import CTX_CHECKPOINT, CTX_HEADER, CTX_LOG, CTX_MANIFEST, FORMAT_VERSION

# Spellings (docs/format.md §3.1 "Field formats").
HEX32 = r"^[0-9a-f]{64}$"  # a SHA-256 digest or fingerprint
RUN = r"^[0-9a-f]{16}$"
UTC = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
LOCAL = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}$"
DEVICE = r"^[A-Z0-9]{7}$"
OFFICER = r"^[A-Z0-9]{6,12}$"
SEGMENT = r"^[A-Z0-9]{7}_[A-Z0-9]{6,12}_[0-9]{14}_[0-9]{4,}$"
EVENT = r"^[a-z][a-z0-9-]{0,31}$"
DECIMAL = r"^-?(0|[1-9][0-9]{0,18})$"  # an integer that may exceed 2^53, as text
ZONE = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+){0,2}$"

Hex32 = Annotated[str, Field(pattern=HEX32)]
Utc = Annotated[str, Field(pattern=UTC)]
Local = Annotated[str, Field(pattern=LOCAL)]
DeviceId = Annotated[str, Field(pattern=DEVICE)]
OfficerId = Annotated[str, Field(pattern=OFFICER)]
SegmentName = Annotated[str, Field(pattern=SEGMENT)]
Run = Annotated[str, Field(pattern=RUN)]
DecimalText = Annotated[str, Field(pattern=DECIMAL)]
Count = Annotated[int, Field(ge=0)]
Media = Literal["video/mp4", "audio/mp4", "image/jpeg", "application/octet-stream"]
ClockState = Literal["synced", "rtc", "untrusted"]
Version = Literal[2]

if FORMAT_VERSION != 2:  # keeps ``Version`` in step with the format
    raise ImportError("device.sealing.models describes format version 2 only")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SegmentHeader(_Strict):
    ctx: Literal["bodycam/v2/segment-header"]
    v: Version
    device: DeviceId
    segment_seq: Count
    segment: SegmentName
    media: Media
    officer: OfficerId | None
    opened_utc: Utc
    opened_local: Local
    opened_mono_ns: DecimalText
    timezone: Annotated[str, Field(pattern=ZONE, max_length=64)]
    clock_state: ClockState
    prev_segment: Hex32 | None
    recipient: Hex32
    hpke_suite: Literal["DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/ChaCha20Poly1305"]
    wrapped_key: Annotated[str, Field(pattern=r"^[0-9a-f]{160}$")]
    aead: Literal["ChaCha20-Poly1305"]
    checkpoint_interval_ms: Annotated[int, Field(ge=0, le=10_000)]
    run: Run
    meta: dict[str, Any]


class Checkpoint(_Strict):
    ctx: Literal["bodycam/v2/checkpoint"]
    v: Version
    device: DeviceId
    segment_seq: Count
    fragments: Annotated[int, Field(ge=1)]
    chain: Hex32
    utc: Utc
    mono_ns: DecimalText


class FragmentEntry(_Strict):
    i: Count
    bytes: Count
    sha256: Hex32


class Truncation(_Strict):
    reason: Literal["unclean-stop"]
    after_fragment: Count
    covered_bytes: Count
    uncovered_bytes: Count
    uncovered_sha256: Hex32
    recovered_utc: Utc
    recovered_run: Run


class Manifest(_Strict):
    ctx: Literal["bodycam/v2/manifest"]
    v: Version
    device: DeviceId
    segment_seq: Count
    segment: SegmentName
    media: Media
    officer: OfficerId | None
    opened_utc: Utc
    opened_local: Local
    closed_utc: Utc
    closed_local: Local
    timezone: Annotated[str, Field(pattern=ZONE, max_length=64)]
    clock_state: ClockState
    prev_segment: Hex32 | None
    header_digest: Hex32
    chain: Hex32
    fragment_count: Count
    fragments: list[FragmentEntry]
    file_bytes: Count
    status: Literal["complete", "truncated"]
    truncated: Truncation | None
    meta: dict[str, Any]

    @model_validator(mode="after")
    def _consistent(self) -> "Manifest":
        if self.fragment_count != len(self.fragments):
            raise ValueError("fragment_count differs from the length of fragments")
        for n, entry in enumerate(self.fragments):
            if entry.i != n:
                raise ValueError(f"fragments[{n}] has i={entry.i}")
        if (self.status == "complete") != (self.truncated is None):
            raise ValueError("truncated must be null exactly when status is complete")
        if self.truncated is not None:
            t = self.truncated
            if t.after_fragment != self.fragment_count:
                raise ValueError("truncated.after_fragment differs from fragment_count")
            if t.covered_bytes + t.uncovered_bytes != self.file_bytes:
                raise ValueError("covered_bytes + uncovered_bytes differs from file_bytes")
        return self


class LogEntryPayload(_Strict):
    ctx: Literal["bodycam/v2/seal-log"]
    v: Version
    device: DeviceId
    seq: Count
    prev: Hex32
    utc: Utc
    mono_ns: DecimalText
    run: Run
    event: Annotated[str, Field(pattern=EVENT)]
    data: dict[str, Any]


# -- data of the seal-log events the verifier interprets (§5) --------------------------


class SegmentOpenedData(_Strict):
    segment_seq: Count
    segment: SegmentName
    header_digest: Hex32
    media: Media


class SegmentSealedData(_Strict):
    segment_seq: Count
    segment: SegmentName
    digest: Hex32
    status: Literal["complete", "truncated"]
    fragments: Count
    recovered: bool = False


class UncleanStopData(_Strict):
    segment_seq: Count
    segment: SegmentName
    after_fragment: Count
    uncovered_bytes: Count


class SignedMessageData(_Strict):
    payload: Annotated[str, Field(max_length=128 * 1024)]
    signature: Annotated[str, Field(max_length=128)]
    certificate: Annotated[str, Field(max_length=16 * 1024)]


class ReceiptData(_Strict):
    segment_seq: Count
    segment: SegmentName
    digest: Hex32
    archive: Annotated[str, Field(max_length=64)]
    retain_until: str | None
    receipt_sha256: Hex32
    receipt: SignedMessageData  # the archive-signed receipt itself (§12)


class DeletionData(_Strict):
    segment_seq: Count
    segment: SegmentName
    digest: Hex32
    reason: Annotated[str, Field(max_length=200)]


M = TypeVar("M", bound=BaseModel)


def parse_payload(model: type[M], obj: Any, where: str) -> M:
    """Validate ``obj`` as ``model``; FormatError naming the first bad field."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        more = exc.error_count() - 1
        tail = f" (and {more} more)" if more > 0 else ""
        raise FormatError(f"{model.__name__}: {loc}: {first.get('msg', 'invalid')}{tail}", where) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise FormatError(f"{model.__name__}: {exc.__class__.__name__}", where) from None


CTX_MODELS: dict[str, type[BaseModel]] = {
    CTX_HEADER: SegmentHeader,
    CTX_CHECKPOINT: Checkpoint,
    CTX_MANIFEST: Manifest,
    CTX_LOG: LogEntryPayload,
}
