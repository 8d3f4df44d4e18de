"""Tables of lawful use (migration 0003): accounts, tokens, grants, the audit
log and its time-stamps, and the register of disclosures (Art. 18)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text

from .index import metadata

accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("username", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("role", String(32), nullable=False),
    Column("password_hash", Text),  # Argon2id (argon2-cffi's encoded form)
    Column("totp_secret", Text),  # base32, approvers
    Column("totp_last_step", BigInteger),  # the time step of the last TOTP code used (single use, RFC 6238 §5.2)
    Column("disabled_utc", String(32)),
    Column("created_utc", String(32), nullable=False),
    Column("created_by", Text, nullable=False),
    extend_existing=True,
)

tokens = Table(
    "tokens", metadata,
    Column("token_sha256", String(64), primary_key=True),  # the token itself is never stored
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("created_utc", String(32), nullable=False),
    Column("expires_utc", String(32), nullable=False),
    Column("revoked_utc", String(32)),
    extend_existing=True,
)

grants = Table(
    "grants", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("requester", String(64), nullable=False),
    Column("grantee", String(64), nullable=False),
    Column("actions", Text, nullable=False),  # JSON list: view, export
    Column("case_number", Text),
    Column("segments", Text, nullable=False),  # JSON list of segment digests in scope
    Column("reason", Text, nullable=False),
    Column("hours", Integer, nullable=False),
    Column("requested_utc", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # requested | approved | refused | revoked
    Column("decided_by", String(64)),
    Column("decided_utc", String(32)),
    Column("decision_note", Text),
    Column("valid_from_utc", String(32)),
    Column("valid_until_utc", String(32)),
    Column("revoked_by", String(64)),
    Column("revoked_utc", String(32)),
    Column("decision", Text),  # the signed decision (format §12 envelope)
    extend_existing=True,
)

audit_log = Table(
    "audit_log", metadata,
    Column("agency", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at_utc", String(32), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("case_number", Text),
    Column("segments", Text, nullable=False),
    Column("payload", Text, nullable=False),  # the canonical JSON signed
    Column("digest", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    extend_existing=True,
)

audit_stamps = Table(
    "audit_stamps", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("tsa", Text, nullable=False),
    Column("stamped_utc", String(32), nullable=False),
    Column("token", Text, nullable=False),  # base64 DER TimeStampResp
    extend_existing=True,
)

review_findings = Table(
    "review_findings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("segment_digest", String(64), nullable=False),
    Column("reviewer", String(64), nullable=False),
    Column("result", String(16), nullable=False),  # conforms | problem
    Column("note", Text, nullable=False),
    Column("at_utc", String(32), nullable=False),
    Column("sample_grant", Integer),
    extend_existing=True,
)

seal_log_stamps = Table(
    "seal_log_stamps", metadata,
    Column("device", String(16), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),  # the seal-log entry digest (format §2.2) = the stamped hash
    Column("tsa", Text, nullable=False),
    Column("stamped_utc", String(32), nullable=False),
    Column("token", Text, nullable=False),  # base64 DER TimeStampResp
    extend_existing=True,
)

disclosures = Table(
    "disclosures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("grant_id", Integer, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("case_number", Text),
    Column("segments", Text, nullable=False),
    Column("package_sha256", String(64), nullable=False),
    Column("retained_blob", String(64), nullable=False),  # the copy kept in the write-once store
    Column("bytes", Integer, nullable=False),
    Column("exported_by", Text, nullable=False),
    Column("exported_utc", String(32), nullable=False),
    extend_existing=True,
)

Index("ix_accounts_username", accounts.c.username, unique=True)
Index("ix_grants_grantee", grants.c.agency, grants.c.grantee, grants.c.status)
Index("ix_audit_actor", audit_log.c.agency, audit_log.c.actor)
Index("ix_audit_case", audit_log.c.agency, audit_log.c.case_number)
Index("ix_review_findings_segment", review_findings.c.agency, review_findings.c.segment_digest)
