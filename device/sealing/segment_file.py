"""Reading segment and manifest files (structure only; no trust decisions).

``scan_segment`` walks a ``.bcseg`` file once, recomputing the hash chain as
it goes, so that checkpoints can later be compared with the chain value at
their position.  Signatures are checked by the caller (verifier, recovery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bodycam.errors import FormatError

from .format import (
    MAX_SIGNED_PAYLOAD,
    SIGNATURE_LEN,
    CTX_CHECKPOINT,
    CTX_HEADER,
    CTX_MANIFEST,
    FRAGMENT_HEAD,
    AEAD_TAG_LEN,
    MAGIC_MANIFEST,
    MAGIC_SEGMENT,
    REC_CHECKPOINT,
    REC_FRAGMENT,
    REC_HEADER,
    REC_MANIFEST,
    ZERO_DIGEST,
    Record,
    SignedBody,
    TornTail,
    chain_link,
    iter_records,
    leaf_hash,
    open_signed_body,
)
from .models import Checkpoint, Manifest, SegmentHeader, parse_payload
from .safeio import map_bounded, read_bounded

# Bounds of the files (docs/format.md §2 "Limits").
MAX_SEGMENT_FILE = 64 * 1024**3
MAX_MANIFEST_FILE = 8 + 5 + 4 + MAX_SIGNED_PAYLOAD + SIGNATURE_LEN

SEGMENT_RECORDS = frozenset({REC_HEADER, REC_FRAGMENT, REC_CHECKPOINT})


@dataclass(frozen=True)
class FragmentRecord:
    index: int
    pt_digest: bytes
    ciphertext: memoryview
    offset: int
    end: int


@dataclass(frozen=True)
class CheckpointRecord:
    signed: SignedBody
    payload: Checkpoint
    seen: int  # fragments before it in the file
    chain_at: bytes  # chain value after those fragments
    offset: int
    end: int


@dataclass
class SegmentScan:
    path: str
    size: int
    header: SignedBody
    header_payload: SegmentHeader
    header_digest: bytes
    header_end: int
    fragments: list[FragmentRecord] = field(default_factory=list)
    chains: list[bytes] = field(default_factory=list)  # chain after fragment i
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    torn: TornTail | None = None
    corrupt: TornTail | None = None  # the first corrupt or malformed record, and what follows

    @property
    def records_end(self) -> int:
        """Offset where the walk stopped: the end of the last record that parsed."""
        for tail in (self.corrupt, self.torn):
            if tail is not None:
                return tail.offset
        return self.size

    def chain_boundary(self, count: int) -> int | None:
        """Offset just past what ``count`` covered fragments end at: the end of the
        last checkpoint that covers exactly ``count`` (the header's end for 0);
        None if no checkpoint covers exactly ``count``."""
        if count == 0:
            return self.header_end
        ends = [cp.end for cp in self.checkpoints if cp.seen == count]
        return ends[-1] if ends else None

    def chain_after(self, count: int) -> bytes:
        """Chain value after ``count`` fragments (0 = after the header)."""
        return self.chains[count - 1] if count else chain_link(ZERO_DIGEST, self.header_digest)


def map_file(path: Path) -> memoryview:
    """A segment file's bytes, read-only and without a copy (mmap).

    Only a regular file that is not a symbolic link, of at most
    ``MAX_SEGMENT_FILE`` bytes; InputError otherwise.
    """
    return map_bounded(path, MAX_SEGMENT_FILE, "segment file")


def scan_segment(data: bytes | memoryview, where: str) -> SegmentScan:
    """Walk a segment file once (docs/format.md §3).

    The header must parse (FormatError otherwise).  After it, the walk stops
    at a torn record (``torn``) or at the first record that is corrupt or
    malformed (``corrupt``: its offset and reason); what lies before counts,
    what lies after is left for the caller to judge: in a segment sealed
    ``complete`` it is tampering, after the covered part of an unsealed or
    ``truncated`` segment it is what a power cut leaves (§2, §7.4).
    """
    records = iter_records(data, where, MAGIC_SEGMENT, SEGMENT_RECORDS)
    first = next(records, None)
    if first is None:
        raise FormatError("segment file holds no header", where)
    if isinstance(first, TornTail):
        raise FormatError(f"segment header is incomplete ({first.reason})", where)
    if first.rtype != REC_HEADER:
        raise FormatError("segment file does not start with a header record", where)
    header = open_signed_body(first.body, f"{where} header", CTX_HEADER)
    header_payload = parse_payload(SegmentHeader, header.obj, f"{where} header")
    header_digest = leaf_hash(first.raw)
    scan = SegmentScan(where, len(data), header, header_payload, header_digest, first.end)
    chain = chain_link(ZERO_DIGEST, header_digest)
    position = first.end  # end of the last record that parsed
    try:
        for item in records:
            if isinstance(item, TornTail):
                scan.torn = item
                break
            if item.rtype == REC_FRAGMENT:
                fragment = _fragment(item, len(scan.fragments), where)
                chain = chain_link(chain, leaf_hash(item.raw))
                scan.fragments.append(fragment)
                scan.chains.append(chain)
            elif item.rtype == REC_CHECKPOINT:
                cp_where = f"{where} checkpoint at offset {item.offset}"
                signed = open_signed_body(item.body, cp_where, CTX_CHECKPOINT)
                payload = parse_payload(Checkpoint, signed.obj, cp_where)
                scan.checkpoints.append(
                    CheckpointRecord(signed, payload, len(scan.fragments), chain, item.offset, item.end)
                )
            else:
                raise FormatError(f"second header record at offset {item.offset}", where)
            position = item.end
    except FormatError as exc:
        scan.corrupt = TornTail(position, len(data) - position, str(exc))
    return scan


def _fragment(record: Record, expected_index: int, where: str) -> FragmentRecord:
    body = record.body
    if len(body) < FRAGMENT_HEAD.size + AEAD_TAG_LEN:
        raise FormatError(f"fragment record at offset {record.offset} is too short", where)
    index, pt_digest = FRAGMENT_HEAD.unpack_from(body, 0)
    if index != expected_index:
        raise FormatError(
            f"fragment at offset {record.offset} has index {index}, expected {expected_index}",
            where,
        )
    return FragmentRecord(
        index, pt_digest, body[FRAGMENT_HEAD.size :], record.offset, record.end
    )


@dataclass(frozen=True)
class ManifestFile:
    signed: SignedBody
    payload: Manifest
    digest: bytes


def parse_manifest(data: bytes, where: str) -> ManifestFile:
    """Parse a manifest file's bytes; FormatError unless exactly one valid M record."""
    items = list(iter_records(data, where, MAGIC_MANIFEST, frozenset({REC_MANIFEST})))
    record = items[0] if len(items) == 1 else None
    if not isinstance(record, Record):
        raise FormatError("a manifest file holds exactly one complete manifest record", where)
    signed = open_signed_body(record.body, where, CTX_MANIFEST)
    return ManifestFile(signed, parse_payload(Manifest, signed.obj, where), leaf_hash(record.raw))


def read_manifest(path: Path) -> ManifestFile:
    """Read and parse a ``.bcman`` (a regular file, no link, bounded); InputError / FormatError."""
    data = read_bounded(path, MAX_MANIFEST_FILE, "manifest", follow_links=False)
    return parse_manifest(data, str(path))
