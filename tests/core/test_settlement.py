"""cairn.core.settlement: the revenue split by lineage, exact to the unit, and its document."""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import pytest
from eth_utils import is_hex_address, keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.errors import InvalidInput
from cairn.core.policy import BPS, RevenueSplit
from cairn.core.settlement import (
    SCHEMA,
    PayoutLine,
    RevenueNode,
    Settlement,
    Share,
    settlement_document,
    settlement_from_document,
    split_revenue,
)

# fixed addresses, lower-case
ADDRESSES = ["0x" + keccak(text=f"settlement {i}")[-20:].hex() for i in range(10)]
M_OWNER, BASE_OWNER, X_OWNER, Y_OWNER, P1, P2, A, B = ADDRESSES[:8]
CHECKSUM = {a: to_checksum_address(a) for a in ADDRESSES}
OWNER_ONLY = RevenueSplit.owner_only()


def spellings(address: str) -> list[str]:
    """Ways one address is written: lower, upper hex, checksum, without 0x."""
    return [address, "0x" + address[2:].upper(), to_checksum_address(address), address[2:]]


def by_line(settlement: Settlement) -> set[tuple[str, str, str, int]]:
    """(account, via, role, amount) of every line."""
    return {(x.account, x.via, x.role, x.amount) for x in settlement.lines}


# ------------------------------------------------------------------------------ worked example


def worked_example_graph() -> dict[str, RevenueNode]:
    """A model fine-tuned from a base model on two datasets by two providers."""
    nodes = [
        RevenueNode("model 1", BASE_OWNER, OWNER_ONLY),
        RevenueNode(
            "model 2",
            M_OWNER,
            RevenueSplit(2000, 4000, 2000, 2000),
            data=Share(assets={"dataset 1 v1": 3, "dataset 2 v1": 1}),  # records used
            compute=Share(accounts={P1: 3, P2: 1}),  # work units
            upstream=Share(assets={"model 1": 1}),
        ),
        RevenueNode(
            "dataset 1 v1",
            X_OWNER,
            RevenueSplit(1000, 9000, 0, 0),
            data=Share(accounts={A: 2 * 10**17, B: 10**17}),
        ),
        RevenueNode(
            "dataset 2 v1",
            Y_OWNER,
            RevenueSplit(2000, 8000, 0, 0),
            data=Share(accounts={"erin": 1, "dave": 1, "carol": 1}),
        ),
    ]
    return {node.key: node for node in nodes}


def test_worked_example_pays_every_role_to_the_unit() -> None:
    s = split_revenue({"model 2": 1_000_000}, worked_example_graph())
    # model 2: owner 20 %, compute 20 % by 3:1, upstream 20 % to model 1's owner, data 40 %
    # by 3:1 to the datasets; dataset 1 pays 10 % to its owner and 90 % by 2:1; dataset 2
    # pays 20 % to its owner and 80 % in thirds: 26,666.67 each, so 2 leftover units go to
    # the two lowest accounts of the three-way tie
    assert by_line(s) == {
        (CHECKSUM[M_OWNER], "model 2", "owner", 200_000),
        (CHECKSUM[P1], "model 2", "compute", 150_000),
        (CHECKSUM[P2], "model 2", "compute", 50_000),
        (CHECKSUM[BASE_OWNER], "model 1", "owner", 200_000),
        (CHECKSUM[X_OWNER], "dataset 1 v1", "owner", 30_000),
        (CHECKSUM[A], "dataset 1 v1", "data", 180_000),
        (CHECKSUM[B], "dataset 1 v1", "data", 90_000),
        (CHECKSUM[Y_OWNER], "dataset 2 v1", "owner", 20_000),
        ("carol", "dataset 2 v1", "data", 26_667),
        ("dave", "dataset 2 v1", "data", 26_667),
        ("erin", "dataset 2 v1", "data", 26_666),
    }
    assert {x.source for x in s.lines} == {"model 2"}
    assert s.total == 1_000_000
    assert s.revenue == {"model 2": 1_000_000}
    assert s.payouts[CHECKSUM[P1]] == 150_000
    assert list(s.payouts) == sorted(s.payouts, key=str.lower)
    assert [(x.via, x.role) for x in s.lines][:3] == [
        ("dataset 1 v1", "data"),
        ("dataset 1 v1", "data"),
        ("dataset 1 v1", "owner"),
    ]  # lines in (source, via, role, account) order


