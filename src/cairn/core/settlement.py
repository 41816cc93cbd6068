"""An epoch's revenue split by lineage: who is owed what, from which asset, in which role.

A source's revenue enters its asset, and every asset splits what reaches it by its own
`RevenueSplit`: the owner role to its owner; each other role among its recipients by weight,
accounts paid directly and assets passing their part on by their own split, down the lineage
(an asset reached by two paths gets both parts). A role with no positive weight goes to the
owner. Arithmetic is exact per source; then largest-remainder rounding makes each source's
lines integers summing to exactly its revenue, each within one unit of its exact value: leftover
units go to the largest fractional parts, ties to the lower (account, via, role).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cairn.core.attribution import account_key
from cairn.core.errors import InvalidInput
from cairn.core.policy import BPS, ROLES, RevenueSplit

SCHEMA = "cairn.settlement/v1"
_PAID_ROLES = ("data", "compute", "upstream")  # the roles with recipients of their own
_AMOUNT = re.compile(r"0|[1-9][0-9]*")  # a document's amounts: plain decimal, no sign or padding

# (source, via, role, merge key, amount): a payout line before its account is shown
_Entry = tuple[str, str, str, str, int]


@dataclass(frozen=True)
class Share:
    """One role's recipients: accounts paid directly, and assets paid by their own split."""

    accounts: Mapping[str, int] = field(default_factory=dict)  # account -> weight >= 0
    assets: Mapping[str, int] = field(default_factory=dict)  # asset node key -> weight >= 0


@dataclass(frozen=True)
class RevenueNode:
    """An asset as settlement sees it (a dataset version, a model, an app)."""

    key: str  # e.g. "model 5", "dataset 3 v2"; unique in the graph
    owner: str  # account
    split: RevenueSplit
    data: Share = field(default_factory=Share)
    compute: Share = field(default_factory=Share)
    upstream: Share = field(default_factory=Share)


@dataclass(frozen=True, slots=True)  # slots: a settlement may hold millions of lines
class PayoutLine:
    """Part of an account's payout: from which source's revenue, through which asset, in which role."""

    account: str  # addresses in EIP-55 checksum form
    source: str  # the revenue key (top-level asset) the money came from
    via: str  # the node key whose split paid it
    role: str  # "owner", "data", "compute" or "upstream"; a role with nobody to pay is "owner"
    amount: int


@dataclass(frozen=True)
class Settlement:
    """Every payout line, each account's total, and the revenue they were split from."""

    lines: tuple[PayoutLine, ...]  # sorted by (source, via, role, account)
    payouts: dict[str, int]  # account -> sum of its lines, sorted by account, none zero
    revenue: dict[str, int]  # source -> revenue as given, sorted by source

    @property
    def total(self) -> int:
        """Everything paid out: the sum of the revenue."""
        return sum(self.payouts.values())


class _Accounts:
    """Each spelling's merge key, checksummed once per settlement; one display form per account."""

    def __init__(self) -> None:
        self.merge: dict[str, str] = {}  # spelling -> merge key
        self.shown: dict[str, str] = {}  # merge key -> first spelling in code-point order

    def key(self, account: str) -> str:
        """The merge key of `account`, noting its display form."""
        merge = self.merge.get(account)
        if merge is None:
            merge, display = account_key(account)
            self.merge[account] = merge
            if display < self.shown.setdefault(merge, display):
                self.shown[merge] = display
        return merge

    def settle(self, entries: list[_Entry], revenue: dict[str, int]) -> Settlement:
        """The settlement of `entries`, sorted, with each account's total."""
        entries.sort()  # split_revenue makes them in order, so this is one linear pass
        totals: dict[str, int] = {}
        for _, _, _, merge, amount in entries:
            totals[merge] = totals.get(merge, 0) + amount
        shown = self.shown
        return Settlement(
            lines=tuple(PayoutLine(shown[m], s, v, r, a) for s, v, r, m, a in entries),
            payouts={shown[m]: totals[m] for m in sorted(totals)},
            revenue=revenue,
        )


@dataclass(frozen=True)
class _Role:
    """A role that pays recipients: positive weights only, spellings merged."""

    name: str
    bps: int
    total: int  # sum of the weights, > 0
    accounts: tuple[str, ...]  # merge keys, sorted
    weights: tuple[int, ...]  # beside them
    assets: tuple[tuple[str, int], ...]  # (node key, weight)


@dataclass(frozen=True)
class _Payer:
    """A checked node: what its owner takes, and the roles that pay others."""

    owner: str  # merge key
    owner_bps: int  # the owner role plus every role with nobody to pay
    roles: tuple[_Role, ...]
    lineage: tuple[str, ...]  # every asset it names, sorted, for the cycle check


