"""Paid tasks on the pages: the dataset's owner opens one from the dataset's page (its budget
escrowed), contributors see what it pays on the contribute page, the owner closes it and gets
the rest back; nobody else can; a licensed dataset's download link serves only licence holders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cairn.node import Node
from tests.economy.conftest import TOKEN, World, build_world
from tests.web.test_licence_pages import flash, follow
from tests.web.test_market import by_testid, text


@pytest.fixture
def world(node: Node, tmp_path: Path) -> World:
    return build_world(node, tmp_path)


def test_the_owner_opens_a_paid_task_and_contributors_see_what_it_pays(
    world: World, web: httpx.Client, signed_in: Callable[[str], httpx.Client]
) -> None:
    node = world.node
    signed_in("alice")
    page = web.get(f"/assets/{world.dataset}")
    assert "No paid task is open" in page.text and 'data-testid="bounty-form"' in page.text
    before = node.chain.token.balance_of(world.alice.address)

    refused = follow(
        web,
        web.post(f"/datasets/{world.dataset}/bounties", data={"budget": "abc", "per_record": "1"}),
    )
    assert "No paid task was opened" in flash(refused) and "not a number" in flash(refused)
    assert node.chain.bounties.count() == 0

    opened = follow(
        web,
        web.post(
            f"/datasets/{world.dataset}/bounties",
            data={"budget": "3", "per_record": "0.5", "per_review": "0.1"},
        ),
    )
    assert "Opened paid task 1" in flash(opened)
    assert node.chain.token.balance_of(world.alice.address) == before - 3 * TOKEN
    shown = text(by_testid(opened.text, "bounty-1"))
    assert "0.5 CAIRN per accepted record" in shown and "0.1 CAIRN per useful review" in shown
    assert "Budget left: 3 of 3 CAIRN" in shown

    web.cookies.clear()
    signed_in("bob")
    contribute = web.get(f"/datasets/{world.dataset}/contribute")
    assert "0.5 CAIRN per accepted record" in text(by_testid(contribute.text, "bounties"))
    page = web.get(f"/assets/{world.dataset}")
    assert 'data-testid="bounty-form"' not in page.text and "Close and refund" not in page.text
    refused = follow(web, web.post("/bounties/1/close"))
    assert "was not closed" in flash(refused) and node.chain.bounties.get(1).is_open

    web.cookies.clear()
    signed_in("alice")
    held = node.chain.token.balance_of(world.alice.address)
    closed = follow(web, web.post("/bounties/1/close"))
    assert "Closed paid task 1; 3 CAIRN went back to its funder" in flash(closed)
    assert node.chain.token.balance_of(world.alice.address) == held + 3 * TOKEN


def test_the_download_link_of_a_licensed_dataset_serves_licence_holders(
    world: World, web: httpx.Client, signed_in: Callable[[str], httpx.Client]
) -> None:
    node = world.node
    assert web.get(f"/datasets/{world.dataset}/records.jsonl").status_code == 200
    offer = node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    refused = web.get(f"/datasets/{world.dataset}/records.jsonl")
    assert refused.status_code == 403 and f"buy licence {offer.offer_id}" in refused.text
    signed_in("bob")
    assert web.get(f"/datasets/{world.dataset}/records.jsonl").status_code == 403
    node.licences.buy(world.bob, offer.offer_id)
    served = web.get(f"/datasets/{world.dataset}/records.jsonl")
    assert served.status_code == 200 and served.content.count(b"\n") > 10
