"""The composition root: build adapters from configuration and hand them to the domains."""

from __future__ import annotations

import gc
import logging
from functools import partial
from pathlib import Path

from eth_account.signers.local import LocalAccount

from cairn.assets.content import ContentRefs, node_secret
from cairn.assets.service import AssetService
from cairn.assets.uploads import MiB, Uploads
from cairn.chain.anvil import free_port
from cairn.chain.backends import ChainBackend, open_backend
from cairn.chain.client import ChainClient
from cairn.chain.contracts import Chain
from cairn.chain.cursors import check_cursors, forget_cursors, record_transaction
from cairn.chain.deployment import load_or_deploy
from cairn.compute.jobs import JobService
from cairn.compute.superlink import SuperLink
from cairn.config import NodeConfig, remembered_chain
from cairn.core.errors import ConfigError, NotFound
from cairn.data.service import DataService
from cairn.db.engine import Database
from cairn.economy.access import ContentAccess
from cairn.economy.bounties import BountyBook
from cairn.economy.licences import LicenceBook
from cairn.economy.service import Economy, Schedule
from cairn.folder_lock import FolderLock
from cairn.identity.keystore import Keystore
from cairn.identity.signers import Signers
from cairn.identity.siwe import SiweAuth
from cairn.serve.apps import Apps
from cairn.serve.gateway import Gateway, Upstream
from cairn.store.base import BlobStore
from cairn.store.local import LocalBlobStore
from cairn.train.base_models import BaseModels
from cairn.train.catalog import ModelCatalog

log = logging.getLogger("cairn.node")

ETHER = 10**18
TOKEN = 10**18
OPERATOR = "operator"
GATEWAY = "gateway"
DEPOSIT_CONFIRMATIONS = 12  # blocks before a deposit on a real chain is credited  # the treasury of prepaid balances and the signer of usage receipts
GC_THRESHOLD = 20_000
DEV_ETHER = 100 * ETHER  # gas money for each dev account
DEV_TOKENS = 1_000 * TOKEN  # CAIRN minted to each dev account on a fresh dev node


