"""The archive service: agencies apart (Art. 2), the fields of Art. 20, cases and
label history, retention classes and holds (Art. 12, 13), blobs with their lock
dates, tombstones, written records, scrubs.

Round-1 rows get the agency passed as ``default_agency``, retention class
``patrol`` and their blobs' lock dates from their segments.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    agency = context.config.attributes.get("default_agency", "")
    with op.batch_alter_table("segments") as batch:
        batch.alter_column("department", new_column_name="sub_unit", existing_type=sa.Text)
        batch.add_column(sa.Column("agency", sa.String(64), nullable=False, server_default=agency))
        batch.add_column(sa.Column("retention_class", sa.String(32), nullable=False, server_default="patrol"))
        batch.add_column(sa.Column("art13", sa.String(32)))
        batch.add_column(sa.Column("review_pending", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("deleted_utc", sa.String(32)))
    op.create_index("ix_segments_agency_officer_time", "segments", ["agency", "officer", "opened_utc"])
    op.create_index("ix_segments_agency_time", "segments", ["agency", "opened_utc"])
    op.create_index("ix_segments_agency_device_time", "segments", ["agency", "device", "opened_utc"])
    op.create_index("ix_segments_retain", "segments", ["retain_until"])
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("agency", sa.String(64), server_default=agency))
        batch.add_column(sa.Column("last_docked_utc", sa.String(32)))
        batch.add_column(sa.Column("last_source", sa.Text))

    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("bytes", sa.Integer),
        sa.Column("retain_until", sa.String(32), nullable=False),
        sa.Column("version", sa.Text),
        sa.Column("stored_utc", sa.String(32), nullable=False),
        sa.Column("scrubbed_utc", sa.String(32)),
        sa.Column("scrub_status", sa.String(16)),
        sa.Column("deleted_utc", sa.String(32)),
    )
    # Round-1 blobs: segments and manifests keep their segment's date; seal-log
    # files and certificates are kept as long as the longest segment.
    op.execute("""
        INSERT INTO blobs (digest, retain_until, stored_utc)
        SELECT d, MAX(r), MIN(s) FROM (
            SELECT segment_blob AS d, retain_until AS r, imported_utc AS s FROM segments
            UNION ALL SELECT manifest_blob, retain_until, imported_utc FROM segments
            UNION ALL SELECT f.blob, (SELECT MAX(retain_until) FROM segments), (SELECT MIN(imported_utc) FROM segments)
                FROM seal_log_files f
            UNION ALL SELECT certificate_blob, (SELECT MAX(retain_until) FROM segments),
                (SELECT MIN(imported_utc) FROM segments) FROM devices
        ) AS u WHERE r IS NOT NULL GROUP BY d""")
    op.execute("UPDATE blobs SET bytes = (SELECT MAX(bytes) FROM seal_log_files f WHERE f.blob = blobs.digest) "
               "WHERE digest IN (SELECT blob FROM seal_log_files)")

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("case_number", sa.Text, nullable=False),
        sa.Column("party", sa.Text),
        sa.Column("cause", sa.Text),
        sa.Column("act_type", sa.String(32)),
        sa.Column("sub_unit", sa.Text),
        sa.Column("retain_years", sa.Integer, nullable=False),
        sa.Column("created_utc", sa.String(32), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_index("ix_cases_agency_number", "cases", ["agency", "case_number"], unique=True)
    op.create_table(
        "case_segments",
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("segment_digest", sa.String(64), sa.ForeignKey("segments.segment_digest"), primary_key=True),
    )
    op.create_index("ix_case_segments_segment", "case_segments", ["segment_digest"])
    op.create_table(
        "label_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("segment_digest", sa.String(64)),
        sa.Column("case_id", sa.Integer),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("who", sa.Text, nullable=False),
        sa.Column("at_utc", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_label_events_segment", "label_events", ["segment_digest"])
    op.create_table(
        "holds",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer),
        sa.Column("segment_digest", sa.String(64)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("placed_by", sa.Text, nullable=False),
        sa.Column("placed_utc", sa.String(32), nullable=False),
        sa.Column("released_by", sa.Text),
        sa.Column("released_utc", sa.String(32)),
    )
    op.create_table(
        "tombstones",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("deleted_utc", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("blob", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("sealed_utc", sa.String(32), nullable=False),
        sa.Column("added_by", sa.Text, nullable=False),
        sa.Column("seal", sa.Text, nullable=False),
        sa.Column("deleted_utc", sa.String(32)),
    )
    op.create_table(
        "scrubs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("started_utc", sa.String(32), nullable=False),
        sa.Column("finished_utc", sa.String(32), nullable=False),
        sa.Column("objects", sa.Integer, nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("bad", sa.Integer, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
    )
