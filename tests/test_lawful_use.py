"""People, roles and approval before viewing or export (Art. 19): accounts
with Argon2id passwords and TOTP; a request approved by the agency head,
signed by the archive naming the approver; viewing only under a live grant,
decrypted inside the archive, watermarked with the viewer and time; refused,
expired and revoked grants get no bytes; a role outside its scope is refused
and the attempt audited.  Expiry by the ManualClock, never a sleep."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest

from archive.accounts import AccessDenied, Accounts, LoginFailed
from archive.audit import audit_of
from archive.grants import CTX_GRANT_DECISION, Grants
from archive.access import Access
from archive.standalone_verifier import open_envelope
from archive import lawful_index as lx
from device.sealing import pki
from sqlalchemy import select

from .lawful_rig import make_archive, next_totp

PASSWORD = "correct horse battery"


@pytest.fixture
def rig(agency, tmp_path):
    r = make_archive(agency, tmp_path / "a")
    yield r
    r.close()


@pytest.fixture
def people(rig):
    acc = Accounts(rig.archive)
    made = {}
    for username, name, role in (("zhang.wei", "张伟", "officer"), ("li.na", "李娜", "keeper"),
                                 ("head", "王局长", "approver"), ("head2", "赵副局长", "approver"),
                                 ("auditor", "审计员", "auditor"), ("court", "顺城区人民法院", "recipient"),
                                 ("review", "司法局审查员", "reviewer")):
        account, uri = acc.add(None, username, name, role, PASSWORD, by="admin")
        made[username] = account
        if role == "approver":
            assert uri.startswith("otpauth://totp/")
    return acc, made


def _code(rig, acc, username):
    return next_totp(rig.clock, acc.totp_secret(username))


def test_passwords_are_argon2id_and_approvers_need_their_totp(rig, people):
    acc, made = people
    with rig.archive.engine.connect() as conn:
        hashes = [h for (h,) in conn.execute(select(lx.accounts.c.password_hash))]
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    account, token = acc.login("zhang.wei", PASSWORD)
    assert acc.by_token(token) == account
    with pytest.raises(LoginFailed):
        acc.login("zhang.wei", "wrong password!")
    with pytest.raises(LoginFailed):
        acc.login("head", PASSWORD)  # an approver without the code
    with pytest.raises(LoginFailed):
        acc.login("head", PASSWORD, totp="000000" if _code(rig, acc, "head") != "000000" else "111111")
    acc.login("head", PASSWORD, totp=_code(rig, acc, "head"))
    rig.clock.advance(acc.archive.config.lawful_use.token_hours * 3600 + 1)
    with pytest.raises(LoginFailed):
        acc.by_token(token)  # tokens expire
    outcomes = [(json.loads(e["payload"])["action"], json.loads(e["payload"])["outcome"])
                for e in audit_of(rig.archive).entries(None)]
    assert outcomes.count(("login", "refused")) == 3 and outcomes.count(("login", "ok")) == 2


def _approved(rig, people, grantee="zhang.wei", requester="zhang.wei", actions=("view",), hours=2, **scope):
    acc, made = people
    grants = Grants(rig.archive)
    scope = scope or {"segments": [rig.names[0]]}
    g = grants.request(made[requester], grantee=grantee, actions=actions, reason="行政复议调阅", hours=hours, **scope)
    assert g.status == "requested"
    return grants, grants.decide(made["head"], g.id, approve=True, totp=_code(rig, acc, "head"), note="同意")


def test_an_approved_grant_is_signed_naming_the_approver_and_the_view_is_watermarked(rig, people, tmp_path):
    acc, made = people
    grants, g = _approved(rig, people)
    payload, signer = open_envelope(g.decision, pki.load_cert(rig.agency.ca_cert_path), CTX_GRANT_DECISION,
                                    "archive-receipt")
    assert signer == "archive-1" and payload["approver"] == "head" and payload["approver_name"] == "王局长"
    assert payload["decision"] == "approved" and payload["grantee"] == "zhang.wei"
    data, media, name = Access(rig.archive).view(made["zhang.wei"], rig.names[0], workdir=tmp_path)
    assert media == "video/mp4" and name.endswith("-viewing.mp4")
    # a playable, different picture: the watermark is burned into the frames
    with av.open(io.BytesIO(data)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 20
    from .lawful_rig import fmp4_fragments
    with av.open(io.BytesIO(b"".join(fmp4_fragments()))) as c:
        original = next(c.decode(video=0)).to_ndarray(format="rgb24")
    top_right = np.abs(frames[0][18:33, 80:].astype(int) - original[18:33, 80:].astype(int)).mean()
    middle = np.abs(frames[0][50:70, 40:120].astype(int) - original[50:70, 40:120].astype(int)).mean()
    assert top_right > 4 * max(middle, 1.0), (top_right, middle)
    # the sealed original in the store is untouched
    report = rig.archive.scrub()
    assert not report.bad
    views = [json.loads(e["payload"]) for e in audit_of(rig.archive).entries(None)
             if json.loads(e["payload"])["action"] == "view"]
    assert len(views) == 1 and views[0]["actor"] == "zhang.wei" and views[0]["detail"]["grant"] == g.id


def test_refused_expired_and_revoked_grants_get_no_bytes(rig, people, tmp_path):
    acc, made = people
    access = Access(rig.archive)
    grants = Grants(rig.archive)
    # refused
    g = grants.request(made["zhang.wei"], grantee="zhang.wei", actions=["view"], reason="复核", hours=1,
                       segments=[rig.names[0]])
    g = grants.decide(made["head"], g.id, approve=False, totp=_code(rig, acc, "head"), note="理由不足")
    assert g.status == "refused"
    with pytest.raises(AccessDenied, match="refused"):
        access.view(made["zhang.wei"], rig.names[0], workdir=tmp_path)
    # expired: live before the hour, dead after it
    _, g2 = _approved(rig, people, hours=1)
    assert access.view(made["zhang.wei"], rig.names[0], workdir=tmp_path)[0]
    rig.clock.advance(3600)
    with pytest.raises(AccessDenied, match="expired"):
        access.view(made["zhang.wei"], rig.names[0], workdir=tmp_path)
    # revoked
    _, g3 = _approved(rig, people, hours=5)
    assert access.view(made["zhang.wei"], rig.names[0], workdir=tmp_path)[0]
    grants.revoke(made["head2"], g3.id, reason="案件已结")
    with pytest.raises(AccessDenied):
        access.view(made["zhang.wei"], rig.names[0], workdir=tmp_path)
    # scope: a grant for one segment does not open another
    with pytest.raises(AccessDenied, match="no grant|does not cover"):
        access.view(made["zhang.wei"], rig.names[1], workdir=tmp_path)
    entries = [json.loads(e["payload"]) for e in audit_of(rig.archive).entries(None)]
    denied = [e for e in entries if e["outcome"] == "denied"]
    assert len([e for e in denied if e["action"] == "denied"]) == 4
    assert [e["action"] for e in entries if e["action"] in ("approve", "refuse", "revoke")] == \
        ["refuse", "approve", "approve", "revoke"]
    assert len([e for e in entries if e["action"] == "view"]) == 2


@pytest.mark.parametrize("who, what", [("auditor", "view"), ("court", "search"), ("zhang.wei", "decide"),
                                       ("review", "export")])
def test_a_role_outside_its_scope_is_refused_and_audited(rig, people, tmp_path, who, what):
    acc, made = people
    grants = Grants(rig.archive)
    account = made[who]
    with pytest.raises(AccessDenied):
        if what == "view":
            Access(rig.archive).view(account, rig.names[0], workdir=tmp_path)
        elif what == "search":
            from archive.accounts import require_role
            require_role(rig.archive, account, "search")
        elif what == "decide":
            g = grants.request(made["li.na"], grantee="li.na", actions=["view"], reason="x", hours=1,
                               segments=[rig.names[0]])
            grants.decide(account, g.id, approve=True, totp=None)
        else:
            grants.require(account, "export", [rig.archive.search()[0]["segment_digest"]])
    last = json.loads(audit_of(rig.archive).entries(None)[-1]["payload"])
    assert last["action"] == "denied" and last["outcome"] == "denied" and last["actor"] == who


def test_an_approver_cannot_approve_their_own_request_and_needs_the_code(rig, people):
    acc, made = people
    grants = Grants(rig.archive)
    g = grants.request(made["li.na"], grantee="court", actions=["export"], reason="法院调取", hours=24,
                       segments=[rig.names[0]])
    with pytest.raises(LoginFailed):
        grants.decide(made["head"], g.id, approve=True, totp=None)
    assert grants.get(g.id).status == "requested"
    with pytest.raises(AccessDenied):
        own = grants.request(made["li.na"], grantee="li.na", actions=["view"], reason="x", hours=1,
                             segments=[rig.names[0]])
        grants.decide(made["li.na"], own.id, approve=True, totp=None)
    with pytest.raises(ValueError, match="hours"):
        grants.request(made["li.na"], grantee="li.na", actions=["view"], reason="x", hours=10_000,
                       segments=[rig.names[0]])
    with pytest.raises(AccessDenied):  # an officer may not ask on someone else's behalf
        grants.request(made["zhang.wei"], grantee="court", actions=["export"], reason="x", hours=1,
                       segments=[rig.names[0]])


def test_a_reviewer_samples_at_random_views_under_approval_and_records_findings(rig, people, tmp_path):
    """Art. 24: the sample is drawn among matching recordings, becomes a view
    request the agency head approves; findings only on segments seen under it."""
    from archive.review import findings, record_finding, sample

    acc, made = people
    reviewer = made["review"]
    g = sample(rig.archive, reviewer, 2, media="video/mp4")
    assert g.status == "requested" and len(g.segments) == 2 and g.grantee == "review"
    videos = {r["segment_digest"] for r in rig.archive.search(media="video/mp4")}
    assert set(g.segments) <= videos  # the still is not in this population
    with pytest.raises(AccessDenied):  # not before the agency head approves
        record_finding(rig.archive, reviewer, g.segments[0], "conforms", "告知、标记齐全", sample_grant=g.id)
    Grants(rig.archive).decide(made["head"], g.id, approve=True, totp=_code(rig, acc, "head"))
    data, _, _ = Access(rig.archive).view(reviewer, g.segments[0], grant_id=g.id, workdir=tmp_path)
    assert data
    found = record_finding(rig.archive, reviewer, g.segments[0], "problem", "未见告知录音", sample_grant=g.id)
    assert found["result"] == "problem" and findings(rig.archive, None)[0]["reviewer"] == "review"
    with pytest.raises(AccessDenied):  # other roles do not sample
        sample(rig.archive, made["li.na"], 1)
    actions = [json.loads(e["payload"])["action"] for e in audit_of(rig.archive).entries(None)]
    assert "sample" in actions and "finding" in actions
