"""The `cairn` command line: node, account, token and asset commands (Typer + Rich)."""

from __future__ import annotations

import sys

import typer

from cairn.cli import (
    accounts,
    apps,
    assets,
    bounties,
    compute,
    datasets,
    demo,
    economy,
    licences,
    models,
    node,
    recipes,
    verify,
)
from cairn.cli.common import AMOUNT_ARGUMENT
from cairn.cli.output import console, fail
from cairn.core.errors import CairnError

app = typer.Typer(
    name="cairn",
    help="Cairn: build AI models together as a community, and share what they earn.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(node.app, name="node")
app.add_typer(accounts.account_app, name="account")
app.add_typer(accounts.token_app, name="token")
app.add_typer(assets.app, name="asset")
app.add_typer(datasets.app, name="dataset")
app.add_typer(datasets.review_app, name="review")
app.add_typer(recipes.app, name="recipe")
app.command("contribute")(datasets.contribute)
app.command("train")(compute.train)
app.add_typer(compute.job_app, name="job")
app.add_typer(models.app, name="model")
app.add_typer(compute.worker_app, name="worker")
app.add_typer(verify.app, name="verify")
app.add_typer(licences.app, name="licence")
app.add_typer(apps.app, name="app")
app.add_typer(bounties.app, name="bounty")
app.add_typer(economy.key_app, name="key")
app.add_typer(economy.balance_app, name="balance")
models.app.command("price", context_settings=AMOUNT_ARGUMENT)(economy.price)
app.command("settle")(economy.settle)
app.command("earnings")(economy.earnings)
app.command("claim")(economy.claim)
app.command("demo")(demo.demo)


def main() -> None:
    """Console-script entry point: run the CLI; a CairnError is a message and exit code 1."""
    try:
        app()
    except CairnError as exc:
        fail(exc)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
