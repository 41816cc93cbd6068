"""Keys, deposits, prices, metering, receipts, settlement and claims on a real chain."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from sqlalchemy import delete, update

from cairn.chain.client import ChainError
from cairn.core.errors import Forbidden, InvalidInput, NotFound, PaymentRequired, Unauthorized
from cairn.core.merkle import StandardMerkleTree
from cairn.economy.balances import Balances, cost
from cairn.economy.models import EpochRow, ReceiptBatchRow, ReceiptRow
from cairn.economy.receipts import receipt_from_json, verify_receipt
from cairn.economy.service import Schedule
from cairn.node import Node
from tests.data.conftest import dev
from tests.economy.conftest import PRICE, TOKEN, World, spend


def test_api_keys_authenticate_until_revoked(node: Node) -> None:
    alice = dev(node, "alice")
    key, secret = node.economy.keys.create(alice.address, "laptop")
    assert node.economy.keys.authenticate(secret).key_id == key.key_id
    assert [k.key_id for k in node.economy.keys.list(alice.address)] == [key.key_id]
    with pytest.raises(Forbidden):
        node.economy.keys.revoke(dev(node, "bob").address, key.key_id)
    node.economy.keys.revoke(alice.address, key.key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        node.economy.keys.authenticate(secret)
    with pytest.raises(Unauthorized, match="unknown"):
        node.economy.keys.authenticate(secret[:-2] + "xx")
    with pytest.raises(Unauthorized, match="not a Cairn API key"):
        node.economy.keys.authenticate("sk-openai-looking")


def test_deposits_are_credited_once_to_their_sender(node: Node) -> None:
    bob = dev(node, "bob")
    node.chain.token.transfer(bob, node.economy.treasury, 3 * TOKEN)
    node.chain.token.transfer(bob, node.economy.treasury, 2 * TOKEN)
    assert node.economy.balances.get(bob.address).deposited == 5 * TOKEN
    assert node.economy.balances.sync() == 0  # nothing new: nothing credited twice
    assert node.economy.balances.get(bob.address).available == 5 * TOKEN
    assert len(node.economy.balances.deposits(bob.address)) == 2
    assert node.economy.balances.get(dev(node, "carol").address).deposited == 0


def test_a_deposit_sent_for_a_key_the_node_holds_is_credited_in_the_same_call(
    node: Node,
) -> None:
    bob = dev(node, "bob")
    wallet = node.chain.token.balance_of(bob.address)
    made = node.economy.balances.deposit(bob, 3 * TOKEN)
    assert made.balance.deposited == made.balance.available == 3 * TOKEN
    assert made.tx_hash.startswith("0x") and len(made.tx_hash) == 66
    assert node.chain.token.balance_of(bob.address) == wallet - 3 * TOKEN
    assert [d.tx_hash for d in node.economy.balances.deposits(bob.address)] == [made.tx_hash]
    for bad in (0, -1):
        with pytest.raises(InvalidInput, match=f"deposit amount must be positive; got {bad}"):
            node.economy.balances.deposit(bob, bad)
    assert node.economy.balances.get(bob.address).deposited == 3 * TOKEN
    assert node.chain.token.balance_of(bob.address) == wallet - 3 * TOKEN


def test_only_the_owner_prices_a_model(world: World) -> None:
    prices = world.node.economy.prices
    with pytest.raises(Forbidden, match="only the owner"):
        prices.set(world.bob.address, world.model, PRICE)
    with pytest.raises(InvalidInput, match="dataset"):
        prices.set(world.alice.address, world.dataset, PRICE)
    with pytest.raises(InvalidInput):
        prices.set(world.alice.address, world.model, -1)
    assert prices.get(world.model) == 0  # unpriced models are free
    prices.set(world.alice.address, world.model, PRICE)
    assert prices.get(world.model) == PRICE


def test_cost_rounds_up_to_the_smallest_unit() -> None:
    assert cost(1000, 1) == 1
    assert cost(1000, 0) == 0
    assert cost(999, 1) == 1
    assert cost(0, 10**9) == 0
    assert cost(PRICE, 1500) == PRICE * 3 // 2


def test_a_request_beyond_the_balance_is_refused_and_changes_nothing(world: World) -> None:
    economy = world.node.economy
    economy.prices.set(world.alice.address, world.model, 10**6 * TOKEN)
    before = economy.balances.get(world.carol.address)
    with pytest.raises(PaymentRequired, match="insufficient balance"):
        economy.meter.open(world.key, world.model, "chat.completions", 1000)
    assert economy.balances.get(world.carol.address) == before
    assert economy.receipts.of_account(world.carol.address) == []


def test_a_closed_charge_spends_what_was_used_and_signs_a_receipt(world: World) -> None:
    economy = world.node.economy
    economy.prices.set(world.alice.address, world.model, PRICE)
    charge = economy.meter.open(world.key, world.model, "chat.completions", 1200)
    held = economy.balances.get(world.carol.address)
    assert held.held == cost(PRICE, 1200)
    receipt = economy.meter.close(charge, 40, 60)
    after = economy.balances.get(world.carol.address)
    assert after.held == 0
    assert after.spent == int(receipt.amount) == cost(PRICE, 100)
    stored = economy.receipts.get(receipt.receipt_id)
    verify_receipt(receipt_from_json(stored.receipt), stored.signature)
    forged = receipt_from_json({**stored.receipt, "amount": "1"})
    with pytest.raises(InvalidInput, match="signed by"):
        verify_receipt(forged, stored.signature)


def test_receipts_are_anchored_and_provable_on_chain(world: World) -> None:
    economy = world.node.economy
    ids = []
    for used in (10, 20, 30):
        charge = economy.meter.open(world.key, world.model, "completions", 100)
        ids.append(economy.meter.close(charge, used, used).receipt_id)
    with pytest.raises(NotFound, match="not anchored"):
        economy.receipts.proof(ids[0])
    [batch] = economy.anchor_receipts()
    assert batch.count == 3
    assert economy.anchor_receipts() == []
    for receipt_id in ids:
        proof = economy.receipts.proof(receipt_id)
        assert proof.verified_on_chain is True
        assert StandardMerkleTree.verify(proof.root, ["bytes32"], [proof.leaf], proof.proof)
    bad = economy.receipts.proof(ids[1])
    ledger = world.node.chain.ledger
    assert not ledger.verify(bad.asset_id, bad.root, "0x" + "11" * 32, bad.proof)


def test_settlement_pays_every_role_by_lineage_exactly(world: World) -> None:
    node, economy = world.node, world.node.economy
    revenue = spend(world)
    epoch = economy.settle()
    assert epoch is not None and epoch.status == "funded"
    assert int(epoch.revenue) == revenue
    assert node.chain.distributor.epoch_funded(epoch.epoch) == revenue

    # By hand: model split 20/40/20/20; the base model (operator, owner-only) takes upstream;
    # the dataset (alice, owner-only policy) takes data; providers bob 3 : carol 1 take compute.
    owed = {a: Fraction(0) for a in (world.alice.address, world.bob.address, world.carol.address)}
    owed[node.operator.address] = Fraction(0)
    r = Fraction(revenue)
    owed[world.alice.address] += r * 2 / 10
    owed[node.operator.address] += r * 2 / 10
    dataset_split = node.assets.get(world.dataset).split
    table = node.data.anchoring.attribution(world.dataset)
    data = r * 4 / 10
    owed[world.alice.address] += data * dataset_split["owner"] / 10_000
    for account, weight in table.items():
        owed[account] += data * dataset_split["data"] / 10_000 * Fraction(weight, 10**18)
    owed[world.bob.address] += r * 2 / 10 * Fraction(3, 4)
    owed[world.carol.address] += r * 2 / 10 * Fraction(1, 4)

    paid = {}
    for account, exact in owed.items():
        rows = economy.epochs.earnings(account).epochs
        amount = sum(int(e.amount) for e in rows)
        assert abs(amount - exact) <= 3, account  # one rounding unit per line at most
        paid[account] = amount
    assert sum(paid.values()) == revenue
    roles = {line.role for line in economy.epochs.earnings(world.bob.address).epochs[0].lines}
    assert roles == {"compute", "data"} or roles == {"compute"}

    balances = {a: node.chain.token.balance_of(a) for a in paid}
    for account in paid:
        [claim] = economy.epochs.claim(account).claims
        assert int(claim.amount) == paid[account]
    for account in paid:
        assert node.chain.token.balance_of(account) == balances[account] + paid[account]
    assert node.chain.distributor.epoch_claimed(epoch.epoch) == revenue


def test_settling_and_claiming_twice_pays_nobody_twice(world: World) -> None:
    node, economy = world.node, world.node.economy
    spend(world, 2)
    first = economy.settle()
    assert first is not None
    count = node.chain.distributor.epoch_count()
    assert economy.settle() is None  # the same receipts are never settled again
    assert node.chain.distributor.epoch_count() == count
    assert economy.epochs.claim(world.bob.address)
    assert economy.epochs.claim(world.bob.address).claims == ()
    [row] = economy.epochs.earnings(world.bob.address).epochs
    tree = StandardMerkleTree.load(node.store.get_json(first.tree_cid))
    proof = tree.get_proof([world.bob.address, int(row.amount)])
    with pytest.raises(ChainError, match="already claimed"):
        node.chain.distributor.claim(
            node.operator, first.epoch, world.bob.address, int(row.amount), proof
        )


def test_a_claim_made_on_chain_is_recorded_with_its_transaction(world: World) -> None:
    node, economy = world.node, world.node.economy
    spend(world, 2)
    epoch = economy.settle()
    assert epoch is not None
    [owed] = economy.epochs.earnings(world.bob.address).epochs
    # Bob claims from his own wallet, with the published tree, without the node
    tree = StandardMerkleTree.load(node.store.get_json(epoch.tree_cid))
    proof = tree.get_proof([world.bob.address, int(owed.amount)])
    receipt = node.chain.distributor.claim(
        world.bob, epoch.epoch, world.bob.address, int(owed.amount), proof
    )
    assert economy.epochs.claim(world.bob.address).claims == ()  # nothing left to pay
    [row] = economy.epochs.earnings(world.bob.address).epochs
    assert row.claimed and row.claim_tx == receipt["transactionHash"].to_0x_hex()


def test_a_planned_epoch_left_by_a_crash_is_funded_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    economy = world.node.economy
    spend(world, 2)
    economy.anchor_receipts()
    monkeypatch.setattr(economy.epochs, "_fund", lambda epoch_id: economy.epochs.epoch(epoch_id))
    planned = economy.epochs.settle()
    assert planned is not None and planned.status == "planned"
    monkeypatch.undo()
    count = world.node.chain.distributor.epoch_count()
    funded = economy.settle()
    assert funded is not None and funded.id == planned.id and funded.status == "funded"
    assert world.node.chain.distributor.epoch_count() == count + 1
    assert economy.settle() is None


def test_free_models_settle_an_empty_epoch(world: World) -> None:
    economy = world.node.economy
    charge = economy.meter.open(world.key, world.model, "completions", 100)
    receipt = economy.meter.close(charge, 5, 5)
    assert receipt.amount == "0"
    count = world.node.chain.distributor.epoch_count()
    epoch = economy.settle()
    assert epoch is not None and epoch.status == "empty"
    assert world.node.chain.distributor.epoch_count() == count


def test_the_node_anchors_and_settles_on_schedule(world: World) -> None:
    economy = world.node.economy
    economy.schedule = Schedule(anchor_count=2, anchor_seconds=600, epoch_seconds=3600)
    economy.prices.set(world.alice.address, world.model, PRICE)
    charge = economy.meter.open(world.key, world.model, "completions", 100)
    first = economy.meter.close(charge, 10, 10).receipt_id
    economy.tick()
    assert economy.receipts.get(first).batch is None  # one waiting, and only just made
    economy.tick(now=time.time() + 601)  # the oldest waited long enough
    assert economy.receipts.get(first).batch is not None
    charge = economy.meter.open(world.key, world.model, "completions", 100)
    economy.meter.close(charge, 10, 10)
    count = world.node.chain.distributor.epoch_count()
    economy.tick()  # one receipt waiting, epoch not due
    assert world.node.chain.distributor.epoch_count() == count
    economy.tick(now=time.time() + 3601)
    assert world.node.chain.distributor.epoch_count() == count + 1
    assert economy.epochs.epochs()[0].receipts == 2


def test_holds_left_by_a_crash_are_released_at_start(world: World) -> None:
    economy = world.node.economy
    economy.prices.set(world.alice.address, world.model, PRICE)
    economy.meter.open(world.key, world.model, "completions", 1000)  # never closed: a crash
    assert economy.balances.get(world.carol.address).held > 0
    # what the node's Economy does when it starts again on this index
    rebuilt = Balances(world.node.db, world.node.chain, economy.treasury)
    assert rebuilt.clear_holds() == 1
    assert economy.balances.get(world.carol.address).held == 0


def test_epochs_with_the_same_payouts_are_each_funded(world: World) -> None:
    economy, distributor = world.node.economy, world.node.chain.distributor
    economy.prices.set(world.alice.address, world.model, PRICE)
    funded = []
    for _ in range(2):  # the same usage twice: the same payouts, the same Merkle root
        charge = economy.meter.open(world.key, world.model, "completions", 2000)
        economy.meter.close(charge, 500, 500)
        epoch = economy.settle()
        assert epoch is not None
        funded.append(epoch)
    assert funded[0].root == funded[1].root
    assert funded[0].epoch != funded[1].epoch
    for epoch in funded:
        assert distributor.epoch_funded(epoch.epoch) == int(epoch.revenue)
    assert len(economy.epochs.claim(world.bob.address).claims) == 2


def test_an_epoch_funded_just_before_a_crash_is_recognised(world: World) -> None:
    node, economy = world.node, world.node.economy
    spend(world, 2)
    epoch = economy.settle()
    assert epoch is not None
    count = node.chain.distributor.epoch_count()
    with node.db.session() as session:  # as if the node died after funding, before recording
        row = session.get(EpochRow, epoch.id)
        assert row is not None
        row.status, row.epoch = "planned", None
    again = economy.settle()
    assert again is not None and again.epoch == epoch.epoch and again.status == "funded"
    assert node.chain.distributor.epoch_count() == count


def test_a_batch_anchored_just_before_a_crash_is_recorded(world: World) -> None:
    node, economy = world.node, world.node.economy
    charge = economy.meter.open(world.key, world.model, "completions", 100)
    receipt = economy.meter.close(charge, 5, 5)
    [batch] = economy.anchor_receipts()
    with node.db.session() as session:  # as if the node died before recording the batch
        session.execute(update(ReceiptRow).values(batch_id=None))
        session.execute(delete(ReceiptBatchRow))
    [again] = economy.anchor_receipts()
    assert again.root == batch.root
    assert economy.receipts.proof(receipt.receipt_id).verified_on_chain is True


def test_a_model_whose_lineage_cannot_be_read_waits_and_the_others_are_paid(world: World) -> None:
    node, economy = world.node, world.node.economy
    missing = node.store.put(b"soon gone")
    base = node.assets.get(world.base)
    broken = node.assets.register(
        world.alice,
        kind="model",
        name="broken lineage",
        licence="MIT",
        parents=[base.asset_id],
        extra={
            "model": node.catalog.metadata(base)["model"],
            "training": {"lineage": {"work_shares_cid": missing}},
        },
    )
    node.store.delete(missing)
    for model in (world.model, broken.asset_id):
        economy.prices.set(world.alice.address, model, PRICE)
        charge = economy.meter.open(world.key, model, "completions", 1000)
        economy.meter.close(charge, 100, 100)
    epoch = economy.settle()
    assert epoch is not None and epoch.receipts == 1
    waiting = [
        r for r in economy.receipts.of_account(world.carol.address) if r.model == broken.asset_id
    ]
    assert economy.receipts.get(waiting[0].receipt_id).epoch_id is None