def test_a_leftover_unit_goes_to_the_largest_fraction_before_any_tie() -> None:
    # 100 units in 2:3:4 by weight -> 22.2, 33.3, 44.4: one leftover unit, to the 44.4s owner
    node = RevenueNode(
        "app 1", "alice", RevenueSplit(0, BPS, 0, 0), data=Share({"zed": 4, "amy": 2, "bo": 3})
    )
    s = split_revenue({"app 1": 100}, {"app 1": node})
    assert s.payouts == {"amy": 22, "bo": 33, "zed": 45}


def test_a_tied_unit_goes_to_the_lowest_account_then_via_then_role() -> None:
    half = RevenueSplit(5000, 0, 0, 5000)
    # account first: amy (via app 1) beats zed (via app 0, the lower via)
    graph = {
        "app 1": RevenueNode("app 1", "amy", half, upstream=Share(assets={"app 0": 1})),
        "app 0": RevenueNode("app 0", "zed", OWNER_ONLY),
    }
    assert split_revenue({"app 1": 1}, graph).lines == (
        PayoutLine("amy", "app 1", "app 1", "owner", 1),
    )
    # one account, two vias: the lower via
    graph["app 0"] = RevenueNode("app 0", "amy", OWNER_ONLY)
    assert split_revenue({"app 1": 1}, graph).lines == (
        PayoutLine("amy", "app 1", "app 0", "owner", 1),
    )
    # one account, one via, two roles: the lower role name ("data" before "owner")
    both = RevenueNode("app 1", "amy", RevenueSplit(5000, 5000, 0, 0), data=Share({"amy": 1}))
    assert split_revenue({"app 1": 1}, {"app 1": both}).lines == (
        PayoutLine("amy", "app 1", "app 1", "data", 1),
    )


def test_a_role_with_no_positive_weight_goes_to_the_owner() -> None:
    node = RevenueNode(
        "model 1",
        M_OWNER,
        RevenueSplit(1000, 2000, 3000, 4000),
        data=Share(),  # nobody
        compute=Share(accounts={P1: 0}, assets={"model 0": 0}),  # only zero weights
        upstream=Share(accounts={P2: 1}),
    )
    graph = {"model 1": node, "model 0": RevenueNode("model 0", BASE_OWNER, OWNER_ONLY)}
    s = split_revenue({"model 1": 10_000}, graph)
    assert by_line(s) == {
        (CHECKSUM[M_OWNER], "model 1", "owner", 6_000),  # owner + data + compute, one line
        (CHECKSUM[P2], "model 1", "upstream", 4_000),
    }


def test_a_role_with_recipients_but_no_bps_pays_nobody() -> None:
    node = RevenueNode("model 1", M_OWNER, OWNER_ONLY, compute=Share(accounts={P1: 5}))
    s = split_revenue({"model 1": 7}, {"model 1": node})
    assert s.payouts == {CHECKSUM[M_OWNER]: 7}


def test_an_ancestor_reached_by_two_paths_is_paid_for_both() -> None:
    # app 1 -> model a, model b -> model base (a diamond), plus app 1 -> model base directly
    nodes = [
        RevenueNode(
            "app 1",
            "app-owner",
            RevenueSplit(0, 0, 0, BPS),
            upstream=Share(assets={"model a": 1, "model b": 1, "model base": 2}),
        ),
        RevenueNode(
            "model a",
            "a-owner",
            RevenueSplit(5000, 0, 0, 5000),
            Share(),
            Share(),
            Share(assets={"model base": 1}),
        ),
        RevenueNode(
            "model b",
            "b-owner",
            RevenueSplit(5000, 0, 0, 5000),
            Share(),
            Share(),
            Share(assets={"model base": 1}),
        ),
        RevenueNode("model base", "base-owner", OWNER_ONLY),
    ]
    s = split_revenue({"app 1": 1000}, {n.key: n for n in nodes})
    # base: 500 directly + 125 via a + 125 via b, in one line
    assert by_line(s) == {
        ("a-owner", "model a", "owner", 125),
        ("b-owner", "model b", "owner", 125),
        ("base-owner", "model base", "owner", 750),
    }