class Node:
    """A running Cairn node: chain, store, index and the domain services on top."""

    def __init__(self, config: NodeConfig) -> None:
        # A node keeps millions of small long-lived objects (near-duplicate indexes); collecting
        # young objects less often keeps the cyclic collector from re-walking them constantly.
        gc.set_threshold(GC_THRESHOLD, 20, 20)
        self.config = config
        self.demo_status: str | None = None  # what seeding the demo community is doing, if it is
        self.data_dir = config.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.folder_lock = FolderLock(self.data_dir)  # one node per data folder
        self.folder_lock.acquire()
        try:
            self.chain_spec = remembered_chain(self.data_dir, config.chain)
            self.db = Database(config.index_url)
            self.db.migrate()
            self.store = self._open_store()
            self.keystore = Keystore(self.data_dir / "accounts")
            self.signers = Signers(self.keystore, config.password)
            self.backend: ChainBackend = open_backend(
                self.chain_spec,
                self.data_dir,
                anvil_port=config.anvil_port,
                lock_fd=self.folder_lock.fd,
            )
        except BaseException:
            self.folder_lock.release()
            raise
        try:
            self.client = ChainClient(self.backend, on_receipt=partial(record_transaction, self.db))
            self.operator = self._node_account(OPERATOR)
            deployment, fresh = load_or_deploy(
                self.client,
                self.operator,
                self.data_dir / "chain" / f"deployment-{self.client.chain_id}.json",
                self.data_dir / "chain" / "build",
            )
            # A new chain starts a new index; a known one must still have what the index read.
            if fresh:
                forget_cursors(self.db)
            else:
                check_cursors(self.db, self.client)
            self.chain = Chain(self.client, deployment)
            refs = ContentRefs(self.db, self.store, node_secret(self.data_dir, "content"))
            self.assets = AssetService(self.chain, self.store, self.db, refs)
            self.uploads = Uploads(
                self.data_dir / "uploads",
                self.store,
                refs,
                chunk_size=config.upload_chunk_mb * MiB,
                quota=config.upload_quota_mb * MiB,
                per_hour=config.uploads_per_hour,
            )
            self.data = DataService(self.chain, self.store, self.db, self.assets, self.operator)
            if fresh:
                refs.reset()
                self.data.reset_index()
                self.assets.reset_index()
            domains = {
                f"{config.host}:{config.port}",
                f"localhost:{config.port}",
                *config.public_domains,
            }
            self.auth = SiweAuth(self.db, domains=domains, chain_id=self.client.chain_id)
            if config.dev:
                self._ensure_dev_accounts(fresh)
            self.base_models = BaseModels(
                self.assets, self.chain.registry.address, self.data_dir / "chain"
            )
            if config.base_models:
                self._register_base_models()
            self.catalog = ModelCatalog(
                self.assets, self.store, self.base_models, self.data_dir / "models"
            )
            self.superlink = SuperLink(
                self.data_dir / "flower",
                host=config.host,
                fleet_port=config.fleet_port,
                control_port=config.control_port or free_port(),
                serverappio_port=config.serverappio_port or free_port(),
            )
            self.gateway_account = self._node_account(GATEWAY)
            self.licences = LicenceBook(
                self.db, self.chain, self.assets, self.data.anchoring, self.gateway_account.address
            )
            self._point_licence_payments_at_the_treasury()
            self.access = ContentAccess(refs, self.licences, self.assets)
            self.assets.on_indexed = self.access.claim_asset
            self.data.reviews.admit = self.access.admit_reviewer
            self.access.claim_existing_models()
            self.jobs = JobService(
                db=self.db,
                store=self.store,
                chain=self.chain,
                assets=self.assets,
                data=self.data,
                catalog=self.catalog,
                superlink=self.superlink,
                operator=self.operator,
                signers=self.signers,
                licences=self.licences,
                jobs_dir=self.data_dir / "jobs",
                node_url=config.base_url,
            )
            self.economy = Economy(
                db=self.db,
                store=self.store,
                chain=self.chain,
                assets=self.assets,
                anchoring=self.data.anchoring,
                gateway=self.gateway_account,
                licences=self.licences,
                bounties=BountyBook(self.db, self.store, self.chain, self.assets, self.operator),
                schedule=Schedule(epoch_seconds=config.epoch_seconds),
                confirmations=DEPOSIT_CONFIRMATIONS if self.backend.kind == "rpc" else 0,
                free_calls_per_minute=config.free_calls_per_minute,
            )
            if fresh:
                self.economy.reset_index()
            self.gateway = Gateway(
                self.catalog,
                self.economy.meter,
                memory_budget=config.model_memory_mb * 2**20,
                upstreams=tuple(Upstream.parse(u) for u in config.upstreams),
                upstream_api_key=config.upstream_api_key,
                llama_cpp=config.llama_cpp,
            )
            self.apps = Apps(
                self.assets,
                self.store,
                self.data.anchoring,
                self.licences,
                self.gateway,
                self.data_dir / "apps",
            )
        except BaseException:
            self.backend.close()
            self.folder_lock.release()
            raise

    def _open_store(self) -> BlobStore:
        if self.config.s3_bucket:
            from cairn.store.s3 import S3BlobStore

            return S3BlobStore(
                self.config.s3_bucket,
                endpoint_url=self.config.s3_endpoint,
                region=self.config.s3_region,
            )
        return LocalBlobStore(self.data_dir / "blobs")

    def _node_account(self, label: str) -> LocalAccount:
        """One of the node's own accounts: the operator (deploys contracts, mints on dev chains,
        pays relayed gas) or the gateway (holds deposits, signs receipts, funds epochs)."""
        try:
            info = self.keystore.find_by_label(label)
        except NotFound:
            if self.config.dev:
                info = self.keystore.create(None, label=label, dev=True)
            elif self.config.password:
                info = self.keystore.create(self.config.password, label=label)
            else:
                raise ConfigError(
                    f"the node needs a password for its {label} account: set CAIRN_PASSWORD, "
                    "or start a development node with --dev"
                ) from None
        if not info.dev and not self.config.password:
            raise ConfigError(
                f"set CAIRN_PASSWORD to unlock the node's {label} account {info.address}"
            )
        account = self.signers.hold(
            self.keystore.unlock(info.address, None if info.dev else self.config.password)
        )
        if self.backend.can_fund and self.client.balance(account.address) < 10 * ETHER:
            self.backend.fund(account.address, 1_000 * ETHER)
        elif label == OPERATOR and self.client.balance(account.address) == 0:
            raise ConfigError(
                f"the operator account {account.address} has no ether on {self.chain_spec}: "
                "fund it to pay for deploying Cairn's contracts"
            )
        elif self.client.balance(account.address) == 0:
            log.warning(
                "the %s account %s has no ether: fund it to anchor receipts and settle epochs",
                label,
                account.address,
            )
        return account

    def _point_licence_payments_at_the_treasury(self) -> None:
        """Licence payments go to the gateway's treasury, which settles them each epoch."""
        licences = self.chain.licences
        if licences.treasury() == self.gateway_account.address:
            return
        if licences.owner() != self.operator.address:
            log.warning(
                "licence payments go to %s, not to this node's treasury %s: this node will not "
                "settle licence revenue",
                licences.treasury(),
                self.gateway_account.address,
            )
            return
        licences.set_treasury(self.operator, self.gateway_account.address)

    def _ensure_dev_accounts(self, fresh: bool) -> None:
        """Create and fund the dev accounts; they are unencrypted, so say so loudly."""
        log.warning(
            "DEV NODE: accounts %s are stored UNENCRYPTED in %s; never use them for real value",
            ", ".join(self.config.dev_accounts),
            self.keystore.folder,
        )
        for label in self.config.dev_accounts:
            created = False
            try:
                info = self.keystore.find_by_label(label)
            except NotFound:
                info = self.keystore.create(None, label=label, dev=True)
                created = True
            if not info.dev:
                continue
            account = self.signers.get(info.address)
            if self.backend.can_fund and self.client.balance(account.address) < ETHER:
                self.backend.fund(account.address, DEV_ETHER)
            # Tokens once per account and deployment: a restart must not print money.
            if fresh or created:
                self.chain.token.mint(self.operator, account.address, DEV_TOKENS)

    def _register_base_models(self) -> None:
        """Register the packaged base models; a missing package is a warning, not a failure."""
        try:
            for name, asset_id in self.base_models.register_all(self.operator).items():
                log.info("base model %s is asset %d", name, asset_id)
        except NotFound as exc:
            log.warning("base models not registered: %s", exc.message)

    @property
    def rpc_url(self) -> str | None:
        """The JSON-RPC URL wallets can use, when the chain has one."""
        return self.backend.rpc_url

    def start_compute(self) -> list[str]:
        """Start the Flower SuperLink and resume the jobs that were running; returns their ids."""
        self.superlink.start()
        return self.jobs.resume()

    def close(self) -> None:
        """Stop the SuperLink and the chain backend, release the index and the data folder."""
        self.superlink.stop()
        self.backend.close()
        self.db.close()
        self.folder_lock.release()


def open_node(data_dir: Path, **settings: object) -> Node:
    """A node on `data_dir` with settings from the environment and `settings` (tests, CLI)."""
    return Node(NodeConfig.from_env(data_dir=data_dir, **settings))
