"""DiLoCo against synchronous data-parallel training: held-out loss and bytes communicated.

A tiny Llama causal LM (`cairn.train.tiny`, about 270k parameters) learns procedurally generated
instruction records (reverse or sort a few letters, add two numbers) with the `sft` method, on
four workers that each hold their own shard. Three runs over the same total steps T, from the
same starting weights, with the same seeds, data and inner settings; only H differs:

- sync: every step each worker computes the gradient of the same model on its own batch, the
  four gradients are averaged (what an all-reduce does) and one AdamW step is taken, with
  inner_train's sft loss (`instruction_batch` + `response_loss`), warmup and clipping;
- DiLoCo at H = 50 and H = 500: T/H rounds; each round every worker starts from the global model,
  runs `inner_train(method="sft", steps=H)` on its shard, and the global model takes `outer_step`
  (Nesterov, outer lr 0.7, momentum 0.9: the paper's settings) with the mean aggregator.

Every run starts from one shared warm start (`--pretrain-steps` sft steps of a single model on
records no shard holds), as the DiLoCo paper starts all its runs from a pretrained checkpoint:
averaging workers that left a random initialisation together is far worse (`--pretrain-steps
0` shows it). The default learning rate is the one that gave the sync run its lowest loss.

With `--encodings` (default float32,int8,int4) each DiLoCo run is repeated with its outer
gradients quantised (`cairn.core.quantize`): every worker sends its pseudo-gradient as int8 or
int4 with error feedback kept on the worker, and the node sends the outer update back the same
way, with its own error feedback (so every worker and the node hold the same global model, the
sum of the decoded updates). Bytes are what the encoded arrays take, scales included.

Prints each run's final held-out loss (`evaluate(...)["loss"]`), the DiLoCo / sync loss ratios,
the float32 bytes each run communicates (every worker sends and receives the parameters or the
gradient once per exchange) and the sync / DiLoCo ratios, and the wall seconds of each run's
training; the last line is one JSON object of the figures. The runs go to parallel processes,
one thread each; the workers of a run take their steps one after another within it.

Then, unless `--no-flower`, the Flower round overhead (round wall time minus the slowest
worker's compute) of real jobs on a node's SuperLink with 2 and 4 local SuperNodes
(`bench/flower_rounds.py`; about two more minutes).

    python bench/diloco.py [--quick] [--jobs N] [--no-flower]   # --quick: T = 500; else 2000
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: one thread per process

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch

from cairn.core.aggregation import make_aggregator
from cairn.core.diloco import OuterState, outer_step, pseudo_gradient
from cairn.core.quantize import ENCODINGS, Encoding, ErrorFeedback, decode, payload_bytes
from cairn.core.recipe import SftHyperparameters
from cairn.train.batches import instruction_batch
from cairn.train.inner import MAX_GRAD_NORM, evaluate, inner_train, load_params, trainable_params
from cairn.train.methods.sft import response_loss
from cairn.train.tiny import tiny_causal_lm

WORKERS = 4
HS = (50, 500)  # DiLoCo's inner steps per round; T must be a multiple of each
SEED = 0
EVAL_RECORDS = 512
LETTERS = "abcdefghij"


# --- data --------------------------------------------------------------------------------------


def instruction_record(rng: random.Random) -> dict[str, str]:
    """One record of a random task: reverse or sort a few letters, or add two numbers."""
    task = rng.randrange(3)
    if task == 2:
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        return {"prompt": f"add {a}+{b}", "response": str(a + b)}
    letters = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))
    if task == 0:
        return {"prompt": f"reverse {letters}", "response": letters[::-1]}
    return {"prompt": f"sort {letters}", "response": "".join(sorted(letters))}


def records(n: int, seed: int) -> list[dict[str, str]]:
    """`n` records from the generator seeded with `seed`."""
    rng = random.Random(seed)
    return [instruction_record(rng) for _ in range(n)]


def shard_order(n: int, seed: int) -> Iterator[int]:
    """Record indices forever, a fresh seeded permutation each pass (as inner_train draws)."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield from order


# --- the runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every run shares: the only thing that differs between runs is H."""

    steps: int  # T: optimizer steps per worker, the same for every run
    shard_size: int  # records per worker: T * batch_size, one pass in T steps
    learning_rate: float  # the inner (and sync) AdamW peak learning rate
    batch_size: int  # records per step on each worker (sync: 4x this per step in all)
    hidden_size: int  # tiny_causal_lm width
    layers: int  # tiny_causal_lm depth
    pretrain_steps: int  # sft steps of the shared warm start every run begins from
    outer_lr: float = 0.7  # DiLoCo's outer Nesterov learning rate (the paper's 0.7)
    outer_momentum: float = 0.9  # and momentum (the paper's 0.9)


def hyperparameters(setup: Setup) -> SftHyperparameters:
    """The sft settings every run trains with."""
    return SftHyperparameters(
        learning_rate=setup.learning_rate, batch_size=setup.batch_size, max_length=64, seed=SEED
    )


