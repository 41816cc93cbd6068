# pragma version ~=0.4.0
"""
@title Cairn prepaid vault
@custom:contract-name PrepaidVault
@license Apache-2.0
@notice Holds users' prepaid deposits for one gateway, so that its
        operator holds no user money. The gateway serves requests off
        chain and anchors, on the `ContributionLedger` under its own
        asset, the Merkle root of each user's cumulative spend; it then
        draws from a user's balance only the spend that such a root
        proves and it has not drawn yet. Drawn tokens stay here, in the
        revenue pool, until the gateway funds a `RevenueDistributor`
        epoch with them. The pool is every token held beyond users'
        balances, so a licence sold with this vault as its treasury
        pays into it too. A user leaves by asking for a withdrawal and,
        after the notice period (during which the gateway may still
        draw what the user spent), taking what is left of it.
@dev Leaves are OpenZeppelin `StandardMerkleTree` leaves for
     ["address", "uint256"] (user, cumulative spend):
     keccak256(keccak256(abi.encode(user, cumulative))). A user's
     cumulative spend never goes down, so an old root can never draw
     again what a newer one drew. The contract trusts the amounts the
     anchored root states, as the distributor trusts its roots; every
     root is public with its tree, so an overcharge is provable, and
     no user ever loses more than the balance it chose to deposit.
     Tokens sent here other than by deposit (a licence sale naming this
     vault as treasury, or a mistake) join the revenue pool.
"""


# @dev We import the built-in `IERC20` interface.
from ethereum.ercs import IERC20


# @dev The part of the `ContributionLedger` this contract consults.
interface ContributionLedger:
    def is_anchored(asset_id: uint256, root: bytes32) -> bool: view


# @dev The part of the `RevenueDistributor` this contract pays through.
interface RevenueDistributor:
    def token() -> address: view
    def fund_epoch(root: bytes32, amount: uint256, tree_cid: String[128]) -> uint256: nonpayable


# @dev The longest spend proof accepted (enough for 2**32 users), the
# most users one `draw_many` call draws from, and the longest notice a
# deployment may impose on its users.
_MAX_PROOF_LENGTH: constant(uint256) = 32
_MAX_DRAWS: constant(uint256) = 64
_MAX_NOTICE: constant(uint256) = 90 * 86400
_UNANCHORED: constant(String[31]) = "cairn_vault: root not anchored"


# @dev Bit layout of an account: the amount drawn from it so far in
# bits 128..255, its balance in bits 0..127; so a draw reads and
# writes one slot. Bit layout of a withdrawal request: the timestamp
# from which it may be taken in bits 128..255, the amount in bits
# 0..127 (a larger request is kept as 2**128 - 1: all there is).
_HIGH_SHIFT: constant(uint256) = 128
_MASK_128: constant(uint256) = (1 << 128) - 1


# @dev The token deposits are made in (the distributor's token), the
# ledger whose anchored roots justify draws, the distributor whose
# epochs the revenue pool funds, the only account that may draw and
# fund epochs, its asset on the ledger (spend roots are anchored under
# it), and the seconds between a withdrawal request and the withdrawal.
token: public(immutable(address))
ledger: public(immutable(address))
distributor: public(immutable(address))
gateway: public(immutable(address))
gateway_asset: public(immutable(uint256))
notice_period: public(immutable(uint256))


# @dev The sum of users' balances (what is held beyond it is the
# revenue pool), and the tokens paid into distributor epochs so far.
total_balances: public(uint256)
total_funded: public(uint256)


# @dev Each account's packed drawn amount and balance, and its packed
# withdrawal request (zero for none).
_accounts: HashMap[address, uint256]
_withdrawals: HashMap[address, uint256]


# @dev Emitted when `sender` credits `account` with `amount`.
event Deposited:
    account: indexed(address)
    amount: uint256
    sender: address
    balance: uint256


# @dev Emitted when the gateway draws `amount` from `account`, whose
# cumulative spend `root` proves to be `cumulative`.
event Drawn:
    account: indexed(address)
    root: indexed(bytes32)
    cumulative: uint256
    amount: uint256


