"""No custody: PrepaidVault holds users' deposits; the gateway draws only the spend its anchored
receipts prove, funds epochs from the vault, and moved the balances it held into it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cairn.chain.vault import ALL, Vault
from cairn.config import NodeConfig
from cairn.core.errors import ChainError, PaymentRequired
from cairn.core.merkle import StandardMerkleTree
from cairn.economy.models import BalanceRow
from cairn.node import Node, bootstrap
from tests.data.conftest import dev
from tests.economy.conftest import PRICE, TOKEN, World, spend
from tests.economy.test_licences import advance


def vault_of(node: Node) -> Vault:
    vault = node.chain.vault
    assert vault is not None
    return vault


def test_a_deposit_is_held_by_the_vault_under_its_sender_not_by_the_node(node: Node) -> None:
    bob, vault = dev(node, "bob"), vault_of(node)
    treasury = node.chain.token.balance_of(node.economy.treasury)
    made = node.economy.balances.deposit(bob, 3 * TOKEN)
    assert made.balance.deposited == made.balance.available == 3 * TOKEN
    assert vault.balance_of(bob.address) == 3 * TOKEN
    assert node.chain.token.balance_of(node.economy.treasury) == treasury
    assert [d.tx_hash for d in node.economy.balances.deposits(bob.address)] == [made.tx_hash]
    target = node.economy.deposit_target()
    assert target.vault == vault.address and target.notice_seconds == vault.notice_period()


def test_a_plain_transfer_to_the_treasury_is_deposited_into_the_vault_for_its_sender(
    node: Node,
) -> None:
    bob, vault, token = dev(node, "bob"), vault_of(node), node.chain.token
    treasury = token.balance_of(node.economy.treasury)
    sent = token.transfer(bob, node.economy.treasury, 5 * TOKEN)
    balance = node.economy.balances.get(bob.address)
    assert balance.deposited == balance.available == 5 * TOKEN
    assert vault.balance_of(bob.address) == 5 * TOKEN  # the gateway moved it at once
    assert token.balance_of(node.economy.treasury) == treasury
    # the transfer is bob's deposit; the gateway's move of it is not a second one
    [deposit] = node.economy.balances.deposits(bob.address)
    assert deposit.tx_hash == sent["transactionHash"].to_0x_hex()
    assert node.economy.balances.sync() == 0
    assert node.economy.custody.pay_in().accounts == 0 and not node.economy.custody.owed()
    assert vault.balance_of(bob.address) == 5 * TOKEN


def test_a_move_cut_short_before_the_index_saw_it_is_not_made_twice(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob, vault, custody = dev(node, "bob"), vault_of(node), node.economy.custody
    monkeypatch.setattr(node.economy.balances, "on_owed", None)
    node.chain.token.transfer(bob, node.economy.treasury, 2 * TOKEN)
    node.economy.balances.sync()
    assert custody.owed() and vault.balance_of(bob.address) == 0
    # the deposit reaches the chain, and the node dies before reading it back
    monkeypatch.setattr(node.economy.balances, "sync", lambda: 0)
    assert custody.pay_in().balances == 2 * TOKEN
    monkeypatch.undo()
    monkeypatch.setattr(node.economy.balances, "on_owed", None)
    assert custody.pay_in().balances == 0  # the chain says it was paid
    assert vault.balance_of(bob.address) == 2 * TOKEN and not custody.owed()
    assert node.economy.balances.get(bob.address).available == 2 * TOKEN


def test_the_vault_draws_what_the_anchored_spend_proves_and_funds_the_epoch(
    world: World,
) -> None:
    node, economy, vault = world.node, world.node.economy, vault_of(world.node)
    carol = world.carol.address
    held = vault.balance_of(carol)
    first = spend(world, 3)
    epoch = economy.settle()
    assert epoch is not None and epoch.status == "funded" and int(epoch.revenue) == first
    assert epoch.document_cid is not None
    document = node.store.get_json(epoch.document_cid)
    assert document["treasury"] == vault.address and document["gateway"] == economy.treasury
    tree = StandardMerkleTree.load(node.store.get_json(document["spend"]["tree"]))
    assert tree.root == document["spend"]["root"]
    assert [[a, int(n)] for _, (a, n) in tree.entries()] == [[carol, first]]
    assert node.chain.ledger.is_anchored(economy.gateway_asset(), tree.root)
    assert vault.drawn(carol) == first and vault.balance_of(carol) == held - first
    [funded] = node.chain.distributor.contract.events.EpochFunded.get_logs(
        from_block=node.client.block_number(), to_block=node.client.block_number()
    )
    assert funded["args"]["funder"] == vault.address and funded["args"]["amount"] == first
    # the next epoch's leaf is carol's cumulative spend: the vault draws only the new part
    second = spend(world, 2)
    again = economy.settle()
    assert again is not None and again.status == "funded" and int(again.revenue) == second
    assert again.document_cid is not None
    spend_doc = node.store.get_json(again.document_cid)["spend"]
    tree = StandardMerkleTree.load(node.store.get_json(spend_doc["tree"]))
    assert [[a, int(n)] for _, (a, n) in tree.entries()] == [[carol, first + second]]
    assert vault.drawn(carol) == first + second
    assert vault.balance_of(carol) == held - first - second
    balance = economy.balances.get(carol)
    assert balance.spent == first + second and balance.available == held - first - second
    # every payee claims from the distributor: what the vault funded is all there
    for account in (world.alice.address, world.bob.address, node.operator.address):
        economy.epochs.claim(account)
    assert vault.revenue_pool() == 0


def test_a_withdrawal_is_set_aside_at_once_and_paid_after_the_notice(world: World) -> None:
    node, economy, vault = world.node, world.node.economy, vault_of(world.node)
    carol = world.carol
    held = vault.balance_of(carol.address)
    spent = spend(world, 2)
    available_at, _ = vault.request_withdrawal(carol, ALL)
    balance = economy.balances.get(carol.address)
    assert balance.withdrawing == ALL and balance.available == 0
    with pytest.raises(PaymentRequired, match="set aside for the withdrawal"):
        economy.meter.open(world.key, world.model, "chat.completions", 2000)
    with pytest.raises(Exception, match="notice period not over"):
        vault.withdraw(carol)
    assert economy.settle() is not None  # the gateway draws what carol spent, within notice
    advance(node, available_at - node.client.w3.eth.get_block("latest")["timestamp"])
    wallet = node.chain.token.balance_of(carol.address)
    paid, _ = vault.withdraw(carol)
    assert paid == held - spent
    assert node.chain.token.balance_of(carol.address) == wallet + paid
    balance = economy.balances.get(carol.address)
    assert (balance.withdrawn, balance.withdrawing, balance.available) == (paid, 0, 0)
    # she comes back: a new deposit is hers to spend again
    economy.balances.deposit(carol, TOKEN)
    assert economy.balances.get(carol.address).available == TOKEN


def test_the_node_draws_what_someone_leaving_spent_within_their_notice(world: World) -> None:
    economy, vault = world.node.economy, vault_of(world.node)
    carol = world.carol
    spent = spend(world, 2)
    vault.request_withdrawal(carol, ALL)  # from her own wallet: the node reads it on its own
    later = time.time() + 61
    assert economy.has_work(later)
    economy.tick(later)  # reads the request, and settles at once rather than in a day
    assert vault.drawn(carol.address) == spent
    assert economy.balances.get(carol.address).withdrawing == ALL
    assert not economy.has_work(later)  # nothing more to draw


@pytest.mark.node  # bootstraps nodes of its own
def test_a_node_that_held_deposits_moves_them_into_its_vault_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cairn.node

    config = NodeConfig.from_env(data_dir=tmp_path / "n", chain="memory", dev=True)
    # a node of a Cairn before the vault: deposits are transfers its treasury holds
    with monkeypatch.context() as old:
        old.setattr(cairn.node, "_hold_no_custody", lambda node: None)
        old.setattr(cairn.node, "_point_licence_payments_at_the_vault", lambda node: None)
        first = bootstrap(config)
        assert first.chain.vault is None
        carol, bob = dev(first, "carol"), dev(first, "bob")
        first.chain.token.transfer(carol, first.economy.treasury, 10 * TOKEN)
        first.chain.token.transfer(bob, first.economy.treasury, 4 * TOKEN)
        key, _ = first.economy.keys.create(carol.address, "old")
        model = first.assets.register(carol, kind="model", name="m", licence="MIT")
        first.economy.prices.set(carol.address, model.asset_id, PRICE)
        charge = first.economy.meter.open(key, model.asset_id, "completions", 1000)
        old_spend = int(first.economy.meter.close(charge, 10, 90).amount)
        assert first.economy.balances.get(carol.address).available == 10 * TOKEN - old_spend
        backend, treasury = first.backend, first.economy.treasury
        # and a licence sale paid to the treasury that no epoch (nor the index) has seen yet
        first.chain.licences.set_treasury(first.operator, treasury)
        offer = first.licences.offer(carol, model.asset_id, price=2 * TOKEN, terms="commercial")
        first.licences.buy(bob, offer.offer_id)
        old_spend += 2 * TOKEN  # revenue the pool pays, as the receipt's
        holds = first.chain.token.balance_of(treasury)
        first.close()

    node = bootstrap(config, backend=backend)  # the new Cairn: a vault, and the move into it
    try:
        vault = vault_of(node)
        assert node.chain.licences.treasury() == vault.address
        move = node.economy.custody.moved()
        assert move is not None and move.accounts == 2 and int(move.revenue) == old_spend
        old_spend -= 2 * TOKEN  # what carol spent herself
        assert vault.balance_of(carol.address) == 10 * TOKEN - old_spend
        assert vault.balance_of(bob.address) == 4 * TOKEN
        # spent and sold, not settled: the pool pays it out
        assert vault.revenue_pool() == old_spend + 2 * TOKEN
        assert node.chain.token.balance_of(treasury) == holds - 14 * TOKEN - 2 * TOKEN
        document = node.store.get_json(move.document_cid)
        assert {b["account"]: int(b["amount"]) for b in document["balances"]} == {
            carol.address: 10 * TOKEN - old_spend,
            bob.address: 4 * TOKEN,
        }
        for account, amount in ((carol.address, 10 * TOKEN - old_spend), (bob.address, 4 * TOKEN)):
            balance = node.economy.balances.get(account)
            assert (balance.deposited, balance.spent, balance.available) == (amount, 0, amount)
        # the old receipt is settled from the pool: nothing is drawn from carol for it
        epoch = node.economy.settle()
        assert epoch is not None and epoch.status == "funded" and epoch.sales == 1
        assert int(epoch.revenue) == old_spend + 2 * TOKEN
        assert epoch.document_cid is not None
        assert "spend" not in node.store.get_json(epoch.document_cid)
        assert vault.drawn(carol.address) == 0 and vault.revenue_pool() == 0
        with node.db.session() as session:
            row = session.get(BalanceRow, carol.address)
            assert row is not None and row.owed_in == row.moved_in == str(10 * TOKEN - old_spend)
        block = node.client.block_number()
    finally:
        node.close()
    again = bootstrap(config, backend=backend)  # once: a restart moves nothing more
    try:
        assert again.client.block_number() == block and vault.revenue_pool() == 0
        assert vault.balance_of(carol.address) == 10 * TOKEN - old_spend
    finally:
        again.close()


@pytest.mark.node  # bootstraps nodes of its own
def test_a_deposit_into_the_vault_before_the_move_is_not_moved_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cairn.economy.service import Economy

    config = NodeConfig.from_env(data_dir=tmp_path / "n", chain="memory", dev=True)
    with monkeypatch.context() as cut:  # the node died after deploying its vault, before the move
        cut.setattr(Economy, "hold_no_custody", lambda self: None)
        first = bootstrap(config)
        vault, token = vault_of(first), first.chain.token
        carol, bob = dev(first, "carol"), dev(first, "bob")
        vault.deposit(carol, token, 3 * TOKEN)  # the vault is public: a wallet found it
        token.transfer(bob, first.economy.treasury, 2 * TOKEN)
        assert first.economy.balances.get(carol.address).deposited == 3 * TOKEN
        backend = first.backend
        first.close()
    node = bootstrap(config, backend=backend)
    try:
        move = node.economy.custody.moved()
        assert move is not None and move.accounts == 1 and int(move.balances) == 2 * TOKEN
        assert vault.balance_of(carol.address) == 3 * TOKEN  # hers, once
        assert vault.balance_of(bob.address) == 2 * TOKEN
        for account, amount in ((carol.address, 3 * TOKEN), (bob.address, 2 * TOKEN)):
            balance = node.economy.balances.get(account)
            assert (balance.deposited, balance.available) == (amount, amount)
    finally:
        node.close()


def test_the_operator_funds_the_gateway_without_making_a_deposit(node: Node) -> None:
    treasury, token = node.economy.treasury, node.chain.token
    token.mint(node.operator, node.operator.address, 5 * TOKEN)
    token.transfer(node.operator, treasury, 5 * TOKEN)  # gas money's token twin
    assert node.economy.balances.get(node.operator.address).deposited == 0
    assert not node.economy.custody.owed() and token.balance_of(treasury) == 5 * TOKEN


def test_dust_sent_to_the_treasury_waits_until_it_is_worth_a_deposit(node: Node) -> None:
    bob, vault, token = dev(node, "bob"), vault_of(node), node.chain.token
    token.transfer(bob, node.economy.treasury, 10)  # ten units: a deposit would cost more gas
    node.economy.balances.sync()
    assert not node.economy.custody.owed() and vault.balance_of(bob.address) == 0
    token.transfer(bob, node.economy.treasury, TOKEN)
    assert node.economy.balances.get(bob.address).available == TOKEN + 10
    assert vault.balance_of(bob.address) == TOKEN + 10


def test_spend_a_withdrawal_took_first_is_made_whole_by_the_gateway(world: World) -> None:
    """Settling late (past a withdrawal's notice) lets a user leave with spend the vault never
    drew: the epoch is still paid in full, from the gateway's own tokens, or waits for them."""
    node, economy, vault, token = (
        world.node,
        world.node.economy,
        vault_of(world.node),
        world.node.chain.token,
    )
    carol = world.carol
    spent = spend(world, 2)
    available_at, _ = vault.request_withdrawal(carol, ALL)
    advance(node, available_at - node.client.w3.eth.get_block("latest")["timestamp"])
    paid, _ = vault.withdraw(carol)  # before any epoch drew: she leaves with what she spent
    assert paid == 50 * TOKEN and vault.drawn(carol.address) == 0
    with pytest.raises(ChainError, match="send the gateway the difference"):
        economy.settle()
    [planned] = economy.epochs.epochs()
    assert planned.status == "planned"
    token.mint(node.operator, node.operator.address, TOKEN)
    token.transfer(node.operator, economy.treasury, TOKEN)  # the operator covers the loss
    funded = economy.settle()
    assert funded is not None and funded.id == planned.id and funded.status == "funded"
    assert int(funded.revenue) == spent and vault.revenue_pool() == 0
    assert token.balance_of(economy.treasury) == TOKEN - spent
