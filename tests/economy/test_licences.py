"""Licences on a node: offers, purchases, expiry and transfers; the gate on export, download
and training; licence revenue settled by lineage and claimed."""

from __future__ import annotations

import io
import random
import tarfile
from fractions import Fraction

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from cairn.api.client import NodeClient
from cairn.core.errors import Forbidden, InvalidInput
from cairn.core.licensing import LicenceRequired, Terms, Use
from cairn.core.recipe import parse_recipe
from cairn.node import Node
from tests.compute.conftest import reverse_record
from tests.conftest import LiveServer
from tests.data.conftest import upload
from tests.economy.conftest import TOKEN, World

DAY = 86_400


def advance(node: Node, seconds: int) -> None:
    """Move the in-process chain's clock forward and mine a block."""
    tester = node.backend.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    tester.time_travel(node.client.w3.eth.get_block("latest")["timestamp"] + seconds)
    tester.mine_blocks(1)


def export(url: str, dataset: int, account: LocalAccount | None = None) -> httpx.Response:
    """GET the dataset's export as `account` (anonymous without one)."""
    with NodeClient(url) as api:
        if account is not None:
            api.sign_in(account)
        headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
        return api.http.get(f"/api/v1/datasets/{dataset}/export", headers=headers)


@pytest.fixture
def live_world(world: World) -> LiveServer:
    server = LiveServer(world.node).start()
    yield server
    server.stop()


# ------------------------------------------------------------------------------ offers


def test_only_the_owner_offers_and_a_refusal_changes_nothing(world: World) -> None:
    book = world.node.licences
    with pytest.raises(Forbidden, match="only the owner"):
        book.offer(world.bob, world.dataset, price=TOKEN, terms="commercial")
    assert book.offers(world.dataset) == []
    with pytest.raises(InvalidInput, match="unknown licence terms 'forever'"):
        book.offer(world.alice, world.dataset, price=TOKEN, terms="forever")
    offer = book.offer(world.alice, world.dataset, price=TOKEN, terms="commercial", max_copies=2)
    assert offer.terms.label == "commercial" and offer.max_copies == 2 and offer.buyable


def test_someone_else_is_forbidden_to_offer_or_withdraw_over_the_api(
    world: World, live_world: LiveServer
) -> None:
    offer = world.node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    with NodeClient(live_world.url) as api:
        api.sign_in(world.bob)
        auth = {"Authorization": f"Bearer {api.token}"}
        made = api.http.post(
            f"/api/v1/assets/{world.dataset}/licences",
            json={"price": "1", "terms": "commercial"},
            headers=auth,
        )
        assert made.status_code == 403, made.text
        assert made.json()["detail"].startswith(f"only the owner of asset {world.dataset}")
        withdrawn = api.http.post(
            f"/api/v1/licences/{offer.offer_id}/active", json={"active": False}, headers=auth
        )
        assert withdrawn.status_code == 403 and "only the owner" in withdrawn.json()["detail"]
    assert [o.offer_id for o in world.node.licences.offers(world.dataset)] == [offer.offer_id]
    assert world.node.licences.get(offer.offer_id).active


def test_a_capped_offer_sells_out(world: World) -> None:
    book = world.node.licences
    offer = book.offer(world.alice, world.dataset, price=TOKEN, terms="commercial", max_copies=1)
    book.buy(world.bob, offer.offer_id)
    with pytest.raises(InvalidInput, match="sold out"):
        book.buy(world.carol, offer.offer_id)
    book.set_active(world.alice, offer.offer_id, False)
    assert book.get(offer.offer_id).active is False
    assert [h.offer.offer_id for h in book.held(world.bob.address)] == [offer.offer_id]


# ------------------------------------------------------------------------------ the gate


def test_export_needs_a_licence_once_the_owner_offers_one(
    world: World, live_world: LiveServer
) -> None:
    node, url = world.node, live_world.url
    assert export(url, world.dataset).status_code == 200  # no offers: not gated
    offer = node.licences.offer(world.alice, world.dataset, price=5 * TOKEN, terms="commercial")

    refused = export(url, world.dataset)
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["title"] == "Licence required" and problem["use"] == "export"
    assert f"buy licence {offer.offer_id} (commercial, 5 CAIRN)" in problem["detail"]
    assert "sign in first" in problem["detail"]
    assert [o["offer_id"] for o in problem["offers"]] == [offer.offer_id]
    assert export(url, world.dataset, world.bob).status_code == 403
    assert export(url, world.dataset, world.alice).status_code == 200  # the owner

    paid_before = node.chain.token.balance_of(world.bob.address)
    with NodeClient(url) as api:  # bought by the wallet itself, relayed by the node
        bought = api.buy_licence(world.bob, offer.offer_id)
    assert bought["paid"] == str(5 * TOKEN) and bought["expires"] == 0
    assert node.chain.token.balance_of(world.bob.address) == paid_before - 5 * TOKEN
    reply = export(url, world.dataset, world.bob)
    records = node.data.anchoring.versions(world.dataset)[0].records
    assert reply.status_code == 200 and reply.content.count(b"\n") == records
    assert export(url, world.dataset, world.carol).status_code == 403


