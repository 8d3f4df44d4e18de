"""Evidence packages for courts and review bodies (Art. 17-18), exported
under a live ``export`` grant, with a register entry and a retained copy.

Layout (``bodycam-package/1``; every file but the first two is listed with
its SHA-256 in ``manifest.json``, which the archive signs in
``attestation.json``)::

    manifest.json            {format, created_utc, agency, archive, case, recipient, grant,
                              files: {path: sha256}, segments: [...], seal_logs, audit, report_html}
    attestation.json         signed (ctx bodycam/v2/package-attestation): manifest_sha256,
                             seal-log heads, audit head, grant decision digest
    verify_package.py        the standalone verifier (Python 3.11 + cryptography)
    README.txt               how to verify, in Chinese and English
    trust/ca.crt             the agency CA (trust anchor: compare its fingerprint)
    trust/archive-receipt.crt
    originals/<device>/      sealed originals as recorded, an excerpt (format §10.1): identity/device.crt,
                             seallog/*.log, segments/<name>.bcseg + .bcman of the chosen segments (never
                             watermarked, never re-encoded), excerpt.json naming them and
                             log-head-attestation.json: the archive's latest signed log head of
                             the device (format §12.1); the seal log must reach it
    media/<name>.mp4|.jpg    the plaintext, byte for byte what the recorder signed (playable)
    viewing/<name>-viewing…  copies watermarked with the recipient and time (not evidence)
    thumbnails/<name>.jpg
    audit/audit.jsonl        the audit extract of the case / segments (bodycam-audit/1)
    audit/custody.json       chain of custody: capture, docking, archive, labels, holds, grant, export
    report/report.html|.pdf  readable report in Simplified Chinese

The verification step is one swappable file (``standalone_verifier.py``);
format v2 replaces it without touching this module's layout.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from bodycam.errors import UsageError

from . import evidence as ev
from . import index as ix
from . import lawful_index as lx
from .access import MEDIA_SUFFIX, Access, Plain
from .accounts import Account
from .audit import audit_of
from .report import render_package_report
from .watermark import VIEWING_MEDIA, audio_only_picture, viewing_media, watermark, watermark_text

PACKAGE_FORMAT = "bodycam-package/1"
LOG_HEAD_ATTESTATION = "log-head-attestation.json"  # in originals/<device>/ (format §12.1)
CTX_ATTESTATION = ev.CTX_PACKAGE_ATTESTATION
VERIFIER = Path(__file__).resolve().parent / "standalone_verifier.py"
RTC_DRIFT_PPM = 20  # a Pi's RTC crystal without temperature compensation (DS3231: 2 ppm); the bound is conservative


@dataclass
class ExportResult:
    path: Path
    package_sha256: str  # SHA-256 of manifest.json (what the attestation signs)
    tar_sha256: str  # the retained copy
    bytes: int
    segments: int
    disclosure_id: int
    seconds: float


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def thumbnail(plain: Plain, width: int = 240) -> bytes:
    """A JPEG thumbnail of the first frame (video), the still, or an audio-only segment's "no picture" card."""
    from PIL import Image

    if plain.media == "image/jpeg":
        img = Image.open(io.BytesIO(plain.data))
    elif plain.media == "audio/mp4":  # no picture: say so (the original's thumbnail, unmarked)
        img = audio_only_picture()
    else:
        import av

        with av.open(io.BytesIO(plain.data)) as c:
            img = next(c.decode(video=0)).to_image()
    img = img.convert("RGB")
    img.thumbnail((width, width * 3 // 4))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=80)
    return out.getvalue()


def _timeline(log_entries: list[dict[str, Any]], plain: Plain) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Seal-log events while the segment was open, and its clock (state, bound)."""
    seq = plain.header["segment_seq"]
    opened = next((e for e in log_entries if e["event"] == "segment-opened" and e["data"].get("segment_seq") == seq),
                  None)
    sealed = next((e for e in log_entries if e["event"] == "segment-sealed" and e["data"].get("segment_seq") == seq),
                  None)
    events = []
    if opened is not None:
        end = sealed["seq"] if sealed else opened["seq"]
        for e in log_entries:
            if opened["seq"] <= e["seq"] <= end and e["event"] not in ("segment-opened", "segment-sealed"):
                kind = e["event"]
                if kind == "mark" and e["data"].get("kind") == "refusal":
                    kind = "refusal"
                events.append({"seq": e["seq"], "utc": e["utc"], "event": kind, "data": e["data"]})
    sync = None
    for e in log_entries:
        if e["event"] == "clock-set" and (opened is None or e["seq"] < opened["seq"]):
            sync = e
    clock = {"state": plain.header.get("clock_state"), "sync_utc": None, "bound_ms": None}
    if sync is not None and clock["state"] == "synced":
        opened_at = dt.datetime.fromisoformat(plain.header["opened_utc"].replace("Z", "+00:00"))
        synced_at = dt.datetime.fromisoformat(sync["utc"].replace("Z", "+00:00"))
        drift_ms = max(0.0, (opened_at - synced_at).total_seconds()) * RTC_DRIFT_PPM / 1000
        clock.update(sync_utc=sync["utc"], bound_ms=round(int(sync["data"].get("delay_ns", 0)) / 2e6 + drift_ms, 1))
    return events, clock


def _read_log(folder: Path) -> list[dict[str, Any]]:
    """Seal-log payloads (+ ``digest``) on the chain of a verified folder, read
    by the format's own reader (format §5.2)."""
    return [{**e.payload, "digest": e.digest} for e in ev.read_seal_log(folder)]


def _deterministic_tar(folder: Path, target: Path) -> None:
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def export_package(archive, account: Account, grant_id: int, out: Path, *, recipient: str | None = None,
                   viewing_copies: bool = True) -> ExportResult:
    """Build a package at ``out`` (a new folder) for the grant, keep a copy
    write-once in the store, and register the disclosure (Art. 18).

    AccessDenied (audited) without a live ``export`` grant for ``account``.
    UsageError if ``out`` exists.  Returns what was made and how long it took.
    """
    started = time.monotonic()
    access = Access(archive)
    grant = access.grants.get(grant_id)
    grant = access.grants.require(account, "export", list(grant.segments), grant_id)
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} exists; a package goes into a new folder")
    agency = archive.agency(grant.agency)
    recipient = recipient or f"{account.name}({account.username})"
    rows = access.rows(agency.id, list(grant.segments))
    now = archive.now()
    when = ev.utc_text(now)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".package-", dir=out.parent))
    try:
        folders = access.lay_out(rows, tmp / "originals", purpose=grant.case_number or grant.reason or "")
        plains = access.decrypt(agency.id, folders, set(grant.segments))
        # format §12.1: the archive's own signed word on how far each device's seal log reached, so a
        # recipient can tell a log cut together with its newest segments from a whole one.
        head_attestations: dict[str, str] = {}
        for device, folder in folders.items():
            message = archive.log_head_attestation(device, agency.id)
            if message is not None:
                rel = f"originals/{device}/{LOG_HEAD_ATTESTATION}"
                (tmp / rel).write_text(json.dumps(message, indent=1))
                head_attestations[device] = rel
        for sub in ("trust", "media", "thumbnails", "audit", "report") + (("viewing",) if viewing_copies else ()):
            (tmp / sub).mkdir()
        pem = serialization.Encoding.PEM
        (tmp / "trust" / "ca.crt").write_bytes(agency.ca_cert.public_bytes(pem))
        (tmp / "trust" / "archive-receipt.crt").write_bytes(agency.receipt_cert.public_bytes(pem))
        shutil.copyfile(VERIFIER, tmp / "verify_package.py")
        logs = {device: _read_log(folder) for device, folder in folders.items()}
        case = None
        with archive.engine.connect() as conn:
            if grant.case_number:
                case = conn.execute(select(ix.cases).where(ix.cases.c.agency == agency.id,
                                                           ix.cases.c.case_number == grant.case_number)).first()
            labels = list(conn.execute(select(ix.label_events).where(
                ix.label_events.c.segment_digest.in_(list(grant.segments))).order_by(ix.label_events.c.id)))
            holds = list(conn.execute(select(ix.holds).where(ix.holds.c.agency == agency.id)))
        segments = []
        for row in rows:
            plain = plains[row.segment_digest]
            suffix = MEDIA_SUFFIX.get(plain.media, ".bin")
            media_rel = f"media/{row.name}{suffix}"
            (tmp / media_rel).write_bytes(plain.data)
            (tmp / "thumbnails" / f"{row.name}.jpg").write_bytes(thumbnail(plain))
            if viewing_copies and plain.media in VIEWING_MEDIA:
                viewing_suffix = MEDIA_SUFFIX[viewing_media(plain.media)]  # audio-only: a video (mark over black)
                (tmp / "viewing" / f"{row.name}-viewing{viewing_suffix}").write_bytes(
                    watermark(plain.data, plain.media, watermark_text(recipient, when, "提供副本")))
            events, clock = _timeline(logs[row.device], plain)
            receipt = ev.sign_record(agency.receipt_key, agency.receipt_cert, {
                "ctx": ev.CTX_RECEIPT, "archive": agency.archive_id, "device": row.device, "segment": row.name,
                "segment_seq": row.segment_seq, "segment_digest": row.segment_digest,
                "files": {"segment_sha256": row.segment_blob, "manifest_sha256": row.manifest_blob},
                "stored_utc": row.imported_utc, "retain_until": row.retain_until})
            m = plain.manifest
            segments.append({
                "name": row.name, "device": row.device, "segment_seq": row.segment_seq, "officer": row.officer,
                "media": plain.media, "opened_utc": m["opened_utc"], "closed_utc": m.get("closed_utc"),
                "opened_local": m.get("opened_local"), "timezone": m.get("timezone"), "status": m["status"],
                "fragments": m["fragment_count"], "media_bytes": len(plain.data),
                "segment_digest": row.segment_digest, "segment_file_sha256": row.segment_blob,
                "manifest_file_sha256": row.manifest_blob, "media_sha256": hashlib.sha256(plain.data).hexdigest(),
                "media_file": media_rel, "thumbnail": f"thumbnails/{row.name}.jpg",
                "original_dir": f"originals/{row.device}",
                "device_certificate": ev.fingerprint(ev.load_cert(folders[row.device] / ev.IDENTITY_DIR / ev.DEVICE_CERT)), "imported_utc": row.imported_utc, "source": row.source,
                "retention_class": row.retention_class, "retain_until": row.retain_until,
                "clock": clock, "events": events, "receipts": [receipt]})
        c2pa_config = archive.config.lawful_use.c2pa
        if c2pa_config is not None:
            from .content_credentials import manifest_definition, sign_sidecar

            chain, key = c2pa_config.certificate_chain.read_bytes(), c2pa_config.key.read_bytes()
            for seg in segments:
                definition = manifest_definition(seg, archive_id=agency.archive_id, agency=agency.id, export={
                    "utc": when, "grant": grant.id, "approver": grant.decided_by, "recipient": recipient})
                sidecar = sign_sidecar((tmp / seg["media_file"]).read_bytes(), seg["media"], definition,
                                       chain_pem=chain, key_pem=key, alg=c2pa_config.alg, tsa_url=c2pa_config.tsa_url)
                (tmp / f"{seg['media_file']}.c2pa").write_bytes(sidecar)
                seg["content_credentials"] = f"{seg['media_file']}.c2pa"
        heads = {device: {"seq": entries[-1]["seq"], "digest": entries[-1]["digest"], "utc": entries[-1]["utc"]}
                 for device, entries in logs.items() if entries}
        from .provenance import stamps_for

        seal_stamps: dict[str, list[dict[str, Any]]] = {}
        for device, folder in folders.items():
            for st in stamps_for(archive, device):
                if device in heads and st["seq"] <= heads[device]["seq"]:
                    rel = f"originals/{device}/stamps/{st['seq']:012d}.tsr"
                    (tmp / rel).parent.mkdir(exist_ok=True)
                    (tmp / rel).write_bytes(base64.b64decode(st["token"]))
                    seal_stamps.setdefault(device, []).append({k: st[k] for k in ("seq", "digest", "tsa",
                                                                                   "stamped_utc")} | {"file": rel})
        custody = {
            "format": "bodycam-custody/1",
            "segments": [{"name": s["name"], "captured": {"device": s["device"], "officer": s["officer"],
                                                          "opened_utc": s["opened_utc"], "signed_by": "device key"},
                          "archived": {"imported_utc": s["imported_utc"], "source": s["source"],
                                       "receipt": "receipts in manifest.json"}} for s in segments],
            "labels": [{"utc": r.at_utc, "who": r.who, "action": r.action, "detail": json.loads(r.detail)}
                       for r in labels],
            "holds": [{"placed_utc": h.placed_utc, "by": h.placed_by, "reason": h.reason,
                       "released_utc": h.released_utc} for h in holds
                      if h.segment_digest in grant.segments or (case is not None and h.case_id == case.id)],
            "grant": grant.to_json(),
            "export": {"utc": when, "by": account.username, "recipient": recipient},
        }
        (tmp / "audit" / "custody.json").write_text(json.dumps(custody, ensure_ascii=False, indent=2))
        # the export itself goes into the audit log before the extract is taken, so the extract shows it
        audit_of(archive).record(agency.id, "export", actor=account.actor, case=grant.case_number,
                                 segments=list(grant.segments), detail={"grant": grant.id, "recipient": recipient})
        log_ = audit_of(archive)
        if grant.case_number:
            extract = log_.export_jsonl(agency.id, case=grant.case_number)
        else:
            extract = _segment_extract(log_, agency.id, set(grant.segments))
        (tmp / "audit" / "audit.jsonl").write_bytes(extract)
        audit_head = log_.head(agency.id)
        context = {
            "agency": agency, "case": dict(case._mapping) if case is not None else None, "grant": grant,
            "recipient": recipient, "created_utc": when, "segments": segments, "heads": heads,
            "audit_head": audit_head, "exporter": account, "ca_fingerprint": ev.fingerprint(agency.ca_cert),
            "archive_fingerprint": ev.fingerprint(agency.receipt_cert), "viewing_copies": viewing_copies,
            "seal_stamps": seal_stamps,
        }
        render_package_report(context, tmp / "report")
        (tmp / "README.txt").write_text(_readme(agency, ev.fingerprint(agency.ca_cert)), encoding="utf-8")
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {
            "format": PACKAGE_FORMAT, "created_utc": when, "agency": agency.id, "agency_name": agency.name,
            "archive": agency.archive_id, "case": grant.case_number, "recipient": recipient,
            "grant": {"id": grant.id, "approver": grant.decided_by, "decision": grant.decision},
            "files": files, "segments": segments, "seal_log_heads": heads, "seal_log_stamps": seal_stamps,
            "log_head_attestations": head_attestations,
            "audit": "audit/audit.jsonl", "report_html": "report/report.html", "verifier": "verify_package.py",
        }
        manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
        (tmp / "manifest.json").write_bytes(manifest_bytes)
        package_sha = hashlib.sha256(manifest_bytes).hexdigest()
        attestation = ev.sign_record(agency.receipt_key, agency.receipt_cert, {
            "ctx": CTX_ATTESTATION, "device": "", "archive": agency.archive_id, "agency": agency.id,
            "manifest_sha256": package_sha, "utc": when, "case": grant.case_number, "recipient": recipient,
            "grant": grant.id, "seal_log_heads": heads,
            "audit_head": None if audit_head is None else {"seq": audit_head[0], "digest": audit_head[1]}})
        (tmp / "attestation.json").write_text(json.dumps(attestation, indent=1))
        _fsync_tree(tmp)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Art. 18: the agency keeps a copy of what it gave, write-once, and a register entry.
    retained = out.parent / f".{out.name}.tar"
    try:
        _deterministic_tar(out, retained)
        tar_sha = sha256_file(retained)
        until = max(dt.datetime.fromisoformat(r.retain_until.replace("Z", "+00:00")) for r in rows)
        archive.store.put(tar_sha, retained, until)
        archive.store.confirm(tar_sha, until)
        size = retained.stat().st_size
    finally:
        retained.unlink(missing_ok=True)
    with archive.engine.begin() as conn:
        disclosure = conn.execute(lx.disclosures.insert().values(
            agency=agency.id, grant_id=grant.id, recipient=recipient, case_number=grant.case_number,
            segments=json.dumps(list(grant.segments)), package_sha256=package_sha, retained_blob=tar_sha,
            bytes=size, exported_by=account.username, exported_utc=when)).inserted_primary_key[0]
        conn.execute(ix.blobs.insert().values(digest=tar_sha, bytes=size, retain_until=ev.utc_text(until),
                                              version=None, stored_utc=when))
    return ExportResult(out, package_sha, tar_sha, size, len(rows), disclosure, time.monotonic() - started)


