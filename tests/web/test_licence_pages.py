"""Licences on the asset page, through a real HTTP server: the offers and whether the asset is
gated, buying from the page (then the export API lets the buyer in), a refused buy that moves
nothing, and the owner's offers and withdrawals, which nobody else can make."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cairn.node import Node
from cairn.web.session import SESSION_COOKIE
from tests.conftest import LiveServer
from tests.economy.conftest import TOKEN, World, build_world
from tests.web.test_market import Form, by_testid, text

DAY = 86_400


@pytest.fixture
def world(node: Node, tmp_path: Path) -> World:
    """alice owns a dataset with an anchored version and a model; bob and carol hold CAIRN."""
    return build_world(node, tmp_path)


def follow(web: httpx.Client, reply: httpx.Response) -> httpx.Response:
    """The page a form post redirected to, with its flash message."""
    assert reply.status_code == 303, reply.text
    return web.get(reply.headers["location"])


def flash(page: httpx.Response) -> str:
    """The message shown once after a form post."""
    match = re.search(r'<p class="flash" role="status">(.*?)</p>', page.text, re.S)
    assert match, "no flash message on the page"
    return text(match.group(1))


def export(web: httpx.Client, dataset: int) -> httpx.Response:
    """GET the dataset's export with the page session's token, as the API's client would."""
    token = web.cookies[SESSION_COOKIE]
    return web.get(
        f"/api/v1/datasets/{dataset}/export", headers={"Authorization": f"Bearer {token}"}
    )


def test_an_asset_without_offers_is_not_gated_and_anonymous_viewers_are_sent_to_sign_in(
    web: httpx.Client, world: World
) -> None:
    for asset in (world.dataset, world.model):
        state = text(by_testid(web.get(f"/assets/{asset}").text, "licence-state"))
        assert state.startswith("Not gated: anyone may use it"), state

    offer = world.node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    page = web.get(f"/assets/{world.dataset}")
    assert page.status_code == 200
    assert text(by_testid(page.text, "licence-state")).startswith("Licensed:")
    row = text(by_testid(page.text, "offer-row"))
    assert row.startswith(f"#{offer.offer_id} commercial commercial use as it is")
    assert "1 CAIRN" in row and "0 / no cap" in row and "for ever" in row and "on sale" in row
    signin = by_testid(page.text, "signin-to-buy")
    assert signin == "Sign in to buy"
    assert f'href="/signin?next=/assets/{world.dataset}"' in page.text.replace("%2F", "/")
    assert 'data-testid="buy"' not in page.text and 'data-testid="offer-form"' not in page.text


def test_an_open_free_licence_makes_the_asset_free_for_all(web: httpx.Client, world: World) -> None:
    world.node.licences.offer(world.alice, world.model, price=0, terms="open")
    page = web.get(f"/assets/{world.model}")
    assert text(by_testid(page.text, "licence-state")).startswith("Free for all: an open licence")
    assert "open to all" in text(by_testid(page.text, "offer-row"))
    assert 'data-testid="signin-to-buy"' not in page.text  # nothing to buy


def test_buying_a_licence_on_the_page_lets_the_buyer_export(
    world: World, signed_in: Callable[[str], httpx.Client]
) -> None:
    node, bob = world.node, world.bob.address
    offer = node.licences.offer(world.alice, world.dataset, price=2 * TOKEN, terms="commercial")
    offer_id = offer.offer_id
    web = signed_in("bob")
    page = web.get(f"/assets/{world.dataset}")
    assert by_testid(page.text, "buy") == f"Buy licence #{offer_id}"
    assert text(by_testid(page.text, "held")) == "You hold no licence to this dataset."
    assert export(web, world.dataset).status_code == 403
    wallet = node.chain.token.balance_of(bob)

    bought = follow(web, web.post(f"/licences/{offer_id}/buy"))
    assert flash(bought).startswith(f"Bought licence {offer_id} (commercial) for 2 CAIRN")
    assert node.chain.token.balance_of(bob) == wallet - 2 * TOKEN
    held = text(by_testid(bought.text, "held"))
    assert held.startswith(f"Licence #{offer_id} (commercial), 1 copy: valid")
    assert held.endswith("never expires")
    assert "1 / no cap" in text(by_testid(bought.text, "offer-row"))
    reply = export(web, world.dataset)
    records = node.data.anchoring.versions(world.dataset)[0].records
    assert reply.status_code == 200 and reply.content.count(b"\n") == records
    assert [s.buyer for s in node.licences.sales(world.dataset)] == [bob]


