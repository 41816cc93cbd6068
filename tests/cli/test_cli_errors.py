"""What the CLI says when it refuses: one `error: ...` line and exit code 1 (what
`cairn.cli.main.main` prints for a `CairnError`), never Click's usage block and exit code 2,
and amounts in the CAIRN the commands take."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from typer.testing import CliRunner

from cairn.cli.main import app
from cairn.core.errors import CairnError
from tests.api.test_api import dev_account
from tests.conftest import LiveServer


class Refusal(NamedTuple):
    exit_code: int
    message: str  # the CairnError's message: the `error:` line main() prints
    output: str  # what Click printed itself


def refused(live: LiveServer, *args: str) -> Refusal:
    env = {"CAIRN_DATA_DIR": str(live.node.data_dir), "CAIRN_NODE": live.url, "COLUMNS": "200"}
    result = CliRunner().invoke(app, list(args), env=env)
    assert isinstance(result.exception, CairnError), (result.exit_code, result.output)
    return Refusal(result.exit_code, result.exception.message, result.output)


@pytest.fixture
def held_licence(live: LiveServer) -> int:
    """A licence offer that may not be passed on, of which bob holds a copy."""
    node = live.node
    alice, bob = dev_account(node, "alice"), dev_account(node, "bob")
    asset = node.assets.register(alice, kind="model", name="Polite bot", licence="MIT")
    offer = node.licences.offer(alice, asset.asset_id, price=0, terms="commercial")
    node.licences.buy(bob, offer.offer_id)
    return offer.offer_id


def test_a_refused_licence_transfer_is_an_error_line_not_a_usage_block(
    live: LiveServer, held_licence: int
) -> None:
    out = refused(live, "licence", "transfer", str(held_licence), "0x" + "11" * 20, "--from", "bob")
    assert out.exit_code == 1 and "Usage" not in out.output
    assert out.message == f"licence {held_licence} is not transferable under its terms"


def test_negative_amounts_reach_the_command_and_are_refused_by_it(live: LiveServer) -> None:
    positive = "amount '-5' must be positive with at most 18 decimals"
    for args, message in (
        (("token", "transfer", "bob", "-5", "--from", "alice"), positive),
        (("balance", "deposit", "-5", "--account", "alice"), positive),
        (("bounty", "top-up", "1", "-5", "--from", "alice"), positive),
        (  # a price may be 0: free
            ("model", "price", "1", "-5", "--account", "alice"),
            "amount '-5' must be zero or more with at most 18 decimals",
        ),
    ):
        out = refused(live, *args)
        assert out.exit_code == 1 and "No such option" not in out.output, args
        assert out.message == message, args


def test_a_price_too_large_is_said_in_cairn(live: LiveServer) -> None:
    for price in ("1e80", "1e19"):
        out = refused(live, "model", "price", "1", price, "--account", "alice")
        assert out.exit_code == 1
        assert out.message == (
            f"price {price} is too large: at most 1000000000000000000 CAIRN per 1,000 tokens"
        )
        assert "smallest" not in out.message
