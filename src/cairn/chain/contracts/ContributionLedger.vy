# pragma version ~=0.4.0
"""
@title Cairn contribution ledger
@custom:contract-name ContributionLedger
@license Apache-2.0
@notice Anchors batches of accepted contributions to an asset of the
        `AssetRegistry` by Merkle root. Contributions are signed and
        stored off chain; a batch's tree is published by CID (in the
        `Anchored` event), and anyone can prove that a single
        contribution belongs to an anchored batch with `verify`.
@dev Anchoring must cost a few gas per contribution, so the contract
     stores only what verification and accounting need: one packed slot
     per root and one packed counter slot per asset. The batch CID and
     the anchoring account live only in the event log.
"""


# @dev The part of the `AssetRegistry` this ledger consults.
interface AssetRegistry:
    def can_anchor(asset_id: uint256, account: address) -> bool: view


# @dev The longest inclusion proof `verify` accepts: enough for a
# tree of 2**64 leaves.
_MAX_PROOF_LENGTH: constant(uint256) = 64


# @dev Bit layout of a root record: `count` in bits 128..255, the
# batch index in bits 64..127, the anchoring block timestamp in
# bits 0..63. `count` is never zero, so neither is an anchored record.
_COUNT_SHIFT: constant(uint256) = 128
_INDEX_SHIFT: constant(uint256) = 64
_MASK_64: constant(uint256) = (1 << 64) - 1


# @dev Bit layout of an asset counter: the total number of contributions
# in bits 64..255, the number of batches in bits 0..63.
_TOTAL_SHIFT: constant(uint256) = 64
_MAX_TOTAL: constant(uint256) = (1 << 192) - 1


# @dev The registry that decides who may anchor for an asset.
registry: public(immutable(address))


# @dev The packed record of each anchored root, as
# `_roots[asset_id][root]`; zero for a root never anchored.
_roots: HashMap[uint256, HashMap[bytes32, uint256]]


# @dev The packed batch and contribution counters of each asset.
_counters: HashMap[uint256, uint256]


# @dev Emitted when a batch is anchored. `batch_cid` names the stored
# batch from which anyone can rebuild the tree and its root.
event Anchored:
    asset_id: indexed(uint256)
    batch_index: indexed(uint256)
    root: bytes32
    count: uint256
    batch_cid: String[128]
    anchored_by: address


@deploy
def __init__(registry_: address):
    """
    @notice Deploys a ledger for the assets of `registry_`.
    @param registry_ The `AssetRegistry`.
    """
    assert registry_.is_contract, "cairn_ledger: registry is not a contract"
    registry = registry_


@external
def anchor(asset_id: uint256, root: bytes32, count: uint256, batch_cid: String[128]) -> uint256:
    """
    @notice Anchors a batch of `count` contributions to `asset_id` by
            the Merkle `root` of their leaves.
    @dev Only the asset's owner or one of its curators may anchor. A
         root can be anchored once per asset.
    @param asset_id The asset the contributions belong to.
    @param root The Merkle root of the batch; nonzero.
    @param count The number of contributions in the batch; nonzero and
           below 2**128.
    @param batch_cid The CID of the stored batch.
    @return uint256 The batch index, counted from 0 for each asset.
    """
    assert staticcall AssetRegistry(registry).can_anchor(
        asset_id, msg.sender
    ), "cairn_ledger: not owner or curator"
    assert root != empty(bytes32), "cairn_ledger: empty root"
    assert count != 0, "cairn_ledger: empty batch"
    assert count < (1 << 128), "cairn_ledger: count too large"
    assert self._roots[asset_id][root] == 0, "cairn_ledger: root already anchored"

    counters: uint256 = self._counters[asset_id]
    index: uint256 = counters & _MASK_64
    total: uint256 = (counters >> _TOTAL_SHIFT) + count
    # 2**64 batches or 2**192 contributions would take longer than the
    # chain will run; the checks keep the packing sound regardless.
    assert index < _MASK_64, "cairn_ledger: too many batches"
    assert total <= _MAX_TOTAL, "cairn_ledger: too many contributions"

    self._roots[asset_id][root] = (
        (count << _COUNT_SHIFT) | (index << _INDEX_SHIFT) | (block.timestamp & _MASK_64)
    )
    self._counters[asset_id] = (total << _TOTAL_SHIFT) | (index + 1)
    log Anchored(
        asset_id=asset_id,
        batch_index=index,
        root=root,
        count=count,
        batch_cid=batch_cid,
        anchored_by=msg.sender,
    )
    return index


@external
@view
def batch_count(asset_id: uint256) -> uint256:
    """
    @notice The number of batches anchored for `asset_id`.
    @param asset_id The asset.
    @return uint256 The number of batches.
    """
    return self._counters[asset_id] & _MASK_64


@external
@view
def total_contributions(asset_id: uint256) -> uint256:
    """
    @notice The number of contributions anchored for `asset_id`, over
            all its batches.
    @param asset_id The asset.
    @return uint256 The number of contributions.
    """
    return self._counters[asset_id] >> _TOTAL_SHIFT


@external
@view
def is_anchored(asset_id: uint256, root: bytes32) -> bool:
    """
    @notice Whether `root` is anchored for `asset_id`.
    @param asset_id The asset.
    @param root The Merkle root.
    @return bool Whether the root is anchored.
    """
    return self._roots[asset_id][root] != 0


@external
@view
def batch_of(asset_id: uint256, root: bytes32) -> (uint256, uint256, uint256):
    """
    @notice The batch that anchored `root` for `asset_id`.
    @param asset_id The asset.
    @param root The Merkle root; must be anchored.
    @return uint256 The batch index.
    @return uint256 The number of contributions in the batch.
    @return uint256 The block timestamp of the anchoring.
    """
    record: uint256 = self._roots[asset_id][root]
    assert record != 0, "cairn_ledger: root not anchored"
    return (
        (record >> _INDEX_SHIFT) & _MASK_64,
        record >> _COUNT_SHIFT,
        record & _MASK_64,
    )


@external
@view
def verify(
    asset_id: uint256, root: bytes32, leaf: bytes32, proof: DynArray[bytes32, _MAX_PROOF_LENGTH]
) -> bool:
    """
    @notice Whether `leaf` belongs to the batch `root` anchored for
            `asset_id`, by the inclusion `proof`.
    @dev OpenZeppelin `MerkleProof.verify`: each step hashes the sorted
         pair, so a proof carries no left/right flags.
    @param asset_id The asset.
    @param root The Merkle root of the batch.
    @param leaf The leaf hash (not the contribution itself).
    @param proof The sibling hashes from the leaf up to the root.
    @return bool `False` if `root` is not anchored for the asset or
            the proof does not lead to it.
    """
    if self._roots[asset_id][root] == 0:
        return False
    computed: bytes32 = leaf
    for node: bytes32 in proof:
        if convert(computed, uint256) < convert(node, uint256):
            computed = keccak256(abi_encode(computed, node))
        else:
            computed = keccak256(abi_encode(node, computed))
    return computed == root
