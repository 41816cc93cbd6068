"""The data façade's answers as records: who may list records, a contributor's history, a
reviewer's standing, an account's share of a version, and a version's attribution."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from cairn.core.attribution import SCALE
from cairn.core.errors import Forbidden
from cairn.data.review import COUNTED_IN_GROUPS_OF
from cairn.node import Node
from tests.data.conftest import make_dataset, pair, upload


class Gate:
    """A licence check that refuses everyone and remembers whom it was asked about."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, str | None]] = []

    def __call__(self, dataset_id: int, reader: str | None) -> object:
        self.asked.append((dataset_id, reader))
        raise Forbidden(f"dataset {dataset_id} needs a licence")


def test_a_contributor_lists_its_own_records_without_the_licence_gate(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(node, owner, review={"review_share": 0.0}).asset_id
    upload(node, contributor, dataset, [pair(1), pair(2)])
    gate = Gate()
    mine = node.data.records_for(
        contributor.address, dataset, gate=gate, contributor=contributor.address.lower()
    )
    assert [r.contributor for r in mine] == [contributor.address] * 2 and gate.asked == []
    with pytest.raises(Forbidden):  # everyone's records: the gate decides
        node.data.records_for(contributor.address, dataset, gate=gate)
    with pytest.raises(Forbidden):  # someone else's: the gate decides
        node.data.records_for(owner.address, dataset, gate=gate, contributor=contributor.address)
    with pytest.raises(Forbidden):  # an anonymous reader: the gate decides
        node.data.records_for(None, dataset, gate=gate, contributor=contributor.address)
    assert gate.asked == [
        (dataset, contributor.address),
        (dataset, owner.address),
        (dataset, None),
    ]
    assert len(node.data.records_for(None, dataset, gate=lambda d, r: None)) == 2


def test_a_contributors_history_is_its_newest_records_and_its_counts(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(node, owner, review={"review_share": 0.0}).asset_id
    upload(node, contributor, dataset, [pair(i) for i in range(5)])
    upload(node, owner, dataset, [pair(9)])
    node.data.anchoring.anchor(dataset)
    upload(node, contributor, dataset, [pair(5)])
    history = node.data.history(dataset, contributor.address, newest=3)
    assert [r.content["prompt"] for r in history.newest] == [pair(i)["prompt"] for i in (5, 4, 3)]
    assert history.counts == {"anchored": 5, "accepted": 1} and history.total == 6
    nobody = node.data.history(dataset, "0x" + "11" * 20, newest=3)
    assert nobody.newest == () and nobody.total == 0


def test_a_newcomers_standing_is_the_prior_and_standings_list_reviewers(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    review = {"review_share": 1.0, "votes_per_record": 1, "gold_share": 0.0}
    dataset = make_dataset(node, owner, review=review).asset_id
    newcomer = node.data.reviews.standing(dataset, owner.address)
    assert newcomer.judged == 0 and not newcomer.held and 0 < newcomer.reputation < 1
    assert node.data.reviews.standings(dataset) == []

    group = COUNTED_IN_GROUPS_OF
    upload(node, contributor, dataset, [pair(i) for i in range(group)])
    for n in range(1, group + 1):
        task = node.data.reviews.next_task(dataset, owner.address)
        assert task is not None
        answer = node.data.reviews.submit(task.task_id, owner.address, "approve")
        [decided] = answer.decided
        assert decided.status == "accepted" and decided.label == "approve"
        assert node.data.reviews.uncounted(dataset, owner.address) == n % group
        if n < group:  # the group is not full: nothing counts yet
            assert node.data.reviews.standings(dataset) == []
            assert node.data.reviews.standing(dataset, owner.address) == newcomer
    [standing] = node.data.reviews.standings(dataset)
    assert standing.account == owner.address and standing.agreed == standing.decided == group
    assert node.data.reviews.standing(dataset, owner.address.lower()) == standing


def test_an_accounts_share_and_a_versions_attribution(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(node, owner, review={"review_share": 0.0}).asset_id
    assert node.data.anchoring.share_of(dataset, contributor.address) is None
    upload(node, contributor, dataset, [pair(1), pair(2)])
    batch = node.data.anchoring.anchor(dataset)
    assert batch is not None
    share = node.data.anchoring.share_of(dataset, contributor.address.lower())
    assert share is not None and (share.number, share.records) == (1, 2)
    assert share.share == 1.0  # no review was made: the one contributor holds the whole table
    table = node.data.anchoring.attribution_of(dataset)
    assert (table.version, table.cid) == (batch.version, batch.attribution_cid)
    assert sum(int(e.weight) for e in table.entries) == int(table.scale) == SCALE
    summary = node.data.summary(dataset)
    assert summary.versions == 1 and [v.version for v in summary.version_list] == [batch.version]
