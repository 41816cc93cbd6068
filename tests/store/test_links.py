"""One copy per machine: a local store keeps a written-once file as it is (a hard link), and
hands stored blobs out as links; a file that cannot be linked is copied, and nothing written
later through a linked name reaches a stored blob unnoticed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cairn.core.cid import cid_of
from cairn.core.errors import IntegrityError
from cairn.store import BlobStore, LocalBlobStore
from cairn.train.weights import fetch_folder, store_folder

DATA = b"weights that are written once" * 1000


def test_a_written_once_file_is_stored_as_itself(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    source = tmp_path / "model.safetensors"
    source.write_bytes(DATA)
    cid = store.put_file(source, link=True)
    assert cid == cid_of(DATA) and store.get(cid) == DATA
    assert os.path.samefile(source, store.path_of(cid))  # one copy on disk
    assert source.stat().st_mode & 0o222 == 0  # read-only under both names
    assert not [p for p in (tmp_path / "blobs" / ".staging").iterdir()]
    assert store.put_file(source, link=True) == cid  # again: nothing changes


def test_without_link_a_file_is_copied(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    source = tmp_path / "user-file"
    source.write_bytes(DATA)
    cid = store.put_file(source)
    assert not os.path.samefile(source, store.path_of(cid))
    source.write_bytes(b"the user changed it")
    assert store.get(cid) == DATA


def test_a_file_on_another_filesystem_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    source = tmp_path / "model.safetensors"
    source.write_bytes(DATA)

    def cross_device(*_args: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    cid = store.put_file(source, link=True)
    assert store.get(cid) == DATA and not os.path.samefile(source, store.path_of(cid))
    assert not store.link_to(cid, tmp_path / "out")  # and no link out either
    assert not (tmp_path / "out").exists()


def test_fetching_a_folder_links_its_files_and_refetching_never_writes_through(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(DATA)
    manifest = store_folder(store, folder)
    out = fetch_folder(store, manifest, tmp_path / "fetched")
    weights = store.path_of(cid_of(DATA))
    assert os.path.samefile(out / "model.safetensors", weights)
    # a half-done fetch is done again: the linked file is replaced, not truncated and rewritten
    fetch_folder(store, manifest, out)
    assert store.get(cid_of(DATA)) == DATA
    assert os.path.samefile(out / "model.safetensors", weights)


class NoLinks(LocalBlobStore):
    """A store that cannot link (as S3 cannot): fetching copies, verified."""

    def link_to(self, cid: str, target: Path) -> bool:  # type: ignore[override]
        return BlobStore.link_to(self, cid, target)


def test_a_store_that_cannot_link_copies_and_verifies(tmp_path: Path) -> None:
    store = NoLinks(tmp_path / "blobs")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(DATA)
    manifest = store_folder(store, folder)
    out = fetch_folder(store, manifest, tmp_path / "fetched")
    assert (out / "model.safetensors").read_bytes() == DATA
    assert not os.path.samefile(out / "model.safetensors", store.path_of(cid_of(DATA)))
    path = store.path_of(cid_of(DATA))
    os.chmod(path, 0o644)
    path.write_bytes(b"x" * len(DATA))  # the stored blob corrupted: the copy is refused
    with pytest.raises(IntegrityError):
        fetch_folder(store, manifest, tmp_path / "again")
    assert not list((tmp_path / "again").iterdir())  # nothing half-written left
