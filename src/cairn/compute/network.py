"""The compute network as a provider sees it: where its worker connects, what it must stake, and
where its stake stands in JobEscrow. Token amounts are decimal strings in smallest units."""

from __future__ import annotations

from dataclasses import dataclass

from cairn.chain.contracts import Chain
from cairn.chain.escrow import StakeStatus
from cairn.compute.superlink import SuperLink


@dataclass(frozen=True)
class ComputeInfo:
    """Where providers' workers connect, and what a provider must stake."""

    fleet_port: int
    fleet_address: str  # host:port of the SuperLink's Fleet API
    superlink_running: bool
    escrow: str  # JobEscrow's address
    min_stake: str


@dataclass(frozen=True)
class ProviderStake:
    """A provider's stake and state in JobEscrow (zeros if it never registered)."""

    account: str
    registered: bool
    active: bool
    status: StakeStatus  # at `chain_time`
    stake: str
    endpoint: str
    withdraw_after: int  # chain time; 0 unless a withdrawal was requested
    unbonding_period: int  # seconds
    chain_time: int  # the newest block's time, which the escrow goes by
    open_jobs: int  # jobs that lock the stake


def compute_info(superlink: SuperLink, chain: Chain) -> ComputeInfo:
    """Where providers connect and what they stake."""
    return ComputeInfo(
        fleet_port=superlink.fleet_port,
        fleet_address=superlink.fleet_address,
        superlink_running=superlink.running,
        escrow=chain.escrow.address,
        min_stake=str(chain.escrow.min_stake()),
    )


def provider_stake(chain: Chain, account: str) -> ProviderStake:
    """`account`'s stake and state in JobEscrow now."""
    escrow = chain.escrow
    record = escrow.provider(account)
    now = chain.client.block_time()
    return ProviderStake(
        account=record.account,
        registered=record.active or record.stake > 0,
        active=record.active,
        status=record.status(now),
        stake=str(record.stake),
        endpoint=record.endpoint,
        withdraw_after=record.withdraw_after,
        unbonding_period=escrow.unbonding_period(),
        chain_time=now,
        open_jobs=record.open_jobs,
    )
