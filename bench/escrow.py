"""Gas of every JobEscrow operation, on a fresh in-process chain.

Runs one job through its whole life (providers register and stake, a builder funds a job, a
coordinator enlists, settles and slashes, providers claim with 17-element proofs and leave, the
builder reclaims the rest) and prints the gas of each transaction, then one JSON object of the
figures. Every figure is for a seeded run, so two runs of one build print the same numbers: run
it before and after a change to the contract to see what the change costs.

    python bench/escrow.py
"""

from __future__ import annotations

import json
import random
from typing import Any, cast

from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from cairn.chain.compiler import compile_contract
from cairn.core.merkle import process_proof, standard_leaf_hash

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # a real 59-character CIDv1
ENDPOINT = "https://worker-1.example.org:9092"
LEAF = ["address", "uint256"]
DAY = 86_400
PROOF_DEPTH = 17  # a tree of up to 131,072 providers, as tests/chain/test_escrow.py pins


def deploy(w3: Web3, name: str, sender: str, *args: Any) -> Contract:
    """Deploy bundled contract `name` from `sender`."""
    build = compile_contract(name)
    factory = w3.eth.contract(abi=build.abi, bytecode=build.bytecode)
    tx_hash = factory.constructor(*args).transact({"from": sender, "gas": 8_000_000})
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1, f"deploying {name} failed"
    return cast(Contract, w3.eth.contract(address=receipt["contractAddress"], abi=build.abi))


def gas(fn: ContractFunction, sender: str) -> int:
    """Mine `fn` from `sender` and return the gas it used; fail if it reverted."""
    receipt = fn.w3.eth.get_transaction_receipt(fn.transact({"from": sender, "gas": 3_000_000}))
    assert receipt["status"] == 1, f"{fn.fn_name} reverted"
    return int(receipt["gasUsed"])


def main() -> None:
    rng = random.Random(17)
    w3 = Web3(EthereumTesterProvider())
    owner, builder, alice, bob, *_ = list(w3.eth.accounts)
    token = deploy(w3, "CairnToken", owner, "Cairn", "CAIRN")
    registry = deploy(w3, "AssetRegistry", owner)
    gas(registry.functions.register(2, CID, "Apache-2.0", [], [7_000, 1_000, 1_000, 1_000]), owner)
    escrow = deploy(w3, "JobEscrow", owner, token.address, registry.address)
    fn = escrow.functions
    for account in (builder, alice, bob):
        gas(token.functions.mint(account, 10**24), owner)
        gas(token.functions.approve(escrow.address, 2**256 - 1), account)

    figures: dict[str, int] = {}
    figures["set_min_stake"] = gas(fn.set_min_stake(1_000), owner)
    figures["set_coordinator"] = gas(fn.set_coordinator(bob, True), owner)
    figures["register_provider"] = gas(fn.register_provider(5_000, ENDPOINT), alice)
    gas(fn.register_provider(5_000, ENDPOINT), bob)
    figures["add_stake"] = gas(fn.add_stake(1_000), alice)
    figures["set_endpoint"] = gas(fn.set_endpoint(ENDPOINT + "/v2"), alice)

    gas(fn.create_job(rng.randbytes(32), 10**18, 1, CID, _now(w3) + DAY), builder)  # warm
    job = rng.randbytes(32)
    figures["create_job"] = gas(fn.create_job(job, 10**18, 1, CID, _now(w3) + DAY), builder)
    figures["enlist"] = gas(fn.enlist(job, alice), owner)
    gas(fn.enlist(job, bob), owner)
    proof = [rng.randbytes(32) for _ in range(PROOF_DEPTH)]
    root = process_proof(standard_leaf_hash(LEAF, [alice, 60]), proof)
    figures["settle_job"] = gas(fn.settle_job(job, root, 100, CID), owner)
    figures["claim_payout_enlisted_holder"] = gas(fn.claim_payout(job, alice, 60, proof), alice)
    figures["release"] = gas(fn.release(job, alice), alice)
    figures["slash"] = gas(fn.slash(bob, 500, job, CID), owner)
    gas(fn.release(job, bob), bob)

    fresh = Web3.to_checksum_address(rng.randbytes(20))
    fresh_job = rng.randbytes(32)
    gas(fn.create_job(fresh_job, 10**18, 1, CID, _now(w3) + DAY), builder)
    root = process_proof(standard_leaf_hash(LEAF, [fresh, 100]), proof)
    gas(fn.settle_job(fresh_job, root, 100, CID), owner)
    figures["claim_payout_fresh_account"] = gas(fn.claim_payout(fresh_job, fresh, 100, proof), bob)

    cancelled = rng.randbytes(32)
    gas(fn.create_job(cancelled, 10**18, 1, CID, _now(w3) + DAY), builder)
    figures["cancel_job"] = gas(fn.cancel_job(cancelled), builder)

    figures["request_withdrawal"] = gas(fn.request_withdrawal(), alice)
    w3.provider.ethereum_tester.time_travel(_now(w3) + 8 * DAY)  # type: ignore[attr-defined]
    figures["withdraw_stake"] = gas(fn.withdraw_stake(), alice)
    figures["reclaim_remainder"] = gas(fn.reclaim_remainder(job), builder)
    figures["set_grace_period"] = gas(fn.set_grace_period(DAY), owner)
    figures["transfer_ownership"] = gas(fn.transfer_ownership(bob), owner)

    print("\n".join(f"{k:>30}: {v}" for k, v in figures.items()))
    print(json.dumps(figures))


def _now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


if __name__ == "__main__":
    main()
