# pragma version ~=0.4.0
"""
@title Cairn job escrow: job budgets and their lifecycle
@custom:contract-name escrow_jobs
@license Apache-2.0
@notice The training jobs of `JobEscrow`. A builder opens a job on a
        model asset with a budget and a deadline; a coordinator
        settles it with the Merkle root of the providers' work; after
        the reclaim time the builder takes back what was not paid out.
@dev A module of `JobEscrow`, which initializes it; the enlistment,
     payouts and slashing modules read its records (and payouts adds
     to a job's paid-out amount).

     A job moves OPEN -> SETTLED -> CLOSED, or OPEN -> CANCELLED (by
     its builder, before settlement), or OPEN -> CLOSED (the builder
     reclaims the whole budget of a job nobody settled in time).

     A job is three packed slots (head, money, work) and its root, so
     that each call reads and writes as few slots as it can; the bit
     layouts are beside the constants below.
"""


from . import escrow_owner
from . import escrow_token


uses: (escrow_owner, escrow_token)


# @dev The part of the `AssetRegistry` this escrow consults.
interface AssetRegistry:
    def total_assets() -> uint256: view


# @dev Job states, as `job_state` returns them; 0 is an unknown job.
JOB_OPEN: public(constant(uint8)) = 1
JOB_SETTLED: public(constant(uint8)) = 2
JOB_CANCELLED: public(constant(uint8)) = 3
JOB_CLOSED: public(constant(uint8)) = 4


# @dev Bit layout of a job's head slot: the builder in bits 0..159,
# the state in bits 160..167, the deadline in bits 168..207 and the
# time from which the builder may reclaim in bits 208..247. Times
# are checked to fit 40 bits (until the year 36812), so the head of
# an existing job is never zero (its builder is never zero).
_STATE_SHIFT: constant(uint256) = 160
_DEADLINE_SHIFT: constant(uint256) = 168
_RECLAIM_SHIFT: constant(uint256) = 208
_MASK_8: constant(uint256) = (1 << 8) - 1
_MASK_40: constant(uint256) = (1 << 40) - 1
_MASK_160: constant(uint256) = (1 << 160) - 1


# @dev Bit layout of a job's money slot: the amount paid out so far
# in bits 128..255, the budget in bits 0..127. Both are bounded by
# the budget, which is below 2**128.
_PAID_SHIFT: constant(uint256) = 128
_MASK_128: constant(uint256) = (1 << 128) - 1


# @dev Bit layout of a job's work slot: the total work in bits
# 128..255 (zero until settled), the model asset id in bits 0..127.
# Settling then writes a slot that is already nonzero, which costs
# 2,900 gas instead of 20,000.
_TOTAL_WORK_SHIFT: constant(uint256) = 128


# @dev The registry whose model assets jobs name.
registry: public(immutable(address))


# @dev The packed builder, state and times of each job.
_job_head: HashMap[bytes32, uint256]


# @dev The packed budget and paid-out amount of each job.
_job_money: HashMap[bytes32, uint256]


# @dev The packed model asset id and total work of each job.
_job_work: HashMap[bytes32, uint256]


# @dev The Merkle root of each settled job's (provider, work) leaves.
_job_root: HashMap[bytes32, bytes32]


# @dev Emitted when a builder funds a new job. `recipe_cid` names
# the stored recipe.
event JobCreated:
    job_id: indexed(bytes32)
    builder: indexed(address)
    budget: uint256
    model_asset: uint256
    deadline: uint256
    recipe_cid: String[128]


# @dev Emitted when a builder cancels an unsettled job.
event JobCancelled:
    job_id: indexed(bytes32)
    refund: uint256


# @dev Emitted when a job is settled. `report_cid` names the stored
# work reports from which anyone can rebuild `root`.
event JobSettled:
    job_id: indexed(bytes32)
    root: bytes32
    total_work: uint256
    report_cid: String[128]
    coordinator: address


# @dev Emitted when a builder takes back what a job did not pay out.
event RemainderReclaimed:
    job_id: indexed(bytes32)
    amount: uint256


@deploy
def __init__(registry_: address):
    """
    @notice Opens jobs on the models of `registry_`.
    @param registry_ The `AssetRegistry`; must be a contract.
    """
    assert registry_.is_contract, "cairn_escrow: registry is not a contract"
    registry = registry_


