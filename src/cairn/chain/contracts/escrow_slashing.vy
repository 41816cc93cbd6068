# pragma version ~=0.4.0
"""
@title Cairn job escrow: slashing
@custom:contract-name escrow_slashing
@license Apache-2.0
@notice A coordinator may slash the stake of a provider that took part
        in a job, for misbehaviour in that job shown by stored
        evidence; the slashed tokens go to the job's builder.
@dev A module of `JobEscrow`, which initializes it.

     Slashed stake goes to the job's builder, not to the owner or the
     coordinator: the builder paid for the work that was cheated, and a
     coordinator gains nothing by slashing in someone else's job. (A
     coordinator that builds a job itself could; the owner names only
     coordinators it trusts.)
"""


from . import escrow_enlistment
from . import escrow_jobs
from . import escrow_owner
from . import escrow_stakes
from . import escrow_token


uses: (escrow_enlistment, escrow_jobs, escrow_owner, escrow_stakes, escrow_token)


# @dev Emitted when `amount` of a provider's stake goes to the
# builder of `job_id`. `evidence_cid` names the stored evidence.
event Slashed:
    provider: indexed(address)
    job_id: indexed(bytes32)
    amount: uint256
    builder: address
    evidence_cid: String[128]
    coordinator: address


@external
@nonreentrant
def slash(
    provider: address, amount: uint256, job_id: bytes32, evidence_cid: String[128]
) -> uint256:
    """
    @notice Moves up to `amount` of `provider`'s stake to the builder of
            job `job_id`, for misbehaviour in that job shown by the
            evidence stored at `evidence_cid`.
    @dev Only a coordinator may call this, for a provider enlisted in
         the job (released or not). The stake never goes below zero: a
         slash larger than the stake takes all of it. The builder gets
         the tokens because it paid for the cheated work.
    @param provider The provider.
    @param amount The most to take; nonzero.
    @param job_id The job the misbehaviour happened in.
    @param evidence_cid The CID of the stored evidence; nonempty.
    @return uint256 The tokens taken.
    """
    escrow_owner._check_coordinator()
    assert (
        escrow_enlistment._parts[job_id][provider] & escrow_enlistment._STATE_MASK != 0
    ), "cairn_escrow: provider not in job"
    assert amount != 0, "cairn_escrow: zero amount"
    assert len(evidence_cid) != 0, "cairn_escrow: empty evidence cid"
    stake: uint256 = escrow_stakes._providers[provider].stake
    assert stake != 0, "cairn_escrow: nothing to slash"

    taken: uint256 = min(amount, stake)
    # Cannot underflow: `taken` is at most `stake`.
    escrow_stakes._providers[provider].stake = unsafe_sub(stake, taken)
    builder: address = escrow_jobs._builder(escrow_jobs._job_head[job_id])
    escrow_token._pay(builder, taken)
    log Slashed(
        provider=provider,
        job_id=job_id,
        amount=taken,
        builder=builder,
        evidence_cid=evidence_cid,
        coordinator=msg.sender,
    )
    return taken