# @dev Emitted when the revenue pool funds distributor epoch `epoch`.
event RevenueFunded:
    epoch: indexed(uint256)
    root: bytes32
    amount: uint256


# @dev Emitted when `account` asks to withdraw `amount` from `available_at`
# on; an amount of 0 withdraws the request.
event WithdrawalRequested:
    account: indexed(address)
    amount: uint256
    available_at: uint256


# @dev Emitted when `account` is paid `amount` of its balance.
event Withdrawn:
    account: indexed(address)
    amount: uint256


@deploy
def __init__(
    token_: address,
    ledger_: address,
    distributor_: address,
    gateway_: address,
    gateway_asset_: uint256,
    notice_period_: uint256,
):
    """
    @notice Deploys a vault for the deposits `gateway_` draws from.
    @param token_ The ERC-20 token; the distributor's token.
    @param ledger_ The `ContributionLedger`.
    @param distributor_ The `RevenueDistributor`.
    @param gateway_ The account that draws and funds epochs.
    @param gateway_asset_ The gateway's asset, under which it anchors spend roots.
    @param notice_period_ Seconds a withdrawal waits; 1 to 90 days' worth.
    """
    assert token_.is_contract, "cairn_vault: token is not a contract"
    assert ledger_.is_contract, "cairn_vault: ledger is not a contract"
    assert distributor_.is_contract, "cairn_vault: distributor is not a contract"
    assert staticcall RevenueDistributor(distributor_).token() == token_, "cairn_vault: token mismatch"
    assert gateway_ != empty(address), "cairn_vault: no gateway"
    assert gateway_asset_ != 0, "cairn_vault: no gateway asset"
    assert notice_period_ != 0, "cairn_vault: no notice period"
    assert notice_period_ <= _MAX_NOTICE, "cairn_vault: notice period too long"
    token = token_
    ledger = ledger_
    distributor = distributor_
    gateway = gateway_
    gateway_asset = gateway_asset_
    notice_period = notice_period_


@external
@nonreentrant
def deposit(amount: uint256):
    """
    @notice Credits the caller with `amount` tokens pulled from it.
    @param amount The tokens; nonzero. The caller must have approved this contract.
    """
    self._deposit(msg.sender, amount)


@external
@nonreentrant
def deposit_for(account: address, amount: uint256):
    """
    @notice Credits `account` with `amount` tokens pulled from the caller
            (how a gateway moves custodial balances here).
    @param account The account credited; nonzero.
    @param amount The tokens; nonzero. The caller must have approved this contract.
    """
    assert account != empty(address), "cairn_vault: no account"
    self._deposit(account, amount)


@external
@nonreentrant
def draw(
    root: bytes32, account: address, cumulative: uint256, proof: DynArray[bytes32, _MAX_PROOF_LENGTH]
) -> uint256:
    """
    @notice Moves into the revenue pool what `account` spent up to
            `cumulative` and was not drawn yet, as the anchored spend
            `root` proves.
    @dev Only the gateway may call this. Refused when nothing is owed
         beyond what was drawn, or the balance cannot cover it.
    @param root A spend root anchored under the gateway's asset.
    @param account The user.
    @param cumulative The user's cumulative spend in the root's leaf.
    @param proof The sibling hashes from the leaf up to `root`.
    @return uint256 The amount drawn.
    """
    assert msg.sender == gateway, "cairn_vault: not the gateway"
    assert staticcall ContributionLedger(ledger).is_anchored(gateway_asset, root), _UNANCHORED
    assert self._leads_to(account, cumulative, proof, root), "cairn_vault: invalid proof"
    packed: uint256 = self._accounts[account]
    drawn: uint256 = packed >> _HIGH_SHIFT
    balance: uint256 = packed & _MASK_128
    assert cumulative > drawn, "cairn_vault: nothing to draw"
    # Cannot underflow: checked just above.
    amount: uint256 = unsafe_sub(cumulative, drawn)
    assert amount <= balance, "cairn_vault: exceeds balance"
    self._charge(account, root, cumulative, amount, balance)
    self.total_balances -= amount
    return amount


