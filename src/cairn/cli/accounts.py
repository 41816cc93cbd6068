"""`cairn account create|list|show` and `cairn token balance|transfer`."""

from __future__ import annotations

from typing import Annotated

import typer

from cairn.cli.common import (
    AMOUNT_ARGUMENT,
    DataDir,
    NodeUrl,
    client,
    config,
    find_account,
    keystore,
    unlock,
)
from cairn.cli.output import console, fields, parse_units, table, units
from cairn.core.errors import CairnError, InvalidInput

account_app = typer.Typer(
    help="Accounts kept as keystore files in the data folder.", no_args_is_help=True
)
token_app = typer.Typer(help="The CAIRN payment token.", no_args_is_help=True)


@account_app.command("create")
def create(
    label: Annotated[str, typer.Option(help="A name to refer to the account by")] = "",
    data_dir: DataDir = None,
) -> None:
    """Create an account: a new key in an encrypted keystore v3 file."""
    settings = config(data_dir)
    store = keystore(data_dir)
    password = settings.password or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    info = store.create(password, label=label)
    fields(
        "New account",
        {"address": info.address, "label": info.label or "-", "keystore": str(info.path)},
    )


@account_app.command("list")
def list_accounts(data_dir: DataDir = None) -> None:
    """List the accounts in the data folder."""
    infos = keystore(data_dir).list()
    if not infos:
        console.print("No accounts yet: `cairn account create`.")
        return
    table(
        "Accounts",
        ["label", "address", "kind"],
        [[i.label or "-", i.address, "dev (unencrypted)" if i.dev else "encrypted"] for i in infos],
    )


@account_app.command("show")
def show(
    who: Annotated[str, typer.Argument(help="Address or label")],
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Show an account's balances and nonce on the node's chain."""
    address = who if who.startswith("0x") else find_account(keystore(data_dir), who).address
    with client(node_url) as api:
        info = api.account(address)
    token = info["token"]
    fields(
        f"Account {info['address']}",
        {
            "label": info.get("label") or "-",
            token["symbol"]: units(token["balance"], token["decimals"]),
            "ether": units(info["ether"], 18),
            "nonce": info["nonce"],
            "key on node": "yes" if info.get("held_by_node") else "no",
        },
    )


@token_app.command("balance")
def balance(
    who: Annotated[
        str, typer.Argument(help="Address or label [default: every local account]")
    ] = "",
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Show CAIRN balances of an address, or of every account in the data folder."""
    store = keystore(data_dir)
    if who:
        targets = (
            [(who, who)] if who.startswith("0x") else [(who, find_account(store, who).address)]
        )
    else:
        targets = [(i.label or "-", i.address) for i in store.list()]
    if not targets:
        raise InvalidInput("no accounts in the data folder: name an address")
    rows = []
    with client(node_url) as api:
        for label, address in targets:
            info = api.balances(address)
            token = info["token"]
            rows.append(
                [
                    label,
                    info["address"],
                    f"{units(token['balance'], token['decimals'])} {token['symbol']}",
                ]
            )
    table("Balances", ["label", "address", "balance"], rows)


@token_app.command("transfer", context_settings=AMOUNT_ARGUMENT)
def transfer(
    to: Annotated[str, typer.Argument(help="Recipient address or local label")],
    amount: Annotated[str, typer.Argument(help="Amount in whole tokens, e.g. 2.5")],
    sender: Annotated[str, typer.Option("--from", help="Sending account: address or label")],
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Send CAIRN: signed here with your key, relayed by the node."""
    store = keystore(data_dir)
    recipient = to if to.startswith("0x") else find_account(store, to).address
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        token = api.balances(account.address)["token"]
        value = parse_units(amount, int(token["decimals"]))
        result = api.transfer_tokens(account, recipient, value)
        after = api.balances(account.address)["token"]
    fields(
        "Transfer sent",
        {
            "from": account.address,
            "to": recipient,
            "amount": f"{amount} {token['symbol']}",
            "tx": result["tx_hash"],
            "block": result["block_number"],
            "gas used": result["gas_used"],
            "sender balance": f"{units(after['balance'], after['decimals'])} {after['symbol']}",
        },
    )


__all__ = ["CairnError", "account_app", "token_app"]