def register(archive, agency: str | None) -> list[dict[str, Any]]:
    """The register of disclosures (Art. 18): what went to whom, when, and the retained copy."""
    a = archive.agency(agency)
    d = lx.disclosures
    with archive.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(d).where(d.c.agency == a.id).order_by(d.c.id))]


def _segment_extract(log_, agency: str, digests: set[str]) -> bytes:
    lines = log_.export_jsonl(agency).decode().splitlines()
    head, body = lines[0], lines[1:]
    head_obj = json.loads(head)
    head_obj["extract"] = {"segments": sorted(digests)}
    keep = []
    seqs = set()
    for line in body:
        item = json.loads(line)
        if "entry" in item:
            p = json.loads(item["entry"])
            if digests & set(p["segments"]):
                keep.append(line)
                seqs.add(p["seq"])
        elif "stamp" in item:
            if item["stamp"]["seq"] in seqs:
                keep.append(line)
        else:
            keep.append(line)
    return ("\n".join([json.dumps(head_obj, ensure_ascii=False)] + keep) + "\n").encode()


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _readme(agency, ca_fingerprint: str) -> str:
    return f"""执法音视频证据包（{agency.name}）

核验方法：安装 Python 3.11 及 cryptography 后，在本文件夹中运行
    python3 verify_package.py .
或使用从本机关另行取得的根证书：
    python3 verify_package.py . --ca 根证书.crt
输出 VERIFIED 即核验通过。本包内根证书 trust/ca.crt 的 SHA-256 指纹：
    {ca_fingerprint}
请与本机关公布的指纹核对。viewing/ 中带水印的副本仅供查看，不是证据原件；
media/ 中的文件与记录仪签名的内容逐字节一致，originals/ 为密封原件。

Evidence package.  To verify: python3 verify_package.py .  (Python 3.11 + cryptography).
Compare the trust anchor's fingerprint above with the one the agency publishes.
"""
