"""The archive index: SQLAlchemy 2 Core tables over SQLite or PostgreSQL.

The schema is created and changed only by the Alembic migrations in
``archive/migrations`` (:func:`open_index` upgrades to head); the tables
below describe the head revision for queries.  A round-1 ``index.sqlite``
(segments, seal_log_files, devices, no ``alembic_version``) is recognised,
stamped as revision ``0001`` and migrated in place.

Times are ISO 8601 UTC text with microseconds (``utc_text``), which sorts
like the times themselves on both engines.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import (Boolean, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text, UniqueConstraint,
                        create_engine, event, inspect)
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)
metadata = MetaData()
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "0006"

segments = Table(
    "segments", metadata,
    Column("segment_digest", String(64), primary_key=True),
    Column("agency", String(64), nullable=False),
    Column("sub_unit", Text),  # 股室
    Column("device", String(16), nullable=False),
    Column("segment_seq", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("media", Text, nullable=False),
    Column("officer", Text),
    Column("opened_utc", String(32), nullable=False),
    Column("closed_utc", String(32)),
    Column("status", Text, nullable=False),
    Column("marks", Text, nullable=False),  # JSON list of mark kinds
    Column("events", Text, nullable=False),  # JSON list of manifest events
    Column("segment_blob", String(64), nullable=False),
    Column("manifest_blob", String(64), nullable=False),
    Column("imported_utc", String(32), nullable=False),
    Column("source", Text, nullable=False),
    Column("retain_until", String(32), nullable=False),
    Column("retention_class", String(32), nullable=False),
    Column("art13", String(32)),  # one of ART13 once a keeper classifies it
    Column("review_pending", Boolean, nullable=False),
    Column("deleted_utc", String(32)),  # set by expiry, with a tombstone
    UniqueConstraint("device", "segment_seq"),
)

seal_log_files = Table(
    "seal_log_files", metadata,
    Column("device", String(16), primary_key=True),
    Column("file", Text, primary_key=True),
    Column("blob", String(64), primary_key=True),
    Column("bytes", Integer, nullable=False),
)

devices = Table(
    "devices", metadata,
    Column("device", String(16), primary_key=True),
    Column("certificate_blob", String(64), nullable=False),
    Column("head_seq", Integer),
    Column("head_digest", String(64)),
    Column("agency", String(64)),
    Column("head_attestation", Text),  # signed log-head attestation (format §12.1) of head_seq/head_digest
    Column("last_docked_utc", String(32)),
    Column("last_source", Text),
)

blobs = Table(
    "blobs", metadata,
    Column("digest", String(64), primary_key=True),
    Column("bytes", Integer),
    Column("retain_until", String(32), nullable=False),
    Column("version", Text),
    Column("stored_utc", String(32), nullable=False),
    Column("scrubbed_utc", String(32)),
    Column("scrub_status", String(16)),
    Column("deleted_utc", String(32)),
)

cases = Table(
    "cases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("case_number", Text, nullable=False),
    Column("party", Text),  # 当事人
    Column("cause", Text),  # 案由
    Column("act_type", String(32)),  # Art. 14 kind of enforcement act
    Column("sub_unit", Text),
    Column("retain_years", Integer, nullable=False),
    Column("created_utc", String(32), nullable=False),
    Column("created_by", Text, nullable=False),
)

case_segments = Table(
    "case_segments", metadata,
    Column("case_id", Integer, ForeignKey("cases.id"), primary_key=True),
    Column("segment_digest", String(64), ForeignKey("segments.segment_digest"), primary_key=True),
)

label_events = Table(
    "label_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("segment_digest", String(64)),
    Column("case_id", Integer),
    Column("action", String(32), nullable=False),
    Column("who", Text, nullable=False),
    Column("at_utc", String(32), nullable=False),
    Column("detail", Text, nullable=False),  # JSON: before / after
)

holds = Table(
    "holds", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("case_id", Integer),
    Column("segment_digest", String(64)),
    Column("reason", Text, nullable=False),
    Column("placed_by", Text, nullable=False),
    Column("placed_utc", String(32), nullable=False),
    Column("released_by", Text),
    Column("released_utc", String(32)),
)

tombstones = Table(
    "tombstones", metadata,
    Column("digest", String(64), primary_key=True),
    Column("agency", String(64)),
    Column("kind", String(16), nullable=False),
    Column("deleted_utc", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("record", Text, nullable=False),  # the signed tombstone (JSON envelope)
)

documents = Table(
    "documents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("blob", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("filename", Text, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("sealed_utc", String(32), nullable=False),
    Column("added_by", Text, nullable=False),
    Column("seal", Text, nullable=False),  # the signed document seal
    Column("deleted_utc", String(32)),
)

scrubs = Table(
    "scrubs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_utc", String(32), nullable=False),
    Column("finished_utc", String(32), nullable=False),
    Column("objects", Integer, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("bad", Integer, nullable=False),
    Column("report", Text, nullable=False),  # JSON list of problems
)

# Chain of custody read from each device's seal log at every commit (format §14):
log_events = Table(  # seal-log entries of the kinds archive/evidence.py OVERSIGHT_EVENTS names
    "log_events", metadata,
    Column("device", String(16), primary_key=True),
    Column("seq", Integer, primary_key=True),  # the entry's seq on the device's chain
    Column("agency", String(64), nullable=False),
    Column("utc", String(32), nullable=False),  # the entry's signed time
    Column("event", String(32), nullable=False),
    Column("officer", Text),  # the officer the recorder was assigned to then (latest assignment entry)
    Column("segment", Text),
    Column("detail", Text, nullable=False),  # JSON: the entry's data
)

custody_findings = Table(  # logged segments gone from the recorder without a valid archive receipt
    "custody_findings", metadata,
    Column("device", String(16), primary_key=True),
    Column("segment_seq", Integer, primary_key=True),
    Column("agency", String(64), nullable=False),
    Column("segment", Text, nullable=False),
    Column("segment_digest", String(64)),  # the sealed digest, if it was sealed
    Column("officer", Text),
    Column("opened_utc", String(32), nullable=False),
    Column("how", String(32), nullable=False),  # GoneSegment.how
    Column("found_utc", String(32), nullable=False),  # the commit that first saw it gone
    Column("source", Text, nullable=False),  # that commit's source (dock:…, import:…)
    Column("resolved_utc", String(32)),  # a later commit whose folder held the segment again
    Column("resolved_by", Text),  # that commit's source
)

Index("ix_segments_agency_officer_time", segments.c.agency, segments.c.officer, segments.c.opened_utc)
Index("ix_segments_agency_time", segments.c.agency, segments.c.opened_utc)
Index("ix_segments_agency_device_time", segments.c.agency, segments.c.device, segments.c.opened_utc)
Index("ix_segments_retain", segments.c.retain_until)
Index("ix_cases_agency_number", cases.c.agency, cases.c.case_number, unique=True)
Index("ix_case_segments_segment", case_segments.c.segment_digest)
Index("ix_label_events_segment", label_events.c.segment_digest)
Index("ix_log_events_agency_officer_time", log_events.c.agency, log_events.c.officer, log_events.c.utc)
Index("ix_custody_findings_agency_officer_time", custody_findings.c.agency, custody_findings.c.officer,
      custody_findings.c.opened_utc)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi, _record):  # a committed row survives a power cut
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def upgrade(engine: Engine, default_agency: str) -> str:
    """Run the migrations to head; a round-1 index is stamped 0001 first.

    ``default_agency`` becomes the agency of round-1 rows (they had none).
    Returns the revision reached.
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["default_agency"] = default_agency
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        names = set(inspect(conn).get_table_names())
        if "segments" in names and "alembic_version" not in names:
            log.warning("round-1 archive index found: migrating it in place")
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision() or ""


def open_index(url: str, default_agency: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine, default_agency)
    return engine
