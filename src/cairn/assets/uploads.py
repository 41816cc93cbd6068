"""Resumable uploads: a blob too large for one request, sent in chunks and verified by its CID.

The uploader declares the blob's size and CID (`start`), sends its bytes in order, in chunks
of at most `chunk_size` (`write`: each is appended to a staging file in the node's data
folder), then asks the node to store it (`complete`): the node hashes the staged file,
refuses a mismatch, stores the blob and records it as the uploader's upload (`Scope.UPLOAD`),
exactly as a single `POST /blobs` does. What happens to the blob afterwards (claimed by an
asset, or deleted a day later) is `cairn.assets.content`'s business.

- Resuming: the bytes staged so far are the staging file's length. A client that lost its
  connection asks for them (`get`), or declares the same blob again (`start` answers the
  upload already open for it), and sends the rest. A chunk at an offset already written is
  taken again when its bytes are the ones staged (a retry); one past the end would leave a
  gap and is refused.
- Ownership: an upload is its uploader's; to anyone else it does not exist (404).
- Quota: an open upload reserves its declared size against the uploader's upload quota from
  the moment it starts, and counts as one of its uploads in the hourly rate.
- Expiry: an upload untouched for `ttl` is deleted with its bytes; the node's scheduler
  sweeps them (`expire`), and so does every `start`.

A blob of at most `MAX_BODY` bytes may instead come whole, in one request body (`POST /blobs`):
`body_allowance` says how much the uploader may send under the same quota and hourly limit, and
`store_body` stores what came.

Over 400 lines because both ways in, chunked and whole, draw on one quota and one hourly limit
per uploader, which read best beside each other.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.assets.content import UPLOAD_TTL, ContentRefs, Scope
from cairn.core.cid import CID, cid_of_stream
from cairn.core.errors import ConfigError, Conflict, InvalidInput, NotFound, RateLimited
from cairn.store.base import BlobStore

MiB = 1024 * 1024
HOUR = 3600.0
MAX_BODY = 256 * MiB  # the largest blob one request body may carry; a larger one goes in chunks
_ID = re.compile(r"[0-9a-f]{32}")  # what `start` makes; anything else never reaches the disk
_RANGE = re.compile(r"bytes (\d{1,19})-(\d{1,19})/(\d{1,19}|\*)")


@dataclass(frozen=True)
class StagedUpload:
    """An upload as its uploader sees it."""

    upload_id: str
    owner: str
    size: int  # declared: the blob's length in bytes
    cid: str  # declared: what the bytes must hash to
    received: int  # bytes staged so far, from offset 0: send the next chunk from here
    chunk_size: int  # the most one chunk may carry
    expires_at: float  # deleted then unless a chunk arrives (or, once stored, then forgotten)
    stored: bool  # completed: the blob is in the store as the uploader's upload


@dataclass(frozen=True)
class ChunkRange:
    """Where a chunk goes: its first and last byte, and the total the sender declares."""

    first: int
    last: int
    total: int | None  # None for `*`

    @classmethod
    def parse(cls, header: str | None) -> ChunkRange:
        """A `Content-Range: bytes FIRST-LAST/TOTAL` header (RFC 9110 §14.4)."""
        found = _RANGE.fullmatch((header or "").strip())
        if found is None:
            raise InvalidInput(
                f"a chunk needs a Content-Range header 'bytes FIRST-LAST/TOTAL'; got {header!r}"
            )
        first, last = int(found[1]), int(found[2])
        if last < first:
            raise InvalidInput(f"Content-Range {header!r}: the last byte comes before the first")
        return cls(first, last, None if found[3] == "*" else int(found[3]))

    @property
    def length(self) -> int:
        """The chunk's length in bytes."""
        return self.last - self.first + 1


class BodiesInFlight:
    """The request bodies being received now, per uploader: bytes so far, body by body.

    Each counts against its uploader's quota and hourly limit while it arrives, so bodies sent
    at once cannot each take the whole room left (they were counted only once stored)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sizes: dict[str, dict[int, int]] = {}  # owner (lower case) -> body -> bytes

    def open(self, owner: str) -> int:
        """Count a new body of `owner`'s; its key."""
        with self._lock:
            bodies = self._sizes.setdefault(owner.lower(), {})
            key = max(bodies, default=0) + 1
            bodies[key] = 0
            return key

    def update(self, owner: str, key: int, size: int) -> int:
        """The body `key` has reached `size` bytes; all of `owner`'s bodies' bytes."""
        with self._lock:
            bodies = self._sizes.get(owner.lower(), {})
            if key in bodies:
                bodies[key] = size
            return sum(bodies.values())

    def close(self, owner: str, key: int) -> None:
        """The body is stored or abandoned: it no longer counts."""
        with self._lock:
            bodies = self._sizes.get(owner.lower(), {})
            bodies.pop(key, None)
            if not bodies:
                self._sizes.pop(owner.lower(), None)

    def count(self, owner: str) -> int:
        with self._lock:
            return len(self._sizes.get(owner.lower(), {}))

    def size(self, owner: str) -> int:
        with self._lock:
            return sum(self._sizes.get(owner.lower(), {}).values())


