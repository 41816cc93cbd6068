"""Content-addressed blob storage: CIDv1 (raw, sha2-256) names, every read verified.

Backends: `LocalBlobStore` (a folder, the default) and `cairn.store.s3.S3BlobStore`
(S3-compatible object storage; imported from its module so that boto3 loads only when used).
"""

from cairn.store.base import BlobSource, BlobStore
from cairn.store.local import LocalBlobStore

__all__ = ["BlobSource", "BlobStore", "LocalBlobStore"]
