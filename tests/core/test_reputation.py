"""cairn.core.reputation: a Beta-smoothed blend of gold accuracy and agreement."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.errors import InvalidInput
from cairn.core.reputation import GOLD_WEIGHT, ReputationInput, below_floor, reputation


@st.composite
def records(draw: st.DrawFn) -> ReputationInput:
    """Any consistent account record."""
    gold_total = draw(st.integers(0, 200))
    decided = draw(st.integers(0, 500))
    return ReputationInput(
        gold_correct=draw(st.integers(0, gold_total)),
        gold_total=gold_total,
        agreed=draw(st.integers(0, decided)),
        decided=decided,
    )


def test_a_new_account_starts_at_the_prior_mean() -> None:
    fresh = ReputationInput(0, 0, 0, 0)
    assert reputation(fresh) == pytest.approx(0.7)
    assert reputation(fresh, prior_mean=0.4) == pytest.approx(0.4)


def test_formula_is_pinned() -> None:
    r = ReputationInput(gold_correct=8, gold_total=10, agreed=15, decided=20)
    assert GOLD_WEIGHT == 3.0
    assert reputation(r) == pytest.approx((3 * 8 + 15 + 2 * 0.7) / (3 * 10 + 20 + 2))


def test_gold_answers_weigh_more_than_agreement() -> None:
    base = ReputationInput(5, 10, 5, 10)
    gold_right = ReputationInput(6, 11, 5, 10)
    agreed = ReputationInput(5, 10, 6, 11)
    assert reputation(gold_right) > reputation(agreed) > reputation(base)


@given(records(), st.floats(0.01, 100), st.floats(0.0, 1.0))
def test_reputation_is_within_zero_and_one(
    r: ReputationInput, strength: float, mean: float
) -> None:
    assert 0.0 <= reputation(r, prior_strength=strength, prior_mean=mean) <= 1.0


@given(records())
def test_reputation_rises_with_gold_correct_and_agreed(r: ReputationInput) -> None:
    if r.gold_correct < r.gold_total:
        better = ReputationInput(r.gold_correct + 1, r.gold_total, r.agreed, r.decided)
        assert reputation(better) > reputation(r)
    if r.agreed < r.decided:
        better = ReputationInput(r.gold_correct, r.gold_total, r.agreed + 1, r.decided)
        assert reputation(better) > reputation(r)
    # one more right answer never lowers it, one more wrong answer never raises it
    right = ReputationInput(r.gold_correct + 1, r.gold_total + 1, r.agreed, r.decided)
    wrong = ReputationInput(r.gold_correct, r.gold_total + 1, r.agreed, r.decided + 1)
    assert reputation(wrong) <= reputation(r) <= reputation(right)


def test_inconsistent_records_and_priors_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"gold_correct \(3\) exceeds gold_total \(2\)"):
        ReputationInput(3, 2, 0, 0)
    with pytest.raises(InvalidInput, match=r"agreed \(5\) exceeds decided \(4\)"):
        ReputationInput(0, 0, 5, 4)
    with pytest.raises(InvalidInput, match="decided must be a non-negative integer"):
        ReputationInput(0, 0, 0, -1)
    with pytest.raises(InvalidInput, match="prior_mean"):
        reputation(ReputationInput(0, 0, 0, 0), prior_mean=1.5)
    with pytest.raises(InvalidInput, match="prior_strength"):
        reputation(ReputationInput(0, 0, 0, 0), prior_strength=0.0)
    with pytest.raises(InvalidInput, match="min_gold"):
        below_floor(ReputationInput(0, 0, 0, 0), 0.5, min_gold=0)


def test_below_floor_needs_enough_evidence() -> None:
    # two wrong gold answers: bad, but not yet enough to drop the account
    assert not below_floor(ReputationInput(0, 2, 0, 0), 0.5, min_gold=3)
    assert below_floor(ReputationInput(0, 3, 0, 0), 0.5, min_gold=3)
    # or enough decided votes that disagreed
    assert not below_floor(ReputationInput(0, 0, 0, 5), 0.5, min_gold=3)
    assert below_floor(ReputationInput(0, 0, 0, 6), 0.5, min_gold=3)


def test_below_floor_is_false_above_the_floor() -> None:
    good = ReputationInput(9, 10, 40, 50)
    assert not below_floor(good, 0.5, min_gold=3)
    assert below_floor(good, 0.95, min_gold=3)
    assert not below_floor(ReputationInput(0, 0, 0, 0), 0.99, min_gold=1)  # new: no evidence
