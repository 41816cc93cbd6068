"""A dataset version's attribution table: who is owed what share of the dataset's revenue.

Contributors share `contributors_bps` of the whole by their accepted records weighted by quality;
reviewers share `reviewers_bps` by their useful reviews. If one side has nothing to its credit,
the other side takes the whole. Arithmetic is exact (fractions), then largest-remainder rounding
gives integer weights in parts of SCALE that sum to exactly SCALE, so the table is the same on
every machine, for every order of the credits, and can be stored by CID and paid by.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from eth_utils import is_hex_address

from cairn.core.errors import InvalidInput
from cairn.core.merkle import keccak256
from cairn.core.policy import BPS

SCALE = 10**18  # weights are integers in parts of SCALE and sum to exactly SCALE
SCHEMA = "cairn.attribution/v1"


@dataclass(frozen=True)
class ContributionCredit:
    """One accepted record, credited to its contributor."""

    account: str
    quality: float  # in (0, 1]


@dataclass(frozen=True)
class ReviewCredit:
    """One review vote; useful = agreed with the decision or answered a gold question correctly."""

    account: str
    useful: bool


def checksum_address(address: str) -> str:
    """EIP-55 form of a hex address (`to_checksum_address`, with the faster keccak)."""
    hex_digits = address.lower().removeprefix("0x")
    digest = keccak256(hex_digits.encode()).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c
        for i, c in enumerate(hex_digits)
    )


# Checksumming is costly and the same accounts recur: room for a 100,000-account settlement.
@functools.lru_cache(maxsize=1 << 18)
def account_key(account: str) -> tuple[str, str]:
    """(merge key, display form): addresses in EIP-55 checksum form, other names as given.

    Two spellings of one account (any letter case, with or without 0x) share one merge key.
    """
    if not isinstance(account, str) or not account.strip():
        raise InvalidInput(f"attribution: account must be a non-empty string; got {account!r}")
    if is_hex_address(account):
        shown = checksum_address(account)
        return shown.lower(), shown
    return account.lower(), account


def _check_quality(credit: ContributionCredit, n: int) -> None:
    """A record's quality must be a finite number in (0, 1]."""
    q = credit.quality
    if (
        isinstance(q, bool)
        or not isinstance(q, int | float)
        or not math.isfinite(q)
        or not 0 < q <= 1
    ):
        raise InvalidInput(
            f"contribution {n} ({credit.account}): quality must be in (0, 1]; got {q!r}"
        )


def _largest_remainder(shares: dict[str, Fraction]) -> dict[str, int]:
    """Integer parts of SCALE from exact shares summing to 1; leftover units go to the largest
    fractional parts, ties to the lower merge key."""
    exact = {key: share * SCALE for key, share in shares.items()}
    weights = {key: math.floor(x) for key, x in exact.items()}
    leftover = SCALE - sum(weights.values())  # 0 <= leftover < len(shares)
    ranked = sorted(exact, key=lambda key: (-(exact[key] - weights[key]), key))
    for key in ranked[:leftover]:
        weights[key] += 1
    return weights


def attribution_table(
    contributions: Sequence[ContributionCredit],
    reviews: Sequence[ReviewCredit],
    *,
    contributors_bps: int,
    reviewers_bps: int,
) -> dict[str, int]:
    """Account -> weight in parts of SCALE, summing to exactly SCALE, sorted by account.

    Only accounts with some credit appear; one that earned too little to round to a unit is
    listed with weight 0.
    """
    for name, bps in (("contributors_bps", contributors_bps), ("reviewers_bps", reviewers_bps)):
        if isinstance(bps, bool) or not isinstance(bps, int) or not 0 <= bps <= BPS:
            raise InvalidInput(f"attribution: {name} must be an integer 0..{BPS}; got {bps!r}")
    if contributors_bps + reviewers_bps != BPS:
        raise InvalidInput(
            f"attribution: contributors_bps + reviewers_bps must be {BPS}; "
            f"got {contributors_bps} + {reviewers_bps}"
        )

    shown: dict[str, set[str]] = {}  # merge key -> display forms seen (several for non-addresses)
    # Records of one account mostly share a quality: count them, then convert each value once.
    tally: dict[tuple[str, float], int] = {}
    for n, credit in enumerate(contributions):
        key, display = account_key(credit.account)
        shown.setdefault(key, set()).add(display)
        _check_quality(credit, n)
        tally[key, credit.quality] = tally.get((key, credit.quality), 0) + 1
    quality: dict[str, Fraction] = {}
    for (key, value), count in tally.items():
        # str: 0.1 is 1/10, whatever float summation would have made of it
        quality[key] = quality.get(key, Fraction(0)) + Fraction(str(value)) * count
    useful: dict[str, int] = {}
    for review in reviews:
        key, display = account_key(review.account)
        if review.useful:
            shown.setdefault(key, set()).add(display)
            useful[key] = useful.get(key, 0) + 1

    total_quality, total_useful = sum(quality.values(), Fraction(0)), sum(useful.values())
    if not total_quality and not total_useful:
        raise InvalidInput(
            "attribution: nothing to attribute (no accepted records and no useful reviews)"
        )
    # a side with nothing to its credit passes its share to the other
    c_part = Fraction(contributors_bps, BPS) if total_useful else Fraction(1)
    r_part = 1 - c_part if total_quality else Fraction(1)
    shares: dict[str, Fraction] = {}
    for key, q in quality.items():
        shares[key] = c_part * q / total_quality
    for key, u in useful.items():
        shares[key] = shares.get(key, Fraction(0)) + r_part * Fraction(u, total_useful)
    shares = {key: s for key, s in shares.items() if s > 0}

    weights = _largest_remainder(shares)
    # a name spelled several ways is shown in its first spelling in code-point order
    return {min(shown[key]): weights[key] for key in sorted(weights)}


def table_document(
    table: dict[str, int], *, dataset_id: int, version: str | None, policy: dict[str, Any]
) -> dict[str, Any]:
    """The JSON-ready attribution document stored by CID with a dataset version."""
    for account, weight in table.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise InvalidInput(
                f"attribution: weight of {account} must be a non-negative integer; got {weight!r}"
            )
    if sum(table.values()) != SCALE:
        raise InvalidInput(f"attribution: weights must sum to {SCALE}; got {sum(table.values())}")
    return {
        "schema": SCHEMA,
        "scale": str(SCALE),
        "dataset_id": dataset_id,
        "version": version,
        "policy": dict(policy),
        "entries": [
            {"account": account, "weight": str(table[account])}
            for account in sorted(table, key=lambda a: (a.lower(), a))
        ],
    }
