"""`cairn asset register|transfer`: one way to make a dataset, and a transfer's own transaction."""

from __future__ import annotations

import re

from web3.logs import DISCARD

from tests.api.test_api import dev_account
from tests.cli.conftest import InProcess
from tests.conftest import LiveServer

TX = r"(0x[0-9a-f]{64})"


def test_a_dataset_is_made_with_dataset_create_only(cairn: InProcess, live: LiveServer) -> None:
    before = live.node.chain.registry.total_assets()
    refused = cairn(
        "asset", "register", "--kind", "dataset", "--name", "d", "--licence", "MIT",
        "--from", "alice", ok=False,
    ).text  # fmt: skip
    assert "a dataset is more than an asset: create datasets with `cairn dataset create`" in (
        refused
    )
    assert live.node.chain.registry.total_assets() == before
    created = cairn(
        "dataset", "create", "--name", "Polite replies", "--licence", "CC-BY-4.0",
        "--task", "instruction", "--from", "alice",
    ).text  # fmt: skip
    assert re.search(r"Dataset \d+: Polite replies", created), created
    assert (
        "model or app (a dataset: `cairn dataset create`)"
        in cairn("asset", "register", "--help").text
    )


def test_a_transfer_shows_the_transfers_transaction(cairn: InProcess, live: LiveServer) -> None:
    registered = cairn(
        "asset", "register", "--kind", "model", "--name", "m", "--licence", "MIT",
        "--from", "alice",
    ).text  # fmt: skip
    registration = re.search(rf"registered in tx │ {TX}", registered)
    asset = re.search(r"Registered asset (\d+)", registered)
    assert registration and asset, registered
    moved = cairn("asset", "transfer", asset.group(1), "bob", "--from", "alice").text
    transfer = re.search(rf"transfer tx │ {TX}", moved)
    assert transfer, moved
    assert f"registered in tx │ {registration.group(1)}" in moved  # still shown, as such
    assert transfer.group(1) != registration.group(1)
    node = live.node
    receipt = node.client.w3.eth.get_transaction_receipt(transfer.group(1))  # type: ignore[arg-type]
    [event] = node.chain.registry.contract.events.Transfer().process_receipt(
        receipt, errors=DISCARD
    )
    assert list(event["args"].values())[1] == dev_account(node, "bob").address