def test_record_listings_are_gated_but_contributors_see_their_own(
    world: World, live_world: LiveServer
) -> None:
    world.node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    with NodeClient(live_world.url) as api:
        with pytest.raises(Forbidden, match="is licensed"):
            api.request("GET", f"/datasets/{world.dataset}/records")
        api.sign_in(world.carol)
        own = api.request(
            "GET", f"/datasets/{world.dataset}/records", params={"contributor": world.carol.address}
        )
        assert own and {r["contributor"] for r in own} == {world.carol.address}


def test_an_open_licence_at_price_zero_keeps_the_asset_free(
    world: World, live_world: LiveServer
) -> None:
    book = world.node.licences
    book.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    assert export(live_world.url, world.dataset).status_code == 403
    book.offer(world.alice, world.dataset, price=0, terms="open")
    assert export(live_world.url, world.dataset).status_code == 200
    assert book.require(Use.TRAIN, world.dataset, world.carol.address) == "open licence"


def test_a_time_limited_licence_expires(world: World, live_world: LiveServer) -> None:
    node = world.node
    offer = node.licences.offer(
        world.alice, world.dataset, price=TOKEN, terms="non-commercial", duration=7 * DAY
    )
    bought = node.licences.buy(world.bob, offer.offer_id)
    assert bought.expires > 0
    assert export(live_world.url, world.dataset, world.bob).status_code == 200
    advance(node, 8 * DAY)
    assert export(live_world.url, world.dataset, world.bob).status_code == 403
    [held] = node.licences.held(world.bob.address)
    assert held.copies == 1 and held.valid is False


def test_a_transferable_licence_moves_the_right_and_a_bound_one_does_not(world: World) -> None:
    book = world.node.licences
    movable = book.offer(
        world.alice, world.dataset, price=TOKEN, terms="commercial", transferable=True
    )
    bound = book.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    book.buy(world.bob, movable.offer_id)
    book.buy(world.bob, bound.offer_id)
    with pytest.raises(InvalidInput, match="not transferable"):
        book.transfer(world.bob, bound.offer_id, world.carol.address)
    with pytest.raises(InvalidInput, match="holds 0"):
        book.transfer(world.carol, movable.offer_id, world.bob.address)
    book.transfer(world.bob, movable.offer_id, world.carol.address)
    assert (
        book.require(Use.EXPORT, world.dataset, world.carol.address)
        == f"licence {movable.offer_id}"
    )
    assert book.require(Use.EXPORT, world.dataset, world.bob.address) == f"licence {bound.offer_id}"


def test_training_needs_a_licence_that_permits_derivatives(world: World) -> None:
    node = world.node
    commercial = node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    node.licences.buy(world.bob, commercial.offer_id)
    recipe = parse_recipe(
        {
            "name": "needs a licence",
            "method": "sft",
            "base_model": world.base,
            "datasets": [{"dataset": world.dataset}],
            "budget": {"max_tokens": "0"},
        }
    )
    before = node.chain.token.balance_of(world.bob.address)
    with pytest.raises(LicenceRequired) as refused:
        node.jobs.create(world.bob.address, recipe)
    assert refused.value.use is Use.TRAIN and "no licence on offer covers this" in str(
        refused.value
    )
    assert node.jobs.list_jobs() == [] and node.chain.token.balance_of(world.bob.address) == before

    remix = node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial-remix")
    with pytest.raises(LicenceRequired, match=f"buy licence {remix.offer_id}"):
        node.jobs.create(world.bob.address, recipe)
    node.licences.buy(world.bob, remix.offer_id)
    assert node.licences.require(Use.TRAIN, world.dataset, world.bob.address) == (
        f"licence {remix.offer_id}"
    )


def test_a_licensed_model_downloads_only_for_holders(world: World, live_world: LiveServer) -> None:
    node = world.node
    offer = node.licences.offer(world.alice, world.model, price=2 * TOKEN, terms="commercial")
    with NodeClient(live_world.url) as api:
        api.sign_in(world.carol)
        with pytest.raises(Forbidden, match=f"buy licence {offer.offer_id}"):
            api.download_model(world.model, live_world.node.data_dir / "refused.tar")
        api.buy_licence(world.carol, offer.offer_id)
        target = live_world.node.data_dir / "model.tar"
        size = api.download_model(world.model, target)
    with tarfile.open(fileobj=io.BytesIO(target.read_bytes())) as tar:
        names = tar.getnames()
    assert size == target.stat().st_size and "config.json" in names
    assert any(n.endswith(".safetensors") for n in names)


# ------------------------------------------------------------------------------ revenue


