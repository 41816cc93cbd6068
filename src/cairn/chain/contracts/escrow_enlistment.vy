# pragma version ~=0.4.0
"""
@title Cairn job escrow: providers' parts in jobs
@custom:contract-name escrow_enlistment
@license Apache-2.0
@notice Which providers take part in which job. A coordinator enlists
        an active provider in an open job, which locks its stake until
        the job ends and makes it slashable for the job; once the job
        is settled, cancelled or closed, or its reclaim time has
        passed, anyone releases the lock.
@dev A module of `JobEscrow`, which initializes it; the payouts module
     marks a part paid and the slashing module checks that a provider
     took part.
"""


from . import escrow_jobs
from . import escrow_owner
from . import escrow_stakes


uses: (escrow_jobs, escrow_owner, escrow_stakes)


# @dev Enlistment states, as `enlistment` returns them; 0 is a
# provider never enlisted in the job.
ENLISTED: public(constant(uint8)) = 1
RELEASED: public(constant(uint8)) = 2


# @dev Bit layout of a provider's part in a job: the enlistment state
# in bits 0..7, whether it has been paid in bit 8. An enlisted provider
# then claims by writing a slot that is already nonzero, which costs
# 2,900 gas instead of 20,000.
_STATE_MASK: constant(uint256) = (1 << 8) - 1
_CLAIMED_BIT: constant(uint256) = 1 << 8


# @dev The packed part of each provider in each job, as
# `_parts[job_id][provider]`.
_parts: HashMap[bytes32, HashMap[address, uint256]]


# @dev Emitted when a coordinator enlists a provider in a job.
event ProviderEnlisted:
    job_id: indexed(bytes32)
    provider: indexed(address)


# @dev Emitted when a job stops locking a provider's stake.
event ProviderReleased:
    job_id: indexed(bytes32)
    provider: indexed(address)


@external
def enlist(job_id: bytes32, provider: address):
    """
    @notice Enlists `provider` in open job `job_id`, which locks its
            stake until the job ends and makes it slashable for the job.
    @dev Only a coordinator may call this.
    @param job_id The job; must be open.
    @param provider An active provider holding at least `min_stake`.
    """
    escrow_owner._check_coordinator()
    head: uint256 = escrow_jobs._job_head[job_id]
    assert head != 0, "cairn_escrow: unknown job"
    assert escrow_jobs._state(head) == escrow_jobs.JOB_OPEN, "cairn_escrow: job not open"
    assert escrow_stakes._providers[provider].active, "cairn_escrow: not an active provider"
    assert (
        escrow_stakes._providers[provider].stake >= escrow_owner.min_stake
    ), "cairn_escrow: stake below minimum"
    # Claims need a settled job, so nothing else of the part is set yet.
    assert self._parts[job_id][provider] == 0, "cairn_escrow: already enlisted"

    self._parts[job_id][provider] = convert(ENLISTED, uint256)
    escrow_stakes._providers[provider].open_jobs += 1
    log ProviderEnlisted(job_id=job_id, provider=provider)


@external
def release(job_id: bytes32, provider: address):
    """
    @notice Ends the lock that job `job_id` holds on `provider`'s stake,
            once the job is settled, cancelled or closed, or its reclaim
            time has passed. Anyone may call this.
    @dev The provider stays slashable for the job while it has stake.
    @param job_id The job.
    @param provider A provider enlisted in the job and not yet released.
    """
    part: uint256 = self._parts[job_id][provider]
    assert part & _STATE_MASK == convert(ENLISTED, uint256), "cairn_escrow: not enlisted"
    head: uint256 = escrow_jobs._job_head[job_id]
    assert (
        escrow_jobs._state(head) != escrow_jobs.JOB_OPEN
        or block.timestamp >= escrow_jobs._reclaim_after(head)
    ), "cairn_escrow: job still open"

    self._parts[job_id][provider] = (part & ~_STATE_MASK) | convert(RELEASED, uint256)
    # Cannot underflow: each `ENLISTED` mark added one to the count.
    escrow_stakes._providers[provider].open_jobs = unsafe_sub(
        escrow_stakes._providers[provider].open_jobs, 1
    )
    log ProviderReleased(job_id=job_id, provider=provider)


@external
@view
def enlistment(job_id: bytes32, provider: address) -> uint8:
    """
    @notice Whether `provider` took part in job `job_id`.
    @param job_id The job.
    @param provider The provider.
    @return uint8 0 if never enlisted, `ENLISTED` while the job locks
            its stake, `RELEASED` after.
    """
    return convert(self._parts[job_id][provider] & _STATE_MASK, uint8)
