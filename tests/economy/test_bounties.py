"""Bounties on a node: escrowed budgets paid per accepted record and per useful review as soon
as each batch is anchored (one transaction per batch), exhausted, refunded, claimed, and
resumed after a crash."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from cairn.core.errors import ChainError, Forbidden, InvalidInput
from cairn.data.anchoring import AnchorOutcome
from cairn.node import Node
from tests.data.conftest import dev, make_dataset, pair, upload

TOKEN = 10**18
PER_RECORD = TOKEN // 10
PER_REVIEW = TOKEN // 20
VOTED = {
    "review_share": 1.0,
    "votes_per_record": 3,
    "min_votes": 3,
    "accept_threshold": 0.8,
    "gold_share": 0.0,
}


@pytest.fixture
def people(node: Node) -> tuple[LocalAccount, LocalAccount, LocalAccount]:
    return dev(node, "alice"), dev(node, "bob"), dev(node, "carol")


def paid_to(node: Node, account: str) -> int:
    """What `account` has been paid by bounty epochs, claimed or not."""
    return sum(int(e.amount) for e in node.economy.epochs.earnings(account).epochs)


def test_each_anchored_batch_pays_its_records_in_one_transaction(
    node: Node, people: tuple[LocalAccount, LocalAccount, LocalAccount]
) -> None:
    alice, bob, carol = people
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    upload(node, bob, dataset, [pair(i) for i in range(3)])
    node.data.anchoring.anchor(dataset)  # anchored before the bounty: not paid by it

    before = node.chain.token.balance_of(alice.address)
    bounty = node.economy.bounties.open(
        alice, dataset, budget=10 * TOKEN, per_record=PER_RECORD, per_review=PER_REVIEW
    )
    assert node.chain.token.balance_of(alice.address) == before - 10 * TOKEN
    assert bounty.remaining == str(10 * TOKEN) and bounty.open

    upload(node, bob, dataset, [pair(i) for i in range(10, 16)])
    upload(node, carol, dataset, [pair(i) for i in range(20, 24)])
    node.data.anchoring.anchor(dataset)
    [paid] = node.economy.bounties.pay_due()
    assert (paid.records, paid.reviews, paid.amount) == (10, 0, str(10 * PER_RECORD))
    assert node.economy.bounties.pay_due() == []  # paid once

    shown = node.economy.bounties.get(bounty.bounty_id)
    assert shown.remaining == str(10 * TOKEN - 10 * PER_RECORD)
    assert shown.paid_out == str(10 * PER_RECORD)
    assert [p.status for p in shown.payouts] == ["paid"]
    [earned] = node.economy.epochs.earnings(bob.address).epochs
    assert earned.amount == str(6 * PER_RECORD)
    assert {line.role for line in earned.lines} == {"data bounty"}
    for account, records in ((bob, 6), (carol, 4)):
        held = node.chain.token.balance_of(account.address)
        [claim] = node.economy.epochs.claim(account.address).claims
        assert int(claim.amount) == records * PER_RECORD
        assert node.chain.token.balance_of(account.address) == held + records * PER_RECORD


def test_a_batch_anchored_by_hand_is_paid_at_once_and_only_its_owner_or_curators_anchor(
    node: Node, people: tuple[LocalAccount, LocalAccount, LocalAccount]
) -> None:
    alice, bob, _ = people
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    node.economy.bounties.open(
        alice, dataset, budget=10 * TOKEN, per_record=PER_RECORD, per_review=PER_REVIEW
    )
    nothing = node.data.anchoring.anchor_by(alice.address, dataset)
    assert nothing == AnchorOutcome(None, ())
    assert nothing.to_dict() == {"anchored": False, "batch": None, "bounties_paid": []}

    upload(node, bob, dataset, [pair(i) for i in range(3)])
    with pytest.raises(Forbidden, match=f"{bob.address} is neither the owner nor a curator"):
        node.data.anchoring.anchor_by(bob.address, dataset)
    assert node.data.list_records(dataset, status="anchored") == []  # a refusal anchors nothing

    done = node.data.anchoring.anchor_by(alice.address, dataset)
    assert done.batch is not None and done.batch.count == 3
    [paid] = done.bounties_paid  # in the same call: the contributors need not wait for a tick
    assert (paid.records, paid.amount) == (3, str(3 * PER_RECORD))
    assert done.to_dict()["anchored"] and done.to_dict()["bounties_paid"] == [paid]
    assert node.economy.bounties.pay_due() == []  # paid once
    assert paid_to(node, bob.address) == 3 * PER_RECORD


def test_a_batch_the_tick_paid_first_is_still_reported_by_the_hand_anchoring(
    node: Node,
    people: tuple[LocalAccount, LocalAccount, LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The economy's tick runs beside a request: when it pays the fresh batch between the
    anchoring and the request's own payment, the request still answers with that payout."""
    alice, bob, _ = people
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    node.economy.bounties.open(
        alice, dataset, budget=10 * TOKEN, per_record=PER_RECORD, per_review=PER_REVIEW
    )
    upload(node, bob, dataset, [pair(i) for i in range(3)])
    anchor = node.data.anchoring.anchor

    def anchor_then_tick(dataset_id: int) -> object:
        batch = anchor(dataset_id)
        assert [p.records for p in node.economy.bounties.pay_due()] == [3]  # the tick's turn
        return batch

    monkeypatch.setattr(node.data.anchoring, "anchor", anchor_then_tick)
    done = node.data.anchoring.anchor_by(alice.address, dataset)
    assert done.batch is not None
    [paid] = done.bounties_paid
    assert (paid.batch_root, paid.records, paid.amount) == (done.batch.root, 3, str(3 * PER_RECORD))
    assert paid.epoch is not None and paid.tx_hash is not None
    assert node.economy.bounties.pay_batch(done.batch.root) == [paid]  # reading pays nothing more
    assert paid_to(node, bob.address) == 3 * PER_RECORD


