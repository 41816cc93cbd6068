"""The composition root: build adapters from configuration and hand them to the domains.

Over 400 lines because it is the one place that knows every adapter and every domain: `Node`
wires them (no side effects) and `bootstrap` deploys, funds and registers (idempotent), and
each reads best beside the other.
"""

from __future__ import annotations

import gc
import logging
from functools import partial
from pathlib import Path

from eth_account.signers.local import LocalAccount

from cairn.api.services import NodeSettings
from cairn.assets.content import ContentRefs, node_secret
from cairn.assets.detail import AssetDetails
from cairn.assets.market import Market
from cairn.assets.service import AssetService
from cairn.assets.uploads import MiB, Uploads
from cairn.chain.anvil import free_port
from cairn.chain.backends import ChainBackend
from cairn.chain.client import ChainClient
from cairn.chain.contracts import Chain
from cairn.chain.cursors import check_cursors, forget_cursors, record_transaction
from cairn.chain.deployment import Deployment, is_live, load_or_deploy, save_deployment
from cairn.chain.open import open_backend
from cairn.chain.vault import Vault, deploy_vault
from cairn.compute.jobs import JobService
from cairn.compute.superlink import SuperLink
from cairn.config import NodeConfig, remembered_chain
from cairn.core.amounts import TOKEN
from cairn.core.errors import ConfigError, NotFound
from cairn.data.service import DataService
from cairn.db.engine import Database
from cairn.economy.access import ContentAccess
from cairn.economy.accounts import Accounts
from cairn.economy.bounties import BountyBook
from cairn.economy.licences import LicenceBook
from cairn.economy.network import Network
from cairn.economy.service import Economy, Schedule
from cairn.folder_lock import FolderLock
from cairn.identity.keystore import GATEWAY, OPERATOR, Keystore
from cairn.identity.signers import Signers
from cairn.identity.siwe import SiweAuth
from cairn.scheduler import Scheduler, node_tasks
from cairn.serve.apps import Apps
from cairn.serve.downloads import ModelDownloads
from cairn.serve.gateway import Gateway
from cairn.serve.resolver import Upstream
from cairn.serve.validation import ReceiptValidator
from cairn.store.base import BlobStore
from cairn.store.local import LocalBlobStore
from cairn.train.base_models import BaseModels
from cairn.train.catalog import ModelCatalog

log = logging.getLogger("cairn.node")

ETHER = 10**18  # wei per ether: gas money, not CAIRN
DEPOSIT_CONFIRMATIONS = 12  # blocks before a deposit on a real chain is credited
GC_THRESHOLD = 20_000
DEV_ETHER = 100 * ETHER  # gas money for each dev account
DEV_TOKENS = 1_000 * TOKEN  # CAIRN minted to each dev account on a fresh dev node
VAULT_NOTICE = 7 * 86_400  # seconds a withdrawal from the vault waits, by default
DEV_VAULT_NOTICE = 300  # on a dev node
PENDING_WAIT = 300.0  # seconds a starting node waits for its own transactions still unmined
GATEWAY_GAS = ETHER // 100  # what the operator sends a gateway with no gas, to register its asset


