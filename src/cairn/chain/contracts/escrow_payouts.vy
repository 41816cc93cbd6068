# pragma version ~=0.4.0
"""
@title Cairn job escrow: payouts by work proof
@custom:contract-name escrow_payouts
@license Apache-2.0
@notice How a settled job pays its providers: each claims `budget *
        work / total_work` of the budget (rounded down) with the
        inclusion proof of its (provider, work) leaf in the job's work
        root. A provider is paid once per job, and a job never pays out
        more than its budget, whatever leaves its root holds.
@dev A module of `JobEscrow`, which initializes it. Work leaves are
     OpenZeppelin `StandardMerkleTree` leaves for ["address",
     "uint256"]: keccak256(keccak256(abi.encode(provider, work))),
     verified with sorted-pair proofs exactly as in
     `RevenueDistributor.claim`. A provider never enlisted in the job
     may be paid too: the root, not the enlistment, says who worked.
"""


from . import escrow_enlistment
from . import escrow_jobs
from . import escrow_token


uses: (escrow_enlistment, escrow_jobs, escrow_token)


# @dev The longest work proof accepted: enough for 2**32 providers.
_MAX_PROOF_LENGTH: constant(uint256) = 32


# @dev Emitted when `provider` is paid `amount` for `work` units.
event PayoutClaimed:
    job_id: indexed(bytes32)
    provider: indexed(address)
    work: uint256
    amount: uint256


@external
@nonreentrant
def claim_payout(
    job_id: bytes32, provider: address, work: uint256, proof: DynArray[bytes32, _MAX_PROOF_LENGTH]
) -> uint256:
    """
    @notice Pays `provider` its share `budget * work / total_work`
            (rounded down) of settled job `job_id`, given the inclusion
            proof of its leaf (provider, work). Anyone may submit it;
            the tokens always go to `provider`.
    @dev Checks, then effects, then the token transfer. A provider is
         paid once per job, and a job never pays out more than its
         budget, whatever leaves its root holds.
    @param job_id The job; must be settled and not yet closed.
    @param provider The provider to pay.
    @param work The work units in the provider's leaf.
    @param proof The sibling hashes from the leaf up to the job's root.
    @return uint256 The tokens paid.
    """
    state: uint8 = escrow_jobs._state(escrow_jobs._job_head[job_id])
    assert state != escrow_jobs.JOB_CLOSED, "cairn_escrow: job closed"
    assert state == escrow_jobs.JOB_SETTLED, "cairn_escrow: job not settled"
    part: uint256 = escrow_enlistment._parts[job_id][provider]
    assert part & escrow_enlistment._CLAIMED_BIT == 0, "cairn_escrow: already claimed"

    # OpenZeppelin `MerkleProof.verify`: hash each sorted pair. `abi_encode`
    # of two words builds the 64-byte preimage cheaper than `concat` does.
    computed: bytes32 = keccak256(keccak256(abi_encode(provider, work)))
    for node: bytes32 in proof:
        if convert(computed, uint256) < convert(node, uint256):
            computed = keccak256(abi_encode(computed, node))
        else:
            computed = keccak256(abi_encode(node, computed))
    assert computed == escrow_jobs._job_root[job_id], "cairn_escrow: invalid proof"

    total_work: uint256 = escrow_jobs._job_work[job_id] >> escrow_jobs._TOTAL_WORK_SHIFT
    assert work <= total_work, "cairn_escrow: work exceeds total"
    money: uint256 = escrow_jobs._job_money[job_id]
    budget: uint256 = money & escrow_jobs._MASK_128
    # Cannot overflow: budget and work are both below 2**128.
    amount: uint256 = unsafe_mul(budget, work) // total_work
    assert amount != 0, "cairn_escrow: nothing to pay"
    paid: uint256 = (money >> escrow_jobs._PAID_SHIFT) + amount
    assert paid <= budget, "cairn_escrow: exceeds budget"

    escrow_enlistment._parts[job_id][provider] = part | escrow_enlistment._CLAIMED_BIT
    escrow_jobs._job_money[job_id] = (paid << escrow_jobs._PAID_SHIFT) | budget
    escrow_token._pay(provider, amount)
    log PayoutClaimed(job_id=job_id, provider=provider, work=work, amount=amount)
    return amount


@external
@view
def is_claimed(job_id: bytes32, provider: address) -> bool:
    """
    @notice Whether `provider` has been paid for job `job_id`.
    @param job_id The job.
    @param provider The provider.
    @return bool Whether its payout was claimed.
    """
    return escrow_enlistment._parts[job_id][provider] & escrow_enlistment._CLAIMED_BIT != 0


@external
@view
def payout(job_id: bytes32, work: uint256) -> uint256:
    """
    @notice What a provider with `work` units in settled job `job_id`'s
            tree is paid.
    @param job_id The job.
    @param work The work units; at most the job's total work.
    @return uint256 `budget * work / total_work` rounded down; 0 for a
            job that is not settled.
    """
    total_work: uint256 = escrow_jobs._job_work[job_id] >> escrow_jobs._TOTAL_WORK_SHIFT
    if total_work == 0:
        return 0
    assert work <= total_work, "cairn_escrow: work exceeds total"
    # Cannot overflow: budget and work are both below 2**128.
    return unsafe_mul(escrow_jobs._job_money[job_id] & escrow_jobs._MASK_128, work) // total_work
