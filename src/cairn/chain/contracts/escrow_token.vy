# pragma version ~=0.4.0
"""
@title Cairn job escrow: the token
@custom:contract-name escrow_token
@license Apache-2.0
@notice The ERC-20 token that `JobEscrow` holds budgets and stakes
        in and pays out, and the two ways tokens move: pulled in from
        a payer that approved the escrow, paid out to an account.
@dev A module of `JobEscrow`, which initializes it; the stakes, jobs,
     payouts and slashing modules use it.
"""


# @dev We import the built-in `IERC20` interface.
from ethereum.ercs import IERC20


# @dev The token that budgets, stakes and payouts are paid in.
token: public(immutable(address))


@deploy
def __init__(token_: address):
    """
    @notice Pays in `token_`.
    @param token_ The ERC-20 token; must be a contract.
    """
    assert token_.is_contract, "cairn_escrow: token is not a contract"
    token = token_


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
def _pay(account: address, amount: uint256):
    """
    @notice Moves `amount` tokens from this contract to `account`.
    @param account The payee.
    @param amount The tokens to pay.
    """
    assert extcall IERC20(token).transfer(account, amount), "cairn_escrow: transfer failed"