def test_useful_reviews_are_paid_and_wrong_ones_are_not(
    node: Node, people: tuple[LocalAccount, LocalAccount, LocalAccount]
) -> None:
    alice, bob, carol = people
    dataset = make_dataset(node, alice, review=VOTED).asset_id
    node.economy.bounties.open(
        alice, dataset, budget=5 * TOKEN, per_record=PER_RECORD, per_review=PER_REVIEW
    )
    upload(node, carol, dataset, [pair(1), pair(2)])
    dissenter = Account.create().address
    for reviewer in (alice.address, bob.address, dissenter):
        while (task := node.data.reviews.next_task(dataset, reviewer)) is not None:
            answer = "reject" if reviewer == dissenter else "approve"
            node.data.reviews.submit(task.task_id, reviewer, answer)
    assert len(node.data.list_records(dataset, status="accepted")) == 2
    node.data.anchoring.anchor(dataset)
    [paid] = node.economy.bounties.pay_due()
    assert (paid.records, paid.reviews) == (2, 4)  # alice and bob agreed, twice each
    assert paid_to(node, carol.address) == 2 * PER_RECORD
    assert paid_to(node, bob.address) == 2 * PER_REVIEW
    assert paid_to(node, dissenter) == 0


def test_the_budget_runs_out_and_the_rest_is_refunded(
    node: Node, people: tuple[LocalAccount, LocalAccount, LocalAccount]
) -> None:
    alice, bob, _ = people
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    budget = 2 * PER_RECORD + PER_RECORD // 2
    bounty = node.economy.bounties.open(alice, dataset, budget=budget, per_record=PER_RECORD)
    upload(node, bob, dataset, [pair(i) for i in range(5)])
    node.data.anchoring.anchor(dataset)
    [paid] = node.economy.bounties.pay_due()
    assert paid.records == 2  # whole records while the budget covers them
    shown = node.economy.bounties.get(bounty.bounty_id)
    assert shown.remaining == str(PER_RECORD // 2) and shown.exhausted
    upload(node, bob, dataset, [pair(i) for i in range(10, 12)])
    node.data.anchoring.anchor(dataset)
    assert node.economy.bounties.pay_due() == []  # nothing fits

    with pytest.raises(Forbidden, match="only the funder or the dataset's owner"):
        node.economy.bounties.close(bob, bounty.bounty_id)
    held = node.chain.token.balance_of(alice.address)
    closed = node.economy.bounties.close(alice, bounty.bounty_id)
    assert closed.refunded == str(PER_RECORD // 2) and not closed.open
    assert node.chain.token.balance_of(alice.address) == held + PER_RECORD // 2
    with pytest.raises(InvalidInput, match="already closed"):
        node.economy.bounties.close(alice, bounty.bounty_id)


def test_bad_bounties_are_refused_and_change_nothing(
    node: Node, people: tuple[LocalAccount, LocalAccount, LocalAccount]
) -> None:
    alice, bob, _ = people
    dataset = make_dataset(node, alice).asset_id
    bounties = node.economy.bounties
    with pytest.raises(Forbidden, match="only the owner of dataset"):
        bounties.open(bob, dataset, budget=TOKEN, per_record=1)
    with pytest.raises(InvalidInput, match="positive amount per record or per review"):
        bounties.open(alice, dataset, budget=TOKEN, per_record=0)
    with pytest.raises(InvalidInput, match="less than the budget"):
        bounties.open(alice, dataset, budget=10**30, per_record=1)
    assert bounties.listing() == [] and node.chain.bounties.count() == 0


def test_a_payout_planned_before_a_crash_is_paid_once(
    node: Node,
    people: tuple[LocalAccount, LocalAccount, LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob, _ = people
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    node.economy.bounties.open(alice, dataset, budget=TOKEN, per_record=PER_RECORD)
    upload(node, bob, dataset, [pair(i) for i in range(3)])
    node.data.anchoring.anchor(dataset)
    chain_pay = node.chain.bounties.pay_batch

    def crash_before_sending(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(node.chain.bounties, "pay_batch", crash_before_sending)
    with pytest.raises(KeyboardInterrupt):
        node.economy.bounties.pay_due()
    monkeypatch.setattr(node.chain.bounties, "pay_batch", chain_pay)
    [paid] = node.economy.bounties.pay_due()
    assert paid.records == 3
    assert paid_to(node, bob.address) == 3 * PER_RECORD


def test_a_payout_sent_just_before_a_crash_is_recognised(
    node: Node,
    people: tuple[LocalAccount, LocalAccount, LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob, _ = people
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    node.economy.bounties.open(alice, dataset, budget=TOKEN, per_record=PER_RECORD)
    upload(node, bob, dataset, [pair(i) for i in range(3)])
    node.data.anchoring.anchor(dataset)
    chain_pay = node.chain.bounties.pay_batch

    def crash_after_sending(*args: object, **kwargs: object) -> object:
        chain_pay(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(node.chain.bounties, "pay_batch", crash_after_sending)
    with pytest.raises(KeyboardInterrupt):
        node.economy.bounties.pay_due()
    monkeypatch.setattr(node.chain.bounties, "pay_batch", chain_pay)
    epochs = node.chain.distributor.epoch_count()
    [paid] = node.economy.bounties.pay_due()
    assert paid.tx_hash is None and paid.epoch == epochs  # read back, not paid again
    assert node.chain.distributor.epoch_count() == epochs
    [claim] = node.economy.epochs.claim(bob.address).claims
    assert int(claim.amount) == 3 * PER_RECORD


def test_a_bounty_closed_between_plan_and_payment_pays_nothing(
    node: Node, people: tuple[LocalAccount, LocalAccount, LocalAccount]
) -> None:
    alice, bob, _ = people
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    bounty = node.economy.bounties.open(alice, dataset, budget=TOKEN, per_record=PER_RECORD)
    upload(node, bob, dataset, [pair(i) for i in range(2)])
    node.data.anchoring.anchor(dataset)
    book = node.economy.bounties
    onchain = node.chain.bounties.get(bounty.bounty_id)
    root = book._due_batches(onchain)[0]
    book._plan(onchain, root)  # planned, then the owner closes it on chain directly
    node.chain.bounties.close(alice, bounty.bounty_id)
    assert book.pay_due(bounty.bounty_id) == []
    with pytest.raises(ChainError, match="closed"):
        node.chain.bounties.pay_batch(node.operator, bounty.bounty_id, root, 1, 0, root, "x")
    assert paid_to(node, bob.address) == 0  # the cancelled plan is nobody's earnings
    assert node.economy.epochs.claim(bob.address).claims == ()
    assert [p.status for p in book.get(bounty.bounty_id).payouts] == ["skipped"]
