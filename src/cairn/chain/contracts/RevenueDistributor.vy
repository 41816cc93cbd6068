# pragma version ~=0.4.0
"""
@title Cairn revenue distributor
@custom:contract-name RevenueDistributor
@license Apache-2.0
@notice Pays out each epoch's revenue by Merkle distribution, after
        Uniswap's merkle-distributor. Anyone funds an epoch with tokens
        and the root of a tree of (account, amount) leaves whose full
        tree is stored by CID; anyone then claims an account's amount
        with its inclusion proof, and the tokens go to that account.
        An account is paid at most once per epoch, and an epoch never
        pays out more than it was funded with.
@dev Leaves are OpenZeppelin `StandardMerkleTree` leaves for
     ["address", "uint256"]: keccak256(keccak256(abi.encode(account,
     amount))). The double hash keeps a 64-byte inner node from passing
     as a leaf.
"""


# @dev We import the built-in `IERC20` interface.
from ethereum.ercs import IERC20


# @dev The longest claim proof accepted: enough for 2**32 leaves.
_MAX_PROOF_LENGTH: constant(uint256) = 32


# @dev Bit layout of an epoch's amounts: the amount claimed so far
# in bits 128..255, the amount funded in bits 0..127. Both are
# bounded by the funded amount, which is below 2**128.
_CLAIMED_SHIFT: constant(uint256) = 128
_MASK_128: constant(uint256) = (1 << 128) - 1


# @dev The token this distributor pays in.
token: public(immutable(address))


# @dev The number of epochs funded; epochs are numbered from 1.
epoch_count: public(uint256)


# @dev The Merkle root of each epoch's distribution.
epoch_root: public(HashMap[uint256, bytes32])


# @dev The packed funded and claimed amounts of each epoch, so a
# claim reads and writes one slot for both.
_epoch_amounts: HashMap[uint256, uint256]


# @dev Which epochs each account has claimed: bit `epoch % 256` of
# `_claimed[account][epoch // 256]`. An account that claims epoch
# after epoch then writes to a slot that is already nonzero, which
# costs 2,900 gas instead of 20,000.
_claimed: HashMap[address, HashMap[uint256, uint256]]


# @dev Emitted when an epoch is funded. `tree_cid` names the stored
# tree from which anyone can rebuild `root`.
event EpochFunded:
    epoch: indexed(uint256)
    root: bytes32
    amount: uint256
    tree_cid: String[128]
    funder: address


# @dev Emitted when `account` is paid its `amount` for `epoch`.
event Claimed:
    epoch: indexed(uint256)
    account: indexed(address)
    amount: uint256


@deploy
def __init__(token_: address):
    """
    @notice Deploys a distributor paying in `token_`.
    @param token_ The ERC-20 token.
    """
    assert token_.is_contract, "cairn_distributor: token is not a contract"
    token = token_


@external
def fund_epoch(root: bytes32, amount: uint256, tree_cid: String[128]) -> uint256:
    """
    @notice Opens a new epoch that pays out `amount` tokens by the
            distribution with Merkle `root`, pulling the tokens from
            the caller.
    @dev The caller must have approved this contract for `amount`.
         Tokens that deliver less than `amount` (fee on transfer) are
         refused, so the funded amount is always held.
    @param root The Merkle root of the (account, amount) leaves; nonzero.
    @param amount The tokens to distribute; nonzero and below 2**128.
    @param tree_cid The CID of the stored tree.
    @return uint256 The new epoch number, counted from 1.
    """
    assert root != empty(bytes32), "cairn_distributor: empty root"
    assert amount != 0, "cairn_distributor: zero amount"
    assert amount <= _MASK_128, "cairn_distributor: amount too large"

    epoch: uint256 = self.epoch_count + 1
    self.epoch_count = epoch
    self.epoch_root[epoch] = root
    self._epoch_amounts[epoch] = amount

    held: uint256 = staticcall IERC20(token).balanceOf(self)
    assert extcall IERC20(token).transferFrom(
        msg.sender, self, amount
    ), "cairn_distributor: transfer failed"
    received: uint256 = staticcall IERC20(token).balanceOf(self) - held
    assert received == amount, "cairn_distributor: received less than amount"

    log EpochFunded(epoch=epoch, root=root, amount=amount, tree_cid=tree_cid, funder=msg.sender)
    return epoch


@external
def claim(
    epoch: uint256, account: address, amount: uint256, proof: DynArray[bytes32, _MAX_PROOF_LENGTH]
):
    """
    @notice Pays `account` its `amount` for `epoch`, given the inclusion
            proof of the leaf (account, amount). Anyone may submit it;
            the tokens always go to `account`.
    @dev Checks, then effects, then the token transfer: the claim is
         marked before the tokens move.
    @param epoch The epoch.
    @param account The account to pay.
    @param amount The amount in the account's leaf.
    @param proof The sibling hashes from the leaf up to the epoch's root.
    """
    word: uint256 = epoch >> 8
    bit: uint256 = 1 << (epoch & 255)
    claimed_word: uint256 = self._claimed[account][word]
    assert claimed_word & bit == 0, "cairn_distributor: already claimed"

    # OpenZeppelin `MerkleProof.verify`: hash each sorted pair. `abi_encode`
    # of two words builds the 64-byte preimage cheaper than `concat` does.
    computed: bytes32 = keccak256(keccak256(abi_encode(account, amount)))
    for node: bytes32 in proof:
        if convert(computed, uint256) < convert(node, uint256):
            computed = keccak256(abi_encode(computed, node))
        else:
            computed = keccak256(abi_encode(node, computed))
    assert computed == self.epoch_root[epoch], "cairn_distributor: invalid proof"

    amounts: uint256 = self._epoch_amounts[epoch]
    funded: uint256 = amounts & _MASK_128
    claimed: uint256 = (amounts >> _CLAIMED_SHIFT) + amount
    assert claimed <= funded, "cairn_distributor: exceeds funding"

    self._claimed[account][word] = claimed_word | bit
    self._epoch_amounts[epoch] = (claimed << _CLAIMED_SHIFT) | funded
    assert extcall IERC20(token).transfer(account, amount), "cairn_distributor: transfer failed"
    log Claimed(epoch=epoch, account=account, amount=amount)


@external
@view
def is_claimed(epoch: uint256, account: address) -> bool:
    """
    @notice Whether `account` has been paid for `epoch`.
    @param epoch The epoch.
    @param account The account.
    @return bool Whether the claim was made.
    """
    return self._claimed[account][epoch >> 8] & (1 << (epoch & 255)) != 0


@external
@view
def epoch_funded(epoch: uint256) -> uint256:
    """
    @notice The amount `epoch` was funded with.
    @param epoch The epoch.
    @return uint256 The funded amount; 0 for an unknown epoch.
    """
    return self._epoch_amounts[epoch] & _MASK_128


@external
@view
def epoch_claimed(epoch: uint256) -> uint256:
    """
    @notice The amount claimed from `epoch` so far.
    @param epoch The epoch.
    @return uint256 The claimed amount.
    """
    return self._epoch_amounts[epoch] >> _CLAIMED_SHIFT
