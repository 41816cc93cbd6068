# pragma version ~=0.4.0
"""
@title Cairn data bounties
@custom:contract-name DataBounty
@license Apache-2.0
@notice Paid data tasks. A dataset's owner escrows a budget that pays
        a fixed amount per accepted record and per useful review. When
        a batch of contributions is anchored on the `ContributionLedger`,
        a curator of the dataset pays the batch out of the budget in one
        transaction, whatever the number of records and contributors:
        the payout funds an epoch of the `RevenueDistributor` whose
        (account, amount) tree the node built, and contributors claim
        there as for any epoch. What is left returns to the funder when
        the bounty closes.
@dev A bounty pays a batch once, and only a batch anchored for its
     dataset since it opened. The node plans each payout to fit the
     budget left (whole records in order until it runs out); a payout
     that does not fit is refused, never cut. Top-ups, from anyone,
     join the budget, and what is left at closing goes to the funder.

     The contract checks a payout's size against the batch, not the
     payout tree against the contributions: the curator who pays is
     trusted as the one who anchors is, and the tree is published by
     CID in the distributor's `EpochFunded` event, for anyone to check.

     Over 400 lines because each of its six external functions carries
     the NatSpec and the checks of an auditable escrow.
"""


# @dev We import the built-in `IERC20` interface.
from ethereum.ercs import IERC20


# @dev The `AssetRegistry` kind of a dataset.
_KIND_DATASET: constant(uint8) = 1


# @dev The most lineage parents an asset may name, as in the registry.
_MAX_PARENTS: constant(uint256) = 16


# @dev The most reviews a batch may be paid for, per record it holds.
_MAX_REVIEWS_PER_RECORD: constant(uint256) = 16


# @dev An asset as `AssetRegistry.get_asset` returns it.
struct Asset:
    kind: uint8
    metadata_cid: String[128]
    licence: String[64]
    parents: DynArray[uint256, _MAX_PARENTS]
    split: uint16[4]
    registered_at: uint256


# @dev One bounty. `budget` counts every token escrowed, top-ups
# included; `remaining + paid_out == budget` until it closes, when
# `remaining` goes back to the funder.
struct Bounty:
    asset_id: uint256
    funder: address
    per_record: uint256
    per_review: uint256
    budget: uint256
    remaining: uint256
    paid_out: uint256
    opened_at: uint256
    is_open: bool


# @dev The part of the `AssetRegistry` this contract consults.
interface AssetRegistry:
    def ownerOf(token_id: uint256) -> address: view
    def get_asset(asset_id: uint256) -> Asset: view
    def can_anchor(asset_id: uint256, account: address) -> bool: view


# @dev The part of the `ContributionLedger` this contract consults.
interface ContributionLedger:
    def is_anchored(asset_id: uint256, root: bytes32) -> bool: view
    def batch_of(asset_id: uint256, root: bytes32) -> (uint256, uint256, uint256): view


# @dev The part of the `RevenueDistributor` this contract pays through.
interface RevenueDistributor:
    def fund_epoch(root: bytes32, amount: uint256, tree_cid: String[128]) -> uint256: nonpayable


# @dev The token budgets are paid in; the distributor's token.
token: public(immutable(address))


# @dev The registry whose datasets bounties pay for.
registry: public(immutable(address))


# @dev The ledger whose anchored batches bounties pay.
ledger: public(immutable(address))


# @dev The distributor whose epochs carry the payouts.
distributor: public(immutable(address))


# @dev The number of bounties opened; bounties are numbered from 1.
bounty_count: public(uint256)


# @dev Each bounty's record; all zero for an unknown id.
_bounties: HashMap[uint256, Bounty]


# @dev Which batches each bounty has paid, as `_paid[bounty_id][root]`.
_paid: HashMap[uint256, HashMap[bytes32, bool]]


# @dev Emitted when the owner of dataset `asset_id` opens a bounty.
event BountyOpened:
    bounty_id: indexed(uint256)
    asset_id: indexed(uint256)
    funder: address
    budget: uint256
    per_record: uint256
    per_review: uint256


# @dev Emitted when `funder` adds `amount` to a bounty's budget.
event BountyToppedUp:
    bounty_id: indexed(uint256)
    amount: uint256
    funder: address


# @dev Emitted when a bounty pays the batch anchored by `batch_root`:
# `amount` funds distributor epoch `epoch`.
event BatchPaid:
    bounty_id: indexed(uint256)
    batch_root: indexed(bytes32)
    records: uint256
    reviews: uint256
    amount: uint256
    epoch: uint256


# @dev Emitted when a bounty closes and `refunded` goes to its funder.
event BountyClosed:
    bounty_id: indexed(uint256)
    refunded: uint256


