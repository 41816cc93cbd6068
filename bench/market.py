"""The marketplace's costs: gas per licence purchase, gas per bounty payout batch, and an app's
retrieval index at scale.

1. Licences. On a dev node's in-process chain, a dataset's owner offers a commercial licence
   and buyers buy one copy each (approve, then `LicenseToken.buy`: the payment passes through
   the contract to the treasury and the licence is minted). Gas of the first purchase by a
   buyer, of a repeat purchase, and of the approval, against a plain ERC-20 transfer of the
   same amount measured in the same run (the least any on-chain payment costs).
2. Bounties. A dataset with an open bounty receives 1,000 accepted records from 50 contributors
   (20 each, signed uploads), anchored as one batch; the node pays the batch with one
   `DataBounty.pay_batch` transaction that funds a RevenueDistributor epoch. Its gas against
   the baseline of paying each record by its own token transfer (1,000 transfers; the gas of
   one transfer to a fresh account is measured here, times 1,000), and the gas of one
   contributor's claim (each contributor claims once, whatever its number of records).
3. Retrieval at scale. A dataset of N records (10,000; --quick: 2,000) is embedded once with
   the packaged all-MiniLM-L6-v2 (time and records per second), then each question is embedded
   and searched against the N vectors (median and slowest). What retrieval adds to an app's call
   over its model alone, with passages capped by tokens and not, is bench/apps.py's.

Prints progress on stderr; the last line of stdout is one JSON object of figures.

    python bench/market.py [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr

from cairn.chain.anvil import free_port
from cairn.core.data_policy import DatasetSpec
from cairn.data.signing import records_root, sign_contribution
from cairn.node import Node, open_node
from cairn.serve.apps import EMBEDDING_MODEL

TOKEN = 10**18
PRICE = 5 * TOKEN
BATCH_RECORDS = 1_000
CONTRIBUTORS = 50
PER_RECORD = TOKEN // 100
CHAT_MODEL = "SmolLM2-135M-Instruct"
QUESTIONS = [
    "What is the best way to keep sourdough starter alive?",
    "How do tides work near a harbour?",
    "Which wood is good for a violin?",
    "How do I fix a bicycle chain that slips?",
    "What makes copper turn green?",
    "When do orchards need pruning?",
    "How do falcons hunt?",
    "Why do glaciers move?",
]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def dev(node: Node, label: str) -> LocalAccount:
    return node.signers.get(node.keystore.find_by_label(label).address)


def dataset_of(node: Node, owner: LocalAccount, name: str, max_upload: int) -> int:
    spec = DatasetSpec.model_validate(
        {
            "task": {"type": "instruction"},
            "review": {"review_share": 0.0},
            "validation": {"max_records_per_upload": max_upload},
            "anchoring": {"every_records": 10**7, "every_seconds": 10**7},
        }
    )
    return node.data.datasets.create(owner, name=name, licence="CC-BY-4.0", spec=spec).asset_id


def records(n: int, seed: int, longest: int = 20) -> list[str]:
    """`n` distinct instruction records as JSONL lines (random words: no near-duplicates), about
    the questions' topics, answers of 20 words (or 20 to `longest`)."""
    rng = random.Random(seed)
    topics = [w for q in QUESTIONS for w in q.lower().strip("?").split() if len(w) > 3]
    words = sorted(
        {
            "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(3))
            for _ in range(5_000)
        }
    )
    out = []
    for i in range(n):
        topic = rng.sample(topics, 3)
        prompt = " ".join(topic + rng.sample(words, 8))
        length = rng.randint(20, longest) if longest > 20 else 20
        response = " ".join(rng.sample(words, length) + topic)
        out.append(json.dumps({"prompt": f"{prompt} ({i})?", "response": response + "."}))
    return out


def contribute(
    node: Node, dataset: int, account: LocalAccount, lines: list[str], nonce: int
) -> None:
    typed = node.data.contributions.typed_data(dataset, records_root(lines), nonce)
    node.data.contributions.contribute(
        dataset,
        contributor=account.address,
        nonce=nonce,
        signature=sign_contribution(account, typed),
        lines=lines,
    )


def transfer_gas(node: Node, sender: LocalAccount, amount: int) -> int:
    """Gas of one token transfer to an account that never held tokens."""
    receipt = node.chain.token.transfer(sender, Account.create().address, amount)
    return int(receipt["gasUsed"])


# ------------------------------------------------------------------------------ licences


def licences(node: Node) -> dict[str, Any]:
    alice, bob, carol = dev(node, "alice"), dev(node, "bob"), dev(node, "carol")
    dataset = dataset_of(node, alice, "Licensed", 100)
    offer = node.licences.offer(alice, dataset, price=PRICE, terms="commercial").offer_id
    baseline = transfer_gas(node, carol, PRICE)
    approve = int(node.chain.token.approve(bob, node.chain.licences.address, 2 * PRICE)["gasUsed"])
    fn = node.chain.licences.contract.functions.buy
    first = int(node.client.transact(bob, fn(offer, bob.address, 1))["gasUsed"])
    repeat = int(node.client.transact(bob, fn(offer, bob.address, 1))["gasUsed"])
    say(f"licence: approve {approve}, first buy {first}, repeat {repeat}, transfer {baseline}")
    return {
        "licence_buy_gas": first,
        "licence_repeat_buy_gas": repeat,
        "licence_approve_gas": approve,
        "erc20_transfer_gas": baseline,
        "licence_buy_over_transfer": round(first / baseline, 2),
    }


