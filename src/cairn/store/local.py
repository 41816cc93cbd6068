"""The default blob store: one file per blob in a local folder.

Layout, as IPFS's flatfs `next-to-last/2`: `root/<shard>/<cid>`, where the shard is the two
base32 characters before the last one (the last carries only 3 bits of the digest), giving
1,024 evenly filled folders. Every write goes to a temporary file on the same filesystem,
is fsynced, then renamed into place with `os.replace`, so a reader or a crash never sees half
a blob, and two writers of the same content both leave the same whole file.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

from cairn.core.cid import CID, CIDHasher
from cairn.core.errors import NotFound
from cairn.store.base import BlobStore

_STAGING = ".staging"  # put_stream spools here: same filesystem, so the final rename is atomic


class LocalBlobStore(BlobStore):
    """Blobs as files under `root`, sharded by CID."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        (self.root / _STAGING).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def path_of(self, cid: str | CID) -> Path:
        """Where the blob named by `cid` lives (whether or not it is stored)."""
        return self._path(str(CID.parse(str(cid))))

    def _path(self, cid: str) -> Path:
        return self.root / cid[-3:-1] / cid

    def put_file(self, path: Path, *, link: bool = False) -> str:
        """As `BlobStore.put_file`; with `link`, the stored blob is the file itself (hard
        linked, read-only) when it lies on this store's filesystem, not a copy of it."""
        if not link:
            return super().put_file(path)
        staged = self._staging_dir() / f".link-{os.getpid()}-{threading.get_ident()}"
        staged.unlink(missing_ok=True)
        try:
            os.link(path, staged)
        except OSError:  # another filesystem, or links not allowed: a copy, as put_stream
            return super().put_file(path)
        try:
            os.chmod(staged, 0o444)  # both names: writing in place fails (for all but root)
            hasher = CIDHasher()
            with staged.open("rb") as fh:
                while chunk := fh.read(self.chunk_size):
                    hasher.update(chunk)
            cid = str(hasher.cid())
            if not self._exists(cid):
                self._write_file(cid, staged)
            return cid
        finally:
            staged.unlink(missing_ok=True)

    def link_to(self, cid: str | CID, target: Path) -> bool:
        """Hard-link the stored blob as `target` (on this filesystem): no second copy."""
        source = self.path_of(cid)
        if not source.is_file():
            raise NotFound(f"blob {cid} not found in {self.root}")
        try:
            os.link(source, target)
        except FileExistsError:
            return False
        except OSError:  # another filesystem, or links not allowed
            return False
        return True

    def _staging_dir(self) -> Path:
        return self.root / _STAGING

    def _exists(self, cid: str) -> bool:
        return self._path(cid).is_file()

    def _write_bytes(self, cid: str, data: bytes) -> None:
        target = self._path(cid)
        target.parent.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{cid}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(name, target)
        finally:
            Path(name).unlink(missing_ok=True)
        _fsync_dir(target.parent)

    def _write_file(self, cid: str, path: Path) -> None:
        target = self._path(cid)
        target.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(path, target)
        _fsync_dir(target.parent)

    def _read_chunks(self, cid: str) -> Generator[bytes, None, None]:
        try:
            handle = self._path(cid).open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob {cid} not found in {self.root}") from None
        return _file_chunks(handle, self.chunk_size)

    def _size(self, cid: str) -> int:
        try:
            return self._path(cid).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {cid} not found in {self.root}") from None

    def _remove(self, cid: str) -> None:
        try:
            self._path(cid).unlink()
        except FileNotFoundError:
            raise NotFound(f"blob {cid} not found in {self.root}") from None

    def _list(self) -> Iterator[str]:
        for shard in sorted(self.root.iterdir()):
            if shard.name.startswith(".") or not shard.is_dir():
                continue
            for entry in sorted(shard.iterdir()):
                # temporary files start with '.'; a name in the wrong shard is not ours
                if entry.name[-3:-1] == shard.name and not entry.name.startswith("."):
                    yield entry.name


def _file_chunks(handle: BinaryIO, chunk_size: int) -> Generator[bytes, None, None]:
    with handle:
        while chunk := handle.read(chunk_size):
            yield chunk


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not every platform can open a folder
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
