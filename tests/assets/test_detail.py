"""The asset page's read model: batches read back from the chain, versions with their roots, the
attribution table, the lineage picture and who is paid from each token the asset earns."""

from __future__ import annotations

import pytest

from cairn.assets.detail import AssetDetails
from cairn.assets.market import Market
from cairn.core.errors import NotFound
from cairn.node import Node
from tests.data.conftest import dev, make_dataset
from tests.economy.conftest import World


def details(node: Node) -> AssetDetails:
    market = Market(node.db, node.store, node.assets, node.data, node.economy.prices)
    return AssetDetails(
        node.db,
        node.store,
        node.chain,
        node.assets,
        node.data,
        node.economy.epochs.lineage,
        market,
    )


def test_a_dataset_shows_its_anchored_batch_from_the_chain_and_its_version(
    world: World, node: Node
) -> None:
    d = details(node).get(world.dataset)
    version = node.data.anchoring.versions(world.dataset)[0]
    manifest = node.store.get_json(version.version)
    assert d.registry == node.chain.registry.address and d.ledger == node.chain.ledger.address
    assert (d.ledger_batches, d.ledger_records) == (1, version.records)
    [batch] = d.batches
    assert batch.root == manifest["batches"][0]["root"] and batch.count == version.records
    assert batch.cid == manifest["batches"][0]["cid"]
    assert batch.anchored_by == node.operator.address
    assert node.chain.ledger.is_anchored(world.dataset, batch.root)
    [v] = d.versions
    assert (v.number, v.manifest_cid, v.records, v.root) == (
        1,
        world.version,
        version.records,
        batch.root,
    )
    assert d.dataset is not None and d.dataset.spec.task.type == "instruction"
    assert [a.asset_id for a in d.built_on] == [world.model]


def test_a_dataset_s_contributors_are_its_newest_attribution_table(
    world: World, node: Node
) -> None:
    d = details(node).get(world.dataset)
    table = node.data.anchoring.attribution(world.dataset)
    assert {c.account: c.weight for c in d.contributors} == table
    assert sum(c.weight for c in d.contributors) == 10**18
    for c in d.contributors:
        anchored = node.data.list_records(
            world.dataset, status="anchored", contributor=c.account, limit=1000
        )
        assert c.records == len(anchored) > 0 and c.reviews == 0
    assert d.contributors[0].weight >= d.contributors[-1].weight  # largest share first
    # the dataset's payees: its owner's 10 % and the data role by the table
    payees = {p.account: p.share for p in d.payees}
    assert payees[world.alice.address] == pytest.approx(0.1)
    assert payees[world.bob.address] == pytest.approx(0.9 * table[world.bob.address] / 10**18)


def test_a_model_s_lineage_draws_its_base_dataset_job_and_providers(
    world: World, node: Node
) -> None:
    d = details(node).get(world.model)
    assert d.lineage is not None and d.lineage_error is None
    job = "job 0x" + "ab" * 32
    kinds = {n.key: n.kind for n in d.lineage.nodes}
    assert kinds == {
        f"model {world.model}": "model",
        f"model {world.base}": "model",
        f"dataset {world.dataset}@{world.version}": "dataset",
        job: "job",
        f"provider {world.bob.address}": "provider",
        f"provider {world.carol.address}": "provider",
    }
    assert set(d.lineage.edges) == {
        (job, f"model {world.model}"),
        (f"model {world.base}", job),
        (f"dataset {world.dataset}@{world.version}", job),
        (f"provider {world.bob.address}", job),
        (f"provider {world.carol.address}", job),
    }
    assert d.lineage.focus == f"model {world.model}"
    titles = {n.key: n.title for n in d.lineage.nodes}
    assert titles[f"dataset {world.dataset}@{world.version}"] == "Polite replies v1"
    assert [(p.account, p.work, p.share) for p in d.providers] == [
        (world.bob.address, 300, 0.75),
        (world.carol.address, 100, 0.25),
    ]
    assert d.training["job_id"] == "0x" + "ab" * 32


def test_a_model_s_payees_are_one_token_split_by_its_lineage(world: World, node: Node) -> None:
    d = details(node).get(world.model)
    shares = {p.account: p.share for p in d.payees}
    weights = node.data.anchoring.attribution(world.dataset)
    bob = weights[world.bob.address] / 10**18
    assert sum(shares.values()) == pytest.approx(1.0)
    # owner 20 % of the model, plus the dataset owner's 10 % of the 40 % data role
    assert shares[world.alice.address] == pytest.approx(0.20 + 0.40 * 0.10)
    assert shares[node.operator.address] == pytest.approx(0.20)  # the base model's owner
    assert shares[world.bob.address] == pytest.approx(0.20 * 0.75 + 0.40 * 0.90 * bob)
    reasons = {p.account: p.reasons for p in d.payees}
    assert reasons[world.alice.address] == ("owner of Polite replies v1", "owner of reverser")
    assert d.payees[0].share >= d.payees[-1].share


def test_a_lineage_that_cannot_be_read_is_reported_not_raised(world: World, node: Node) -> None:
    broken = node.assets.register(
        world.alice,
        kind="model",
        name="orphan",
        licence="MIT",
        parents=[world.dataset],
        extra={
            "training": {
                "lineage": {"datasets": [{"dataset": world.dataset, "version": "bafkreinotthere"}]}
            }
        },
    )
    d = details(node).get(broken.asset_id)
    assert d.lineage is None and d.payees == []
    assert d.lineage_error is not None and f"asset {broken.asset_id}" in d.lineage_error


def test_an_unknown_asset_is_not_found(node: Node) -> None:
    with pytest.raises(NotFound, match="no asset with id 99"):
        details(node).get(99)


def test_a_new_dataset_has_no_versions_and_its_owner_takes_every_role(node: Node) -> None:
    alice = dev(node, "alice")
    dataset = make_dataset(node, alice).asset_id
    d = details(node).get(dataset)
    assert d.versions == [] and d.contributors == [] and d.batches == []
    assert (d.ledger_batches, d.ledger_records) == (0, 0)
    assert d.lineage is not None and d.lineage.focus == f"dataset {dataset}"
    assert [n.title for n in d.lineage.nodes] == ["Polite replies"] and d.lineage.edges == ()
    assert [(p.account, p.share) for p in d.payees] == [(alice.address, 1.0)]
    assert d.listing.records == 0 and d.listing.versions == 0 and d.listing.quality is None
