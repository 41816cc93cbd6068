"""Selling and buying licences from the command line against a node process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.test_cli import Cli, cli  # noqa: F401  (the fixture)
from tests.compute.conftest import save_tiny_model

pytestmark = [pytest.mark.process, pytest.mark.slow]


def test_offer_buy_hold_and_download_a_licensed_model(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    folder = save_tiny_model(tmp_path / "tiny", "causal-lm")
    registered = cli(
        "model", "register", str(folder), "--name", "tiny", "--licence", "MIT", "--from", "alice"
    ).stdout
    found = re.search(r"Registered model (\d+)", registered)
    assert found, registered
    model = found.group(1)
    assert "has no licence offers" in cli("licence", "list", model).stdout

    refused = cli(
        "licence",
        "offer",
        model,
        "--from",
        "bob",
        "--terms",
        "commercial",
        "--price",
        "2",
        ok=False,
    )
    assert "not the asset owner" in refused.stderr
    bad = cli(
        "licence", "offer", model, "--from", "alice", "--terms", "forever", "--price", "2", ok=False
    )
    assert "unknown licence terms 'forever'" in bad.stderr
    offered = cli(
        "licence",
        "offer",
        model,
        "--from",
        "alice",
        "--terms",
        "commercial",
        "--price",
        "2",
        "--copies",
        "5",
        "--days",
        "30",
    ).stdout
    offer = re.search(r"Licence offer (\d+)", offered)
    assert offer, offered
    offer_id = offer.group(1)
    listed = cli("licence", "list", model).stdout
    assert (
        "commercial" in listed and "2 CAIRN" in listed and "0/5" in listed and "30 days" in listed
    )

    out = tmp_path / "download"
    refused = cli("model", "download", model, "--out", str(out), "--as", "carol", ok=False)
    assert f"buy licence {offer_id} (commercial, 2 CAIRN)" in refused.stderr
    bought = cli("licence", "buy", offer_id, "--from", "carol").stdout
    assert "2 CAIRN" in bought
    held = cli("licence", "held", "carol").stdout
    assert "valid" in held and "commercial" in held
    downloaded = cli("model", "download", model, "--out", str(out), "--as", "carol").stdout
    assert "files" in downloaded and (out / "config.json").is_file()
    assert "1/5" in cli("licence", "list", model).stdout

    refused = cli("licence", "transfer", offer_id, "0x" + "11" * 20, "--from", "carol", ok=False)
    assert "not transferable" in refused.stderr
    cli("licence", "withdraw", offer_id, "--from", "alice")
    assert "withdrawn" in cli("licence", "list", model).stdout
    sold_out = cli("licence", "buy", offer_id, "--from", "bob", ok=False)
    assert "withdrawn from sale" in sold_out.stderr
