"""Shared FastAPI dependencies, as `Annotated` types."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from eth_account.signers.local import LocalAccount
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cairn.assets.detail import AssetDetails
from cairn.assets.market import Market
from cairn.assets.service import AssetService
from cairn.assets.uploads import Uploads
from cairn.compute.jobs import JobService
from cairn.core.errors import Unauthorized
from cairn.core.licensing import Use
from cairn.data.service import DataService, LicenceGate
from cairn.economy.accounts import Accounts
from cairn.economy.service import Economy
from cairn.node import Node
from cairn.serve.apps import Apps
from cairn.serve.downloads import ModelDownloads
from cairn.serve.gateway import Gateway
from cairn.web.csrf import SESSION_COOKIE

_bearer = HTTPBearer(auto_error=False, description="A session token from POST /api/v1/auth/signin")


def get_node(request: Request) -> Node:
    """The node this app serves."""
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(get_node)]


def session_address(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The signed-in account's address, from a `Bearer` session token."""
    if credentials is None:
        raise Unauthorized(
            "sign in first: POST /api/v1/auth/signin, then send 'Authorization: Bearer <token>'"
        )
    return node.auth.resolve(credentials.credentials)


SessionAddress = Annotated[str, Depends(session_address)]


def session_signer(node: NodeDep, address: SessionAddress) -> LocalAccount:
    """The signed-in account's key, when this node holds it unlocked."""
    return node.signers.get(address)


SessionSigner = Annotated[LocalAccount, Depends(session_signer)]


def maybe_session_address(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The signed-in account, or None for an anonymous caller (a bad token is still refused)."""
    if credentials is None:
        return None
    return node.auth.resolve(credentials.credentials)


MaybeSessionAddress = Annotated[str | None, Depends(maybe_session_address)]


def reader_address(
    node: NodeDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """Who reads: a `Bearer` session, else the web app's session cookie (links in its pages).

    Only for reads: a cookie never authorises a change through the API.
    """
    if credentials is not None:
        return node.auth.resolve(credentials.credentials)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return node.auth.resolve(token)
    except Unauthorized:
        return None


ReaderAddress = Annotated[str | None, Depends(reader_address)]


def get_data(node: NodeDep) -> DataService:
    """The data domain's façade: datasets, contributions, reviews, anchoring and export."""
    return node.data


DataDep = Annotated[DataService, Depends(get_data)]


def export_gate(node: NodeDep) -> LicenceGate:
    """The check that a reader may export a dataset's records: its licence, if it has one."""
    return partial(node.licences.require, Use.EXPORT)


ExportGate = Annotated[LicenceGate, Depends(export_gate)]


def get_economy(node: NodeDep) -> Economy:
    """The economy's façade: keys, balances, prices, receipts, epochs, licences and bounties."""
    return node.economy


EconomyDep = Annotated[Economy, Depends(get_economy)]


def get_accounts(node: NodeDep) -> Accounts:
    """The node's accounts and what any address holds."""
    return node.accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


def get_assets(node: NodeDep) -> AssetService:
    """The registry of datasets, models and apps."""
    return node.assets


AssetsDep = Annotated[AssetService, Depends(get_assets)]


def get_market(node: NodeDep) -> Market:
    """The marketplace's listings."""
    return Market(node.db, node.store, node.assets, node.data, node.economy.prices)


MarketDep = Annotated[Market, Depends(get_market)]


def get_asset_details(node: NodeDep, market: MarketDep) -> AssetDetails:
    """What an asset page shows of one asset."""
    return AssetDetails(
        node.db,
        node.store,
        node.chain,
        node.assets,
        node.data,
        node.economy.epochs.lineage,
        market,
    )


AssetDetailsDep = Annotated[AssetDetails, Depends(get_asset_details)]


def get_jobs(node: NodeDep) -> JobService:
    """The compute domain's façade: training jobs and the providers' work on them."""
    return node.jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]


def get_uploads(node: NodeDep) -> Uploads:
    """Resumable uploads of blobs larger than one request body."""
    return node.uploads


UploadsDep = Annotated[Uploads, Depends(get_uploads)]


def get_gateway(node: NodeDep) -> Gateway:
    """The serving domain's façade: the models and apps it serves, metered calls to them."""
    return node.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def get_apps(node: NodeDep) -> Apps:
    """Apps: build (retrieval index, checks, a trial question), publish, list and describe."""
    return node.apps


AppsDep = Annotated[Apps, Depends(get_apps)]


def get_model_downloads(node: NodeDep) -> ModelDownloads:
    """A model's weights as one tar, for a reader its licences allow."""
    return node.model_downloads


ModelDownloadsDep = Annotated[ModelDownloads, Depends(get_model_downloads)]
