"""One behaviour suite for every blob store backend (local folder, S3 through moto's server)."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cairn.core.cid import CID, canonical_json, cid_of
from cairn.core.errors import IntegrityError, InvalidInput, NotFound
from cairn.store import BlobStore, LocalBlobStore
from cairn.store.s3 import S3BlobStore

StoredObjects = Callable[[], list[str]]
OverwriteStored = Callable[[str, bytes], None]

MIB = 1 << 20
VALID = cid_of(b"a blob that is never stored")
MALFORMED: list[Any] = [
    "",
    "../../etc/passwd",
    "bafkrei",  # truncated
    VALID.upper(),  # multibase 'B'
    VALID[:10] + VALID[10].upper() + VALID[11:],
    VALID + "=",
    VALID[:-1] + "!",
    "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR",  # CIDv0
    "z" + VALID[1:],
    VALID + "a",
    123,
    None,
]


def _chunks_of_file(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 20 MiB file of seeded random bytes, and its CID computed chunk by chunk."""
    path = tmp_path_factory.mktemp("big") / "twenty.bin"
    rng = random.Random(20)
    sha = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(20):
            chunk = rng.randbytes(MIB)
            sha.update(chunk)
            out.write(chunk)
    return path, str(CID.from_digest(sha.digest()))


@pytest.mark.parametrize("size", [0, 1, 1000, MIB + 7])
def test_put_then_get_returns_the_same_bytes(store: BlobStore, size: int) -> None:
    data = random.Random(size).randbytes(size)
    cid = store.put(data)
    assert cid == cid_of(data)
    assert store.get(cid) == data
    assert store.get(CID.parse(cid)) == data
    assert b"".join(store.open(cid)) == data
    assert store.has(cid)
    assert store.size(cid) == size
    assert list(store.iter_cids()) == [cid]


def test_same_content_gets_the_same_cid_and_is_stored_once(
    store: BlobStore, stored_objects: StoredObjects
) -> None:
    data = b"one stone on the cairn"
    first = store.put(data)
    assert store.put(data) == first
    assert store.put_stream([b"one stone ", b"on the cairn"]) == first
    assert store.put(b"another stone") != first
    assert len(stored_objects()) == 2
    assert sorted(store.iter_cids()) == sorted([first, cid_of(b"another stone")])


def test_concurrent_puts_of_the_same_content_leave_one_whole_blob(
    store: BlobStore, stored_objects: StoredObjects
) -> None:
    data = random.Random(3).randbytes(300_000)
    start = threading.Barrier(8)

    def put(index: int) -> str:
        start.wait()
        return store.put(data) if index % 2 else store.put_stream([data[:1000], data[1000:]])

    with ThreadPoolExecutor(max_workers=8) as pool:
        cids = set(pool.map(put, range(8)))
    assert cids == {cid_of(data)}
    assert store.get(cid_of(data)) == data
    assert len(stored_objects()) == 1  # no temporary file left behind


def test_a_20_mib_file_streams_in_and_out_chunk_by_chunk(
    store: BlobStore, stored_objects: StoredObjects, big_file: tuple[Path, str]
) -> None:
    path, expected = big_file
    with path.open("rb") as handle:
        cid = store.put_stream(handle)
    assert cid == expected
    assert store.size(cid) == 20 * MIB
    # an iterable of chunks gives the same CID and stores nothing new
    assert store.put_stream(_chunks_of_file(path, 3 * MIB + 1)) == cid
    assert len(stored_objects()) == 1

    read = 0
    with path.open("rb") as original:
        for chunk in store.open(cid):
            assert 0 < len(chunk) <= store.chunk_size
            assert chunk == original.read(len(chunk))
            read += len(chunk)
        assert original.read() == b""
    assert read == 20 * MIB


@pytest.mark.parametrize("replacement", [b"other bytes", b"X" * 23])
def test_corrupted_blob_raises_integrity_error_on_get_and_open(
    store: BlobStore, overwrite_stored: OverwriteStored, replacement: bytes
) -> None:
    data = b"the honest 23 bytes ..."
    cid = store.put(data)
    overwrite_stored(cid, replacement)

    with pytest.raises(IntegrityError, match=cid):
        store.get(cid)
    seen = []
    with pytest.raises(IntegrityError, match=cid):
        for chunk in store.open(cid):
            seen.append(chunk)
    assert b"".join(seen) == replacement  # streamed, then refused at the end
    with pytest.raises(IntegrityError):
        store.get_json(cid)


def test_corruption_in_the_middle_of_a_large_blob_is_caught(
    store: BlobStore, overwrite_stored: OverwriteStored
) -> None:
    data = random.Random(5).randbytes(3 * MIB)
    cid = store.put(data)
    overwrite_stored(cid, data[: 2 * MIB] + bytes([data[2 * MIB] ^ 1]) + data[2 * MIB + 1 :])
    with pytest.raises(IntegrityError, match=cid):
        for _ in store.open(cid):
            pass


def test_missing_blob_raises_not_found(store: BlobStore) -> None:
    assert not store.has(VALID)
    for operation in (store.get, store.open, store.size, store.delete, store.get_json):
        with pytest.raises(NotFound, match=VALID):
            operation(VALID)