@dataclass
class BodyAllowance:
    """How large a blob an uploader may send now in one request body.

    One from `Uploads.body_allowance` counts its body among the uploader's bodies in flight
    until `close`; `room` is then what the quota leaves for all of them together.
    """

    owner: str
    room: int  # bytes left in the owner's quota (negative when over it)
    in_flight: BodiesInFlight | None = field(default=None, repr=False)
    key: int = 0

    @property
    def limit(self) -> int:
        """The most bytes the body may have: the room left, and never over `MAX_BODY`."""
        return min(MAX_BODY, self.room)

    def check(self, size: int) -> None:
        """Refuse a body that has reached `size` bytes when that is over the limit."""
        total = (
            size if self.in_flight is None else self.in_flight.update(self.owner, self.key, size)
        )
        if size > MAX_BODY and self.room > MAX_BODY:
            raise InvalidInput(f"upload exceeds {MAX_BODY} bytes")
        if total <= self.room:
            return
        others = total - size
        raise RateLimited(
            f"{self.owner}'s unclaimed uploads leave room for {max(self.room - others, 0) // MiB} "
            f"MiB; this upload is {size // MiB}+ MiB: register what you uploaded (or wait a "
            "day for it to expire)"
        )

    def close(self) -> None:
        """The body is stored or abandoned."""
        if self.in_flight is not None:
            self.in_flight.close(self.owner, self.key)


