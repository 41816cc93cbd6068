"""Review on a real node: tasks, own records, decisions, relabelling, gold, reputation and holds."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from cairn.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from cairn.data.review import COUNTED_IN_GROUPS_OF, draws_gold
from cairn.node import Node
from tests.data.conftest import make_dataset, pair, upload

STRICT = {
    "review_share": 1.0,
    "votes_per_record": 3,
    "min_votes": 3,
    "accept_threshold": 0.8,
    "gold_share": 0.0,
}


def mixing_reviewer(dataset_id: int, share: float) -> str:
    """An account whose first group of tasks on the dataset draws gold and records both."""
    for i in range(1, 256):
        address = Account.from_key("0x" + f"{i:02x}" * 32).address
        draws = [draws_gold(dataset_id, address, n, share) for n in range(COUNTED_IN_GROUPS_OF)]
        if any(draws) and not all(draws):
            return address
    raise AssertionError("no account of 255 mixes gold and records")


def answer_all(node: Node, dataset_id: int, reviewer: str, choose) -> int:  # type: ignore[no-untyped-def]
    """Let `reviewer` answer every task it gets with choose(record); return how many."""
    n = 0
    while (task := node.data.reviews.next_task(dataset_id, reviewer)) is not None:
        node.data.reviews.submit(task.task_id, reviewer, choose(task.record))
        n += 1
    return n


def test_reviewed_records_are_decided_by_their_reviews(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(node, owner, review=STRICT)
    bad = {
        "prompt": "Say something useful about tides.",
        "response": "Tides are caused by the moon, mostly, and some sun.",
    }
    result = upload(node, contributor, dataset.asset_id, [pair(1), pair(2), bad])
    assert {v.status for v in result.verdicts} == {"review"}
    assert (
        node.data.reviews.next_task(dataset.asset_id, contributor.address) is None
    )  # never your own

    reviewers = [owner.address, Account.create().address, Account.create().address]
    for reviewer in reviewers:
        assert (
            answer_all(
                node,
                dataset.asset_id,
                reviewer,
                lambda r: "reject" if "tides" in r["prompt"] else "approve",
            )
            == 3
        )
    statuses = {r.content["prompt"]: r.status for r in node.data.list_records(dataset.asset_id)}
    assert statuses[pair(1)["prompt"]] == "accepted" and statuses[bad["prompt"]] == "rejected"
    rejected = node.data.list_records(dataset.asset_id, status="rejected")[0]
    assert rejected.reason is not None and rejected.reason.startswith("rejected by review")


def test_task_answers_are_checked(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(node, owner, review=STRICT)
    upload(node, contributor, dataset.asset_id, [pair(1)])
    task = node.data.reviews.next_task(dataset.asset_id, owner.address)
    assert task is not None and task.kind == "approve" and task.labels == ("approve", "reject")
    assert (
        node.data.reviews.next_task(dataset.asset_id, owner.address) == task
    )  # the open task again
    with pytest.raises(InvalidInput, match="one of approve, reject"):
        node.data.reviews.submit(task.task_id, owner.address, "maybe")
    with pytest.raises(Forbidden, match="was given to"):
        node.data.reviews.submit(task.task_id, Account.create().address, "approve")
    node.data.reviews.submit(task.task_id, owner.address, "approve")
    with pytest.raises(Conflict, match="already answered"):
        node.data.reviews.submit(task.task_id, owner.address, "approve")
    with pytest.raises(NotFound):
        node.data.reviews.submit(12345, owner.address, "approve")


def test_reviewers_relabel_a_classification_record(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(
        node,
        owner,
        task={"type": "classification", "labels": ["positive", "negative"]},
        review=STRICT,
    )
    upload(
        node,
        contributor,
        dataset.asset_id,
        [{"text": "This was a dreadful, slow and broken experience.", "label": "positive"}],
    )
    for reviewer in [owner.address, Account.create().address, Account.create().address]:
        answer_all(node, dataset.asset_id, reviewer, lambda r: "negative")
    [record] = node.data.list_records(dataset.asset_id)
    assert record.status == "accepted" and record.content["label"] == "negative"
    assert (
        record.label == "negative"
        and record.quality < 0.6
        and "relabelled" in (record.reason or "")
    )


def test_gold_questions_catch_a_bad_reviewer_whose_records_are_then_held(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    review = {**STRICT, "gold_share": 0.5, "min_gold_for_reputation": 3, "reputation_floor": 0.5}
    dataset = make_dataset(node, owner, review=review)
    gold = [{"record": pair(100 + i), "answer": "approve"} for i in range(4)]
    gold += [
        {
            "record": {
                "prompt": f"Gold {i}: what is spam?",
                "response": "BUY NOW cheap pills " * 3 + str(i),
            },
            "answer": "reject",
        }
        for i in range(4)
    ]
    assert node.data.reviews.add_gold(dataset.asset_id, owner.address, gold) == 8
    with pytest.raises(Forbidden, match="only the dataset's owner"):
        node.data.reviews.add_gold(dataset.asset_id, contributor.address, gold)
    with pytest.raises(InvalidInput, match="answer must be one of"):
        node.data.reviews.add_gold(
            dataset.asset_id, owner.address, [{"record": pair(1), "answer": "yes"}]
        )

    upload(node, contributor, dataset.asset_id, [pair(i) for i in range(6)])
    adversary = Account.create()
    node.backend.fund(adversary.address, 10**18)
    # The adversary contributes too, then answers every question the wrong way round.
    upload(node, adversary, dataset.asset_id, [pair(50)])

    def right(record: dict[str, str]) -> str:
        return "approve" if "BUY NOW" not in record["response"] else "reject"

    def wrong(record: dict[str, str]) -> str:
        return "reject" if right(record) == "approve" else "approve"

    # Gold is drawn at random: a group of five that is all gold counts at once, and then holds
    # the adversary before it has seen every task; otherwise it answers all 14.
    answered = 0
    try:
        while (
            task := node.data.reviews.next_task(dataset.asset_id, adversary.address)
        ) is not None:
            node.data.reviews.submit(task.task_id, adversary.address, wrong(task.record))
            answered += 1
    except Forbidden as held_early:
        assert "below the floor" in held_early.message and answered >= 5
    assert 5 <= answered <= 6 + 8
    # Its answers count once the records among them are decided: honest reviewers decide them.
    for honest in (owner.address, Account.create().address, Account.create().address):
        answer_all(node, dataset.asset_id, honest, right)
    with pytest.raises(Forbidden, match="below the floor"):
        node.data.reviews.next_task(dataset.asset_id, adversary.address)
    reps = node.data.reviews.reputations(dataset.asset_id)
    assert reps[adversary.address][0] < 0.5 and reps[adversary.address][1].gold_total >= 3
    held = node.data.list_records(dataset.asset_id, contributor=adversary.address)
    assert [r.status for r in held] == ["held"]
    assert all(
        r.status != "held"
        for r in node.data.list_records(dataset.asset_id, contributor=contributor.address)
    )


def test_dawid_skene_recovers_true_labels_through_the_service_where_majority_fails(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    import random

    from cairn.core.consensus import weighted_majority

    rng = random.Random(5)
    labels = ["positive", "negative"]
    review = {
        "review_share": 1.0,
        "votes_per_record": 5,
        "min_votes": 3,
        "accept_threshold": 0.9,
        "gold_share": 0.3,
        "reputation_floor": 0.0,  # keep the adversaries in, to show the model seeing through them
    }
    dataset = make_dataset(
        node, owner, task={"type": "classification", "labels": labels}, review=review
    )
    truth = {}
    records = []
    for i in range(30):
        label = rng.choice(labels)
        text = f"{pair(i)['response']} verdict {i}"
        truth[text] = label
        records.append({"text": text, "label": rng.choice(labels)})  # the contributor guesses
    gold = []
    for i in range(12):
        label = labels[i % 2]
        text = f"{pair(1000 + i)['prompt']} gold {i}"
        truth[text] = label
        gold.append({"record": {"text": text, "label": label}, "answer": label})
    node.data.reviews.add_gold(dataset.asset_id, owner.address, gold)
    upload(node, contributor, dataset.asset_id, records)

    def honest(text: str) -> str:
        return truth[text]

    def flipper(text: str) -> str:
        return labels[1 - labels.index(truth[text])]

    def lazy(text: str) -> str:
        return rng.choice(labels)

    reviewers = [
        (Account.create().address, kind) for kind in (honest, honest, flipper, flipper, lazy)
    ]
    for _ in range(60):  # round-robin, as reviewers would arrive
        busy = False
        for address, strategy in reviewers:
            task = node.data.reviews.next_task(dataset.asset_id, address)
            if task is not None:
                node.data.reviews.submit(task.task_id, address, strategy(task.record["text"]))
                busy = True
        if not busy:
            break
    stored = node.data.list_records(dataset.asset_id, limit=100)
    decided = [r for r in stored if r.status == "accepted"]
    accuracy = sum(r.label == truth[r.content["text"]] for r in decided) / len(records)
    votes, _ = node.data.reviews.votes(dataset.asset_id)
    majority = weighted_majority([v for v in votes if v[0].startswith("r")], labels, {})
    by_id = {f"r{r.id}": truth[r.content["text"]] for r in stored}
    majority_accuracy = sum(
        majority[i].label == by_id[i] and majority[i].confidence > 0.5 for i in by_id
    ) / len(by_id)
    print(f"Dawid-Skene accuracy {accuracy:.3f}, majority vote {majority_accuracy:.3f}")
    assert accuracy >= 0.95, accuracy
    assert majority_accuracy <= 0.7, majority_accuracy


def test_a_gold_answer_moves_no_standing_until_its_group_of_answers_is_full(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    """Whatever a reviewer answers, and whether a task was gold or a record, what anyone can see
    (its standing, the dataset's list, holds) stays as it was until a whole group counts."""
    group = COUNTED_IN_GROUPS_OF
    review = {**STRICT, "votes_per_record": 1, "min_votes": 1, "gold_share": 0.5}
    dataset = make_dataset(node, owner, review=review).asset_id
    gold = [{"record": pair(100 + i), "answer": "reject"} for i in range(group)]
    node.data.reviews.add_gold(dataset, owner.address, gold)  # the right answer is "reject"
    upload(node, contributor, dataset, [pair(i) for i in range(2 * group)])
    reviewer = mixing_reviewer(dataset, review["gold_share"])
    prior = node.data.reviews.standing(dataset, reviewer)
    kinds = []
    for n in range(1, group + 1):
        task = node.data.reviews.next_task(dataset, reviewer)
        assert task is not None
        is_gold = task.record["prompt"] in {g["record"]["prompt"] for g in gold}
        kinds.append("gold" if is_gold else "record")
        node.data.reviews.submit(task.task_id, reviewer, "approve")  # gold answered wrong
        if n < group:
            assert node.data.reviews.standing(dataset, reviewer) == prior, kinds
            assert node.data.reviews.standings(dataset) == []
            assert node.data.reviews.reputations(dataset) == {}
    assert "gold" in kinds and "record" in kinds, kinds  # the group had both kinds
    counted = node.data.reviews.standing(dataset, reviewer)
    assert counted.gold_total == kinds.count("gold") and counted.gold_correct == 0
    assert counted.decided == kinds.count("record") and counted.judged == group
    assert counted.reputation < prior.reputation
    assert node.data.reviews.uncounted(dataset, reviewer) == 0


def test_the_consensus_weighs_a_gold_answer_only_once_its_group_is_full(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    """A gold answer sharpens the model's estimate of its reviewer's reliability, which weighs
    every other vote: weighed at once, it could move the next decisions right after the answer."""
    group = COUNTED_IN_GROUPS_OF
    review = {**STRICT, "votes_per_record": 3, "gold_share": 0.5}  # records stay undecided
    dataset = make_dataset(node, owner, review=review).asset_id
    gold = [{"record": pair(100 + i), "answer": "approve"} for i in range(group)]
    node.data.reviews.add_gold(dataset, owner.address, gold)
    upload(node, contributor, dataset, [pair(i) for i in range(group)])
    reviewer = mixing_reviewer(dataset, review["gold_share"])
    answered: list[str] = []
    for n in range(1, group + 1):
        task = node.data.reviews.next_task(dataset, reviewer)
        assert task is not None
        node.data.reviews.submit(task.task_id, reviewer, "approve")
        answered.append("gold" if task.record in [g["record"] for g in gold] else "record")
        votes, _ = node.data.reviews.votes(dataset)
        weighed = [item for item, _, _ in votes if item.startswith("g")]
        assert len(weighed) == (answered.count("gold") if n == group else 0), answered
        assert len(votes) - len(weighed) == answered.count("record")  # records weigh at once
    assert "gold" in answered, answered


def test_a_full_group_shows_nothing_while_its_records_wait_for_a_decision(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    """A gold answer is judged at once, a vote on a record once the record is decided: a group
    that counted when it filled would show how many of its tasks were gold right after the answer
    that filled it. It counts once its records are decided, gold answers and agreements at once."""
    group = COUNTED_IN_GROUPS_OF
    dataset = make_dataset(node, owner, review={**STRICT, "gold_share": 0.5}).asset_id
    gold = [{"record": pair(100 + i), "answer": "approve"} for i in range(group)]
    node.data.reviews.add_gold(dataset, owner.address, gold)
    upload(node, contributor, dataset, [pair(i) for i in range(group)])
    reviewer = mixing_reviewer(dataset, 0.5)
    prior = node.data.reviews.standing(dataset, reviewer)
    kinds = []
    for _ in range(group):
        task = node.data.reviews.next_task(dataset, reviewer)
        assert task is not None
        kinds.append("gold" if task.record in [g["record"] for g in gold] else "record")
        node.data.reviews.submit(task.task_id, reviewer, "approve")
    assert "gold" in kinds and "record" in kinds, kinds
    # The group is full, its gold answers judged, its records undecided (one vote of three).
    assert node.data.reviews.standing(dataset, reviewer) == prior, kinds
    assert node.data.reviews.standings(dataset) == []
    assert node.data.reviews.uncounted(dataset, reviewer) == group

    for other in (owner.address, Account.create().address, Account.create().address):
        answer_all(node, dataset, other, lambda r: "approve")
    assert not node.data.list_records(dataset, status="review")
    counted = node.data.reviews.standing(dataset, reviewer)
    assert counted.judged == group and counted.gold_total == kinds.count("gold")
    assert counted.gold_correct == counted.gold_total and counted.agreed == counted.decided
    assert node.data.reviews.uncounted(dataset, reviewer) == 0


def test_no_gold_question_is_handed_out_while_no_other_accounts_record_is_under_review(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    """A dataset's counts per status are public: a task given while none of its records (but the
    reviewer's own) is under review could only be gold."""
    dataset = make_dataset(node, owner, review={**STRICT, "gold_share": 0.5}).asset_id
    gold = [{"record": pair(100 + i), "answer": "approve"} for i in range(3)]
    node.data.reviews.add_gold(dataset, owner.address, gold)
    upload(node, contributor, dataset, [pair(1)])  # under review: the contributor's own
    assert node.data.datasets.get(dataset).counts == {"review": 1}
    for reviewer in (contributor.address, Account.create().address):
        waits = 0 if reviewer == contributor.address else 1 + len(gold)
        assert node.data.reviews.waiting(dataset, reviewer) == waits
        assert (node.data.reviews.next_task(dataset, reviewer) is None) == (waits == 0)
