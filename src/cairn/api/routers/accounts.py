"""Accounts, balances and token transfers."""

from __future__ import annotations

from fastapi import APIRouter

from cairn.api.deps import AccountsDep, SessionAddress, SessionSigner
from cairn.api.schemas import TokenTransfer, TxResult, Unlock
from cairn.core.amounts import parse_smallest_units
from cairn.economy.accounts import AccountState, HeldAccount, Holdings, Unlocked

router = APIRouter(tags=["accounts"])


@router.get("/accounts", response_model=list[HeldAccount])
def list_accounts(accounts: AccountsDep) -> list[HeldAccount]:
    """Accounts whose keystores live in this node's data folder."""
    return accounts.held()


@router.get("/accounts/{address}", response_model=AccountState)
def get_account(accounts: AccountsDep, address: str) -> AccountState:
    """Balances and the next nonce of any address; label and lock state if this node holds it."""
    return accounts.state(address)


@router.post("/accounts/{address}/unlock", response_model=Unlocked)
def unlock(accounts: AccountsDep, address: str, body: Unlock, me: SessionAddress) -> Unlocked:
    """Unlock the signed-in account's key on this node with its password."""
    return accounts.unlock(address, body.password, by=me)


@router.get("/balances/{address}", response_model=Holdings)
def get_balances(accounts: AccountsDep, address: str) -> Holdings:
    """CAIRN token and ether balances of an address."""
    return accounts.holdings(address)


@router.post("/tokens/transfer", response_model=TxResult)
def transfer_tokens(accounts: AccountsDep, body: TokenTransfer, signer: SessionSigner) -> TxResult:
    """Send CAIRN from the signed-in account (whose key this node holds) to another address."""
    done = accounts.transfer(signer, body.to, parse_smallest_units(body.amount, "amount"))
    return TxResult(**vars(done))