def fresh_model(setup: Setup) -> tuple[Any, Any]:
    """A newly initialised model, the same for every call."""
    return tiny_causal_lm(seed=SEED, hidden_size=setup.hidden_size, layers=setup.layers)


def warm_start(setup: Setup) -> dict[str, torch.Tensor]:
    """The parameters every run starts from: `pretrain_steps` sft steps of one model."""
    model, tokenizer = fresh_model(setup)
    if setup.pretrain_steps:
        data = records(setup.pretrain_steps * setup.batch_size, 2_000)
        hp = hyperparameters(setup)
        inner_train("sft", model, tokenizer, data, hp, steps=setup.pretrain_steps, seed=SEED)
    return trainable_params(model)


def start_model(setup: Setup, init: dict[str, torch.Tensor]) -> tuple[Any, Any]:
    """The model every run starts from."""
    model, tokenizer = fresh_model(setup)
    load_params(model, init)
    return model, tokenizer


def shards(setup: Setup) -> list[list[dict[str, str]]]:
    """Each worker's own shard: the same generator, a seed per worker."""
    return [records(setup.shard_size, 1_000 + w) for w in range(WORKERS)]


def train_sync(setup: Setup, init: dict[str, torch.Tensor]) -> tuple[Any, Any]:
    """Synchronous data parallel: the workers' gradients averaged every step, one AdamW step.

    The loss, schedule and clipping are inner_train's sft ones (response-token cross-entropy via
    `instruction_batch` and `response_loss`, linear warmup then constant, clip at norm 1).
    """
    hp = hyperparameters(setup)
    data = shards(setup)
    model, tokenizer = start_model(setup, init)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=hp.weight_decay)
    warmup = math.ceil(hp.warmup_ratio * setup.steps)
    orders = [shard_order(len(shard), SEED + w) for w, shard in enumerate(data)]
    model.train()
    torch.manual_seed(SEED)
    for step in range(setup.steps):
        rate = hp.learning_rate * min(1.0, (step + 1) / warmup) if warmup else hp.learning_rate
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.zero_grad(set_to_none=True)
        for shard, order in zip(data, orders, strict=True):
            batch = [shard[next(order)] for _ in range(hp.batch_size)]
            inputs = instruction_batch(tokenizer, batch, hp.max_length)
            logits = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            ).logits  # (B, T, V)
            # gradients add up over backward calls: the sum / WORKERS is the all-reduce mean
            (response_loss(logits, inputs["labels"]) / WORKERS).backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
    return model, tokenizer