@external
@nonreentrant
def draw_many(
    root: bytes32,
    accounts: DynArray[address, _MAX_DRAWS],
    cumulatives: DynArray[uint256, _MAX_DRAWS],
    proofs: DynArray[DynArray[bytes32, _MAX_PROOF_LENGTH], _MAX_DRAWS],
) -> uint256:
    """
    @notice `draw` for several users of one anchored spend root.
    @dev Only the gateway may call this. An invalid proof refuses the
         whole call; a user with nothing new to draw, or whose balance
         cannot cover it (a withdrawal may land first in the same
         block), is skipped, so that one user cannot sink the batch.
    @param root A spend root anchored under the gateway's asset.
    @param accounts The users.
    @param cumulatives Each user's cumulative spend in the root.
    @param proofs Each user's proof.
    @return uint256 The total drawn.
    """
    assert msg.sender == gateway, "cairn_vault: not the gateway"
    assert len(cumulatives) == len(accounts), "cairn_vault: length mismatch"
    assert len(proofs) == len(accounts), "cairn_vault: length mismatch"
    assert staticcall ContributionLedger(ledger).is_anchored(gateway_asset, root), _UNANCHORED
    total: uint256 = 0
    for i: uint256 in range(len(accounts), bound=_MAX_DRAWS):
        account: address = accounts[i]
        cumulative: uint256 = cumulatives[i]
        assert self._leads_to(account, cumulative, proofs[i], root), "cairn_vault: invalid proof"
        packed: uint256 = self._accounts[account]
        drawn: uint256 = packed >> _HIGH_SHIFT
        balance: uint256 = packed & _MASK_128
        if cumulative <= drawn or cumulative - drawn > balance:
            continue
        amount: uint256 = unsafe_sub(cumulative, drawn)
        self._charge(account, root, cumulative, amount, balance)
        total += amount
    self.total_balances -= total
    return total


@external
@nonreentrant
def fund_epoch(root: bytes32, amount: uint256, tree_cid: String[128]) -> uint256:
    """
    @notice Pays `amount` of the revenue pool into a new distributor
            epoch with payout `root`, whose tree is stored at `tree_cid`.
    @dev Only the gateway may call this. The tokens go straight from
         this contract to the distributor.
    @custom:security Checks, then effects, then the calls.
    @param root The Merkle root of the (account, amount) payout tree; nonzero.
    @param amount The tokens; nonzero and at most the pool.
    @param tree_cid The CID of the stored payout tree.
    @return uint256 The distributor epoch.
    """
    assert msg.sender == gateway, "cairn_vault: not the gateway"
    assert amount != 0, "cairn_vault: zero amount"
    held: uint256 = staticcall IERC20(token).balanceOf(self)
    assert amount <= held - self.total_balances, "cairn_vault: exceeds revenue pool"
    self.total_funded += amount
    assert extcall IERC20(token).approve(distributor, amount), "cairn_vault: approve failed"
    epoch: uint256 = extcall RevenueDistributor(distributor).fund_epoch(root, amount, tree_cid)
    log RevenueFunded(epoch=epoch, root=root, amount=amount)
    return epoch


@external
def request_withdrawal(amount: uint256):
    """
    @notice Asks to withdraw `amount` once the notice period has passed,
            replacing any earlier request and restarting the notice; 0
            withdraws the request.
    @param amount The tokens. More than the balance (such as
           `max_value(uint256)`) asks for all there will be.
    """
    kept: uint256 = min(amount, _MASK_128)
    available_at: uint256 = 0
    if kept != 0:
        available_at = block.timestamp + notice_period
    self._withdrawals[msg.sender] = (available_at << _HIGH_SHIFT) | kept
    log WithdrawalRequested(account=msg.sender, amount=kept, available_at=available_at)