class Node:
    """The composition root's container: adapters built from configuration, wired into the
    domain services. Opening a node changes nothing: no transaction, no write to the index or
    the store. It needs a data folder and a chain that `bootstrap` has made ready.

    `backend` hands over a chain backend already open (bootstrap's, or a test's memory chain
    reverted to a snapshot); `lock` the data folder's lock already held. The node closes both.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        backend: ChainBackend | None = None,
        lock: FolderLock | None = None,
    ) -> None:
        # A node keeps millions of small long-lived objects (near-duplicate indexes); collecting
        # young objects less often keeps the cyclic collector from re-walking them constantly.
        gc.set_threshold(GC_THRESHOLD, 20, 20)
        self.config = config
        self.demo_status: str | None = None  # what seeding the demo community is doing, if it is
        self.data_dir = config.data_dir
        if not self.data_dir.is_dir():
            raise ConfigError(
                f"{self.data_dir} is not a node's data folder: start the node with "
                "`cairn node start`, which makes it"
            )
        if lock is None:
            lock = FolderLock(self.data_dir)  # one node per data folder
            lock.acquire()
        self.folder_lock = lock
        try:
            self.chain_spec = remembered_chain(self.data_dir, config.chain)
            self.db = Database(config.index_url)
            self.store = self._open_store()
            self.keystore = Keystore(self.data_dir / "accounts")
            self.signers = Signers(self.keystore, config.password)
            self.backend: ChainBackend = backend or open_backend(
                self.chain_spec,
                self.data_dir,
                anvil_port=config.anvil_port,
                lock_fd=self.folder_lock.fd,
            )
        except BaseException:
            if backend is not None:
                backend.close()
            self.folder_lock.release()
            raise
        try:
            if not self.db.is_current():
                raise ConfigError(
                    f"the index of {self.data_dir} is not up to date: start the node with "
                    "`cairn node start`, which brings it up to date"
                )
            self.client = ChainClient(self.backend, on_receipt=partial(record_transaction, self.db))
            saved = self._deployment_file()
            deployment = Deployment.from_json(saved.read_text()) if saved.exists() else None
            if deployment is None or not is_live(self.client, deployment):
                raise ConfigError(
                    f"Cairn's contracts are not deployed on {self.backend.description} for "
                    f"{self.data_dir}: start the node with `cairn node start`, which deploys them"
                )
            self.chain = Chain(self.client, deployment)
            self.operator = self._node_account(OPERATOR)
            self.gateway_account = self._node_account(GATEWAY)
            self._wire()
        except BaseException:
            self.backend.close()
            self.folder_lock.release()
            raise

    def _deployment_file(self) -> Path:
        return self.data_dir / "chain" / f"deployment-{self.client.chain_id}.json"

    def _wire(self) -> None:
        """Build the domain services over the adapters."""
        config = self.config
        self.refs = ContentRefs(self.db, self.store, node_secret(self.data_dir, "content"))
        self.assets = AssetService(self.chain, self.store, self.db, self.refs)
        self.uploads = Uploads(
            self.data_dir / "uploads",
            self.store,
            self.refs,
            chunk_size=config.upload_chunk_mb * MiB,
            quota=config.upload_quota_mb * MiB,
            per_hour=config.uploads_per_hour,
        )
        self.data = DataService(self.chain, self.store, self.db, self.assets, self.operator)
        self.accounts = Accounts(self.keystore, self.signers, self.chain)
        self.network = Network(
            self.chain, operator=self.operator.address, assets=self.assets, accounts=self.accounts
        )
        self.settings = NodeSettings(  # what the faces read of the configuration
            dev=config.dev,
            host=config.host,
            port=config.port,
            secure_cookies=config.secure_cookies,
        )
        domains = {
            f"{config.host}:{config.port}",
            f"localhost:{config.port}",
            *config.public_domains,
        }
        self.auth = SiweAuth(self.db, domains=domains, chain_id=self.client.chain_id)
        self.base_models = BaseModels(
            self.assets, self.chain.registry.address, self.data_dir / "chain"
        )
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
        self.licences = LicenceBook(
            self.db, self.chain, self.assets, self.data.anchoring, self.gateway_account.address
        )
        self.access = ContentAccess(self.refs, self.licences, self.assets)
        self.model_downloads = ModelDownloads(self.catalog, self.licences)
        self.assets.on_indexed = self.access.claim_asset
        self.data.reviews.admit = self.access.admit_reviewer
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
            operator=self.operator.address,
            schedule=Schedule(epoch_seconds=config.epoch_seconds),
            confirmations=DEPOSIT_CONFIRMATIONS if self.backend.kind == "rpc" else 0,
            free_calls_per_minute=config.free_calls_per_minute,
        )
        # A dataset batch anchored by hand pays its bounties at once (`Anchoring.anchor_by`).
        self.data.anchoring.pay_bounties = self.economy.bounties.pay_batch
        self.gateway = Gateway(
            self.catalog,
            self.economy.meter,
            memory_budget=config.model_memory_mb * 2**20,
            upstreams=tuple(Upstream.parse(u) for u in config.upstreams),
            upstream_api_key=config.upstream_api_key,
            llama_cpp=config.llama_cpp,
        )
        self.validator = ReceiptValidator(
            self.gateway, self.economy.receipts, self.economy.transcripts
        )
        self.scheduler = Scheduler(  # what a serving node does on its own: started by the API
            node_tasks(
                anchoring=self.data.anchoring,
                economy=self.economy,
                jobs=self.jobs,
                refs=self.refs,
                uploads=self.uploads,
                validator=self.validator,
            )
        )
        self.apps = Apps(
            self.assets,
            self.store,
            self.data.anchoring,
            self.licences,
            self.gateway,
            self.data_dir / "apps",
        )

    def market(self) -> Market:
        """The marketplace's listings, for one request (they cache one page's figures)."""
        return Market(self.db, self.store, self.assets, self.data, self.economy.prices)

    def asset_details(self, market: Market) -> AssetDetails:
        """What an asset page shows of one asset, for one request."""
        return AssetDetails(
            self.db,
            self.store,
            self.chain,
            self.assets,
            self.data,
            self.economy.epochs.lineage,
            market,
        )

    def reset_index(self) -> None:
        """Forget everything the index read from a chain: the chain behind it is a new one."""
        forget_cursors(self.db)
        self.refs.reset()
        self.data.reset_index()
        self.assets.reset_index()
        self.economy.reset_index()

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
        """One of the node's own accounts, unlocked: the operator (deploys contracts, mints on
        dev chains, pays relayed gas) or the gateway (holds deposits, signs receipts, funds
        epochs)."""
        return unlock_node_account(self.keystore, self.signers, self.config, label)

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


def unlock_node_account(
    keystore: Keystore, signers: Signers, config: NodeConfig, label: str
) -> LocalAccount:
    """The node's account `label`, unlocked and held by `signers`."""
    try:
        info = keystore.find_by_label(label)
    except NotFound:
        raise ConfigError(
            f"{config.data_dir} has no {label} account: start the node with `cairn node start`, "
            "which creates it"
        ) from None
    if not info.dev and not config.password:
        raise ConfigError(f"set CAIRN_PASSWORD to unlock the node's {label} account {info.address}")
    return signers.hold(keystore.unlock(info.address, None if info.dev else config.password))


