"""`cairn asset register|list|show|transfer`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cairn.cli.common import DataDir, NodeUrl, client, find_account, keystore, unlock
from cairn.cli.output import console, fields, table
from cairn.core.policy import RevenueSplit, refuse_bare_dataset

app = typer.Typer(help="Datasets, models and apps registered on chain.", no_args_is_help=True)


def _show(asset: dict[str, Any], title: str, transfer_tx: str | None = None) -> None:
    split = asset["split"]
    fields(
        title,
        {
            **({"transfer tx": transfer_tx} if transfer_tx else {}),
            "id": asset["asset_id"],
            "kind": asset["kind"],
            "name": asset["name"] or "(no metadata on this node)",
            "description": asset["description"] or "-",
            "owner": asset["owner"],
            "licence": asset["licence"],
            "parents": ", ".join(str(p) for p in asset["parents"]) or "-",
            "split (bps)": ", ".join(f"{k} {v}" for k, v in split.items()),
            "metadata": asset["metadata_cid"],
            "contract": f"{asset['contract']} token {asset['token_id']}",
            "registered in tx": asset["tx_hash"],
        },
    )


@app.command("register")
def register(
    kind: Annotated[str, typer.Option(help="model or app (a dataset: `cairn dataset create`)")],
    name: Annotated[str, typer.Option(help="Display name")],
    licence: Annotated[str, typer.Option(help="Licence identifier, e.g. CC-BY-4.0")],
    sender: Annotated[str, typer.Option("--from", help="Owning account: address or label")],
    description: Annotated[str, typer.Option(help="What it is")] = "",
    parent: Annotated[
        list[int] | None, typer.Option(help="Lineage parent asset id (repeatable)")
    ] = None,
    split: Annotated[
        str,
        typer.Option(help="Revenue split owner,data,compute,upstream in basis points (sum 10000)"),
    ] = "10000,0,0,0",
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Register a model or app you own: metadata stored by CID, the asset minted on chain."""
    refuse_bare_dataset(kind)  # before asking for a password
    policy = RevenueSplit.parse(split)
    account = unlock(data_dir, sender)
    with client(node_url) as api, console.status("Registering ..."):
        asset = api.register_asset(
            account,
            kind=kind,
            name=name,
            licence=licence,
            description=description,
            parents=list(parent or []),
            split=policy,
        )
    _show(asset, f"Registered asset {asset['asset_id']}")


@app.command("list")
def list_assets(
    kind: Annotated[str | None, typer.Option(help="dataset, model or app")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner address or local label")] = None,
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Text in name or description")
    ] = None,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """List registered assets, newest first."""
    if owner and not owner.startswith("0x"):
        owner = find_account(keystore(data_dir), owner).address
    with client(node_url) as api:
        found = api.assets(kind=kind, owner=owner, q=query)
    if not found:
        console.print("No assets match.")
        return
    table(
        "Assets",
        ["id", "kind", "name", "licence", "owner", "parents"],
        [
            [
                a["asset_id"],
                a["kind"],
                a["name"] or "-",
                a["licence"],
                a["owner"],
                ",".join(map(str, a["parents"])) or "-",
            ]
            for a in found
        ],
    )


@app.command("show")
def show(
    asset_id: Annotated[int, typer.Argument(help="Asset id")], node_url: NodeUrl = None
) -> None:
    """Show one asset with its on-chain identity."""
    with client(node_url) as api:
        _show(api.asset(asset_id), f"Asset {asset_id}")


@app.command("transfer")
def transfer(
    asset_id: Annotated[int, typer.Argument(help="Asset id")],
    to: Annotated[str, typer.Argument(help="Recipient address or local label")],
    sender: Annotated[str, typer.Option("--from", help="Current owner: address or label")],
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Transfer an asset you own to another account."""
    recipient = to if to.startswith("0x") else find_account(keystore(data_dir), to).address
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        asset = api.transfer_asset(account, asset_id, recipient)
    _show(asset, f"Asset {asset_id} now belongs to {asset['owner']}", asset["transfer_tx"])
