"""`cairn app create|list|show`: AI apps over Cairn models, paid per call."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cairn.cli.common import DataDir, NodeUrl, client, unlock
from cairn.cli.output import console, fields, parse_units, table, units
from cairn.core.policy import RevenueSplit

app = typer.Typer(
    help="Apps: a model with a system prompt, retrieval over a dataset and a price per call.",
    no_args_is_help=True,
)


def _price(amount: str, token: dict[str, Any]) -> str:
    if int(amount) == 0:
        return "free"
    return f"{units(amount, int(token['decimals']))} {token['symbol']}"


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="The app's name")],
    model: Annotated[int, typer.Option(help="The chat model asset it wraps")],
    sender: Annotated[str, typer.Option("--from", help="Owning account: address or label")],
    prompt: Annotated[str, typer.Option(help="System prompt put before every chat")] = "",
    dataset: Annotated[int | None, typer.Option(help="Retrieve passages from this dataset")] = None,
    version: Annotated[
        str | None, typer.Option(help="The dataset version (manifest CID); default the newest")
    ] = None,
    top_k: Annotated[int, typer.Option(help="Passages put into each prompt")] = 3,
    price: Annotated[str, typer.Option(help="Price per call in tokens, e.g. 0.01; 0 = free")] = "0",
    temperature: Annotated[float | None, typer.Option(help="Default temperature")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Default answer length")] = None,
    description: Annotated[str, typer.Option(help="What it does")] = "",
    split: Annotated[
        str, typer.Option(help="Revenue split owner,data,compute,upstream in basis points")
    ] = "5000,2500,0,2500",
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Build and publish an app; any OpenAI client then calls it with the app's id as model."""
    policy = RevenueSplit.parse(split)
    account = unlock(data_dir, sender)
    with client(node_url) as api:
        api.sign_in(account)
        token = api.chain()["token"]
        amount = parse_units(price, int(token["decimals"]), zero=True)
        body: dict[str, Any] = {
            "model": model,
            "system_prompt": prompt,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "dataset": dataset,
            "version": version,
            "top_k": top_k,
            "price_per_call": str(amount),
        }
        if dataset is not None:
            with console.status(
                f"Embedding dataset {dataset} for retrieval (once per version) ..."
            ):
                index = api.request(
                    "POST", "/apps/index", json={"dataset": dataset, "version": version}
                )
            console.print(f"retrieval index {index['index']}: {index['passages']} passages")
        checked = api.request("POST", "/apps/check", json=body)
        made = api.register_asset(
            account,
            kind="app",
            name=name,
            licence="proprietary",
            description=description,
            parents=checked["parents"],
            split=policy,
            extra={"app": checked["app"]},
        )
    fields(
        f"Published app {made['asset_id']}",
        {
            "name": made["name"],
            "model": model,
            "retrieval": f"dataset {dataset}, top {top_k}" if dataset is not None else "none",
            "price per call": _price(str(amount), token),
            "call it": f"model={made['asset_id']!r} at {api.base_url}/v1/chat/completions",
        },
    )


@app.command("list")
def list_apps(node_url: NodeUrl = None) -> None:
    """Every app on the node."""
    with client(node_url) as api:
        token = api.chain()["token"]
        apps = api.request("GET", "/apps")
    rows = [
        [
            a["asset_id"],
            a["name"],
            a["owner"],
            a["model"],
            f"dataset {a['retrieval']['dataset']}" if a["retrieval"] else "-",
            _price(a["price_per_call"], token),
        ]
        for a in apps
    ]
    table("Apps", ["id", "name", "owner", "model", "retrieval", "per call"], rows)


@app.command("show")
def show(
    app_id: Annotated[int, typer.Argument(help="The app's asset id")],
    node_url: NodeUrl = None,
) -> None:
    """One app: what it wraps, what it retrieves, what it costs."""
    with client(node_url) as api:
        token = api.chain()["token"]
        a = api.request("GET", f"/apps/{app_id}")
    spec, retrieval = a["app"], a["retrieval"]
    fields(
        f"App {app_id}: {a['name']}",
        {
            "owner": a["owner"],
            "model": a["model"],
            "system prompt": spec["system_prompt"] or "-",
            "defaults": ", ".join(
                f"{k}={spec[k]}"
                for k in ("temperature", "top_p", "max_tokens")
                if spec[k] is not None
            )
            or "-",
            "retrieval": (
                f"dataset {retrieval['dataset']} @ {retrieval['version']}, top {retrieval['top_k']}"
                if retrieval
                else "none"
            ),
            "price per call": _price(a["price_per_call"], token),
            "split": "/".join(str(a["split"][r]) for r in ("owner", "data", "compute", "upstream")),
        },
    )
