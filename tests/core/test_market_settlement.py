"""The marketplace's revenue shapes through the settlement split, exact to the unit: licence
sales entering a dataset version and a model, an app's calls entering the app (its data role on
the dataset version it retrieves from, its upstream on its model), and the model's own calls,
all in one epoch, against an independent exact computation."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.policy import BPS, RevenueSplit
from cairn.core.settlement import RevenueNode, Share, split_revenue

APP_OWNER, MODEL_OWNER, BASE_OWNER, DATA_OWNER = (f"0x{c * 40}" for c in "abcd")
CONTRIBUTORS = [f"0x{i:040x}" for i in range(1, 9)]
PROVIDERS = [f"0x{i:040x}" for i in range(100, 103)]

splits = (
    st.lists(st.integers(0, BPS), min_size=3, max_size=3)
    .map(sorted)
    .map(lambda c: RevenueSplit(c[0], c[1] - c[0], c[2] - c[1], BPS - c[2]))
)
amounts = st.integers(0, 10**24)


@st.composite
def market(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, RevenueNode]]:
    attribution = draw(
        st.dictionaries(st.sampled_from(CONTRIBUTORS), st.integers(1, 10**18), min_size=1)
    )
    work = draw(st.dictionaries(st.sampled_from(PROVIDERS), st.integers(1, 1000), max_size=3))
    dataset = RevenueNode("dataset 1@v", DATA_OWNER, draw(splits), data=Share(accounts=attribution))
    base = RevenueNode("model 2", BASE_OWNER, RevenueSplit.owner_only())
    model = RevenueNode(
        "model 3",
        MODEL_OWNER,
        draw(splits),
        data=Share(assets={"dataset 1@v": draw(st.integers(1, 10**6))}),
        compute=Share(accounts=work),
        upstream=Share(assets={"model 2": 1}),
    )
    app = RevenueNode(
        "app 4",
        APP_OWNER,
        draw(splits),
        data=Share(assets={"dataset 1@v": 1}),
        upstream=Share(assets={"model 3": 1}),
    )
    graph = {n.key: n for n in (dataset, base, model, app)}
    revenue = {
        "dataset 1@v": draw(amounts),  # licence sales of the dataset version
        "model 3": draw(amounts),  # the model's calls and its licence sales
        "app 4": draw(amounts),  # the app's calls
    }
    return revenue, graph


def exact(
    revenue: dict[str, int], graph: dict[str, RevenueNode]
) -> dict[tuple[str, str, str, str], Fraction]:
    """(account, source, via, role) -> exact amount, walking every path."""
    owed: dict[tuple[str, str, str, str], Fraction] = {}

    def pay(account: str, source: str, via: str, role: str, amount: Fraction) -> None:
        key = (account.lower(), source, via, role)
        owed[key] = owed.get(key, Fraction(0)) + amount

    def walk(source: str, key: str, amount: Fraction) -> None:
        node = graph[key]
        pay(node.owner, source, key, "owner", amount * node.split.owner / BPS)
        for role in ("data", "compute", "upstream"):
            share: Share = getattr(node, role)
            part = amount * getattr(node.split, role) / BPS
            total = sum(share.accounts.values()) + sum(share.assets.values())
            if not total:
                pay(node.owner, source, key, "owner", part)
                continue
            for account, w in share.accounts.items():
                pay(account, source, key, role, part * w / total)
            for asset, w in share.assets.items():
                walk(source, asset, part * w / total)

    for source, amount in revenue.items():
        walk(source, source, Fraction(amount))
    return owed


@settings(max_examples=150, deadline=None)
@given(market())
def test_licence_app_and_call_revenue_split_exactly(
    case: tuple[dict[str, int], dict[str, RevenueNode]],
) -> None:
    revenue, graph = case
    result = split_revenue(revenue, graph)
    assert result.total == sum(revenue.values())
    for source, amount in revenue.items():  # each source pays out exactly its revenue
        assert sum(x.amount for x in result.lines if x.source == source) == amount
    due = exact(revenue, graph)
    paid = {(x.account.lower(), x.source, x.via, x.role): x.amount for x in result.lines}
    for key in due.keys() | paid.keys():  # every line within one unit of its exact value
        assert abs(paid.get(key, 0) - due.get(key, 0)) < 1, key
    for account, total in result.payouts.items():  # an account's payout is its lines' sum
        assert total == sum(v for k, v in paid.items() if k[0] == account.lower())