def test_spellings_of_one_account_merge_into_one_payout_in_checksum_form() -> None:
    lower, upper, checksum, bare = spellings(A)
    node = RevenueNode(
        "model 1",
        upper,
        RevenueSplit(2500, 2500, 2500, 2500),
        data=Share(accounts={lower: 1, bare: 1, P1: 2}),  # one account written twice: weight 2
        compute=Share(accounts={checksum: 1}),
        upstream=Share(accounts={"Bob": 1, "bob": 1, "BOB": 2}),
    )
    s = split_revenue({"model 1": 4_000}, {"model 1": node})
    assert s.payouts == {CHECKSUM[A]: 1_000 + 500 + 1_000, "BOB": 1_000, CHECKSUM[P1]: 500}
    assert ("BOB", "model 1", "upstream", 1_000) in by_line(s)  # one line, first spelling
    assert (CHECKSUM[A], "model 1", "data", 500) in by_line(s)


def test_a_source_with_zero_revenue_pays_no_lines_but_is_listed() -> None:
    graph = worked_example_graph()
    s = split_revenue({"model 2": 0, "model 1": 5}, graph)
    assert s.revenue == {"model 1": 5, "model 2": 0}
    assert by_line(s) == {(CHECKSUM[BASE_OWNER], "model 1", "owner", 5)}
    assert split_revenue({}, graph) == Settlement(lines=(), payouts={}, revenue={})


def test_each_source_is_rounded_to_its_own_revenue() -> None:
    node = RevenueNode("app 1", "own", RevenueSplit(0, BPS, 0, 0), data=Share({"x": 1, "y": 1}))
    other = RevenueNode("app 2", "own", RevenueSplit(0, BPS, 0, 0), data=Share({"x": 1, "y": 1}))
    s = split_revenue({"app 1": 1, "app 2": 1}, {"app 1": node, "app 2": other})
    # each source has 1 unit, tied between x and y: x wins both (pooling would pay y one)
    assert s.lines == (
        PayoutLine("x", "app 1", "app 1", "data", 1),
        PayoutLine("x", "app 2", "app 2", "data", 1),
    )


# ------------------------------------------------------------------------------ errors


def model(key: str, **fields: Any) -> RevenueNode:
    """A node paying 25 % to each role, with the given fields."""
    return RevenueNode(
        **{"key": key, "owner": M_OWNER, "split": RevenueSplit(2500, 2500, 2500, 2500), **fields}
    )


