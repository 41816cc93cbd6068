"""What an app's retrieval costs over its model alone, with passages capped by tokens and not.

A dev node on the in-process chain holds a dataset of N instruction records (--quick: 60;
else 1,000) whose answers run from 20 to 160 words, so some passages are short and some long;
it is embedded once with the packaged all-MiniLM-L6-v2 (`Apps.index`). An app wraps the
packaged SmolLM2-135M-Instruct with a one-line system prompt and retrieval of the top 3
passages. Each question is asked several ways, back to back, the order rotating from question
to question so drift in the machine's speed falls on all of them:

- model: the chat model alone (`Gateway.generate` on the model: key check, hold, generation,
  receipt), the question as the only message;
- capped_<B>: the app's prompt as built with the token cap at B tokens (`app_passages`: embed
  the question, search, keep the passages within B of the model's own tokens, cut at a word
  boundary), then the same metered call of the model; B is the default budget
  (DEFAULT_CONTEXT_TOKENS, 256) and, besides it, 128 (--quick) or 64, 128 and 512;
- whole: the app's prompt with the top 3 passages whole (what the gateway served before the
  cap: `Retriever.retrieve` + `augment_messages`), then the same metered call.

Greedy decoding and one max_tokens, so the ways differ only in the prompt. Per call: its
latency, retrieval included, and its prompt tokens (the backend's count, template included).
Figures per way: the median over questions of the paired latency ratio to the model alone, with
the interquartile range and the lowest and highest; the mean prompt tokens and their ratio to
the model's; the most prompt tokens it added (at most B plus the system prompt, whatever the
records); and for the capped ways the passages used and cut. Also retrieval alone (embed,
search, fit) in milliseconds. What a budget costs in latency depends on the machine: on CPU a
prompt token costs a small fraction of a generated one, so the share grows with B and shrinks
with the answer's length (16 tokens in --quick, 32 else).

Calls run in process (no HTTP): the HTTP round trip is the same for an app and its model, and
bench/gateway.py measures it. Prints progress on stderr; the last line of stdout is one JSON
object of figures.

    python bench/apps.py [--quick]   # --quick: 60 records, 6 questions of 16 tokens;
                                     # else 1,000 records, 16 questions of 32 tokens
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: one thread, as the other benches
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from market import (  # the market bench's questions and helpers
    CHAT_MODEL,
    QUESTIONS,
    dev,
    records,
    say,
)

from cairn.chain.anvil import free_port
from cairn.core.data_policy import DatasetSpec
from cairn.data.signing import records_root, sign_contribution
from cairn.economy.keys import ApiKey
from cairn.node import Node, open_node
from cairn.serve.app_spec import DEFAULT_CONTEXT_TOKENS, AppSpec, Retrieval
from cairn.serve.passage_budget import Passage
from cairn.serve.retrieval import app_passages, augment_messages

TOKEN = 10**18
TOP_K = 3
SYSTEM_PROMPT = "Answer briefly, using the passages when they help."
UPLOAD = 1_000  # records per signed upload


def build_app(node: Node, n_records: int) -> tuple[int, AppSpec, ApiKey]:
    """A dataset of `n_records` indexed, an app over it, and a funded key to call with."""
    alice, carol = dev(node, "alice"), dev(node, "carol")
    spec = DatasetSpec.model_validate(
        {
            "task": {"type": "instruction"},
            "review": {"review_share": 0.0},
            "validation": {"max_records_per_upload": UPLOAD},
            "anchoring": {"every_records": 10**7, "every_seconds": 10**7},
        }
    )
    dataset = node.data.datasets.create(
        alice, name="Retrieval corpus", licence="CC-BY-4.0", spec=spec
    ).asset_id
    lines = records(n_records, seed=11, longest=160)  # some passages short, some long
    for nonce, start in enumerate(range(0, n_records, UPLOAD), start=1):
        chunk = lines[start : start + UPLOAD]
        typed = node.data.contributions.typed_data(dataset, records_root(chunk), nonce)
        node.data.contributions.contribute(
            dataset,
            contributor=alice.address,
            nonce=nonce,
            signature=sign_contribution(alice, typed),
            lines=chunk,
        )
    node.data.anchoring.anchor(dataset)
    say(f"embedding {n_records} records with all-MiniLM-L6-v2 ...")
    started = time.perf_counter()
    index = node.apps.index(dataset, builder=alice.address)
    say(f"  {index.passages} passages in {time.perf_counter() - started:.1f} s")
    model = node.base_models.registered()[CHAT_MODEL]
    app_spec = AppSpec(
        model=model,
        system_prompt=SYSTEM_PROMPT,
        retrieval=Retrieval(dataset, index.version, index.index, top_k=TOP_K),
    )
    node.apps.create(alice, name="Bench app", spec=app_spec)
    node.chain.token.transfer(carol, node.economy.treasury, 50 * TOKEN)
    key, _ = node.economy.keys.create(carol.address, "bench")
    return model, app_spec, key


class Call(NamedTuple):
    """One metered call of the model: what it took and what it read."""

    seconds: float
    cpu: float  # CPU seconds of this process: hardly changed by the machine's other work
    prompt_tokens: int
    completion_tokens: int
    text: str


def quartiles(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles (inclusive method: within the values' range)."""
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def bench(
    node: Node, n_records: int, questions: int, max_tokens: int, budgets: tuple[int, ...]
) -> dict[str, Any]:
    """Latency and prompt tokens of the model alone, the app capped at each budget and the app
    with whole passages."""
    model, spec, key = build_app(node, n_records)
    assert spec.retrieval is not None
    source = spec.retrieval
    gateway = node.gateway
    served = gateway.resolve(str(model))
    retriever = gateway.retriever

    def call(messages: list[dict[str, str]]) -> Call:
        started, cpu = time.perf_counter(), time.process_time()
        metered = gateway.generate(
            key,
            str(model),
            messages=messages,
            max_tokens=max_tokens,
            temperature=0.0,
            top_p=None,
            stop=(),
            seed=None,
        )
        text, receipt = metered.text()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        return Call(seconds, cpu, receipt.prompt_tokens, receipt.completion_tokens, text)

    used: dict[str, list[Passage]] = {}

    def alone(question: str) -> Call:
        return call([{"role": "user", "content": question}])

    def capped(budget: int) -> Callable[[str], Call]:
        retrieval = replace(source, max_context_tokens=budget)
        kept = used.setdefault(f"capped_{budget}", [])

        def ask(question: str) -> Call:
            started, cpu = time.perf_counter(), time.process_time()
            asked = [{"role": "user", "content": question}]
            found = app_passages(retriever, retrieval, question, served.backend, served.model)
            kept.extend(found)
            answer = call(augment_messages(asked, spec.system_prompt, [p.text for p in found]))
            return answer._replace(
                seconds=time.perf_counter() - started, cpu=time.process_time() - cpu
            )

        return ask

    def whole(question: str) -> Call:
        started, cpu = time.perf_counter(), time.process_time()
        asked = [{"role": "user", "content": question}]
        passages = retriever.retrieve(source.index, question, source.top_k)
        answer = call(augment_messages(asked, spec.system_prompt, passages))
        return answer._replace(seconds=time.perf_counter() - started, cpu=time.process_time() - cpu)

    ways: dict[str, Callable[[str], Call]] = {"model": alone}
    for budget in sorted({*budgets, DEFAULT_CONTEXT_TOKENS}):
        ways[f"capped_{budget}"] = capped(budget)
    ways["whole"] = whole
    say(f"loading {CHAT_MODEL} (converted from GGUF on first use) and the index")
    for way in ways.values():
        way(QUESTIONS[0])  # loads the weights, the index and the encoder; not counted
    for kept in used.values():
        kept.clear()
    names = list(ways)
    calls: dict[str, list[Call]] = {name: [] for name in names}
    for i in range(questions):
        question = QUESTIONS[i % len(QUESTIONS)]
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:  # each way takes each place in turn
            calls[name].append(ways[name](question))
        say(
            f"  question {i + 1}/{questions}: "
            + ", ".join(
                f"{n} {calls[n][-1].seconds:.2f} s/{calls[n][-1].prompt_tokens}" for n in names
            )
        )

    retrieval_ms = []
    for question in QUESTIONS:
        started = time.perf_counter()
        app_passages(retriever, source, question, served.backend, served.model)
        retrieval_ms.append((time.perf_counter() - started) * 1000)

    base = calls["model"]
    base_tokens = statistics.fmean(c.prompt_tokens for c in base)
    figures: dict[str, Any] = {
        "model": CHAT_MODEL,
        "records": n_records,
        "questions": questions,
        "max_tokens": max_tokens,
        "top_k": source.top_k,
        "default_context_tokens": DEFAULT_CONTEXT_TOKENS,
        "model_context_tokens": served.backend.context_length(served.model),
        "model_p50_s": round(statistics.median(c.seconds for c in base), 3),
        "model_prompt_tokens_mean": round(base_tokens, 1),
        "retrieval_ms_p50": round(statistics.median(retrieval_ms), 1),
    }
    for name in names[1:]:
        got = calls[name]
        ratios = [c.seconds / b.seconds for c, b in zip(got, base, strict=True)]
        cpu_ratios = [c.cpu / b.cpu for c, b in zip(got, base, strict=True)]
        low, high = quartiles(ratios)
        cpu_low, cpu_high = quartiles(cpu_ratios)
        tokens = statistics.fmean(c.prompt_tokens for c in got)
        added = [c.prompt_tokens - b.prompt_tokens for c, b in zip(got, base, strict=True)]
        figures.update(
            {
                f"app_{name}_p50_s": round(statistics.median(c.seconds for c in got), 3),
                f"app_{name}_latency_ratio": round(statistics.median(ratios), 3),
                f"app_{name}_latency_ratio_q1": round(low, 3),
                f"app_{name}_latency_ratio_q3": round(high, 3),
                f"app_{name}_latency_ratio_min": round(min(ratios), 3),
                f"app_{name}_latency_ratio_max": round(max(ratios), 3),
                f"app_{name}_cpu_ratio": round(statistics.median(cpu_ratios), 3),
                f"app_{name}_cpu_ratio_q1": round(cpu_low, 3),
                f"app_{name}_cpu_ratio_q3": round(cpu_high, 3),
                f"app_{name}_prompt_tokens_mean": round(tokens, 1),
                f"app_{name}_prompt_token_ratio": round(tokens / base_tokens, 2),
                f"app_{name}_added_prompt_tokens_max": max(added),
            }
        )
        if name in used:
            figures[f"app_{name}_passages_used"] = len(used[name])
            figures[f"app_{name}_passages_cut"] = sum(p.truncated for p in used[name])
    default = f"capped_{DEFAULT_CONTEXT_TOKENS}"
    figures["app_latency_ratio"] = figures[f"app_{default}_latency_ratio"]  # the default cap
    figures["app_cpu_ratio"] = figures[f"app_{default}_cpu_ratio"]
    figures["app_prompt_token_ratio"] = figures[f"app_{default}_prompt_token_ratio"]
    figures["app_uncapped_latency_ratio"] = figures["app_whole_latency_ratio"]  # before the cap
    figures["app_uncapped_cpu_ratio"] = figures["app_whole_cpu_ratio"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 records, 6 questions (~2 min)")
    args = parser.parse_args()
    n_records, questions, max_tokens = (60, 6, 16) if args.quick else (1_000, 16, 32)
    budgets = (128,) if args.quick else (64, 128, 512)
    started = time.perf_counter()
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
            figures = bench(node, n_records, questions, max_tokens, budgets)
        finally:
            node.close()
    figures["quick"] = args.quick
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    for key in [k for k in figures if k.endswith("_latency_ratio_q1")]:
        name = key.removeprefix("app_").removesuffix("_latency_ratio_q1")
        ratio = figures[f"app_{name}_latency_ratio"]
        say(
            f"app, {name.replace('_', ' at ')} passages: {ratio - 1:+.1%} latency "
            f"(middle half {figures[key] - 1:+.1%} to "
            f"{figures[f'app_{name}_latency_ratio_q3'] - 1:+.1%}), "
            f"{figures[f'app_{name}_cpu_ratio'] - 1:+.1%} CPU, "
            f"{figures[f'app_{name}_prompt_token_ratio']:.2f}x the model's prompt tokens, "
            f"at most {figures[f'app_{name}_added_prompt_tokens_max']} added"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
