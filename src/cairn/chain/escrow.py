"""Typed wrapper for JobEscrow: provider stakes, job budgets, work settlement, payouts, slashing.

A job's life on chain: a builder funds it (`create_job`), a coordinator enlists providers
(locking their stakes), then settles it with the Merkle root of (provider, work units) leaves;
each provider claims its share with a proof, and after the reclaim time the builder takes back
the rounding dust and anything unclaimed. Roots and proofs come from
`cairn.core.merkle.StandardMerkleTree` over ["address", "uint256"].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.types import TxReceipt

from cairn.chain.token import Token
from cairn.chain.wrapper import ContractWrapper
from cairn.core.evm import checksum, to_bytes32
from cairn.core.merkle import Node

WORK_LEAF = ("address", "uint256")
"""The leaf encoding of a job's work tree: (provider, work units)."""


class JobState(IntEnum):
    """A job's state; the numbers are JobEscrow's `job_state` values."""

    NONE = 0
    OPEN = 1
    SETTLED = 2
    CANCELLED = 3
    CLOSED = 4


class Enlistment(IntEnum):
    """Whether a provider took part in a job; the numbers are JobEscrow's `enlistment` values."""

    NONE = 0
    ENLISTED = 1  # the job locks the provider's stake
    RELEASED = 2


class StakeStatus(StrEnum):
    """A provider's stake: taking jobs, unbonding, or free to leave."""

    NONE = "none"  # never staked, or withdrew everything
    ACTIVE = "active"  # takes jobs; `request_withdrawal` starts unbonding
    UNBONDING = "unbonding"  # takes no new jobs; may leave from `withdraw_after` on
    LOCKED = "locked"  # unbonded, but a job it took part in still locks it
    WITHDRAWABLE = "withdrawable"  # `withdraw_stake` pays it back now


@dataclass(frozen=True)
class OnChainProvider:
    """A compute provider as JobEscrow stores it."""

    account: str
    stake: int
    endpoint: str
    active: bool
    withdraw_after: int  # 0 unless a withdrawal was requested
    open_jobs: int  # jobs that lock the stake

    def status(self, now: int) -> StakeStatus:
        """Where the stake stands at chain time `now` (what `withdraw_stake` would say)."""
        if self.active:
            return StakeStatus.ACTIVE
        if self.withdraw_after == 0:  # only `request_withdrawal` makes an active provider inactive
            return StakeStatus.NONE
        if now < self.withdraw_after:
            return StakeStatus.UNBONDING
        return StakeStatus.LOCKED if self.open_jobs else StakeStatus.WITHDRAWABLE


@dataclass(frozen=True)
class OnChainJob:
    """A job as JobEscrow stores it (recipe and report CIDs live in its events)."""

    job_id: str
    builder: str
    state: JobState
    budget: int
    paid: int  # paid to providers so far
    model_asset: int
    deadline: int
    reclaim_after: int
    root: str  # zero until settled
    total_work: int  # zero until settled


