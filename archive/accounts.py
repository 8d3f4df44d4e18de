"""People and roles (Art. 19, 24): accounts of one agency, passwords hashed
with Argon2id (argon2-cffi), TOTP (pyotp, RFC 6238) for approvers, and
bearer tokens for the CLI and the people's API.

Roles and what each may do (checked by :func:`require_role`):

============  ==========================================================
``officer``   search; request access (for themself)
``keeper``    archive keeper: search, label, hold; request access for anyone; export under a grant
``approver``  agency head: approve, refuse, revoke requests (never their own); search
``reviewer``  justice bureau (Art. 24): search; request access to view for review
``auditor``   read and export the audit log; no footage
``recipient`` court / review body: download packages granted to it; nothing else
============  ==========================================================

Viewing and export need, besides the role, a live grant (archive/grants.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bodycam.errors import BodycamError, UsageError

from . import evidence as ev
from . import lawful_index as lx
from .audit import Actor, audit_of

log = logging.getLogger(__name__)
ROLES = ("officer", "keeper", "approver", "reviewer", "auditor", "recipient")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
# What each role may do, besides what a grant allows.
MAY = {
    "search": {"officer", "keeper", "approver", "reviewer"},
    "request": {"officer", "keeper", "reviewer"},
    "request-for-others": {"keeper"},
    "decide": {"approver"},
    "view": {"officer", "keeper", "approver", "reviewer", "recipient"},
    "export": {"keeper", "recipient"},
    "audit": {"auditor", "approver"},
    "review": {"reviewer"},
}
_hasher = PasswordHasher()  # argon2-cffi's defaults: Argon2id, RFC 9106 low-memory profile
_dummy_hash: str | None = None  # verified for unknown users, so they cost what a real account costs
SIGN_IN_FAILED = "unknown user, wrong password or wrong code"  # one message: no hint which part was wrong
TOTP_WINDOW = 1  # steps either side of now accepted (RFC 6238 §5.2: clock drift and typing time)


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hash


class AccessDenied(BodycamError, PermissionError):
    """The person may not do this (HTTP 403); the attempt is audited."""


class LoginFailed(BodycamError, PermissionError):
    """Unknown user, wrong password, wrong or missing TOTP code, or a bad token (HTTP 401)."""


@dataclass(frozen=True)
class Account:
    id: int
    agency: str
    username: str
    name: str
    role: str
    has_totp: bool

    @property
    def actor(self) -> Actor:
        return Actor(self.username, self.role)


def _account(row: Any) -> Account:
    return Account(row.id, row.agency, row.username, row.name, row.role, bool(row.totp_secret))


class Accounts:
    def __init__(self, archive) -> None:
        self.archive = archive

    def add(self, agency: str | None, username: str, name: str, role: str, password: str, *, by: str,
            totp: bool | None = None) -> tuple[Account, str | None]:
        """Create an account; returns it and, for a TOTP account (approvers by
        default), the ``otpauth://`` provisioning URI to give its owner once."""
        a = self.archive.agency(agency)
        if not USERNAME_RE.match(username or ""):
            raise UsageError(f"username {username!r}: lower-case letters, digits, . _ -, 2-64 characters")
        if role not in ROLES:
            raise UsageError(f"role {role!r}: one of {', '.join(ROLES)}")
        if len(password or "") < MIN_PASSWORD:
            raise UsageError(f"password: at least {MIN_PASSWORD} characters")
        if not name or not name.strip():
            raise UsageError("name is required")
        use_totp = (role == "approver") if totp is None else totp
        secret = pyotp.random_base32() if use_totp else None
        try:
            with self.archive.engine.begin() as conn:
                conn.execute(lx.accounts.insert().values(
                    agency=a.id, username=username, name=name, role=role, password_hash=_hasher.hash(password),
                    totp_secret=secret, created_utc=ev.utc_text(self.archive.now()), created_by=by))
        except IntegrityError:
            raise UsageError(f"username {username!r} is taken") from None
        audit_of(self.archive).record(a.id, "account", actor=Actor(by, "host"),
                                      detail={"added": username, "role": role, "totp": use_totp})
        account = self.get(username)
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=a.name) if secret else None
        return account, uri

    def get(self, username: str) -> Account:
        with self.archive.engine.connect() as conn:
            row = conn.execute(select(lx.accounts).where(lx.accounts.c.username == username,
                                                         lx.accounts.c.disabled_utc.is_(None))).first()
        if row is None:
            raise UsageError(f"no account {username!r}")
        return _account(row)

    def totp_secret(self, username: str) -> str | None:
        with self.archive.engine.connect() as conn:
            return conn.execute(select(lx.accounts.c.totp_secret).where(
                lx.accounts.c.username == username)).scalar()

    def check_totp(self, account: Account, code: str | None, *, action: str = "login",
                   case: str | None = None, detail: dict[str, Any] | None = None) -> None:
        """Raise LoginFailed unless ``code`` is the account's TOTP code (RFC 6238,
        30 s steps, :data:`TOTP_WINDOW` steps either side of now) and no code of
        its step or a later one was used before by this account: a code works
        once (RFC 6238 §5.2), at sign-in or on an approval alike.  The step
        used is kept in ``accounts.totp_last_step`` (set atomically, so two
        requests racing with one code cannot both pass).

        Every refusal is audited as ``action`` (``login``, ``approve``,
        ``refuse``) with outcome ``refused``, ``case`` and ``detail`` plus ``why``.
        """
        why = None
        secret = self.totp_secret(account.username)
        step = None
        if secret is None:
            why = "no second factor set up"
        elif not code or not re.fullmatch(r"[0-9]{6}", str(code)):
            why = "missing TOTP code" if not code else "malformed TOTP code"
        else:
            totp = pyotp.TOTP(secret)
            here = totp.timecode(self.archive.now())
            for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
                if secrets.compare_digest(totp.generate_otp(here + offset), str(code)):
                    step = here + offset
            if step is None:
                why = "wrong TOTP code"
            else:
                a = lx.accounts.c
                with self.archive.engine.begin() as conn:
                    n = conn.execute(update(lx.accounts).where(
                        a.id == account.id, a.totp_last_step.is_(None) | (a.totp_last_step < step))
                        .values(totp_last_step=step)).rowcount
                if n != 1:
                    why = "TOTP code already used"
        if why is None:
            return
        audit_of(self.archive).record(account.agency, action, outcome="refused", actor=account.actor, case=case,
                                      detail={**(detail or {}), "why": why})
        raise LoginFailed(f"{account.username}: {why}" if action != "login" else SIGN_IN_FAILED)

    def login(self, username: str, password: str, totp: str | None = None) -> tuple[Account, str]:
        """Check the password (and TOTP when the account has one); issue a token.

        Returns (account, token).  The token is random (32 bytes, URL-safe)
        and stored only as its SHA-256; it lasts ``token_hours``.
        """
        with self.archive.engine.connect() as conn:
            row = conn.execute(select(lx.accounts).where(lx.accounts.c.username == username,
                                                         lx.accounts.c.disabled_utc.is_(None))).first()
        try:
            if row is None or row.password_hash is None:
                _hasher.verify(_dummy(), password)  # the same Argon2 work as a real account: no timing hint
                raise VerifyMismatchError
            _hasher.verify(row.password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            self.refused_login(username, "password" if row is not None else "unknown user")
            raise LoginFailed(SIGN_IN_FAILED) from None
        account = _account(row)
        if row.totp_secret:
            self.check_totp(account, totp)  # audits its refusal; LoginFailed(SIGN_IN_FAILED)
        token = secrets.token_urlsafe(32)
        now = self.archive.now()
        hours = self.archive.config.lawful_use.token_hours
        with self.archive.engine.begin() as conn:
            conn.execute(lx.tokens.insert().values(
                token_sha256=hashlib.sha256(token.encode()).hexdigest(), account_id=row.id,
                created_utc=ev.utc_text(now), expires_utc=ev.utc_text(now + dt.timedelta(hours=hours))))
        audit_of(self.archive).record(row.agency, "login", actor=account.actor)
        return account, token

    def refused_login(self, username: str, why: str) -> None:
        """Audit a refused sign-in of ``username`` (``why``: password, unknown user,
        rate limit …) in its account's agency, or, for a name no account has, in
        the archive's only agency (an archive of several agencies only logs it)."""
        with self.archive.engine.connect() as conn:
            row = conn.execute(select(lx.accounts.c.agency, lx.accounts.c.role)
                               .where(lx.accounts.c.username == username)).first()
        if row is not None:
            agency, role = row.agency, row.role
        elif len(self.archive.agencies) == 1:
            agency, role = next(iter(self.archive.agencies)), "unknown"
        else:
            log.warning("refused sign-in of unknown user %r (%s)", username[:64], why)
            return
        audit_of(self.archive).record(agency, "login", outcome="refused", actor=Actor(username[:64], role),
                                      detail={"why": why})

    def revoke_token(self, token: str) -> None:
        """End a token now (sign-out): :meth:`by_token` refuses it from then on."""
        with self.archive.engine.begin() as conn:
            conn.execute(update(lx.tokens).where(
                lx.tokens.c.token_sha256 == hashlib.sha256(token.encode()).hexdigest(),
                lx.tokens.c.revoked_utc.is_(None)).values(revoked_utc=ev.utc_text(self.archive.now())))

    def by_token(self, token: str) -> Account:
        """The account of a live token; LoginFailed otherwise."""
        if not token:
            raise LoginFailed("a bearer token is required (bodycam archive login)")
        now = ev.utc_text(self.archive.now())
        t, a = lx.tokens, lx.accounts
        with self.archive.engine.connect() as conn:
            row = conn.execute(select(a).join(t, t.c.account_id == a.c.id).where(
                t.c.token_sha256 == hashlib.sha256(token.encode()).hexdigest(), t.c.revoked_utc.is_(None),
                t.c.expires_utc > now, a.c.disabled_utc.is_(None))).first()
        if row is None:
            raise LoginFailed("token unknown, expired or revoked: log in again")
        return _account(row)

    def disable(self, username: str, *, by: str) -> None:
        account = self.get(username)
        with self.archive.engine.begin() as conn:
            conn.execute(update(lx.accounts).where(lx.accounts.c.id == account.id)
                         .values(disabled_utc=ev.utc_text(self.archive.now())))
        audit_of(self.archive).record(account.agency, "account", actor=Actor(by, "host"),
                                      detail={"disabled": username})


def require_role(archive, account: Account, what: str, *, case: str | None = None,
                 segments: list[str] | None = None) -> None:
    """Raise AccessDenied (and audit the attempt) unless ``account``'s role may ``what``."""
    if account.role in MAY[what]:
        return
    audit_of(archive).record(account.agency, "denied", outcome="denied", actor=account.actor, case=case,
                             segments=segments or [], detail={"wanted": what,
                                                              "why": f"role {account.role} may not {what}"})
    raise AccessDenied(f"{account.username} ({account.role}) may not {what}")
