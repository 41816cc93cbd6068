"""`cairn key`, `cairn balance`, `cairn model price`, `cairn settle`, `cairn earnings`,
`cairn claim`: paying for models and being paid for what they stand on."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

from cairn.cli.common import (
    AMOUNT_ARGUMENT,
    DataDir,
    NodeUrl,
    client,
    find_account,
    keystore,
    unlock,
)
from cairn.cli.output import console, fields, parse_units, table, units
from cairn.core.amounts import MAX_PRICE
from cairn.core.errors import InvalidInput

key_app = typer.Typer(help="API keys for the OpenAI-compatible API at /v1.", no_args_is_help=True)
balance_app = typer.Typer(help="Prepaid balances that pay for API calls.", no_args_is_help=True)

Account = Annotated[str, typer.Option("--account", "-a", help="Your account: address or label")]


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _address(data_dir: Any, who: str) -> str:
    return who if who.startswith("0x") else find_account(keystore(data_dir), who).address


@key_app.command("create")
def key_create(
    account: Account,
    name: Annotated[str, typer.Option(help="A label to tell your keys apart")] = "",
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Create an API key; its secret is printed once, so keep it."""
    signer = unlock(data_dir, account)
    with client(node_url) as api:
        api.sign_in(signer)
        key = api.request("POST", "/keys", json={"name": name})
    fields("API key", {"id": key["key_id"], "account": key["account"], "name": key["name"]})
    console.print("secret (shown only now):")
    console.print(key["secret"], highlight=False, soft_wrap=True)


@key_app.command("list")
def key_list(account: Account, data_dir: DataDir = None, node_url: NodeUrl = None) -> None:
    """Your API keys."""
    signer = unlock(data_dir, account)
    with client(node_url) as api:
        api.sign_in(signer)
        keys = api.request("GET", "/keys")
    rows = [
        [
            k["key_id"],
            k["name"],
            _when(k["created_at"]),
            _when(k["last_used_at"]),
            "revoked " + _when(k["revoked_at"]) if k["revoked_at"] else "active",
        ]
        for k in keys
    ]
    table(f"API keys of {signer.address}", ["id", "name", "created", "last used", "state"], rows)


@key_app.command("revoke")
def key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...)")],
    account: Account,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    signer = unlock(data_dir, account)
    with client(node_url) as api:
        api.sign_in(signer)
        key = api.request("DELETE", f"/keys/{key_id}")
    console.print(f"revoked {key['key_id']}")