class Escrow(ContractWrapper):
    """JobEscrow: job budgets, provider stakes, payouts by work, slashing."""

    name = "JobEscrow"

    # -- providers -----------------------------------------------------------------------

    def register_provider(
        self, provider: LocalAccount, token: Token, stake: int, endpoint: str
    ) -> TxReceipt:
        """Approve and stake `stake` tokens, registering `provider` at `endpoint`."""
        token.approve_if_short(provider, self.address, stake)
        fn = self.contract.functions.register_provider(stake, endpoint)
        return self.client.transact(provider, fn)

    def add_stake(self, provider: LocalAccount, token: Token, amount: int) -> TxReceipt:
        """Approve and add `amount` tokens to an active provider's stake."""
        token.approve_if_short(provider, self.address, amount)
        return self.client.transact(provider, self.contract.functions.add_stake(amount))

    def set_endpoint(self, provider: LocalAccount, endpoint: str) -> TxReceipt:
        """Move an active provider's worker to `endpoint`."""
        return self.client.transact(provider, self.contract.functions.set_endpoint(endpoint))

    def request_withdrawal(self, provider: LocalAccount) -> tuple[int, TxReceipt]:
        """Stop taking jobs and start unbonding; returns when the stake may leave."""
        receipt = self.client.transact(provider, self.contract.functions.request_withdrawal())
        event = self.first_event(receipt, "WithdrawalRequested")
        return int(event["withdraw_after"]), receipt

    def withdraw_stake(self, provider: LocalAccount) -> tuple[int, TxReceipt]:
        """Take the whole stake back after unbonding; returns the amount."""
        receipt = self.client.transact(provider, self.contract.functions.withdraw_stake())
        return int(self.first_event(receipt, "StakeWithdrawn")["amount"]), receipt

    def provider(self, account: str) -> OnChainProvider:
        """The provider's record (all zero for an account that never registered)."""
        address = checksum(account)
        stake, endpoint, active, withdraw_after = self.client.call(
            self.contract.functions.provider(address)
        )
        return OnChainProvider(
            account=address,
            stake=int(stake),
            endpoint=str(endpoint),
            active=bool(active),
            withdraw_after=int(withdraw_after),
            open_jobs=self.open_jobs(address),
        )

    def open_jobs(self, account: str) -> int:
        """How many jobs lock the provider's stake."""
        return int(self.client.call(self.contract.functions.open_jobs(checksum(account))))

    # -- jobs ----------------------------------------------------------------------------

    def create_job(
        self,
        builder: LocalAccount,
        token: Token,
        job_id: str | bytes,
        budget: int,
        model_asset: int,
        recipe_cid: str,
        deadline: int,
    ) -> TxReceipt:
        """Approve and fund a new job whose builder is `builder`."""
        token.approve_if_short(builder, self.address, budget)
        fn = self.contract.functions.create_job(
            to_bytes32(job_id), budget, model_asset, recipe_cid, deadline
        )
        return self.client.transact(builder, fn)

    def cancel_job(self, builder: LocalAccount, job_id: str | bytes) -> tuple[int, TxReceipt]:
        """Cancel an unsettled job; returns the refunded budget."""
        fn = self.contract.functions.cancel_job(to_bytes32(job_id))
        receipt = self.client.transact(builder, fn)
        return int(self.first_event(receipt, "JobCancelled")["refund"]), receipt

    def enlist(self, coordinator: LocalAccount, job_id: str | bytes, provider: str) -> TxReceipt:
        """Enlist `provider` in an open job, locking its stake (coordinators only)."""
        fn = self.contract.functions.enlist(to_bytes32(job_id), checksum(provider))
        return self.client.transact(coordinator, fn)

    def release(self, sender: LocalAccount, job_id: str | bytes, provider: str) -> TxReceipt:
        """End a finished job's lock on `provider`'s stake (anyone may send it)."""
        fn = self.contract.functions.release(to_bytes32(job_id), checksum(provider))
        return self.client.transact(sender, fn)

    def settle_job(
        self,
        coordinator: LocalAccount,
        job_id: str | bytes,
        root: Node,
        total_work: int,
        report_cid: str,
    ) -> TxReceipt:
        """Fix the job's work root and total work (coordinators only, once per job)."""
        fn = self.contract.functions.settle_job(
            to_bytes32(job_id), to_bytes32(root), total_work, report_cid
        )
        return self.client.transact(coordinator, fn)

    def claim_payout(
        self,
        sender: LocalAccount,
        job_id: str | bytes,
        provider: str,
        work: int,
        proof: Sequence[Node],
    ) -> tuple[int, TxReceipt]:
        """Pay `provider` its share for `work` units (anyone may send it); returns the amount."""
        fn = self.contract.functions.claim_payout(
            to_bytes32(job_id), checksum(provider), work, [to_bytes32(p) for p in proof]
        )
        receipt = self.client.transact(sender, fn)
        return int(self.first_event(receipt, "PayoutClaimed")["amount"]), receipt

    def reclaim_remainder(
        self, builder: LocalAccount, job_id: str | bytes
    ) -> tuple[int, TxReceipt]:
        """Close the job and take back what it did not pay out; returns the amount."""
        fn = self.contract.functions.reclaim_remainder(to_bytes32(job_id))
        receipt = self.client.transact(builder, fn)
        return int(self.first_event(receipt, "RemainderReclaimed")["amount"]), receipt

    def job(self, job_id: str | bytes) -> OnChainJob:
        """The job's record; an unknown job is a `ChainError`."""
        key = to_bytes32(job_id)
        raw = self.client.call(self.contract.functions.job(key))
        builder, state, budget, paid, model, deadline, reclaim_after, root, total_work = raw
        return OnChainJob(
            job_id=HexBytes(key).to_0x_hex(),
            builder=str(builder),
            state=JobState(state),
            budget=int(budget),
            paid=int(paid),
            model_asset=int(model),
            deadline=int(deadline),
            reclaim_after=int(reclaim_after),
            root=HexBytes(root).to_0x_hex(),
            total_work=int(total_work),
        )

    def job_state(self, job_id: str | bytes) -> JobState:
        """The job's state; `JobState.NONE` for an unknown job."""
        return JobState(self.client.call(self.contract.functions.job_state(to_bytes32(job_id))))

    def payout(self, job_id: str | bytes, work: int) -> int:
        """What `work` units of a settled job pay (0 before settlement)."""
        return int(self.client.call(self.contract.functions.payout(to_bytes32(job_id), work)))

    def is_claimed(self, job_id: str | bytes, provider: str) -> bool:
        """Whether `provider` has been paid for the job."""
        fn = self.contract.functions.is_claimed(to_bytes32(job_id), checksum(provider))
        return bool(self.client.call(fn))

    def enlistment(self, job_id: str | bytes, provider: str) -> Enlistment:
        """Whether `provider` was enlisted in the job, and whether it was released."""
        fn = self.contract.functions.enlistment(to_bytes32(job_id), checksum(provider))
        return Enlistment(self.client.call(fn))

    # -- slashing ------------------------------------------------------------------------

    def slash(
        self,
        coordinator: LocalAccount,
        provider: str,
        amount: int,
        job_id: str | bytes,
        evidence_cid: str,
    ) -> tuple[int, TxReceipt]:
        """Move up to `amount` of the provider's stake to the job's builder; returns the amount."""
        fn = self.contract.functions.slash(
            checksum(provider), amount, to_bytes32(job_id), evidence_cid
        )
        receipt = self.client.transact(coordinator, fn)
        return int(self.first_event(receipt, "Slashed")["amount"]), receipt

    # -- roles and parameters ------------------------------------------------------------

    def owner(self) -> str:
        """The escrow's owner, who names coordinators and sets the parameters."""
        return str(self.client.call(self.contract.functions.owner()))

    def is_coordinator(self, account: str) -> bool:
        """Whether `account` may enlist, settle and slash."""
        return bool(self.client.call(self.contract.functions.is_coordinator(checksum(account))))

    def set_coordinator(self, owner: LocalAccount, account: str, allowed: bool) -> TxReceipt:
        """Grant or revoke the coordinator role (owner only)."""
        fn = self.contract.functions.set_coordinator(checksum(account), allowed)
        return self.client.transact(owner, fn)

    def transfer_ownership(self, owner: LocalAccount, new_owner: str) -> TxReceipt:
        """Hand the escrow's ownership to `new_owner`."""
        fn = self.contract.functions.transfer_ownership(checksum(new_owner))
        return self.client.transact(owner, fn)

    def token(self) -> str:
        """The address of the token the escrow pays in."""
        return str(self.client.call(self.contract.functions.token()))

    def registry(self) -> str:
        """The address of the AssetRegistry whose models jobs train."""
        return str(self.client.call(self.contract.functions.registry()))

    def min_stake(self) -> int:
        """The least stake a provider needs to register and be enlisted."""
        return int(self.client.call(self.contract.functions.min_stake()))

    def set_min_stake(self, owner: LocalAccount, amount: int) -> TxReceipt:
        """Set the minimum stake (owner only)."""
        return self.client.transact(owner, self.contract.functions.set_min_stake(amount))

    def unbonding_period(self) -> int:
        """Seconds between a withdrawal request and the withdrawal."""
        return int(self.client.call(self.contract.functions.unbonding_period()))

    def set_unbonding_period(self, owner: LocalAccount, seconds: int) -> TxReceipt:
        """Set the unbonding period (owner only, at most 365 days)."""
        return self.client.transact(owner, self.contract.functions.set_unbonding_period(seconds))

    def grace_period(self) -> int:
        """Seconds after a job's deadline (and its settlement) before the builder may reclaim."""
        return int(self.client.call(self.contract.functions.grace_period()))

    def set_grace_period(self, owner: LocalAccount, seconds: int) -> TxReceipt:
        """Set the grace period for jobs created from now on (owner only, at most 365 days)."""
        return self.client.transact(owner, self.contract.functions.set_grace_period(seconds))
