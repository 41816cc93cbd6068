"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph, R2...) through boto3.

One object per blob, keyed `<prefix><cid>`. An S3 PUT is atomic (an object is visible whole
or not at all) and content addressing makes overwrites harmless, so no locking is needed.
Streams are spooled to a temporary file by `BlobStore.put_stream` (the key depends on the
hash) and then sent with `upload_fileobj`, which switches to a multipart upload for large files.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from cairn.core.cid import CID
from cairn.core.errors import NotFound
from cairn.store.base import BlobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_MISSING_BUCKET_CODES = {"404", "NoSuchBucket", "NotFound"}
_PART_SIZE = 8 << 20  # multipart above 8 MiB, in 8 MiB parts (S3's minimum part is 5 MiB)


class S3BlobStore(BlobStore):
    """Blobs as objects in one bucket, under `prefix`."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = "blobs/",
        client: S3Client | None = None,
        create_bucket: bool = False,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        """Use `client` if given, else build one; with no keys boto3's usual chain applies."""
        self.bucket = bucket
        self.prefix = prefix
        if client is None:
            # custom endpoints (MinIO, a local server) rarely serve virtual-host bucket names
            config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )
        self.client: S3Client = client
        self._transfer = TransferConfig(
            multipart_threshold=_PART_SIZE, multipart_chunksize=_PART_SIZE
        )
        if create_bucket:
            self._ensure_bucket(region)

    def __repr__(self) -> str:
        return f"S3BlobStore({self.bucket!r}, prefix={self.prefix!r})"

    def key_of(self, cid: str | CID) -> str:
        """The object key of the blob named by `cid` (whether or not it is stored)."""
        return self._key(str(CID.parse(str(cid))))

    def _key(self, cid: str) -> str:
        return self.prefix + cid

    def _ensure_bucket(self, region: str | None) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if _error_code(error) not in _MISSING_BUCKET_CODES:
                raise
        options: dict[str, Any] = {}
        if region and region != "us-east-1":  # us-east-1 refuses an explicit constraint
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **options)
        except ClientError as error:
            # another node created it between our check and our create
            if _error_code(error) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    def _not_found(self, cid: str) -> NotFound:
        return NotFound(f"blob {cid} not found in s3://{self.bucket}/{self.prefix}")

    def _exists(self, cid: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(cid))
        except ClientError as error:
            if _error_code(error) in _MISSING_CODES:
                return False
            raise
        return True

    def _write_bytes(self, cid: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(cid), Body=data)

    def _write_file(self, cid: str, path: Path) -> None:
        with path.open("rb") as spool:
            self.client.upload_fileobj(spool, self.bucket, self._key(cid), Config=self._transfer)

    def _read_chunks(self, cid: str) -> Generator[bytes, None, None]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(cid))
        except ClientError as error:
            if _error_code(error) in _MISSING_CODES:
                raise self._not_found(cid) from None
            raise
        return _body_chunks(response["Body"], self.chunk_size)

    def _size(self, cid: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(cid))
        except ClientError as error:
            if _error_code(error) in _MISSING_CODES:
                raise self._not_found(cid) from None
            raise
        return int(head["ContentLength"])

    def _remove(self, cid: str) -> None:
        # S3 deletes of a missing key succeed silently; the interface promises NotFound
        if not self._exists(cid):
            raise self._not_found(cid)
        self.client.delete_object(Bucket=self.bucket, Key=self._key(cid))

    def _list(self) -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]


def _body_chunks(body: Any, chunk_size: int) -> Generator[bytes, None, None]:
    try:
        yield from body.iter_chunks(chunk_size)
    finally:
        body.close()


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
