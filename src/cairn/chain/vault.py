"""Typed wrapper for PrepaidVault: users' prepaid deposits, drawn by the gateway only against
anchored spend roots, withdrawable after a notice period; so the operator holds no user money.

A vault's life on chain: a user deposits (`deposit`), or the gateway credits one with tokens it
held for them (`deposit_for`). The gateway anchors on ContributionLedger, under its own asset,
the root of a tree of (user, cumulative spend) leaves built by `spend_tree`
(`cairn.core.merkle.StandardMerkleTree` over ["address", "uint256"]), and draws from each user
what the tree says they spent beyond what it drew before (`draw`, `draw_many`); drawn tokens
wait in the vault's revenue pool until the gateway funds a RevenueDistributor epoch with them
(`fund_epoch`). The pool is whatever the vault holds beyond users' balances, so licence sales
paid to the vault (LicenseToken's treasury set to it) are revenue there too. A user leaves with `request_withdrawal`, then `withdraw` once the notice period
has passed; the gateway may still draw what the user spent meanwhile.

A vault serves one gateway and its asset, so a node deploys its own with `deploy_vault` (once
the gateway's asset exists) and records it in its deployment as "PrepaidVault".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from cairn.chain.client import ChainClient
from cairn.chain.compiler import compile_contract
from cairn.chain.deployment import DeployedContract, Deployment
from cairn.chain.token import Token
from cairn.chain.wrapper import ContractWrapper
from cairn.core.evm import checksum, to_bytes32
from cairn.core.merkle import Node, StandardMerkleTree

NAME = "PrepaidVault"
SPEND_LEAF = ["address", "uint256"]  # (user, cumulative spend)
MAX_DRAWS = 64  # users per draw_many call, as the contract bounds it
ALL = 2**128 - 1  # a withdrawal request for everything the balance will hold


@dataclass(frozen=True)
class Withdrawal:
    """A user's pending withdrawal request."""

    amount: int  # asked for; 0 for none, `ALL` for everything
    available_at: int  # block timestamp from which `withdraw` pays it


@dataclass(frozen=True)
class SpendDraw:
    """One user's entry of a spend root, as `draw_many` takes it."""

    account: str
    cumulative: int
    proof: list[str]


def spend_tree(spent: Mapping[str, int]) -> StandardMerkleTree:
    """The tree of (user, cumulative spend) leaves whose root the gateway anchors."""
    return StandardMerkleTree.of([[checksum(a), int(n)] for a, n in spent.items()], SPEND_LEAF)


def spend_draws(tree: StandardMerkleTree) -> list[SpendDraw]:
    """Every entry of a spend tree with its proof, in the tree's order."""
    return [SpendDraw(str(a), int(n), tree.get_proof(i)) for i, (a, n) in tree.entries()]


def deploy_vault(
    client: ChainClient,
    deployer: LocalAccount,
    deployment: Deployment,
    gateway: str,
    gateway_asset: int,
    notice_period: int,
    cache_dir: Path | None = None,
) -> str:
    """Deploy a vault for `gateway` over the deployment's token, ledger and distributor, and
    record it in `deployment` (the caller saves it); returns its address."""
    compiled = compile_contract(NAME, cache_dir)
    address = client.deploy(
        deployer,
        compiled.abi,
        compiled.bytecode,
        deployment.address("CairnToken"),
        deployment.address("ContributionLedger"),
        deployment.address("RevenueDistributor"),
        checksum(gateway),
        gateway_asset,
        notice_period,
    )
    deployment.contracts[NAME] = DeployedContract(address, compiled.abi, compiled.source_hash)
    return address


