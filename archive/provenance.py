"""Time evidence that does not rest on the recorder's clock alone: RFC 3161
time-stamps, obtained at the archive, on every device's seal-log head.

The TSA stamps SHA-256 of the head entry's leaf preimage
``0x00 || type || length || body`` (format §2.2), so the stamped hash *is* the
seal-log entry digest: ``openssl ts -verify -digest <entry digest> -in
STAMP.tsr -CAfile TSA.crt`` checks it, and every entry and segment before
the head is then proven to have existed at the TSA's time.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bodycam.errors import UsageError

from . import evidence as ev
from . import index as ix
from . import lawful_index as lx
from .tsa import request_stamp

log = logging.getLogger(__name__)


def head_preimage(archive, device: str, seq: int) -> bytes:
    """The leaf preimage (``0x00 || record``, format §2.2) of seal-log entry ``seq``
    of ``device``, from the stored log files read by the format's reader."""
    with tempfile.TemporaryDirectory(prefix="seal-log-") as tmp:
        folder = archive.export_recording(device, Path(tmp) / device, segments=False)
        for entry in ev.read_seal_log(folder):
            if entry.payload["seq"] == seq:
                return b"\x00" + entry.record
    raise UsageError(f"seal log of {device} has no entry {seq} on its chain in the store")


def stamp_seal_log_heads(archive) -> list[dict[str, Any]]:
    """Stamp each device's current head that has no stamp yet; returns the new rows.

    UsageError without a TSA; TimeStampError from the TSA (the next run retries).
    """
    tsa = archive.config.lawful_use.tsa
    if tsa is None:
        raise UsageError("no time-stamp authority: set [lawful_use.tsa] url in the archive config")
    s = lx.seal_log_stamps
    with archive.engine.connect() as conn:
        heads = list(conn.execute(select(ix.devices.c.device, ix.devices.c.head_seq, ix.devices.c.head_digest)
                                  .where(ix.devices.c.head_seq.is_not(None))))
        done = {(r.device, r.seq) for r in conn.execute(select(s.c.device, s.c.seq))}
    made = []
    for device, seq, digest in heads:
        if (device, seq) in done:
            continue
        preimage = head_preimage(archive, device, seq)
        if hashlib.sha256(preimage).hexdigest() != digest:
            log.error("seal log of %s: entry %d in the store does not hash to the indexed head", device, seq)
            continue
        stamp = request_stamp(tsa.url, preimage, timeout=tsa.timeout_seconds)
        row = {"device": device, "seq": seq, "digest": digest, "tsa": tsa.url, "stamped_utc": stamp.gen_time_utc,
               "token": base64.b64encode(stamp.response).decode()}
        with archive.engine.begin() as conn:
            conn.execute(s.insert().values(**row))
        log.info("seal log of %s: head #%d time-stamped at %s", device, seq, stamp.gen_time_utc)
        made.append(row)
    return made


def stamps_for(archive, device: str) -> list[dict[str, Any]]:
    s = lx.seal_log_stamps
    with archive.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(s).where(s.c.device == device).order_by(s.c.seq))]

