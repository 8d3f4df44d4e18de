"""Write-once blob storage behind one interface: a local directory or S3 Object Lock.

Blobs are named by the SHA-256 of their bytes (hex).  ``put`` is idempotent:
the same bytes stored twice are one blob, and a blob's retention can only be
lengthened.  The only way a blob leaves a store is :meth:`BlobStore.delete`,
which the expiry job alone calls, for an expired, unheld blob, after writing
its signed tombstone.

- ``local``: ``ROOT/blobs/sha256/<2 hex>/<64 hex>``, mode 0444, written to a
  temporary name, fsync'd and hard-linked into place (never renamed over).
  Retention is enforced by the archive (index + expiry job); the directory
  itself cannot lock against root.
- ``s3``: ``<prefix><64 hex>`` in a bucket with Object Lock; every object
  version is written in COMPLIANCE mode with the retain-until date of its
  retention class, ``If-None-Match: *`` so that nothing is overwritten, and
  confirmed with HeadObject (mode, date, size, SHA-256) before any receipt.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Protocol

from bodycam.errors import BodycamError
from device.sealing.fsutil import fsync_dir

from .config import LocalStoreConfig, S3StoreConfig

log = logging.getLogger(__name__)
CHUNK = 1 << 20
HEX = frozenset("0123456789abcdef")


class StoreError(BodycamError, RuntimeError):
    """The store could not keep or confirm a blob; no receipt is given."""


@dataclass(frozen=True)
class StoredBlob:
    digest: str  # SHA-256 hex
    size: int  # bytes
    retain_until: dt.datetime | None  # the store's own lock date (None: enforced by the archive)
    version: str | None = None  # S3 version ID


def check_digest(digest: str) -> str:
    if len(digest) != 64 or not set(digest) <= HEX:
        raise StoreError(f"not a SHA-256 hex digest: {digest[:80]!r}")
    return digest


def sha256_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class BlobStore(Protocol):
    backend: str

    def put(self, digest: str, source: Path, retain_until: dt.datetime, *, link: bool = False) -> StoredBlob:
        """Store ``source`` (whose SHA-256 must be ``digest``), locked until at least
        ``retain_until``; re-verify what was stored.  StoreError if it cannot."""
        ...

    def confirm(self, digest: str, retain_until: dt.datetime | None = None) -> StoredBlob:
        """Re-read what the store holds (size, digest, lock); StoreError if absent or wrong."""
        ...

    def extend(self, digest: str, retain_until: dt.datetime) -> StoredBlob:
        """Lengthen the lock (never shorten)."""
        ...

    def open(self, digest: str) -> BinaryIO: ...

    def digests(self) -> Iterator[str]: ...

    def delete_expired(self, digest: str, now: dt.datetime) -> None:
        """Remove an expired blob: for the expiry job only."""
        ...

    def describe(self) -> dict[str, str]: ...

    def check(self) -> None:
        """StoreError if the store cannot be used now (unreachable, not write-once)."""
        ...


# -- local ------------------------------------------------------------------------------------


class LocalBlobStore:
    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        check_digest(digest)
        return self.blobs / digest[:2] / digest

    def put(self, digest: str, source: Path, retain_until: dt.datetime, *, link: bool = False) -> StoredBlob:
        target = self.path(digest)
        if target.exists():
            return self.confirm(digest)
        tmp = self.blobs / f".incoming-{os.getpid()}-{threading.get_ident()}"
        tmp.unlink(missing_ok=True)
        h = hashlib.sha256()
        linked = False
        if link:
            try:
                os.link(source, tmp)
                linked = True
            except OSError:  # another file system
                pass
        try:
            if linked:
                got, size = sha256_file(tmp)  # the very inode that is stored: a re-read of it
            else:
                with open(source, "rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(CHUNK):
                        h.update(chunk)
                        dst.write(chunk)
                    dst.flush()
                    os.fsync(dst.fileno())
                got = h.hexdigest()
            if got != digest:
                raise StoreError(f"{source}: SHA-256 is {got}, not the announced {digest}")
            target.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, target)  # fails rather than overwrite
            except FileExistsError:
                pass
            fsync_dir(target.parent)
        finally:
            tmp.unlink(missing_ok=True)
        if linked and os.stat(target).st_ino == os.stat(source).st_ino:
            return StoredBlob(digest, size, None)  # hashed above as stored; read-only, in place
        return self.confirm(digest)  # a copy: re-read what landed

    def confirm(self, digest: str, retain_until: dt.datetime | None = None) -> StoredBlob:
        path = self.path(digest)
        try:
            got, size = sha256_file(path)
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is not in the store") from None
        if got != digest:
            raise StoreError(f"blob {digest} reads back as {got}: the stored bytes changed")
        if path.stat().st_mode & 0o222:
            raise StoreError(f"blob {digest} is writable (mode {path.stat().st_mode & 0o777:o})")
        return StoredBlob(digest, size, None)

    def extend(self, digest: str, retain_until: dt.datetime) -> StoredBlob:
        if not self.path(digest).exists():
            raise StoreError(f"blob {digest} is not in the store")
        return StoredBlob(digest, self.path(digest).stat().st_size, None)

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is not in the store") from None

    def digests(self) -> Iterator[str]:
        for sub in sorted(self.blobs.iterdir()):
            if sub.is_dir() and len(sub.name) == 2:
                for p in sorted(sub.iterdir()):
                    if len(p.name) == 64 and set(p.name) <= HEX:
                        yield p.name

    def delete_expired(self, digest: str, now: dt.datetime) -> None:
        path = self.path(digest)
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)

    def describe(self) -> dict[str, str]:
        return {"backend": "local", "path": str(self.root)}

    def check(self) -> None:
        if not self.blobs.is_dir() or not os.access(self.blobs, os.W_OK | os.X_OK):
            raise StoreError(f"{self.blobs}: not a writable directory")


# -- S3 Object Lock -------------------------------------------------------------------------------


def _lock_date(when: dt.datetime) -> dt.datetime:
    """S3 keeps retain-until to the second; round up so the lock is never short."""
    when = when.astimezone(dt.timezone.utc)
    return when.replace(microsecond=0) + (dt.timedelta(seconds=1) if when.microsecond else dt.timedelta())


class S3BlobStore:
    """S3 with Object Lock in COMPLIANCE mode (SeaweedFS, MinIO, Ceph RGW, AWS), via boto3."""

    backend = "s3"
    MODE = "COMPLIANCE"

    def __init__(self, config: S3StoreConfig) -> None:
        import boto3
        from botocore.config import Config

        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.client = boto3.client(
            "s3", endpoint_url=config.endpoint_url, region_name=config.region,
            aws_access_key_id=config.access_key_id, aws_secret_access_key=config.secret_access_key,
            config=Config(retries={"max_attempts": 6, "mode": "standard"}, connect_timeout=10,
                          read_timeout=120, max_pool_connections=16,
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))
        self._checked = False
        self._bucket_lock = threading.Lock()
        self._written: dict[str, str] = {}  # digest -> version ID this process wrote

    # -- errors -------------------------------------------------------------------------

    def _call(self, what: str, fn, **kw):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kw)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            log.error("S3 %s on %s bucket %s: %s: %s", what, self.config.endpoint_url or "aws", self.bucket,
                      err.get("Code"), err.get("Message"))
            raise StoreError(f"S3 {what}: {err.get('Code')}: {err.get('Message')}") from None
        except BotoCoreError as exc:
            log.error("S3 %s on %s bucket %s: %s", what, self.config.endpoint_url or "aws", self.bucket, exc)
            raise StoreError(f"S3 {what}: {exc}") from None

    def _code(self, fn, **kw) -> tuple[dict | None, str | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kw), None
        except ClientError as exc:
            return None, str(exc.response.get("Error", {}).get("Code"))
        except BotoCoreError as exc:
            log.error("S3 %s bucket %s: %s", self.config.endpoint_url or "aws", self.bucket, exc)
            raise StoreError(f"S3 {self.config.endpoint_url}: {exc}") from None

    def check_bucket(self) -> None:
        """The bucket must have Object Lock enabled; create it if configured to."""
        if self._checked:
            return
        with self._bucket_lock:
            self._check_bucket()

    def _check_bucket(self) -> None:
        if self._checked:
            return
        got, code = self._code(self.client.get_object_lock_configuration, Bucket=self.bucket)
        if code in ("NoSuchBucket", "404") and self.config.create_bucket:
            _, made = self._code(self.client.create_bucket, Bucket=self.bucket, ObjectLockEnabledForBucket=True)
            if made not in (None, "BucketAlreadyOwnedByYou"):
                log.error("S3 create bucket %s on %s: %s", self.bucket, self.config.endpoint_url or "aws", made)
                raise StoreError(f"S3 create bucket {self.bucket}: {made}")
            got, code = self._code(self.client.get_object_lock_configuration, Bucket=self.bucket)
        if code is not None:
            log.error("S3 bucket %s on %s: Object Lock configuration unreadable (%s)", self.bucket,
                      self.config.endpoint_url or "aws", code)
            raise StoreError(f"S3 bucket {self.bucket}: Object Lock configuration unreadable ({code}); "
                             "the bucket must exist with Object Lock enabled")
        if got.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            log.error("S3 bucket %s on %s does not have Object Lock enabled: refusing to store evidence there",
                      self.bucket, self.config.endpoint_url or "aws")
            raise StoreError(f"S3 bucket {self.bucket} does not have Object Lock enabled")
        self._checked = True

    def key(self, digest: str) -> str:
        return self.prefix + check_digest(digest)

    # -- write ----------------------------------------------------------------------------

    def put(self, digest: str, source: Path, retain_until: dt.datetime, *, link: bool = False) -> StoredBlob:
        self.check_bucket()
        key = self.key(digest)
        until = _lock_date(retain_until)
        if digest not in self._written and not self.version_of(digest):
            size = Path(source).stat().st_size
            lock = {"ObjectLockMode": self.MODE, "ObjectLockRetainUntilDate": until}
            if size > self.config.multipart_threshold_mb << 20:
                self._multipart(key, source, size, lock)
            else:
                with open(source, "rb") as body:
                    put, code = self._code(self.client.put_object, Bucket=self.bucket, Key=key, Body=body,
                                           ContentLength=size, IfNoneMatch="*",
                                           ChecksumSHA256=base64.b64encode(bytes.fromhex(digest)).decode(),
                                           **lock)
                if code not in (None, "PreconditionFailed"):  # PreconditionFailed: stored before
                    log.error("S3 put of %s to bucket %s: %s", key, self.bucket, code)
                    raise StoreError(f"S3 put {key}: {code}")
                if put is not None and put.get("VersionId"):
                    if len(self._written) > 100_000:
                        self._written.clear()  # the index knows them by now
                    self._written[digest] = put["VersionId"]
        return self.confirm(digest, retain_until)

    def _multipart(self, key: str, source: Path, size: int, lock: dict) -> None:
        part = self.config.part_size_mb << 20
        up = self._call("create multipart upload", self.client.create_multipart_upload,
                        Bucket=self.bucket, Key=key, **lock)
        upload_id, parts = up["UploadId"], []
        try:
            with open(source, "rb") as f:
                n = 1
                while chunk := f.read(part):
                    r = self._call(f"upload part {n}", self.client.upload_part, Bucket=self.bucket, Key=key,
                                   UploadId=upload_id, PartNumber=n, Body=chunk,
                                   ContentMD5=base64.b64encode(hashlib.md5(chunk).digest()).decode())
                    parts.append({"PartNumber": n, "ETag": r["ETag"]})
                    n += 1
            done, code = self._code(self.client.complete_multipart_upload, Bucket=self.bucket, Key=key,
                                 UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*")
            if code not in (None, "PreconditionFailed"):
                log.error("S3 complete multipart upload of %s to bucket %s: %s", key, self.bucket, code)
                raise StoreError(f"S3 complete multipart {key}: {code}")
            if done is not None and done.get("VersionId"):
                self._written[key[len(self.prefix):]] = done["VersionId"]
        except BaseException:
            self._code(self.client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _original(self, digest: str) -> str | None:
        """The version the archive wrote.  Anything written on top later (a new
        version, a delete marker) never hides it: the index's version ID is
        used when known (``version_of``), else the oldest version under a
        COMPLIANCE lock."""
        known = self._written.get(digest) or self.version_of(digest)
        if known:
            return known
        got, code = self._code(self.client.list_object_versions, Bucket=self.bucket, Prefix=self.key(digest))
        if got is None:
            raise StoreError(f"S3 list versions of {digest}: {code}")
        versions = sorted((v for v in got.get("Versions", []) if v["Key"] == self.key(digest)),
                          key=lambda v: v["LastModified"])
        for v in versions:
            head, _ = self._code(self.client.head_object, Bucket=self.bucket, Key=self.key(digest),
                                 VersionId=v["VersionId"])
            if head is not None and head.get("ObjectLockMode") == self.MODE:
                return v["VersionId"]
        return versions[0]["VersionId"] if versions else None

    def version_of(self, digest: str) -> str | None:
        """Replaced by the archive with a look-up in its index."""
        return None

    def _head(self, digest: str) -> dict:
        version = self._original(digest)
        if version is None:
            raise StoreError(f"blob {digest} is not in the S3 store")
        head, code = self._code(self.client.head_object, Bucket=self.bucket, Key=self.key(digest),
                                VersionId=version, ChecksumMode="ENABLED")
        if head is None:
            raise StoreError(f"blob {digest} is not in the S3 store ({code})")
        head.setdefault("VersionId", version)
        return head

    def confirm(self, digest: str, retain_until: dt.datetime | None = None) -> StoredBlob:
        """HeadObject: COMPLIANCE mode, retain-until at least ``retain_until`` (lengthened
        if short), and the bytes' SHA-256 (the server's checksum, else read back)."""
        self.check_bucket()
        head = self._head(digest)
        version = head.get("VersionId")
        current = head.get("ObjectLockRetainUntilDate")
        if retain_until is not None and (head.get("ObjectLockMode") != self.MODE or current is None
                                         or current < retain_until):
            self.extend(digest, retain_until)
            head = self._head(digest)
            current = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockMode") != self.MODE:
            raise StoreError(f"blob {digest}: S3 lock mode is {head.get('ObjectLockMode')!r}, not {self.MODE}")
        if retain_until is not None and (current is None or current < retain_until.replace(microsecond=0)):
            raise StoreError(f"blob {digest}: S3 keeps it locked until {current}, short of {retain_until}")
        checksum = head.get("ChecksumSHA256")
        if checksum and "-" not in checksum:
            if base64.b64decode(checksum).hex() != digest:
                raise StoreError(f"blob {digest}: S3 checksum says {base64.b64decode(checksum).hex()}")
        else:
            got = hashlib.sha256()
            with self.open(digest, version) as body:
                while chunk := body.read(CHUNK):
                    got.update(chunk)
            if got.hexdigest() != digest:
                raise StoreError(f"blob {digest} reads back from S3 as {got.hexdigest()}")
        return StoredBlob(digest, int(head["ContentLength"]), current, version)

    def extend(self, digest: str, retain_until: dt.datetime) -> StoredBlob:
        head = self._head(digest)
        current = head.get("ObjectLockRetainUntilDate")
        until = _lock_date(retain_until)
        if current is not None and current >= until and head.get("ObjectLockMode") == self.MODE:
            return StoredBlob(digest, int(head["ContentLength"]), current, head.get("VersionId"))
        if current is not None and current > until:
            until = current  # never shorten
        self._call("put object retention", self.client.put_object_retention, Bucket=self.bucket,
                   Key=self.key(digest), VersionId=head.get("VersionId"),
                   Retention={"Mode": self.MODE, "RetainUntilDate": until})
        return StoredBlob(digest, int(head["ContentLength"]), until, head.get("VersionId"))

    def open(self, digest: str, version: str | None = None) -> BinaryIO:
        version = version or self._original(digest)
        if version is None:
            raise StoreError(f"blob {digest} is not in the S3 store")
        return self._call("get", self.client.get_object, Bucket=self.bucket, Key=self.key(digest),
                          VersionId=version)["Body"]

    def digests(self) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix):]
                if len(name) == 64 and set(name) <= HEX:
                    yield name

    def delete_expired(self, digest: str, now: dt.datetime) -> None:
        """Delete every version of an expired blob (S3 refuses while a lock holds)."""
        key = self.key(digest)
        versions = self._call("list versions", self.client.list_object_versions, Bucket=self.bucket, Prefix=key)
        for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
            if v["Key"] == key:
                self._call(f"delete {key}", self.client.delete_object, Bucket=self.bucket, Key=key,
                           VersionId=v["VersionId"])

    def check(self) -> None:
        self._checked = False
        self.check_bucket()

    def describe(self) -> dict[str, str]:
        return {"backend": "s3", "endpoint": self.config.endpoint_url or "aws", "bucket": self.bucket,
                "mode": self.MODE}


def open_store(config: LocalStoreConfig | S3StoreConfig) -> BlobStore:
    if isinstance(config, LocalStoreConfig):
        return LocalBlobStore(config.path)
    return S3BlobStore(config)