@pytest.mark.parametrize("bad", MALFORMED, ids=repr)
def test_malformed_cid_is_invalid_input_and_touches_nothing(
    store: BlobStore, stored_objects: StoredObjects, bad: Any
) -> None:
    kept = store.put(b"kept")
    before = stored_objects()
    operations = (store.get, store.open, store.has, store.size, store.delete, store.get_json)
    for operation in operations:
        with pytest.raises(InvalidInput):
            operation(bad)
    assert stored_objects() == before
    assert store.get(kept) == b"kept"


def test_delete_removes_the_blob(store: BlobStore) -> None:
    cid = store.put(b"short-lived")
    store.delete(cid)
    assert not store.has(cid)
    assert list(store.iter_cids()) == []
    with pytest.raises(NotFound):
        store.get(cid)


def test_put_json_is_canonical(store: BlobStore) -> None:
    first = store.put_json({"name": "cairn", "stones": [3, 1, 2], "é": {"b": 1.5, "a": None}})
    second = store.put_json({"é": {"a": None, "b": 1.5}, "stones": [3, 1, 2], "name": "cairn"})
    assert first == second
    expected = '{"name":"cairn","stones":[3,1,2],"é":{"a":null,"b":1.5}}'.encode()
    assert store.get(first) == expected
    assert first == cid_of(expected)
    assert canonical_json({"é": {"b": 1.5, "a": None}, "stones": [3, 1, 2], "name": "cairn"}) == (
        expected
    )
    assert store.get_json(first) == {
        "name": "cairn",
        "stones": [3, 1, 2],
        "é": {"a": None, "b": 1.5},
    }


@pytest.mark.parametrize("value", [float("nan"), {"a": float("inf")}, {1, 2}, {"when": object()}])
def test_put_json_refuses_what_json_cannot_say(
    store: BlobStore, stored_objects: StoredObjects, value: Any
) -> None:
    with pytest.raises(InvalidInput, match="canonical JSON"):
        store.put_json(value)
    assert stored_objects() == []


def test_get_json_of_a_non_json_blob_is_invalid_input(store: BlobStore) -> None:
    cid = store.put(b"\xff not json")
    with pytest.raises(InvalidInput, match=cid):
        store.get_json(cid)


def test_bad_put_input_is_refused_and_leaves_nothing(
    store: BlobStore, stored_objects: StoredObjects
) -> None:
    with pytest.raises(InvalidInput):
        store.put("text, not bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.put_stream(b"bytes, not a stream")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        store.put_stream([b"fine", "not bytes"])  # type: ignore[list-item]
    assert stored_objects() == []


def test_a_stream_that_fails_midway_stores_nothing(
    store: BlobStore, stored_objects: StoredObjects
) -> None:
    def failing() -> Iterator[bytes]:
        yield b"x" * MIB
        raise OSError("disk on the sending side went away")

    with pytest.raises(OSError, match="went away"):
        store.put_stream(failing())
    assert stored_objects() == []
    assert list(store.iter_cids()) == []


# -- backend specifics --------------------------------------------------------------------


def test_local_layout_is_sharded_and_ignores_stray_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    cid = store.put(b"sharded")
    assert store.path_of(cid) == tmp_path / cid[-3:-1] / cid
    assert store.path_of(cid).read_bytes() == b"sharded"
    (tmp_path / cid[-3:-1] / f".{cid}.abc.tmp").write_bytes(b"half a write")
    (tmp_path / "notes.txt").write_text("not a blob")
    assert list(store.iter_cids()) == [cid]
    assert list(LocalBlobStore(tmp_path).iter_cids()) == [cid]  # reopening keeps it


def test_local_store_cannot_be_led_outside_its_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    for operation in (store.delete, store.get, store.size):
        with pytest.raises(InvalidInput):
            operation("../victim")
    assert victim.read_text() == "keep me"


def test_s3_store_reuses_an_existing_bucket_and_keeps_to_its_prefix(
    make_s3_store: Callable[..., S3BlobStore],
) -> None:
    store = make_s3_store()
    cid = store.put(b"in the bucket")
    again = make_s3_store(bucket=store.bucket)  # create_bucket on an existing one
    assert again.get(cid) == b"in the bucket"
    store.client.put_object(Bucket=store.bucket, Key="elsewhere/file", Body=b"not ours")
    store.client.put_object(Bucket=store.bucket, Key="blobs/not-a-cid", Body=b"not ours")
    assert list(again.iter_cids()) == [cid]
    assert store.client.get_object(Bucket=store.bucket, Key=f"blobs/{cid}")["Body"].read() == (
        b"in the bucket"
    )


def test_s3_streams_a_large_file_as_a_multipart_upload(
    make_s3_store: Callable[..., S3BlobStore], big_file: tuple[Path, str]
) -> None:
    store = make_s3_store()
    path, expected = big_file
    with path.open("rb") as handle:
        assert store.put_stream(handle) == expected
    head = store.client.head_object(Bucket=store.bucket, Key=store.key_of(expected))
    assert head["ETag"].strip('"').endswith("-3")  # three 8 MiB parts