@external
@nonreentrant
def create_job(
    job_id: bytes32,
    budget: uint256,
    model_asset: uint256,
    recipe_cid: String[128],
    deadline: uint256,
):
    """
    @notice Opens job `job_id` training model asset `model_asset` by
            the recipe stored at `recipe_cid`, pulling its `budget`
            from the caller, who becomes the job's builder.
    @dev The caller must have approved this contract for `budget`. The
         reclaim time (deadline plus the grace period) is fixed now, so
         a later change of `grace_period` never shortens it.
    @param job_id The job's unique id; nonzero and never used before.
    @param budget The tokens paid to providers; nonzero, below 2**128.
    @param model_asset The registry id of the model the job trains; it
           must exist. Its kind is not checked: reading the asset
           would cost more than the rest of the call.
    @param recipe_cid The CID of the stored recipe; nonempty.
    @param deadline When the work is due, a future Unix time.
    """
    assert job_id != empty(bytes32), "cairn_escrow: empty job id"
    assert self._job_head[job_id] == 0, "cairn_escrow: job exists"
    assert budget != 0, "cairn_escrow: zero budget"
    assert budget <= _MASK_128, "cairn_escrow: budget too large"
    assert len(recipe_cid) != 0, "cairn_escrow: empty recipe cid"
    assert deadline > block.timestamp, "cairn_escrow: deadline passed"
    grace: uint256 = escrow_owner.grace_period
    # Cannot underflow: the grace period is at most
    # `escrow_owner._MAX_PERIOD`. The check keeps the deadline plus
    # grace within the head's 40 bits.
    assert deadline <= unsafe_sub(_MASK_40, grace), "cairn_escrow: deadline too far"
    reclaim_after: uint256 = deadline + grace
    # The registry counts ids up from 1, so a known id is far below
    # 2**128; the second check keeps the packing sound regardless.
    assert model_asset != 0 and model_asset <= staticcall AssetRegistry(
        registry
    ).total_assets(), "cairn_escrow: unknown model asset"
    assert model_asset <= _MASK_128, "cairn_escrow: unknown model asset"

    self._job_head[job_id] = (
        convert(msg.sender, uint256)
        | (convert(JOB_OPEN, uint256) << _STATE_SHIFT)
        | (deadline << _DEADLINE_SHIFT)
        | (reclaim_after << _RECLAIM_SHIFT)
    )
    self._job_money[job_id] = budget
    self._job_work[job_id] = model_asset
    escrow_token._pull(msg.sender, budget)
    log JobCreated(
        job_id=job_id,
        builder=msg.sender,
        budget=budget,
        model_asset=model_asset,
        deadline=deadline,
        recipe_cid=recipe_cid,
    )


@external
@nonreentrant
def cancel_job(job_id: bytes32):
    """
    @notice Cancels a job that is not settled and refunds its whole
            budget to its builder.
    @dev Only the job's builder may call this. Providers enlisted in
         the job can then be released.
    @param job_id The job.
    """
    head: uint256 = self._job_head[job_id]
    assert head != 0, "cairn_escrow: unknown job"
    assert msg.sender == self._builder(head), "cairn_escrow: caller is not the builder"
    assert self._state(head) == JOB_OPEN, "cairn_escrow: job not open"

    # Nothing is paid out of an open job, so the budget is all there.
    refund: uint256 = self._job_money[job_id] & _MASK_128
    self._job_head[job_id] = self._with_state(head, JOB_CANCELLED)
    escrow_token._pay(msg.sender, refund)
    log JobCancelled(job_id=job_id, refund=refund)


@external
def settle_job(job_id: bytes32, root: bytes32, total_work: uint256, report_cid: String[128]):
    """
    @notice Settles open job `job_id`: its budget will be paid to the
            providers in the Merkle tree `root` of (provider, work)
            leaves, in proportion to work out of `total_work`.
    @dev Only a coordinator may call this, once per job. The builder's
         reclaim time moves to at least one grace period from now, so
         providers always get that long to claim.
    @param job_id The job; must be open.
    @param root The Merkle root of the work leaves; nonzero.
    @param total_work The sum of the leaves' work; nonzero, below 2**128.
    @param report_cid The CID of the stored work reports; nonempty.
    """
    escrow_owner._check_coordinator()
    head: uint256 = self._job_head[job_id]
    assert head != 0, "cairn_escrow: unknown job"
    assert self._state(head) == JOB_OPEN, "cairn_escrow: job not open"
    assert root != empty(bytes32), "cairn_escrow: empty root"
    assert total_work != 0, "cairn_escrow: zero total work"
    assert total_work <= _MASK_128, "cairn_escrow: total work too large"
    assert len(report_cid) != 0, "cairn_escrow: empty report cid"
    reclaim_after: uint256 = max(
        self._reclaim_after(head), block.timestamp + escrow_owner.grace_period
    )
    assert reclaim_after <= _MASK_40, "cairn_escrow: time too far"

    self._job_root[job_id] = root
    # The model asset id stays in the low bits; the total work was zero.
    self._job_work[job_id] = self._job_work[job_id] | (total_work << _TOTAL_WORK_SHIFT)
    self._job_head[job_id] = (
        (head & ~(_MASK_8 << _STATE_SHIFT) & ~(_MASK_40 << _RECLAIM_SHIFT))
        | (convert(JOB_SETTLED, uint256) << _STATE_SHIFT)
        | (reclaim_after << _RECLAIM_SHIFT)
    )
    log JobSettled(
        job_id=job_id,
        root=root,
        total_work=total_work,
        report_cid=report_cid,
        coordinator=msg.sender,
    )


