"""The blob store interface: bytes named by their CID, verified on every read.

`BlobStore` holds everything backends share: CID checks (a malformed id is `InvalidInput`
before any storage is touched), hashing, spooling streams to a temporary file, verifying
reads and canonical JSON. A backend implements only the small raw primitives at the bottom
(`_exists`, `_write_bytes`, `_write_file`, `_read_chunks`, `_size`, `_remove`, `_list`),
which take a CID string already checked and never verify anything themselves.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cairn.core.cid import CID, CIDHasher, canonical_json, is_cid
from cairn.core.errors import IntegrityError, InvalidInput

CHUNK_SIZE = 1 << 20  # 1 MiB: the most a streaming read or write holds at once

BlobSource = Iterable[bytes] | BinaryIO


class BlobStore(ABC):
    """Content-addressed blob storage: put bytes, get them back by CID, verified."""

    chunk_size: int = CHUNK_SIZE

    def put(self, data: bytes | bytearray | memoryview) -> str:
        """Store `data` and return its CID; storing the same bytes again changes nothing."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"a blob must be bytes; got {type(data).__name__}")
        blob = bytes(data)
        cid = str(CID.of_bytes(blob))
        if not self._exists(cid):
            self._write_bytes(cid, blob)
        return cid

    def put_stream(self, source: BlobSource) -> str:
        """Store a stream (a binary file or an iterable of byte chunks) and return its CID.

        The stream is hashed while it is spooled to a temporary file, since where it is
        stored depends on the hash; at most one chunk is held in memory at a time.
        """
        fd, name = tempfile.mkstemp(prefix=".put-", suffix=".tmp", dir=self._staging_dir())
        spool_path = Path(name)
        try:
            hasher = CIDHasher()
            with os.fdopen(fd, "wb") as spool:
                for chunk in _chunks_of(source, self.chunk_size):
                    hasher.update(chunk)
                    spool.write(chunk)
            cid = str(hasher.cid())
            if not self._exists(cid):
                self._write_file(cid, spool_path)
            return cid
        finally:
            spool_path.unlink(missing_ok=True)

    def put_file(self, path: Path, *, link: bool = False) -> str:
        """Store a file's bytes and return their CID.

        `link` says the file is written once and never changed in place (a converted base
        model, a job's trained model): a store on the same filesystem may then keep the file
        itself, as a hard link made read-only, instead of a second copy. A later in-place
        change would still be caught, as every read is verified against the CID.
        """
        with path.open("rb") as fh:
            return self.put_stream(fh)

    def link_to(self, cid: str | CID, target: Path) -> bool:
        """Make `target` name the stored blob `cid` without copying it, where the backend
        can (a hard link into a local store); False, touching nothing, where it cannot."""
        _checked(cid)
        return False

    def get(self, cid: str | CID) -> bytes:
        """The bytes named by `cid`; `NotFound` if absent, `IntegrityError` if corrupt."""
        return b"".join(self.open(cid))

    def open(self, cid: str | CID) -> Iterator[bytes]:
        """Stream the bytes named by `cid` in chunks of at most `chunk_size`.

        Chunks are hashed as they pass; if the whole does not match, the last step raises
        `IntegrityError`, so a consumer must treat the data as unverified until the iterator
        is exhausted. `NotFound` is raised here, before the first chunk.
        """
        key = _checked(cid)
        return self._verified(key, self._read_chunks(key))

    def has(self, cid: str | CID) -> bool:
        """Whether a blob is stored under `cid` (its contents are not verified)."""
        return self._exists(_checked(cid))

    def size(self, cid: str | CID) -> int:
        """The stored size in bytes of the blob under `cid`; `NotFound` if absent."""
        return self._size(_checked(cid))

    def delete(self, cid: str | CID) -> None:
        """Remove the blob under `cid`; `NotFound` if absent."""
        self._remove(_checked(cid))

    def iter_cids(self) -> Iterator[str]:
        """Every CID stored, in no particular order."""
        for name in self._list():
            if is_cid(name):
                yield name

    def put_json(self, obj: Any) -> str:
        """Store a JSON value in canonical form; equal values always get the same CID."""
        return self.put(canonical_json(obj))

    def get_json(self, cid: str | CID) -> Any:
        """The JSON value stored under `cid`; `InvalidInput` if that blob is not JSON."""
        data = self.get(cid)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidInput(f"blob {cid} is not UTF-8 JSON: {error}") from error

    def _verified(self, cid: str, raw: Generator[bytes, None, None]) -> Iterator[bytes]:
        hasher = CIDHasher()
        try:
            for chunk in raw:
                hasher.update(chunk)
                yield chunk
        finally:
            raw.close()
        actual = str(hasher.cid())
        if actual != cid:
            raise IntegrityError(
                f"blob {cid} is corrupt: its {hasher.size} stored bytes hash to {actual}"
            )

    # -- backend primitives: `cid` is always a checked CID string --------------------------

    def _staging_dir(self) -> Path | None:
        """Where `put_stream` spools; None means the system temporary folder."""
        return None

    @abstractmethod
    def _exists(self, cid: str) -> bool:
        """Whether an object is stored under `cid`."""

    @abstractmethod
    def _write_bytes(self, cid: str, data: bytes) -> None:
        """Store `data` under `cid`, atomically: readers see all of it or nothing."""

    @abstractmethod
    def _write_file(self, cid: str, path: Path) -> None:
        """Store the file at `path` under `cid`, atomically; the caller removes `path` after."""

    @abstractmethod
    def _read_chunks(self, cid: str) -> Generator[bytes, None, None]:
        """Open the object under `cid` now (`NotFound` if absent) and return its chunks."""

    @abstractmethod
    def _size(self, cid: str) -> int:
        """The stored size of the object under `cid`; `NotFound` if absent."""

    @abstractmethod
    def _remove(self, cid: str) -> None:
        """Remove the object under `cid`; `NotFound` if absent."""

    @abstractmethod
    def _list(self) -> Iterator[str]:
        """The names of the stored objects (non-CID names are filtered out by the caller)."""


def _checked(cid: str | CID) -> str:
    # the canonical string, or InvalidInput; this is what keeps '../x' away from storage
    if isinstance(cid, CID):
        return str(cid)
    return str(CID.parse(cid))


def _chunks_of(source: BlobSource, chunk_size: int) -> Iterator[bytes]:
    if hasattr(source, "read"):
        reader: BinaryIO = source  # type: ignore[assignment]
        while chunk := reader.read(chunk_size):
            if not isinstance(chunk, bytes):
                raise InvalidInput(f"a blob stream must yield bytes; got {type(chunk).__name__}")
            yield chunk
        return
    if isinstance(source, bytes | bytearray | memoryview | str):
        raise InvalidInput("put_stream takes a binary file or an iterable of chunks; use put")
    for chunk in source:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidInput(f"a blob stream must yield bytes; got {type(chunk).__name__}")
        yield bytes(chunk)
