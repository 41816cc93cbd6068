"""What each stored blob belongs to, and so who may read its bytes.

Every blob in the store is there for something: an asset's metadata, a dataset's batch, a
model's weights, a job's training set, an upload waiting to be registered. The node records
that as a reference (cid, scope, key) when it writes the blob, and `GET /blobs/{cid}` serves a
blob only to someone one of its references admits (`cairn.economy.access`). A blob without a
reference is served to nobody: the store is not a file host.

What stays public, by design: CIDs, Merkle roots, proofs and record hashes (they name content
without revealing it), asset metadata, attribution tables, usage receipts, settlements and
payout trees (anyone must be able to audit the money), and job recipes and work shares.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import delete, func, select

from cairn.assets.models import BlobRefRow
from cairn.core.cid import CID
from cairn.core.errors import InvalidInput
from cairn.db.engine import Database
from cairn.store.base import BlobStore

UPLOAD_TTL = (
    24 * 3600.0
)  # seconds an upload stays the uploader's before it must belong to something


class Scope(StrEnum):
    """Why a blob is stored, which decides who may read it."""

    PUBLIC = "public"  # metadata, attribution, receipts, settlements: anyone (audits need them)
    DATASET = "dataset"  # key: the dataset's id; whoever may export the dataset
    MODEL = "model"  # key: the model's id; whoever may download the model
    JOB = "job"  # key: the job id; its builder, and its workers with the job's token
    ACCOUNT = "account"  # key: an address; that account only (its own upload's verdicts)
    UPLOAD = "upload"  # key: the uploader; the uploader only, until it expires or is claimed


@dataclass(frozen=True)
class BlobRef:
    """One reason a blob is stored."""

    cid: str
    scope: Scope
    key: str
    account: str | None  # the account a JOB, ACCOUNT or UPLOAD reference belongs to
    size: int
    created_at: float


@dataclass(frozen=True)
class UploadUsage:
    """What an account has uploaded that is still its own (counted against its quota)."""

    blobs: int
    bytes: int
    recent: int  # uploads in the rate-limit window


class ContentRefs:
    """The index of blob references, and the job tokens that admit a job's workers."""

    def __init__(self, db: Database, store: BlobStore, secret: bytes) -> None:
        self.db = db
        self.store = store
        self._secret = secret

    def add(
        self,
        cids: str | Iterable[str],
        scope: Scope,
        key: str | int = "",
        *,
        account: str | None = None,
    ) -> None:
        """Record that `cids` belong to (scope, key); adding a reference twice changes nothing."""
        now = time.time()
        wanted = [str(CID.parse(c)) for c in ([cids] if isinstance(cids, str) else cids)]
        with self.db.session() as session:
            for cid in dict.fromkeys(wanted):
                exists = session.scalar(
                    select(BlobRefRow.id).where(
                        BlobRefRow.cid == cid, BlobRefRow.scope == scope, BlobRefRow.key == str(key)
                    )
                )
                if exists is None:
                    size = self.store.size(cid) if self.store.has(cid) else 0
                    session.add(
                        BlobRefRow(
                            cid=cid,
                            scope=str(scope),
                            key=str(key),
                            account=account,
                            size=size,
                            created_at=now,
                        )
                    )

    def add_folder(
        self, manifest_cid: str, scope: Scope, key: str | int = "", *, account: str | None = None
    ) -> list[str]:
        """Record a stored model folder (its manifest and every file); returns their CIDs."""
        cids = self.folder_cids(manifest_cid)
        self.add(cids, scope, key, account=account)
        return cids

    def folder_cids(self, manifest_cid: str) -> list[str]:
        """A stored folder's manifest CID and the CIDs of the files it names."""
        manifest = self.store.get_json(manifest_cid)
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if not isinstance(files, dict):
            raise InvalidInput(f"{manifest_cid} is not a folder manifest")
        cids = [str(CID.parse(manifest_cid))]
        for name, entry in files.items():
            if not isinstance(entry, dict) or "cid" not in entry:
                raise InvalidInput(f"manifest {manifest_cid}: file {name!r} names no CID")
            cids.append(str(CID.parse(str(entry["cid"]))))
        return cids

    def of(self, cid: str) -> list[BlobRef]:
        """Every reference to `cid`."""
        with self.db.session() as session:
            rows = session.scalars(select(BlobRefRow).where(BlobRefRow.cid == cid)).all()
            return [
                BlobRef(
                    cid=r.cid,
                    scope=Scope(r.scope),
                    key=r.key,
                    account=r.account,
                    size=r.size,
                    created_at=r.created_at,
                )
                for r in rows
            ]

    def uploads(self, account: str, *, window: float, now: float | None = None) -> UploadUsage:
        """An account's live uploads: how many, their bytes, and how many in the last `window` s."""
        now = time.time() if now is None else now
        owner = account.lower()
        with self.db.session() as session:
            base = select(func.count(), func.coalesce(func.sum(BlobRefRow.size), 0)).where(
                BlobRefRow.scope == str(Scope.UPLOAD), func.lower(BlobRefRow.key) == owner
            )
            blobs, size = session.execute(base).one()
            recent = session.scalar(
                select(func.count()).where(
                    BlobRefRow.scope == str(Scope.UPLOAD),
                    func.lower(BlobRefRow.key) == owner,
                    BlobRefRow.created_at >= now - window,
                )
            )
        return UploadUsage(blobs=int(blobs), bytes=int(size), recent=int(recent or 0))

    def collect(self, *, ttl: float = UPLOAD_TTL, now: float | None = None) -> int:
        """Expire uploads older than `ttl` and delete the blobs nothing else references.

        Only blobs whose upload expired are candidates: a blob the node wrote itself always has
        a reference from the moment it is stored, so nothing else is ever collected.
        """
        now = time.time() if now is None else now
        with self.db.session() as session:
            expired = session.scalars(
                select(BlobRefRow.cid).where(
                    BlobRefRow.scope == str(Scope.UPLOAD), BlobRefRow.created_at < now - ttl
                )
            ).all()
            if not expired:
                return 0
            session.execute(
                delete(BlobRefRow).where(
                    BlobRefRow.scope == str(Scope.UPLOAD), BlobRefRow.created_at < now - ttl
                )
            )
            kept = set(
                session.scalars(
                    select(BlobRefRow.cid).where(BlobRefRow.cid.in_(set(expired)))
                ).all()
            )
        removed = 0
        for cid in set(expired) - kept:
            if self.store.has(cid):
                self.store.delete(cid)
                removed += 1
        return removed

    def reset(self) -> None:
        """Forget every reference (the chain behind the index was replaced: its assets are gone)."""
        with self.db.session() as session:
            session.execute(delete(BlobRefRow))

    def unreferenced(self, cids: Iterable[str]) -> list[str]:
        """Those of `cids` that no reference names."""
        wanted = set(cids)
        with self.db.session() as session:
            named = set(
                session.scalars(select(BlobRefRow.cid).where(BlobRefRow.cid.in_(wanted))).all()
            )
        return sorted(wanted - named)

    # -- job tokens: a job's workers read its blobs -----------------------------------------

    def job_token(self, job_id: str) -> str:
        """The token that lets a job's workers fetch its training set and model files."""
        mac = hmac.new(self._secret, f"cairn-job:{job_id}".encode(), hashlib.sha256).hexdigest()
        return f"{job_id}.{mac}"

    def job_of_token(self, token: str) -> str | None:
        """The job a token was made for, or None when it is not one of this node's tokens."""
        job_id, _, _mac = token.rpartition(".")
        if not job_id or not hmac.compare_digest(self.job_token(job_id), token):
            return None
        return job_id


def node_secret(data_dir: Path, name: str) -> bytes:
    """A random secret of this node's, made on first use and kept in `data_dir/secrets/`."""
    path = data_dir / "secrets" / f"{name}.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
        os.replace(tmp, path)
    return path.read_bytes()
