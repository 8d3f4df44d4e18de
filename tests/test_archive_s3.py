"""The S3 Object Lock store against a real SeaweedFS (``weed mini`` on loopback).

Proves: a locked object can't be deleted or overwritten before its date, even
with the S3 admin's credentials; retention extends but never shortens; the
archive keeps working after the S3 server restarts.  Under CI=true a server
that cannot start fails these tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest
from botocore.exceptions import ClientError

from archive.blobstore import StoreError
from device.sealing.clock import ManualClock
from dock.archive_client import ArchiveUnavailable

from .archive_rig import ACCESS_KEY, SECRET_KEY, start_service
from .dockrig import make_rig

BUCKET = "evidence"


def s3_store(seaweed, bucket=BUCKET) -> str:
    return (f'backend = "s3"\nendpoint_url = "{seaweed.endpoint}"\nbucket = "{bucket}"\n'
            f'access_key_id = "{ACCESS_KEY}"\nsecret_access_key = "{SECRET_KEY}"\ncreate_bucket = true\n'
            f'multipart_threshold_mb = 5\npart_size_mb = 5\n')


def payloads(receipts):
    return [json.loads(base64.b64decode(r["payload"])) for r in receipts]


def test_locked_objects_cannot_be_deleted_or_overwritten_even_by_the_admin(agency, tmp_path, seaweed):
    svc = start_service(agency, tmp_path / "svc", store=s3_store(seaweed, "lock-test"))
    rig = make_rig(agency, tmp_path / "r")
    try:
        names = rig.record(2, size=20_000)
        receipts = payloads(svc.client().commit(rig.state, names, source="dock:dock-1:bay1"))
        admin = seaweed.client()
        now = dt.datetime.now(dt.timezone.utc)
        for p in receipts:
            key = "blobs/sha256/" + p["files"]["segment_sha256"]
            head = admin.head_object(Bucket="lock-test", Key=key)
            assert head["ObjectLockMode"] == "COMPLIANCE"
            assert head["ObjectLockRetainUntilDate"] >= now + dt.timedelta(days=182)  # patrol: six months
            receipted = dt.datetime.fromisoformat(p["retain_until"].replace("Z", "+00:00"))
            assert receipted <= head["ObjectLockRetainUntilDate"] <= receipted + dt.timedelta(seconds=1)
            version = head["VersionId"]
            original = admin.get_object(Bucket="lock-test", Key=key, VersionId=version)["Body"].read()
            for attempt in (dict(VersionId=version), dict(VersionId=version, BypassGovernanceRetention=True)):
                with pytest.raises(ClientError) as err:
                    admin.delete_object(Bucket="lock-test", Key=key, **attempt)
                assert err.value.response["Error"]["Code"] == "AccessDenied"
            with pytest.raises(ClientError):
                admin.put_object(Bucket="lock-test", Key=key, Body=b"forged", IfNoneMatch="*")
            # A plain PUT or DELETE only stacks a version / delete marker on top; the
            # locked version keeps its bytes, and the archive reads that version.
            admin.put_object(Bucket="lock-test", Key=key, Body=b"forged")
            admin.delete_object(Bucket="lock-test", Key=key)
            assert admin.get_object(Bucket="lock-test", Key=key, VersionId=version)["Body"].read() == original
            assert svc.archive.store.confirm(p["files"]["segment_sha256"]).version == version
            with pytest.raises(ClientError):
                admin.delete_bucket(Bucket="lock-test")
        scrub = svc.archive.scrub()
        assert scrub.bad == [] and scrub.objects >= 4
        export = svc.archive.export_recording("D000001", tmp_path / "export")
        from device.sealing import pki
        from device.sealing.verifier import Verifier
        assert Verifier(pki.load_cert(agency.ca_cert_path)).verify_recording(export)[0].status == "verified"
    finally:
        rig.close()
        svc.close()


def test_retention_extends_but_never_shortens(agency, tmp_path, seaweed):
    svc = start_service(agency, tmp_path / "svc", store=s3_store(seaweed, "retention-test"))
    rig = make_rig(agency, tmp_path / "r")
    try:
        names = rig.record(1)
        (p,) = payloads(svc.client().commit(rig.state, names, source="dock:dock-1:bay1"))
        admin = seaweed.client()
        key = "blobs/sha256/" + p["files"]["segment_sha256"]
        before = admin.head_object(Bucket="retention-test", Key=key)["ObjectLockRetainUntilDate"]
        svc.archive.label(None, names, case_number="案-1", party="张三", who="keeper-1", retain_years=10)
        after = admin.head_object(Bucket="retention-test", Key=key)
        assert after["ObjectLockRetainUntilDate"] > before + dt.timedelta(days=3000)
        assert after["ObjectLockMode"] == "COMPLIANCE"
        # The archive's own extend never shortens …
        svc.archive.store.extend(p["files"]["segment_sha256"], before)
        assert admin.head_object(Bucket="retention-test", Key=key)["ObjectLockRetainUntilDate"] == \
            after["ObjectLockRetainUntilDate"]
        # … and S3 refuses a shorter date or a weaker mode, even to the admin.
        for retention in ({"Mode": "COMPLIANCE", "RetainUntilDate": before},
                          {"Mode": "GOVERNANCE", "RetainUntilDate": after["ObjectLockRetainUntilDate"]}):
            with pytest.raises(ClientError) as err:
                admin.put_object_retention(Bucket="retention-test", Key=key, VersionId=after["VersionId"],
                                           Retention=retention)
            assert err.value.response["Error"]["Code"] == "AccessDenied"
        assert admin.head_object(Bucket="retention-test", Key=key)["ObjectLockRetainUntilDate"] == \
            after["ObjectLockRetainUntilDate"]
    finally:
        rig.close()
        svc.close()


def test_expiry_cannot_delete_before_the_lock_date_even_if_the_archive_clock_is_wrong(agency, tmp_path, seaweed):
    clock = ManualClock(dt.datetime.now(dt.timezone.utc))
    svc = start_service(agency, tmp_path / "svc", store=s3_store(seaweed, "expiry-test"), clock=clock)
    rig = make_rig(agency, tmp_path / "r")
    try:
        names = rig.record(1)
        svc.client().commit(rig.state, names, source="dock:dock-1:bay1")
        clock.advance(200 * 86400)  # the archive believes the patrol period is over; S3 knows better
        result = svc.archive.expire(who="test", dry_run=False)
        assert [i["name"] for i in result["expired"]] == names
        assert result["deleted"] == [] and "AccessDenied" in result["failed"][0]["error"]
        assert svc.archive.tombstones(None) == []  # no tombstone for what was not deleted
        assert len(svc.archive.search()) == 1 and svc.archive.scrub().bad == []
    finally:
        rig.close()
        svc.close()


def test_large_objects_go_up_in_parts(agency, tmp_path, seaweed):
    svc = start_service(agency, tmp_path / "svc", store=s3_store(seaweed, "multipart-test"))
    try:
        blob = tmp_path / "big.bin"
        blob.write_bytes(bytes(range(256)) * (12 * 4096 + 7))  # 12 MiB + 1.75 KiB: 3 parts of 5 MiB
        from archive.blobstore import sha256_file
        digest, size = sha256_file(blob)
        until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=200)
        stored = svc.archive.store.put(digest, blob, until)
        assert stored.size == size and stored.retain_until >= until.replace(microsecond=0)
        head = seaweed.client().head_object(Bucket="multipart-test", Key="blobs/sha256/" + digest)
        assert head["ObjectLockMode"] == "COMPLIANCE" and "-" in head["ETag"]  # a multipart ETag
    finally:
        svc.close()


def test_the_archive_keeps_working_after_the_s3_server_restarts(agency, tmp_path, seaweed):
    svc = start_service(agency, tmp_path / "svc", store=s3_store(seaweed, "restart-test"))
    rig = make_rig(agency, tmp_path / "r")
    try:
        first = rig.record(1)
        assert len(svc.client().commit(rig.state, first, source="dock:dock-1:bay1")) == 1
        seaweed.stop()
        second = rig.record(1)
        with pytest.raises(ArchiveUnavailable, match="store unavailable"):
            svc.client().commit(rig.state, first + second, source="dock:dock-1:bay1")
        with pytest.raises(StoreError):
            svc.archive.store.confirm(payloads_digest(svc, first[0]))
        seaweed.start()
        # Existing objects may take a moment to be readable again; the dock retries a
        # failed commit (the recorder keeps its footage meanwhile), so do the same here.
        deadline = time.monotonic() + 60
        while True:
            try:
                receipts = payloads(svc.client().commit(rig.state, first + second, source="dock:dock-1:bay1"))
                break
            except ArchiveUnavailable:
                assert time.monotonic() < deadline, "archive did not recover after the S3 restart"
                time.sleep(1)
        assert [p["segment"] for p in receipts] == first + second
        assert svc.archive.scrub().bad == []
    finally:
        rig.close()
        svc.close()


def payloads_digest(svc, name: str) -> str:
    return svc.archive.segments(name=name)[0]["segment_blob"]
