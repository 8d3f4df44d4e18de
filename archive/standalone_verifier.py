#!/usr/bin/env python3
"""Standalone verifier of a bodycam evidence package (package format
``bodycam-package/1`` around evidence format v1, docs/format.md).

One file; it needs Python 3.11+ and the ``cryptography`` package, nothing
else (``pip install cryptography``).  Run it from the package folder::

    python3 verify_package.py .                # trust anchor: trust/ca.crt in the package
    python3 verify_package.py . --ca ca.crt    # a CA certificate obtained from the agency itself
    python3 verify_package.py --audit audit.jsonl --ca ca.crt

What a pass proves: every file in the package is the one the archive listed
and signed (attestation); the archive's signing certificate and every
recorder's certificate were issued by the trust anchor; each segment's
header, checkpoints and manifest were signed by the recorder's key when it
was recorded, its fragments chain to its signed manifest, and its place in
the recorder's hash-chained seal log is where the log says; the playable
media file's bytes are exactly the plaintext whose SHA-256 the recorder
signed, fragment by fragment; the audit entries were signed by the archive
and chain as stated.  What it does not prove: that the trust anchor is the
agency's (compare its fingerprint with the one the agency publishes, or use
``--ca``); that the recorder's clock was right (see the clock state and the
dock's clock-sync entries); what happened outside the picture; anything
about the watermarked viewing copies (they are re-encoded for viewing and
are not evidence).

Exit status: 0 verified, 1 not verified, 2 unreadable input.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

PACKAGE_FORMAT = "bodycam-package/1"
AUDIT_FORMAT = "bodycam-audit/1"
AUDIT_CTX = "bodycam/v1/audit"
AUDIT_HEAD_CTX = "bodycam/v1/audit-head"
ATTESTATION_CTX = "bodycam/v1/package-attestation"
MAGIC_SEGMENT = b"BCSEG\x00\x01\n"
MAGIC_MANIFEST = b"BCMAN\x00\x01\n"
MAGIC_LOG = b"BCLOG\x00\x01\n"
MAX_BODY = 64 * 1024 * 1024
MAX_PAYLOAD = 1024 * 1024
CTX = {0x48: "bodycam/v1/segment-header", 0x43: "bodycam/v1/checkpoint", 0x4D: "bodycam/v1/manifest",
       0x4C: "bodycam/v1/seal-log"}
SAME_AS_HEADER = ("device", "segment_seq", "segment", "media", "officer", "opened_utc", "opened_local", "timezone",
                  "clock_state", "prev_segment")
LOG_NAME = re.compile(r"^\d{12}-[0-9a-f]{16}\.log$")
# Files of a package that the manifest does not list (they hold or sign the list).
UNLISTED = ("manifest.json", "attestation.json")


class Unreadable(Exception):
    """Input that cannot be read at all (exit 2)."""


# -- shared primitives ------------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """docs/format.md §2.1: sorted keys, no white space, UTF-8 as itself, no floats."""
    def check(o: Any) -> None:
        if isinstance(o, float):
            raise ValueError("floats are not allowed in canonical JSON")
        if isinstance(o, dict):
            for v in o.values():
                check(v)
        elif isinstance(o, list):
            for v in o:
                check(v)
    check(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_canonical(data: bytes) -> dict[str, Any]:
    obj = json.loads(data.decode("utf-8"))
    if not isinstance(obj, dict) or canonical_json(obj) != data:
        raise ValueError("payload is not canonical JSON")
    return obj


def audit_anchor(agency: str) -> str:
    """prev of an agency's first audit entry."""
    return hashlib.sha256(b"bodycam/v1/audit-anchor\x00" + agency.encode()).hexdigest()


def _leaf(rtype: int, body: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + bytes([rtype]) + struct.pack(">I", len(body)) + body).digest()


def _link(prev: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + prev + leaf).digest()


def _log_anchor(public_raw: bytes) -> bytes:
    return hashlib.sha256(b"\x02bodycam/v1/seal-log-anchor\x00" + public_raw).digest()