# ------------------------------------------------------------------------------ bounties


def bounties(node: Node) -> dict[str, Any]:
    alice = dev(node, "alice")
    dataset = dataset_of(node, alice, "Bountied", BATCH_RECORDS)
    node.economy.bounties.open(alice, dataset, budget=100 * TOKEN, per_record=PER_RECORD)
    people = [Account.create() for _ in range(CONTRIBUTORS)]
    lines = records(BATCH_RECORDS, seed=3)
    each = BATCH_RECORDS // CONTRIBUTORS
    for n, person in enumerate(people):
        contribute(node, dataset, person, lines[n * each : (n + 1) * each], n)
    batch = node.data.anchoring.anchor(dataset)
    assert batch is not None and batch.count == BATCH_RECORDS, batch
    head = node.client.block_number()
    started = time.perf_counter()
    [paid] = node.economy.bounties.pay_due()
    seconds = time.perf_counter() - started
    txs = [
        node.client.w3.eth.get_block(b, full_transactions=True)["transactions"]
        for b in range(head + 1, node.client.block_number() + 1)
    ]
    hashes = [cast(dict[str, Any], t)["hash"] for block in txs for t in block]
    gas = sum(int(node.client.w3.eth.get_transaction_receipt(h)["gasUsed"]) for h in hashes)
    baseline = transfer_gas(node, alice, PER_RECORD)
    claim = node.economy.epochs.claim(people[0].address)
    claim_gas = int(
        node.client.w3.eth.get_transaction_receipt(HexStr(claim.claims[0].tx_hash))["gasUsed"]
    )
    say(
        f"bounty: {paid.records} records paid in {len(hashes)} transaction(s), {gas} gas "
        f"({seconds:.2f} s); per-record transfers would cost {BATCH_RECORDS} x {baseline}"
    )
    return {
        "bounty_batch_records": paid.records,
        "bounty_batch_transactions": len(hashes),
        "bounty_batch_gas": gas,
        "bounty_per_record_transfers_gas": BATCH_RECORDS * baseline,
        "bounty_gas_saving": round(BATCH_RECORDS * baseline / gas, 1),
        "bounty_claim_gas": claim_gas,
        "bounty_contributors": CONTRIBUTORS,
    }


# ------------------------------------------------------------------------------ apps


def retrieval_at_scale(node: Node, n_records: int) -> dict[str, Any]:
    """Embedding N records once and searching them: what an app's index costs at scale (what an
    app call adds over its model is bench/apps.py's)."""
    alice = dev(node, "alice")
    dataset = dataset_of(node, alice, "Retrieval corpus", 1_000)
    lines = records(n_records, seed=11)
    for n, start in enumerate(range(0, n_records, 1_000)):
        contribute(node, dataset, alice, lines[start : start + 1_000], 10_000 + n)
    node.data.anchoring.anchor(dataset)
    say(f"retrieval: embedding {n_records} records with {EMBEDDING_MODEL} ...")
    started = time.perf_counter()
    index = node.apps.index(dataset, builder=alice.address)
    index_seconds = time.perf_counter() - started
    assert index.passages == n_records, index
    retriever = node.gateway.retriever
    retriever.retrieve(index.index, QUESTIONS[0], 3)  # load the index and the embedder
    searches = []
    for question in QUESTIONS:
        t = time.perf_counter()
        retriever.retrieve(index.index, question, 3)
        searches.append(time.perf_counter() - t)
    say(
        f"retrieval: {n_records} records embedded in {index_seconds:.1f} s "
        f"({n_records / index_seconds:.0f} records/s); a question embedded and searched in "
        f"{statistics.median(searches) * 1000:.1f} ms (median of {len(searches)})"
    )
    return {
        "retrieval_records": n_records,
        "retrieval_index_seconds": round(index_seconds, 1),
        "retrieval_index_records_per_s": round(n_records / index_seconds, 1),
        "retrieval_search_ms": round(statistics.median(searches) * 1000, 1),
        "retrieval_search_ms_max": round(max(searches) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 retrieval records")
    args = parser.parse_args()
    n_records = 2_000 if args.quick else 10_000
    figures: dict[str, Any] = {"quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp:
        node = open_node(
            Path(tmp) / "node",
            chain="memory",
            dev=True,
            base_models=True,
            port=free_port(),
            fleet_port=free_port(),
        )
        try:
            figures.update(licences(node))
            figures.update(bounties(node))
            figures.update(retrieval_at_scale(node, n_records))
        finally:
            node.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