def _check_amount(value: Any, what: str) -> None:
    if type(value) is not int or value < 0:  # `type` keeps bools out
        raise InvalidInput(f"{what} must be a non-negative integer; got {value!r}")


def _payer(key: str, node: Any, graph: Mapping[str, Any], accounts: _Accounts) -> _Payer:
    """Check one node and merge its recipients."""
    if not isinstance(node, RevenueNode):
        raise InvalidInput(f"graph[{key!r}]: expected a RevenueNode; got {type(node).__name__}")
    if node.key != key:
        raise InvalidInput(f"graph[{key!r}]: the node's key is {node.key!r}; they must match")
    if not isinstance(node.owner, str) or not node.owner.strip():
        raise InvalidInput(f"{key}: owner must be a non-empty account; got {node.owner!r}")
    if not isinstance(node.split, RevenueSplit):
        raise InvalidInput(f"{key}: split must be a RevenueSplit; got {node.split!r}")
    owner_bps, roles, lineage = node.split.owner, [], set()
    for name in _PAID_ROLES:
        share: Share = getattr(node, name)
        merged: dict[str, int] = {}
        for account, weight in share.accounts.items():
            if not isinstance(account, str) or not account.strip():
                raise InvalidInput(
                    f"{key}: {name} account must be a non-empty string; got {account!r}"
                )
            _check_amount(weight, f"{key}: {name} weight of {account}")
            if weight:
                merge = accounts.key(account)
                merged[merge] = merged.get(merge, 0) + weight
        assets = []
        for asset, weight in sorted(share.assets.items()):
            if asset not in graph:
                raise InvalidInput(f"{key}: {name} asset {asset!r} is not in the graph")
            _check_amount(weight, f"{key}: {name} weight of asset {asset!r}")
            lineage.add(asset)
            if weight:
                assets.append((asset, weight))
        total = sum(merged.values()) + sum(w for _, w in assets)
        bps = getattr(node.split, name)
        if not total:
            owner_bps += bps  # nobody to pay: the owner takes the role
        elif bps:
            ordered = sorted(merged)
            weights = tuple(merged[m] for m in ordered)
            roles.append(_Role(name, bps, total, tuple(ordered), weights, tuple(assets)))
    return _Payer(accounts.key(node.owner), owner_bps, tuple(roles), tuple(sorted(lineage)))


def _lineage_order(payers: Mapping[str, _Payer]) -> dict[str, int]:
    """Node key -> rank, every asset ranked before the assets it pays; a cycle is an error."""
    on_path: set[str] = set()
    done: set[str] = set()
    finished: list[str] = []  # each node after every asset it pays
    for root in sorted(payers):
        if root in done:
            continue
        path, children = [root], [iter(payers[root].lineage)]
        on_path.add(root)
        while path:  # depth first, without recursion: lineages can be long
            child = next(children[-1], None)
            if child is None:
                children.pop()
                finished.append(path.pop())
                on_path.discard(finished[-1])
                done.add(finished[-1])
            elif child in on_path:
                cycle = [*path[path.index(child) :], child]
                raise InvalidInput(f"lineage has a cycle: {' -> '.join(cycle)}")
            elif child not in done:
                path.append(child)
                children.append(iter(payers[child].lineage))
                on_path.add(child)
    return {key: rank for rank, key in enumerate(reversed(finished))}


