"""Datasets, models and apps: each an ERC-721 asset in AssetRegistry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cairn.api.deps import AssetsDep, SessionSigner
from cairn.api.schemas import AssetCreate, AssetPublic, AssetTransfer, AssetTransferred
from cairn.assets.service import Asset, AssetService
from cairn.core.ids import Offset, StoredId
from cairn.core.policy import RevenueSplit
from cairn.data.datasets import refuse_bare_dataset

router = APIRouter(prefix="/assets", tags=["assets"])


def public(assets: AssetService, asset: Asset) -> AssetPublic:
    """An asset with its on-chain identity."""
    return AssetPublic(**vars(asset), contract=assets.registry_address, token_id=asset.asset_id)


@router.get("", response_model=list[AssetPublic])
def list_assets(
    assets: AssetsDep,
    kind: Annotated[str | None, Query(description="dataset, model or app")] = None,
    owner: Annotated[str | None, Query(description="Owner address")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in name or description")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[AssetPublic]:
    """Registered assets, newest first."""
    found = assets.list(kind=kind, owner=owner, query=q, limit=limit, offset=offset)
    return [public(assets, a) for a in found]


@router.get("/{asset_id}", response_model=AssetPublic)
def get_asset(assets: AssetsDep, asset_id: StoredId) -> AssetPublic:
    """One asset by id."""
    return public(assets, assets.get(asset_id))


@router.post("", response_model=AssetPublic, status_code=201)
def register_asset(assets: AssetsDep, body: AssetCreate, signer: SessionSigner) -> AssetPublic:
    """Register a model or app owned by the signed-in account (whose key this node holds).

    A dataset is created with POST /datasets, which registers it with its spec.
    """
    split = RevenueSplit(body.split.owner, body.split.data, body.split.compute, body.split.upstream)
    asset = assets.register(
        signer,
        kind=refuse_bare_dataset(body.kind),
        name=body.name,
        description=body.description,
        licence=body.licence,
        parents=body.parents,
        split=split,
        extra=body.extra,
    )
    return public(assets, asset)


@router.post("/{asset_id}/transfer", response_model=AssetTransferred)
def transfer_asset(
    assets: AssetsDep, asset_id: StoredId, body: AssetTransfer, signer: SessionSigner
) -> AssetTransferred:
    """Transfer an asset of the signed-in account to another address."""
    done = assets.transfer(signer, asset_id, body.to)
    return AssetTransferred(**public(assets, done.asset).model_dump(), transfer_tx=done.tx_hash)
