"""Fixtures for the blob store suite: one `store` fixture, one real backend per parameter.

The S3 backend talks HTTP to moto's server mode on 127.0.0.1, started once per session, with
fake credentials passed to the client explicitly so no AWS setting on the host is involved.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from cairn.store import BlobStore, LocalBlobStore
from cairn.store.s3 import S3BlobStore

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on a free local port (port 0: the OS picks one)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def make_s3_store(moto_endpoint: str) -> Callable[..., S3BlobStore]:
    """Builds a store on the moto server (a fresh bucket unless one is named), through the
    store's own client setup."""

    def make(bucket: str | None = None) -> S3BlobStore:
        return S3BlobStore(
            bucket or f"cairn-test-{uuid.uuid4().hex[:12]}",
            endpoint_url=moto_endpoint,
            region=REGION,
            access_key_id="testing",
            secret_access_key="testing",
            create_bucket=True,
        )

    return make


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each backend in turn, empty."""
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    make: Callable[..., S3BlobStore] = request.getfixturevalue("make_s3_store")
    return make()


@pytest.fixture
def stored_objects(store: BlobStore) -> Callable[[], list[str]]:
    """Lists every file or object the backend holds, temporary ones included, by raw name."""

    def listing() -> list[str]:
        if isinstance(store, LocalBlobStore):
            files = (path for path in store.root.rglob("*") if path.is_file())
            return sorted(str(path.relative_to(store.root)) for path in files)
        assert isinstance(store, S3BlobStore)
        pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    return listing


@pytest.fixture
def overwrite_stored(store: BlobStore) -> Callable[[str, bytes], None]:
    """Replaces the stored bytes under a CID behind the store's back, as corruption would."""

    def overwrite(cid: str, data: bytes) -> None:
        if isinstance(store, LocalBlobStore):
            store.path_of(cid).write_bytes(data)
            return
        assert isinstance(store, S3BlobStore)
        store.client.put_object(Bucket=store.bucket, Key=store.key_of(cid), Body=data)

    return overwrite
