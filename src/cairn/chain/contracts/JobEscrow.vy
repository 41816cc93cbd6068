# pragma version ~=0.4.0
"""
@title Cairn job escrow
@custom:contract-name JobEscrow
@license Apache-2.0
@notice Holds the money of Cairn's compute network: the budget of each
        training job, paid in by its builder, and the stake of each
        compute provider. A coordinator (the node that runs the jobs)
        enlists providers in a job, which locks their stake until the
        job ends; at the end it settles the job with the Merkle root of
        the providers' completed work units, and each provider claims
        `budget * work / total_work` of the budget with its inclusion
        proof. After the job's deadline and a grace period the builder
        takes back what was not paid out. A coordinator may slash a
        provider's stake for a job; the slashed tokens go to the job's
        builder.
@dev Work leaves are OpenZeppelin `StandardMerkleTree` leaves for
     ["address", "uint256"]: keccak256(keccak256(abi.encode(provider,
     work))), verified with sorted-pair proofs exactly as in
     `RevenueDistributor.claim`. The work reports behind a root are
     signed and anchored off this contract; their CID is published in
     the `JobSettled` event, as recipe and evidence CIDs are in theirs,
     and none of them is stored.

     A job moves OPEN -> SETTLED -> CLOSED, or OPEN -> CANCELLED (by
     its builder, before settlement), or OPEN -> CLOSED (the builder
     reclaims the whole budget of a job nobody settled in time).

     Slashed stake goes to the job's builder, not to the owner or the
     coordinator: the builder paid for the work that was cheated, and a
     coordinator gains nothing by slashing in someone else's job. (A
     coordinator that builds a job itself could; the owner names only
     coordinators it trusts.)
"""


# @dev We import the built-in `IERC20` interface.
from ethereum.ercs import IERC20


# @dev The part of the `AssetRegistry` this escrow consults.
interface AssetRegistry:
    def total_assets() -> uint256: view


# @dev Job states, as `job_state` returns them; 0 is an unknown job.
JOB_OPEN: public(constant(uint8)) = 1
JOB_SETTLED: public(constant(uint8)) = 2
JOB_CANCELLED: public(constant(uint8)) = 3
JOB_CLOSED: public(constant(uint8)) = 4


# @dev Enlistment states, as `enlistment` returns them; 0 is a
# provider never enlisted in the job.
ENLISTED: public(constant(uint8)) = 1
RELEASED: public(constant(uint8)) = 2


# @dev Bit layout of a provider's part in a job: the enlistment state
# in bits 0..7, whether it has been paid in bit 8. An enlisted provider
# then claims by writing a slot that is already nonzero, which costs
# 2,900 gas instead of 20,000.
_CLAIMED_BIT: constant(uint256) = 1 << 8


# @dev The longest work proof accepted: enough for 2**32 providers.
_MAX_PROOF_LENGTH: constant(uint256) = 32


# @dev The longest unbonding or grace period the owner may set, so
# that no setting can lock stakes or budgets away for good.
_MAX_PERIOD: constant(uint256) = 365 * 86_400


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


# @dev A provider's record. `withdraw_after` is zero unless a
# withdrawal was requested; `open_jobs` counts the jobs that lock
# its stake.
struct Provider:
    stake: uint256
    withdraw_after: uint256
    open_jobs: uint256
    active: bool
    endpoint: String[256]


# @dev The token that budgets, stakes and payouts are paid in.
token: public(immutable(address))


# @dev The registry whose model assets jobs name.
registry: public(immutable(address))


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


# @dev Each provider's record.
_providers: HashMap[address, Provider]


# @dev The packed builder, state and times of each job.
_job_head: HashMap[bytes32, uint256]


# @dev The packed budget and paid-out amount of each job.
_job_money: HashMap[bytes32, uint256]


# @dev The packed model asset id and total work of each job.
_job_work: HashMap[bytes32, uint256]


# @dev The Merkle root of each settled job's (provider, work) leaves.
_job_root: HashMap[bytes32, bytes32]


# @dev The packed part of each provider in each job, as
# `_parts[job_id][provider]`.
_parts: HashMap[bytes32, HashMap[address, uint256]]


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


# @dev Emitted when a coordinator enlists a provider in a job.
event ProviderEnlisted:
    job_id: indexed(bytes32)
    provider: indexed(address)


# @dev Emitted when a job stops locking a provider's stake.
event ProviderReleased:
    job_id: indexed(bytes32)
    provider: indexed(address)


# @dev Emitted when a job is settled. `report_cid` names the stored
# work reports from which anyone can rebuild `root`.
event JobSettled:
    job_id: indexed(bytes32)
    root: bytes32
    total_work: uint256
    report_cid: String[128]
    coordinator: address


# @dev Emitted when `provider` is paid `amount` for `work` units.
event PayoutClaimed:
    job_id: indexed(bytes32)
    provider: indexed(address)
    work: uint256
    amount: uint256


# @dev Emitted when a builder takes back what a job did not pay out.
event RemainderReclaimed:
    job_id: indexed(bytes32)
    amount: uint256


