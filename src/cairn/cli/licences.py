"""`cairn licence`: offer licences to your assets, buy them, pass them on, see what you hold."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from cairn.cli.common import DataDir, NodeUrl, client, find_account, keystore, unlock
from cairn.cli.output import console, fields, parse_units, table, units
from cairn.core.errors import Forbidden, InvalidInput
from cairn.core.licensing import Terms

app = typer.Typer(
    help="Licences: sell the right to export, download or build on your assets.",
    no_args_is_help=True,
)

Sender = Annotated[str, typer.Option("--from", help="Your account: address or label")]
DAY = 86_400


def _duration(seconds: int) -> str:
    if not seconds:
        return "perpetual"
    days = seconds / DAY
    return f"{days:g} days" if days >= 1 else f"{seconds} s"


def _expires(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "never"


def _price(amount: str, decimals: int, symbol: str) -> str:
    return "free" if int(amount) == 0 else f"{units(amount, decimals)} {symbol}"


def _offer_rows(offers: list[dict[str, Any]], decimals: int, symbol: str) -> list[list[Any]]:
    return [
        [
            o["offer_id"],
            o["terms"],
            _price(o["price"], decimals, symbol),
            f"{o['sold']}/{o['max_copies']}" if o["max_copies"] else f"{o['sold']}/no cap",
            _duration(o["duration"]),
            "yes" if o["transferable"] else "no",
            "on sale" if o["buyable"] else ("withdrawn" if not o["active"] else "sold out"),
        ]
        for o in offers
    ]


def _token(api: Any) -> tuple[int, str]:
    token = api.chain()["token"]
    return int(token["decimals"]), str(token["symbol"])


@app.command("offer")
def offer(
    asset_id: Annotated[int, typer.Argument(help="The asset you own")],
    sender: Sender,
    terms: Annotated[
        str, typer.Option(help="open, non-commercial, commercial or commercial-remix")
    ],
    price: Annotated[str, typer.Option(help="Price of one copy in tokens, e.g. 2.5; 0 = free")],
    copies: Annotated[int, typer.Option(help="The most copies ever sold; 0 = no cap")] = 0,
    days: Annotated[float, typer.Option(help="How long a licence lasts; 0 = for ever")] = 0,
    transferable: Annotated[
        bool, typer.Option("--transferable/--not-transferable", help="May holders pass it on")
    ] = False,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Offer licences to an asset. Once an asset has an offer, exporting, downloading or
    training from it needs a licence (an `open` offer at price 0 keeps it free for all)."""
    Terms.parse(terms)
    if copies < 0 or days < 0:
        raise InvalidInput("--copies and --days cannot be negative")
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        decimals, symbol = _token(api)
        amount = parse_units(price, decimals, zero=True)
        made = api.offer_licence(
            account,
            asset_id,
            price=amount,
            terms=terms,
            max_copies=copies,
            duration=int(days * DAY),
            transferable=transferable,
        )
    table(
        f"Licence offer {made['offer_id']} on asset {asset_id}",
        ["offer", "terms", "price", "sold", "lasts", "transferable", "state"],
        _offer_rows([made], decimals, symbol),
    )


@app.command("list")
def list_offers(
    asset_id: Annotated[int, typer.Argument(help="The asset")],
    node_url: NodeUrl = None,
) -> None:
    """The licence offers on an asset."""
    with client(node_url) as api:
        decimals, symbol = _token(api)
        found = api.licence_offers(asset_id)
    if not found["offers"]:
        console.print(f"asset {asset_id} has no licence offers: anyone may use it")
        return
    table(
        f"Licences of asset {asset_id}"
        + (" (free for all: an open licence)" if found["open"] else ""),
        ["offer", "terms", "price", "sold", "lasts", "transferable", "state"],
        _offer_rows(found["offers"], decimals, symbol),
    )


@app.command("show")
def show(
    offer_id: Annotated[int, typer.Argument(help="The offer (its licence token id)")],
    node_url: NodeUrl = None,
) -> None:
    """One licence offer and what its terms allow."""
    with client(node_url) as api:
        decimals, symbol = _token(api)
        o = api.licence_offer(offer_id)
    fields(
        f"Licence offer {offer_id}",
        {
            "asset": o["asset_id"],
            "terms": f"{o['terms']}: {o['terms_text']}",
            "price": _price(o["price"], decimals, symbol),
            "sold": o["sold"],
            "cap": o["max_copies"] or "none",
            "lasts": _duration(o["duration"]),
            "transferable": "yes" if o["transferable"] else "no",
            "on sale": "yes" if o["buyable"] else "no",
        },
    )


@app.command("buy")
def buy(
    offer_id: Annotated[int, typer.Argument(help="The offer to buy")],
    sender: Sender,
    copies: Annotated[int, typer.Option(help="How many copies")] = 1,
    holder: Annotated[
        str | None, typer.Option("--for", help="Who receives it (default: you)")
    ] = None,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Buy a licence, paying its price on chain."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        decimals, symbol = _token(api)
        with console.status("Paying and minting the licence ..."):
            bought = api.buy_licence(account, offer_id, copies=copies, holder=holder)
    fields(
        f"Bought licence {offer_id}",
        {
            "asset": bought["asset_id"],
            "holder": bought["holder"],
            "copies": bought["copies"],
            "paid": _price(bought["paid"], decimals, symbol),
            "expires": _expires(bought["expires"]),
            "transaction": bought["tx_hash"],
        },
    )


@app.command("transfer")
def transfer(
    offer_id: Annotated[int, typer.Argument(help="The licence (offer id)")],
    to: Annotated[str, typer.Argument(help="The new holder's address")],
    sender: Sender,
    copies: Annotated[int, typer.Option(help="How many copies")] = 1,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Pass a licence on, where its terms allow."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        offer_ = api.licence_offer(offer_id)
        if not offer_["transferable"]:
            raise Forbidden(f"licence {offer_id} is not transferable under its terms")
        moved = api.transfer_licence(account, offer_id, to, copies)
    console.print(f"moved {moved['copies']} of licence {offer_id} to {moved['to']}")


@app.command("withdraw")
def withdraw(
    offer_id: Annotated[int, typer.Argument(help="The offer")],
    sender: Sender,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Stop selling an offer (licences already bought stay valid)."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        api.set_licence_active(account, offer_id, False)
    console.print(f"licence offer {offer_id} is withdrawn from sale")


@app.command("held")
def held(
    account: Annotated[str, typer.Argument(help="Address or label")],
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """The licences an account holds."""
    address = (
        account if account.startswith("0x") else find_account(keystore(data_dir), account).address
    )
    with client(node_url) as api:
        rows = [
            [
                h["offer_id"],
                h["asset_id"],
                h["terms"],
                h["copies"],
                _expires(h["expires"]) if h["duration"] else "never",
                "valid" if h["valid"] else "expired",
            ]
            for h in api.held_licences(address)
        ]
    table(
        f"Licences held by {address}",
        ["licence", "asset", "terms", "copies", "expires", "state"],
        rows,
    )
