"""The chain as a wallet sees it through `Network`: its facts, fees, gas for a call to a Cairn
contract (and none for a call elsewhere or one that would revert), and the relay."""

from __future__ import annotations

import pytest
from eth_account import Account

from cairn.core.errors import ChainError, InvalidInput
from cairn.economy.network import ChainStatus
from cairn.node import Node
from tests.data.conftest import dev


def test_facts_name_the_chain_and_every_cairn_contract(node: Node) -> None:
    facts = node.network.facts()
    assert (facts.backend, facts.chain_id, facts.rpc_url) == ("memory", node.client.chain_id, None)
    assert facts.block_number == node.client.block_number() >= facts.deployed_at_block
    assert facts.operator == node.operator.address
    assert {c.address for c in facts.contracts.values()} == node.chain.addresses
    assert facts.contracts["CairnToken"].abi == node.chain.deployment.contracts["CairnToken"].abi
    assert node.network.status() == ChainStatus("memory", node.network.chain_id, facts.block_number)


def test_fees_get_a_transaction_into_the_next_block(node: Node) -> None:
    fees = node.network.fees()
    assert fees.max_fee_per_gas >= fees.max_priority_fee_per_gas > 0


def test_gas_is_estimated_for_calls_to_cairn_contracts_only(node: Node) -> None:
    alice, bob = dev(node, "alice"), dev(node, "bob")
    token = node.chain.token.contract
    pay_bob = token.encode_abi("transfer", [bob.address, 1])
    gas = node.network.estimate(alice.address, token.address, pay_bob, 0)
    assert 21_000 < gas < 200_000

    with pytest.raises(InvalidInput, match="only calls to Cairn's own contracts"):
        node.network.estimate(alice.address, bob.address, pay_bob, 0)
    too_much = token.encode_abi("transfer", [bob.address, 10**30])  # more than alice holds
    with pytest.raises(ChainError):
        node.network.estimate(alice.address, token.address, too_much, 0)


def test_an_estimate_for_an_account_without_ether_is_a_clear_refusal(node: Node) -> None:
    # The memory chain charges a simulated call's gas: it refuses the call before running it,
    # which was an unhandled py-evm error (a 500 on POST /chain/estimate) and is now a refusal.
    stranger = Account.create()
    token = node.chain.token.contract
    pay_bob = token.encode_abi("transfer", [dev(node, "bob").address, 0])
    with pytest.raises(ChainError, match="the sender holds 0 wei and the call's gas costs"):
        node.network.estimate(stranger.address, token.address, pay_bob, 0)