# @dev Emitted when `amount` of a provider's stake goes to the
# builder of `job_id`. `evidence_cid` names the stored evidence.
event Slashed:
    provider: indexed(address)
    job_id: indexed(bytes32)
    amount: uint256
    builder: address
    evidence_cid: String[128]
    coordinator: address


@deploy
def __init__(token_: address, registry_: address):
    """
    @notice Deploys an escrow paying in `token_` for jobs on the models
            of `registry_`. The deployer becomes the owner and the first
            coordinator; the unbonding period starts at one day, the
            grace period at seven days, the minimum stake at zero.
    @param token_ The ERC-20 token.
    @param registry_ The `AssetRegistry`.
    """
    assert token_.is_contract, "cairn_escrow: token is not a contract"
    assert registry_.is_contract, "cairn_escrow: registry is not a contract"
    token = token_
    registry = registry_
    self.owner = msg.sender
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)
    self.is_coordinator[msg.sender] = True
    log CoordinatorSet(account=msg.sender, allowed=True)
    self.unbonding_period = 86_400
    log UnbondingPeriodSet(seconds=86_400)
    self.grace_period = 7 * 86_400
    log GracePeriodSet(seconds=7 * 86_400)


# ---------------------------------------------------------------- providers


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
    assert total >= self.min_stake, "cairn_escrow: stake below minimum"

    self._providers[msg.sender].stake = total
    self._providers[msg.sender].withdraw_after = 0
    self._providers[msg.sender].active = True
    self._providers[msg.sender].endpoint = endpoint
    self._pull(msg.sender, stake)
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
    self._pull(msg.sender, amount)
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
    withdraw_after: uint256 = block.timestamp + self.unbonding_period
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
        assert extcall IERC20(token).transfer(msg.sender, amount), "cairn_escrow: transfer failed"
    log StakeWithdrawn(provider=msg.sender, amount=amount)
    return amount


# --------------------------------------------------------------------- jobs


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
    grace: uint256 = self.grace_period
    # Cannot underflow: the grace period is at most `_MAX_PERIOD`. The
    # check keeps the deadline plus grace within the head's 40 bits.
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
    self._pull(msg.sender, budget)
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
    assert extcall IERC20(token).transfer(msg.sender, refund), "cairn_escrow: transfer failed"
    log JobCancelled(job_id=job_id, refund=refund)


@external
def enlist(job_id: bytes32, provider: address):
    """
    @notice Enlists `provider` in open job `job_id`, which locks its
            stake until the job ends and makes it slashable for the job.
    @dev Only a coordinator may call this.
    @param job_id The job; must be open.
    @param provider An active provider holding at least `min_stake`.
    """
    assert self.is_coordinator[msg.sender], "cairn_escrow: caller is not a coordinator"
    head: uint256 = self._job_head[job_id]
    assert head != 0, "cairn_escrow: unknown job"
    assert self._state(head) == JOB_OPEN, "cairn_escrow: job not open"
    assert self._providers[provider].active, "cairn_escrow: not an active provider"
    assert self._providers[provider].stake >= self.min_stake, "cairn_escrow: stake below minimum"
    # Claims need a settled job, so nothing else of the part is set yet.
    assert self._parts[job_id][provider] == 0, "cairn_escrow: already enlisted"

    self._parts[job_id][provider] = convert(ENLISTED, uint256)
    self._providers[provider].open_jobs += 1
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
    assert part & _MASK_8 == convert(ENLISTED, uint256), "cairn_escrow: not enlisted"
    head: uint256 = self._job_head[job_id]
    assert (
        self._state(head) != JOB_OPEN or block.timestamp >= self._reclaim_after(head)
    ), "cairn_escrow: job still open"

    self._parts[job_id][provider] = (part & ~_MASK_8) | convert(RELEASED, uint256)
    # Cannot underflow: each `ENLISTED` mark added one to the count.
    self._providers[provider].open_jobs = unsafe_sub(self._providers[provider].open_jobs, 1)
    log ProviderReleased(job_id=job_id, provider=provider)


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
    assert self.is_coordinator[msg.sender], "cairn_escrow: caller is not a coordinator"
    head: uint256 = self._job_head[job_id]
    assert head != 0, "cairn_escrow: unknown job"
    assert self._state(head) == JOB_OPEN, "cairn_escrow: job not open"
    assert root != empty(bytes32), "cairn_escrow: empty root"
    assert total_work != 0, "cairn_escrow: zero total work"
    assert total_work <= _MASK_128, "cairn_escrow: total work too large"
    assert len(report_cid) != 0, "cairn_escrow: empty report cid"
    reclaim_after: uint256 = max(self._reclaim_after(head), block.timestamp + self.grace_period)
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
    head: uint256 = self._job_head[job_id]
    state: uint8 = self._state(head)
    assert state != JOB_CLOSED, "cairn_escrow: job closed"
    assert state == JOB_SETTLED, "cairn_escrow: job not settled"
    part: uint256 = self._parts[job_id][provider]
    assert part & _CLAIMED_BIT == 0, "cairn_escrow: already claimed"

    # OpenZeppelin `MerkleProof.verify`: hash each sorted pair. `abi_encode`
    # of two words builds the 64-byte preimage cheaper than `concat` does.
    computed: bytes32 = keccak256(keccak256(abi_encode(provider, work)))
    for node: bytes32 in proof:
        if convert(computed, uint256) < convert(node, uint256):
            computed = keccak256(abi_encode(computed, node))
        else:
            computed = keccak256(abi_encode(node, computed))
    assert computed == self._job_root[job_id], "cairn_escrow: invalid proof"

    total_work: uint256 = self._job_work[job_id] >> _TOTAL_WORK_SHIFT
    assert work <= total_work, "cairn_escrow: work exceeds total"
    money: uint256 = self._job_money[job_id]
    budget: uint256 = money & _MASK_128
    # Cannot overflow: budget and work are both below 2**128.
    amount: uint256 = unsafe_mul(budget, work) // total_work
    assert amount != 0, "cairn_escrow: nothing to pay"
    paid: uint256 = (money >> _PAID_SHIFT) + amount
    assert paid <= budget, "cairn_escrow: exceeds budget"

    self._parts[job_id][provider] = part | _CLAIMED_BIT
    self._job_money[job_id] = (paid << _PAID_SHIFT) | budget
    assert extcall IERC20(token).transfer(provider, amount), "cairn_escrow: transfer failed"
    log PayoutClaimed(job_id=job_id, provider=provider, work=work, amount=amount)
    return amount


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
        assert extcall IERC20(token).transfer(msg.sender, amount), "cairn_escrow: transfer failed"
    log RemainderReclaimed(job_id=job_id, amount=amount)
    return amount