class Vault(ContractWrapper):
    """PrepaidVault: deposits drawn only against anchored spend, withdrawable after notice."""

    name = NAME

    def deposit(self, sender: LocalAccount, token: Token, amount: int) -> TxReceipt:
        """Approve and deposit `amount` of `sender`'s tokens to its own balance."""
        token.approve_if_short(sender, self.address, amount)
        return self.client.transact(sender, self.contract.functions.deposit(amount))

    def deposit_for(
        self, sender: LocalAccount, token: Token, account: str, amount: int
    ) -> TxReceipt:
        """Approve and deposit `amount` of `sender`'s tokens to `account`'s balance."""
        token.approve_if_short(sender, self.address, amount)
        fn = self.contract.functions.deposit_for(checksum(account), amount)
        return self.client.transact(sender, fn)

    def draw(
        self, gateway: LocalAccount, root: Node, account: str, cumulative: int, proof: list[str]
    ) -> tuple[int, TxReceipt]:
        """Draw what `account` spent up to `cumulative` beyond what was drawn (gateway only);
        returns the amount drawn."""
        fn = self.contract.functions.draw(
            to_bytes32(root), checksum(account), cumulative, [to_bytes32(p) for p in proof]
        )
        receipt = self.client.transact(gateway, fn)
        return int(self.first_event(receipt, "Drawn")["amount"]), receipt

    def draw_many(
        self, gateway: LocalAccount, root: Node, draws: Sequence[SpendDraw]
    ) -> tuple[int, TxReceipt]:
        """Draw for up to `MAX_DRAWS` users of one spend root (gateway only); a user with
        nothing new to draw or too small a balance is skipped. Returns the total drawn."""
        fn = self.contract.functions.draw_many(
            to_bytes32(root),
            [checksum(d.account) for d in draws],
            [d.cumulative for d in draws],
            [[to_bytes32(p) for p in d.proof] for d in draws],
        )
        receipt = self.client.transact(gateway, fn)
        return sum(int(e["amount"]) for e in self.events(receipt, "Drawn")), receipt

    def fund_epoch(
        self, gateway: LocalAccount, root: Node, amount: int, tree_cid: str
    ) -> tuple[int, TxReceipt]:
        """Fund a RevenueDistributor epoch from the revenue pool (gateway only); returns the
        epoch."""
        fn = self.contract.functions.fund_epoch(to_bytes32(root), amount, tree_cid)
        receipt = self.client.transact(gateway, fn)
        return int(self.first_event(receipt, "RevenueFunded")["epoch"]), receipt

    def request_withdrawal(self, sender: LocalAccount, amount: int) -> tuple[int, TxReceipt]:
        """Ask to withdraw `amount` (`ALL` for everything; 0 cancels) after the notice period;
        returns the timestamp from which `withdraw` pays."""
        fn = self.contract.functions.request_withdrawal(amount)
        receipt = self.client.transact(sender, fn)
        return int(self.first_event(receipt, "WithdrawalRequested")["available_at"]), receipt

    def withdraw(self, sender: LocalAccount) -> tuple[int, TxReceipt]:
        """Take a withdrawal whose notice has passed; returns the amount paid."""
        receipt = self.client.transact(sender, self.contract.functions.withdraw())
        return int(self.first_event(receipt, "Withdrawn")["amount"]), receipt

    def balance_of(self, account: str) -> int:
        """What `account` holds in the vault."""
        return int(self.client.call(self.contract.functions.balance_of(checksum(account))))

    def drawn(self, account: str) -> int:
        """What the gateway has drawn from `account` so far."""
        return int(self.client.call(self.contract.functions.drawn(checksum(account))))

    def pending_withdrawal(self, account: str) -> Withdrawal:
        """`account`'s withdrawal request (amount 0: none)."""
        fn = self.contract.functions.pending_withdrawal(checksum(account))
        amount, available_at = self.client.call(fn)
        return Withdrawal(int(amount), int(available_at))

    def revenue_pool(self) -> int:
        """Tokens drawn (or paid in by licence sales) and not yet paid into an epoch."""
        return int(self.client.call(self.contract.functions.revenue_pool()))

    def total_balances(self) -> int:
        """The sum of every user's balance."""
        return int(self.client.call(self.contract.functions.total_balances()))

    def total_funded(self) -> int:
        """Tokens paid into distributor epochs so far."""
        return int(self.client.call(self.contract.functions.total_funded()))

    def gateway(self) -> str:
        """The only account that may draw and fund epochs."""
        return str(self.client.call(self.contract.functions.gateway()))

    def gateway_asset(self) -> int:
        """The asset spend roots are anchored under."""
        return int(self.client.call(self.contract.functions.gateway_asset()))

    def notice_period(self) -> int:
        """Seconds between a withdrawal request and the withdrawal."""
        return int(self.client.call(self.contract.functions.notice_period()))