ERRORS: list[tuple[Mapping[str, Any], Mapping[str, Any], str]] = [
    ({"model 1": -1}, {"model 1": model("model 1")}, r"revenue of model 1 .* got -1"),
    ({"model 1": True}, {"model 1": model("model 1")}, r"revenue of model 1 .* got True"),
    ({"model 1": 1.0}, {"model 1": model("model 1")}, r"revenue of model 1 .* got 1\.0"),
    ({"model 9": 1}, {"model 1": model("model 1")}, r"revenue: 'model 9' is not an asset"),
    (
        {},
        {"model 1": model("model 1", data=Share(accounts={A: -2}))},
        rf"model 1: data weight of {A} must be a non-negative integer; got -2",
    ),
    (
        {},
        {"model 1": model("model 1", compute=Share(accounts={A: False}))},
        r"model 1: compute weight of .* got False",
    ),
    (
        {},
        {"model 1": model("model 1", upstream=Share(assets={"model 1": 0.5}))},
        r"model 1: upstream weight of asset 'model 1' .* got 0\.5",
    ),
    (
        {},
        {"model 1": model("model 1", data=Share(assets={"dataset 4": 1}))},
        r"model 1: data asset 'dataset 4' is not in the graph",
    ),
    (
        {},
        {"model 1": model("model 1", data=Share(accounts={"": 1}))},
        r"model 1: data account must be a non-empty string",
    ),
    ({}, {"model 1": model("model 2")}, r"graph\['model 1'\]: the node's key is 'model 2'"),
    ({}, {"model 1": model("model 1", owner="")}, r"model 1: owner must be a non-empty account"),
    ({}, {"model 1": model("model 1", owner="  ")}, r"model 1: owner must be a non-empty account"),
    ({}, {"model 1": "model 1"}, r"graph\['model 1'\]: expected a RevenueNode; got str"),
    (
        {},
        {"model 1": model("model 1", upstream=Share(assets={"model 1": 1}))},
        r"lineage has a cycle: model 1 -> model 1$",
    ),
    (
        {},
        {
            "model 1": model("model 1", upstream=Share(assets={"model 2": 1})),
            "model 2": model("model 2", data=Share(assets={"model 3": 1})),
            "model 3": model("model 3", compute=Share(assets={"model 1": 0})),  # zero still links
        },
        r"lineage has a cycle: model 1 -> model 2 -> model 3 -> model 1$",
    ),
]


