"""The marketplace's read model: each listing's figures come from the real index, chain and
store, and each filter keeps exactly what it names."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cairn.assets.market import Market, MarketFilter, Quality, model_quality
from cairn.core.errors import InvalidInput
from cairn.node import Node
from cairn.serve.app_spec import AppSpec
from cairn.serve.prices import PER_1K, PER_CALL, CallPrice
from tests.compute.conftest import reverse_record
from tests.data.conftest import upload
from tests.economy.conftest import World

PRICE = 2 * 10**15  # 0.002 CAIRN per 1,000 tokens


def market(node: Node) -> Market:
    return Market(node.db, node.store, node.assets, node.data, node.economy.prices)


def by_id(node: Node, wanted: MarketFilter | None = None) -> dict[int, object]:
    return {s.asset_id: s for s in market(node).listings(wanted)}


def test_a_dataset_lists_its_anchored_records_acceptance_and_the_models_built_on_it(
    world: World, node: Node
) -> None:
    listing = market(node).listing(node.assets.get(world.dataset))
    version = node.data.anchoring.versions(world.dataset)[0]
    counts = node.data.datasets.get(world.dataset).counts
    assert listing.records == version.records == counts["anchored"]
    assert listing.versions == 1 and listing.tasks == ("instruction",)
    assert listing.pending == counts.get("review", 0) + counts.get("accepted", 0)
    assert listing.models_built == 1  # the trained model names it as a parent
    # 40 lines sent, none refused; those still in review are not decided yet
    assert listing.quality == Quality("acceptance", 1.0, True, True)
    assert listing.price is None and listing.weights_bytes is None


def test_a_dataset_s_acceptance_counts_lines_refused_by_validation(
    world: World, node: Node
) -> None:
    good = reverse_record(random.Random(11))
    sent = upload(node, world.bob, world.dataset, ["not json", "{}", good])
    listing = market(node).listing(node.assets.get(world.dataset))
    counts = node.data.datasets.get(world.dataset).counts
    kept = counts.get("accepted", 0) + counts.get("anchored", 0)
    decided = 43 - counts.get("review", 0)
    assert sent.total - sent.accepted == 2
    assert listing.quality is not None and listing.quality.value == pytest.approx(kept / decided)
    assert listing.quality.value < 1.0


def test_a_model_lists_its_weights_size_price_and_the_calls_and_tokens_it_served(
    world: World, node: Node, tmp_path: Path
) -> None:
    node.economy.prices.set(world.alice.address, world.model, PRICE)
    for prompt, completion in ((100, 50), (30, 20)):
        charge = node.economy.meter.open(world.key, world.model, "chat.completions", 1000)
        node.economy.meter.close(charge, prompt, completion)
    listing = market(node).listing(node.assets.get(world.model))
    folder = tmp_path / "tiny-causal-lm"  # what build_world stored as the weights
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert listing.weights_bytes == size > 0
    assert (listing.calls, listing.tokens) == (2, 200)
    assert listing.price == CallPrice(PRICE, PER_1K) and listing.method == "sft"
    assert listing.tasks == ("instruction",)  # the task of the dataset it was trained on
    assert listing.quality is None  # its training recorded no held-out metric
    base = market(node).listing(node.assets.get(world.base))
    assert base.price == CallPrice(0, PER_1K) and base.calls == 0 and base.models_built == 1


def test_a_model_s_quality_is_its_held_out_metric(world: World, node: Node) -> None:
    extra = node.catalog.metadata(node.assets.get(world.base))
    model = node.assets.register(
        world.alice,
        kind="model",
        name="sentiment",
        licence="MIT",
        extra={
            **extra,
            "training": {"method": "classify", "metrics": {"loss": 0.4, "accuracy": 0.9}},
        },
    )
    listing = market(node).listing(model)
    assert listing.quality == Quality("held-out accuracy", 0.9, True, True)
    assert listing.metrics == {"loss": 0.4, "accuracy": 0.9}
    assert model_quality({"loss": 1.25}) == Quality("held-out loss", 1.25, False, False)
    assert model_quality({"steps": True}) is None and model_quality({}) is None


def test_an_app_is_priced_per_call_by_its_spec_and_the_receipt_ledger_is_not_listed(
    world: World, node: Node
) -> None:
    ledger = node.economy.gateway_asset()  # an asset of kind app that serves nothing
    app = node.assets.register(
        world.alice,
        kind="app",
        name="helper",
        licence="MIT",
        parents=[world.model],
        extra={"app": AppSpec(model=world.model, price_per_call=7).to_extra()},
    ).asset_id
    listed = by_id(node)
    assert ledger not in listed and listed[app].price == CallPrice(7, PER_CALL)  # type: ignore[attr-defined]
    assert market(node).listing(node.assets.get(ledger)).price is None  # its own page
    # the spec's price is the only one: a per-token price on an app would never be charged
    with pytest.raises(InvalidInput, match="its price per call is part of its spec"):
        node.economy.prices.set(world.alice.address, app, 5)
    assert set(by_id(node, MarketFilter(price="paid"))) == {app}
    assert app in by_id(node, MarketFilter(max_price=7))
    assert app not in by_id(node, MarketFilter(max_price=6))


def test_each_filter_keeps_only_what_it_names(world: World, node: Node) -> None:
    node.economy.prices.set(world.alice.address, world.model, PRICE)
    everything = set(by_id(node))
    assert everything == {world.dataset, world.base, world.model}
    assert set(by_id(node, MarketFilter(kind="dataset"))) == {world.dataset}
    assert set(by_id(node, MarketFilter(kind="model"))) == {world.base, world.model}
    assert set(by_id(node, MarketFilter(licence="cc-by-4.0"))) == {world.dataset}
    assert set(by_id(node, MarketFilter(task="instruction"))) == {world.dataset, world.model}
    assert set(by_id(node, MarketFilter(price="free"))) == {world.base}  # datasets aren't priced
    assert set(by_id(node, MarketFilter(price="paid"))) == {world.model}
    assert set(by_id(node, MarketFilter(max_price=PRICE))) == {world.base, world.model}
    assert set(by_id(node, MarketFilter(max_price=PRICE - 1))) == {world.base}
    assert set(by_id(node, MarketFilter(q="REVERS"))) == {world.model}
    assert set(by_id(node, MarketFilter(q="reverser", kind="dataset"))) == set()
    facets = market(node).facets()
    assert facets == {"licence": ["Apache-2.0", "CC-BY-4.0"], "task": ["instruction"]}


def test_filters_from_a_query_string_are_checked() -> None:
    wanted = MarketFilter.parse(q="  polite ", kind="Model", price="FREE", max_price="0.5")
    assert wanted == MarketFilter(q="polite", kind="model", price="free", max_price=5 * 10**17)
    assert wanted.active and not MarketFilter.parse().active
    with pytest.raises(InvalidInput, match="kind must be one of dataset, model, app; got 'car'"):
        MarketFilter.parse(kind="car")
    with pytest.raises(InvalidInput, match="price must be free or paid"):
        MarketFilter.parse(price="cheap")
    for bad, why in (
        ("abc", "maximum price 'abc' is not a number"),
        ("-1", "maximum price '-1' must be zero or more"),
        ("1e-19", "with at most 18 decimals"),
    ):
        with pytest.raises(InvalidInput, match=why):
            MarketFilter.parse(max_price=bad)
    assert MarketFilter.parse(max_price="0").max_price == 0
    assert MarketFilter.parse(max_price="1.000000000000000001").max_price == 10**18 + 1
