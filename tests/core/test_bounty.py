"""A batch's bounty payout: whole items, records first, never past the budget, sums exact."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.bounty import plan_batch
from cairn.core.errors import InvalidInput

A, B, C = ("0x" + c * 40 for c in "abc")


def test_records_then_reviews_until_the_budget_runs_out() -> None:
    plan = plan_batch([A, B, A, C], [B, C], per_record=10, per_review=3, remaining=44)
    assert (plan.records, plan.reviews, plan.amount) == (
        4,
        1,
        43,
    )  # 40 + 3; a second review won't fit
    assert {k.lower(): v for k, v in plan.record_pay.items()} == {A: 20, B: 10, C: 10}
    assert {k.lower(): v for k, v in plan.review_pay.items()} == {B: 3}
    assert {k.lower(): v for k, v in plan.payouts.items()} == {A: 20, B: 13, C: 10}


def test_what_is_left_pays_the_items_that_still_fit() -> None:
    plan = plan_batch([A, B], [C], per_record=10, per_review=3, remaining=9)
    assert (plan.records, plan.reviews, plan.amount) == (0, 1, 3)  # no record fits, a review does
    assert plan_batch([A], [B], per_record=10, per_review=3, remaining=2).amount == 0


def test_an_address_spelled_two_ways_is_one_account() -> None:
    upper = "0x" + "AB" * 20
    plan = plan_batch([upper, upper.lower()], [], per_record=5, per_review=0, remaining=100)
    assert list(plan.payouts.values()) == [10]


def test_bad_rates_are_refused() -> None:
    with pytest.raises(InvalidInput, match="per_record must be a non-negative integer"):
        plan_batch([A], [], per_record=-1, per_review=0, remaining=5)
    with pytest.raises(InvalidInput, match="remaining"):
        plan_batch([A], [], per_record=1, per_review=0, remaining=True)


accounts = st.sampled_from([A, B, C, "0x" + "d" * 40])


@settings(max_examples=200, deadline=None)
@given(
    contributors=st.lists(accounts, max_size=30),
    reviewers=st.lists(accounts, max_size=30),
    per_record=st.integers(0, 50),
    per_review=st.integers(0, 50),
    remaining=st.integers(0, 2_000),
)
def test_a_plan_is_whole_exact_and_within_budget(
    contributors: list[str], reviewers: list[str], per_record: int, per_review: int, remaining: int
) -> None:
    plan = plan_batch(
        contributors, reviewers, per_record=per_record, per_review=per_review, remaining=remaining
    )
    assert plan.amount == plan.records * per_record + plan.reviews * per_review
    assert plan.amount <= remaining
    assert sum(plan.payouts.values()) == plan.amount
    assert all(v > 0 for v in plan.payouts.values())
    if per_record:  # as many records as fit, in batch order
        assert (
            plan.records == len(contributors) or remaining - plan.records * per_record < per_record
        )
    else:
        assert plan.records == 0
    left = remaining - plan.records * per_record
    if per_review:
        assert plan.reviews == len(reviewers) or left - plan.reviews * per_review < per_review
    else:
        assert plan.reviews == 0
    paid_records: dict[str, int] = {}
    for account in contributors[: plan.records]:
        paid_records[account.lower()] = paid_records.get(account.lower(), 0) + per_record
    assert {k.lower(): v for k, v in plan.record_pay.items()} == paid_records
