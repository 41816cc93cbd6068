"""Topping up a prepaid balance from a page, and leaving: the deposit and withdrawal forms
(playground_deposit.html) that the playground, the apps and the earnings page show, and the
posts they send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse

from cairn.api.deps import AccountsDep, EconomyDep
from cairn.core.amounts import TOKEN_DECIMALS, parse_units
from cairn.economy.service import Economy
from cairn.economy.withdrawals import PendingWithdrawal
from cairn.web.render import redirect, units
from cairn.web.viewer import Viewer, ViewerDep

router = APIRouter()

BACK = ("/playground", "/earnings")  # where a deposit form may return to


@dataclass(frozen=True)
class DepositForm:
    """What the deposit form needs (playground_deposit.html)."""

    treasury: str  # a plain transfer here is deposited into the vault for its sender
    token: str
    vault: str | None  # PrepaidVault, which holds deposits
    notice_seconds: int | None  # between asking to withdraw and withdrawing
    can_send: bool  # whether the node holds the viewer's key, so it can send them
    back: str  # the page to return to: one of BACK
    withdrawal: PendingWithdrawal | None  # the viewer's request to leave, if any


def deposit_form(economy: Economy, viewer: Viewer | None, back: str) -> DepositForm:
    """The deposit form for `viewer`, returning to `back` (one of BACK)."""
    target = economy.deposit_target()
    return DepositForm(
        treasury=target.treasury,
        token=target.token,
        vault=target.vault,
        notice_seconds=target.notice_seconds,
        can_send=viewer is not None and viewer.key_on_node,
        back=back,
        withdrawal=None if viewer is None else economy.withdrawals.pending(viewer.address),
    )


@router.post("/playground/deposit")
def deposit(
    economy: EconomyDep,
    accounts: AccountsDep,
    viewer: ViewerDep,
    amount: Annotated[str, Form(max_length=80)],
    back: Annotated[str, Form(max_length=300)] = "/playground",
) -> RedirectResponse:
    """Deposit CAIRN from the signed-in wallet into the gateway's vault, when the node holds its key
    (what POST /api/v1/prepaid/deposits does)."""
    target = back if re.split(r"[?#]", back)[0] in BACK else "/playground"
    value = parse_units(amount)
    made = economy.balances.deposit(accounts.signer(viewer.address), value)
    return redirect(
        target,
        f"Deposited {units(value, TOKEN_DECIMALS)} CAIRN (tx {made.tx_hash}); "
        f"prepaid balance now {units(made.balance.available, TOKEN_DECIMALS)} CAIRN.",
    )


@router.post("/playground/withdraw")
def withdraw(
    economy: EconomyDep,
    accounts: AccountsDep,
    viewer: ViewerDep,
    action: Annotated[Literal["request", "take", "cancel"], Form()],
    amount: Annotated[str, Form(max_length=80)] = "",
    back: Annotated[str, Form(max_length=300)] = "/earnings",
) -> RedirectResponse:
    """Ask the vault for the signed-in wallet's unspent tokens back (an amount, or everything),
    take them once the notice has passed, or cancel the request, when the node holds its key
    (what `cairn balance withdraw` does)."""
    target = back if re.split(r"[?#]", back)[0] in BACK else "/earnings"
    signer = accounts.signer(viewer.address)
    if action == "take":
        paid = economy.withdrawals.take(signer)
        message = f"Withdrew {units(paid, TOKEN_DECIMALS)} CAIRN into your wallet."
    elif action == "cancel":
        economy.withdrawals.cancel(signer)
        message = "Withdrawal cancelled: the tokens are spendable again."
    else:
        value = None if amount.strip().lower() in ("", "all") else parse_units(amount)
        asked = economy.withdrawals.request(signer, value)
        what = "everything left" if value is None else f"{units(value, TOKEN_DECIMALS)} CAIRN"
        wait = asked.seconds_left
        message = (
            f"Asked to withdraw {what}: set aside now, and yours to take in {wait // 60} min "
            f"{wait % 60} s (the vault's notice period)."
        )
    balance = economy.balances.get(viewer.address)
    return redirect(
        target, f"{message} Prepaid balance now {units(balance.available, TOKEN_DECIMALS)} CAIRN."
    )
