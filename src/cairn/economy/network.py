"""The chain a node uses, as a wallet or a monitor sees it: which chain it is, the block it has
reached, Cairn's contracts on it, the fees and gas a transaction needs, and a relay that sends a
transaction signed elsewhere to one of Cairn's contracts.

A face reads the chain through `Network` (and money, the payment token among it, through
`Accounts`); it never opens the chain client or the deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.assets.service import AssetService
from cairn.chain.contracts import Chain
from cairn.core.errors import InvalidInput
from cairn.core.evm import checksum
from cairn.economy.accounts import Accounts, Transaction


@dataclass(frozen=True)
class ChainStatus:
    """Which chain the node uses and the newest block it sees."""

    backend: str  # memory, anvil or rpc
    chain_id: int
    block_number: int


@dataclass(frozen=True)
class CairnContract:
    """One of Cairn's contracts on the chain."""

    address: str
    abi: list[dict[str, Any]]  # as the compiler wrote it


@dataclass(frozen=True)
class ChainFacts(ChainStatus):
    """The chain, where a wallet reaches it, and Cairn's contracts on it."""

    rpc_url: str | None  # None for the in-process chain
    operator: str  # the node operator's address
    deployed_at_block: int
    contracts: dict[str, CairnContract]  # by name


@dataclass(frozen=True)
class Fees:
    """EIP-1559 fees, in wei, that get a transaction into the next block."""

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


class Network:
    """The node's chain and Cairn's contracts on it; transactions signed elsewhere relayed."""

    def __init__(
        self, chain: Chain, *, operator: str, assets: AssetService, accounts: Accounts
    ) -> None:
        self.chain = chain
        self.operator = operator
        self.assets = assets  # indexes what a relayed transaction registered
        self.accounts = accounts  # decodes a relayed transaction's events

    @property
    def chain_id(self) -> int:
        """The chain's id (read once, when the node opened the chain)."""
        return self.chain.client.chain_id

    def status(self) -> ChainStatus:
        """The chain backend, its id and the newest block."""
        client = self.chain.client
        return ChainStatus(
            backend=client.backend.kind,
            chain_id=client.chain_id,
            block_number=client.block_number(),
        )

    def facts(self) -> ChainFacts:
        """The chain's status, its JSON-RPC URL, and every Cairn contract's address and ABI."""
        deployment = self.chain.deployment
        return ChainFacts(
            **vars(self.status()),
            rpc_url=self.chain.client.backend.rpc_url,
            operator=self.operator,
            deployed_at_block=deployment.block,
            contracts={
                name: CairnContract(address=c.address, abi=c.abi)
                for name, c in deployment.contracts.items()
            },
        )

    def fees(self) -> Fees:
        """EIP-1559 fee parameters that get a transaction into the next block."""
        fees = self.chain.client.fee_params()
        return Fees(fees["maxFeePerGas"], fees["maxPriorityFeePerGas"])

    def estimate(self, sender: str, to: str, data: str, value: int) -> int:
        """A gas limit for a call to a Cairn contract; a call that would revert is a
        `ChainError` with the reason."""
        target = checksum(to)
        if target not in self.chain.addresses:
            raise InvalidInput("only calls to Cairn's own contracts can be estimated here")
        tx: dict[str, Any] = {"from": checksum(sender), "to": target, "data": data, "value": value}
        return self.chain.client.simulate(tx, "call")

    def relay(self, raw: str) -> Transaction:
        """Send a transaction signed elsewhere to one of Cairn's contracts, once a simulation
        shows it would not revert (one that would is refused unsent, its nonce unused)."""
        receipt = self.chain.client.send_raw(raw, allowed_targets=self.chain.addresses)
        self.assets.sync()
        return self.accounts.transaction(receipt)