def bootstrap(config: NodeConfig, *, backend: ChainBackend | None = None) -> Node:
    """Make `config`'s data folder and chain ready, and open the node on them.

    `backend`: a chain backend already open (the node then owns it), else the folder's own.

    In order: bring the index up to date; create the node's accounts and, on a dev chain, give
    them gas; deploy Cairn's contracts or load them (adding any a newer Cairn has), forgetting
    the index of a replaced chain or checking it against a known one; fund and mint the dev
    accounts; register the packaged base models; register the gateway's asset, deploy its
    PrepaidVault and move what the gateway holds for users into it; point licence payments at
    the vault; claim the weights of models registered before blobs had owners. Each step looks first at what is
    there, so bootstrapping a ready folder changes nothing: `cairn node start` runs it at every
    start, and the test suite once per session.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(config.data_dir)
    lock.acquire()
    try:
        chain_spec = remembered_chain(config.data_dir, config.chain)
        backend = backend or open_backend(
            chain_spec, config.data_dir, anvil_port=config.anvil_port, lock_fd=lock.fd
        )
    except BaseException:
        lock.release()
        raise
    try:
        db = Database(config.index_url)
        try:
            db.migrate()
            keystore = Keystore(config.data_dir / "accounts")
            signers = Signers(keystore, config.password)
            client = ChainClient(backend, on_receipt=partial(record_transaction, db))
            operator = _ensure_node_account(keystore, signers, config, client, OPERATOR)
            gateway = _ensure_node_account(keystore, signers, config, client, GATEWAY)
            # the node's payments sent before a crash and not yet mined: what it pays next is
            # decided from the chain's events, which must show them first
            client.await_mined([operator.address, gateway.address], PENDING_WAIT)
            _, fresh = load_or_deploy(
                client,
                operator,
                config.data_dir / "chain" / f"deployment-{client.chain_id}.json",
                config.data_dir / "chain" / "build",
            )
            if not fresh:  # a known chain must still have what the index read
                check_cursors(db, client)
            node_secret(config.data_dir, "content")
        finally:
            db.close()
    except BaseException:
        backend.close()
        lock.release()
        raise
    node = Node(config, backend=backend, lock=lock)
    try:
        if fresh:  # a new chain starts a new index
            node.reset_index()
        if config.dev:
            _ensure_dev_accounts(node, fresh)
        if config.base_models:
            _register_base_models(node)
        _hold_no_custody(node)  # registers the gateway's asset: after the base models, 1 and 2
        node.access.claim_existing_models()
    except BaseException:
        node.close()
        raise
    return node


def _ensure_node_account(
    keystore: Keystore, signers: Signers, config: NodeConfig, client: ChainClient, label: str
) -> LocalAccount:
    """The node's account `label`, created if missing; on a dev chain it gets gas money."""
    try:
        keystore.find_by_label(label)
    except NotFound:
        if config.dev:
            keystore.create(None, label=label, dev=True)
        elif config.password:
            keystore.create(config.password, label=label)
        else:
            raise ConfigError(
                f"the node needs a password for its {label} account: set CAIRN_PASSWORD, "
                "or start a development node with --dev"
            ) from None
    account = unlock_node_account(keystore, signers, config, label)
    backend = client.backend
    if backend.can_fund and client.balance(account.address) < 10 * ETHER:
        backend.fund(account.address, 1_000 * ETHER)
    elif label == OPERATOR and client.balance(account.address) == 0:
        raise ConfigError(
            f"the operator account {account.address} has no ether on {backend.description}: "
            "fund it to pay for deploying Cairn's contracts"
        )
    elif client.balance(account.address) == 0:
        log.warning(
            "the %s account %s has no ether: fund it to anchor receipts and settle epochs",
            label,
            account.address,
        )
    return account