def test_licence_revenue_is_settled_by_attribution_and_lineage_and_claimed(world: World) -> None:
    node, economy = world.node, world.node.economy
    data_offer = node.licences.offer(
        world.alice, world.dataset, price=3 * TOKEN, terms="commercial"
    )
    model_offer = node.licences.offer(world.alice, world.model, price=7 * TOKEN, terms="commercial")
    free = node.licences.offer(world.alice, world.dataset, price=0, terms="non-commercial")
    vault = node.chain.vault
    assert vault is not None and node.chain.licences.treasury() == vault.address
    pool, treasury = vault.revenue_pool(), node.chain.token.balance_of(economy.treasury)
    node.licences.buy(world.bob, data_offer.offer_id, copies=2)
    node.licences.buy(world.carol, model_offer.offer_id)
    node.licences.buy(world.carol, free.offer_id)
    # paid into the vault's revenue pool, never to an account the node holds
    assert vault.revenue_pool() == pool + 13 * TOKEN
    assert node.chain.token.balance_of(economy.treasury) == treasury
    # licence payments never count as prepaid deposits of the buyers
    assert economy.balances.get(world.bob.address).deposited == 0

    epoch = economy.settle()
    assert epoch is not None and epoch.status == "funded" and epoch.sales == 2
    assert int(epoch.revenue) == 13 * TOKEN
    assert vault.revenue_pool() == pool  # the vault funded the epoch
    sold = {s.paid: s.epoch_id for s in node.licences.sales(world.dataset)}
    assert sold == {str(6 * TOKEN): epoch.id, "0": None}  # a free licence earns nothing

    # By hand. The dataset's 6 CAIRN by its split (owner-only for this dataset? read it) and
    # attribution table; the model's 7 CAIRN by its split 20/40/20/20: owner alice, data the
    # dataset, compute bob 3 : carol 1, upstream the operator's base model.
    owed: dict[str, Fraction] = {}

    def add(account: str, amount: Fraction) -> None:
        owed[account] = owed.get(account, Fraction(0)) + amount

    dataset_split = node.assets.get(world.dataset).split
    table = node.data.anchoring.attribution(world.dataset)

    def dataset_revenue(amount: Fraction) -> None:
        add(world.alice.address, amount * dataset_split["owner"] / 10_000)
        for account, weight in table.items():
            add(account, amount * dataset_split["data"] / 10_000 * Fraction(weight, 10**18))

    dataset_revenue(Fraction(6 * TOKEN))
    model = Fraction(7 * TOKEN)
    add(world.alice.address, model * 2 / 10)
    add(node.operator.address, model * 2 / 10)
    dataset_revenue(model * 4 / 10)
    add(world.bob.address, model * 2 / 10 * Fraction(3, 4))
    add(world.carol.address, model * 2 / 10 * Fraction(1, 4))

    total = 0
    for account, exact in owed.items():
        [row] = economy.epochs.earnings(account).epochs
        assert abs(int(row.amount) - exact) <= 3, account
        total += int(row.amount)
        before = node.chain.token.balance_of(account)
        [claim] = economy.epochs.claim(account).claims
        assert node.chain.token.balance_of(account) == before + int(claim.amount)
    assert total == 13 * TOKEN
    sources = {line.source for line in economy.epochs.earnings(world.alice.address).epochs[0].lines}
    assert sources == {f"dataset {world.dataset}@{world.version}", f"model {world.model}"}
    assert economy.settle() is None  # sales are settled once


def test_a_sale_is_settled_at_the_version_current_when_it_sold(world: World) -> None:
    node, economy = world.node, world.node.economy
    offer = node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    node.licences.buy(world.bob, offer.offer_id)
    erin = Account.create()  # contributes after the sale
    upload(node, erin, world.dataset, [reverse_record(random.Random(9)) for _ in range(5)])
    node.data.anchoring.anchor(world.dataset)
    assert node.data.anchoring.versions(world.dataset)[0].version != world.version
    assert erin.address in node.data.anchoring.attribution(world.dataset)
    epoch = economy.settle()
    assert epoch is not None and int(epoch.revenue) == TOKEN
    assert not economy.epochs.earnings(erin.address).epochs
    assert economy.epochs.earnings(world.bob.address)  # in the version that was sold


def test_sales_to_another_treasury_are_not_this_nodes_revenue(world: World) -> None:
    node = world.node
    node.chain.licences.set_treasury(node.operator, world.alice.address)
    try:
        offer = node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
        node.licences.buy(world.bob, offer.offer_id)
        assert node.licences.sales() == []
    finally:
        node.chain.licences.set_treasury(node.operator, node.economy.treasury)


def test_terms_parse_by_label_and_number() -> None:
    assert Terms.parse("commercial-remix") is Terms.COMMERCIAL_REMIX
    assert Terms.parse(2) is Terms.NON_COMMERCIAL
    with pytest.raises(InvalidInput, match="use one of open, non-commercial"):
        Terms.parse("cc-by")