# ----------------------------------------------------------------- slashing


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
    assert self.is_coordinator[msg.sender], "cairn_escrow: caller is not a coordinator"
    assert self._parts[job_id][provider] & _MASK_8 != 0, "cairn_escrow: provider not in job"
    assert amount != 0, "cairn_escrow: zero amount"
    assert len(evidence_cid) != 0, "cairn_escrow: empty evidence cid"
    stake: uint256 = self._providers[provider].stake
    assert stake != 0, "cairn_escrow: nothing to slash"

    taken: uint256 = min(amount, stake)
    # Cannot underflow: `taken` is at most `stake`.
    self._providers[provider].stake = unsafe_sub(stake, taken)
    builder: address = self._builder(self._job_head[job_id])
    assert extcall IERC20(token).transfer(builder, taken), "cairn_escrow: transfer failed"
    log Slashed(
        provider=provider,
        job_id=job_id,
        amount=taken,
        builder=builder,
        evidence_cid=evidence_cid,
        coordinator=msg.sender,
    )
    return taken


# -------------------------------------------------------------------- owner


@external
def set_coordinator(account: address, allowed: bool):
    """
    @notice Grants (`allowed` is `True`) or revokes the coordinator
            role of `account`.
    @dev Only the owner may call this.
    @param account The account whose role changes; not the zero address.
    @param allowed Whether `account` coordinates jobs.
    """
    assert msg.sender == self.owner, "cairn_escrow: caller is not the owner"
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
    assert msg.sender == self.owner, "cairn_escrow: caller is not the owner"
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
    assert msg.sender == self.owner, "cairn_escrow: caller is not the owner"
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
    assert msg.sender == self.owner, "cairn_escrow: caller is not the owner"
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
    assert msg.sender == self.owner, "cairn_escrow: caller is not the owner"
    assert new_owner != empty(address), "cairn_escrow: new owner is the zero address"
    self.owner = new_owner
    log OwnershipTransferred(previous_owner=msg.sender, new_owner=new_owner)


# -------------------------------------------------------------------- views


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
    return convert(self._parts[job_id][provider] & _MASK_8, uint8)


@external
@view
def is_claimed(job_id: bytes32, provider: address) -> bool:
    """
    @notice Whether `provider` has been paid for job `job_id`.
    @param job_id The job.
    @param provider The provider.
    @return bool Whether its payout was claimed.
    """
    return self._parts[job_id][provider] & _CLAIMED_BIT != 0


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
    total_work: uint256 = self._job_work[job_id] >> _TOTAL_WORK_SHIFT
    if total_work == 0:
        return 0
    assert work <= total_work, "cairn_escrow: work exceeds total"
    # Cannot overflow: budget and work are both below 2**128.
    return unsafe_mul(self._job_money[job_id] & _MASK_128, work) // total_work


# ---------------------------------------------------------------- internals


@internal
def _pull(account: address, amount: uint256):
    """
    @notice Moves `amount` tokens from `account` into this contract.
    @dev Tokens that deliver less than `amount` (fee on transfer) are
         refused, so every amount recorded is held.
    @param account The payer; must have approved this contract.
    @param amount The tokens to pull; nothing happens for zero.
    """
    if amount == 0:
        return
    held: uint256 = staticcall IERC20(token).balanceOf(self)
    assert extcall IERC20(token).transferFrom(
        account, self, amount
    ), "cairn_escrow: transfer failed"
    received: uint256 = staticcall IERC20(token).balanceOf(self) - held
    assert received == amount, "cairn_escrow: received less than amount"


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