def _attr(name: x509.Name, oid) -> str | None:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else None


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def check_ca(ca: x509.Certificate) -> None:
    if _attr(ca.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) != "agency-ca":
        raise ValueError("trust anchor is not an agency CA certificate (OU must be agency-ca)")
    ca.verify_directly_issued_by(ca)


def check_cert(cert: x509.Certificate, ca: x509.Certificate, role: str, at: dt.datetime | None = None) -> str:
    """The certificate's ID (CN) if the CA issued it for ``role`` (and it was valid ``at``)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ValueError(f"certificate {_attr(cert.subject, NameOID.COMMON_NAME)!r} was not issued by the "
                         f"trust anchor {fingerprint(ca)[:16]}") from None
    got = _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if got != role:
        raise ValueError(f"certificate role is {got!r}, expected {role!r}")
    if at is not None and not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise ValueError(f"certificate not valid at {at:%Y-%m-%d %H:%M}Z")
    return _attr(cert.subject, NameOID.COMMON_NAME) or ""


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def open_envelope(envelope: Any, ca: x509.Certificate, ctx: str, role: str) -> tuple[dict[str, Any], str]:
    """docs/format.md §12 signed message: (payload, signer ID); ValueError says why not."""
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "signature", "certificate"}:
        raise ValueError("not a signed message {payload, signature, certificate}")
    data = base64.b64decode(envelope["payload"], validate=True)
    signature = base64.b64decode(envelope["signature"], validate=True)
    cert = x509.load_pem_x509_certificate(envelope["certificate"].encode())
    payload = parse_canonical(data)
    if payload.get("ctx") != ctx:
        raise ValueError(f"context is {payload.get('ctx')!r}, expected {ctx!r}")
    signer = check_cert(cert, ca, role)
    try:
        cert.public_key().verify(signature, ctx.encode() + b"\x00" + data)
    except InvalidSignature:
        raise ValueError("signature does not verify") from None
    return payload, signer


# -- results ----------------------------------------------------------------------------------


@dataclass
class Result:
    checked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ok(self, what: str) -> None:
        self.checked.append(what)

    def fail(self, what: str) -> None:
        self.failures.append(what)

    @property
    def passed(self) -> bool:
        return not self.failures and bool(self.checked)


# -- records ----------------------------------------------------------------------------------


@dataclass
class Record:
    rtype: int
    body: bytes
    offset: int
    end: int


def read_records(data: bytes, magic: bytes, where: str) -> tuple[list[Record], bool]:
    """(records, torn tail?); ValueError on bad magic, unknown type or oversize length."""
    if data[:8] != magic:
        raise ValueError(f"{where}: bad magic")
    out, pos = [], 8
    while pos < len(data):
        if len(data) - pos < 5:
            return out, True
        rtype, length = data[pos], struct.unpack(">I", data[pos + 1:pos + 5])[0]
        if rtype not in (0x48, 0x46, 0x43, 0x4D, 0x4C) or length > MAX_BODY:
            raise ValueError(f"{where}: corrupt record at byte {pos}")
        if pos + 5 + length > len(data):
            return out, True
        out.append(Record(rtype, data[pos + 5:pos + 5 + length], pos, pos + 5 + length))
        pos += 5 + length
    return out, False


def signed(record: Record, key: Ed25519PublicKey, where: str) -> dict[str, Any]:
    body = record.body
    if len(body) < 4 + 64:
        raise ValueError(f"{where}: signed record too short")
    n = struct.unpack(">I", body[:4])[0]
    if n > MAX_PAYLOAD or 4 + n + 64 != len(body):
        raise ValueError(f"{where}: bad payload length")
    payload, signature = body[4:4 + n], body[4 + n:]
    obj = parse_canonical(payload)
    ctx = CTX[record.rtype]
    if obj.get("ctx") != ctx or obj.get("v") != 1:
        raise ValueError(f"{where}: context {obj.get('ctx')!r}, expected {ctx!r}")
    try:
        key.verify(signature, ctx.encode() + b"\x00" + payload)
    except InvalidSignature:
        raise ValueError(f"{where}: signature does not verify with the device key") from None
    return obj


# -- seal log ----------------------------------------------------------------------------------


@dataclass
class SealLog:
    entries: list[dict[str, Any]]
    digests: list[str]
    opened: dict[int, dict[str, Any]]  # segment_seq -> segment-opened data (+ expected prev_segment)
    sealed: dict[int, dict[str, Any]]  # segment_seq -> segment-sealed data
    unclean: dict[int, dict[str, Any]]


def verify_seal_log(folder: Path, device: str, key: Ed25519PublicKey, public_raw: bytes, result: Result) -> SealLog:
    files = sorted(p for p in folder.iterdir() if LOG_NAME.match(p.name)) if folder.is_dir() else []
    if not files:
        raise ValueError(f"{folder}: no seal-log files")
    prev, seq = _log_anchor(public_raw), 0
    log = SealLog([], [], {}, {}, {})
    last_sealed: str | None = None
    for path in files:
        records, torn = read_records(path.read_bytes(), MAGIC_LOG, str(path))
        for rec in records:
            where = f"{path.name} entry {seq}"
            obj = signed(rec, key, where)
            if obj.get("device") != device or obj.get("seq") != seq or obj.get("prev") != prev.hex():
                raise ValueError(f"{where}: device, seq or prev does not chain")
            digest = _leaf(rec.rtype, rec.body)
            data = obj.get("data") or {}
            if obj["event"] == "segment-opened":
                log.opened[data["segment_seq"]] = {**data, "expected_prev": last_sealed}
            elif obj["event"] == "segment-sealed":
                log.sealed[data["segment_seq"]] = data
                last_sealed = data["digest"]
            elif obj["event"] == "unclean-stop":
                log.unclean[data["segment_seq"]] = data
            log.entries.append(obj)
            log.digests.append(digest.hex())
            prev, seq = digest, seq + 1
        if torn:
            result.notes.append(f"{path.name}: torn last record (a power cut), ignored after entry {seq - 1}")
    result.ok(f"seal log of {device}: {seq} entries signed by the device and chained from its certificate; "
              f"head #{seq - 1} {prev.hex()}")
    return log


# -- segments ----------------------------------------------------------------------------------


def verify_segment(seg_path: Path, man_path: Path, device: str, key: Ed25519PublicKey, log: SealLog,
                   media_path: Path | None, result: Result) -> str:
    """Verify one segment and its media file; returns the segment digest (hex)."""
    name = seg_path.name[:-len(".bcseg")]
    data = seg_path.read_bytes()
    records, _torn = read_records(data, MAGIC_SEGMENT, seg_path.name)
    if not records or records[0].rtype != 0x48:
        raise ValueError(f"{name}: no segment header")
    header = signed(records[0], key, f"{name} header")
    header_digest = _leaf(0x48, records[0].body)
    seq = header.get("segment_seq")
    opened = log.opened.get(seq)
    if header.get("device") != device or header.get("segment") != name or opened is None:
        raise ValueError(f"{name}: header does not match the seal log (device, name, or no segment-opened entry)")
    if opened.get("segment") != name or opened.get("header_digest") != header_digest.hex():
        raise ValueError(f"{name}: header digest differs from the seal log's segment-opened entry")
    if header.get("prev_segment") != opened["expected_prev"]:
        raise ValueError(f"{name}: does not chain to the segment sealed before it (prev_segment)")
    chain = _link(b"\x00" * 32, header_digest)
    chains, hashes, index = [], [], 0
    for rec in records[1:]:
        if rec.rtype == 0x46:
            i = struct.unpack(">Q", rec.body[:8])[0]
            if i != index:
                raise ValueError(f"{name}: fragment {i} where {index} was expected")
            hashes.append((rec.body[8:40].hex(), len(rec.body) - 40 - 16, rec.end))
            chain = _link(chain, _leaf(0x46, rec.body))
            chains.append(chain)
            index += 1
        elif rec.rtype == 0x43:
            cp = signed(rec, key, f"{name} checkpoint")
            n = cp.get("fragments")
            if cp.get("segment_seq") != seq or not isinstance(n, int) or not 0 < n <= len(chains) \
                    or cp.get("chain") != chains[n - 1].hex():
                raise ValueError(f"{name}: checkpoint after {n} fragments does not match the chain")
        else:
            raise ValueError(f"{name}: unexpected record type {rec.rtype:#x}")
    man_records, _ = read_records(man_path.read_bytes(), MAGIC_MANIFEST, man_path.name)
    if len(man_records) != 1 or man_records[0].rtype != 0x4D:
        raise ValueError(f"{name}: manifest must hold exactly one M record")
    manifest = signed(man_records[0], key, f"{name} manifest")
    digest = _leaf(0x4D, man_records[0].body).hex()
    for k in SAME_AS_HEADER:
        if manifest.get(k) != header.get(k):
            raise ValueError(f"{name}: manifest {k} differs from the header's")
    if manifest.get("header_digest") != header_digest.hex():
        raise ValueError(f"{name}: manifest names another header")
    sealed = log.sealed.get(seq)
    if sealed is None or sealed.get("digest") != digest:
        raise ValueError(f"{name}: segment digest differs from the seal log's segment-sealed entry")
    count = manifest.get("fragment_count")
    listed = manifest.get("fragments") or []
    if not isinstance(count, int) or count > len(hashes) or len(listed) != count:
        raise ValueError(f"{name}: manifest covers {count} fragments, the file holds {len(hashes)}")
    if count and manifest.get("chain") != chains[count - 1].hex():
        raise ValueError(f"{name}: manifest chain differs from the fragments'")
    for i, (f, (sha, size, _end)) in enumerate(zip(listed, hashes)):
        if f.get("i") != i or f.get("sha256") != sha or f.get("bytes") != size:
            raise ValueError(f"{name}: fragment {i} differs from the manifest")
    status = manifest.get("status")
    if status == "complete":
        if manifest.get("file_bytes") != len(data) or count != len(hashes):
            raise ValueError(f"{name}: file is {len(data)} bytes, the manifest says {manifest.get('file_bytes')}")
    elif status == "truncated":
        t = manifest.get("truncated") or {}
        covered = t.get("covered_bytes")
        if not isinstance(covered, int) or hashlib.sha256(data[covered:]).hexdigest() != t.get("uncovered_sha256"):
            raise ValueError(f"{name}: bytes after the last checkpoint differ from the manifest")
        if seq not in log.unclean:
            raise ValueError(f"{name}: truncated, but the seal log has no unclean-stop entry for it")
    else:
        raise ValueError(f"{name}: status {status!r}")
    what = f"{name}: {status}, {count} fragments signed and chained; digest {digest}"
    if media_path is not None:
        media = media_path.read_bytes()
        pos = 0
        for i, f in enumerate(listed):
            part = media[pos:pos + f["bytes"]]
            if hashlib.sha256(part).hexdigest() != f["sha256"]:
                raise ValueError(f"{media_path.name}: bytes of fragment {i} differ from what the recorder signed")
            pos += f["bytes"]
        if pos != len(media):
            raise ValueError(f"{media_path.name}: {len(media) - pos} bytes more than the recorder signed")
        what += f"; {media_path.name} is exactly the signed plaintext"
    result.ok(what)
    return digest


# -- audit log ---------------------------------------------------------------------------------


def verify_audit_lines(lines: list[str], ca: x509.Certificate, result: Result) -> dict[str, Any]:
    """Check a ``bodycam-audit/1`` export (the whole log or an extract).

    Each entry: canonical payload, archive signature, and the chain to the
    entry before it when that one is present (always for the whole log).
    Stamps must cover their entry's digest; the signed head must match the
    last entry of a whole log.  Failures name the entry by ``seq``.
    """
    if not lines:
        raise ValueError("empty audit export")
    head = json.loads(lines[0])
    if head.get("format") != AUDIT_FORMAT:
        raise ValueError(f"not a {AUDIT_FORMAT} export")
    cert = x509.load_pem_x509_certificate(head["certificate"].encode())
    archive = check_cert(cert, ca, "archive-receipt")
    key = cert.public_key()
    agency, whole = head["agency"], head.get("extract") is None
    digests: dict[int, str] = {}
    payloads: dict[int, bytes] = {}
    prev_seq, prev_digest = -1, audit_anchor(agency)
    attestation = None
    bad = 0
    for n, line in enumerate(lines[1:], 2):
        item = json.loads(line)
        if "entry" in item:
            payload = item["entry"].encode()
            try:
                p = parse_canonical(payload)
            except ValueError as exc:
                result.fail(f"audit line {n}: {exc}")
                bad += 1
                continue
            seq = p.get("seq")
            where = f"audit entry #{seq} ({p.get('action')} by {p.get('actor')} at {p.get('utc')})"
            try:
                key.verify(base64.b64decode(item["signature"]), AUDIT_CTX.encode() + b"\x00" + payload)
            except (InvalidSignature, ValueError):
                result.fail(f"{where}: signature does not verify (entry altered)")
                bad += 1
            if p.get("ctx") != AUDIT_CTX or p.get("agency") != agency or p.get("archive") != archive:
                result.fail(f"{where}: not an audit entry of {agency} at {archive}")
                bad += 1
            if not isinstance(seq, int) or seq <= prev_seq:
                result.fail(f"{where}: out of order after #{prev_seq}")
                bad += 1
            elif whole and seq != prev_seq + 1:
                result.fail(f"audit entries #{prev_seq + 1}…#{seq - 1} are missing before {where}")
                bad += 1
            elif seq == prev_seq + 1 and p.get("prev") != prev_digest:
                result.fail(f"{where}: does not chain to entry #{prev_seq} (prev differs)")
                bad += 1
            digest = hashlib.sha256(payload).hexdigest()
            digests[seq] = digest
            payloads[seq] = payload
            prev_seq, prev_digest = seq, digest
        elif "stamp" in item:
            s = item["stamp"]
            if digests.get(s["seq"]) != s["digest"]:
                result.fail(f"time-stamp of audit entry #{s['seq']}: the entry's digest differs")
                bad += 1
            else:
                try:
                    imprint = _tst_imprint(base64.b64decode(s["token"]))
                except ValueError as exc:
                    result.fail(f"time-stamp of audit entry #{s['seq']}: {exc}")
                    bad += 1
                else:
                    if imprint != bytes.fromhex(s["digest"]):
                        result.fail(f"time-stamp of audit entry #{s['seq']}: covers another hash")
                        bad += 1
                    else:
                        result.ok(f"audit entry #{s['seq']} time-stamped by {s['tsa']} at {s['stamped_utc']} "
                                  "(imprint checked; the TSA signature: openssl ts -verify)")
        elif "head" in item:
            attestation, _ = open_envelope(item["head"], ca, AUDIT_HEAD_CTX, "archive-receipt")
    if attestation is None:
        result.fail("audit export has no signed head")
    elif whole and (attestation["seq"] != prev_seq or (prev_seq >= 0 and attestation["digest"] != prev_digest)):
        result.fail(f"audit log ends at #{prev_seq} but the archive's signed head is #{attestation['seq']} "
                    "(entries removed or added)")
    elif not bad:
        kind = "whole log" if whole else f"extract {head['extract']}"
        result.ok(f"audit log of {agency} ({kind}): {len(digests)} entries signed by archive {archive}"
                  + (", chained, ending at the signed head" if whole else ""))
    return {"agency": agency, "entries": len(digests), "head": attestation}


def _tst_imprint(resp: bytes) -> bytes:
    """The SHA-256 messageImprint inside a DER TimeStampResp (RFC 3161), found by
    its AlgorithmIdentifier; the signature is for ``openssl ts -verify``."""
    oid = bytes.fromhex("0609608648016503040201")  # sha256
    at = resp.find(oid)
    while at >= 0:
        rest = resp[at + len(oid):]
        if rest[:2] == b"\x05\x00":
            rest = rest[2:]
        if rest[:2] == b"\x04\x20":
            return rest[2:34]
        at = resp.find(oid, at + 1)
    raise ValueError("no SHA-256 message imprint in the time-stamp")


# -- the package -------------------------------------------------------------------------------


def verify_package(root: Path, ca_path: Path | None = None) -> Result:
    result = Result()
    root = Path(root)
    for name in ("manifest.json", "attestation.json"):
        if (root / name).exists() and not (root / name).is_file():
            raise Unreadable(f"{root / name}: not a regular file")
    try:
        manifest_bytes = (root / "manifest.json").read_bytes()
        manifest = json.loads(manifest_bytes)
        envelope = json.loads((root / "attestation.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise Unreadable(f"{root}: not a package (manifest.json and attestation.json): {exc}") from None
    if manifest.get("format") != PACKAGE_FORMAT:
        raise Unreadable(f"{root}/manifest.json: format is {manifest.get('format')!r}, not {PACKAGE_FORMAT}")
    anchor_path = ca_path or root / "trust" / "ca.crt"
    try:
        ca = x509.load_pem_x509_certificate(Path(anchor_path).read_bytes())
        check_ca(ca)
    except (OSError, ValueError, InvalidSignature) as exc:
        raise Unreadable(f"{anchor_path}: not a usable agency CA certificate: {exc}") from None
    result.ok(f"trust anchor {ca.subject.rfc4514_string()} SHA-256 {fingerprint(ca)}"
              + ("" if ca_path else " (from the package: compare with the agency's published fingerprint)"))
    try:
        att, archive = open_envelope(envelope, ca, ATTESTATION_CTX, "archive-receipt")
    except (ValueError, KeyError) as exc:
        result.fail(f"attestation.json: {exc}")
        return result
    try:
        check_cert(x509.load_pem_x509_certificate(envelope["certificate"].encode()), ca, "archive-receipt",
                   at=_utc(att["utc"]))
    except (ValueError, KeyError) as exc:
        result.fail(f"attestation.json: the archive's certificate at the time of export: {exc}")
        return result
    if att.get("manifest_sha256") != hashlib.sha256(manifest_bytes).hexdigest():
        result.fail("manifest.json differs from the one the archive signed (attestation.json)")
        return result
    result.ok(f"attestation signed by archive {archive} at {att.get('utc')}: manifest.json is the archive's")
    files: dict[str, str] = manifest.get("files") or {}
    if not files:
        result.fail("manifest.json lists no files")
    for rel, want in sorted(files.items()):
        path = root / rel
        if ".." in Path(rel).parts or path.is_symlink() or not path.is_file():
            result.fail(f"{rel}: listed but missing")
            continue
        if _sha256_file(path) != want:
            result.fail(f"{rel}: SHA-256 differs from the manifest (the file was changed)")
    present = set()
    for p in root.rglob("*"):
        if p.is_symlink() or not (p.is_file() or p.is_dir()):
            result.fail(f"{p.relative_to(root)}: not a regular file or folder (link, FIFO or device)")
        elif p.is_file():
            present.add(str(p.relative_to(root)))
    for extra in sorted(present - set(files) - set(UNLISTED)):
        result.fail(f"{extra}: not listed in the manifest (added after export)")
    if not result.failures:
        result.ok(f"{len(files)} files have the SHA-256 the archive listed")
    for seg in manifest.get("segments") or []:
        name = seg["name"]
        base = root / seg["original_dir"]
        try:
            cert = x509.load_pem_x509_certificate((base / "identity" / "device.crt").read_bytes())
            device = check_cert(cert, ca, "device", at=_utc(seg["opened_utc"]))
            if device != seg["device"]:
                raise ValueError(f"device certificate is for {device}, the segment for {seg['device']}")
            key = cert.public_key()
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            log = _log_cache.get(base) or verify_seal_log(base / "seallog", device, key, raw, result)
            _log_cache[base] = log
            media = root / seg["media_file"] if seg.get("media_file") else None
            digest = verify_segment(base / "segments" / f"{name}.bcseg", base / "segments" / f"{name}.bcman",
                                    device, key, log, media, result)
            if digest != seg["segment_digest"]:
                raise ValueError(f"segment digest {digest} differs from the manifest's {seg['segment_digest']}")
            for receipt in seg.get("receipts", []):
                p, _ = open_envelope(receipt, ca, "bodycam/v1/receipt", "archive-receipt")
                if p.get("segment_digest") != digest:
                    raise ValueError("archive receipt names another segment")
        except (OSError, ValueError, KeyError, struct.error) as exc:
            result.fail(f"segment {name}: {exc}")
    for device, stamps in (manifest.get("seal_log_stamps") or {}).items():
        log = next((v for k, v in _log_cache.items() if k.name == device), None)
        for st in stamps:
            try:
                imprint = _tst_imprint((root / st["file"]).read_bytes())
                if log is None or st["seq"] >= len(log.digests) or log.digests[st["seq"]] != st["digest"]:
                    raise ValueError("the stamped digest is not that seal-log entry's")
                if imprint.hex() != st["digest"]:
                    raise ValueError("the time-stamp covers another hash")
                result.ok(f"seal-log entry #{st['seq']} of {device} (and all before it) existed at {st['stamped_utc']} "
                          f"by the RFC 3161 time-stamp of {st['tsa']} (imprint checked; its signature: "
                          f"openssl ts -verify -digest {st['digest']} -in {st['file']} -CAfile <TSA certificate>)")
            except (OSError, ValueError, KeyError) as exc:
                result.fail(f"time-stamp {st.get('file')}: {exc}")
    _log_cache.clear()
    if not manifest.get("segments"):
        result.fail("the package holds no segments")
    report = root / (manifest.get("report_html") or "report/report.html")
    if report.is_file():
        text = report.read_text("utf-8")
        missing = [s["name"] for s in manifest.get("segments") or [] if s["segment_digest"] not in text]
        if missing:
            result.fail(f"{report.name}: the hash table lacks the digest of {', '.join(missing)}")
    audit = root / (manifest.get("audit") or "audit/audit.jsonl")
    if audit.is_file():
        try:
            verify_audit_lines([line for line in audit.read_text("utf-8").splitlines() if line.strip()], ca, result)
        except (ValueError, KeyError) as exc:
            result.fail(f"{audit.name}: {exc}")
    return result


_log_cache: dict[Path, SealLog] = {}


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a bodycam evidence package or audit export offline.")
    parser.add_argument("package", nargs="?", type=Path, help="the package folder (default: this file's folder)")
    parser.add_argument("--ca", type=Path, help="agency CA certificate (default: trust/ca.crt in the package)")
    parser.add_argument("--audit", type=Path, help="verify a bodycam-audit/1 export instead (needs --ca)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        if args.audit:
            if not args.ca:
                parser.error("--audit needs --ca")
            result = Result()
            ca = x509.load_pem_x509_certificate(args.ca.read_bytes())
            lines = [line for line in args.audit.read_text("utf-8").splitlines() if line.strip()]
            try:
                verify_audit_lines(lines, ca, result)
            except (ValueError, KeyError) as exc:
                result.fail(f"{args.audit}: {exc}")
        else:
            result = verify_package(args.package or Path(__file__).resolve().parent, args.ca)
    except (Unreadable, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"verified": result.passed, "checked": result.checked, "failures": result.failures,
                          "notes": result.notes}, ensure_ascii=False, indent=2))
    else:
        for line in result.checked:
            print(f"ok    {line}")
        for line in result.notes:
            print(f"note  {line}")
        for line in result.failures:
            print(f"FAIL  {line}")
        print("VERIFIED" if result.passed else "NOT VERIFIED")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
