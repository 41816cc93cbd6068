"""Who may read a stored blob: the same gate as the asset it belongs to.

A blob is served when one of its references (`cairn.assets.content`) admits the reader:

- public: anyone;
- dataset N: whoever may export dataset N (`LicenceBook.require(Use.EXPORT, N, reader)`);
- model N: whoever may download model N;
- job J: J's builder, or a worker presenting J's token (the node hands it to the job's
  workers with their round's task);
- account A, upload by A: A only.

So every byte of a licensed dataset or model (records, batches, version manifests, retrieval
passages, weights, a job's training set and checkpoints) needs what its export or download
needs, whichever path names its CID. A reference is only added for what the node wrote itself
or for what the claimant may already read: registering an asset whose metadata names someone
else's gated blob gives nobody new access to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from cairn.assets.content import BlobRef, ContentRefs, Scope
from cairn.assets.service import Asset, AssetService
from cairn.chain.models import SyncCursor
from cairn.core.errors import CairnError, Forbidden, NotFound
from cairn.core.licensing import Use
from cairn.economy.licences import LicenceBook

log = logging.getLogger("cairn.access")
BACKFILL_MARK = "content-refs-models"  # a chain_sync row: legacy model weights were claimed


def model_weights(metadata: dict[str, Any]) -> str | None:
    """The manifest CID a model's metadata names as its weights, if any."""
    extra = metadata.get("extra")
    model = extra.get("model") if isinstance(extra, dict) else None
    if isinstance(model, dict) and isinstance(model.get("weights"), str):
        return str(model["weights"])
    return None


class ContentAccess:
    """Decide reads of blobs by their references; claim the blobs an indexed asset names."""

    def __init__(self, refs: ContentRefs, licences: LicenceBook, assets: AssetService) -> None:
        self.refs = refs
        self.licences = licences
        self.assets = assets

    def check(self, cid: str, reader: str | None, job_token: str | None = None) -> BlobRef:
        """The reference that admits `reader` to blob `cid`.

        `NotFound` when no reference admits the reader and none is a licence it could buy (the
        same answer as for a blob the node does not have, so CIDs cannot be probed);
        `LicenceRequired` naming the licence to buy when the blob belongs to a gated asset.
        """
        token_job = self.refs.job_of_token(job_token) if job_token else None
        refused: Forbidden | None = None
        for ref in self.refs.of(cid):
            try:
                if self._admits(ref, reader, token_job):
                    return ref
            except Forbidden as exc:
                refused = refused or exc
        if refused is not None:
            raise refused
        raise NotFound(f"no blob {cid} in this node's store")

    def read(self, cid: str, reader: str | None, job_token: str | None = None) -> Iterator[bytes]:
        """The bytes of blob `cid` for a reader `check` admits, streamed and checked against
        the CID as they are read; `NotFound` as well when the store lacks the blob."""
        self.check(cid, reader, job_token)
        if not self.refs.store.has(cid):
            raise NotFound(f"no blob {cid} in this node's store")
        return self.refs.store.open(cid)

    def may_read(self, cid: str, reader: str | None) -> bool:
        """Whether `reader` may read blob `cid` now."""
        try:
            self.check(cid, reader)
        except (NotFound, Forbidden):
            return False
        return True

    def _admits(self, ref: BlobRef, reader: str | None, token_job: str | None) -> bool:
        if ref.scope is Scope.PUBLIC:
            return True
        if ref.scope in (Scope.DATASET, Scope.MODEL):
            use = Use.EXPORT if ref.scope is Scope.DATASET else Use.DOWNLOAD
            self.licences.require(use, int(ref.key), reader)
            return True
        if ref.scope is Scope.JOB and token_job is not None and token_job == ref.key:
            return True
        return (
            reader is not None and ref.account is not None and ref.account.lower() == reader.lower()
        )

    def claim_existing_models(self) -> int:
        """Once per index: claim the weights of models registered before blobs had references.

        Until then every blob was public, so giving those weights their model's gate takes
        nothing from anyone; afterwards a model claims only what its registrant may read.
        Returns how many models were claimed.
        """
        with self.refs.db.session() as session:
            if session.get(SyncCursor, BACKFILL_MARK) is not None:
                return 0
        claimed = 0
        models: list[Asset] = []
        while page := self.assets.list(kind="model", limit=1000, offset=len(models)):
            models += page
        for asset in models:
            weights = model_weights(self.assets.metadata(asset.metadata_cid))
            if weights is None or not self.refs.store.has(weights):
                continue
            try:
                cids = self.refs.folder_cids(weights)
            except CairnError:
                continue
            if self.refs.unreferenced(cids) == sorted(cids):
                self.refs.add(cids, Scope.MODEL, asset.asset_id)
                claimed += 1
        with self.refs.db.session() as session:
            session.merge(SyncCursor(name=BACKFILL_MARK, last_block=0))
        return claimed

    def admit_reviewer(self, dataset_id: int, account: str) -> None:
        """Refuse review tasks of a licensed dataset to whom its owner has not admitted.

        A reviewer sees whole records, so a licensed dataset admits its owner and curators and
        holders of a licence to it (and `Reviews` admits the addresses its review policy lists
        before asking); an open dataset admits anyone.
        """
        try:
            self.licences.require(Use.EXPORT, dataset_id, account)
            return
        except Forbidden as refused:
            if self.licences.chain.registry.can_anchor(dataset_id, account):
                return
            raise Forbidden(
                f"dataset {dataset_id} is licensed, so its owner chooses its reviewers: hold a "
                f"licence to it, or ask the owner to list {account} in the review policy's "
                f"reviewers or make it a curator ({refused.message})"
            ) from None

    # -- claims: what an indexed asset's metadata names ----------------------------------------

    def claim_asset(self, asset: Asset, metadata: dict[str, Any]) -> None:
        """Reference an asset's metadata (public) and a model's weights (the model's).

        Claimed for the account that registered the asset, and only where it may already read
        the blob: metadata it uploaded, weights it uploaded or trained.
        """
        self._claim([asset.metadata_cid], Scope.PUBLIC, "", asset)
        weights = model_weights(metadata)
        if asset.kind == "model" and weights is not None:
            try:
                cids = self.refs.folder_cids(weights)
            except CairnError as exc:
                log.warning("model %d names weights the node cannot read: %s", asset.asset_id, exc)
                return
            self._claim(cids, Scope.MODEL, str(asset.asset_id), asset)

    def _claim(self, cids: list[str], scope: Scope, key: str, asset: Asset) -> None:
        if not all(self.refs.store.has(c) for c in cids):
            return  # stored elsewhere (a wallet's own IPFS): nothing to serve from here
        claimant = asset.owner
        refused = [c for c in cids if not self.may_read(c, claimant)]
        if refused:
            log.warning(
                "asset %d names %d blob(s) its owner %s may not read (e.g. %s): not served as "
                "part of it",
                asset.asset_id,
                len(refused),
                claimant,
                refused[0],
            )
            return
        self.refs.add(cids, scope, key)