@external
@nonreentrant
def withdraw() -> uint256:
    """
    @notice Pays the caller its requested amount, or its balance if that
            is less, once the notice period has passed.
    @custom:security Checks, then effects, then the token transfer.
    @return uint256 The tokens paid.
    """
    request: uint256 = self._withdrawals[msg.sender]
    assert request != 0, "cairn_vault: no withdrawal requested"
    assert block.timestamp >= request >> _HIGH_SHIFT, "cairn_vault: notice period not over"
    packed: uint256 = self._accounts[msg.sender]
    amount: uint256 = min(request & _MASK_128, packed & _MASK_128)
    assert amount != 0, "cairn_vault: nothing to withdraw"
    self._withdrawals[msg.sender] = 0
    # Cannot underflow: `amount` is at most the balance, in the low bits.
    self._accounts[msg.sender] = unsafe_sub(packed, amount)
    self.total_balances -= amount
    assert extcall IERC20(token).transfer(msg.sender, amount), "cairn_vault: transfer failed"
    log Withdrawn(account=msg.sender, amount=amount)
    return amount


@external
@view
def balance_of(account: address) -> uint256:
    """@notice What `account` has deposited and not had drawn or withdrawn."""
    return self._accounts[account] & _MASK_128


@external
@view
def drawn(account: address) -> uint256:
    """@notice What the gateway has drawn from `account`: its latest draw's cumulative."""
    return self._accounts[account] >> _HIGH_SHIFT


@external
@view
def revenue_pool() -> uint256:
    """@notice Tokens drawn (or paid in: all held beyond balances) not yet paid out."""
    return staticcall IERC20(token).balanceOf(self) - self.total_balances


@external
@view
def pending_withdrawal(account: address) -> (uint256, uint256):
    """
    @notice `account`'s withdrawal request.
    @param account The user.
    @return uint256 The amount asked for (0: none; 2**128 - 1: all).
    @return uint256 The timestamp from which it may be taken.
    """
    request: uint256 = self._withdrawals[account]
    return (request & _MASK_128, request >> _HIGH_SHIFT)


@internal
def _deposit(account: address, amount: uint256):
    """@notice Credits `account` with `amount` pulled from the caller; a fee on transfer is refused."""
    assert amount != 0, "cairn_vault: zero amount"
    packed: uint256 = self._accounts[account]
    balance: uint256 = (packed & _MASK_128) + amount
    assert balance <= _MASK_128, "cairn_vault: balance too large"
    self._accounts[account] = packed + amount
    self.total_balances += amount
    held: uint256 = staticcall IERC20(token).balanceOf(self)
    assert extcall IERC20(token).transferFrom(
        msg.sender, self, amount
    ), "cairn_vault: transfer failed"
    received: uint256 = staticcall IERC20(token).balanceOf(self) - held
    assert received == amount, "cairn_vault: received less than amount"
    log Deposited(account=account, amount=amount, sender=msg.sender, balance=balance)


@internal
@pure
def _leads_to(
    account: address, cumulative: uint256, proof: DynArray[bytes32, _MAX_PROOF_LENGTH], root: bytes32
) -> bool:
    """@notice Whether leaf (account, cumulative) is in tree `root` by `proof` (OZ `MerkleProof`)."""
    computed: bytes32 = keccak256(keccak256(abi_encode(account, cumulative)))
    for node: bytes32 in proof:
        if convert(computed, uint256) < convert(node, uint256):
            computed = keccak256(abi_encode(computed, node))
        else:
            computed = keccak256(abi_encode(node, computed))
    return computed == root


@internal
def _charge(account: address, root: bytes32, cumulative: uint256, amount: uint256, balance: uint256):
    """@notice Records a draw of `amount <= balance`; the caller adds it to the pool."""
    assert cumulative <= _MASK_128, "cairn_vault: cumulative too large"
    self._accounts[account] = (cumulative << _HIGH_SHIFT) | unsafe_sub(balance, amount)
    log Drawn(account=account, root=root, cumulative=cumulative, amount=amount)
