"""Paid data tasks: what one anchored batch earns under a bounty, until its budget runs out.

A bounty pays `per_record` for each accepted record in a batch anchored while it is open, and
`per_review` for each useful review of those records (a vote that matched the decision the
record reached). Items are paid whole, records first in batch order and then reviews, while
what is left of the budget covers them; the batch's payout is one Merkle distribution funded
in one transaction, whatever the number of records and accounts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.core.attribution import account_key
from cairn.core.errors import InvalidInput

SCHEMA = "cairn.bounty-payout/v1"
RECORD_ROLE = "data bounty"
REVIEW_ROLE = "review bounty"


@dataclass(frozen=True)
class BountyPlan:
    """What a batch earns: how many records and reviews are paid, and each account's amount."""

    records: int  # records paid, the first of the batch
    reviews: int  # useful reviews paid, the first in order
    amount: int  # records * per_record + reviews * per_review
    record_pay: dict[str, int]  # account -> amount for its records
    review_pay: dict[str, int]  # account -> amount for its reviews

    @property
    def payouts(self) -> dict[str, int]:
        """Each account's total, by account, none zero."""
        total: dict[str, int] = {}
        for part in (self.record_pay, self.review_pay):
            for account, amount in part.items():
                total[account] = total.get(account, 0) + amount
        return {a: total[a] for a in sorted(total) if total[a]}


def plan_batch(
    contributors: Sequence[str],
    reviewers: Sequence[str],
    *,
    per_record: int,
    per_review: int,
    remaining: int,
) -> BountyPlan:
    """The payout of one batch: `contributors` holds the account of each accepted record in
    batch order, `reviewers` the account behind each useful review; `remaining` is the budget."""
    for name, value in (
        ("per_record", per_record),
        ("per_review", per_review),
        ("remaining", remaining),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{name} must be a non-negative integer; got {value!r}")
    left = remaining
    records = _affordable(len(contributors), per_record, left)
    left -= records * per_record
    reviews = _affordable(len(reviewers), per_review, left)
    return BountyPlan(
        records=records,
        reviews=reviews,
        amount=records * per_record + reviews * per_review,
        record_pay=_tally(contributors[:records], per_record),
        review_pay=_tally(reviewers[:reviews], per_review),
    )


def _affordable(count: int, price: int, budget: int) -> int:
    """How many items at `price` the budget covers, at most `count` (none when free)."""
    if price == 0:
        return 0
    return min(count, budget // price)


def _tally(accounts: Sequence[str], price: int) -> dict[str, int]:
    out: dict[str, int] = {}
    shown: dict[str, str] = {}
    for account in accounts:
        merge, display = account_key(account)
        shown.setdefault(merge, display)
        key = shown[merge]
        out[key] = out.get(key, 0) + price
    return out
