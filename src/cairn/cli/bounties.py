"""`cairn bounty`: pay contributors per accepted record and reviewers per useful review."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cairn.cli.common import AMOUNT_ARGUMENT, DataDir, NodeUrl, client, unlock
from cairn.cli.output import console, fields, parse_units, table, units

app = typer.Typer(
    help="Bounties: escrow a budget that pays per accepted record and per useful review.",
    no_args_is_help=True,
)

Sender = Annotated[str, typer.Option("--from", help="Your account: address or label")]


def _show(b: dict[str, Any], token: dict[str, Any]) -> dict[str, Any]:
    d, symbol = int(token["decimals"]), token["symbol"]
    state = "open" if b["open"] else "closed"
    if b["open"] and b["exhausted"]:
        state = "open, budget exhausted"
    return {
        "dataset": b["dataset_id"],
        "per record": f"{units(b['per_record'], d)} {symbol}",
        "per useful review": f"{units(b['per_review'], d)} {symbol}",
        "budget": f"{units(b['budget'], d)} {symbol}",
        "remaining": f"{units(b['remaining'], d)} {symbol}",
        "paid out": f"{units(b['paid_out'], d)} {symbol}",
        "state": state,
        "funder": b["funder"],
    }


@app.command("open")
def open_(
    dataset_id: Annotated[int, typer.Argument(help="Your dataset")],
    sender: Sender,
    budget: Annotated[str, typer.Option(help="Tokens to escrow, e.g. 100")],
    per_record: Annotated[str, typer.Option(help="Paid per accepted record, e.g. 0.5")] = "0",
    per_review: Annotated[str, typer.Option(help="Paid per useful review, e.g. 0.1")] = "0",
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Open a bounty: each batch anchored from now on is paid until the budget runs out."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        token = api.chain()["token"]
        d = int(token["decimals"])
        with console.status("Escrowing the budget ..."):
            bounty = api.open_bounty(
                account,
                dataset_id,
                budget=parse_units(budget, d),
                per_record=parse_units(per_record, d, zero=True),
                per_review=parse_units(per_review, d, zero=True),
            )
    fields(f"Bounty {bounty['bounty_id']}", _show(bounty, token))


@app.command("list")
def list_(
    dataset_id: Annotated[int | None, typer.Option("--dataset", help="One dataset's")] = None,
    node_url: NodeUrl = None,
) -> None:
    """Bounties and what they pay, open ones first."""
    with client(node_url) as api:
        token = api.chain()["token"]
        path = f"/datasets/{dataset_id}/bounties" if dataset_id else "/bounties"
        found = api.request("GET", path)
    rows = []
    for b in found:
        shown = _show(b, token)
        rows.append(
            [
                b["bounty_id"],
                b["dataset_id"],
                shown["per record"],
                shown["per useful review"],
                shown["remaining"],
                shown["state"],
            ]
        )
    table("Bounties", ["bounty", "dataset", "per record", "per review", "remaining", "state"], rows)


@app.command("show")
def show(
    bounty_id: Annotated[int, typer.Argument(help="The bounty")],
    node_url: NodeUrl = None,
) -> None:
    """One bounty and every batch it paid."""
    with client(node_url) as api:
        token = api.chain()["token"]
        b = api.request("GET", f"/bounties/{bounty_id}")
    fields(f"Bounty {bounty_id}", _show(b, token))
    d, symbol = int(token["decimals"]), token["symbol"]
    table(
        "Batches paid",
        ["batch", "records", "reviews", "amount", "state"],
        [
            [
                p["batch_root"][:18] + "…",
                p["records"],
                p["reviews"],
                f"{units(p['amount'], d)} {symbol}",
                p["status"],
            ]
            for p in b["payouts"]
        ],
    )


@app.command("top-up", context_settings=AMOUNT_ARGUMENT)
def top_up(
    bounty_id: Annotated[int, typer.Argument(help="The bounty")],
    amount: Annotated[str, typer.Argument(help="Tokens to add")],
    sender: Sender,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Add to a bounty's budget."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        token = api.chain()["token"]
        b = api.top_up_bounty(account, bounty_id, parse_units(amount, int(token["decimals"])))
    fields(f"Bounty {bounty_id}", _show(b, token))


@app.command("close")
def close(
    bounty_id: Annotated[int, typer.Argument(help="The bounty")],
    sender: Sender,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Close a bounty; what is left goes back to its funder."""
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        token = api.chain()["token"]
        b = api.close_bounty(account, bounty_id)
    console.print(
        f"bounty {bounty_id} closed; refunded {units(b['refunded'], int(token['decimals']))} "
        f"{token['symbol']} to {b['funder']}"
    )