def _hold_no_custody(node: Node) -> None:
    """Deploy the node's PrepaidVault (once its gateway's asset exists) if it has none, point
    licence payments at it, and move what the gateway holds for users into it."""
    if node.chain.vault is None:
        config, gateway = node.config, node.gateway_account.address
        if node.client.balance(gateway) == 0:  # it registers its asset: the operator pays
            if node.client.balance(node.operator.address) < 2 * GATEWAY_GAS:
                raise ConfigError(
                    f"the gateway account {gateway} has no ether on {node.backend.description}: "
                    "fund it to register its asset and deploy the vault that holds users' "
                    "deposits"
                )
            node.client.send(
                node.operator, to=gateway, data=b"", value=GATEWAY_GAS, action="gas for the gateway"
            )
            log.info(
                "sent the gateway %s %d wei of gas money from the operator", gateway, GATEWAY_GAS
            )
        notice = config.vault_notice_seconds or (DEV_VAULT_NOTICE if config.dev else VAULT_NOTICE)
        deployment = node.chain.deployment
        address = deploy_vault(
            node.client,
            node.operator,
            deployment,
            gateway,
            node.economy.gateway_asset(),
            notice,
            node.data_dir / "chain" / "build",
        )
        save_deployment(node._deployment_file(), deployment)
        node.chain.vault = Vault(node.client, deployment)
        log.info("deployed PrepaidVault %s (notice period %d s)", address, notice)
    # licence payments first, so that every sale the move does not count pays the vault
    _point_licence_payments_at_the_vault(node)
    node.economy.hold_no_custody()


def _point_licence_payments_at_the_vault(node: Node) -> None:
    """Licence payments go to the vault's revenue pool, which each epoch pays out."""
    licences, vault = node.chain.licences, node.chain.vault
    assert vault is not None
    if licences.treasury() == vault.address:
        return
    if licences.owner() != node.operator.address:
        log.warning(
            "licence payments go to %s, not to this node's vault %s: this node will not "
            "settle licence revenue",
            licences.treasury(),
            vault.address,
        )
        return
    licences.set_treasury(node.operator, vault.address)


def _ensure_dev_accounts(node: Node, fresh: bool) -> None:
    """Create and fund the dev accounts; they are unencrypted, so say so loudly."""
    config = node.config
    log.warning(
        "DEV NODE: accounts %s are stored UNENCRYPTED in %s; never use them for real value",
        ", ".join(config.dev_accounts),
        node.keystore.folder,
    )
    for label in config.dev_accounts:
        created = False
        try:
            info = node.keystore.find_by_label(label)
        except NotFound:
            info = node.keystore.create(None, label=label, dev=True)
            created = True
        if not info.dev:
            continue
        account = node.signers.get(info.address)
        if node.backend.can_fund and node.client.balance(account.address) < ETHER:
            node.backend.fund(account.address, DEV_ETHER)
        # Tokens once per account and deployment: a restart must not print money.
        if fresh or created:
            node.chain.token.mint(node.operator, account.address, DEV_TOKENS)


def _register_base_models(node: Node) -> None:
    """Register the packaged base models; a missing package is a warning, not a failure."""
    try:
        for name, asset_id in node.base_models.register_all(node.operator).items():
            log.info("base model %s is asset %d", name, asset_id)
    except NotFound as exc:
        log.warning("base models not registered: %s", exc.message)


def open_node(data_dir: Path, **settings: object) -> Node:
    """Bootstrap and open a node on `data_dir` with settings from the environment and
    `settings` (tests, the demo)."""
    return bootstrap(NodeConfig.from_env(data_dir=data_dir, **settings))
