"""The marketplace's costs: gas per licence purchase, gas per bounty payout batch, and the
latency an app's retrieval adds to a chat call.

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
3. Apps. A dataset of N records (10,000; --quick: 2,000) is embedded once with the packaged
   all-MiniLM-L6-v2 (time reported), and an app wraps the packaged SmolLM2-135M-Instruct with
   a system prompt and retrieval of the top 3 passages. The same questions go through the
   gateway over HTTP to the model directly and to the app, in pairs, alternating which goes
   first, greedy, same max_tokens: median latency each way, the added latency (median of the
   paired differences) and its ratio to the direct median, the retrieval step alone (embed the
   question + search N vectors) timed in process, and the prompt tokens the passages add.

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

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr

from cairn.api.server import BackgroundServer
from cairn.chain.anvil import free_port
from cairn.core.data_policy import DatasetSpec
from cairn.data.signing import records_root, sign_contribution
from cairn.node import Node, open_node
from cairn.serve.app_spec import AppSpec, Retrieval
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


def records(n: int, seed: int) -> list[str]:
    """`n` distinct instruction records as JSONL lines (random words: no near-duplicates)."""
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
        response = " ".join(rng.sample(words, 20) + topic)
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


def app_latency(
    node: Node, url: str, n_records: int, pairs: int, max_tokens: int
) -> dict[str, Any]:
    alice, carol = dev(node, "alice"), dev(node, "carol")
    dataset = dataset_of(node, alice, "Retrieval corpus", 1_000)
    lines = records(n_records, seed=11)
    for n, start in enumerate(range(0, n_records, 1_000)):
        contribute(node, dataset, alice, lines[start : start + 1_000], 10_000 + n)
    node.data.anchoring.anchor(dataset)
    say(f"app: embedding {n_records} records with {EMBEDDING_MODEL} ...")
    started = time.perf_counter()
    index = node.apps.index(dataset, builder=alice.address)
    index_seconds = time.perf_counter() - started
    assert index.passages == n_records, index
    model = node.base_models.registered()[CHAT_MODEL]
    app = node.apps.create(
        alice,
        name="Bench app",
        spec=AppSpec(
            model=model,
            system_prompt="Answer briefly.",
            retrieval=Retrieval(dataset, index.version, index.index, top_k=3),
        ),
    ).asset.asset_id
    node.chain.token.transfer(carol, node.economy.treasury, 50 * TOKEN)
    _, secret = node.economy.keys.create(carol.address, "bench")
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=600)

    def ask(target: int, question: str) -> tuple[float, int, str]:
        body = {
            "model": str(target),
            "messages": [{"role": "user", "content": question}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        t = time.perf_counter()
        reply = http.post("/v1/chat/completions", json=body)
        elapsed = time.perf_counter() - t
        reply.raise_for_status()
        data = reply.json()
        return (
            elapsed,
            int(data["usage"]["prompt_tokens"]),
            data["choices"][0]["message"]["content"],
        )

    ask(model, QUESTIONS[0])  # load the models and the index
    ask(app, QUESTIONS[0])
    direct: list[float] = []
    via_app: list[float] = []
    extra_tokens: list[int] = []
    for i in range(pairs):
        question = QUESTIONS[i % len(QUESTIONS)]
        order = [(model, direct), (app, via_app)]
        if i % 2:
            order.reverse()
        tokens = {}
        for target, times in order:
            elapsed, prompt_tokens, _ = ask(target, question)
            times.append(elapsed)
            tokens[target] = prompt_tokens
        extra_tokens.append(tokens[app] - tokens[model])
    retrieval = []
    retriever = node.gateway.retriever
    for question in QUESTIONS:
        t = time.perf_counter()
        retriever.retrieve(index.index, question, 3)
        retrieval.append(time.perf_counter() - t)
    added = statistics.median(b - a for a, b in zip(direct, via_app, strict=True))
    direct_median = statistics.median(direct)
    say(
        f"app: direct p50 {direct_median:.3f} s, app p50 {statistics.median(via_app):.3f} s, "
        f"added {added * 1000:.0f} ms ({added / direct_median:+.1%}); retrieval alone "
        f"{statistics.median(retrieval) * 1000:.1f} ms; passages add "
        f"{statistics.median(extra_tokens):.0f} prompt tokens"
    )
    return {
        "app_records": n_records,
        "app_index_seconds": round(index_seconds, 1),
        "app_direct_p50_s": round(direct_median, 3),
        "app_p50_s": round(statistics.median(via_app), 3),
        "app_added_ms": round(added * 1000, 1),
        "app_added_ratio": round(added / direct_median, 3),
        "app_retrieval_ms": round(statistics.median(retrieval) * 1000, 1),
        "app_extra_prompt_tokens": statistics.median(extra_tokens),
        "app_pairs": pairs,
        "app_max_tokens": max_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 retrieval records, 4 pairs")
    args = parser.parse_args()
    n_records, pairs, max_tokens = (2_000, 4, 16) if args.quick else (10_000, 12, 32)
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
        server = BackgroundServer(node).start()
        try:
            figures.update(licences(node))
            figures.update(bounties(node))
            figures.update(app_latency(node, server.url, n_records, pairs, max_tokens))
        finally:
            server.stop()
            node.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
