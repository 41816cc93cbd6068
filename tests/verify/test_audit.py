"""`cairn audit`: every funded epoch re-derived from the chain and public blobs, a forged
settlement and a tampered blob caught, bounty payouts re-planned."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cairn.compute import finish
from cairn.core.cid import CID
from cairn.core.errors import InvalidInput
from cairn.core.merkle import StandardMerkleTree
from cairn.core.settlement import PayoutLine, Settlement
from cairn.economy import epochs
from cairn.economy.custody import Custody
from cairn.economy.epochs import EPOCH_SCHEMA, PAYOUT_LEAF
from cairn.node import Node
from cairn.verify.audit import Auditor, AuditReport
from cairn.verify.audit_chain import AuditChain
from cairn.verify.findings import OK
from tests.compute.test_jobs_crash_safe import play_job, start_job
from tests.data.conftest import dev, make_dataset, pair, upload
from tests.economy.conftest import TOKEN, World, build_world


@pytest.fixture
def world(node: Node, tmp_path: Path) -> World:
    return build_world(node, tmp_path)


def _chain(node: Node) -> AuditChain:
    contracts = {n: (c.address, c.abi) for n, c in node.chain.deployment.contracts.items()}
    return AuditChain(node.chain.client.w3, contracts, node.chain.deployment.block)


def _blobs(node: Node) -> Any:
    """Public blobs as an auditor reads them: the bytes checked against the CID."""

    def read(cid: str) -> Any:
        data = node.store.get(cid)
        if CID.of_bytes(data) != CID.parse(cid):
            raise InvalidInput(f"blob {cid}: bytes with another CID")
        return node.store.get_json(cid)

    return read


def _audit(node: Node) -> AuditReport:
    return Auditor(_chain(node), _blobs(node)).run()


def _spend(world: World, calls: int = 3) -> None:
    meter = world.node.economy.meter
    for i in range(calls):
        charge = meter.open(world.key, world.model, "chat.completions", 2000)
        meter.close(charge, 100 + i, 900 + 7 * i)


def test_settled_epochs_re_derive_exactly(world: World) -> None:
    node = world.node
    node.economy.prices.set(world.alice.address, world.model, TOKEN // 100)
    _spend(world)
    first = node.economy.settle()
    # A second version of the dataset (the model stays paid at the first, which it was trained
    # on), and a licence to the dataset sold at its newest: both versions in one settlement.
    upload(node, world.carol, world.dataset, [pair(i) for i in range(100, 104)])
    node.data.anchoring.anchor(world.dataset)
    offer = node.licences.offer(world.alice, world.dataset, price=TOKEN, terms="commercial")
    node.licences.buy(world.bob, offer.offer_id)
    _spend(world, 2)
    second = node.economy.settle()
    assert first is not None and second is not None and second.sales == 1
    paid = node.store.get_json(second.settlement_cid)["assets"]
    assert len([k for k in paid if k.startswith(f"dataset {world.dataset}@")]) == 2
    report = _audit(node)
    assert [e.epoch for e in report.epochs] == [first.epoch, second.epoch]
    for audited in report.epochs:
        assert audited.kind == "revenue" and audited.ok, audited.differences
        checks = {f.check for f in audited.findings if f.status == OK}
        assert {"tree", "payouts", "receipts", "sales", "revenue", "split", "lineage"} <= checks
        assert {"spend", "drawn"} <= checks  # the vault drew what the receipts charged
    assert report.ok


def test_a_vault_that_draws_more_than_the_receipts_charged_is_caught(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose code adds one unit to each payer's spend: the vault draws it (the root is
    anchored, the proofs hold), and only re-deriving the spend from the receipts catches it."""
    node = world.node
    node.economy.prices.set(world.alice.address, world.model, TOKEN // 100)
    _spend(world)
    honest = Custody.spend

    def inflated(self: Custody, move: Any, ids: list[str]) -> dict[str, int]:
        return {a: n + 1 for a, n in honest(self, move, ids).items()}

    monkeypatch.setattr(Custody, "spend", inflated)
    epoch = node.economy.settle()
    assert epoch is not None and epoch.status == "funded"
    [audited] = _audit(node).epochs
    failed = {f.check: f.detail for f in audited.differences}
    assert set(failed) == {"spend"} and world.carol.address in failed["spend"], failed


def _forge(node: Node, payouts: dict[str, int], settlement: dict[str, Any]) -> int:
    """The operator funds an epoch whose settlement is not what the receipts earned."""
    store, treasury = node.store, node.economy.gateway
    tree = StandardMerkleTree.of([[a, v] for a, v in payouts.items()], PAYOUT_LEAF)
    settlement_cid = store.put_json(settlement)
    doc = {
        "schema": EPOCH_SCHEMA,
        "plan": "forged",
        "treasury": treasury.address,
        "revenue": str(sum(payouts.values())),
        "root": tree.root,
        "tree": store.put_json(tree.dump()),
        "settlement": settlement_cid,
    }
    node.chain.token.mint(node.operator, treasury.address, sum(payouts.values()))  # its own
    number, _ = node.chain.distributor.fund_epoch(
        treasury, node.chain.token, tree.root, sum(payouts.values()), store.put_json(doc)
    )
    return number


def test_a_settlement_that_pays_the_operator_more_is_caught(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose code skims one unit per line for its operator: the arithmetic is whole and
    the tree matches the chain, so only re-deriving the split from the lineage catches it."""
    node, operator = world.node, world.node.operator.address
    node.economy.prices.set(world.alice.address, world.model, TOKEN // 100)
    _spend(world)
    honest_split = epochs.split_revenue

    def skimming(revenue: Any, graph: Any) -> Settlement:
        honest = honest_split(revenue, graph)
        lines = [
            replace(line, amount=line.amount - 1) if line.account != operator else line
            for line in honest.lines
        ]
        skim = sum(1 for line in honest.lines if line.account != operator)
        source = honest.lines[0].source
        lines.append(PayoutLine(operator, source, source, "owner", skim))
        payouts: dict[str, int] = {}
        for line in lines:
            payouts[line.account] = payouts.get(line.account, 0) + line.amount
        return Settlement(tuple(lines), dict(sorted(payouts.items())), honest.revenue)

    monkeypatch.setattr(epochs, "split_revenue", skimming)
    epoch = node.economy.settle()
    assert epoch is not None and epoch.status == "funded"

    [audited] = _audit(node).epochs
    failed = {f.check: f.detail for f in audited.differences}
    assert set(failed) == {"split", "root"}, failed
    assert operator in failed["split"]
    passed = {f.check for f in audited.findings if f.status == OK}
    assert {"tree", "payouts", "total", "receipts", "revenue"} <= passed


def test_receipts_settled_twice_are_caught(world: World) -> None:
    node = world.node
    node.economy.prices.set(world.alice.address, world.model, TOKEN // 100)
    _spend(world)
    epoch = node.economy.settle()
    assert epoch is not None
    honest = node.store.get_json(epoch.settlement_cid)
    payouts = {a: int(v) for a, v in honest["payouts"].items()}
    number = _forge(node, payouts, honest)  # the same settlement funded again

    first, second = _audit(node).epochs
    assert first.ok and second.epoch == number and not second.ok
    failed = {f.check: f.detail for f in second.differences}
    assert f"settled in epoch {first.epoch} too" in failed["receipts"]


def test_a_tampered_blob_is_named(world: World) -> None:
    node = world.node
    node.economy.prices.set(world.alice.address, world.model, TOKEN // 100)
    _spend(world)
    epoch = node.economy.settle()
    assert epoch is not None
    path = node.store.path_of(epoch.settlement_cid)  # the bytes on disk, edited in place
    text = path.read_bytes().replace(b'"receipts":3', b'"receipts":4')
    path.chmod(0o644)
    path.write_bytes(text)
    [audited] = _audit(node).epochs
    assert [f.check for f in audited.differences] == ["document"]
    assert epoch.settlement_cid in audited.differences[0].detail


def test_bounty_payouts_are_re_planned_from_the_chain(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches under a bounty whose budget runs out in the second: what was left is read
    from the bounty's events, and the contributors from the anchored batch. A node that pays
    its operator for someone else's records is caught."""
    alice, bob, carol = (dev(node, n) for n in ("alice", "bob", "carol"))
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    per_record = TOKEN // 10
    node.economy.bounties.open(alice, dataset, budget=6 * per_record, per_record=per_record)
    upload(node, bob, dataset, [pair(i) for i in range(4)])
    node.data.anchoring.anchor(dataset)
    upload(node, carol, dataset, [pair(i) for i in range(10, 13)])
    upload(node, bob, dataset, [pair(i) for i in range(20, 22)])
    node.data.anchoring.anchor(dataset)
    first, second = node.economy.bounties.pay_due()
    assert (first.records, second.records) == (4, 2)  # the budget pays two of the five

    report = _audit(node)
    assert [e.kind for e in report.epochs] == ["bounty", "bounty"]
    for audited in report.epochs:
        assert audited.ok, audited.differences
        plans = [f.detail for f in audited.findings if f.check == "plan" and f.status == OK]
        assert any("re-planned" in d for d in plans) and any("contributors" in d for d in plans)
    assert "of 200000000000000000 left" in str(report.epochs[1].findings)

    # A third batch, under a new bounty, paid to the operator for carol's records.
    node.economy.bounties.open(alice, dataset, budget=6 * per_record, per_record=per_record)
    upload(node, carol, dataset, [pair(i) for i in range(30, 33)])
    node.data.anchoring.anchor(dataset)
    honest_work = node.economy.bounties._work_in

    def skimming(dataset_id: int, root: str) -> tuple[list[str], list[str]]:
        contributors, reviewers = honest_work(dataset_id, root)
        return [node.operator.address for _ in contributors], reviewers

    monkeypatch.setattr(node.economy.bounties, "_work_in", skimming)
    [third] = node.economy.bounties.pay_due()
    audited = _audit(node).epochs[-1]
    assert audited.epoch == third.epoch and [f.check for f in audited.differences] == ["plan"]


def test_settled_jobs_are_re_derived_from_their_signed_reports(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job settled on JobEscrow: its reports signed and anchored, its shares their samples,
    its root theirs. A coordinator that moves work from one provider to another is caught."""
    honest = start_job(node, tmp_path / "honest", monkeypatch)
    play_job(node, honest)
    node.jobs.tick()
    assert node.jobs.get(honest).status == "finished"
    [audited] = _audit(node).jobs
    assert audited.job_id == honest and audited.ok, audited.differences
    assert {f.check for f in audited.findings} == {
        "document",
        "reports",
        "anchored",
        "shares",
        "total",
        "root",
        "slashed",
    }

    real_shares = finish.work_shares

    def moving(reports: Any) -> dict[str, int]:
        shares = real_shares(reports)
        bob, carol = sorted(shares, key=lambda a: -shares[a])
        shares[bob] += 10
        shares[carol] -= 10
        return shares

    monkeypatch.setattr(finish, "work_shares", moving)
    monkeypatch.setattr(node.chain.escrow, "register_provider", lambda *a, **k: None)  # staked
    skimmed = start_job(node, tmp_path / "skimmed", monkeypatch)
    play_job(node, skimmed)
    node.jobs.tick()
    audited = _audit(node).jobs[-1]
    assert audited.job_id == skimmed
    assert {f.check for f in audited.differences} == {"shares", "root"}
