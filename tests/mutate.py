"""Tools a forger would use: rewrite records of sealed files in place."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.sealing.format import (
    MAGIC_LEN,
    RECORD_PREFIX,
    SIGNATURE_LEN,
    Record,
    canonical_json,
    iter_records,
)


def records(path: Path) -> list[Record]:
    data = path.read_bytes()
    out = []
    for item in iter_records(data, str(path), data[:MAGIC_LEN], frozenset(range(256))):
        if isinstance(item, Record):
            out.append(item)
    return out


def rewrite_signed(
    path: Path,
    rtype: int,
    edit: Callable[[dict], None],
    *,
    nth: int = 0,
    resign_with: Ed25519PrivateKey | None = None,
) -> None:
    """Edit the payload of the nth signed record of a type.

    The old signature is kept unless ``resign_with`` gives a key, in which
    case the record is signed again, as a forger with some key would.
    """
    data = bytearray(path.read_bytes())
    matching = [r for r in records(path) if r.rtype == rtype]
    record = matching[nth]
    body = bytes(record.body)
    (length,) = struct.unpack_from(">I", body, 0)
    import json

    obj = json.loads(body[4 : 4 + length])
    signature = body[4 + length :]
    edit(obj)
    payload = canonical_json(obj)
    if resign_with is None:
        assert payload != body[4 : 4 + length], "the edit changed nothing"

    if resign_with is not None:
        signature = resign_with.sign(obj["ctx"].encode() + b"\x00" + payload)
    assert len(signature) == SIGNATURE_LEN
    new_body = struct.pack(">I", len(payload)) + payload + signature
    new_record = RECORD_PREFIX.pack(rtype, len(new_body)) + new_body
    data[record.offset : record.end] = new_record
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
