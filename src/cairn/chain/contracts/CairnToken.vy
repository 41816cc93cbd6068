# pragma version ~=0.4.0
"""
@title Cairn payment token
@custom:contract-name CairnToken
@license Apache-2.0
@notice A standard ERC-20 token (https://eips.ethereum.org/EIPS/eip-20)
        with 18 decimals, an `owner` who grants and revokes the minter
        role, and minters who create new tokens. Users pay for model use
        in this token and contributors are paid in it by the
        `RevenueDistributor`. A deployment may configure any other
        ERC-20 instead.
@dev An allowance of `max_value(uint256)` is treated as infinite and is
     never decreased by `transferFrom`, as in OpenZeppelin and snekmate.
"""


# @dev We import and implement the built-in `IERC20` interface.
from ethereum.ercs import IERC20
implements: IERC20


# @dev We import and implement the built-in `IERC20Detailed`
# interface (`name`, `symbol`, `decimals`).
from ethereum.ercs import IERC20Detailed
implements: IERC20Detailed


# @dev The number of decimals of the token, as for ether.
decimals: public(constant(uint8)) = 18


# @dev The user-readable name of the token.
name: public(immutable(String[32]))


# @dev The user-readable symbol of the token.
symbol: public(immutable(String[8]))


# @dev The amount of tokens owned by each account.
balanceOf: public(HashMap[address, uint256])


# @dev The amount `spender` may still move out of `owner`'s
# balance, as `allowance[owner][spender]`.
allowance: public(HashMap[address, HashMap[address, uint256]])


# @dev The amount of tokens in existence.
totalSupply: public(uint256)


# @dev The account that grants and revokes the minter role.
owner: public(address)


# @dev Whether an account may mint new tokens.
is_minter: public(HashMap[address, bool])


# @dev Emitted when the `owner` role moves to another account.
event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


# @dev Emitted when the minter role of `account` is granted
# (`allowed` is `True`) or revoked.
event MinterSet:
    account: indexed(address)
    allowed: bool


@deploy
def __init__(name_: String[32], symbol_: String[8]):
    """
    @notice Deploys the token; the deployer becomes the owner
            and the first minter.
    @param name_ The token name, at most 32 characters.
    @param symbol_ The token symbol, at most 8 characters.
    """
    name = name_
    symbol = symbol_
    self.owner = msg.sender
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)
    self.is_minter[msg.sender] = True
    log MinterSet(account=msg.sender, allowed=True)


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` tokens from the caller to `to`.
    @param to The receiver; cannot be the zero address.
    @param amount The amount of tokens to move.
    @return bool Always `True`; failures revert.
    """
    self._transfer(msg.sender, to, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Sets `amount` as the allowance of `spender` over the
            caller's tokens, replacing any earlier allowance.
    @dev `max_value(uint256)` is an infinite allowance.
    @param spender The account allowed to spend; cannot be the
           zero address.
    @param amount The allowance.
    @return bool Always `True`; failures revert.
    """
    assert spender != empty(address), "cairn_token: approve to the zero address"
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` tokens from `owner` to `to` using the
            caller's allowance, which is decreased unless infinite.
    @param owner The account whose tokens move.
    @param to The receiver; cannot be the zero address.
    @param amount The amount of tokens to move.
    @return bool Always `True`; failures revert.
    """
    current: uint256 = self.allowance[owner][msg.sender]
    if current != max_value(uint256):
        assert current >= amount, "cairn_token: insufficient allowance"
        # The assert above rules out an underflow.
        self.allowance[owner][msg.sender] = unsafe_sub(current, amount)
    self._transfer(owner, to, amount)
    return True


@external
def mint(to: address, amount: uint256):
    """
    @notice Creates `amount` new tokens for `to`.
    @dev Only a minter may call this.
    @param to The receiver; cannot be the zero address.
    @param amount The amount of tokens to create.
    """
    assert self.is_minter[msg.sender], "cairn_token: caller is not a minter"
    assert to != empty(address), "cairn_token: mint to the zero address"
    # Checked addition: the total supply bounds every balance, so only
    # it can overflow.
    self.totalSupply += amount
    # Cannot overflow: the balance is at most the total supply.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], amount)
    log IERC20.Transfer(sender=empty(address), receiver=to, value=amount)


@external
def set_minter(account: address, allowed: bool):
    """
    @notice Grants (`allowed` is `True`) or revokes the minter role
            of `account`.
    @dev Only the owner may call this.
    @param account The account whose role changes; cannot be the
           zero address.
    @param allowed Whether `account` may mint.
    """
    assert msg.sender == self.owner, "cairn_token: caller is not the owner"
    assert account != empty(address), "cairn_token: minter is the zero address"
    self.is_minter[account] = allowed
    log MinterSet(account=account, allowed=allowed)


@external
def transfer_ownership(new_owner: address):
    """
    @notice Hands the owner role to `new_owner`.
    @dev Only the owner may call this. Minter roles are unchanged.
    @param new_owner The next owner; cannot be the zero address.
    """
    assert msg.sender == self.owner, "cairn_token: caller is not the owner"
    assert new_owner != empty(address), "cairn_token: new owner is the zero address"
    self.owner = new_owner
    log OwnershipTransferred(previous_owner=msg.sender, new_owner=new_owner)


@internal
def _transfer(owner: address, to: address, amount: uint256):
    """
    @notice Moves `amount` tokens from `owner` to `to`.
    @param owner The account whose tokens move.
    @param to The receiver; cannot be the zero address.
    @param amount The amount of tokens to move.
    """
    assert to != empty(address), "cairn_token: transfer to the zero address"
    balance: uint256 = self.balanceOf[owner]
    assert balance >= amount, "cairn_token: transfer amount exceeds balance"
    # The assert above rules out an underflow.
    self.balanceOf[owner] = unsafe_sub(balance, amount)
    # Cannot overflow: the sum of all balances is the total supply.
    self.balanceOf[to] = unsafe_add(self.balanceOf[to], amount)
    log IERC20.Transfer(sender=owner, receiver=to, value=amount)