@deploy
def __init__(token_: address, registry_: address, ledger_: address, distributor_: address):
    """
    @notice Deploys bounties paying in `token_` for the datasets of
            `registry_`, the batches of `ledger_`, through `distributor_`.
    @param token_ The ERC-20 token; the distributor's token.
    @param registry_ The `AssetRegistry`.
    @param ledger_ The `ContributionLedger`.
    @param distributor_ The `RevenueDistributor`.
    """
    assert token_.is_contract, "cairn_bounty: token is not a contract"
    assert registry_.is_contract, "cairn_bounty: registry is not a contract"
    assert ledger_.is_contract, "cairn_bounty: ledger is not a contract"
    assert distributor_.is_contract, "cairn_bounty: distributor is not a contract"
    token = token_
    registry = registry_
    ledger = ledger_
    distributor = distributor_


@external
@nonreentrant
def open(asset_id: uint256, budget: uint256, per_record: uint256, per_review: uint256) -> uint256:
    """
    @notice Opens a bounty on dataset `asset_id` paying `per_record`
            per accepted record and `per_review` per useful review,
            pulling its `budget` from the caller.
    @dev Only the dataset's owner may call this, having approved this
         contract for `budget`.
    @param asset_id The dataset; the caller must own it.
    @param budget The tokens escrowed; nonzero.
    @param per_record The tokens paid per record.
    @param per_review The tokens paid per review; with `per_record`,
           not both zero.
    @return uint256 The new bounty id, counted from 1.
    """
    assert staticcall AssetRegistry(registry).ownerOf(
        asset_id
    ) == msg.sender, "cairn_bounty: not the dataset owner"
    asset: Asset = staticcall AssetRegistry(registry).get_asset(asset_id)
    assert asset.kind == _KIND_DATASET, "cairn_bounty: not a dataset"
    assert budget != 0, "cairn_bounty: zero budget"
    assert per_record != 0 or per_review != 0, "cairn_bounty: pays nothing"

    bounty_id: uint256 = self.bounty_count + 1
    self.bounty_count = bounty_id
    self._bounties[bounty_id] = Bounty(
        asset_id=asset_id,
        funder=msg.sender,
        per_record=per_record,
        per_review=per_review,
        budget=budget,
        remaining=budget,
        paid_out=0,
        opened_at=block.timestamp,
        is_open=True,
    )
    self._pull(msg.sender, budget)
    log BountyOpened(
        bounty_id=bounty_id,
        asset_id=asset_id,
        funder=msg.sender,
        budget=budget,
        per_record=per_record,
        per_review=per_review,
    )
    return bounty_id


@external
@nonreentrant
def top_up(bounty_id: uint256, amount: uint256):
    """
    @notice Adds `amount` to the budget of open bounty `bounty_id`,
            pulling it from the caller.
    @dev Anyone may top up, having approved this contract for `amount`.
         What is left when the bounty closes goes to its funder.
    @param bounty_id The bounty; must be open.
    @param amount The tokens added; nonzero.
    """
    assert self._bounties[bounty_id].funder != empty(address), "cairn_bounty: no such bounty"
    assert self._bounties[bounty_id].is_open, "cairn_bounty: closed"
    assert amount != 0, "cairn_bounty: zero amount"
    self._bounties[bounty_id].budget += amount
    self._bounties[bounty_id].remaining += amount
    self._pull(msg.sender, amount)
    log BountyToppedUp(bounty_id=bounty_id, amount=amount, funder=msg.sender)


