"""The `cairn` command line: node, account, token and asset commands (Typer + Rich).

Each command's module is imported when the command runs (`cairn.cli.lazy`), so `cairn --help`
and a command that talks to a node over HTTP start in a fraction of a second.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import typer

from cairn.cli.lazy import Lazy, LazyGroup
from cairn.cli.output import console, fail
from cairn.core.errors import CairnError


class Cairn(LazyGroup):
    """`cairn`'s commands, in the order `cairn --help` lists them."""

    lazy: ClassVar[dict[str, Lazy]] = {
        "contribute": Lazy(
            "cairn.cli.datasets",
            "contribute",
            "Contribute records to a dataset: one signature covers the upload; each record gets "
            "a verdict.",
        ),
        "train": Lazy(
            "cairn.cli.compute",
            "train",
            "Start a training job from a recipe and follow its rounds.",
        ),
        "settle": Lazy(
            "cairn.cli.economy",
            "settle",
            "Close an epoch now: anchor waiting receipts, split revenue by lineage, fund the "
            "payouts\n(the node's operator; the node also settles on its own every "
            "CAIRN_EPOCH_SECONDS).",
        ),
        "earnings": Lazy(
            "cairn.cli.economy",
            "earnings",
            "What each epoch owes an account (or each of yours), and why.",
        ),
        "claim": Lazy(
            "cairn.cli.economy",
            "claim",
            "Claim everything an account (or each of yours) is owed; tokens go to that account.",
        ),
        "audit": Lazy(
            "cairn.cli.audit",
            "audit",
            "Re-derive every funded epoch (revenue settlements and bounty payouts) from the chain "
            "and\npublic blobs, and name any difference from what was funded.",
        ),
        "demo": Lazy(
            "cairn.cli.demo",
            "demo",
            "Run Cairn's whole story on a fresh embedded chain: data, training, paid use, payouts.",
        ),
        "node": Lazy("cairn.cli.node", "app", "Run and inspect a Cairn node."),
        "account": Lazy(
            "cairn.cli.accounts",
            "account_app",
            "Accounts kept as keystore files in the data folder.",
        ),
        "token": Lazy("cairn.cli.accounts", "token_app", "The CAIRN payment token."),
        "asset": Lazy("cairn.cli.assets", "app", "Datasets, models and apps registered on chain."),
        "dataset": Lazy("cairn.cli.datasets", "app", "Datasets: create, anchor, prove, export."),
        "review": Lazy("cairn.cli.datasets", "review_app", "Review other people's records."),
        "recipe": Lazy(
            "cairn.cli.recipes", "app", "No-code training recipes: write one, check one."
        ),
        "job": Lazy("cairn.cli.compute", "job_app", "Follow and control training jobs."),
        "model": Lazy(
            "cairn.cli.models",
            "app",
            "Model assets: register a model folder to train from or serve.",
        ),
        "worker": Lazy(
            "cairn.cli.compute", "worker_app", "Provide compute: run a worker for a node."
        ),
        "verify": Lazy(
            "cairn.cli.verify",
            "app",
            "Check what others did: replays of training work and of served answers.",
        ),
        "licence": Lazy(
            "cairn.cli.licences",
            "app",
            "Licences: sell the right to export, download or build on your assets.",
        ),
        "app": Lazy(
            "cairn.cli.apps",
            "app",
            "Apps: a model with a system prompt, retrieval over a dataset and a price per call.",
        ),
        "bounty": Lazy(
            "cairn.cli.bounties",
            "app",
            "Bounties: escrow a budget that pays per accepted record and per useful review.",
        ),
        "key": Lazy(
            "cairn.cli.economy", "key_app", "API keys for the OpenAI-compatible API at /v1."
        ),
        "balance": Lazy(
            "cairn.cli.economy", "balance_app", "Prepaid balances that pay for API calls."
        ),
    }


app = typer.Typer(
    name="cairn",
    cls=Cairn,
    help="Cairn: build AI models together as a community, and share what they earn.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def cairn() -> None:
    """The group itself: no options of its own (Typer needs a callback to make a group)."""


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
