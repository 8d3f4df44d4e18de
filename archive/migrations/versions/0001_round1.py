"""The round-1 index (archive/store.py of issue 5): segments, seal-log files, devices.

Revision ID: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("segment_digest", sa.String(64), primary_key=True),
        sa.Column("device", sa.String(16), nullable=False),
        sa.Column("segment_seq", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("media", sa.Text, nullable=False),
        sa.Column("officer", sa.Text),
        sa.Column("department", sa.Text),
        sa.Column("opened_utc", sa.String(32), nullable=False),
        sa.Column("closed_utc", sa.String(32)),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("marks", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("segment_blob", sa.String(64), nullable=False),
        sa.Column("manifest_blob", sa.String(64), nullable=False),
        sa.Column("imported_utc", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("retain_until", sa.String(32), nullable=False),
        sa.UniqueConstraint("device", "segment_seq"),
    )
    op.create_table(
        "seal_log_files",
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("file", sa.Text, primary_key=True),
        sa.Column("blob", sa.String(64), primary_key=True),
        sa.Column("bytes", sa.Integer, nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("certificate_blob", sa.String(64), nullable=False),
        sa.Column("head_seq", sa.Integer),
        sa.Column("head_digest", sa.String(64)),
    )