class Uploads:
    """The staged uploads of one node, in `folder`: `ID.json` (the record), `ID.part` (bytes)."""

    def __init__(
        self,
        folder: Path,
        store: BlobStore,
        refs: ContentRefs,
        *,
        chunk_size: int,
        quota: int,
        per_hour: int,
        ttl: float = UPLOAD_TTL,
    ) -> None:
        if chunk_size < 1:
            raise ConfigError(
                f"an upload's chunk size must be positive (CAIRN_UPLOAD_CHUNK_MB); got {chunk_size}"
            )
        self.folder = folder
        self.store = store
        self.refs = refs
        self.chunk_size = chunk_size
        self.quota = quota  # bytes an account's uploads, staged or stored, may hold
        self.per_hour = per_hour  # uploads an account may start in an hour
        self.ttl = ttl
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}  # one writer per upload at a time
        self._starting = threading.Lock()  # one quota check at a time
        self.bodies = BodiesInFlight()  # whole blobs arriving as request bodies (POST /blobs)

    # -- the uploader's steps ----------------------------------------------------------------

    def start(self, owner: str, size: int, cid: str) -> tuple[StagedUpload, bool]:
        """Open an upload of `size` bytes hashing to `cid`; (the upload, whether it is new).

        The same blob declared again while its upload is open answers that upload, so a
        client that lost its connection resumes from what the node has.
        """
        declared = str(CID.parse(cid))
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidInput(f"an upload's size must be a positive number of bytes; got {size!r}")
        self.expire()
        with self._starting:
            return self._start(owner, size, declared)

    def _start(self, owner: str, size: int, declared: str) -> tuple[StagedUpload, bool]:
        open_uploads = self._open(owner)
        for meta in open_uploads:
            if meta["cid"] == declared and meta["size"] == size:
                return self._record(meta), False
        usage = self.refs.uploads(owner, window=HOUR)
        recent = usage.recent + self.bodies.count(owner)
        recent += sum(1 for m in open_uploads if m["created_at"] >= time.time() - HOUR)
        if recent >= self.per_hour:
            raise self._too_many(owner, recent)
        room = self.quota - usage.bytes - sum(int(m["size"]) for m in open_uploads)
        room -= self.bodies.size(owner)
        if size > room:
            raise RateLimited(
                f"{owner}'s uploads leave room for {max(room, 0) // MiB} MiB; this upload is "
                f"{_mib(size)} MiB: register what you uploaded, cancel open uploads (DELETE "
                "/api/v1/uploads/ID), or wait a day for them to expire"
            )
        upload_id = secrets.token_hex(16)
        meta = {
            "upload_id": upload_id,
            "owner": owner,
            "size": size,
            "cid": declared,
            "created_at": time.time(),
            "stored_at": None,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        self._part(upload_id).touch()
        self._save(meta)
        return self._record(meta), True

    def get(self, upload_id: str, owner: str) -> StagedUpload:
        """One of `owner`'s uploads; anyone else's, or one that expired, is `NotFound`."""
        return self._record(self._meta(upload_id, owner))

    def write(self, upload_id: str, owner: str, chunk: ChunkRange, data: bytes) -> StagedUpload:
        """Stage `data` at `chunk.first`; returns the upload with what it now holds.

        A chunk that overlaps what is staged must repeat those bytes exactly (a retry after a
        lost answer); a chunk that starts past the end is refused, since it would leave a gap.
        """
        with self._lock(upload_id):
            meta = self._meta(upload_id, owner)
            if meta["stored_at"] is not None:
                raise Conflict(f"upload {upload_id} is complete: its blob is {meta['cid']}")
            size, part = int(meta["size"]), self._part(upload_id)
            received = part.stat().st_size
            if len(data) != chunk.length:
                raise InvalidInput(
                    f"Content-Range bytes {chunk.first}-{chunk.last} is {chunk.length} bytes; "
                    f"the body has {len(data)}"
                )
            if len(data) > self.chunk_size:
                raise InvalidInput(
                    f"a chunk of {len(data)} bytes is larger than this node's chunk size, "
                    f"{self.chunk_size} bytes: send smaller chunks"
                )
            if chunk.total is not None and chunk.total != size:
                raise InvalidInput(
                    f"Content-Range says the blob has {chunk.total} bytes; upload {upload_id} "
                    f"was declared with {size}"
                )
            if chunk.last >= size:
                raise InvalidInput(
                    f"a chunk ending at byte {chunk.last} runs past the upload's {size} bytes"
                )
            if chunk.first > received:
                raise Conflict(
                    f"upload {upload_id} has {received} bytes: send the chunk at offset "
                    f"{received} next (a chunk at {chunk.first} would leave a gap)"
                )
            overlap = min(chunk.last + 1, received) - chunk.first
            with part.open("r+b") as out:
                if overlap > 0:
                    out.seek(chunk.first)
                    if out.read(overlap) != data[:overlap]:
                        raise Conflict(
                            f"upload {upload_id} already holds different bytes at offsets "
                            f"{chunk.first}-{chunk.first + overlap - 1}: a blob's bytes cannot "
                            "change; start a new upload for different content"
                        )
                if len(data) > overlap:
                    out.seek(received)
                    out.write(data[overlap:])
                    out.flush()
                    os.fsync(out.fileno())  # what `received` reports must survive a crash
            return self._record(meta)

    def complete(self, upload_id: str, owner: str) -> StagedUpload:
        """Verify the staged bytes against the declared CID and store them as `owner`'s upload.

        A mismatch discards the upload (its bytes are wrong somewhere, nobody can say where).
        Completing again answers the same, for a client whose first answer was lost.
        """
        with self._lock(upload_id):
            meta = self._meta(upload_id, owner)
            if meta["stored_at"] is not None:
                return self._record(meta)
            size, part = int(meta["size"]), self._part(upload_id)
            received = part.stat().st_size
            if received != size:
                raise Conflict(
                    f"upload {upload_id} has {received} of its {size} bytes: send the rest "
                    f"from offset {received}, then complete it"
                )
            with part.open("rb") as source:
                actual = cid_of_stream(source)
            if actual != meta["cid"]:
                self._remove(upload_id)
                raise InvalidInput(
                    f"the {size} bytes of upload {upload_id} hash to {actual}, not to the "
                    f"declared {meta['cid']}: the upload is discarded; send it again"
                )
            with part.open("rb") as source:
                stored = self.store.put_stream(source)
            self.refs.add(stored, Scope.UPLOAD, owner, account=owner)
            meta["stored_at"] = time.time()
            self._save(meta)
            part.unlink(missing_ok=True)
            return self._record(meta)

    def cancel(self, upload_id: str, owner: str) -> None:
        """Give up an open upload: its bytes are deleted and its reservation freed."""
        with self._lock(upload_id):
            self._meta(upload_id, owner)
            self._remove(upload_id)

    # -- a whole blob in one request body ----------------------------------------------------

    def body_allowance(self, owner: str) -> BodyAllowance:
        """What `owner` may send now as one request body; `RateLimited` past the hourly limit.

        Open uploads and the bodies arriving now count against the quota and the hourly limit
        as stored uploads do; `close` the allowance once the body is stored or abandoned.
        """
        with self._starting:
            usage = self.refs.uploads(owner, window=HOUR)
            recent = usage.recent + self.bodies.count(owner)
            recent += sum(1 for m in self._open(owner) if m["created_at"] >= time.time() - HOUR)
            if recent >= self.per_hour:
                raise self._too_many(owner, recent)
            room = self.quota - usage.bytes - self.reserved(owner)
            return BodyAllowance(owner, room, self.bodies, self.bodies.open(owner))

    def store_body(self, owner: str, chunks: Iterable[bytes]) -> str:
        """Store a body received within `owner`'s allowance as `owner`'s upload; its CID."""
        cid = self.store.put_stream(chunks)
        self.refs.add(cid, Scope.UPLOAD, owner, account=owner)
        return cid

    def _too_many(self, owner: str, recent: int) -> RateLimited:
        return RateLimited(
            f"{owner} made {recent} uploads in the last hour; the limit is {self.per_hour}: "
            "wait, or ask the operator to raise CAIRN_UPLOADS_PER_HOUR"
        )

    # -- accounting and upkeep ---------------------------------------------------------------

    def reserved(self, owner: str) -> int:
        """Bytes `owner`'s open uploads reserve against its quota."""
        return sum(int(m["size"]) for m in self._open(owner))

    def expire(self, now: float | None = None) -> int:
        """Delete the uploads untouched for `ttl` (and forget completed ones); returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for meta in self._all():
            upload_id = str(meta["upload_id"])
            if self._expires_at(meta) > now:
                continue
            with self._lock(upload_id):
                if self._expires_at(meta) <= now:  # again: a chunk may have come meanwhile
                    self._remove(upload_id)
                    removed += 1
        # what a crash left between writing a record's files: bytes without a record
        for leftover in [*self.folder.glob("*.part"), *self.folder.glob("*.tmp")]:
            try:
                stale = leftover.stat().st_mtime + self.ttl <= now
            except FileNotFoundError:
                continue
            if stale and not self._json(leftover.name.split(".")[0]).exists():
                leftover.unlink(missing_ok=True)
        return removed

    # -- files -------------------------------------------------------------------------------

    def _meta(self, upload_id: str, owner: str) -> dict[str, Any]:
        missing = NotFound(f"no upload {upload_id} of {owner}'s: it expired, or never existed")
        if not _ID.fullmatch(upload_id):
            raise missing
        try:
            meta: dict[str, Any] = json.loads(self._json(upload_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            raise missing from None
        if str(meta["owner"]).lower() != owner.lower() or self._expires_at(meta) <= time.time():
            raise missing
        return meta

    def _open(self, owner: str) -> list[dict[str, Any]]:
        now = time.time()
        return [
            m
            for m in self._all()
            if str(m["owner"]).lower() == owner.lower()
            and m["stored_at"] is None
            and self._expires_at(m) > now
        ]

    def _all(self) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.glob("*.json"):
            try:
                found.append(json.loads(path.read_text()))
            except (FileNotFoundError, json.JSONDecodeError):
                continue  # removed meanwhile, or a half-written record of a crash: it expires
        return found

    def _record(self, meta: dict[str, Any]) -> StagedUpload:
        upload_id = str(meta["upload_id"])
        stored = meta["stored_at"] is not None
        part = self._part(upload_id)
        return StagedUpload(
            upload_id=upload_id,
            owner=str(meta["owner"]),
            size=int(meta["size"]),
            cid=str(meta["cid"]),
            received=int(meta["size"]) if stored else part.stat().st_size,
            chunk_size=self.chunk_size,
            expires_at=self._expires_at(meta),
            stored=stored,
        )

    def _expires_at(self, meta: dict[str, Any]) -> float:
        # an open upload lives `ttl` past its last chunk (the staging file's mtime)
        if meta.get("stored_at") is not None:
            return float(meta["stored_at"]) + self.ttl
        try:
            touched = self._part(str(meta["upload_id"])).stat().st_mtime
        except FileNotFoundError:
            touched = 0.0
        return max(float(meta["created_at"]), touched) + self.ttl

    def _save(self, meta: dict[str, Any]) -> None:
        path = self._json(str(meta["upload_id"]))
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, path)

    def _remove(self, upload_id: str) -> None:
        # called holding the upload's lock: whoever waits on it then finds no upload; the
        # record goes first, so that a crash leaves bytes `expire` deletes, never a record
        # without its bytes
        self._json(upload_id).unlink(missing_ok=True)
        self._part(upload_id).unlink(missing_ok=True)
        with self._guard:
            self._locks.pop(upload_id, None)

    def _json(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.json"

    def _part(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.part"

    def _lock(self, upload_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(upload_id, threading.Lock())


def _mib(size: int) -> str:
    return f"{size / MiB:.1f}".removesuffix(".0")
