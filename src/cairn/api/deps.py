"""Shared FastAPI dependencies, as `Annotated` types: each hands a route or a page one façade
of the node the app serves (`NodeServices`), never the node itself.

Each takes the request, so that what is not a route (`render.page`, `viewer_of`) can ask for
the same façade.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from eth_account.signers.local import LocalAccount
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cairn.api.services import NodeServices, NodeSettings
from cairn.assets.detail import AssetDetails
from cairn.assets.market import Market
from cairn.assets.service import AssetService
from cairn.assets.uploads import Uploads
from cairn.compute.jobs import JobService
from cairn.core.errors import Unauthorized
from cairn.core.licensing import Use
from cairn.data.service import DataService, LicenceGate
from cairn.economy.access import ContentAccess
from cairn.economy.accounts import Accounts
from cairn.economy.network import Network
from cairn.economy.service import Economy
from cairn.identity.siwe import SiweAuth
from cairn.serve.apps import Apps
from cairn.serve.downloads import ModelDownloads
from cairn.serve.gateway import Gateway
from cairn.serve.validation import ReceiptValidator
from cairn.web.csrf import SESSION_COOKIE

_bearer = HTTPBearer(auto_error=False, description="A session token from POST /api/v1/auth/signin")


def _services(request: Request) -> NodeServices:
    """What the app serves (`create_app` put it there)."""
    services: NodeServices = request.app.state.services
    return services


def get_settings(request: Request) -> NodeSettings:
    """The node's configuration as the faces read it."""
    return _services(request).settings


SettingsDep = Annotated[NodeSettings, Depends(get_settings)]


def get_demo_status(request: Request) -> str | None:
    """What seeding the demo community is doing, if it is."""
    return _services(request).demo_status


DemoStatusDep = Annotated[str | None, Depends(get_demo_status)]


def get_auth(request: Request) -> SiweAuth:
    """Sign-In with Ethereum: nonces, and the sessions signed-in accounts hold."""
    return _services(request).auth


AuthDep = Annotated[SiweAuth, Depends(get_auth)]


def get_network(request: Request) -> Network:
    """The chain the node uses: its facts, fees, gas estimates and the transaction relay."""
    return _services(request).network


NetworkDep = Annotated[Network, Depends(get_network)]


def get_accounts(request: Request) -> Accounts:
    """The node's accounts and what any address holds."""
    return _services(request).accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


def session_address(
    auth: AuthDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The signed-in account's address, from a `Bearer` session token."""
    if credentials is None:
        raise Unauthorized(
            "sign in first: POST /api/v1/auth/signin, then send 'Authorization: Bearer <token>'"
        )
    return auth.resolve(credentials.credentials)


SessionAddress = Annotated[str, Depends(session_address)]


def session_signer(accounts: AccountsDep, address: SessionAddress) -> LocalAccount:
    """The signed-in account's key, when this node holds it unlocked."""
    return accounts.signer(address)


SessionSigner = Annotated[LocalAccount, Depends(session_signer)]


def maybe_session_address(
    auth: AuthDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The signed-in account, or None for an anonymous caller (a bad token is still refused)."""
    if credentials is None:
        return None
    return auth.resolve(credentials.credentials)


MaybeSessionAddress = Annotated[str | None, Depends(maybe_session_address)]


def reader_address(
    auth: AuthDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """Who reads: a `Bearer` session, else the web app's session cookie (links in its pages).

    Only for reads: a cookie never authorises a change through the API.
    """
    if credentials is not None:
        return auth.resolve(credentials.credentials)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return auth.resolve(token)
    except Unauthorized:
        return None


ReaderAddress = Annotated[str | None, Depends(reader_address)]


def get_data(request: Request) -> DataService:
    """The data domain's façade: datasets, contributions, reviews, anchoring and export."""
    return _services(request).data


DataDep = Annotated[DataService, Depends(get_data)]


def get_economy(request: Request) -> Economy:
    """The economy's façade: keys, balances, prices, receipts, epochs, licences and bounties."""
    return _services(request).economy


EconomyDep = Annotated[Economy, Depends(get_economy)]


def export_gate(economy: EconomyDep) -> LicenceGate:
    """The check that a reader may export a dataset's records: its licence, if it has one."""
    return partial(economy.licences.require, Use.EXPORT)


ExportGate = Annotated[LicenceGate, Depends(export_gate)]


def get_access(request: Request) -> ContentAccess:
    """Who may read a stored blob, and its bytes for those who may."""
    return _services(request).access


AccessDep = Annotated[ContentAccess, Depends(get_access)]


def get_assets(request: Request) -> AssetService:
    """The registry of datasets, models and apps."""
    return _services(request).assets


AssetsDep = Annotated[AssetService, Depends(get_assets)]


def get_market(request: Request) -> Market:
    """The marketplace's listings."""
    return _services(request).market()


MarketDep = Annotated[Market, Depends(get_market)]


def get_asset_details(request: Request, market: MarketDep) -> AssetDetails:
    """What an asset page shows of one asset."""
    return _services(request).asset_details(market)


AssetDetailsDep = Annotated[AssetDetails, Depends(get_asset_details)]


def get_jobs(request: Request) -> JobService:
    """The compute domain's façade: training jobs and the providers' work on them."""
    return _services(request).jobs


JobsDep = Annotated[JobService, Depends(get_jobs)]


def get_uploads(request: Request) -> Uploads:
    """Uploads of blobs: whole in one request body, or resumable, in chunks."""
    return _services(request).uploads


UploadsDep = Annotated[Uploads, Depends(get_uploads)]


def get_gateway(request: Request) -> Gateway:
    """The serving domain's façade: the models and apps it serves, metered calls to them."""
    return _services(request).gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def get_validator(request: Request) -> ReceiptValidator:
    """Receipts' transcripts replayed on their models."""
    return _services(request).validator


ValidatorDep = Annotated[ReceiptValidator, Depends(get_validator)]


def get_apps(request: Request) -> Apps:
    """Apps: build (retrieval index, checks, a trial question), publish, list and describe."""
    return _services(request).apps


AppsDep = Annotated[Apps, Depends(get_apps)]


def get_model_downloads(request: Request) -> ModelDownloads:
    """A model's weights as one tar, for a reader its licences allow."""
    return _services(request).model_downloads


ModelDownloadsDep = Annotated[ModelDownloads, Depends(get_model_downloads)]
