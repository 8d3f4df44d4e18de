"""Chain of custody from the seal logs (docs/format.md §14): ``log_events``
keeps the oversight kinds of seal-log entries (assignment, record-start/stop,
notify, mark, segment-lost, unclean-stop, deletion, boot, shutdown) with the
officer the recorder was assigned to; ``custody_findings`` keeps each logged
segment that left a recorder without a valid archive receipt.  Both are
filled at each commit from then on; a device's earlier history is read at its
next docking (its whole stored log is on the chain).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_events",
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("utc", sa.String(32), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("officer", sa.Text),
        sa.Column("segment", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_log_events_agency_officer_time", "log_events", ["agency", "officer", "utc"])
    op.create_table(
        "custody_findings",
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("segment_seq", sa.Integer, primary_key=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("segment", sa.Text, nullable=False),
        sa.Column("segment_digest", sa.String(64)),
        sa.Column("officer", sa.Text),
        sa.Column("opened_utc", sa.String(32), nullable=False),
        sa.Column("how", sa.String(32), nullable=False),
        sa.Column("found_utc", sa.String(32), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("resolved_utc", sa.String(32)),
        sa.Column("resolved_by", sa.Text),
    )
    op.create_index("ix_custody_findings_agency_officer_time", "custody_findings",
                    ["agency", "officer", "opened_utc"])


def downgrade() -> None:
    op.drop_index("ix_custody_findings_agency_officer_time", "custody_findings")
    op.drop_table("custody_findings")
    op.drop_index("ix_log_events_agency_officer_time", "log_events")
    op.drop_table("log_events")