@balance_app.command("show")
def balance_show(
    account: Annotated[str, typer.Argument(help="Address or label")],
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """An account's prepaid balance."""
    address = _address(data_dir, account)
    with client(node_url) as api:
        b = api.request("GET", f"/prepaid/{address}")
    shown = {k: units(b[k]) for k in ("available", "deposited", "spent", "held", "withdrawn")}
    if b["withdrawing"] != "0":
        asked = "all" if b["withdrawing"] == "all" else units(b["withdrawing"])
        shown["withdrawing"] = f"{asked}, from {_when(b['withdrawal_available_at'])}"
    fields(f"Prepaid balance of {address} (CAIRN, held by the vault)", shown)


@balance_app.command("deposit", context_settings=AMOUNT_ARGUMENT)
def balance_deposit(
    amount: Annotated[str, typer.Argument(help="CAIRN to deposit, e.g. 10 or 0.5")],
    account: Account,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Deposit tokens from your account into the gateway's PrepaidVault: approve, then deposit
    (signed here, relayed). The vault, not the node, holds them; you may withdraw what you do
    not spend."""
    value = parse_units(amount)
    signer = unlock(data_dir, account)
    with client(node_url) as api:
        vault = api.request("GET", "/prepaid")["vault"]
        api.transact(signer, "CairnToken", "approve", vault, value)
        tx = api.transact(signer, "PrepaidVault", "deposit", value)
        b = api.request("GET", f"/prepaid/{signer.address}")
    console.print(f"deposited {amount} CAIRN into the vault {vault} in {tx['tx_hash']}")
    console.print(f"available: {units(b['available'])} CAIRN")


@balance_app.command("withdraw", context_settings=AMOUNT_ARGUMENT)
def balance_withdraw(
    account: Account,
    amount: Annotated[
        str, typer.Argument(help='CAIRN to withdraw, e.g. 10 or 0.5, or "all"')
    ] = "all",
    take: Annotated[
        bool, typer.Option("--take", help="Take the withdrawal asked for, once its notice passed")
    ] = False,
    cancel: Annotated[bool, typer.Option("--cancel", help="Withdraw the request")] = False,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Leave: ask the vault for your unspent tokens back; they are set aside at once (you
    cannot spend them meanwhile) and paid with `--take` after the vault's notice period, during
    which the gateway draws what you spent before."""
    if take and cancel:
        raise InvalidInput("--take and --cancel cannot go together")
    signer = unlock(data_dir, account)
    with client(node_url) as api:
        if take:
            tx = api.transact(signer, "PrepaidVault", "withdraw")
            b = api.request("GET", f"/prepaid/{signer.address}")
            console.print(f"withdrawn in {tx['tx_hash']}: {units(b['withdrawn'])} CAIRN in all")
            return
        value = 0 if cancel else (2**128 - 1 if amount == "all" else parse_units(amount))
        if not cancel and value == 0:
            raise InvalidInput("amount must be positive; to cancel a withdrawal, use --cancel")
        tx = api.transact(signer, "PrepaidVault", "request_withdrawal", value)
        b = api.request("GET", f"/prepaid/{signer.address}")
    if cancel:
        console.print(f"withdrawal cancelled in {tx['tx_hash']}")
    else:
        console.print(
            f"asked to withdraw {amount} CAIRN in {tx['tx_hash']}; take it from "
            f"{_when(b['withdrawal_available_at'])} with `cairn balance withdraw --take`"
        )
    console.print(f"available: {units(b['available'])} CAIRN")


def price(
    model: Annotated[int, typer.Argument(help="The model's asset id")],
    amount: Annotated[str, typer.Argument(help="CAIRN per 1,000 tokens, e.g. 0.01 (0 = free)")],
    account: Account,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Set the price of a model you own, per 1,000 tokens."""
    most = units(MAX_PRICE)  # the node's limit, said in the CAIRN this command takes
    try:
        too_large = Decimal(amount.strip()) > Decimal(most)
    except InvalidOperation:  # not a number: parse_units says so
        too_large = False
    if too_large:
        raise InvalidInput(f"price {amount} is too large: at most {most} CAIRN per 1,000 tokens")
    value = parse_units(amount, zero=True)
    signer = unlock(data_dir, account)
    with client(node_url) as api:
        api.sign_in(signer)
        api.request("PUT", f"/models/{model}/price", json={"price_per_1k": str(value)})
    console.print(f"model {model} costs {units(value)} CAIRN per 1,000 tokens")


def settle(
    account: Annotated[
        str, typer.Option("--account", "-a", help="The node's operator account (address or label)")
    ] = "operator",
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Close an epoch now: anchor waiting receipts, split revenue by lineage, fund the payouts
    (the node's operator; the node also settles on its own every CAIRN_EPOCH_SECONDS)."""
    signer = unlock(data_dir, account)
    with client(node_url) as api, console.status("Settling ..."):
        api.sign_in(signer)
        result = api.request("POST", "/epochs/settle")
    if not result["settled"]:
        console.print("nothing to settle: no anchored usage since the last epoch")
        return
    e = result["epoch"]
    fields(
        f"Epoch {e['epoch'] if e['epoch'] is not None else '(no revenue)'}",
        {
            "status": e["status"],
            "revenue (CAIRN)": units(e["revenue"]),
            "receipts": e["receipts"],
            "root": e["root"] or "-",
            "settlement": e["settlement_cid"],
            "tx": e["tx_hash"] or "-",
        },
    )


Who = Annotated[
    str | None, typer.Argument(help="Address or label [default: every account in this keystore]")
]


def _accounts(data_dir: Any, who: str | None) -> list[tuple[str, str]]:
    """(name, address) of one account, or of every account in the local keystore."""
    if who is not None:
        return [(who, _address(data_dir, who))]
    return [(info.label or info.address, info.address) for info in keystore(data_dir).list()]


def earnings(who: Who = None, data_dir: DataDir = None, node_url: NodeUrl = None) -> None:
    """What each epoch owes an account (or each of yours), and why."""
    rows = []
    unclaimed = 0
    with client(node_url) as api:
        for name, address in _accounts(data_dir, who):
            result = api.request("GET", f"/earnings/{address}")
            unclaimed += int(result["unclaimed"])
            for e in result["epochs"]:
                for line in e["lines"]:
                    why = line["role"]
                    if line["role"] == "compute" and line.get("job_id"):
                        why += f" (job {line['job_id'][:10]})"
                    rows.append(
                        [
                            name,
                            e["epoch"],
                            line.get("source_name") or line["source"],
                            line.get("via_name") or line["via"],
                            why,
                            units(line["amount"]),
                            "yes" if e["claimed"] else "no",
                        ]
                    )
    columns = ["account", "epoch", "model", "through", "role", "CAIRN", "claimed"]
    table("Earnings", columns, rows)
    console.print(f"unclaimed: {units(unclaimed)} CAIRN")


def claim(who: Who = None, data_dir: DataDir = None, node_url: NodeUrl = None) -> None:
    """Claim everything an account (or each of yours) is owed; tokens go to that account."""
    rows = []
    total = 0
    with client(node_url) as api, console.status("Claiming ..."):
        for name, address in _accounts(data_dir, who):
            if api.request("GET", f"/earnings/{address}")["unclaimed"] == "0":
                continue
            result = api.request("POST", "/claims", json={"account": address})
            for c in result["claims"]:
                rows.append([name, c["epoch"], units(c["amount"]), c["tx_hash"]])
                total += int(c["amount"])
    if not rows:
        console.print("nothing to claim")
        return
    table("Claimed", ["account", "epoch", "CAIRN", "tx"], rows)
    console.print(f"total: {units(total)} CAIRN")