@external
@nonreentrant
def pay_batch(
    bounty_id: uint256,
    batch_root: bytes32,
    records: uint256,
    reviews: uint256,
    payout_root: bytes32,
    tree_cid: String[128],
) -> uint256:
    """
    @notice Pays bounty `bounty_id`'s rates for `records` records and
            `reviews` reviews of the batch anchored by `batch_root`, by
            funding a distributor epoch with the payout tree
            `payout_root` stored at `tree_cid`.
    @dev Only the dataset's owner or one of its curators may call this,
         once per batch and bounty. The cost is the same for any number
         of records and contributors.
    @custom:security Checks, then effects, then the calls: the batch is
         marked paid and the budget charged before any token moves.
    @param bounty_id The bounty; must be open.
    @param batch_root The root of a batch anchored for the dataset since
           the bounty opened.
    @param records The records paid; at most the batch's count.
    @param reviews The reviews paid; at most 16 per record of the batch.
    @param payout_root The root of the (account, amount) payout tree,
           whose amounts sum to the payout; nonzero.
    @param tree_cid The CID of the stored payout tree.
    @return uint256 The distributor epoch that pays the batch.
    """
    asset_id: uint256 = self._bounties[bounty_id].asset_id
    assert asset_id != 0, "cairn_bounty: no such bounty"
    assert staticcall AssetRegistry(registry).can_anchor(
        asset_id, msg.sender
    ), "cairn_bounty: not a curator"
    assert self._bounties[bounty_id].is_open, "cairn_bounty: closed"
    assert staticcall ContributionLedger(ledger).is_anchored(
        asset_id, batch_root
    ), "cairn_bounty: batch not anchored"
    # The batch index is not needed; only its count and anchoring time.
    index: uint256 = 0
    count: uint256 = 0
    anchored_at: uint256 = 0
    index, count, anchored_at = staticcall ContributionLedger(ledger).batch_of(asset_id, batch_root)
    assert (
        anchored_at >= self._bounties[bounty_id].opened_at
    ), "cairn_bounty: batch anchored before the bounty"
    assert records <= count, "cairn_bounty: more records than the batch holds"
    assert (
        reviews <= count * _MAX_REVIEWS_PER_RECORD
    ), "cairn_bounty: more reviews than the batch allows"
    assert not self._paid[bounty_id][batch_root], "cairn_bounty: batch already paid"
    amount: uint256 = (
        records * self._bounties[bounty_id].per_record
        + reviews * self._bounties[bounty_id].per_review
    )
    assert amount != 0, "cairn_bounty: nothing to pay"
    remaining: uint256 = self._bounties[bounty_id].remaining
    assert amount <= remaining, "cairn_bounty: budget exhausted"

    self._paid[bounty_id][batch_root] = True
    # Cannot underflow: `amount <= remaining` was checked above.
    self._bounties[bounty_id].remaining = unsafe_sub(remaining, amount)
    self._bounties[bounty_id].paid_out += amount
    assert extcall IERC20(token).approve(distributor, amount), "cairn_bounty: approve failed"
    epoch: uint256 = extcall RevenueDistributor(distributor).fund_epoch(
        payout_root, amount, tree_cid
    )
    log BatchPaid(
        bounty_id=bounty_id,
        batch_root=batch_root,
        records=records,
        reviews=reviews,
        amount=amount,
        epoch=epoch,
    )
    return epoch


@external
@nonreentrant
def close(bounty_id: uint256) -> uint256:
    """
    @notice Closes bounty `bounty_id` and refunds what its budget has
            not paid out to its funder.
    @dev Only the funder or the dataset's current owner may call this.
    @custom:security Checks, then effects, then the token transfer.
    @param bounty_id The bounty; must be open.
    @return uint256 The tokens refunded.
    """
    bounty: Bounty = self._bounties[bounty_id]
    assert bounty.funder != empty(address), "cairn_bounty: no such bounty"
    assert (
        msg.sender == bounty.funder
        or msg.sender == staticcall AssetRegistry(registry).ownerOf(bounty.asset_id)
    ), "cairn_bounty: not the funder or owner"
    assert bounty.is_open, "cairn_bounty: closed"

    self._bounties[bounty_id].is_open = False
    self._bounties[bounty_id].remaining = 0
    if bounty.remaining != 0:
        assert extcall IERC20(token).transfer(
            bounty.funder, bounty.remaining
        ), "cairn_bounty: transfer failed"
    log BountyClosed(bounty_id=bounty_id, refunded=bounty.remaining)
    return bounty.remaining


@external
@view
def get_bounty(
    bounty_id: uint256,
) -> (uint256, address, uint256, uint256, uint256, uint256, uint256, uint256, bool):
    """
    @notice The record of bounty `bounty_id`.
    @param bounty_id The bounty; must exist.
    @return uint256 The dataset's asset id.
    @return address The funder, who gets what is left at closing.
    @return uint256 The tokens paid per record.
    @return uint256 The tokens paid per review.
    @return uint256 The budget, top-ups included.
    @return uint256 The budget not yet paid out; 0 once closed.
    @return uint256 The tokens paid out so far.
    @return uint256 The block timestamp of the opening.
    @return bool Whether the bounty is open.
    """
    bounty: Bounty = self._bounties[bounty_id]
    assert bounty.funder != empty(address), "cairn_bounty: no such bounty"
    return (
        bounty.asset_id,
        bounty.funder,
        bounty.per_record,
        bounty.per_review,
        bounty.budget,
        bounty.remaining,
        bounty.paid_out,
        bounty.opened_at,
        bounty.is_open,
    )


@external
@view
def is_batch_paid(bounty_id: uint256, batch_root: bytes32) -> bool:
    """
    @notice Whether bounty `bounty_id` has paid the batch `batch_root`.
    @param bounty_id The bounty.
    @param batch_root The batch's Merkle root.
    @return bool Whether the batch was paid.
    """
    return self._paid[bounty_id][batch_root]


@internal
def _pull(account: address, amount: uint256):
    """
    @notice Moves `amount` tokens from `account` into this contract.
    @dev Tokens that deliver less than `amount` (fee on transfer) are
         refused, so every budget recorded is held.
    @param account The payer; must have approved this contract.
    @param amount The tokens to pull.
    """
    held: uint256 = staticcall IERC20(token).balanceOf(self)
    assert extcall IERC20(token).transferFrom(
        account, self, amount
    ), "cairn_bounty: transfer failed"
    received: uint256 = staticcall IERC20(token).balanceOf(self) - held
    assert received == amount, "cairn_bounty: received less than amount"