@pytest.mark.parametrize(("revenue", "graph", "message"), ERRORS)
def test_bad_input_is_refused_naming_the_thing_at_fault(
    revenue: Mapping[str, Any], graph: Mapping[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        split_revenue(revenue, graph)


def test_good_versions_of_the_refused_inputs_are_accepted() -> None:
    graph = {
        "model 1": model("model 1", upstream=Share(assets={"model 2": 1})),
        "model 2": model("model 2", data=Share(accounts={A: 0}, assets={"model 3": 0})),
        "model 3": model("model 3", owner="carol"),
    }
    assert split_revenue({"model 1": 0, "model 2": 10**30}, graph).total == 10**30


# ------------------------------------------------------------------------------ properties

POOL = [*ADDRESSES, "alice", "Alice", "bob"]  # accounts: addresses and plain names
weights = st.one_of(st.integers(0, 5), st.integers(0, 10**18))
splits = (
    st.lists(st.integers(0, BPS), min_size=3, max_size=3)
    .map(sorted)
    .map(lambda c: RevenueSplit(c[0], c[1] - c[0], c[2] - c[1], BPS - c[2]))
)
# every spelling of the pool, so that one share may name an account twice
accounts = st.sampled_from([s for a in POOL for s in (spellings(a) if is_hex_address(a) else [a])])
asset_weights = st.lists(st.one_of(st.none(), st.none(), weights), min_size=3, max_size=3)


@st.composite
def lineages(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, RevenueNode]]:
    """Revenue and a random lineage DAG: node i may name only nodes after it."""
    keys = [f"asset {i}" for i in range(draw(st.integers(1, 6)))]
    graph = {}
    for i, key in enumerate(keys):
        later = keys[i + 1 :]

        def share(later: list[str] = later) -> Share:
            paid = draw(st.dictionaries(accounts, weights, max_size=3))
            named = zip(later, draw(asset_weights), strict=False)  # the next three; None: not named
            return Share(paid, {asset: w for asset, w in named if w is not None})

        graph[key] = RevenueNode(key, draw(accounts), draw(splits), share(), share(), share())
    revenue = draw(st.dictionaries(st.sampled_from(keys), st.integers(0, 10**24), min_size=1))
    return revenue, graph


def exact_shares(
    revenue: Mapping[str, int], graph: Mapping[str, RevenueNode]
) -> dict[tuple[str, str, str, str], Fraction]:
    """(account merge key, source, via, role) -> exact amount, walking every path by recursion."""
    exact: dict[tuple[str, str, str, str], Fraction] = defaultdict(Fraction)

    def merge(account: str) -> str:
        return to_checksum_address(account).lower() if is_hex_address(account) else account.lower()

    def walk(source: str, key: str, amount: Fraction) -> None:
        node = graph[key]
        owner = (merge(node.owner), source, key, "owner")
        exact[owner] += amount * node.split.owner / BPS
        for role in ("data", "compute", "upstream"):
            share: Share = getattr(node, role)
            part = amount * getattr(node.split, role) / BPS
            total = sum(share.accounts.values()) + sum(share.assets.values())
            if not total:
                exact[owner] += part
                continue
            for account, w in share.accounts.items():
                exact[merge(account), source, key, role] += part * w / total
            for asset, w in share.assets.items():
                walk(source, asset, part * w / total)

    for source, amount in revenue.items():
        walk(source, source, Fraction(amount))
    return exact


@settings(max_examples=100, deadline=None)
@given(lineages())
def test_every_line_is_within_one_unit_of_its_exact_share_and_sources_add_up(
    case: tuple[dict[str, int], dict[str, RevenueNode]],
) -> None:
    revenue, graph = case
    s = split_revenue(revenue, graph)
    exact = exact_shares(revenue, graph)
    paid = {(x.account.lower(), x.source, x.via, x.role): x.amount for x in s.lines}
    assert len(paid) == len(s.lines)  # no (account, source, via, role) twice
    for key in exact.keys() | paid.keys():
        assert abs(paid.get(key, 0) - exact.get(key, 0)) < 1, key
    for source, amount in revenue.items():
        assert sum(x.amount for x in s.lines if x.source == source) == amount
    assert all(type(x.amount) is int and x.amount > 0 for x in s.lines)
    assert s.total == sum(revenue.values())
    assert s.revenue == revenue


@settings(max_examples=60, deadline=None)
@given(lineages())
def test_leftover_units_go_to_the_largest_fractions_then_the_lowest_account_via_role(
    case: tuple[dict[str, int], dict[str, RevenueNode]],
) -> None:
    revenue, graph = case
    s = split_revenue(revenue, graph)
    paid = {(x.account.lower(), x.source, x.via, x.role): x.amount for x in s.lines}
    exact = exact_shares(revenue, graph)
    for source in revenue:
        mine = {(m, v, r): e for (m, src, v, r), e in exact.items() if src == source}
        ranked = sorted((-(e - math.floor(e)), m, v, r) for (m, v, r), e in mine.items())
        raised = {k for k, e in mine.items() if paid.get((k[0], source, *k[1:]), 0) > e}
        assert raised == {(m, v, r) for _, m, v, r in ranked[: len(raised)]}


@settings(max_examples=60, deadline=None)
@given(lineages())
def test_each_account_has_one_payout_the_sum_of_its_lines(
    case: tuple[dict[str, int], dict[str, RevenueNode]],
) -> None:
    s = split_revenue(*case)
    assert len({a.lower() for a in s.payouts}) == len(s.payouts)
    assert list(s.payouts) == sorted(s.payouts, key=str.lower)
    for account, total in s.payouts.items():
        assert total == sum(x.amount for x in s.lines if x.account == account) > 0
        assert not is_hex_address(account) or account == to_checksum_address(account)
    assert {x.account for x in s.lines} == set(s.payouts)
    assert list(s.lines) == sorted(
        s.lines, key=lambda x: (x.source, x.via, x.role, x.account.lower())
    )


def respelt(
    revenue: dict[str, int], graph: dict[str, RevenueNode], rng: random.Random
) -> tuple[dict[str, int], dict[str, RevenueNode]]:
    """The same lineage with dicts in another order and addresses in other spellings."""

    def spell(account: str) -> str:
        return (
            rng.choice(spellings("0x" + account.lower()[-40:]))
            if is_hex_address(account)
            else account
        )

    def shuffled(weights: Mapping[str, int], respell: bool) -> dict[str, int]:
        out: dict[str, int] = {}
        for key in rng.sample(list(weights), len(weights)):
            new = spell(key) if respell else key
            out[new] = out.get(new, 0) + weights[key]  # two spellings may now coincide
        return out

    def node(n: RevenueNode) -> RevenueNode:
        shares = [
            Share(shuffled(x.accounts, True), shuffled(x.assets, False))
            for x in (n.data, n.compute, n.upstream)
        ]
        return RevenueNode(n.key, spell(n.owner), n.split, *shares)

    return shuffled(revenue, False), {
        k: node(graph[k]) for k in rng.sample(list(graph), len(graph))
    }


@settings(max_examples=60, deadline=None)
@given(lineages(), st.randoms(use_true_random=False))
def test_output_does_not_depend_on_dict_order_or_address_case(
    case: tuple[dict[str, int], dict[str, RevenueNode]], rng: random.Random
) -> None:
    s = split_revenue(*case)
    again = split_revenue(*respelt(*case, rng))
    assert again == s
    assert list(again.payouts.items()) == list(s.payouts.items())
    assert list(again.revenue.items()) == list(s.revenue.items())


# ------------------------------------------------------------------------------ the document


@settings(max_examples=50, deadline=None)
@given(lineages())
def test_the_document_round_trips_through_json(
    case: tuple[dict[str, int], dict[str, RevenueNode]],
) -> None:
    s = split_revenue(*case)
    doc = json.loads(json.dumps(settlement_document(s)))
    assert doc["schema"] == SCHEMA
    assert all(isinstance(x["amount"], str) for x in doc["lines"])
    back = settlement_from_document(doc)
    assert back == s
    assert list(back.payouts.items()) == list(s.payouts.items())


def test_the_document_writes_amounts_as_decimal_strings() -> None:
    s = split_revenue({"model 1": 10**24 + 1}, worked_example_graph())
    assert settlement_document(s) == {
        "schema": "cairn.settlement/v1",
        "revenue": {"model 1": "1000000000000000000000001"},
        "payouts": {CHECKSUM[BASE_OWNER]: "1000000000000000000000001"},
        "lines": [
            {
                "account": CHECKSUM[BASE_OWNER],
                "source": "model 1",
                "via": "model 1",
                "role": "owner",
                "amount": "1000000000000000000000001",
            }
        ],
    }


def tampered(change: str) -> dict[str, Any]:
    """The worked example's document with one thing changed."""
    doc = settlement_document(split_revenue({"model 2": 1_000_000}, worked_example_graph()))
    line = doc["lines"][0]
    if change == "schema":
        doc["schema"] = "cairn.settlement/v0"
    elif change == "amount":
        line["amount"] = str(int(line["amount"]) + 1)
    elif change == "payout":
        doc["payouts"][line["account"]] = str(int(doc["payouts"][line["account"]]) + 1)
    elif change == "padded":
        line["amount"] = "0" + line["amount"]
    elif change == "number":
        line["amount"] = int(line["amount"])
    elif change == "role":
        line["role"] = "referrer"
    elif change == "source":
        line["source"] = "model 9"
    elif change == "twice":
        doc["lines"].append(dict(line))
    elif change == "missing":
        del line["via"]
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("schema", r"schema must be 'cairn\.settlement/v1'"),
        ("amount", r"lines pay .* not the revenue"),
        ("payout", r"payouts are not the sums of the lines"),
        ("padded", r"line 0 amount must be a decimal string; got '0"),
        ("number", r"line 0 amount must be a decimal string; got \d+"),
        ("role", r"line 0 needs .* a role in owner, data, compute, upstream"),
        ("source", r"line 0 needs a source in revenue"),
        ("twice", r"listed twice"),
        ("missing", r"malformed .*'via'"),
    ],
)
def test_a_document_that_does_not_add_up_is_refused(change: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        settlement_from_document(tampered(change))


def test_an_untampered_document_is_accepted() -> None:
    assert settlement_from_document(tampered("nothing")).total == 1_000_000
