"""cairn.core.attribution: exact shares, largest-remainder rounding, and the stored document."""

from __future__ import annotations

import json
import math
import random

import pytest
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.attribution import (
    SCALE,
    ContributionCredit,
    ReviewCredit,
    attribution_table,
    checksum_address,
    table_document,
)
from cairn.core.errors import InvalidInput

# twelve fixed addresses, lower-case; the first six contribute, the last six review
ADDRESSES = ["0x" + keccak(text=f"account {i}")[-20:].hex() for i in range(12)]
CONTRIBUTORS, REVIEWERS = ADDRESSES[:6], ADDRESSES[6:]
NAMES = ["alice", "bob", "carol"]  # non-address accounts


def spellings(address: str) -> list[str]:
    """Ways one account is written: lower, upper hex, checksum, without 0x."""
    return [address, "0x" + address[2:].upper(), to_checksum_address(address), address[2:]]


qualities = st.one_of(
    st.floats(min_value=1e-6, max_value=1.0, allow_nan=False),
    st.sampled_from([1.0, 0.5, 0.1, 0.25, 1 / 3]),
)


def contributions(accounts: list[str]) -> st.SearchStrategy[list[ContributionCredit]]:
    """Accepted records credited to `accounts`, in some spelling."""
    credit = st.builds(
        ContributionCredit,
        account=st.sampled_from(accounts).flatmap(lambda a: st.sampled_from(spellings(a))),
        quality=qualities,
    )
    return st.lists(credit, max_size=30)


def reviews(accounts: list[str]) -> st.SearchStrategy[list[ReviewCredit]]:
    """Review votes by `accounts`, useful or not."""
    credit = st.builds(
        ReviewCredit,
        account=st.sampled_from(accounts).flatmap(lambda a: st.sampled_from(spellings(a))),
        useful=st.booleans(),
    )
    return st.lists(credit, max_size=30)


bps = st.integers(0, 10_000)


def table(
    c: list[ContributionCredit], r: list[ReviewCredit], contributors_bps: int
) -> dict[str, int]:
    """The table, or {} when there is nothing to attribute."""
    if not c and not any(x.useful for x in r):
        with pytest.raises(InvalidInput, match="nothing to attribute"):
            attribution_table(
                c, r, contributors_bps=contributors_bps, reviewers_bps=10_000 - contributors_bps
            )
        return {}
    return attribution_table(
        c, r, contributors_bps=contributors_bps, reviewers_bps=10_000 - contributors_bps
    )


@settings(max_examples=150)
@given(contributions(ADDRESSES), reviews(ADDRESSES), bps)
def test_weights_are_non_negative_integers_summing_to_scale(
    c: list[ContributionCredit], r: list[ReviewCredit], cb: int
) -> None:
    t = table(c, r, cb)
    if t:
        assert sum(t.values()) == SCALE
        assert all(type(w) is int and w >= 0 for w in t.values())
        assert all(a == to_checksum_address(a) for a in t)  # addresses come out in EIP-55 form
        assert table(c, r, cb) == t  # deterministic


@settings(max_examples=100)
@given(contributions(ADDRESSES), reviews(ADDRESSES), bps, st.randoms(use_true_random=False))
def test_table_does_not_depend_on_the_order_of_credits(
    c: list[ContributionCredit], r: list[ReviewCredit], cb: int, rng: random.Random
) -> None:
    c2, r2 = list(c), list(r)
    rng.shuffle(c2)
    rng.shuffle(r2)
    t = table(c, r, cb)
    assert table(c2, r2, cb) == t
    assert list(t) == sorted(t, key=str.lower)


@settings(max_examples=100)
@given(contributions(ADDRESSES), reviews(ADDRESSES), bps, st.randoms(use_true_random=False))
def test_accounts_merge_across_spellings(
    c: list[ContributionCredit], r: list[ReviewCredit], cb: int, rng: random.Random
) -> None:
    def respell(account: str) -> str:
        return rng.choice(spellings("0x" + account.lower().removeprefix("0x")))

    respelt_c = [ContributionCredit(respell(x.account), x.quality) for x in c]
    respelt_r = [ReviewCredit(respell(x.account), x.useful) for x in r]
    assert table(respelt_c, respelt_r, cb) == table(c, r, cb)


