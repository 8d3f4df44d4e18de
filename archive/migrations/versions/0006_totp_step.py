"""TOTP codes are single-use (RFC 6238 §5.2): ``accounts.totp_last_step`` keeps the
time step (Unix seconds // 30) of the last code an account used, at sign-in or on
an approval; a code of that step or an earlier one is refused.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("totp_last_step")
