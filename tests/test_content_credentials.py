"""C2PA Content Credentials on exported footage, as sidecar manifests (the
evidence bytes stay exactly what the recorder signed), accepted by
c2pa-python's reader; a changed byte of the footage makes that reader
report a hash mismatch."""

from __future__ import annotations

import json

import pyotp
import pytest

from archive.accounts import Accounts
from archive.content_credentials import ASSERTION, read_sidecar
from archive.grants import Grants
from archive.package import export_package
from archive.standalone_verifier import verify_package

from .lawful_rig import make_archive


@pytest.fixture(scope="module")
def package(agency, tmp_path_factory):
    root = tmp_path_factory.mktemp("c2pa")
    rig = make_archive(agency, root / "a", c2pa=True)
    acc = Accounts(rig.archive)
    keeper, _ = acc.add(None, "li.na", "李娜", "keeper", "correct horse battery", by="admin")
    head, _ = acc.add(None, "head", "王局长", "approver", "correct horse battery", by="admin")
    grants = Grants(rig.archive)
    g = grants.request(keeper, grantee="li.na", actions=["export"], reason="法院调取", hours=1, segments=rig.names)
    g = grants.decide(head, g.id, approve=True, totp=pyotp.TOTP(acc.totp_secret("head")).at(rig.clock.utc_now()))
    result = export_package(rig.archive, keeper, g.id, root / "pkg", recipient="顺城区人民法院", viewing_copies=False)
    yield rig, result.path
    rig.close()


def test_c2pa_reader_accepts_the_credentials_of_every_exported_file(package):
    rig, path = package
    manifest = json.loads((path / "manifest.json").read_text())
    assert verify_package(path).passed
    assert {s["media"] for s in manifest["segments"]} == {"video/mp4", "image/jpeg"}
    for seg in manifest["segments"]:
        media = (path / seg["media_file"]).read_bytes()
        anchors = (rig.root / "c2pa" / "ca.crt").read_bytes()
        state, active, results = read_sidecar(media, seg["media"], (path / seg["content_credentials"]).read_bytes(),
                                              trust_anchors_pem=anchors)
        assert state == "Trusted", (seg["name"], json.dumps(results)[:1000])
        assertions = {a["label"]: a.get("data") for a in active["assertions"]}
        ours = assertions[ASSERTION]
        assert ours["device"]["id"] == "A123456" and ours["capture_signing"]["segment_digest"] == seg["segment_digest"]
        assert ours["archive"]["id"] == "archive-1" and ours["dock"]["source"] == "test"
        assert ours["export"]["recipient"] == "顺城区人民法院" and ours["export"]["approver"] == "head"
        actions = next(v for k, v in assertions.items() if k.startswith("c2pa.actions"))["actions"]
        assert actions[0]["action"] == "c2pa.created" and actions[0]["when"] == seg["opened_utc"]
        assert not (results or {}).get("activeManifest", {}).get("failure")
        # against another trust anchor (the recorders' agency CA) the same credential is not trusted
        other, _, _ = read_sidecar(media, seg["media"], (path / seg["content_credentials"]).read_bytes(),
                                   trust_anchors_pem=(path / "trust" / "ca.crt").read_bytes())
        assert other != "Trusted"


def test_a_changed_byte_of_the_footage_fails_the_c2pa_reader(package):
    _, path = package
    manifest = json.loads((path / "manifest.json").read_text())
    for seg in manifest["segments"]:
        media = bytearray((path / seg["media_file"]).read_bytes())
        media[len(media) // 2] ^= 0x01
        state, _, results = read_sidecar(bytes(media), seg["media"], (path / seg["content_credentials"]).read_bytes())
        assert state != "Valid"
        failures = (results or {}).get("activeManifest", {}).get("failure", [])
        assert any("mismatch" in f["code"] for f in failures), results