@external
@nonreentrant
def reclaim_remainder(job_id: bytes32) -> uint256:
    """
    @notice Pays the builder what job `job_id` has not paid out (rounding
            dust and unclaimed shares of a settled job, or the whole
            budget of a job nobody settled) and closes the job.
    @dev Only the job's builder may call this, from the job's reclaim
         time on. Claims on a closed job revert.
    @param job_id The job; open or settled.
    @return uint256 The tokens paid back.
    """
    head: uint256 = self._job_head[job_id]
    assert head != 0, "cairn_escrow: unknown job"
    assert msg.sender == self._builder(head), "cairn_escrow: caller is not the builder"
    state: uint8 = self._state(head)
    assert state == JOB_OPEN or state == JOB_SETTLED, "cairn_escrow: job already closed"
    assert block.timestamp >= self._reclaim_after(head), "cairn_escrow: too early to reclaim"

    money: uint256 = self._job_money[job_id]
    budget: uint256 = money & _MASK_128
    paid: uint256 = money >> _PAID_SHIFT
    # Cannot underflow: claims never pay more than the budget.
    amount: uint256 = unsafe_sub(budget, paid)
    self._job_head[job_id] = self._with_state(head, JOB_CLOSED)
    if amount != 0:
        escrow_token._pay(msg.sender, amount)
    log RemainderReclaimed(job_id=job_id, amount=amount)
    return amount


@external
@view
def job_state(job_id: bytes32) -> uint8:
    """
    @notice The state of job `job_id`.
    @param job_id The job.
    @return uint8 0 for an unknown job, else one of `JOB_OPEN`,
            `JOB_SETTLED`, `JOB_CANCELLED`, `JOB_CLOSED`.
    """
    return self._state(self._job_head[job_id])


@external
@view
def job(
    job_id: bytes32,
) -> (address, uint8, uint256, uint256, uint256, uint256, uint256, bytes32, uint256):
    """
    @notice The record of job `job_id`.
    @param job_id The job; must exist.
    @return address The builder.
    @return uint8 The state.
    @return uint256 The budget.
    @return uint256 The tokens paid to providers so far.
    @return uint256 The model asset id.
    @return uint256 The deadline.
    @return uint256 The time from which the builder may reclaim.
    @return bytes32 The work root; zero until settled.
    @return uint256 The total work; zero until settled.
    """
    head: uint256 = self._job_head[job_id]
    assert head != 0, "cairn_escrow: unknown job"
    money: uint256 = self._job_money[job_id]
    work: uint256 = self._job_work[job_id]
    return (
        self._builder(head),
        self._state(head),
        money & _MASK_128,
        money >> _PAID_SHIFT,
        work & _MASK_128,
        (head >> _DEADLINE_SHIFT) & _MASK_40,
        self._reclaim_after(head),
        self._job_root[job_id],
        work >> _TOTAL_WORK_SHIFT,
    )


@internal
@pure
def _builder(head: uint256) -> address:
    """
    @notice The builder in a job's head slot.
    @param head The packed head.
    @return address The builder.
    """
    return convert(head & _MASK_160, address)


@internal
@pure
def _state(head: uint256) -> uint8:
    """
    @notice The state in a job's head slot.
    @param head The packed head.
    @return uint8 The state; 0 for an unknown job.
    """
    return convert((head >> _STATE_SHIFT) & _MASK_8, uint8)


@internal
@pure
def _reclaim_after(head: uint256) -> uint256:
    """
    @notice The reclaim time in a job's head slot.
    @param head The packed head.
    @return uint256 The time from which the builder may reclaim.
    """
    return (head >> _RECLAIM_SHIFT) & _MASK_40


@internal
@pure
def _with_state(head: uint256, state: uint8) -> uint256:
    """
    @notice A job's head slot with its state replaced by `state`.
    @param head The packed head.
    @param state The new state.
    @return uint256 The new head.
    """
    return (head & ~(_MASK_8 << _STATE_SHIFT)) | (convert(state, uint256) << _STATE_SHIFT)
