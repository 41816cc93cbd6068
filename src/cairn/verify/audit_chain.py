"""What `cairn audit` reads: the chain's events through any RPC, and public blobs by CID.

Nothing here trusts the node: the chain is read through its own JSON-RPC, every blob is checked
against its CID when it arrives, and the node is only a place to fetch bytes from (any node, or
a folder of blobs, serves as well).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from web3 import Web3

from cairn.assets.service import Asset
from cairn.core.cid import CID
from cairn.core.errors import CairnError, InvalidInput, NotFound
from cairn.core.evm import checksum
from cairn.core.policy import AssetKind, RevenueSplit

LOG_CHUNK = 5_000  # blocks per eth_getLogs call
CONTRACTS = (
    "RevenueDistributor",
    "ContributionLedger",
    "AssetRegistry",
    "LicenseToken",
    "DataBounty",
    "JobEscrow",
)
OPTIONAL = ("PrepaidVault",)  # a deployment made before it has none

BlobReader = Callable[[str], Any]  # CID -> its JSON value; NotFound/Forbidden when it cannot


@dataclass(frozen=True)
class FundedEpoch:
    """An `EpochFunded` event of RevenueDistributor."""

    epoch: int
    root: str
    amount: int
    document: str  # the CID the funder named
    funder: str
    block: int


@dataclass(frozen=True)
class AnchoredBatch:
    """An `Anchored` event of ContributionLedger."""

    asset_id: int
    index: int
    root: str
    count: int
    cid: str
    by: str
    block: int


@dataclass(frozen=True)
class Sale:
    """A `LicenceBought` event of LicenseToken."""

    asset_id: int
    paid: int
    treasury: str
    block: int


def hex_of(value: Any) -> str:
    """A bytes32 event argument as 0x-hex."""
    return "0x" + bytes(value).hex()


class AuditChain:
    """Cairn's events, read once from the deployment block, and asset facts at any block."""

    def __init__(
        self, w3: Web3, contracts: Mapping[str, tuple[str, list[dict[str, Any]]]], start: int
    ) -> None:
        missing = [name for name in CONTRACTS if name not in contracts]
        if missing:
            raise InvalidInput(f"audit: the deployment lacks {', '.join(missing)}")
        self.w3 = w3
        self.start = start
        self.head = int(w3.eth.block_number)
        names = [*CONTRACTS, *(name for name in OPTIONAL if name in contracts)]
        self.address = {name: Web3.to_checksum_address(contracts[name][0]) for name in names}
        self.contract = {
            name: w3.eth.contract(address=self.address[name], abi=contracts[name][1])
            for name in names
        }
        self._logs: dict[tuple[str, str], list[Any]] = {}
        self._sales: dict[tuple[str, int], Sale] | None = None  # by (transaction, log index)

    def logs(self, contract: str, event: str) -> list[Any]:
        """Every log of one event, in chain order (read once)."""
        key = (contract, event)
        if contract not in self.contract:  # an optional contract this deployment lacks
            return []
        if key not in self._logs:
            found: list[Any] = []
            kind = getattr(self.contract[contract].events, event)
            for lo in range(self.start, self.head + 1, LOG_CHUNK):
                hi = min(lo + LOG_CHUNK - 1, self.head)
                found += kind.get_logs(from_block=lo, to_block=hi)
            found.sort(key=lambda log: (log["blockNumber"], log["logIndex"]))
            self._logs[key] = found
        return self._logs[key]

    def funded_epochs(self) -> list[FundedEpoch]:
        """Every epoch funded on RevenueDistributor, in order."""
        return [
            FundedEpoch(
                epoch=int(log["args"]["epoch"]),
                root=hex_of(log["args"]["root"]),
                amount=int(log["args"]["amount"]),
                document=str(log["args"]["tree_cid"]),
                funder=checksum(log["args"]["funder"]),
                block=int(log["blockNumber"]),
            )
            for log in self.logs("RevenueDistributor", "EpochFunded")
        ]

    def anchored(self, asset_id: int, root: str, before: int | None = None) -> AnchoredBatch | None:
        """The batch anchored under `asset_id` with `root` (by block `before`, if given)."""
        for batch in self.batches(asset_id, before):
            if batch.root.lower() == root.lower():
                return batch
        return None

    def batches(self, asset_id: int, before: int | None = None) -> list[AnchoredBatch]:
        """The batches anchored under `asset_id`, in order (up to block `before`)."""
        out = []
        for log in self.logs("ContributionLedger", "Anchored"):
            args = log["args"]
            if int(args["asset_id"]) != asset_id:
                continue
            if before is not None and int(log["blockNumber"]) > before:
                break
            out.append(
                AnchoredBatch(
                    asset_id=asset_id,
                    index=int(args["batch_index"]),
                    root=hex_of(args["root"]),
                    count=int(args["count"]),
                    cid=str(args["batch_cid"]),
                    by=checksum(args["anchored_by"]),
                    block=int(log["blockNumber"]),
                )
            )
        return out

    def sale(self, tx_hash: str, log_index: int) -> Sale | None:
        """The licence sale logged at (`tx_hash`, `log_index`), if there is one."""
        if self._sales is None:
            self._sales = {}
            for log in self.logs("LicenseToken", "LicenceBought"):
                args = log["args"]
                where = (log["transactionHash"].to_0x_hex().lower(), int(log["logIndex"]))
                self._sales[where] = Sale(
                    asset_id=int(args["asset_id"]),
                    paid=int(args["paid"]),
                    treasury=checksum(args["treasury"]),
                    block=int(log["blockNumber"]),
                )
        return self._sales.get((tx_hash.lower(), log_index))

    def owner_at(self, asset_id: int, block: int) -> str:
        """Who owned `asset_id` at the end of `block` (from its ERC-721 transfers)."""
        owner = None
        for log in self.logs("AssetRegistry", "Transfer"):
            if int(log["blockNumber"]) > block:
                break
            _, receiver, token = list(log["args"].values())
            if int(token) == asset_id:
                owner = checksum(receiver)
        if owner is None:
            raise NotFound(f"asset {asset_id} was not registered by block {block}")
        return owner

    def metadata_at(self, asset_id: int, block: int) -> str:
        """The metadata CID `asset_id` had at the end of `block`."""
        logs = self.logs("AssetRegistry", "AssetRegistered") + self.logs(
            "AssetRegistry", "MetadataUpdated"
        )
        cid = None
        for log in sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"])):
            if int(log["blockNumber"]) > block:
                break
            if int(log["args"]["asset_id"]) == asset_id:
                cid = str(log["args"]["metadata_cid"])
        if cid is None:
            raise NotFound(f"asset {asset_id} was not registered by block {block}")
        return cid

    def asset_at(self, asset_id: int, block: int, blobs: BlobReader) -> Asset:
        """An asset as it stood at `block`: its owner and metadata then; its kind, parents and
        split, which never change."""
        raw = self.contract["AssetRegistry"].functions.get_asset(asset_id).call()
        kind, _, licence, parents, split, registered_at = raw
        metadata = self.metadata_at(asset_id, block)
        try:
            name = str(blobs(metadata).get("name", ""))
        except CairnError:
            name = ""
        return Asset(
            asset_id=asset_id,
            kind=AssetKind(kind).label,
            owner=self.owner_at(asset_id, block),
            name=name,
            description="",
            metadata_cid=metadata,
            licence=licence,
            parents=[int(p) for p in parents],
            split=RevenueSplit(*(int(s) for s in split)).as_dict(),
            registered_at=int(registered_at),
            block_number=block,
            tx_hash="",
        )

    def bounty_before(self, bounty_id: int, block: int, log_index: int) -> tuple[int, int, int]:
        """A bounty's (per_record, per_review, remaining) just before the log at (`block`,
        `log_index`): its budget and top-ups less every batch it paid before."""
        position = (block, log_index)
        opened = [
            log
            for log in self.logs("DataBounty", "BountyOpened")
            if int(log["args"]["bounty_id"]) == bounty_id
        ]
        if not opened:
            raise NotFound(f"bounty {bounty_id} was never opened")
        args = opened[0]["args"]
        remaining = int(args["budget"])
        for event, sign in (("BountyToppedUp", 1), ("BatchPaid", -1)):
            for log in self.logs("DataBounty", event):
                if int(log["args"]["bounty_id"]) != bounty_id:
                    continue
                if (int(log["blockNumber"]), int(log["logIndex"])) < position:
                    remaining += sign * int(log["args"]["amount"])
        return int(args["per_record"]), int(args["per_review"]), remaining

    def batch_paid(self, epoch: int) -> Any | None:
        """The `BatchPaid` log that funded distributor epoch `epoch`, if a bounty did."""
        for log in self.logs("DataBounty", "BatchPaid"):
            if int(log["args"]["epoch"]) == epoch:
                return log
        return None


def http_blobs(node_url: str, *, timeout: float = 30.0) -> BlobReader:
    """Read public blobs from a node's `GET /api/v1/blobs/{cid}`, checking each against its CID
    (a node that answers other bytes is caught, not believed)."""
    client = httpx.Client(base_url=node_url.rstrip("/"), timeout=timeout)
    cache: dict[str, Any] = {}

    def read(cid: str) -> Any:
        if cid in cache:
            return cache[cid]
        expected = CID.parse(cid)
        try:
            answer = client.get(f"/api/v1/blobs/{cid}")
        except httpx.HTTPError as exc:
            raise NotFound(f"blob {cid}: the node at {node_url} did not answer ({exc})") from exc
        if answer.status_code != 200:
            raise NotFound(f"blob {cid}: the node answered {answer.status_code}")
        if CID.of_bytes(answer.content) != expected:
            raise InvalidInput(f"blob {cid}: the node answered bytes with another CID")
        try:
            cache[cid] = json.loads(answer.content)
        except ValueError as exc:
            raise InvalidInput(f"blob {cid} is not JSON") from exc
        return cache[cid]

    return read
