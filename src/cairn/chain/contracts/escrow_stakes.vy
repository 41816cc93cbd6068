# pragma version ~=0.4.0
"""
@title Cairn job escrow: provider stakes
@custom:contract-name escrow_stakes
@license Apache-2.0
@notice The compute providers of `JobEscrow`: each registers with an
        endpoint and a stake of at least `min_stake`, may add to it,
        and leaves by asking to withdraw, waiting out the unbonding
        period and taking its stake back once no job locks it.
@dev A module of `JobEscrow`, which initializes it; the enlistment
     module counts the jobs that lock a stake (`open_jobs`) and the
     slashing module takes from it.
"""


from . import escrow_owner
from . import escrow_token


uses: (escrow_owner, escrow_token)


# @dev A provider's record. `withdraw_after` is zero unless a
# withdrawal was requested; `open_jobs` counts the jobs that lock
# its stake.
struct Provider:
    stake: uint256
    withdraw_after: uint256
    open_jobs: uint256
    active: bool
    endpoint: String[256]


# @dev Each provider's record.
_providers: HashMap[address, Provider]


# @dev Emitted when a provider registers (or registers again).
event ProviderRegistered:
    provider: indexed(address)
    stake: uint256
    endpoint: String[256]


# @dev Emitted when a provider moves its endpoint.
event EndpointSet:
    provider: indexed(address)
    endpoint: String[256]


# @dev Emitted when a provider adds `amount` to its stake.
event StakeAdded:
    provider: indexed(address)
    amount: uint256
    stake: uint256


# @dev Emitted when a provider asks to leave; its stake may be
# withdrawn from `withdraw_after` on.
event WithdrawalRequested:
    provider: indexed(address)
    withdraw_after: uint256


# @dev Emitted when a provider takes its stake back.
event StakeWithdrawn:
    provider: indexed(address)
    amount: uint256


@external
@nonreentrant
def register_provider(stake: uint256, endpoint: String[256]):
    """
    @notice Registers the caller as a compute provider reachable at
            `endpoint`, pulling `stake` tokens from it.
    @dev The caller must have approved this contract for `stake`. A
         provider that asked to withdraw may register again before
         withdrawing: that cancels the request, and the new stake adds
         to what it still holds.
    @param stake The tokens to stake; with what the caller still has
           staked, at least `min_stake`.
    @param endpoint Where the provider's worker is reached; nonempty.
    """
    assert not self._providers[msg.sender].active, "cairn_escrow: already registered"
    assert len(endpoint) != 0, "cairn_escrow: empty endpoint"
    total: uint256 = self._providers[msg.sender].stake + stake
    assert total >= escrow_owner.min_stake, "cairn_escrow: stake below minimum"

    self._providers[msg.sender].stake = total
    self._providers[msg.sender].withdraw_after = 0
    self._providers[msg.sender].active = True
    self._providers[msg.sender].endpoint = endpoint
    escrow_token._pull(msg.sender, stake)
    log ProviderRegistered(provider=msg.sender, stake=total, endpoint=endpoint)


@external
@nonreentrant
def add_stake(amount: uint256):
    """
    @notice Adds `amount` tokens to the caller's stake.
    @dev The caller must be an active provider and have approved this
         contract for `amount`.
    @param amount The tokens to add; nonzero.
    """
    assert self._providers[msg.sender].active, "cairn_escrow: not an active provider"
    assert amount != 0, "cairn_escrow: zero amount"
    stake: uint256 = self._providers[msg.sender].stake + amount
    self._providers[msg.sender].stake = stake
    escrow_token._pull(msg.sender, amount)
    log StakeAdded(provider=msg.sender, amount=amount, stake=stake)


@external
def set_endpoint(endpoint: String[256]):
    """
    @notice Moves the caller's worker to `endpoint`.
    @param endpoint The new endpoint; nonempty.
    """
    assert self._providers[msg.sender].active, "cairn_escrow: not an active provider"
    assert len(endpoint) != 0, "cairn_escrow: empty endpoint"
    self._providers[msg.sender].endpoint = endpoint
    log EndpointSet(provider=msg.sender, endpoint=endpoint)


@external
def request_withdrawal() -> uint256:
    """
    @notice Stops the caller taking new jobs and starts the unbonding
            period, after which `withdraw_stake` returns its stake.
    @dev The stake can still be slashed while it unbonds.
    @return uint256 The time from which the stake may be withdrawn.
    """
    assert self._providers[msg.sender].active, "cairn_escrow: not an active provider"
    withdraw_after: uint256 = block.timestamp + escrow_owner.unbonding_period
    self._providers[msg.sender].active = False
    self._providers[msg.sender].withdraw_after = withdraw_after
    log WithdrawalRequested(provider=msg.sender, withdraw_after=withdraw_after)
    return withdraw_after


@external
@nonreentrant
def withdraw_stake() -> uint256:
    """
    @notice Pays the caller its whole stake, once its unbonding period
            has passed and no job locks it.
    @custom:security Checks, then effects, then the token transfer.
    @return uint256 The tokens withdrawn.
    """
    withdraw_after: uint256 = self._providers[msg.sender].withdraw_after
    assert withdraw_after != 0, "cairn_escrow: no withdrawal requested"
    assert block.timestamp >= withdraw_after, "cairn_escrow: stake still unbonding"
    assert self._providers[msg.sender].open_jobs == 0, "cairn_escrow: stake locked in a job"

    amount: uint256 = self._providers[msg.sender].stake
    self._providers[msg.sender].stake = 0
    self._providers[msg.sender].withdraw_after = 0
    if amount != 0:
        escrow_token._pay(msg.sender, amount)
    log StakeWithdrawn(provider=msg.sender, amount=amount)
    return amount


@external
@view
def provider(account: address) -> (uint256, String[256], bool, uint256):
    """
    @notice The record of provider `account`.
    @param account The provider.
    @return uint256 Its stake.
    @return String[256] Its endpoint.
    @return bool Whether it is active (registered and not withdrawing).
    @return uint256 When its stake may be withdrawn; 0 if not requested.
    """
    return (
        self._providers[account].stake,
        self._providers[account].endpoint,
        self._providers[account].active,
        self._providers[account].withdraw_after,
    )


@external
@view
def open_jobs(account: address) -> uint256:
    """
    @notice The number of jobs that lock provider `account`'s stake.
    @param account The provider.
    @return uint256 The number of jobs it is enlisted in, not released.
    """
    return self._providers[account].open_jobs
