"""`cairn model register`: bring a Hugging Face model folder to Cairn as a model asset."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from cairn.cli.common import AMOUNT_ARGUMENT, DataDir, NodeUrl, client, unlock
from cairn.cli.economy import price
from cairn.cli.output import console, fields
from cairn.core.errors import InvalidInput
from cairn.core.policy import RevenueSplit

app = typer.Typer(
    help="Model assets: register a model folder to train from or serve.", no_args_is_help=True
)
# Bytes sent of the folder's total; files above one chunk go in resumable chunks.
UPLOAD_COLUMNS = (
    TextColumn("[bold]{task.description}"),
    BarColumn(),
    TaskProgressColumn(),
    DownloadColumn(binary_units=True),
    TransferSpeedColumn(),
    TimeRemainingColumn(),
)


@app.command("register")
def register(
    folder: Annotated[
        Path, typer.Argument(help="A Hugging Face model folder (config.json, weights, tokenizer)")
    ],
    name: Annotated[str, typer.Option(help="Display name")],
    licence: Annotated[str, typer.Option(help="Licence identifier, e.g. Apache-2.0")],
    sender: Annotated[str, typer.Option("--from", help="Owning account: address or label")],
    family: Annotated[
        str, typer.Option(help="causal-lm (sft, lora, grpo, distill) or encoder (classify)")
    ] = "causal-lm",
    description: Annotated[str, typer.Option(help="What it is")] = "",
    split: Annotated[
        str,
        typer.Option(help="Revenue split owner,data,compute,upstream in basis points (sum 10000)"),
    ] = "10000,0,0,0",
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Upload a model folder by CID and register it as a model asset you own."""
    if family not in ("causal-lm", "encoder"):
        raise InvalidInput(f"--family must be causal-lm or encoder; got {family!r}")
    if not (folder / "config.json").is_file():
        raise InvalidInput(f"{folder} is not a Hugging Face model folder (no config.json)")
    policy = RevenueSplit.parse(split)
    account = unlock(data_dir, sender)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    with client(node_url) as api:
        api.sign_in(account)
        with Progress(*UPLOAD_COLUMNS, console=console) as progress:
            bar = progress.add_task(f"Uploading {folder.name}", total=total)
            weights = api.upload_folder(folder, lambda sent: progress.advance(bar, sent))
        with console.status("Registering ..."):
            asset = api.register_asset(
                account,
                kind="model",
                name=name,
                licence=licence,
                description=description,
                split=policy,
                extra={"model": {"weights": weights, "family": family}},
            )
    fields(
        f"Registered model {asset['asset_id']}",
        {"name": asset["name"], "owner": asset["owner"], "family": family, "weights": weights},
    )


@app.command("download")
def download(
    asset_id: Annotated[int, typer.Argument(help="The model asset")],
    out: Annotated[Path, typer.Option("--out", help="Folder to unpack the model into")],
    who: Annotated[
        str | None,
        typer.Option("--as", help="Your account (address or label), for a licensed model"),
    ] = None,
    merged: Annotated[
        bool,
        typer.Option(
            "--merged", help="A LoRA model: merge its adapters into the base, one plain model"
        ),
    ] = False,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Download a model's Hugging Face folder (a licensed model needs a licence held by `--as`).

    A LoRA model comes as its peft adapters (a few MB; `cairn_adapter.json` names the base model
    by asset id and CID); `--merged` gets the plain model with the adapters merged in."""
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} is not empty: choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    tar_path = out / f".model-{asset_id}.tar"
    with client(node_url) as api:
        if who:
            api.sign_in(unlock(data_dir, who))
        try:
            with console.status(f"Downloading model {asset_id} ..."):
                size = api.download_model(asset_id, tar_path, merged=merged)
            with tarfile.open(tar_path) as tar:
                tar.extractall(out, filter="data")  # refuses absolute paths and links out
        finally:
            tar_path.unlink(missing_ok=True)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    fields(f"Model {asset_id}", {"folder": str(out), "files": len(files), "bytes": size})


app.command("price", context_settings=AMOUNT_ARGUMENT)(price)  # `cairn model price`
