"""Gas of Cairn's ledger contracts: anchoring contributions by Merkle root, and claims.

Prints gas per anchor and per claim, and on-chain gas per contribution when batches of 1, 100
and 10,000 contributions are anchored by one root, each against a baseline measured in the same
run (a plain ERC-20 transfer, and anchoring one contribution per transaction). The last line is
one JSON object of the figures.

    python bench/chain.py [--quick] [--chain memory|anvil]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from cairn.chain.backends import AnvilBackend, ChainBackend
from cairn.chain.client import ChainClient
from cairn.chain.contracts import Chain
from cairn.chain.deployment import deploy_all
from cairn.chain.memory import MemoryBackend
from cairn.core.merkle import StandardMerkleTree
from cairn.core.policy import AssetKind, RevenueSplit

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # a real 59-character CIDv1
ETHER = 10**18
# A contribution leaf as the data domain anchors it: (record hash, contributor).
CONTRIBUTION_LEAF = ["bytes32", "address"]


def open_chain(kind: str, workdir: Path) -> tuple[ChainBackend, Chain, LocalAccount]:
    """A fresh chain with Cairn deployed by a funded operator."""
    backend: ChainBackend = (
        MemoryBackend() if kind == "memory" else AnvilBackend(workdir / "anvil-state.json")
    )
    client = ChainClient(backend)
    operator = Account.create()
    backend.fund(operator.address, 1_000 * ETHER)
    return backend, Chain(client, deploy_all(client, operator, workdir / "build")), operator


def contribution_tree(count: int, contributors: list[str]) -> StandardMerkleTree:
    """A Merkle tree of `count` contribution leaves."""
    values = [[os.urandom(32), contributors[i % len(contributors)]] for i in range(count)]
    return StandardMerkleTree.of(values, CONTRIBUTION_LEAF)


def bench_anchor(
    chain: Chain, owner: LocalAccount, sizes: list[int], repeats: int
) -> dict[str, Any]:
    """Gas per anchor and per contribution for batches of each size."""
    dataset, _ = chain.registry.register(
        owner, AssetKind.DATASET, CID, "CC-BY-4.0", [], RevenueSplit(7_000, 3_000, 0, 0)
    )
    contributors = [Account.create().address for _ in range(50)]
    # The first anchor of an asset also fills its counter slot; measure it apart.
    first_tree = contribution_tree(1, contributors)
    _, receipt = chain.ledger.anchor(owner, dataset, first_tree.root, 1, CID)
    out: dict[str, Any] = {"anchor_gas_first_batch": int(receipt["gasUsed"])}
    for size in sizes:
        gases, verify_gas = [], 0
        for _ in range(repeats):
            tree = contribution_tree(size, contributors)
            _, receipt = chain.ledger.anchor(owner, dataset, tree.root, size, CID)
            gases.append(int(receipt["gasUsed"]))
            index = size // 2
            value = tree.at(index) if hasattr(tree, "at") else list(tree.entries())[index][1]
            proof = tree.get_proof(index)
            leaf = tree.leaf_hash(value)
            assert chain.ledger.verify(dataset, tree.root, leaf, proof)
            fn = chain.ledger.contract.functions.verify(dataset, tree.root, leaf, proof)
            verify_gas = int(fn.estimate_gas())
        gas = statistics.median(gases)
        out[f"anchor_gas_batch_{size}"] = int(gas)
        out[f"gas_per_contribution_batch_{size}"] = round(gas / size, 3)
        out[f"verify_gas_batch_{size}"] = verify_gas
    return out


def bench_claims(chain: Chain, funder: LocalAccount, accounts: int, samples: int) -> dict[str, Any]:
    """Gas per claim against a distribution tree of `accounts` leaves."""
    claimers = [Account.create() for _ in range(samples)]
    filler = [
        [Account.create().address if i % 1000 == 0 else f"0x{i:040x}", 10**15 + i]
        for i in range(accounts - samples)
    ]
    values = [[c.address, 10**18 + i] for i, c in enumerate(claimers)] + filler
    started = time.perf_counter()
    tree = StandardMerkleTree.of(values, ["address", "uint256"])
    tree_seconds = time.perf_counter() - started
    total = sum(int(v[1]) for v in values)
    chain.token.mint(funder, funder.address, total * 2)
    epoch, fund_receipt = chain.distributor.fund_epoch(funder, chain.token, tree.root, total, CID)
    fresh: list[int] = []
    holder: list[int] = []
    for i, claimer in enumerate(claimers):
        if i % 2:  # half the claimers already hold tokens, as returning contributors do
            chain.token.transfer(funder, claimer.address, 1)
        proof = tree.get_proof(i)
        receipt = chain.distributor.claim(funder, epoch, claimer.address, int(values[i][1]), proof)
        (holder if i % 2 else fresh).append(int(receipt["gasUsed"]))
        assert chain.token.balance_of(claimer.address) >= int(values[i][1])
    # A returning claimer: holds tokens and claimed an earlier epoch.
    second = StandardMerkleTree.of(
        [[c.address, 7] for c in claimers] + filler[:1000], ["address", "uint256"]
    )
    epoch2, _ = chain.distributor.fund_epoch(
        funder,
        chain.token,
        second.root,
        7 * len(claimers) + sum(int(v[1]) for v in filler[:1000]),
        CID,
    )
    returning = [
        int(chain.distributor.claim(funder, epoch2, c.address, 7, second.get_proof(i))["gasUsed"])
        for i, c in enumerate(claimers[:4])
    ]
    transfer_fresh = int(chain.token.transfer(funder, Account.create().address, 1)["gasUsed"])
    return {
        "claim_tree_accounts": accounts,
        "claim_proof_length": len(tree.get_proof(0)),
        "claim_tree_build_seconds": round(tree_seconds, 3),
        "fund_epoch_gas": int(fund_receipt["gasUsed"]),
        "claim_gas_fresh_recipient": int(statistics.median(fresh)),
        "claim_gas_token_holder": int(statistics.median(holder)),
        "claim_gas_returning_claimer": int(statistics.median(returning)),
        "baseline_erc20_transfer_to_fresh_gas": transfer_fresh,
        "claim_vs_plain_transfer_ratio": round(statistics.median(fresh) / transfer_fresh, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about a minute)")
    parser.add_argument("--chain", choices=["memory", "anvil"], default="memory")
    parser.add_argument("--accounts", type=int, default=100_000, help="leaves in the claim tree")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    samples = 6 if args.quick else 20

    with tempfile.TemporaryDirectory() as tmp:
        backend, chain, operator = open_chain(args.chain, Path(tmp))
        try:
            print(f"chain: {args.chain} (chain id {chain.client.chain_id})", file=sys.stderr)
            figures: dict[str, Any] = {"chain": args.chain}
            figures.update(bench_anchor(chain, operator, [1, 100, 10_000], repeats))
            figures.update(bench_claims(chain, operator, args.accounts, samples))
        finally:
            backend.close()
    figures["gas_per_contribution_saving_10000_vs_1"] = round(
        figures["gas_per_contribution_batch_1"] / figures["gas_per_contribution_batch_10000"], 1
    )
    print("\n".join(f"{k:>40}: {v}" for k, v in figures.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