def train_diloco(
    setup: Setup, init: dict[str, torch.Tensor], h: int, encoding: Encoding = "float32"
) -> tuple[Any, Any, int]:
    """DiLoCo: T/H rounds of H inner sft steps per worker, then one outer Nesterov step; with
    the bytes every exchange took (each worker's send and receive, in `encoding`)."""
    hp = hyperparameters(setup)
    data = shards(setup)
    model, tokenizer = start_model(setup, init)
    worker, _ = fresh_model(setup)
    global_params = trainable_params(model)
    state = OuterState()
    aggregator = make_aggregator("mean")
    inner_states: list[dict[str, Any] | None] = [None] * WORKERS  # each worker keeps its AdamW
    uplinks = [ErrorFeedback(encoding) for _ in range(WORKERS)]  # kept on each worker
    downlink = ErrorFeedback(encoding)  # kept on the node
    sent = 0
    for r in range(setup.steps // h):
        results = []
        for w, shard in enumerate(data):
            load_params(worker, global_params)
            results.append(
                inner_train(
                    "sft",
                    worker,
                    tokenizer,
                    shard,
                    hp,
                    steps=h,
                    seed=SEED + r * WORKERS + w,  # a new shard order every round
                    start_step=r * h,
                    total_steps=setup.steps,
                    optimizer_state=inner_states[w],
                )
            )
            inner_states[w] = results[-1].optimizer_state
        received = []  # each worker's parameters as the node decodes them
        for w, res in enumerate(results):
            encoded = uplinks[w].encode(pseudo_gradient(global_params, res.params))
            sent += sum(payload_bytes(e) for e in encoded.values())
            received.append({n: global_params[n] - decode(e) for n, e in encoded.items()})
        new_params, state = outer_step(
            global_params,
            received,
            [res.samples for res in results],
            state,
            lr=setup.outer_lr,
            momentum=setup.outer_momentum,
            nesterov=True,
            aggregator=aggregator,
        )
        update = downlink.encode({n: new_params[n] - global_params[n] for n in global_params})
        sent += WORKERS * sum(payload_bytes(e) for e in update.values())
        global_params = {n: global_params[n] + decode(e) for n, e in update.items()}
    load_params(model, global_params)
    return model, tokenizer, sent


def run(
    setup: Setup, init: dict[str, torch.Tensor], h: int | None, encoding: Encoding = "float32"
) -> dict[str, Any]:
    """One run (h None: sync), timed, its held-out loss and, for DiLoCo, the bytes it sent."""
    started = time.perf_counter()
    sent = None
    if h is None:
        model, tokenizer = train_sync(setup, init)
    else:
        model, tokenizer, sent = train_diloco(setup, init, h, encoding)
    seconds = time.perf_counter() - started
    held_out = records(EVAL_RECORDS, 999)  # the same generator, a seed no shard uses
    loss = evaluate("sft", model, tokenizer, held_out, hyperparameters(setup), batch_size=64)
    return {"loss": loss["loss"], "seconds": seconds, "bytes": sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 500 steps instead of 2000")
    parser.add_argument("--steps", type=int, default=None, help="T; a multiple of 500")
    parser.add_argument("--lr", type=float, default=1e-3, help="inner / sync AdamW learning rate")
    parser.add_argument("--batch-size", type=int, default=8, help="records per worker step")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--pretrain-steps", type=int, default=1000, help="shared warm start")
    parser.add_argument("--outer-lr", type=float, default=0.7, help="DiLoCo outer learning rate")
    parser.add_argument("--outer-momentum", type=float, default=0.9, help="DiLoCo outer momentum")
    parser.add_argument(
        "--jobs", type=int, default=min(3, os.cpu_count() or 1), help="runs in parallel processes"
    )
    parser.add_argument(
        "--no-flower", action="store_true", help="skip the Flower round overhead measurement"
    )
    parser.add_argument(
        "--encodings",
        default=",".join(ENCODINGS),
        help="outer gradient encodings of the DiLoCo runs, comma-separated",
    )
    args = parser.parse_args()
    encodings = [cast(Encoding, e.strip()) for e in args.encodings.split(",") if e.strip()]
    if not encodings or any(e not in ENCODINGS for e in encodings):
        parser.error(f"--encodings: one or more of {', '.join(ENCODINGS)}; got {args.encodings}")
    steps = args.steps or (500 if args.quick else 2000)
    if steps % max(HS):
        parser.error(f"--steps must be a multiple of {max(HS)}; got {steps}")
    setup = Setup(
        steps=steps,
        shard_size=steps * args.batch_size,  # one pass over the shard in T steps
        learning_rate=args.lr,
        batch_size=args.batch_size,
        hidden_size=args.hidden_size,
        layers=args.layers,
        pretrain_steps=args.pretrain_steps,
        outer_lr=args.outer_lr,
        outer_momentum=args.outer_momentum,
    )

    started = time.perf_counter()
    init = warm_start(setup)
    runs: list[tuple[int | None, Encoding]] = [(None, "float32")]
    runs += [(h, encoding) for h in HS for encoding in encodings]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run, setup, init, h, encoding) for h, encoding in runs]
        results = dict(zip(runs, (f.result() for f in futures), strict=True))
    total_seconds = time.perf_counter() - started

    model, _ = fresh_model(setup)
    params = sum(t.numel() for t in trainable_params(model).values())
    per_exchange = 2 * params * 4 * WORKERS  # every worker sends and receives float32 once
    sync_bytes = per_exchange * steps
    figures: dict[str, Any] = {
        "params": params,
        "workers": WORKERS,
        "steps": steps,
        **{f"setup_{k}": v for k, v in asdict(setup).items() if k != "steps"},
        "sync_loss": round(results[None, "float32"]["loss"], 4),
        "sync_bytes": sync_bytes,
        "sync_seconds": round(results[None, "float32"]["seconds"], 2),
    }
    sync_loss = results[None, "float32"]["loss"]
    for h in HS:
        for encoding in encodings:
            result = results[h, encoding]
            diloco_bytes = result["bytes"]
            if encoding == "float32":  # the figures as they were before encodings
                assert diloco_bytes == per_exchange * (steps // h), "float32 bytes miscounted"
                figures |= {
                    f"diloco_h{h}_loss": round(result["loss"], 4),
                    f"diloco_h{h}_bytes": diloco_bytes,
                    f"diloco_h{h}_seconds": round(result["seconds"], 2),
                    f"loss_ratio_h{h}": round(result["loss"] / sync_loss, 4),
                    f"comm_reduction_h{h}": round(sync_bytes / diloco_bytes, 1),
                }
            figures |= {
                f"loss_ratio_{encoding}_h{h}": round(result["loss"] / sync_loss, 4),
                f"comm_reduction_{encoding}_h{h}": round(sync_bytes / diloco_bytes, 1),
            }
            if encoding != "float32" and "float32" in encodings:
                float32_loss = results[h, "float32"]["loss"]
                figures[f"loss_vs_float32_{encoding}_h{h}"] = round(
                    result["loss"] / float32_loss, 4
                )
    figures["total_seconds"] = round(total_seconds, 2)
    if not args.no_flower:
        # Round wall time minus the workers' compute, at 2 and 4 local SuperNodes, on a real
        # node, SuperLink and SuperNodes (see bench/flower_rounds.py).
        from flower_rounds import measure

        figures |= measure([2, 4], rounds=2 if args.quick else 3, steps=[20])
    for key, value in figures.items():
        print(f"{key:>28}: {value}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
