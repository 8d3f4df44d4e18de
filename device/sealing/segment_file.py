"""Reading segment and manifest files (structure only; no trust decisions).

``scan_segment`` walks a ``.bcseg`` file once, recomputing the hash chain as
it goes, so that checkpoints can later be compared with the chain value at
their position.  Signatures are checked by the caller (verifier, recovery).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

from bodycam.errors import FormatError

from .format import (
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
    seen: int  # fragments before it in the file
    chain_at: bytes  # chain value after those fragments
    offset: int
    end: int


@dataclass
class SegmentScan:
    path: str
    size: int
    header: SignedBody
    header_digest: bytes
    header_end: int
    fragments: list[FragmentRecord] = field(default_factory=list)
    chains: list[bytes] = field(default_factory=list)  # chain after fragment i
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    torn: TornTail | None = None

    def chain_after(self, count: int) -> bytes:
        """Chain value after ``count`` fragments (0 = after the header)."""
        return self.chains[count - 1] if count else chain_link(ZERO_DIGEST, self.header_digest)


def map_file(path: Path) -> memoryview:
    """The file's bytes, read-only and without a copy (mmap)."""
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))


def scan_segment(data: bytes | memoryview, where: str) -> SegmentScan:
    records = iter_records(data, where, MAGIC_SEGMENT, SEGMENT_RECORDS)
    first = next(records, None)
    if first is None:
        raise FormatError("segment file holds no header", where)
    if isinstance(first, TornTail):
        raise FormatError(f"segment header is incomplete ({first.reason})", where)
    if first.rtype != REC_HEADER:
        raise FormatError("segment file does not start with a header record", where)
    header = open_signed_body(first.body, f"{where} header", CTX_HEADER)
    header_digest = leaf_hash(first.raw)
    scan = SegmentScan(where, len(data), header, header_digest, first.end)
    chain = chain_link(ZERO_DIGEST, header_digest)
    for item in records:
        if isinstance(item, TornTail):
            scan.torn = item
            break
        if item.rtype == REC_FRAGMENT:
            chain = chain_link(chain, leaf_hash(item.raw))
            scan.fragments.append(_fragment(item, len(scan.fragments), where))
            scan.chains.append(chain)
        elif item.rtype == REC_CHECKPOINT:
            signed = open_signed_body(
                item.body, f"{where} checkpoint at offset {item.offset}", CTX_CHECKPOINT
            )
            scan.checkpoints.append(
                CheckpointRecord(signed, len(scan.fragments), chain, item.offset, item.end)
            )
        else:
            raise FormatError(f"second header record at offset {item.offset}", where)
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
    digest: bytes


def read_manifest(path: Path) -> ManifestFile:
    data = Path(path).read_bytes()
    items = list(iter_records(data, str(path), MAGIC_MANIFEST, frozenset({REC_MANIFEST})))
    if len(items) != 1 or isinstance(items[0], TornTail):
        raise FormatError("a manifest file holds exactly one complete manifest record", str(path))
    record = items[0]
    assert isinstance(record, Record)
    return ManifestFile(open_signed_body(record.body, str(path), CTX_MANIFEST), leaf_hash(record.raw))
