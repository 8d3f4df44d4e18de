"""Lawful use (Art. 17-19, 24, 25): accounts of people, access requests and
grants, the hash-chained audit log with its RFC 3161 time-stamps, and the
register of what went to which recipient.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.Text),
        sa.Column("totp_secret", sa.Text),
        sa.Column("disabled_utc", sa.String(32)),
        sa.Column("created_utc", sa.String(32), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_index("ix_accounts_username", "accounts", ["username"], unique=True)
    op.create_table(
        "tokens",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("created_utc", sa.String(32), nullable=False),
        sa.Column("expires_utc", sa.String(32), nullable=False),
        sa.Column("revoked_utc", sa.String(32)),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("grantee", sa.String(64), nullable=False),
        sa.Column("actions", sa.Text, nullable=False),
        sa.Column("case_number", sa.Text),
        sa.Column("segments", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("hours", sa.Integer, nullable=False),
        sa.Column("requested_utc", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64)),
        sa.Column("decided_utc", sa.String(32)),
        sa.Column("decision_note", sa.Text),
        sa.Column("valid_from_utc", sa.String(32)),
        sa.Column("valid_until_utc", sa.String(32)),
        sa.Column("revoked_by", sa.String(64)),
        sa.Column("revoked_utc", sa.String(32)),
        sa.Column("decision", sa.Text),
    )
    op.create_index("ix_grants_grantee", "grants", ["agency", "grantee", "status"])
    op.create_table(
        "audit_log",
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at_utc", sa.String(32), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("case_number", sa.Text),
        sa.Column("segments", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_index("ix_audit_actor", "audit_log", ["agency", "actor"])
    op.create_index("ix_audit_case", "audit_log", ["agency", "case_number"])
    op.create_table(
        "audit_stamps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("tsa", sa.Text, nullable=False),
        sa.Column("stamped_utc", sa.String(32), nullable=False),
        sa.Column("token", sa.Text, nullable=False),
    )
    op.create_table(
        "review_findings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("segment_digest", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("at_utc", sa.String(32), nullable=False),
        sa.Column("sample_grant", sa.Integer),
    )
    op.create_index("ix_review_findings_segment", "review_findings", ["agency", "segment_digest"])
    op.create_table(
        "seal_log_stamps",
        sa.Column("device", sa.String(16), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("tsa", sa.Text, nullable=False),
        sa.Column("stamped_utc", sa.String(32), nullable=False),
        sa.Column("token", sa.Text, nullable=False),
    )
    op.create_table(
        "disclosures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.Integer, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("case_number", sa.Text),
        sa.Column("segments", sa.Text, nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("retained_blob", sa.String(64), nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("exported_by", sa.Text, nullable=False),
        sa.Column("exported_utc", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in ("disclosures", "seal_log_stamps", "review_findings", "audit_stamps", "audit_log", "grants", "tokens", "accounts"):
        op.drop_table(table)
