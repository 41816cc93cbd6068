"""What the faces are served by: the façades of the node they serve, and the settings they read.

`cairn.node.Node` satisfies `NodeServices`; the app holds it, and `cairn.api.deps` hands each
route or page the one façade it needs, never the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cairn.api.background import Scheduled
from cairn.assets.detail import AssetDetails
from cairn.assets.market import Market
from cairn.assets.service import AssetService
from cairn.assets.uploads import Uploads
from cairn.compute.jobs import JobService
from cairn.data.service import DataService
from cairn.economy.access import ContentAccess
from cairn.economy.accounts import Accounts
from cairn.economy.network import Network
from cairn.economy.service import Economy
from cairn.identity.siwe import SiweAuth
from cairn.serve.apps import Apps
from cairn.serve.downloads import ModelDownloads
from cairn.serve.gateway import Gateway
from cairn.serve.validation import ReceiptValidator


@dataclass(frozen=True)
class NodeSettings:
    """The node's configuration as the faces read it."""

    dev: bool  # a development node: dev accounts, unencrypted, for loopback only
    host: str  # where the node serves: a sign-in message names it when a request does not
    port: int
    secure_cookies: bool  # the node is served over HTTPS (behind a proxy): cookies are Secure


class NodeServices(Protocol):
    """The façades and settings a node serves its API and web app with."""

    @property
    def settings(self) -> NodeSettings: ...

    @property
    def demo_status(self) -> str | None:
        """What seeding the demo community is doing, if it is."""
        ...

    @property
    def scheduler(self) -> Scheduled: ...

    @property
    def auth(self) -> SiweAuth: ...

    @property
    def network(self) -> Network: ...

    @property
    def accounts(self) -> Accounts: ...

    @property
    def economy(self) -> Economy: ...

    @property
    def access(self) -> ContentAccess: ...

    @property
    def data(self) -> DataService: ...

    @property
    def assets(self) -> AssetService: ...

    @property
    def uploads(self) -> Uploads: ...

    @property
    def validator(self) -> ReceiptValidator:
        """Replays receipts' transcripts on their models."""
        ...

    @property
    def jobs(self) -> JobService: ...

    @property
    def gateway(self) -> Gateway: ...

    @property
    def apps(self) -> Apps: ...

    @property
    def model_downloads(self) -> ModelDownloads: ...

    def market(self) -> Market:
        """The marketplace's listings, for one request (they cache one page's figures)."""
        ...

    def asset_details(self, market: Market) -> AssetDetails:
        """What an asset page shows of one asset, for one request."""
        ...