@settings(max_examples=150)
@given(contributions(CONTRIBUTORS), reviews(REVIEWERS), bps)
def test_the_bps_split_is_respected_to_within_rounding(
    c: list[ContributionCredit], r: list[ReviewCredit], cb: int
) -> None:
    t = table(c, r, cb)
    contributors = {to_checksum_address(a) for a in CONTRIBUTORS}
    to_contributors = sum(w for a, w in t.items() if a in contributors)
    if c and any(x.useful for x in r):
        assert abs(to_contributors - SCALE * cb // 10_000) <= len(t)
    elif c:
        assert to_contributors == SCALE  # no useful reviews: contributors take the whole
    elif t:
        assert to_contributors == 0  # no records: reviewers take the whole


@settings(max_examples=150)
@given(contributions(ADDRESSES), reviews(ADDRESSES), bps, st.data())
def test_more_quality_never_means_less_weight(
    c: list[ContributionCredit], r: list[ReviewCredit], cb: int, data: st.DataObject
) -> None:
    t = table(c, r, cb)
    if not c:
        return
    n = data.draw(st.integers(0, len(c) - 1))
    who = to_checksum_address(c[n].account)
    raised = data.draw(st.floats(min_value=c[n].quality, max_value=1.0))
    better = [*c[:n], ContributionCredit(c[n].account, raised), *c[n + 1 :]]
    before = t.get(who, 0)  # absent: contributors_bps is 0 and reviewers have credit
    assert table(better, r, cb).get(who, 0) >= before
    more = [*c, ContributionCredit(c[n].account, data.draw(qualities))]
    assert table(more, r, cb).get(who, 0) >= before


def test_policy_split_is_exact_on_a_worked_example() -> None:
    a, b, z = ADDRESSES[0], ADDRESSES[1], ADDRESSES[6]
    t = attribution_table(
        [ContributionCredit(a, 1.0), ContributionCredit(b, 0.5)],
        [ReviewCredit(z, True), ReviewCredit(z, True), ReviewCredit(b, False)],
        contributors_bps=9_000,
        reviewers_bps=1_000,
    )
    assert t == {
        to_checksum_address(a): 6 * 10**17,
        to_checksum_address(b): 3 * 10**17,
        to_checksum_address(z): 1 * 10**17,
    }


def test_quality_is_exact_whatever_float_summation_would_give() -> None:
    # 0.1 + 0.2 != 0.3 in floats, but the table treats them as 1/10 + 2/10 = 3/10
    t = attribution_table(
        [
            ContributionCredit("alice", 0.1),
            ContributionCredit("alice", 0.2),
            ContributionCredit("bob", 0.3),
        ],
        [],
        contributors_bps=10_000,
        reviewers_bps=0,
    )
    assert t == {"alice": SCALE // 2, "bob": SCALE // 2}


def test_rounding_leftovers_go_to_the_lowest_account_on_ties() -> None:
    t = attribution_table(
        [ContributionCredit(name, 1.0) for name in ("carol", "Bob", "alice")],
        [],
        contributors_bps=9_000,
        reviewers_bps=1_000,
    )
    third = SCALE // 3
    assert t == {"alice": third + 1, "Bob": third, "carol": third}


def test_non_address_names_merge_case_insensitively() -> None:
    t = attribution_table(
        [ContributionCredit("alice", 1.0), ContributionCredit("Alice", 1.0)],
        [ReviewCredit("ALICE", True), ReviewCredit("bob", True)],
        contributors_bps=5_000,
        reviewers_bps=5_000,
    )
    assert t == {"ALICE": SCALE * 3 // 4, "bob": SCALE // 4}  # shown in code-point-first spelling


def test_nothing_to_attribute_is_refused() -> None:
    none: list[ContributionCredit] = []
    for r in [[], [ReviewCredit("alice", False)]]:
        with pytest.raises(InvalidInput, match="nothing to attribute"):
            attribution_table(none, r, contributors_bps=9_000, reviewers_bps=1_000)


@pytest.mark.parametrize("quality", [0.0, -0.5, 1.5, math.nan, math.inf])
def test_quality_outside_zero_one_is_refused(quality: float) -> None:
    with pytest.raises(
        InvalidInput, match=r"contribution 0 \(alice\): quality must be in \(0, 1\]"
    ):
        attribution_table(
            [ContributionCredit("alice", quality)], [], contributors_bps=9_000, reviewers_bps=1_000
        )


def test_a_split_that_is_not_whole_is_refused() -> None:
    with pytest.raises(InvalidInput, match="must be 10000; got 9000 \\+ 500"):
        attribution_table(
            [ContributionCredit("a", 1.0)], [], contributors_bps=9_000, reviewers_bps=500
        )
    with pytest.raises(
        InvalidInput, match=r"contributors_bps must be an integer 0\.\.10000; got 10001"
    ):
        attribution_table(
            [ContributionCredit("a", 1.0)], [], contributors_bps=10_001, reviewers_bps=-1
        )
    with pytest.raises(InvalidInput, match="account must be a non-empty string"):
        attribution_table(
            [ContributionCredit(" ", 1.0)], [], contributors_bps=10_000, reviewers_bps=0
        )


def test_table_document_is_json_ready_and_sorted() -> None:
    t = attribution_table(
        [ContributionCredit("zed", 1.0), ContributionCredit(ADDRESSES[0], 1.0)],
        [ReviewCredit("Bob", True)],
        contributors_bps=9_000,
        reviewers_bps=1_000,
    )
    policy = {"contributors_bps": 9_000, "reviewers_bps": 1_000}
    doc = table_document(t, dataset_id=7, version="bafkrei-example", policy=policy)
    assert json.loads(json.dumps(doc)) == doc
    assert doc["schema"] == "cairn.attribution/v1"
    assert doc["scale"] == "1000000000000000000"
    assert (doc["dataset_id"], doc["version"], doc["policy"]) == (7, "bafkrei-example", policy)
    accounts = [e["account"] for e in doc["entries"]]
    assert accounts == sorted(accounts, key=str.lower)
    assert sum(int(e["weight"]) for e in doc["entries"]) == SCALE
    assert all(isinstance(e["weight"], str) for e in doc["entries"])


def test_table_document_refuses_a_table_that_is_not_whole() -> None:
    with pytest.raises(InvalidInput, match="must sum to"):
        table_document({"alice": SCALE - 1}, dataset_id=1, version=None, policy={})
    with pytest.raises(InvalidInput, match="non-negative integer"):
        table_document({"alice": SCALE + 1, "bob": -1}, dataset_id=1, version=None, policy={})


@given(st.binary(min_size=20, max_size=20))
def test_checksum_address_matches_eth_utils(raw: bytes) -> None:
    address = "0x" + raw.hex()
    assert checksum_address(address) == to_checksum_address(address)
    assert checksum_address(address.upper().replace("0X", "0x")) == to_checksum_address(address)
