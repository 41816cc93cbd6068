"""The earnings page on a real node and HTTP server: an epoch's lines and totals, claiming
(tokens move once), the provider's stake and work, API keys, and the prepaid balance."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cairn.compute.models import JobRow, WorkReportRow
from cairn.core.errors import Unauthorized
from cairn.node import Node
from cairn.web.render import units
from tests.data.conftest import dev
from tests.economy.conftest import TOKEN, World, build_world

PRICE = TOKEN // 100  # 0.01 CAIRN per 1,000 tokens
JOB = "0x" + "ab" * 32  # the job build_world's model says trained it


def _testid(page: str, name: str) -> str:
    """The text of the first element with data-testid=`name`, tags stripped."""
    match = re.search(rf'<(\w+)[^>]*data-testid="{name}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no {name} in the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(2))).split())


def _settled(node: Node, tmp_path: Path) -> World:
    """Carol paid for calls to the model, and an epoch split the revenue by lineage."""
    world = build_world(node, tmp_path)
    node.economy.prices.set(world.alice.address, world.model, PRICE)
    for used in (300, 700):
        charge = node.economy.meter.open(world.key, world.model, "chat.completions", 2000)
        node.economy.meter.close(charge, used, used)
    assert node.economy.settle() is not None
    return world


@pytest.fixture
def world(node: Node, tmp_path: Path) -> World:
    return _settled(node, tmp_path)


def test_earnings_show_each_epochs_lines_and_a_claim_pays_once(
    world: World, node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    bob = world.bob.address
    [epoch] = node.economy.epochs.earnings(bob).epochs
    owed = int(epoch.amount)
    web = signed_in("bob")
    page = web.get("/earnings")
    assert page.status_code == 200
    assert page.text.count('data-testid="epoch-row"') == 1
    assert _testid(page.text, "unclaimed-total") == units(owed, 18)
    roles = {line.role for line in epoch.lines}
    assert roles == {"data", "compute"}  # a contributor of the dataset and a provider of the job
    assert page.text.count('data-testid="earning-line"') == len(epoch.lines)
    assert "reverser" in page.text and f'href="/jobs/{JOB}"' in page.text
    assert f"Claim {units(owed, 18)} CAIRN" in page.text

    wallet = node.chain.token.balance_of(bob)
    claimed = web.post("/earnings/claim")
    assert claimed.status_code == 303 and claimed.headers["location"] == "/earnings"
    assert node.chain.token.balance_of(bob) == wallet + owed
    after = web.get("/earnings")
    assert f"Claimed {units(owed, 18)} CAIRN from epoch {epoch.epoch}" in after.text
    assert _testid(after.text, "unclaimed-total") == "0"
    assert _testid(after.text, "claimed-total") == f"{units(owed, 18)} CAIRN"
    assert _testid(after.text, "wallet-balance") == f"{units(wallet + owed, 2)} CAIRN"

    web.post("/earnings/claim")
    again = web.get("/earnings")
    assert "Nothing to claim: every funded epoch is already paid." in again.text
    assert node.chain.token.balance_of(bob) == wallet + owed


def test_an_account_that_earned_nothing_sees_why(
    node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    page = signed_in("alice").get("/earnings")
    assert page.status_code == 200 and 'data-testid="epoch-row"' not in page.text
    assert "No epoch has paid this account yet" in page.text
    assert "This account is not a compute provider" in page.text
    assert _testid(page.text, "unclaimed-total") == "0"


def test_a_provider_sees_its_stake_its_work_and_what_jobs_paid_it(
    world: World, node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    bob = world.bob
    stake = node.chain.escrow.min_stake() or TOKEN
    node.chain.escrow.register_provider(bob, node.chain.token, stake, "flower://bob")
    now = time.time()
    with node.db.session() as session:  # the index as a finished job leaves it
        session.add(
            JobRow(
                job_id=JOB,
                builder=world.alice.address,
                name="reverser run",
                method="sft",
                status="finished",
                recipe={},
                recipe_cid="",
                base_asset=world.base,
                datasets=[],
                budget=str(5 * TOKEN),
                escrowed=1,
                round=2,
                rounds=2,
                events_offset=0,
                history=[],
                metrics={},
                providers={bob.address: {"node_id": 1, "enlisted": True}},
                model_asset=world.model,
                payouts={bob.address: str(3 * TOKEN)},
                created_at=now,
                updated_at=now,
            )
        )
        for round_ in (1, 2):
            session.add(
                WorkReportRow(
                    job_id=JOB,
                    round=round_,
                    account=bob.address,
                    samples=40,
                    leaf="0x" + "00" * 32,
                    report={},
                    signature="0x",
                )
            )
    page = signed_in("bob").get("/earnings")
    assert _testid(page.text, "provider-stake") == f"{units(stake, 18)} CAIRN"
    assert _testid(page.text, "job-payouts") == "3 CAIRN"
    row = re.search(r'<tr data-testid="work-row">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row[1])]
    assert cells == [f"reverser run → model #{world.model}", "finished", "2", "80", "3"]
    compute = sum(
        int(line.amount)
        for e in node.economy.epochs.earnings(bob.address).epochs
        for line in e.lines
        if line.role == "compute"
    )
    assert f"Revenue earned through compute</dt><dd>{units(compute, 18)} CAIRN" in page.text


def test_api_keys_are_created_with_the_secret_shown_once_and_revoked(
    node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    alice = dev(node, "alice").address
    web = signed_in("alice")
    created = web.post("/earnings/keys", data={"name": "laptop"})
    assert created.status_code == 201
    secret = re.search(r'value="(cairn-sk-[^"]+)" data-testid="api-key-secret"', created.text)
    assert secret is not None
    key = node.economy.keys.authenticate(secret.group(1))
    assert key.account == alice and key.name == "laptop"
    listed = web.get("/earnings")
    assert secret.group(1) not in listed.text and key.key_id in listed.text

    revoked = web.post(f"/earnings/keys/{key.key_id}/revoke")
    assert revoked.status_code == 303
    assert f"Revoked API key {key.key_id} (laptop)." in web.get("/earnings").text
    with pytest.raises(Unauthorized, match="revoked"):
        node.economy.keys.authenticate(secret.group(1))

    signed_in("bob")  # another account may not revoke alice's key
    other, _ = node.economy.keys.create(alice, "other")
    refused = web.post(f"/earnings/keys/{other.key_id}/revoke")
    assert refused.status_code == 403 and "belongs to another account" in refused.text


def test_the_prepaid_balance_and_receipts_are_listed(
    world: World, node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    carol = world.carol.address
    balance = node.economy.balances.get(carol)
    page = signed_in("carol").get("/earnings")
    assert _testid(page.text, "prepaid-available") == f"{units(balance.available, 18)} CAIRN"
    assert balance.spent > 0
    assert page.text.count('data-testid="receipt-row"') == 2
    # the world's calls went through the meter alone: no generation, so no commitment
    assert page.text.count('data-testid="receipt-replay">no commitment<') == 2
    assert 'action="/playground/deposit"' in page.text
    assert 'value="/earnings#prepaid"' in page.text


def test_only_the_operator_settles_from_the_page(
    world: World, signed_in: Callable[[str], httpx.Client]
) -> None:
    web = signed_in("bob")
    assert 'data-testid="settle-button"' not in web.get("/earnings").text
    refused = web.post("/earnings/settle")
    assert refused.status_code == 403
    assert "only the node's operator" in html.unescape(refused.text)