def test_a_licence_with_a_duration_shows_its_expiry(
    world: World, signed_in: Callable[[str], httpx.Client]
) -> None:
    offer = world.node.licences.offer(
        world.alice, world.dataset, price=TOKEN, terms="non-commercial", duration=30 * DAY
    )
    web = signed_in("carol")
    page = follow(web, web.post(f"/licences/{offer.offer_id}/buy"))
    [held] = world.node.licences.held(world.carol.address)
    assert "30 days" in text(by_testid(page.text, "offer-row"))
    shown = text(by_testid(page.text, "held"))
    assert shown.startswith(f"Licence #{offer.offer_id} (non-commercial), 1 copy: valid until")
    assert shown.endswith("UTC") and held.expires > 0


def test_a_refused_buy_moves_nothing(
    world: World, signed_in: Callable[[str], httpx.Client]
) -> None:
    node, bob = world.node, world.bob.address
    offer = node.licences.offer(
        world.alice, world.dataset, price=TOKEN, terms="commercial", max_copies=1
    )
    offer_id = offer.offer_id
    node.licences.buy(world.carol, offer_id)
    web = signed_in("bob")
    page = web.get(f"/assets/{world.dataset}")
    row = text(by_testid(page.text, "offer-row"))
    assert "1 / 1" in row and "sold out" in row
    assert 'data-testid="buy"' not in page.text
    wallet = node.chain.token.balance_of(bob)

    refused = follow(web, web.post(f"/licences/{offer_id}/buy"))
    assert flash(refused) == (
        f"Licence {offer_id} was not bought: licence offer {offer_id} is sold out (1 copies)"
    )
    assert node.chain.token.balance_of(bob) == wallet
    assert node.licences.held(bob) == [] and node.licences.get(offer_id).sold == 1
    assert export(web, world.dataset).status_code == 403


