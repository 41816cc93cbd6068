"""Typed wrapper for DataBounty: paid data tasks on a dataset, paid per anchored batch.

A bounty's life on chain: the dataset's owner escrows a budget with a rate per accepted record
and per useful review (`open`); anyone may add to it (`top_up`). Once a batch of contributions
is anchored on the ContributionLedger, a curator pays it (`pay_batch`) with the root of an
(account, amount) tree built by `cairn.core.merkle.StandardMerkleTree` over
["address", "uint256"]: that funds one RevenueDistributor epoch, whatever the batch's size, and
contributors claim there. Closing (`close`) refunds what is left to the funder.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from cairn.chain.token import Token
from cairn.chain.wrapper import ContractWrapper
from cairn.core.evm import to_bytes32
from cairn.core.merkle import Node


@dataclass(frozen=True)
class OnChainBounty:
    """A bounty as DataBounty stores it."""

    bounty_id: int
    asset_id: int  # the dataset it pays for
    funder: str  # who escrowed the budget and gets the remainder back
    per_record: int
    per_review: int
    budget: int  # every token escrowed, top-ups included
    remaining: int  # not yet paid out; 0 once closed
    paid_out: int
    opened_at: int  # only batches anchored from then on are paid
    is_open: bool


class Bounties(ContractWrapper):
    """DataBounty: budgets that pay per record and review of each anchored batch."""

    name = "DataBounty"

    def open(
        self,
        owner: LocalAccount,
        token: Token,
        asset_id: int,
        budget: int,
        per_record: int,
        per_review: int,
    ) -> tuple[int, TxReceipt]:
        """Approve and escrow `budget` for dataset `asset_id`; returns the new bounty id."""
        token.approve_if_short(owner, self.address, budget)
        fn = self.contract.functions.open(asset_id, budget, per_record, per_review)
        receipt = self.client.transact(owner, fn)
        return int(self.first_event(receipt, "BountyOpened")["bounty_id"]), receipt

    def top_up(self, sender: LocalAccount, token: Token, bounty_id: int, amount: int) -> TxReceipt:
        """Approve and add `amount` to an open bounty's budget (anyone may)."""
        token.approve_if_short(sender, self.address, amount)
        return self.client.transact(sender, self.contract.functions.top_up(bounty_id, amount))

    def pay_batch(
        self,
        curator: LocalAccount,
        bounty_id: int,
        batch_root: Node,
        records: int,
        reviews: int,
        payout_root: Node,
        tree_cid: str,
    ) -> tuple[int, TxReceipt]:
        """Pay an anchored batch through a new distributor epoch; returns the epoch."""
        fn = self.contract.functions.pay_batch(
            bounty_id, to_bytes32(batch_root), records, reviews, to_bytes32(payout_root), tree_cid
        )
        receipt = self.client.transact(curator, fn)
        return int(self.first_event(receipt, "BatchPaid")["epoch"]), receipt

    def close(self, sender: LocalAccount, bounty_id: int) -> tuple[int, TxReceipt]:
        """Close a bounty (funder or dataset owner); returns what went back to the funder."""
        receipt = self.client.transact(sender, self.contract.functions.close(bounty_id))
        return int(self.first_event(receipt, "BountyClosed")["refunded"]), receipt

    def get(self, bounty_id: int) -> OnChainBounty:
        """The bounty's record; an unknown id is a `ChainError`."""
        raw = self.client.call(self.contract.functions.get_bounty(bounty_id))
        (
            asset_id,
            funder,
            per_record,
            per_review,
            budget,
            remaining,
            paid_out,
            opened_at,
            is_open,
        ) = raw
        return OnChainBounty(
            bounty_id=bounty_id,
            asset_id=int(asset_id),
            funder=str(funder),
            per_record=int(per_record),
            per_review=int(per_review),
            budget=int(budget),
            remaining=int(remaining),
            paid_out=int(paid_out),
            opened_at=int(opened_at),
            is_open=bool(is_open),
        )

    def count(self) -> int:
        """How many bounties have been opened (ids run from 1 to this)."""
        return int(self.client.call(self.contract.functions.bounty_count()))

    def is_batch_paid(self, bounty_id: int, batch_root: Node) -> bool:
        """Whether the bounty has paid the batch anchored by `batch_root`."""
        fn = self.contract.functions.is_batch_paid(bounty_id, to_bytes32(batch_root))
        return bool(self.client.call(fn))