def _split_source(
    source: str, revenue: int, payers: Mapping[str, _Payer], order: Mapping[str, int]
) -> list[_Entry]:
    """One source's lines in order: exact shares down its lineage, rounded to sum to `revenue`."""
    reached, todo = {source}, [source]
    while todo:
        for role in payers[todo.pop()].roles:
            for asset, _ in role.assets:
                if asset not in reached:
                    reached.add(asset)
                    todo.append(asset)
    # A (via, role) group: its accounts' exact amounts are numerators over one denominator d.
    groups: list[tuple[str, str, tuple[str, ...], int, list[int]]] = []
    inflow = {source: Fraction(revenue)}
    for via in sorted(reached, key=order.__getitem__):  # an asset after all that pay it
        part = inflow[via]  # > 0: only positive weights of roles with bps lead here
        payer, p, q = payers[via], part.numerator, part.denominator
        if payer.owner_bps:
            groups.append((via, "owner", (payer.owner,), q * BPS, [p * payer.owner_bps]))
        for role in payer.roles:
            n, d = p * role.bps, q * BPS * role.total
            groups.append((via, role.name, role.accounts, d, [n * w for w in role.weights]))
            for asset, w in role.assets:
                inflow[asset] = inflow.get(asset, Fraction(0)) + Fraction(n * w, d)
    groups.sort(key=lambda g: g[:2])  # lines come out in (via, role, account) order

    # Largest remainder, fractional parts compared exactly over one common denominator.
    common = math.lcm(*(d for *_, d, _ in groups))
    keys: list[tuple[str, str, str]] = []  # (via, role, merge key) of each line
    wholes: list[int] = []
    fractions: list[int] = []  # in units of 1 / common
    for via, role_name, merges, d, numerators in groups:
        scale = common // d
        parts = [divmod(n, d) for n in numerators]
        keys.extend((via, role_name, merge) for merge in merges)
        wholes.extend(whole for whole, _ in parts)
        fractions.extend(rest * scale for _, rest in parts)
    leftover = revenue - sum(wholes)  # the fractional parts sum to it, each below one unit
    if leftover:
        cutoff = sorted(fractions, reverse=True)[leftover - 1]  # the least fraction that gains
        gains = [i for i, f in enumerate(fractions) if f > cutoff]
        tied = [i for i, f in enumerate(fractions) if f == cutoff]
        tied.sort(key=lambda i: (keys[i][2], keys[i][0], keys[i][1]))  # (account, via, role)
        for i in gains + tied[: leftover - len(gains)]:
            wholes[i] += 1
    return [(source, *key, amount) for key, amount in zip(keys, wholes, strict=True) if amount]


def split_revenue(revenue: Mapping[str, int], graph: Mapping[str, RevenueNode]) -> Settlement:
    """Split each source's revenue down its lineage in `graph`, to the unit, deterministically."""
    accounts = _Accounts()
    payers = {key: _payer(key, graph[key], graph, accounts) for key in sorted(graph)}
    order = _lineage_order(payers)
    for source, amount in revenue.items():
        if source not in graph:
            raise InvalidInput(f"revenue: {source!r} is not an asset in the graph")
        _check_amount(amount, f"revenue of {source}")
    entries: list[_Entry] = []
    for source in sorted(revenue):
        if revenue[source]:
            entries.extend(_split_source(source, revenue[source], payers, order))
    return accounts.settle(entries, {source: revenue[source] for source in sorted(revenue)})


def settlement_document(settlement: Settlement) -> dict[str, Any]:
    """The JSON-ready settlement document: amounts as decimal strings."""
    return {
        "schema": SCHEMA,
        "revenue": {source: str(amount) for source, amount in settlement.revenue.items()},
        "payouts": {account: str(amount) for account, amount in settlement.payouts.items()},
        "lines": [
            {
                "account": line.account,
                "source": line.source,
                "via": line.via,
                "role": line.role,
                "amount": str(line.amount),
            }
            for line in settlement.lines
        ],
    }


def _parse_amount(text: Any, what: str) -> int:
    if not isinstance(text, str) or not _AMOUNT.fullmatch(text):
        raise InvalidInput(f"settlement document: {what} must be a decimal string; got {text!r}")
    return int(text)


def settlement_from_document(doc: Mapping[str, Any]) -> Settlement:
    """The settlement a `settlement_document` describes, checked to add up to its revenue."""
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        raise InvalidInput(f"settlement document: schema must be {SCHEMA!r}")
    try:
        revenue = {
            s: _parse_amount(a, f"revenue of {s}") for s, a in sorted(doc["revenue"].items())
        }
        payouts = {a: _parse_amount(x, f"payout to {a}") for a, x in doc["payouts"].items()}
        accounts, entries = _Accounts(), []
        for n, line in enumerate(doc["lines"]):
            source, via, role = line["source"], line["via"], line["role"]
            amount = _parse_amount(line["amount"], f"line {n} amount")
            if source not in revenue or role not in ROLES or not isinstance(via, str) or not amount:
                raise InvalidInput(
                    f"settlement document: line {n} needs a source in revenue, a via, a role in "
                    f"{', '.join(ROLES)} and a positive amount; got {dict(line)!r}"
                )
            entries.append((source, via, role, accounts.key(line["account"]), amount))
    except (KeyError, AttributeError, TypeError) as e:
        raise InvalidInput(f"settlement document: malformed ({e!r})") from e
    if len({entry[:4] for entry in entries}) != len(entries):
        raise InvalidInput("settlement document: an (account, source, via, role) is listed twice")
    settlement = accounts.settle(entries, revenue)
    paid = dict.fromkeys(revenue, 0)
    for line in settlement.lines:
        paid[line.source] += line.amount
    if paid != revenue:
        raise InvalidInput(f"settlement document: lines pay {paid}, not the revenue {revenue}")
    if settlement.payouts != payouts:
        raise InvalidInput("settlement document: payouts are not the sums of the lines")
    return settlement