def test_the_owner_makes_and_withdraws_an_offer(
    world: World, signed_in: Callable[[str], httpx.Client]
) -> None:
    node = world.node
    web = signed_in("alice")
    page = web.get(f"/assets/{world.dataset}")
    assert text(by_testid(page.text, "licence-state")).startswith("Not gated")
    form = Form()
    form.feed(by_testid(page.text, "offer-form"))
    assert form.controls == [
        "offer-terms",
        "offer-price",
        "offer-copies",
        "offer-days",
        "offer-transferable",
    ]
    assert set(form.controls) <= form.labels

    made = follow(
        web,
        web.post(
            f"/assets/{world.dataset}/licences",
            data={
                "terms": "commercial-remix",
                "price": "1.5",
                "max_copies": "3",
                "duration_days": "30",
                "transferable": "true",
            },
        ),
    )
    [offer] = node.licences.offers(world.dataset)
    assert flash(made) == f"Offered licence {offer.offer_id} (commercial-remix, 1.5 CAIRN)."
    assert (offer.price, offer.max_copies, offer.duration) == (3 * TOKEN // 2, 3, 30 * DAY)
    assert offer.transferable and offer.active
    row = text(by_testid(made.text, "offer-row"))
    assert "1.5 CAIRN" in row and "0 / 3" in row and "30 days" in row and "yes" in row
    assert "you own it" in text(by_testid(made.text, "licence-state"))
    assert 'data-testid="buy"' not in made.text  # the owner needs no licence

    withdrawn = follow(
        web, web.post(f"/licences/{offer.offer_id}/active", data={"active": "false"})
    )
    assert flash(withdrawn).startswith(f"Withdrew licence offer {offer.offer_id}")
    assert node.licences.get(offer.offer_id).active is False
    assert text(by_testid(withdrawn.text, "offer-state")) == "withdrawn"
    assert by_testid(withdrawn.text, "reoffer") == f"Offer again #{offer.offer_id}"


def test_an_invalid_offer_is_refused_and_makes_nothing(
    world: World, signed_in: Callable[[str], httpx.Client]
) -> None:
    web = signed_in("alice")
    for price, why in (("abc", "price 'abc' is not a number"), ("-1", "price '-1' must be zero")):
        reply = follow(
            web,
            web.post(f"/assets/{world.dataset}/licences", data={"terms": "open", "price": price}),
        )
        assert flash(reply).startswith(f"No offer was made: {why}")
    reply = follow(
        web, web.post(f"/assets/{world.dataset}/licences", data={"terms": "forever", "price": "1"})
    )
    assert "unknown licence terms 'forever'" in flash(reply)
    assert world.node.licences.offers(world.dataset) == []


def test_someone_else_sees_no_owner_form_and_cannot_offer_or_withdraw(
    world: World, signed_in: Callable[[str], httpx.Client]
) -> None:
    node = world.node
    offer = node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    web = signed_in("bob")
    page = web.get(f"/assets/{world.dataset}")
    assert 'data-testid="offer-form"' not in page.text
    assert 'data-testid="withdraw"' not in page.text

    refused = follow(
        web, web.post(f"/assets/{world.dataset}/licences", data={"terms": "open", "price": "0"})
    )
    assert flash(refused).startswith("No offer was made: only the owner of asset")
    refused = follow(web, web.post(f"/licences/{offer.offer_id}/active", data={"active": "false"}))
    assert "only the owner of asset" in flash(refused)
    assert [o.offer_id for o in node.licences.offers(world.dataset)] == [offer.offer_id]
    assert node.licences.get(offer.offer_id).active


def test_licence_forms_need_a_session_and_the_nodes_own_origin(
    web: httpx.Client, world: World, signed_in: Callable[[str], httpx.Client]
) -> None:
    offer = world.node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    reply = web.post(f"/licences/{offer.offer_id}/buy")
    assert reply.status_code == 303 and reply.headers["location"].startswith("/signin?next=")
    signed_in("bob")
    wallet = world.node.chain.token.balance_of(world.bob.address)
    forged = web.post(f"/licences/{offer.offer_id}/buy", headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert world.node.chain.token.balance_of(world.bob.address) == wallet
    assert world.node.licences.held(world.bob.address) == []


def test_a_value_its_field_cannot_take_comes_back_to_the_form_that_sent_it(
    world: World, signed_in: Callable[[str], httpx.Client], live: LiveServer
) -> None:
    web = signed_in("alice")
    form_page = f"{live.url}/assets/{world.dataset}?tab=licences"
    for field, value, why in (
        ("max_copies", "-1", "max_copies: Input should be greater than or equal to 0"),
        ("duration_days", "ten", "duration_days: Input should be a valid integer"),
    ):
        data = {"terms": "open", "price": "0", field: value}
        sent = web.post(
            f"/assets/{world.dataset}/licences", data=data, headers={"Referer": form_page}
        )
        assert sent.headers["location"] == f"/assets/{world.dataset}?tab=licences"
        back = follow(web, sent)
        assert flash(back).startswith(f"Not done: {why}"), flash(back)
        assert 'data-testid="offer-form"' in back.text  # the form, with the message above it
    # a post from no page of this node (no Referer) gets the error page naming the field
    bare = web.post(f"/assets/{world.dataset}/licences", data={"terms": "open", "max_copies": "-1"})
    assert bare.status_code == 422 and "max_copies: Input should be greater" in bare.text
    assert world.node.licences.offers(world.dataset) == []


def test_a_deposit_that_is_not_an_amount_comes_back_to_the_page_with_the_message(
    world: World, signed_in: Callable[[str], httpx.Client], live: LiveServer
) -> None:
    web = signed_in("bob")
    sent = web.post(
        "/playground/deposit",
        data={"amount": "lots"},
        headers={"Referer": f"{live.url}/earnings"},
    )
    back = follow(web, sent)
    assert flash(back) == "Not done: amount 'lots' is not a number"
    assert world.node.economy.balances.get(world.bob.address).deposited == 0
