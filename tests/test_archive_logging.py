"""The archive service logs its sessions and outcomes with levels (issue 13):
commits received, receipts signed, refusals, expiry, scrub results; never
footage bytes or keys.  A real archive (local write-once store, SQLite index)
fed by a real recorder rig; time moves only on the ManualClock."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import shutil

import pytest

from bodycam.errors import SealingError
from device.sealing.clock import ManualClock

from .archive_rig import archive_config_toml
from .dockrig import make_rig

SOURCE = "dock:dock-1:bay1"


@pytest.fixture
def world(agency, tmp_path):
    from archive.config import load_archive_config
    from archive.service import Archive

    rig = make_rig(agency, tmp_path / "rig")
    keys = tmp_path / "rig" / "keys" / "arch"
    clock = ManualClock(dt.datetime.now(dt.timezone.utc))
    config = load_archive_config(archive_config_toml(tmp_path / "archive", agency.ca_cert_path,
                                                     keys / "archive-receipt.key", keys / "archive-receipt.crt"))
    archive = Archive(config, clock=clock)
    yield rig, archive, clock, keys
    rig.close()
    archive.close()


def records(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("archive") and r.levelno == level]


def secrets_of(rig, keys) -> list[str]:
    """Texts that must never reach a log: the key files' bodies and the footage's bytes."""
    out = []
    for key in [*keys.glob("*.key"), *rig.state.rglob("*.key")]:
        out += [line for line in key.read_text().splitlines() if line and not line.startswith("-----")]
    for segment in (rig.state / "segments").glob("*"):
        data = segment.read_bytes()[64:96]
        out += [data.hex(), base64.b64encode(data).decode()]
    assert out
    return out


def test_commits_receipts_and_refusals_are_logged_with_levels(world, caplog, tmp_path):
    rig, archive, _, keys = world
    names = rig.record(2)
    never = secrets_of(rig, keys)
    caplog.set_level(logging.DEBUG, logger="archive")
    receipts = archive.commit_recording(None, rig.state, [*names, "no-such-segment"], source=SOURCE)
    assert len(receipts) == 2
    info = records(caplog, logging.INFO)
    assert f"commit from {SOURCE} for test-agency: 3 segment(s) named" in info
    assert any(m.startswith(f"commit from {SOURCE}: device D000001, 2 of 3 segments receipted") for m in info), info
    signed = [m for m in records(caplog, logging.DEBUG) if m.startswith("receipt signed")]
    assert sorted(m.split()[5] for m in signed) == sorted(names), signed
    (missing,) = records(caplog, logging.WARNING)
    assert "no receipt for 1 segment(s)" in missing and missing.endswith("no-such-segment")

    # a recording whose seal log no longer verifies is refused, and the refusal is a warning
    caplog.clear()
    spoiled = tmp_path / "spoiled"
    shutil.copytree(rig.state, spoiled)
    for log_file in (spoiled / "seallog").iterdir():
        log_file.chmod(0o644)
        log_file.write_bytes(b"")
    with pytest.raises(SealingError):
        archive.commit_recording(None, spoiled, names, source=SOURCE)
    (refusal,) = records(caplog, logging.WARNING)
    assert refusal.startswith(f"refused commit from {SOURCE}: seal log does not verify")

    text = "\n".join(r.getMessage() for r in caplog.records)
    assert not [s for s in never if s in text]


def test_scrub_results_are_logged(world, caplog):
    rig, archive, _, _ = world
    names = rig.record(2)
    archive.commit_recording(None, rig.state, names, source=SOURCE)
    caplog.set_level(logging.DEBUG, logger="archive")
    # 2 segments + 2 manifests + the device certificate + the seal-log file
    assert archive.scrub().bad == []
    assert "scrub: 6 objects" in " ".join(records(caplog, logging.INFO))
    assert any(m.endswith("0 bad, 0 orphans") for m in records(caplog, logging.INFO))
    victim = archive.store.path(archive.search()[0]["segment_blob"])
    os.chmod(victim, 0o644)
    victim.write_bytes(b"rot")
    caplog.clear()
    assert len(archive.scrub().bad) == 1
    errors = records(caplog, logging.ERROR)
    assert any(m.startswith(f"scrub: {victim.name}:") for m in errors), errors
    assert any(m.startswith("scrub: 6 objects") and m.endswith("1 bad, 0 orphans") for m in errors), errors
    assert records(caplog, logging.INFO) == []


def test_expiry_outcomes_are_logged(world, caplog):
    rig, archive, clock, _ = world
    names = rig.record(2)
    archive.commit_recording(None, rig.state, names, source=SOURCE)
    archive.hold(None, reason="court order", who="keeper-1", segments=[names[1]])
    clock.advance(200 * 86400)  # past patrol retention (183 days)
    caplog.set_level(logging.DEBUG, logger="archive")
    archive.expire(who="job", dry_run=True)
    assert records(caplog, logging.INFO) == []  # a dry run changes nothing and says nothing
    archive.expire(who="job", dry_run=False)
    info = records(caplog, logging.INFO)
    assert any(m.startswith(f"expired segment {names[0]} of test-agency (patrol retention ended") for m in info), info
    assert any(m.startswith("expiry by job: 1 deleted with tombstones, 0 failed, 1 kept") for m in info), info
    assert any(m.startswith(f"expiry keeps segment {names[1]}") and "legal hold" in m
               for m in records(caplog, logging.DEBUG))
    assert records(caplog, logging.ERROR) == []


# -- S3 errors, against a real SeaweedFS ------------------------------------------------------


def s3(seaweed, bucket: str, secret: str):
    from archive.blobstore import open_store
    from archive.config import S3StoreConfig

    from .archive_rig import ACCESS_KEY

    return open_store(S3StoreConfig(backend="s3", endpoint_url=seaweed.endpoint, bucket=bucket,
                                    access_key_id=ACCESS_KEY, secret_access_key=secret))


def test_s3_errors_are_logged_without_the_secret(seaweed, caplog):
    from archive.blobstore import StoreError

    from .archive_rig import SECRET_KEY

    seaweed.client().create_bucket(Bucket="no-lock")  # a bucket without Object Lock
    caplog.set_level(logging.DEBUG, logger="archive")
    with pytest.raises(StoreError):
        s3(seaweed, "no-lock", SECRET_KEY).check_bucket()
    (error,) = records(caplog, logging.ERROR)
    # (SeaweedFS answers that no Object Lock configuration exists, AWS that it is not enabled)
    assert error == (f"S3 bucket no-lock on {seaweed.endpoint}: Object Lock configuration unreadable "
                     "(ObjectLockConfigurationNotFoundError)"), error

    caplog.clear()
    wrong = "wrong-" + SECRET_KEY
    with pytest.raises(StoreError):
        s3(seaweed, "no-lock", wrong).check_bucket()
    (error,) = records(caplog, logging.ERROR)
    assert error.startswith(f"S3 bucket no-lock on {seaweed.endpoint}: Object Lock configuration unreadable ("), error
    assert "ObjectLockConfigurationNotFoundError" not in error  # refused for the credentials this time
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert wrong not in text and SECRET_KEY not in text
