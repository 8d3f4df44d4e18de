"""The archive's signed log-head attestation (docs/format.md §12.1) per device:
``devices.head_attestation`` holds the signed message (JSON text) the archive
made when it recorded the head in ``head_seq``/``head_digest``.  Rows from
before this revision have none until the device docks again.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("head_attestation", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("head_attestation")
