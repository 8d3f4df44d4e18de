"""The people's HTTPS API and the CLI that uses it with a token: log in,
request, approve with TOTP, view, export a case; a role outside its scope
gets a clear 403 and the attempt is audited; no token, 401.  Then the
package goes onto an ISO 9660/UDF image that is read back (pycdlib, and
xorriso as a reader this project did not write) and verified."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from archive.accounts import Accounts
from archive.audit import audit_of
from archive.disc import verify_image, write_image
from archive.people_api import RunningPeopleAPI
from archive.people_client import PeopleAPIError, PeopleClient
from bodycam.cli import main as cli

from .lawful_rig import make_archive, next_totp

CASE = "顺市监罚〔2026〕21号"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def served(agency, tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    rig = make_archive(agency, root / "a")
    acc = Accounts(rig.archive)
    for username, name, role in (("zhang.wei", "张伟", "officer"), ("li.na", "李娜", "keeper"),
                                 ("head", "王局长", "approver"), ("auditor", "审计员", "auditor"),
                                 ("court", "顺城区人民法院", "recipient")):
        acc.add(None, username, name, role, PASSWORD, by="admin")
    rig.archive.label(None, rig.names[:2], case_number=CASE, party="某某商店", cause="销售过期食品",
                      act_type="inspection", who="li.na")
    api = RunningPeopleAPI(rig.archive, host="127.0.0.1", port=0).start()
    yield rig, api, acc, root
    api.stop()
    rig.close()


def _cli(served, *args, token=None):
    rig, api, _, _ = served
    env = {"BODYCAM_ARCHIVE_URL": api.url, "BODYCAM_ARCHIVE_CA": str(rig.agency.ca_cert_path),
           "BODYCAM_PASSWORD": PASSWORD}
    if token:
        env["BODYCAM_ARCHIVE_TOKEN"] = token
    return CliRunner().invoke(cli, ["archive", *args], env=env)


def _login(served, username, totp=None):
    args = ["login", "--username", username] + (["--totp", totp] if totp else [])
    out = _cli(served, *args)
    assert out.exit_code == 0, out.output
    return out.output.splitlines()[0].strip()


def test_the_cli_requests_approves_and_exports_a_case_through_the_service(served, tmp_path):
    rig, api, acc, _ = served
    keeper = _login(served, "li.na")
    out = _cli(served, "grant", "request", "--case", CASE, "--for", "li.na", "--action", "export",
               "--reason", "法院调取证据", "--hours", "24", token=keeper)
    assert out.exit_code == 0 and "requested" in out.output, out.output
    grant_id = int(out.output.split()[1].rstrip(":"))
    # no package before the agency head decides
    early = _cli(served, "export", "--case", CASE, "--out", str(tmp_path / "early"), token=keeper)
    assert early.exit_code != 0 and not (tmp_path / "early").exists()
    head = _login(served, "head", totp=next_totp(rig.clock, acc.totp_secret("head")))
    out = _cli(served, "grant", "approve", str(grant_id), "--totp",
               next_totp(rig.clock, acc.totp_secret("head")), "--note", "同意提供", token=head)
    assert out.exit_code == 0 and "approved" in out.output, out.output
    out = _cli(served, "export", "--case", CASE, "--recipient", "顺城区人民法院", "--out", str(tmp_path / "pkg"),
               token=keeper)
    assert out.exit_code == 0, out.output
    assert "package VERIFIED by its own verifier" in out.output
    manifest = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    assert manifest["case"] == CASE and len(manifest["segments"]) == 2
    assert manifest["grant"]["approver"] == "head"
    entries = [json.loads(e["payload"]) for e in audit_of(rig.archive).entries(None)]
    assert any(e["action"] == "export" and e["actor"] == "li.na" and e["outcome"] == "ok" for e in entries)


@pytest.mark.parametrize("who, method, path, body", [
    ("auditor", "GET", "/v1/view/{seg}", None),
    ("court", "GET", "/v1/segments", None),
    ("zhang.wei", "GET", "/v1/audit", None),
    ("zhang.wei", "POST", "/v1/grants/1/decision", {"approve": True, "totp": "123456"}),
    ("zhang.wei", "GET", "/v1/view/{seg}", None),
])
def test_a_role_outside_its_scope_gets_a_clear_403_and_is_audited(served, who, method, path, body):
    rig, api, acc, _ = served
    token = _login(served, who)
    client = PeopleClient(api.url, rig.agency.ca_cert_path, token)
    before = len(audit_of(rig.archive).entries(None))
    with pytest.raises(PeopleAPIError) as err:
        client.call(method, path.format(seg=rig.names[2]), body)
    assert err.value.status == 403 and "may not" in str(err.value), err.value
    new = [json.loads(e["payload"]) for e in audit_of(rig.archive).entries(None)][before:]
    assert any(e["outcome"] == "denied" and e["actor"] == who for e in new), new


def test_without_a_token_nothing_is_served(served):
    rig, api, _, _ = served
    for token in (None, "not-a-token"):
        with pytest.raises(PeopleAPIError) as err:
            PeopleClient(api.url, rig.agency.ca_cert_path, token).call("GET", "/v1/segments")
        assert err.value.status == 401


def test_the_package_on_an_iso_udf_image_reads_back_and_verifies(served, tmp_path):
    from archive.grants import Grants
    from archive.package import export_package

    rig, api, acc, root = served
    grants = Grants(rig.archive)
    g = grants.request(acc.get("li.na"), grantee="li.na", actions=["export"], reason="长期保存（第十三条）", hours=2,
                       segments=rig.names)
    g = grants.decide(acc.get("head"), g.id, approve=True,
                      totp=next_totp(rig.clock, acc.totp_secret("head")))
    package = export_package(rig.archive, acc.get("li.na"), g.id, tmp_path / "pkg", viewing_copies=False).path
    image = tmp_path / "evidence.iso"
    written = write_image(package, image, label="CASE_21")
    assert written.files == len([p for p in package.rglob("*") if p.is_file()])
    assert verify_image(image).passed
    # a reader this project did not write: xorriso (osirrox) extracts it, the verifier passes on that copy
    if shutil.which("xorriso") is None:
        from .archive_rig import unavailable
        unavailable("xorriso not installed (Debian package xorriso)")
    out = tmp_path / "extracted"
    done = subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for p in out.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    check = subprocess.run(["python3", str(out / "verify_package.py"), str(out)], capture_output=True, text=True)
    assert check.returncode == 0 and "VERIFIED" in check.stdout, check.stdout + check.stderr
    # a damaged image fails on read-back: flip a byte inside the first media file's data
    data = bytearray(image.read_bytes())
    media = next((package / "media").glob("*.mp4")).read_bytes()
    at = data.find(media[4000:4064])
    assert at > 0
    data[at] ^= 0x01
    image.write_bytes(bytes(data))
    result = verify_image(image)
    assert not result.passed and any("media/" in f for f in result.failures), result.failures


def test_the_cli_views_a_watermarked_copy_under_a_grant_and_nothing_without(served, tmp_path):
    rig, api, acc, _ = served
    officer = _login(served, "zhang.wei")
    none = _cli(served, "view", rig.names[2], "--out", str(tmp_path / "no.jpg"), token=officer)
    assert none.exit_code == 3 and "403" in none.output and not (tmp_path / "no.jpg").exists()
    out = _cli(served, "grant", "request", rig.names[2], "--action", "view", "--reason", "复核现场照片", "--hours", "1",
               token=officer)
    assert out.exit_code == 0, out.output
    grant_id = int(out.output.split()[1].rstrip(":"))
    head = _login(served, "head", totp=next_totp(rig.clock, acc.totp_secret("head")))
    out = _cli(served, "grant", "approve", str(grant_id), "--totp",
               next_totp(rig.clock, acc.totp_secret("head")), token=head)
    assert out.exit_code == 0, out.output
    out = _cli(served, "view", rig.names[2], "--out", str(tmp_path / "view.jpg"), token=officer)
    assert out.exit_code == 0, out.output
    from PIL import Image

    from .lawful_rig import jpeg_still
    import io

    import numpy as np
    with Image.open(tmp_path / "view.jpg") as img, Image.open(io.BytesIO(jpeg_still())) as orig:
        assert img.size == (160, 120)
        diff = np.abs(np.asarray(img.convert("RGB"), int) - np.asarray(orig.convert("RGB"), int))
    assert diff[18:33, 60:].mean() > 20 and diff[40:80, 40:120].mean() < 5  # the mark is there, the picture intact


def test_a_reviewer_samples_and_records_a_finding_through_the_cli(served):
    rig, api, acc, _ = served
    try:
        acc.get("review")
    except ValueError:
        acc.add(None, "review", "司法局审查员", "reviewer", PASSWORD, by="admin")
    reviewer = _login(served, "review")
    out = _cli(served, "review", "sample", "--size", "1", "--officer", "010203", token=reviewer)
    assert out.exit_code == 0 and "requested" in out.output, out.output
    grant_id = int(out.output.split()[2].rstrip(":"))
    digest = out.output.splitlines()[1].strip()
    refused = _cli(served, "review", "finding", digest, "--result", "conforms", "--note", "x", "--grant", str(grant_id),
                   token=reviewer)
    assert refused.exit_code == 3 and "403" in refused.output  # not approved yet
    head = _login(served, "head", totp=next_totp(rig.clock, acc.totp_secret("head")))
    assert _cli(served, "grant", "approve", str(grant_id), "--totp",
                next_totp(rig.clock, acc.totp_secret("head")), token=head).exit_code == 0
    out = _cli(served, "review", "finding", digest, "--result", "conforms", "--note", "告知、全程录像齐全",
               "--grant", str(grant_id), token=reviewer)
    assert out.exit_code == 0 and "conforms" in out.output, out.output
