"""The archive: commit with receipts, labels, search, retention, holds, expiry,
written records, scrub and watch.  The HTTP server (archive/server.py) and the
CLI (archive/cli.py) are thin layers over :class:`Archive`.

Retention (Art. 12, 13), per segment:

=================  ==========================================  =====================
class              retain-until                                 set by
=================  ==========================================  =====================
``patrol``         imported + ``patrol_days`` (≥ 183)           commit
``review``         as patrol, and never expired until reviewed  commit (refusal mark)
``case``           labelled + the case file's years             ``label``
``art13``          classified + ``long_term_years``             ``classify``/``review``
=================  ==========================================  =====================

A date only ever moves later (the store's lock follows it); a legal hold or a
pending review keeps a segment past its date.  Expiry deletes only segments
whose date has passed, that are held by nothing and not under review, and
writes a signed tombstone for each.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from bodycam.errors import BodycamError, SealingError, UsageError

from . import evidence as ev
from .audit import audited, device_agency
from . import index as ix
from .blobstore import BlobStore, StoredBlob, StoreError, open_store, sha256_file
from .config import AgencyConfig, ArchiveConfig, RetentionConfig, WatchConfig

log = logging.getLogger(__name__)

# Art. 13's eight situations (long-term preservation).
ART13 = {
    "on-site": "现场询问、检查、抽样取证、听证 (on-site inquiry, inspection, sampling, hearing)",
    "coercion": "限制人身自由、查封扣押 (restricting liberty, sealing up, seizure)",
    "obstruction": "阻碍、侮辱执法人员 (obstruction or abuse of officers)",
    "objection": "当事人提出异议、投诉 (objections and complaints)",
    "mass-incident": "群体性、突发性事件 (mass or sudden incidents)",
    "removal": "排除妨碍、恢复原状 (removing obstruction, restoring)",
    "non-cooperation": "当事人不配合 (non-cooperation)",
    "other": "其他需要长期保存的情形 (others)",
}
# Art. 14: kinds of enforcement act that must be recorded in full.
ACT_TYPES = ("inspection", "sampling", "seizure", "hearing", "evidence", "service", "coercion",
             "penalty", "patrol", "other")
DOCUMENT_KINDS = ("note", "form", "service-receipt", "postal-receipt", "e-service", "decision", "scan", "other")
REVIEW_MARKS = ("refusal",)  # Art. 13 (3), (7): long-term until reviewed
CLASSES = ("patrol", "review", "case", "art13")
STORE_PARALLEL = 4  # blobs stored at once by a commit


class ArchiveError(BodycamError, RuntimeError):
    """The archive refused or could not complete an operation."""


class Clock(Protocol):
    def utc_now(self) -> dt.datetime: ...


class SystemUTC:
    def utc_now(self) -> dt.datetime:
        return ev.now_utc()


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    ca_cert: x509.Certificate
    receipt_key: Ed25519PrivateKey
    receipt_cert: x509.Certificate
    archive_id: str

    @classmethod
    def load(cls, config: AgencyConfig) -> "Agency":
        ca = ev.load_cert(config.ca, f"agency {config.id}: CA certificate")
        cert = ev.load_cert(config.receipt_certificate, f"agency {config.id}: receipt certificate")
        archive_id = ev.check_receipt_certificate(cert, ca, f"agency {config.id}: receipt certificate")
        key = ev.load_ed25519_key(config.receipt_key, f"agency {config.id}: receipt key")
        return cls(config.id, config.name, ca, key, cert, archive_id)


def _years(when: dt.datetime, years: int) -> dt.datetime:
    return when + dt.timedelta(days=round(365.2425 * years))


def _insert_ignore(conn: Connection, table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(index_elements=keys), rows)


@dataclass
class ExpiryItem:
    kind: str  # segment | document
    agency: str
    digest: str
    name: str
    retain_until: str
    retention_class: str
    reason: str


@dataclass
class ScrubResult:
    objects: int = 0
    bytes: int = 0
    bad: list[dict[str, str]] = field(default_factory=list)
    orphans: int = 0
    started_utc: str = ""
    finished_utc: str = ""


class Archive:
    """The archive on one store and one index.

    Thread-safe: the HTTP server commits from several docks at once.
    """

    def __init__(self, config: ArchiveConfig, clock: Clock | None = None,
                 store: BlobStore | None = None) -> None:
        self.config = config
        self.clock = clock or SystemUTC()
        self.agencies = {a.id: Agency.load(a) for a in config.agencies}
        self.store = store or open_store(config.store)
        try:
            self.engine: Engine = ix.open_index(config.index.url, config.agencies[0].id)
        except SQLAlchemyError as exc:
            shown = make_url(config.index.url).render_as_string(hide_password=True)
            raise ArchiveError(f"archive index {shown}: {getattr(exc, 'orig', None) or exc}") from None
        if hasattr(self.store, "version_of"):
            self.store.version_of = self._blob_version  # S3: the version the archive wrote
        self.retention: RetentionConfig = config.retention
        self.watch: WatchConfig = config.watch
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    def _blob_version(self, digest: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(ix.blobs.c.version).where(
                ix.blobs.c.digest == digest, ix.blobs.c.deleted_utc.is_(None))).scalar()

    def now(self) -> dt.datetime:
        return self.clock.utc_now()

    def agency(self, agency: str | None) -> Agency:
        if agency is None:
            if len(self.agencies) == 1:
                return next(iter(self.agencies.values()))
            raise UsageError(f"several agencies share this archive: name one of {sorted(self.agencies)}")
        try:
            return self.agencies[agency]
        except KeyError:
            raise UsageError(f"no agency {agency!r} in this archive; known: {sorted(self.agencies)}") from None

    def agency_of_dock(self, cert: x509.Certificate) -> tuple[Agency, str]:
        """Which agency a dock certificate belongs to (its CA), and the dock ID."""
        problems = []
        for agency in self.agencies.values():
            try:
                return agency, ev.check_dock_certificate(cert, agency.ca_cert)
            except (BodycamError, ValueError) as exc:
                problems.append(f"{agency.id}: {exc}")
        log.warning("refused a client: its certificate is not a dock of any agency here (%s)", "; ".join(problems))
        raise ArchiveError("client certificate is not a dock of any agency here: " + "; ".join(problems))

    # -- commit ------------------------------------------------------------------------------

    def commit_recording(self, agency_id: str | None, recording: Path, names: list[str], *, source: str,
                         sub_unit: str | None = None, digests: dict[str, str] | None = None,
                         held: list[str] | None = None) -> list[dict[str, str]]:
        """Verify ``recording``, store the named segments locked, index them, and
        return one signed receipt per segment stored (format §12).

        A receipt is signed only after the blobs are stored, locked and
        re-verified (store.confirm) and the index transaction has committed.
        ``digests`` ({path in the recording: SHA-256}) spares hashing files whose
        digest is already claimed; the store checks the claim as it stores.
        ``held`` names every segment the recorder still holds (a dock's listing)
        when ``recording`` carries only some: the chain of custody is judged
        against it (None: against the folder).
        Idempotent: committing the same segments again returns receipts for
        them again and stores nothing twice.  Segments that do not verify get
        no receipt (the recorder keeps them).  Raises SealingError if the seal
        log does not verify, StoreError if the store fails.
        """
        agency = self.agency(agency_id)
        log.info("commit from %s for %s: %d segment(s) named", source, agency.id, len(names))
        rec = ev.verify_recording(agency.ca_cert, recording, set(held) if held is not None else None)
        if not rec.log_ok:
            log.warning("refused commit from %s: seal log does not verify: %s", source, "; ".join(rec.log_reasons))
            raise SealingError(f"seal log does not verify: {'; '.join(rec.log_reasons)}")
        if not rec.device:
            log.warning("refused commit from %s: no valid device certificate", source)
            raise SealingError("recording has no valid device certificate")
        now = self.now()
        now_text = ev.utc_text(now)
        patrol_until = now + dt.timedelta(days=self.retention.patrol_days)
        with self.engine.connect() as conn:
            owner = conn.execute(select(ix.devices.c.agency).where(ix.devices.c.device == rec.device)).scalar()
        if owner is not None and owner != agency.id:
            log.warning("refused commit from %s: device %s belongs to agency %s, not %s", source, rec.device,
                        owner, agency.id)
            raise ArchiveError(f"device {rec.device} belongs to agency {owner}, not {agency.id}")
        blob_rows: dict[str, dict[str, Any]] = {}

        verified: dict[str, StoredBlob] = {}  # stored, locked and re-read in this call

        def put(path: Path, until: dt.datetime, link: bool = False) -> str:
            known = (digests or {}).get(str(path.relative_to(recording)))
            digest, size = (known, path.stat().st_size) if known else sha256_file(path)
            stored = self.store.put(digest, path, until, link=link)  # StoreError if the bytes differ
            text = ev.utc_text(until)
            with guard:
                verified[digest] = stored
                row = blob_rows.get(digest)
                if row is None or row["retain_until"] < text:
                    blob_rows[digest] = {"digest": digest, "bytes": size, "retain_until": text,
                                         "version": stored.version, "stored_utc": now_text}
            return digest

        guard = threading.Lock()
        wanted = [n for n in names if n in rec.segments]
        seg_dir = recording / ev.SEGMENTS_DIR
        files = [seg_dir / f"{n}{suffix}" for n in wanted for suffix in (ev.SEGMENT_SUFFIX, ev.MANIFEST_SUFFIX)]
        with ThreadPoolExecutor(STORE_PARALLEL) as pool:  # the store's round trips overlap
            # Sealed segment files never change again: they may be linked.
            stored_files = dict(zip(files, pool.map(lambda p: put(p, patrol_until, link=True), files)))

        cert_blob = put(recording / ev.IDENTITY_DIR / ev.DEVICE_CERT, patrol_until)
        log_files = []
        for path in sorted((recording / ev.LOG_DIR).iterdir()):
            if ev.LOG_FILE_RE.match(path.name):
                log_files.append({"device": rec.device, "file": path.name, "blob": put(path, patrol_until),
                                  "bytes": path.stat().st_size})
        rows = []
        for name in names:
            seg = rec.segments.get(name)
            if seg is None:
                continue
            review = any(m in REVIEW_MARKS for m in seg.marks)
            seg_blob = stored_files[seg_dir / f"{name}{ev.SEGMENT_SUFFIX}"]
            man_blob = stored_files[seg_dir / f"{name}{ev.MANIFEST_SUFFIX}"]
            rows.append({
                "segment_digest": seg.digest, "agency": agency.id, "sub_unit": sub_unit, "device": rec.device,
                "segment_seq": seg.seq, "name": name, "media": seg.media, "officer": seg.officer,
                "opened_utc": seg.opened_utc, "closed_utc": seg.closed_utc, "status": seg.status,
                "marks": json.dumps(seg.marks), "events": json.dumps(seg.events, ensure_ascii=False),
                "segment_blob": seg_blob, "manifest_blob": man_blob, "imported_utc": now_text,
                "source": source, "retain_until": ev.utc_text(patrol_until),
                "retention_class": "review" if review else "patrol", "art13": None,
                "review_pending": review, "deleted_utc": None})
        with self.engine.begin() as conn:  # one transaction: durable before any receipt
            _insert_ignore(conn, ix.blobs, list(blob_rows.values()), ["digest"])
            for row in blob_rows.values():
                conn.execute(update(ix.blobs).where(ix.blobs.c.digest == row["digest"],
                                                    ix.blobs.c.retain_until < row["retain_until"])
                             .values(retain_until=row["retain_until"]))
            _insert_ignore(conn, ix.seal_log_files, log_files, ["device", "file", "blob"])
            known = conn.execute(select(ix.devices.c.head_seq).where(ix.devices.c.device == rec.device)).first()
            # What the archive saw, when (format §12.1): signed with the head it records, never otherwise.
            head_attestation = ev.sign_log_head(agency.receipt_key, agency.receipt_cert, agency.archive_id, rec, now)
            if known is None:
                conn.execute(ix.devices.insert().values(
                    device=rec.device, certificate_blob=cert_blob, head_seq=rec.head_seq,
                    head_digest=rec.head_digest, head_attestation=head_attestation, agency=agency.id,
                    last_docked_utc=now_text, last_source=source))
            else:
                values = {"last_docked_utc": now_text, "last_source": source, "agency": agency.id}
                if known[0] is None or (rec.head_seq is not None and rec.head_seq >= known[0]):
                    values.update(head_seq=rec.head_seq, head_digest=rec.head_digest, certificate_blob=cert_blob,
                                  head_attestation=head_attestation)
                conn.execute(update(ix.devices).where(ix.devices.c.device == rec.device).values(**values))
            _insert_ignore(conn, ix.segments, rows, ["segment_digest"])
            self._record_custody(conn, agency.id, rec, now_text, source)
            stored = {r.segment_digest: r for r in conn.execute(
                select(ix.segments).where(ix.segments.c.segment_digest.in_([r["segment_digest"] for r in rows])))}
        receipts, receipted = [], set()
        for row in rows:
            s = stored.get(row["segment_digest"])
            if s is None or s.deleted_utc is not None or s.agency != agency.id:
                continue
            until = dt.datetime.fromisoformat(s.retain_until.replace("Z", "+00:00"))
            for digest in (s.segment_blob, s.manifest_blob):
                done = verified.get(digest)
                if done is None or (done.retain_until is not None
                                    and done.retain_until < until.replace(microsecond=0)):
                    self.store.confirm(digest, until)  # stored, locked, re-verified: now the receipt
            receipts.append(ev.sign_record(agency.receipt_key, agency.receipt_cert, {
                "ctx": ev.CTX_RECEIPT, "archive": agency.archive_id, "device": s.device, "segment": s.name,
                "segment_seq": s.segment_seq, "segment_digest": s.segment_digest,
                "files": {"segment_sha256": s.segment_blob, "manifest_sha256": s.manifest_blob},
                "stored_utc": s.imported_utc, "retain_until": s.retain_until}))
            log.debug("receipt signed: device %s segment %s (%s), retained until %s", s.device, s.name,
                      s.segment_digest, s.retain_until)
            receipted.add(s.name)
        log.info("commit from %s: device %s, %d of %d segments receipted", source, rec.device, len(receipts),
                 len(names))
        unreceipted = [n for n in names if n not in receipted]
        if unreceipted:
            # The recorder keeps these: not in the recording, or they did not verify.
            log.warning("commit from %s: device %s: no receipt for %d segment(s) (not verified or not "
                        "present; the recorder keeps them): %s", source, rec.device, len(unreceipted),
                        ", ".join(unreceipted[:20]) + (" …" if len(unreceipted) > 20 else ""))
        return receipts

    def _record_custody(self, conn: Connection, agency: str, rec: ev.VerifiedRecording, now_text: str,
                        source: str) -> None:
        """Index the chain of custody a commit's seal log shows (format §14):
        its oversight entries after the last one indexed for the device (all
        of them at its first commit since revision 0005) into ``log_events``,
        and each logged segment gone from
        the recording without a valid archive receipt for a digest this
        archive holds into ``custody_findings`` (first sighting kept; a
        finding whose segment a later commit's folder holds again is marked
        resolved by that commit, never deleted).  Entries
        written before any assignment are attributed to the officer of the
        device's latest segment opened at or before them (a recorder with a
        configured officer is never assigned by a dock)."""
        le = ix.log_events
        indexed = conn.execute(select(func.max(le.c.seq)).where(le.c.device == rec.device)).scalar()
        events = []
        for e in rec.log_events:
            if indexed is not None and e.seq <= indexed:
                continue
            events.append({"device": rec.device, "seq": e.seq, "agency": agency, "utc": e.utc, "event": e.event,
                           "officer": e.officer or self._officer_at(conn, agency, rec.device, e.utc),
                           "segment": e.segment, "detail": json.dumps(e.data, ensure_ascii=False)})
        _insert_ignore(conn, ix.log_events, events, ["device", "seq"])
        gone = [g for g in rec.gone if g.how not in ("open", "lost")]
        s = ix.segments
        digests, held = [g.digest for g in gone if g.digest], set()
        for start in range(0, len(digests), 500):  # bounded IN lists
            held.update(conn.execute(select(s.c.segment_digest).where(
                s.c.agency == agency, s.c.segment_digest.in_(digests[start:start + 500]))).scalars())
        findings = []
        for g in gone:
            how = g.how
            if how == "receipt":
                if g.digest in held:
                    continue  # receipted by this archive, which holds it: the one allowed deletion
                how = "receipt-not-held"  # a receipt from elsewhere, for footage this archive never received
            findings.append({"device": rec.device, "segment_seq": g.seq, "agency": agency, "segment": g.name,
                             "segment_digest": g.digest,
                             "officer": g.officer or self._officer_at(conn, agency, rec.device, g.opened_utc),
                             "opened_utc": g.opened_utc, "how": how, "found_utc": now_text, "source": source})
        if findings:
            log.warning("commit from %s: device %s: %d segment(s) gone from the recorder without a receipt "
                        "of this archive: %s", source, rec.device, len(findings),
                        ", ".join(f"{f['segment']} ({f['how']})" for f in findings[:20]))
        _insert_ignore(conn, ix.custody_findings, findings, ["device", "segment_seq"])
        cf, present = ix.custody_findings, sorted(rec.present)
        for start in range(0, len(present), 500):  # held again (restored, or an earlier partial copy)
            conn.execute(update(cf).where(cf.c.device == rec.device, cf.c.segment_seq.in_(present[start:start + 500]),
                                          cf.c.resolved_utc.is_(None))
                         .values(resolved_utc=now_text, resolved_by=source))

    @staticmethod
    def _officer_at(conn: Connection, agency: str, device: str, utc: str) -> str | None:
        s = ix.segments
        return conn.execute(select(s.c.officer).where(s.c.agency == agency, s.c.device == device,
                                                       s.c.opened_utc <= utc,
                                                       s.c.officer.is_not(None))
                            .order_by(s.c.opened_utc.desc()).limit(1)).scalar()

    # -- search --------------------------------------------------------------------------------

    @audited("search", segments_from=lambda rows: [r["segment_digest"] for r in rows])
    def search(self, agency: str | None = None, *, sub_unit: str | None = None, device: str | None = None,
               officer: str | None = None, party: str | None = None, case_number: str | None = None,
               cause: str | None = None, act_type: str | None = None, mark: str | None = None,
               event: str | None = None, retention_class: str | None = None, media: str | None = None,
               since: str | None = None, until: str | None = None, include_deleted: bool = False,
               limit: int = 1000) -> list[dict[str, Any]]:
        """Segments of one agency matching every given Art. 20 field.

        ``party`` and ``cause`` match substrings; ``since``/``until`` bound
        ``opened_utc`` (ISO 8601 UTC text, inclusive/exclusive).  Rows are
        dicts with the segment columns plus ``cases`` (list of case dicts).
        """
        a = self.agency(agency)
        s, c, cs = ix.segments, ix.cases, ix.case_segments
        where = [s.c.agency == a.id]
        for col, value in ((s.c.sub_unit, sub_unit), (s.c.device, device), (s.c.officer, officer),
                           (s.c.retention_class, retention_class), (s.c.media, media)):
            if value is not None:
                where.append(col == value)
        if since and until and _utc_bound(since, "since") >= _utc_bound(until, "until"):
            raise UsageError(f"--since {since} is not before --until {until}: the range is empty")
        if since:
            where.append(s.c.opened_utc >= _utc_bound(since, "since"))
        if until:
            where.append(s.c.opened_utc < _utc_bound(until, "until"))
        if mark:
            where.append(s.c.marks.like(f'%"{_like(mark)}"%', escape="\\"))
        if event:
            where.append(s.c.events.like(f'%"event": "{_like(event)}"%', escape="\\"))
        if not include_deleted:
            where.append(s.c.deleted_utc.is_(None))
        case_where = []
        if party:
            case_where.append(c.c.party.like(f"%{_like(party)}%", escape="\\"))
        if cause:
            case_where.append(c.c.cause.like(f"%{_like(cause)}%", escape="\\"))
        if case_number:
            case_where.append(c.c.case_number == case_number)
        if act_type:
            case_where.append(c.c.act_type == act_type)
        if case_where:
            where.append(exists(select(cs.c.case_id).join(c, c.c.id == cs.c.case_id).where(
                cs.c.segment_digest == s.c.segment_digest, c.c.agency == a.id, *case_where)))
        query = select(s).where(*where).order_by(s.c.opened_utc, s.c.device, s.c.segment_seq).limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            if rows:
                digests = [r["segment_digest"] for r in rows]
                linked: dict[str, list[dict[str, Any]]] = {}
                for r in conn.execute(select(cs.c.segment_digest, c).join(c, c.c.id == cs.c.case_id)
                                      .where(cs.c.segment_digest.in_(digests))):
                    m = dict(r._mapping)
                    linked.setdefault(m.pop("segment_digest"), []).append(m)
                for r in rows:
                    r["cases"] = linked.get(r["segment_digest"], [])
                    r["marks"] = json.loads(r["marks"])
                    r["events"] = json.loads(r["events"])
        return rows

    def segments(self, **where: Any) -> list[dict[str, Any]]:
        """Round-1 interface: equality search in the only (or first) agency."""
        if "department" in where:
            where["sub_unit"] = where.pop("department")
        allowed = {"device", "officer", "sub_unit", "media", "status", "name"}
        if not set(where) <= allowed:
            raise UsageError(f"search by {sorted(allowed)}")
        s = ix.segments
        query = select(s).where(*[s.c[k] == v for k, v in where.items()]).order_by(s.c.device, s.c.segment_seq)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def _resolve(self, conn: Connection, agency: Agency, segments: Iterable[str]) -> list[Any]:
        """Segment rows by digest or name, all of this agency; UsageError names what is missing."""
        wanted = list(segments)
        if not wanted:
            raise UsageError("name at least one segment (digest or name)")
        s = ix.segments
        rows = list(conn.execute(select(s).where(s.c.agency == agency.id, s.c.deleted_utc.is_(None),
                                                 or_(s.c.segment_digest.in_(wanted), s.c.name.in_(wanted)))))
        found = {r.segment_digest for r in rows} | {r.name for r in rows}
        missing = [w for w in wanted if w not in found]
        if missing:
            raise UsageError(f"no such segment in agency {agency.id}: {', '.join(missing[:5])}")
        return rows

    # -- labels and retention ----------------------------------------------------------------------

    def _lengthen(self, conn: Connection, row: Any, until: dt.datetime, klass: str | None, who: str,
                  action: str, case_id: int | None, extra: dict[str, Any]) -> None:
        """Move a segment's date later (never earlier), its blobs' locks with it; record who/when."""
        until_text = ev.utc_text(until)
        new_until = max(row.retain_until, until_text)
        old_class = row.retention_class
        new_class = klass if klass and _class_rank(klass) >= _class_rank(old_class) else old_class
        for digest in (row.segment_blob, row.manifest_blob):
            self.store.extend(digest, dt.datetime.fromisoformat(new_until.replace("Z", "+00:00")))
            conn.execute(update(ix.blobs).where(ix.blobs.c.digest == digest, ix.blobs.c.retain_until < new_until)
                         .values(retain_until=new_until))
        values: dict[str, Any] = {"retain_until": new_until, "retention_class": new_class}
        values.update({k: v for k, v in extra.items() if k in ("art13", "review_pending")})
        conn.execute(update(ix.segments).where(ix.segments.c.segment_digest == row.segment_digest).values(**values))
        conn.execute(ix.label_events.insert().values(
            agency=row.agency, segment_digest=row.segment_digest, case_id=case_id, action=action, who=who,
            at_utc=ev.utc_text(self.now()), detail=json.dumps({
                "before": {"retain_until": row.retain_until, "retention_class": old_class, "art13": row.art13,
                           "review_pending": bool(row.review_pending)},
                "after": {"retain_until": new_until, "retention_class": new_class, **extra}}, ensure_ascii=False)))

    @audited("label")
    def label(self, agency: str | None, segments: Iterable[str], *, case_number: str, who: str,
              party: str | None = None, cause: str | None = None, act_type: str | None = None,
              sub_unit: str | None = None, retain_years: int | None = None) -> dict[str, Any]:
        """Attach segments to a case (created if new; its fields updated if given).

        Never touches stored bytes.  The segments' retention becomes the case
        file's period if that is later.  Every change goes to ``label_events``
        with ``who`` and the time.  Returns the case as a dict.
        """
        a = self.agency(agency)
        _require(who, "who (the officer or keeper making the change)")
        _require(case_number, "case number")
        if act_type is not None and act_type not in ACT_TYPES:
            raise UsageError(f"act type {act_type!r}: one of {', '.join(ACT_TYPES)}")
        now = self.now()
        with self._lock, self.engine.begin() as conn:
            case = self._case(conn, a, case_number, create=True, who=who, retain_years=retain_years)
            changes = {k: v for k, v in (("party", party), ("cause", cause), ("act_type", act_type),
                                         ("sub_unit", sub_unit), ("retain_years", retain_years))
                       if v is not None and getattr(case, k) != v}
            if retain_years is not None and retain_years < case.retain_years:
                raise UsageError(f"case {case_number}: its period is {case.retain_years} years; it can only lengthen")
            if changes:
                conn.execute(update(ix.cases).where(ix.cases.c.id == case.id).values(**changes))
                conn.execute(ix.label_events.insert().values(
                    agency=a.id, case_id=case.id, action="case-update", who=who, at_utc=ev.utc_text(now),
                    detail=json.dumps({"before": {k: getattr(case, k) for k in changes}, "after": changes},
                                      ensure_ascii=False)))
                case = conn.execute(select(ix.cases).where(ix.cases.c.id == case.id)).one()
            until = _years(now, case.retain_years)
            self._lengthen_documents(conn, case.id, until)
            for row in self._resolve(conn, a, segments):
                _insert_ignore(conn, ix.case_segments, [{"case_id": case.id, "segment_digest": row.segment_digest}],
                               ["case_id", "segment_digest"])
                self._lengthen(conn, row, until, "case", who, "label", case.id, {"case_number": case_number})
            return dict(case._mapping)

    def _lengthen_documents(self, conn: Connection, case_id: int, until: dt.datetime) -> None:
        """A case's written records follow its retention (only ever later)."""
        text = ev.utc_text(until)
        d, b = ix.documents, ix.blobs
        for (digest,) in conn.execute(select(d.c.blob).join(b, b.c.digest == d.c.blob).where(
                d.c.case_id == case_id, d.c.deleted_utc.is_(None), b.c.retain_until < text)):
            self.store.extend(digest, until)
            conn.execute(update(b).where(b.c.digest == digest, b.c.retain_until < text).values(retain_until=text))

    @audited("unlabel")
    def unlabel(self, agency: str | None, segments: Iterable[str], *, case_number: str, who: str) -> int:
        """Take segments out of a case.  Their retention date stays (it only lengthens)."""
        a = self.agency(agency)
        _require(who, "who")
        with self._lock, self.engine.begin() as conn:
            case = self._case(conn, a, case_number, create=False)
            n = 0
            for row in self._resolve(conn, a, segments):
                n += conn.execute(ix.case_segments.delete().where(
                    ix.case_segments.c.case_id == case.id,
                    ix.case_segments.c.segment_digest == row.segment_digest)).rowcount
                conn.execute(ix.label_events.insert().values(
                    agency=a.id, segment_digest=row.segment_digest, case_id=case.id, action="unlabel", who=who,
                    at_utc=ev.utc_text(self.now()), detail=json.dumps({"case_number": case_number})))
            return n

    @audited("classify")
    def classify(self, agency: str | None, segments: Iterable[str], *, situation: str, who: str) -> int:
        """Art. 13: one of the eight situations; long-term retention; clears a pending review."""
        a = self.agency(agency)
        _require(who, "who")
        if situation not in ART13:
            raise UsageError(f"Art. 13 situation {situation!r}: one of {', '.join(ART13)}")
        until = _years(self.now(), self.retention.long_term_years)
        with self._lock, self.engine.begin() as conn:
            rows = self._resolve(conn, a, segments)
            for row in rows:
                self._lengthen(conn, row, until, "art13", who, "classify", None,
                               {"art13": situation, "review_pending": False})
            return len(rows)

    @audited("review")
    def review(self, agency: str | None, segments: Iterable[str], *, who: str, situation: str | None) -> int:
        """Close the review of a refusal / obstruction mark.  With a situation the
        segment becomes long-term (``classify``); without, it keeps its date and
        class and may expire when the date passes."""
        if situation:
            return self.classify(agency, segments, situation=situation, who=who)
        a = self.agency(agency)
        _require(who, "who")
        with self._lock, self.engine.begin() as conn:
            rows = self._resolve(conn, a, segments)
            for row in rows:
                until = dt.datetime.fromisoformat(row.retain_until.replace("Z", "+00:00"))
                klass = "patrol" if row.retention_class == "review" else row.retention_class
                conn.execute(update(ix.segments).where(ix.segments.c.segment_digest == row.segment_digest)
                             .values(retention_class=klass))
                row = conn.execute(select(ix.segments).where(
                    ix.segments.c.segment_digest == row.segment_digest)).one()
                self._lengthen(conn, row, until, None, who, "review", None, {"review_pending": False})
            return len(rows)

    def history(self, agency: str | None, segment: str) -> list[dict[str, Any]]:
        """Every label/retention change of one segment, oldest first."""
        a = self.agency(agency)
        with self.engine.connect() as conn:
            row = self._resolve(conn, a, [segment])[0]
            q = select(ix.label_events).where(ix.label_events.c.segment_digest == row.segment_digest,
                                              ix.label_events.c.agency == a.id).order_by(ix.label_events.c.id)
            return [{**dict(r._mapping), "detail": json.loads(r.detail)} for r in conn.execute(q)]

    def _case(self, conn: Connection, agency: Agency, case_number: str, *, create: bool, who: str = "",
              retain_years: int | None = None) -> Any:
        c = ix.cases
        row = conn.execute(select(c).where(c.c.agency == agency.id, c.c.case_number == case_number)).first()
        if row is None:
            if not create:
                raise UsageError(f"no case {case_number!r} in agency {agency.id}")
            conn.execute(c.insert().values(agency=agency.id, case_number=case_number,
                                           retain_years=retain_years or self.retention.case_file_years,
                                           created_utc=ev.utc_text(self.now()), created_by=who))
            row = conn.execute(select(c).where(c.c.agency == agency.id, c.c.case_number == case_number)).one()
        return row

    # -- holds ---------------------------------------------------------------------------------

    @audited("hold")
    def hold(self, agency: str | None, *, reason: str, who: str, case_number: str | None = None,
             segments: Iterable[str] = ()) -> list[int]:
        """Place legal holds on a case (all its segments and documents) or on segments."""
        a = self.agency(agency)
        _require(reason, "reason")
        _require(who, "who")
        segments = list(segments)
        if not case_number and not segments:
            raise UsageError("hold what? name a case (--case) or segments")
        now = ev.utc_text(self.now())
        ids = []
        with self._lock, self.engine.begin() as conn:
            if case_number:
                case = self._case(conn, a, case_number, create=False)
                ids.append(conn.execute(ix.holds.insert().values(
                    agency=a.id, case_id=case.id, reason=reason, placed_by=who, placed_utc=now)).inserted_primary_key[0])
            if segments:
                for row in self._resolve(conn, a, segments):
                    ids.append(conn.execute(ix.holds.insert().values(
                        agency=a.id, segment_digest=row.segment_digest, reason=reason, placed_by=who,
                        placed_utc=now)).inserted_primary_key[0])
        return ids

    @audited("release")
    def release(self, agency: str | None, hold_id: int, *, who: str, case_number: str | None = None) -> None:
        """Release legal hold ``hold_id``; with ``case_number``, only a hold on that
        case (a case page releases its own holds; the audit entry names the case).
        UsageError if there is no such active hold."""
        a = self.agency(agency)
        _require(who, "who")
        with self._lock, self.engine.begin() as conn:
            q = update(ix.holds).where(ix.holds.c.id == hold_id, ix.holds.c.agency == a.id,
                                       ix.holds.c.released_utc.is_(None))
            if case_number is not None:
                case = self._case(conn, a, case_number, create=False)
                q = q.where(ix.holds.c.case_id == case.id)
            n = conn.execute(q.values(released_by=who, released_utc=ev.utc_text(self.now()))).rowcount
            if n != 1:
                raise UsageError(f"no active hold {hold_id} in agency {a.id}"
                                 + (f" on case {case_number}" if case_number is not None else ""))

    def holds(self, agency: str | None, active_only: bool = True) -> list[dict[str, Any]]:
        a = self.agency(agency)
        q = select(ix.holds).where(ix.holds.c.agency == a.id)
        if active_only:
            q = q.where(ix.holds.c.released_utc.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(ix.holds.c.id))]

    # -- expiry --------------------------------------------------------------------------------

    def expiry_candidates(self, now: dt.datetime | None = None) -> tuple[list[ExpiryItem], list[ExpiryItem]]:
        """(expired: what expiry would delete, kept: past date but held or under review)."""
        now_text = ev.utc_text(now or self.now())
        s, h, cs = ix.segments, ix.holds, ix.case_segments
        active = h.c.released_utc.is_(None)
        held_direct = exists(select(h.c.id).where(active, h.c.segment_digest == s.c.segment_digest))
        held_case = exists(select(h.c.id).join(cs, cs.c.case_id == h.c.case_id)
                           .where(active, cs.c.segment_digest == s.c.segment_digest))
        q = select(s, held_direct.label("held_direct"), held_case.label("held_case")).where(
            s.c.deleted_utc.is_(None), s.c.retain_until < now_text).order_by(s.c.retain_until)
        expired, kept = [], []
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                item = ExpiryItem("segment", r.agency, r.segment_digest, r.name, r.retain_until,
                                  r.retention_class, "")
                if r.held_direct or r.held_case:
                    item.reason = "legal hold on the " + ("segment" if r.held_direct else "case")
                    kept.append(item)
                elif r.review_pending:
                    item.reason = "refusal/obstruction mark not yet reviewed (Art. 13)"
                    kept.append(item)
                else:
                    item.reason = f"{r.retention_class} retention ended {r.retain_until}, no hold"
                    expired.append(item)
            d, b, c = ix.documents, ix.blobs, ix.cases
            held_doc = exists(select(h.c.id).where(active, h.c.case_id == d.c.case_id))
            for r in conn.execute(select(d, b.c.retain_until, c.c.case_number, held_doc.label("held"))
                                  .join(b, b.c.digest == d.c.blob).join(c, c.c.id == d.c.case_id)
                                  .where(d.c.deleted_utc.is_(None), b.c.retain_until < now_text)):
                item = ExpiryItem("document", r.agency, str(r.id), f"{r.case_number}/{r.filename}", r.retain_until,
                                  "case", "")
                if r.held:
                    item.reason = "legal hold on the case"
                    kept.append(item)
                else:
                    item.reason = f"case file period ended {r.retain_until}, no hold"
                    expired.append(item)
        return expired, kept

    def expire(self, *, who: str, dry_run: bool = True, now: dt.datetime | None = None,
               progress: Callable[[ExpiryItem], None] = lambda i: None) -> dict[str, Any]:
        """Delete expired, unheld segments, each with a signed tombstone.

        Dry run (the default) lists what would go and why, deleting nothing.
        Order for each segment: sign the tombstone, delete the blobs (the S3
        lock refuses if its date has not passed), then record tombstone and
        deletion in one transaction; a crash in between is finished by the
        next run (deleting a missing blob succeeds).
        """
        _require(who, "who")
        when = now or self.now()
        expired, kept = self.expiry_candidates(when)
        result: dict[str, Any] = {"dry_run": dry_run, "now": ev.utc_text(when),
                                  "expired": [vars(i) for i in expired], "kept": [vars(i) for i in kept],
                                  "deleted": [], "failed": []}
        if dry_run:
            return result
        for item in kept:
            log.debug("expiry keeps %s %s of %s: %s", item.kind, item.name, item.agency, item.reason)
        for item in expired:
            with self._lock:
                try:
                    result["deleted"].append(self._tombstone(item, who, when))
                except (StoreError, ArchiveError) as exc:
                    log.error("expiry of %s %s of %s failed (kept; the next run retries): %s", item.kind,
                              item.name, item.agency, exc)
                    result["failed"].append({"digest": item.digest, "error": str(exc)})
            progress(item)
        (log.error if result["failed"] else log.info)(
            "expiry by %s: %d deleted with tombstones, %d failed, %d kept (held, under review or not due)",
            who, len(result["deleted"]), len(result["failed"]), len(kept))
        return result

    def _live_references(self, conn: Connection, digests: list[str], *, segment: str | None = None,
                         document: int | None = None) -> set[str]:
        """Which of ``digests`` another live segment or document still refers to (they stay)."""
        s, d = ix.segments, ix.documents
        live = set()
        for col in (s.c.segment_blob, s.c.manifest_blob):
            live |= {x for (x,) in conn.execute(select(col).where(
                s.c.deleted_utc.is_(None), s.c.segment_digest != (segment or ""), col.in_(digests)))}
        live |= {x for (x,) in conn.execute(select(d.c.blob).where(
            d.c.deleted_utc.is_(None), d.c.id != (document or -1), d.c.blob.in_(digests)))}
        return live

    @audited("expire")
    def _tombstone(self, item: ExpiryItem, who: str, when: dt.datetime) -> dict[str, Any]:
        if item.kind == "document":
            return self._tombstone_document(item, who, when)
        agency = self.agency(item.agency)
        with self.engine.connect() as conn:
            row = conn.execute(select(ix.segments).where(ix.segments.c.segment_digest == item.digest)).one()
            shared = self._live_references(conn, [row.segment_blob, row.manifest_blob], segment=row.segment_digest)
        when_text = ev.utc_text(when)
        record = ev.sign_record(agency.receipt_key, agency.receipt_cert, {
            "ctx": ev.CTX_TOMBSTONE, "archive": agency.archive_id, "agency": agency.id, "device": row.device,
            "segment": row.name, "segment_seq": row.segment_seq, "segment_digest": row.segment_digest,
            "files": {"segment_sha256": row.segment_blob, "manifest_sha256": row.manifest_blob},
            "retention_class": row.retention_class, "retain_until": row.retain_until, "deleted_utc": when_text,
            "reason": item.reason, "by": who})
        for digest in (row.segment_blob, row.manifest_blob):
            if digest not in shared:
                self.store.delete_expired(digest, when)
        with self.engine.begin() as conn:
            _insert_ignore(conn, ix.tombstones, [{
                "digest": row.segment_digest, "agency": agency.id, "kind": "segment", "deleted_utc": when_text,
                "reason": item.reason, "record": json.dumps(record)}], ["digest"])
            conn.execute(update(ix.segments).where(ix.segments.c.segment_digest == row.segment_digest)
                         .values(deleted_utc=when_text))
            for digest in (row.segment_blob, row.manifest_blob):
                if digest not in shared:
                    conn.execute(update(ix.blobs).where(ix.blobs.c.digest == digest).values(deleted_utc=when_text))
        log.info("expired segment %s of %s (%s)", row.name, agency.id, item.reason)
        return {"digest": row.segment_digest, "name": row.name, "tombstone": record}

    def _tombstone_document(self, item: ExpiryItem, who: str, when: dt.datetime) -> dict[str, Any]:
        agency = self.agency(item.agency)
        with self.engine.connect() as conn:
            row = conn.execute(select(ix.documents).where(ix.documents.c.id == int(item.digest))).one()
            shared = self._live_references(conn, [row.blob], document=row.id)
        when_text = ev.utc_text(when)
        record = ev.sign_record(agency.receipt_key, agency.receipt_cert, {
            "ctx": ev.CTX_TOMBSTONE, "archive": agency.archive_id, "agency": agency.id, "device": "",
            "document": item.name, "kind": row.kind, "files": {"document_sha256": row.blob},
            "retention_class": "case", "retain_until": item.retain_until, "deleted_utc": when_text,
            "reason": item.reason, "by": who})
        if row.blob not in shared:
            self.store.delete_expired(row.blob, when)
        with self.engine.begin() as conn:
            _insert_ignore(conn, ix.tombstones, [{
                "digest": f"document:{row.id}", "agency": agency.id, "kind": "document", "deleted_utc": when_text,
                "reason": item.reason, "record": json.dumps(record, ensure_ascii=False)}], ["digest"])
            conn.execute(update(ix.documents).where(ix.documents.c.id == row.id).values(deleted_utc=when_text))
            if row.blob not in shared:
                conn.execute(update(ix.blobs).where(ix.blobs.c.digest == row.blob).values(deleted_utc=when_text))
        log.info("expired document %s of %s (%s)", item.name, agency.id, item.reason)
        return {"digest": row.blob, "name": item.name, "tombstone": record}

    def tombstones(self, agency: str | None) -> list[dict[str, Any]]:
        a = self.agency(agency)
        with self.engine.connect() as conn:
            return [{**dict(r._mapping), "record": json.loads(r.record)} for r in conn.execute(
                select(ix.tombstones).where(ix.tombstones.c.agency == a.id).order_by(ix.tombstones.c.deleted_utc))]

    # -- written records -----------------------------------------------------------------------------

    @audited("attach")
    def attach(self, agency: str | None, case_number: str, path: Path, *, kind: str, who: str) -> dict[str, Any]:
        """Seal a document on intake (SHA-256, archive signature, time) and keep it with
        the case, locked for the case file's period.  Returns the seal (signed record)."""
        a = self.agency(agency)
        _require(who, "who")
        if kind not in DOCUMENT_KINDS:
            raise UsageError(f"document kind {kind!r}: one of {', '.join(DOCUMENT_KINDS)}")
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: not a regular file")
        now = self.now()
        with self._lock:
            with self.engine.connect() as conn:
                case = self._case(conn, a, case_number, create=False)
            until = _years(now, case.retain_years)
            digest, size = sha256_file(path)
            stored = self.store.put(digest, path, until)
            self.store.confirm(digest, until)
            seal = ev.sign_record(a.receipt_key, a.receipt_cert, {
                "ctx": ev.CTX_DOCUMENT_SEAL, "device": "", "archive": a.archive_id, "agency": a.id,
                "case_number": case_number, "kind": kind, "filename": path.name, "sha256": digest, "bytes": size,
                "sealed_utc": ev.utc_text(now), "retain_until": ev.utc_text(until), "by": who})
            with self.engine.begin() as conn:
                _insert_ignore(conn, ix.blobs, [{"digest": digest, "bytes": size, "retain_until": ev.utc_text(until),
                                                 "version": stored.version, "stored_utc": ev.utc_text(now)}],
                               ["digest"])
                conn.execute(update(ix.blobs).where(ix.blobs.c.digest == digest,
                                                    ix.blobs.c.retain_until < ev.utc_text(until))
                             .values(retain_until=ev.utc_text(until)))
                conn.execute(ix.documents.insert().values(
                    agency=a.id, case_id=case.id, blob=digest, kind=kind, filename=path.name, bytes=size,
                    sealed_utc=ev.utc_text(now), added_by=who, seal=json.dumps(seal)))
                conn.execute(ix.label_events.insert().values(
                    agency=a.id, case_id=case.id, action="attach", who=who, at_utc=ev.utc_text(now),
                    detail=json.dumps({"sha256": digest, "filename": path.name, "kind": kind}, ensure_ascii=False)))
        return seal

    def documents(self, agency: str | None, case_number: str) -> list[dict[str, Any]]:
        a = self.agency(agency)
        with self.engine.connect() as conn:
            case = self._case(conn, a, case_number, create=False)
            return [{**dict(r._mapping), "seal": json.loads(r.seal)} for r in conn.execute(
                select(ix.documents).where(ix.documents.c.case_id == case.id).order_by(ix.documents.c.id))]

    # -- keeping watch -------------------------------------------------------------------------------

    def scrub(self, progress: Callable[[int], None] = lambda n: None) -> ScrubResult:
        """Re-read every stored blob: SHA-256 equals its name, the lock holds
        (S3: COMPLIANCE, date ≥ the index's); record and return the result."""
        result = ScrubResult(started_utc=ev.utc_text(self.now()))
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(ix.blobs.c.digest, ix.blobs.c.retain_until)
                                     .where(ix.blobs.c.deleted_utc.is_(None)).order_by(ix.blobs.c.digest)))
        known = set()
        for digest, until in rows:
            known.add(digest)
            status, problem = "ok", None
            try:
                stored = self.store.confirm(digest)
                result.bytes += stored.size
                if stored.retain_until is not None and ev.utc_text(stored.retain_until) < until[:19]:
                    problem = f"locked until {stored.retain_until}, index says {until}"
            except StoreError as exc:
                problem = str(exc)
            if problem:
                status = "bad"
                result.bad.append({"digest": digest, "problem": problem})
                log.error("scrub: %s: %s", digest, problem)
            result.objects += 1
            with self.engine.begin() as conn:
                conn.execute(update(ix.blobs).where(ix.blobs.c.digest == digest).values(
                    scrubbed_utc=ev.utc_text(self.now()), scrub_status=status))
            progress(stored.size if status == "ok" else 0)
        result.orphans = sum(1 for d in self.store.digests() if d not in known)
        result.finished_utc = ev.utc_text(self.now())
        with self.engine.begin() as conn:
            conn.execute(ix.scrubs.insert().values(
                started_utc=result.started_utc, finished_utc=result.finished_utc, objects=result.objects,
                bytes=result.bytes, bad=len(result.bad), report=json.dumps(result.bad)))
        (log.error if result.bad else log.info)("scrub: %d objects, %d bytes, %d bad, %d orphans",
                                                result.objects, result.bytes, len(result.bad), result.orphans)
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Recorders not docked within ``dock_within_hours`` of their duty end (Art. 11);
        recorders with unresolved custody findings (footage gone without a receipt,
        format §14) first seen within ``custody_alert_days``.

        Duty end is taken as the last docking (when the recorder went out
        again) plus ``duty_hours``; also blobs the last scrub found bad, and
        a scrub older than ``scrub_every_hours``.
        """
        now = self.now()
        late = dt.timedelta(hours=self.watch.duty_hours + self.watch.dock_within_hours)
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(select(ix.devices).order_by(ix.devices.c.device)):
                if r.last_docked_utc is None:
                    continue
                docked = dt.datetime.fromisoformat(r.last_docked_utc.replace("Z", "+00:00"))
                if now - docked > late:
                    due = docked + late
                    out.append({"kind": "not-docked", "agency": r.agency, "device": r.device,
                                "last_docked_utc": r.last_docked_utc, "due_utc": ev.utc_text(due),
                                "message": f"记录仪 {r.device} 超过执勤结束后 {self.watch.dock_within_hours:g} 小时未入坞"
                                           f"（上次入坞 {r.last_docked_utc}）"})
            bad = conn.execute(select(func.count()).select_from(ix.blobs).where(
                ix.blobs.c.scrub_status == "bad", ix.blobs.c.deleted_utc.is_(None))).scalar()
            if bad:
                out.append({"kind": "scrub-bad", "count": bad, "message": f"巡检发现 {bad} 个存储对象校验失败"})
            cf = ix.custody_findings
            since = ev.utc_text(now - dt.timedelta(days=self.watch.custody_alert_days))
            for agency, device, count in conn.execute(
                    select(cf.c.agency, cf.c.device, func.count()).where(cf.c.found_utc >= since,
                                                                         cf.c.resolved_utc.is_(None))
                    .group_by(cf.c.agency, cf.c.device).order_by(cf.c.agency, cf.c.device)):
                out.append({"kind": "custody", "agency": agency, "device": device, "count": count,
                            "since_utc": since,
                            "message": f"记录仪 {device} 有 {count} 个音像记录片段未经归档回执即从记录仪消失"
                                       f"（{self.watch.custody_alert_days:g} 天内发现，见违规使用时间线）"})
            last = conn.execute(select(func.max(ix.scrubs.c.finished_utc))).scalar()
            stored = conn.execute(select(func.count()).select_from(ix.blobs)).scalar()
            if stored and (last is None or ev.utc_text(now - dt.timedelta(hours=self.watch.scrub_every_hours)) > last):
                out.append({"kind": "scrub-overdue", "last_scrub_utc": last,
                            "message": f"存储巡检已超过 {self.watch.scrub_every_hours:g} 小时未运行"})
        return out

    def status(self) -> dict[str, Any]:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
            counts = {name: conn.execute(select(func.count()).select_from(t)).scalar() for name, t in (
                ("segments", ix.segments), ("blobs", ix.blobs), ("cases", ix.cases), ("documents", ix.documents),
                ("tombstones", ix.tombstones), ("devices", ix.devices))}
            counts["active_holds"] = conn.execute(select(func.count()).select_from(ix.holds).where(
                ix.holds.c.released_utc.is_(None))).scalar()
            counts["review_pending"] = conn.execute(select(func.count()).select_from(ix.segments).where(
                ix.segments.c.review_pending.is_(True), ix.segments.c.deleted_utc.is_(None))).scalar()
            stored_bytes = conn.execute(select(func.coalesce(func.sum(ix.blobs.c.bytes), 0)).where(
                ix.blobs.c.deleted_utc.is_(None))).scalar()
            last = conn.execute(select(ix.scrubs).order_by(ix.scrubs.c.id.desc()).limit(1)).first()
        store_error = None
        try:
            self.store.check()
        except StoreError as exc:
            store_error = str(exc)
        alerts = self.alerts()
        if store_error:
            alerts.insert(0, {"kind": "store-unreachable", "message": f"存储不可用：{store_error}"})
        return {
            "store": {**self.store.describe(), "bytes": int(stored_bytes or 0), "ok": store_error is None,
                      "error": store_error},
            "index": {"url": self.engine.url.render_as_string(hide_password=True), "revision": revision,
                      "head": ix.HEAD, **counts},
            "agencies": [{"id": a.id, "name": a.name, "archive": a.archive_id} for a in self.agencies.values()],
            "scrub": None if last is None else {"finished_utc": last.finished_utc, "objects": last.objects,
                                                "bytes": last.bytes, "bad": last.bad},
            "alerts": alerts,
        }

    def received_segments(self, agency: str, digests: list[str]) -> set[str]:
        """The subset of ``digests`` (sealed-segment digests, format §7.3) that this
        archive has committed for ``agency``, whether still stored or since expired
        under a tombstone (``POST /v1/segments/received``, format §13b)."""
        s, found = ix.segments, set()
        with self.engine.connect() as conn:
            for start in range(0, len(digests), 500):  # bounded IN lists
                found.update(conn.execute(select(s.c.segment_digest).where(
                    s.c.agency == agency, s.c.segment_digest.in_(digests[start:start + 500]))).scalars())
        return found

    # -- export ----------------------------------------------------------------------------------

    @audited("export", agency_from=device_agency)
    def export_recording(self, device: str, out: Path, agency: str | None = None, *, segments: bool = True) -> Path:
        """Lay a device's stored footage out as a recording folder for the verifier
        (``segments=False``: only its certificate and seal log, for reading the log)."""
        with self.engine.connect() as conn:
            dev = conn.execute(select(ix.devices).where(ix.devices.c.device == device)).first()
            if dev is None or (agency is not None and dev.agency != agency):
                raise UsageError(f"no footage from device {device!r} in the archive")
            logs = list(conn.execute(select(ix.seal_log_files).where(ix.seal_log_files.c.device == device)))
            segs = list(conn.execute(select(ix.segments).where(ix.segments.c.device == device,
                                                               ix.segments.c.deleted_utc.is_(None))))
        for sub in (ev.IDENTITY_DIR, ev.LOG_DIR, ev.SEGMENTS_DIR):
            (out / sub).mkdir(parents=True, exist_ok=False)
        self._copy(dev.certificate_blob, out / ev.IDENTITY_DIR / ev.DEVICE_CERT)
        latest: dict[str, tuple[int, str]] = {}
        for r in logs:
            if r.file not in latest or r.bytes > latest[r.file][0]:
                latest[r.file] = (r.bytes, r.blob)  # a log file only ever grows
        for name, (_, blob) in latest.items():
            self._copy(blob, out / ev.LOG_DIR / name)
        for r in segs if segments else ():
            self._copy(r.segment_blob, out / ev.SEGMENTS_DIR / f"{r.name}{ev.SEGMENT_SUFFIX}")
            self._copy(r.manifest_blob, out / ev.SEGMENTS_DIR / f"{r.name}{ev.MANIFEST_SUFFIX}")
        return out

    def log_head_attestation(self, device: str, agency: str | None = None) -> dict[str, str] | None:
        """The archive's latest signed log-head attestation of ``device`` (format
        §12.1: a signed message {payload, signature, certificate}), made when it
        recorded the device's seal-log head at a docking; None if it has none yet
        (a device indexed before revision 0004 that has not docked since).
        UsageError if the device is not in the archive (of ``agency``)."""
        with self.engine.connect() as conn:
            dev = conn.execute(select(ix.devices).where(ix.devices.c.device == device)).first()
        if dev is None or (agency is not None and dev.agency != agency):
            raise UsageError(f"no footage from device {device!r} in the archive")
        return json.loads(dev.head_attestation) if dev.head_attestation else None

    def _copy(self, digest: str, target: Path) -> None:
        with self.store.open(digest) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _class_rank(klass: str) -> int:
    return {"patrol": 0, "review": 1, "case": 2, "art13": 3}.get(klass, 0)


def _require(value: str | None, what: str) -> None:
    if not value or not str(value).strip():
        raise UsageError(f"{what} is required")


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _utc_bound(text: str, what: str) -> str:
    """Accept YYYY-MM-DD or ISO 8601 (UTC if no zone); return index time text."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--{what} {text!r}: give a date (2026-11-27) or an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return ev.utc_text(when)


def staging_dir(config: ArchiveConfig) -> Path:
    path = config.state / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def temp_recording(config: ArchiveConfig) -> Path:
    root = config.state / "commits"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="commit-", dir=root))
