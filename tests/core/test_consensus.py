"""cairn.core.consensus: Dawid–Skene against simulated honest, lazy and adversarial reviewers."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from cairn.core.consensus import Vote, dawid_skene, decide, weighted_majority
from cairn.core.errors import InvalidInput

BINARY = ["negative", "positive"]
THREE = ["cat", "dog", "bird"]


@dataclass
class Crowd:
    """Simulated votes on items whose true labels we know."""

    votes: list[Vote]
    truth: dict[str, str]
    gold: dict[str, str]

    def accuracy(self, labels: dict[str, str]) -> float:
        """Share of non-gold items whose label is the true one."""
        scored = [item for item in self.truth if item not in self.gold]
        return sum(labels[item] == self.truth[item] for item in scored) / len(scored)


def simulate(
    seed: int,
    labels: list[str],
    per_item: dict[str, int],
    *,
    items: int = 400,
    gold: int = 20,
    pool: int = 8,
) -> Crowd:
    """Each item gets `per_item[kind]` reviewers of each kind, drawn from a pool of that kind.

    honest: right with probability 0.90-0.95 (per reviewer), else a random wrong label;
    lazy: a uniformly random label; adversarial: always the next label over (a flip for two
    labels, a systematic swap cat->dog->bird->cat for three).
    """
    rng = np.random.default_rng(seed)
    k = len(labels)
    skill = {f"honest-{j}": rng.uniform(0.90, 0.95) for j in range(pool)}
    votes: list[Vote] = []
    truth: dict[str, str] = {}
    for i in range(items):
        item, t = f"item-{i:04d}", int(rng.integers(k))
        truth[item] = labels[t]
        for kind, n in per_item.items():
            for r in rng.choice(pool, size=n, replace=False):
                reviewer = f"{kind}-{r}"
                if kind == "honest":
                    right = rng.random() < skill[reviewer]
                    given = t if right else (t + int(rng.integers(1, k))) % k
                elif kind == "lazy":
                    given = int(rng.integers(k))
                else:
                    given = (t + 1) % k
                votes.append((item, reviewer, labels[given]))
    gold_items = {item: truth[item] for item in list(truth)[:gold]}
    return Crowd(votes, truth, gold_items)


def majority(crowd: Crowd, labels: list[str]) -> dict[str, str]:
    """Plain one-reviewer-one-vote majority."""
    return {i: d.label for i, d in weighted_majority(crowd.votes, labels, {}).items()}


def test_binary_mix_where_majority_fails_is_recovered_with_gold() -> None:
    # per item 2 honest + 2 always-flipping + 1 random: majority is right only when the random
    # vote sides with two correct honest ones (~43 %)
    crowd = simulate(1, BINARY, {"honest": 2, "adversarial": 2, "lazy": 1})
    ds = dawid_skene(crowd.votes, BINARY, gold=crowd.gold)
    ds_acc = crowd.accuracy({i: d.label for i, d in ds.decisions.items()})
    mv_acc = crowd.accuracy(majority(crowd, BINARY))
    assert ds_acc >= 0.95
    assert mv_acc <= 0.70
    assert (round(ds_acc, 3), round(mv_acc, 3)) == (1.0, 0.416)  # the figures in this run


def test_three_class_adversarial_majority_is_recovered_with_gold() -> None:
    # 3 of 5 reviewers swap classes systematically: majority is (almost) always wrong
    crowd = simulate(2, THREE, {"honest": 2, "adversarial": 3})
    ds = dawid_skene(crowd.votes, THREE, gold=crowd.gold)
    ds_acc = crowd.accuracy({i: d.label for i, d in ds.decisions.items()})
    mv_acc = crowd.accuracy(majority(crowd, THREE))
    assert ds_acc >= 0.95
    assert mv_acc <= 0.70
    assert (round(ds_acc, 3), round(mv_acc, 3)) == (1.0, 0.0)


def test_a_handful_of_gold_items_is_enough() -> None:
    crowd = simulate(3, BINARY, {"honest": 2, "adversarial": 3}, gold=4)
    ds = dawid_skene(crowd.votes, BINARY, gold=crowd.gold)
    assert crowd.accuracy({i: d.label for i, d in ds.decisions.items()}) >= 0.95
    assert crowd.accuracy(majority(crowd, BINARY)) <= 0.70


def test_without_gold_an_adversarial_majority_is_indistinguishable_from_the_truth() -> None:
    # the label-permutation symmetry: with no known answers, EM settles on the mirror image
    crowd = simulate(2, THREE, {"honest": 2, "adversarial": 3}, gold=0)
    ds = dawid_skene(crowd.votes, THREE)
    assert crowd.accuracy({i: d.label for i, d in ds.decisions.items()}) <= 0.05


def test_all_honest_reviewers_give_the_true_labels() -> None:
    crowd = simulate(4, THREE, {"honest": 5}, gold=0)
    ds = dawid_skene(crowd.votes, THREE)
    assert crowd.accuracy({i: d.label for i, d in ds.decisions.items()}) >= 0.99
    assert min(d.confidence for d in ds.decisions.values()) > 0.5


def test_adversarial_confusion_matrices_come_out_near_the_flip_matrix() -> None:
    crowd = simulate(5, BINARY, {"honest": 2, "adversarial": 2, "lazy": 1})
    ds = dawid_skene(crowd.votes, BINARY, gold=crowd.gold)
    flip = np.array([[0.0, 1.0], [1.0, 0.0]])
    for j in range(8):
        assert np.abs(ds.confusion[f"adversarial-{j}"] - flip).max() < 0.05
        honest = ds.confusion[f"honest-{j}"]
        assert np.diag(honest).min() > 0.8
        lazy = ds.confusion[f"lazy-{j}"]
        assert np.abs(lazy - 0.5).max() < 0.3  # ~25 votes per row: noisy
    assert abs(ds.class_priors["positive"] - 0.5) < 0.1


def test_model_is_smoothed_and_posteriors_are_distributions() -> None:
    crowd = simulate(6, THREE, {"honest": 3, "adversarial": 1}, items=100, gold=5)
    ds = dawid_skene(crowd.votes, THREE, gold=crowd.gold)
    for matrix in ds.confusion.values():
        assert matrix.shape == (3, 3)
        assert (matrix > 0).all()
        assert np.allclose(matrix.sum(axis=1), 1.0)
    assert all(p > 0 for p in ds.class_priors.values())
    assert sum(ds.class_priors.values()) == pytest.approx(1.0)
    for d in ds.decisions.values():
        assert sum(d.posterior.values()) == pytest.approx(1.0)
        assert d.confidence == d.posterior[d.label] == max(d.posterior.values())
    assert 1 <= ds.iterations <= 200


def test_gold_items_are_clamped_to_their_known_label() -> None:
    votes = [("g", f"r{j}", "negative") for j in range(4)] + [("x", "r0", "positive")]
    ds = dawid_skene(votes, BINARY, gold={"g": "positive", "not-voted": "negative"})
    assert ds.decisions["g"].label == "positive"
    assert ds.decisions["g"].method == "gold"
    assert ds.decisions["g"].confidence == 1.0
    assert ds.decisions["x"].method == "dawid_skene"
    assert "not-voted" not in ds.decisions


def test_result_does_not_depend_on_vote_order() -> None:
    crowd = simulate(7, BINARY, {"honest": 3, "lazy": 1, "adversarial": 1}, items=150)
    shuffled = list(crowd.votes)
    random.Random(0).shuffle(shuffled)
    a = dawid_skene(crowd.votes, BINARY, gold=crowd.gold)
    b = dawid_skene(shuffled, BINARY, gold=crowd.gold)
    assert a.decisions == b.decisions
    assert a.class_priors == b.class_priors
    assert all(np.array_equal(a.confusion[r], b.confusion[r]) for r in a.confusion)


def test_a_reviewers_later_vote_replaces_the_earlier_one() -> None:
    votes = [("i", "r0", "negative"), ("i", "r1", "positive"), ("i", "r0", "positive")]
    d = weighted_majority(votes, BINARY, {})["i"]
    assert (d.label, d.confidence, d.votes) == ("positive", 1.0, 2)
    assert dawid_skene(votes, BINARY).decisions["i"].votes == 2


def test_unknown_labels_are_refused_with_the_vote_named() -> None:
    with pytest.raises(InvalidInput, match=r"vote 1 \(item 'i'.*got 'happy'"):
        dawid_skene([("i", "a", "positive"), ("i", "b", "happy")], BINARY)
    with pytest.raises(InvalidInput, match="gold item 'g'"):
        dawid_skene([("g", "a", "positive")], BINARY, gold={"g": "happy"})
    with pytest.raises(InvalidInput, match="got 'happy'"):
        weighted_majority([("i", "a", "happy")], BINARY, {})
    with pytest.raises(InvalidInput, match="gold item 'g'"):
        decide([("g", "a", "positive")], BINARY, gold={"g": "happy"})
    with pytest.raises(InvalidInput, match="distinct labels"):
        dawid_skene([], ["only"])


def test_no_votes_give_no_decisions() -> None:
    ds = dawid_skene([], BINARY)
    assert (ds.decisions, ds.confusion, ds.iterations) == ({}, {}, 0)
    assert ds.class_priors == {"negative": 0.5, "positive": 0.5}
    assert decide([], BINARY) == {}


def test_a_high_reputation_reviewer_outvotes_two_low_ones() -> None:
    votes = [("i", "expert", "positive"), ("i", "new-1", "negative"), ("i", "new-2", "negative")]
    weights = {"expert": 0.95, "new-1": 0.4, "new-2": 0.4}
    d = weighted_majority(votes, BINARY, weights)["i"]
    assert (d.label, d.method, d.votes) == ("positive", "weighted_majority", 3)
    assert d.confidence == pytest.approx(0.95 / 1.75)
    # the same votes with equal weights: the two win
    assert weighted_majority(votes, BINARY, {})["i"].label == "negative"


def test_weighted_majority_refuses_negative_weights_and_splits_zero_weight_evenly() -> None:
    with pytest.raises(InvalidInput, match="'bad' must be >= 0"):
        weighted_majority([("i", "bad", "positive")], BINARY, {"bad": -1.0})
    d = weighted_majority([("i", "idle", "positive")], BINARY, {"idle": 0.0})["i"]
    assert d.posterior == {"negative": 0.5, "positive": 0.5}
    assert d.label == "negative"  # ties go to the label listed first


def test_decide_uses_reputation_weighted_majority_below_min_votes() -> None:
    votes = [("i", "expert", "positive"), ("i", "new-1", "negative"), ("i", "new-2", "negative")]
    reputation = {"expert": 0.95, "new-1": 0.3, "new-2": 0.3}
    d = decide(votes, BINARY, reputation=reputation, min_votes=4)["i"]
    assert (d.label, d.method) == ("positive", "weighted_majority")
    assert decide(votes, BINARY, min_votes=4)["i"].label == "negative"  # no reputation: equal


def test_decide_uses_dawid_skene_from_min_votes_and_learns_from_gold_items() -> None:
    crowd = simulate(8, BINARY, {"honest": 2, "adversarial": 3}, items=300, gold=15)
    # thin out some items below min_votes: they fall back to weighted majority
    thin = {f"item-{i:04d}" for i in range(200, 300)}
    seen: dict[str, int] = {}
    votes: list[Vote] = []
    for vote in crowd.votes:
        seen[vote[0]] = seen.get(vote[0], 0) + 1
        if vote[0] not in thin or seen[vote[0]] <= 2:
            votes.append(vote)
    decisions = decide(votes, BINARY, gold=crowd.gold, min_votes=3)
    assert {decisions[i].method for i in thin} == {"weighted_majority"}
    assert {decisions[i].method for i in crowd.gold} == {"gold"}
    full = [i for i in crowd.truth if i not in thin and i not in crowd.gold]
    assert {decisions[i].method for i in full} == {"dawid_skene"}
    right = sum(decisions[i].label == crowd.truth[i] for i in full) / len(full)
    assert right >= 0.95


def test_decide_returns_gold_items_with_their_known_label() -> None:
    votes = [("g", "a", "negative"), ("g", "b", "negative"), ("g", "c", "negative")]
    votes += [("x", "a", "positive")]
    decisions = decide(votes, BINARY, gold={"g": "positive"}, min_votes=3)
    g = decisions["g"]
    assert (g.label, g.method, g.confidence, g.votes) == ("positive", "gold", 1.0, 3)
    assert g.posterior == {"negative": 0.0, "positive": 1.0}
    assert decisions["x"].method == "weighted_majority"
    with pytest.raises(InvalidInput, match="min_votes"):
        decide(votes, BINARY, min_votes=0)
