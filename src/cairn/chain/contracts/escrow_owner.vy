# pragma version ~=0.4.0
"""
@title Cairn job escrow: the owner, its coordinators and parameters
@custom:contract-name escrow_owner
@license Apache-2.0
@notice The owner of `JobEscrow`, the coordinators it names (the
        nodes that enlist providers, settle jobs and slash), and the
        three parameters it sets: the least stake a provider holds, how
        long a leaving provider's stake unbonds, and how long providers
        have to claim before a builder may reclaim.
@dev A module of `JobEscrow`, which initializes it; the stakes, jobs,
     enlistment and slashing modules use it. Every bound here exists
     so that no setting can lock stakes or budgets away for good.
"""


# @dev The longest unbonding or grace period the owner may set, so
# that no setting can lock stakes or budgets away for good.
_MAX_PERIOD: constant(uint256) = 365 * 86_400


# @dev The account that names coordinators and sets the parameters.
owner: public(address)


# @dev Whether an account may enlist providers, settle jobs and slash.
is_coordinator: public(HashMap[address, bool])


# @dev The least stake an active provider must hold to be enlisted.
min_stake: public(uint256)


# @dev Seconds between a provider's withdrawal request and the
# moment its stake may leave.
unbonding_period: public(uint256)


# @dev Seconds after a job's deadline (and at least after its
# settlement) during which only providers can take from its budget.
grace_period: public(uint256)


# @dev Emitted when the `owner` role moves to another account.
event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


# @dev Emitted when the coordinator role of `account` is granted
# (`allowed` is `True`) or revoked.
event CoordinatorSet:
    account: indexed(address)
    allowed: bool


# @dev Emitted when the owner changes `min_stake`.
event MinStakeSet:
    amount: uint256


# @dev Emitted when the owner changes `unbonding_period`.
event UnbondingPeriodSet:
    seconds: uint256


# @dev Emitted when the owner changes `grace_period`.
event GracePeriodSet:
    seconds: uint256


@deploy
def __init__():
    """
    @notice Makes the deployer the owner and the first coordinator;
            the unbonding period starts at one day, the grace period at
            seven days, the minimum stake at zero.
    """
    self.owner = msg.sender
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)
    self.is_coordinator[msg.sender] = True
    log CoordinatorSet(account=msg.sender, allowed=True)
    self.unbonding_period = 86_400
    log UnbondingPeriodSet(seconds=86_400)
    self.grace_period = 7 * 86_400
    log GracePeriodSet(seconds=7 * 86_400)


@external
def set_coordinator(account: address, allowed: bool):
    """
    @notice Grants (`allowed` is `True`) or revokes the coordinator
            role of `account`.
    @dev Only the owner may call this.
    @param account The account whose role changes; not the zero address.
    @param allowed Whether `account` coordinates jobs.
    """
    self._check_owner()
    assert account != empty(address), "cairn_escrow: coordinator is the zero address"
    self.is_coordinator[account] = allowed
    log CoordinatorSet(account=account, allowed=allowed)


@external
def set_min_stake(amount: uint256):
    """
    @notice Sets the least stake a provider must hold to register and
            to be enlisted.
    @dev Only the owner may call this. Providers already registered
         below it keep their registration but are not enlisted.
    @param amount The minimum stake.
    """
    self._check_owner()
    self.min_stake = amount
    log MinStakeSet(amount=amount)


@external
def set_unbonding_period(seconds: uint256):
    """
    @notice Sets how long a provider waits between asking to withdraw
            and withdrawing.
    @dev Only the owner may call this. Requests already made keep the
         time they were given.
    @param seconds The period; at most 365 days.
    """
    self._check_owner()
    assert seconds <= _MAX_PERIOD, "cairn_escrow: period too long"
    self.unbonding_period = seconds
    log UnbondingPeriodSet(seconds=seconds)


@external
def set_grace_period(seconds: uint256):
    """
    @notice Sets how long after a job's deadline (and at least after
            its settlement) the builder must wait to reclaim.
    @dev Only the owner may call this. A job's reclaim time is fixed
         when it is created and can only move later at settlement.
    @param seconds The period; at most 365 days.
    """
    self._check_owner()
    assert seconds <= _MAX_PERIOD, "cairn_escrow: period too long"
    self.grace_period = seconds
    log GracePeriodSet(seconds=seconds)


@external
def transfer_ownership(new_owner: address):
    """
    @notice Hands the owner role to `new_owner`.
    @dev Only the owner may call this. Coordinator roles are unchanged.
    @param new_owner The next owner; not the zero address.
    """
    self._check_owner()
    assert new_owner != empty(address), "cairn_escrow: new owner is the zero address"
    self.owner = new_owner
    log OwnershipTransferred(previous_owner=msg.sender, new_owner=new_owner)


@internal
@view
def _check_owner():
    """
    @notice Reverts unless the caller is the owner.
    """
    assert msg.sender == self.owner, "cairn_escrow: caller is not the owner"


@internal
@view
def _check_coordinator():
    """
    @notice Reverts unless the caller is a coordinator.
    """
    assert self.is_coordinator[msg.sender], "cairn_escrow: caller is not a coordinator"
