"""DiLoCo against synchronous data-parallel training at the same compute: held-out loss and bytes.

A tiny Llama causal LM (`cairn.train.tiny`) learns procedurally generated instruction records
(reverse or sort a few letters, add two numbers) with the `sft` loss, on four workers that each
hold their own shard. Every run takes T AdamW steps per worker on the same batches (worker w's
batch at step t is the same in every run), from the same warm start, with inner_train's settings
(linear warmup over 3 % of T, then a constant rate, or with `--schedule cosine` the DiLoCo
paper's cosine down to a tenth of the peak at step T for all alike; each clipped at norm 1):

- sync: every step the four workers' gradients of one model are averaged (an all-reduce) and
  one AdamW step is taken on them;
- DiLoCo at each H and encoding: every worker steps on its own batch and keeps its AdamW state
  across rounds; every H steps each worker sends its pseudo-gradient (float32, or int8 / int4 with
  error feedback kept on the worker, `cairn.core.quantize`), the node takes `outer_step` (Nesterov,
  the mean) and sends the update back in the same encoding with its own error feedback, and the
  workers start the next round from the new global model.

The same compute for both, 4 x T batches of B records; only when the parameters meet differs.
Bytes are what the encoded arrays take, scales included: every worker sends and receives the
parameters (sync: the gradient) once per exchange.

Every model of a run is a row of one stack of parameters, and a step is one forward and backward
over all of them (`group_losses`, LlamaForCausalLM's forward with a leading model dimension), so
the four workers of every run and the sync model cost about one batched forward. AdamW is
elementwise, so one AdamW over the rows is each row's own. tests/core/test_diloco_bench.py pins
the forward to transformers', a round to `inner_train` on each worker then `outer_step`, and the
sync row to data-parallel AdamW. `--seeds N` repeats everything on N data orders; a ratio is then
the mean of each seed's, with its spread (largest minus smallest).

The regime (figures from this script on the quick model, 36k parameters, one seed unless said):
- warm start: every run starts from `--pretrain-steps` steps of one model on its own records, as
  the DiLoCo paper starts from a pretrained checkpoint. From 500 steps (held-out loss 1.36) sync
  does best at a rate of 8e-3 or more (loss 0.74) and DiLoCo H=50 at 2e-3 (0.96): 1.29, best
  against best. From 2000 steps (0.48) both do best at 1e-3 of 5e-4, 1e-3 and 2e-3 (sync 0.284,
  0.286 at 2e-3; DiLoCo 0.279, 0.296 at 2e-3), so one rate is fair to both;
- rounds: at T=2000, H=50 (40 rounds) ends at 0.63 of sync's loss and H=500 (4 rounds) at 1.52
  (the paper had 128 rounds of H=500). Its outer settings (lr 0.7, Nesterov momentum 0.9) are
  the best tried at H=50 (lr 0.5 or 1.0 at 0.9, 1.2 at 0.8 worse; 1.0 at 0.5 equal); with 4
  rounds momentum 0.5 did better in 4 of 5 regimes (1.52 -> 1.25): `--outer-momentum`. The old
  default (270k parameters, T=2000, about 20 minutes) ended H=500 at 2.2x sync (0.087 / 0.039);
- more rounds alone do not reach parity on these three tasks: at T=8000 from the quick warm
  start (0.51), sync is at 0.156, 0.093, 0.064 after 2, 4, 6 rounds of H=500 and float32 H=500
  at 1.74, 1.86, 1.46x that with the paper's outer settings (lr 1.0 / momentum 0.9: 2.30, 1.70,
  1.53; 0.7 / 0.5: 1.54, 1.56, 1.51; 1.0 / 0.5: 1.51, 1.57, 1.55), then stopped for time.
  DiLoCo at round 6 is where sync was 1000 steps earlier; while the loss still falls by a third
  every 1000 steps, such a lag is a ratio of 1.5 however many rounds;
- the floor: text has an irreducible loss that training approaches, where such a lag costs a
  few %. `--draw-share` gives the data one: that share of records are `draw <letters>`, whose
  response is DRAWN letters drawn at random from the prompt's, and `loss_floor` is their
  entropy over all held-out response tokens (0.59 at the default's 0.5: as for text, most of
  the loss). Then the ratio says less, so the run also prints `excess_ratio_<enc>_h<H>`, the
  ratio of each loss less the floor, how far DiLoCo still lags;
- the default: the quick model, T=8000 (16 rounds of H=500), draw share 0.5, outer lr 0.7 and
  momentum 0.9, seed 0, float32 and int4 (for time). First recorded: from 0.925, sync 0.626,
  H=500 0.661 (1.056, excess 1.89x), int4 0.656 (1.048), 33 minutes. The same code in a fresh
  environment (torch 2.13.0, transformers 5.25.0; what differed is not known) starts at 0.905:
  sync 0.624, H=500 0.626 (1.003, 99 % of the gain, excess 1.06x: within 1.02), int4 0.629
  (1.009, 3875x fewer bytes; int8 in its place 0.632, 1.013), 7-10 minutes on a shared core.
  `--seeds 2`: float32 1.001 (spread 0.0001), int4 1.008 (0.013), 23 minutes; its seed 0 ends
  at 0.626, 0.627, int4 0.635 (only the stack's rows differ; rounding, presumably);
- the schedule: `--schedule cosine`, the same for sync and every worker, ends sync lower (0.619)
  and DiLoCo higher: H=500 0.628 (1.015, 97 %, excess 1.29x), int4 0.632 (1.021); 16 minutes.
  --quick (2 seeds): cosine 1.015 (spread 0.008) against constant's 1.009 (0.044), int4 1.015
  against 1.018. Not tried for time: a larger draw share, outer settings at this floor, cosine
  on a second seed or with int8;
- noise: on a task whose loss can reach 0 the ratio is one of two small losses; the final sync
  loss alone moves by 0.03 (15 %) between data orders, hence the seeds. `gain_share_<enc>_h<H>`
  is the share of sync's gain over the warm start that DiLoCo made (1: parity).

Prints each seed's losses and the figures (`evaluate(...)["loss"]` on 512 held-out records), the
last line one JSON object: `loss_ratio_<enc>_h<H>` and `comm_reduction_<enc>_h<H>` against sync,
`loss_vs_float32_<enc>_h<H>` against float32 DiLoCo. Flower's round overhead is
`bench/flower_rounds.py`'s.

    python bench/diloco.py --quick   # 36k parameters, T=400, H=50, 2 seeds: 2-5 minutes
    python bench/diloco.py           # the same model, T=8000, H=500, a loss floor: 8-35 minutes

Over 400 lines because the regime's findings, the batched forward and the runs belong together.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: the machine is shared

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

import torch
import torch.nn.functional as F

from cairn.core.aggregation import make_aggregator
from cairn.core.diloco import OuterState, outer_step, pseudo_gradient
from cairn.core.quantize import ENCODINGS, Encoding, ErrorFeedback, decode, payload_bytes
from cairn.core.recipe import SftHyperparameters
from cairn.train import inner
from cairn.train.batches import chat_ids, instruction_batch
from cairn.train.inner import MAX_GRAD_NORM, evaluate, load_params, trainable_params
from cairn.train.tiny import tiny_causal_lm

WORKERS = 4
SEED = 0
EVAL_RECORDS = 512
LETTERS = "abcdefghij"
DRAWN = 6  # letters a draw record's response draws
Params = dict[str, torch.Tensor]
Shards = list[list[dict[str, str]]]  # each worker's records


# --- data --------------------------------------------------------------------------------------


def instruction_record(rng: random.Random, draw_share: float = 0.0) -> dict[str, str]:
    """One record of a random task: reverse or sort a few letters, or add two numbers; with
    probability `draw_share`, draw: DRAWN letters at random from the prompt's, an entropy floor."""
    if draw_share and rng.random() < draw_share:
        letters = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))
        drawn = "".join(rng.choice(letters) for _ in range(DRAWN))
        return {"prompt": f"draw {letters}", "response": drawn}
    task = rng.randrange(3)
    if task == 2:
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        return {"prompt": f"add {a}+{b}", "response": str(a + b)}
    letters = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))
    if task == 0:
        return {"prompt": f"reverse {letters}", "response": letters[::-1]}
    return {"prompt": f"sort {letters}", "response": "".join(sorted(letters))}


def records(n: int, seed: int, draw_share: float = 0.0) -> list[dict[str, str]]:
    """`n` records from the generator seeded with `seed`."""
    rng = random.Random(seed)
    return [instruction_record(rng, draw_share) for _ in range(n)]


def loss_floor(tokenizer: Any, held_out: list[dict[str, str]]) -> float:
    """The least response-token loss any model can reach on `held_out`, as `evaluate` counts
    it: each drawn letter's entropy (the prompt's letter frequencies) over all response tokens."""
    entropy, tokens = 0.0, 0
    for record in held_out:
        tokens += len(chat_ids(tokenizer, record["prompt"], record["response"])[1])
        if record["prompt"].startswith("draw "):
            letters = record["prompt"].removeprefix("draw ")
            shares = [letters.count(c) / len(letters) for c in set(letters)]
            entropy += DRAWN * -sum(q * math.log(q) for q in shares)
    return entropy / tokens


def shard_order(n: int, seed: int) -> Iterator[int]:
    """Record indices forever, a fresh seeded permutation each pass (as inner_train draws)."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield from order


# --- every model of a run in one forward -------------------------------------------------------


def _linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (G, B, T, i) through each model's own weight w (G, o, i): (G, B, T, o)."""
    g, b, t, i = x.shape
    return torch.bmm(x.reshape(g, b * t, i), w.transpose(1, 2)).view(g, b, t, -1)


def _rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm with each model's own weight w (G, d)."""
    return w[:, None, None, :] * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def group_losses(p: Params, ids: torch.Tensor, labels: torch.Tensor, config: Any) -> torch.Tensor:
    """Each model's sft response loss on its own batch: (G,).

    `p` holds every parameter of `tiny_causal_lm` stacked over G models (`(G, *shape)`, names as
    `trainable_params`), `ids` and `labels` are G right-padded `instruction_batch`es (G, B, T).
    The forward is LlamaForCausalLM's (tied embeddings, no grouped-query heads, default RoPE);
    right padding needs no mask, as causal attention never looks past a real token to a pad.
    """
    g, b, t = ids.shape
    embed = p["model.embed_tokens.weight"]  # (G, V, d)
    vocab, d = embed.shape[1:]
    heads, eps = config.num_attention_heads, config.rms_norm_eps
    hd = d // heads
    base = config.rope_parameters["rope_theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))  # (hd/2,)
    freqs = torch.arange(t, dtype=torch.float32)[:, None] * inv_freq  # (T, hd/2)
    angles = torch.cat((freqs, freqs), dim=-1)  # (T, hd)
    cos, sin = angles.cos(), angles.sin()

    rows = (torch.arange(g) * vocab)[:, None, None]  # (G, 1, 1): model i's rows of the stack
    h = embed.reshape(g * vocab, d)[ids + rows]  # (G, B, T, d)
    for layer in range(config.num_hidden_layers):
        w = {
            k.removeprefix(f"model.layers.{layer}."): v
            for k, v in p.items()
            if k.startswith(f"model.layers.{layer}.")
        }
        x = _rms_norm(h, w["input_layernorm.weight"], eps)

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(g * b, t, heads, hd).transpose(1, 2)  # (GB, nh, T, hs)

        q = split(_linear(x, w["self_attn.q_proj.weight"]))
        k = split(_linear(x, w["self_attn.k_proj.weight"]))
        v = split(_linear(x, w["self_attn.v_proj.weight"]))
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (GB, nh, T, hs)
        h = h + _linear(a.transpose(1, 2).reshape(g, b, t, d), w["self_attn.o_proj.weight"])
        x = _rms_norm(h, w["post_attention_layernorm.weight"], eps)
        gate = F.silu(_linear(x, w["mlp.gate_proj.weight"])) * _linear(x, w["mlp.up_proj.weight"])
        h = h + _linear(gate, w["mlp.down_proj.weight"])  # (G, B, T, d)
    logits = _linear(_rms_norm(h, p["model.norm.weight"], eps), embed)  # (G, B, T, V)
    targets = labels[:, :, 1:]  # (G, B, T-1): position t predicts token t+1
    ce = F.cross_entropy(
        logits[:, :, :-1].reshape(-1, vocab), targets.reshape(-1), reduction="none"
    ).view(g, -1)  # (G, B*(T-1)), 0 where the label is -100
    return ce.sum(1) / (targets != -100).reshape(g, -1).sum(1)


def check_config(config: Any) -> None:
    """Refuse a model `group_losses` does not compute: it is LlamaForCausalLM's plain case."""
    plain = (
        config.tie_word_embeddings
        and config.num_key_value_heads == config.num_attention_heads
        and config.hidden_act == "silu"
        and config.rope_parameters.get("rope_type") == "default"
        and not config.attention_bias
        and not config.mlp_bias
    )
    if not plain:
        raise ValueError(f"group_losses computes a plain tied Llama; got {config}")


# --- the runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every run shares; runs differ in H and encoding, repeats in their data seed."""

    steps: int  # T: optimizer steps per worker, the same for every run
    shard_size: int  # records per worker: T * batch_size, one pass in T steps
    learning_rate: float  # the inner (and sync) AdamW peak learning rate
    batch_size: int  # records per step on each worker (sync: 4x this per step in all)
    hidden_size: int  # tiny_causal_lm width
    layers: int  # tiny_causal_lm depth
    pretrain_steps: int  # steps of one model: the warm start every run begins from
    pretrain_lr: float  # and their learning rate
    outer_lr: float = 0.7  # DiLoCo's outer Nesterov learning rate (the paper's 0.7)
    outer_momentum: float = 0.9  # and momentum (the paper's 0.9)
    seeds: int = 1  # repeats of every run, each with its own shards and orders
    draw_share: float = 0.0  # the share of draw records (random responses) in all data
    schedule: inner.LrSchedule = "constant"  # the rate after warmup, sync's and the workers'


def hyperparameters(setup: Setup) -> SftHyperparameters:
    """The sft settings every run trains with."""
    return SftHyperparameters(
        learning_rate=setup.learning_rate, batch_size=setup.batch_size, max_length=64, seed=SEED
    )


def fresh_model(setup: Setup) -> tuple[Any, Any]:
    """A newly initialised model, the same for every call."""
    return tiny_causal_lm(seed=SEED, hidden_size=setup.hidden_size, layers=setup.layers)


def shards(setup: Setup, seed: int) -> Shards:
    """Each worker's own shard for data seed `seed`: the same generator, a seed per worker."""
    return [
        records(setup.shard_size, 1_000 + WORKERS * seed + w, setup.draw_share)
        for w in range(WORKERS)
    ]


def warm_start(setup: Setup) -> Params:
    """The checkpoint every run starts from: `pretrain_steps` steps of one model at
    `pretrain_lr` on records no shard holds."""
    init = trainable_params(fresh_model(setup)[0])
    if not setup.pretrain_steps:
        return init
    steps, lr = setup.pretrain_steps, setup.pretrain_lr
    pretraining = records(steps * setup.batch_size, 2_000, setup.draw_share)  # a single model
    pretrain = replace(setup, steps=steps, learning_rate=lr, schedule="constant")
    (params,), _ = train(pretrain, init, [], [[pretraining]])
    return params


@dataclass
class DilocoRun:
    """One DiLoCo run: its node's state and its workers, rows `first`.. of the stack."""

    h: int  # inner steps per round
    encoding: Encoding  # what pseudo-gradients and updates travel as
    seed: int  # the data seed it trains on
    first: int  # its first worker's row; the others follow
    global_params: Params  # the node's model
    uplinks: list[ErrorFeedback]  # kept on each worker
    downlink: ErrorFeedback  # kept on the node
    state: OuterState = field(default_factory=OuterState)
    sent: int = 0  # bytes its workers and node sent, scales included


def outer_round(setup: Setup, run: DilocoRun, stack: Params) -> None:
    """The end of `run`'s round: encode, outer step, decode, and restart its workers' rows."""
    workers = len(run.uplinks)
    rows = range(run.first, run.first + workers)
    g = run.global_params
    received = []  # each worker's parameters as the node decodes them
    for w, row in enumerate(rows):
        encoded = run.uplinks[w].encode(pseudo_gradient(g, {n: t[row] for n, t in stack.items()}))
        run.sent += sum(payload_bytes(e) for e in encoded.values())
        received.append({n: g[n] - decode(e) for n, e in encoded.items()})
    new, run.state = outer_step(
        g,
        received,
        [run.h * setup.batch_size] * workers,  # records each trained on: equal
        run.state,
        lr=setup.outer_lr,
        momentum=setup.outer_momentum,
        nesterov=True,
        aggregator=make_aggregator("mean"),
    )
    update = run.downlink.encode({n: new[n] - g[n] for n in g})
    run.sent += workers * sum(payload_bytes(e) for e in update.values())
    run.global_params = {n: g[n] + decode(e) for n, e in update.items()}
    with torch.no_grad():  # every worker starts the next round from the node's model
        for n, t in stack.items():
            t[run.first : run.first + workers] = run.global_params[n]


def clip_rows(stack: Params, max_norm: float) -> None:
    """clip_grad_norm_ for each row's model on its own: its gradient's norm at most `max_norm`."""
    grads = [t.grad for t in stack.values() if t.grad is not None]
    rows = grads[0].shape[0]
    norms = torch.stack([g.reshape(rows, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # (rows,), as clip_grad_norm_ computes it
    for g in grads:
        g.mul_(scale.view(rows, *[1] * (g.dim() - 1)))


def train(
    setup: Setup, init: Params, runs: list[tuple[int, Encoding]], data: list[Shards]
) -> tuple[list[Params], list[DilocoRun]]:
    """For each data seed's shards, the sync model and the DiLoCo `runs` (H, encoding), trained
    together from `init` for `setup.steps` steps: one forward and backward a step.

    Rows of the stack, per seed: the sync model, then each run's workers (one per shard). The
    sync row stands in the forward once per shard, so its gradient is the mean of the workers'
    (an all-reduce); each worker row sees its own shard's batch.
    """
    hp = hyperparameters(setup)
    model, tokenizer = fresh_model(setup)
    check_config(model.config)
    seeds, workers = len(data), len(data[0])
    orders = [  # each worker's order through its shard, the same in every run
        [shard_order(len(shard), SEED + workers * s + w) for w, shard in enumerate(data[s])]
        for s in range(seeds)
    ]
    sync_rows: list[int] = []
    diloco: list[DilocoRun] = []
    row_of: list[int] = []  # a model of the forward -> its row in the stack
    weight: list[float] = []  # a model's share of the objective
    for s in range(seeds):
        sync_rows.append(len(sync_rows) + len(diloco) * workers)
        row_of += [sync_rows[-1]] * workers
        weight += [1 / workers] * workers
        for h, encoding in runs:
            first = row_of[-1] + 1
            feedback = [ErrorFeedback(encoding) for _ in range(workers)]
            diloco.append(
                DilocoRun(h, encoding, s, first, dict(init), feedback, ErrorFeedback(encoding))
            )
            row_of += range(first, first + workers)
            weight += [1.0] * workers
    stack = {n: t.unsqueeze(0).repeat(row_of[-1] + 1, *[1] * t.dim()) for n, t in init.items()}
    for t in stack.values():
        t.requires_grad_(True)
    optimizer = torch.optim.AdamW(stack.values(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    index, weights = torch.tensor(row_of), torch.tensor(weight)
    # a model of the forward -> its batch: its seed's, its worker's (models come seed by seed)
    batch_of = torch.tensor(
        [
            s * workers + w
            for s in range(seeds)
            for _ in range(1 + len(runs))
            for w in range(workers)
        ]
    )
    for step in range(setup.steps):  # the rate inner_train gives the job's step `step`
        rate = inner.learning_rate_at(
            step, setup.steps, hp.learning_rate, hp.warmup_ratio, setup.schedule
        )
        for group in optimizer.param_groups:
            group["lr"] = rate
        drawn = [
            data[s][w][next(orders[s][w])]
            for s in range(seeds)
            for w in range(workers)
            for _ in range(setup.batch_size)
        ]
        inputs = instruction_batch(tokenizer, drawn, hp.max_length)  # (S*W*B, T)
        ids = inputs["input_ids"].view(seeds * workers, setup.batch_size, -1)[batch_of]
        labels = inputs["labels"].view(seeds * workers, setup.batch_size, -1)[batch_of]
        losses = group_losses({n: t[index] for n, t in stack.items()}, ids, labels, model.config)
        optimizer.zero_grad(set_to_none=True)
        (losses * weights).sum().backward()
        clip_rows(stack, MAX_GRAD_NORM)
        optimizer.step()
        for run in diloco:
            if (step + 1) % run.h == 0:
                outer_round(setup, run, stack)
    sync = [{n: t[row].detach().clone() for n, t in stack.items()} for row in sync_rows]
    return sync, diloco


def held_out(setup: Setup) -> list[dict[str, str]]:
    """The evaluation records: the same generator, a seed no shard or warm start uses."""
    return records(EVAL_RECORDS, 999, setup.draw_share)


def held_out_loss(setup: Setup, params: Params) -> float:
    """`evaluate`'s sft loss of `params` on records no shard or warm start holds."""
    model, tokenizer = fresh_model(setup)
    load_params(model, params)
    loss = evaluate("sft", model, tokenizer, held_out(setup), hyperparameters(setup), batch_size=64)
    return float(loss["loss"])


# --- figures -----------------------------------------------------------------------------------

# Each mode's regime; a flag overrides one setting. --quick: fewer steps, H=50, repeated over
# seeds; the default run: the same model on 16 rounds of H=500, on data with a loss floor.
MODES: dict[str, dict[str, Any]] = {
    "quick": dict(
        steps=400,  # T: 8 rounds of H=50
        lr=1e-3,  # sync's and the workers' AdamW rate: sync's best of 5e-4, 1e-3, 2e-3
        batch_size=8,  # records per worker step
        hidden_size=32,  # a 36k-parameter model
        layers=2,
        pretrain_steps=2000,  # the warm start: held-out loss 1.36 at 500 steps, 0.48 at 2000
        pretrain_lr=2e-3,
        hs="50",
        seeds=2,  # two data orders, for the spread
        draw_share=0.0,  # the three tasks only: the loss can reach 0
        schedule="constant",  # cosine (the paper's) ended DiLoCo further from sync: see above
    ),
}
MODES["full"] = MODES["quick"] | dict(
    steps=8000,  # T: 16 rounds of H=500
    hs="500",
    seeds=1,
    draw_share=0.5,  # half the records draw random letters: a loss floor, as text has
)


def figures(
    setup: Setup,
    hs: list[int],
    encodings: list[Encoding],
    warm_loss: float,
    sync_losses: list[float],
    runs: list[DilocoRun],
    losses: list[float],
    floor: float = 0.0,
) -> dict[str, Any]:
    """The ratios against sync (and against float32 DiLoCo): each seed's ratio, averaged over
    seeds, and with several seeds their spread (the largest minus the smallest)."""
    params = sum(t.numel() for t in trainable_params(fresh_model(setup)[0]).values())
    sync_bytes = 2 * params * 4 * WORKERS * setup.steps  # each worker sends and receives, float32
    out: dict[str, Any] = {
        "params": params,
        "workers": WORKERS,
        **{f"setup_{k}": v for k, v in asdict(setup).items()},
        "warm_start_loss": round(warm_loss, 4),
        "sync_loss": round(statistics.fmean(sync_losses), 4),
        "loss_floor": round(floor, 4),
        "sync_bytes": sync_bytes,
    }

    def over_seeds(name: str, values: list[float]) -> None:
        out[name] = round(statistics.fmean(values), 4)
        if len(values) > 1:
            out[f"{name}_spread"] = round(max(values) - min(values), 4)

    loss = {(r.h, r.encoding, r.seed): x for r, x in zip(runs, losses, strict=True)}
    sent = {(r.h, r.encoding): r.sent for r in runs}  # the same in every seed: sizes are fixed
    seeds = range(setup.seeds)
    for h in hs:
        for enc in encodings:
            over_seeds(f"loss_ratio_{enc}_h{h}", [loss[h, enc, s] / sync_losses[s] for s in seeds])
            out[f"comm_reduction_{enc}_h{h}"] = round(sync_bytes / sent[h, enc], 1)
            # the share of sync's gain over the warm start that DiLoCo made: 1 is parity
            gains = [(warm_loss - loss[h, enc, s]) / (warm_loss - sync_losses[s]) for s in seeds]
            over_seeds(f"gain_share_{enc}_h{h}", gains)
            if floor:  # the ratio of what each has left to learn above the floor
                excess = [(loss[h, enc, s] - floor) / (sync_losses[s] - floor) for s in seeds]
                over_seeds(f"excess_ratio_{enc}_h{h}", excess)
            if enc != "float32" and "float32" in encodings:
                against = [loss[h, enc, s] / loss[h, "float32", s] for s in seeds]
                over_seeds(f"loss_vs_float32_{enc}_h{h}", against)
        if "float32" in encodings:  # the figures as they were before encodings
            assert sent[h, "float32"] == 2 * params * 4 * WORKERS * (setup.steps // h)
            out |= {
                f"diloco_h{h}_loss": round(
                    statistics.fmean(loss[h, "float32", s] for s in seeds), 4
                ),
                f"diloco_h{h}_bytes": sent[h, "float32"],
                f"loss_ratio_h{h}": out[f"loss_ratio_float32_h{h}"],
                f"comm_reduction_h{h}": out[f"comm_reduction_float32_h{h}"],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small regime: a minute or two")
    parser.add_argument("--steps", type=int, help="T; a multiple of every H")
    parser.add_argument("--lr", type=float, help="inner / sync AdamW learning rate")
    parser.add_argument("--batch-size", type=int, help="records per worker step")
    parser.add_argument("--hidden-size", type=int)
    parser.add_argument("--layers", type=int)
    parser.add_argument("--pretrain-steps", type=int, help="steps of one model: the warm start")
    parser.add_argument("--pretrain-lr", type=float, help="the warm start's learning rate")
    parser.add_argument("--hs", help="DiLoCo's inner steps per round, comma-separated")
    parser.add_argument("--seeds", type=int, help="repeats with other data, for the spread")
    parser.add_argument("--draw-share", type=float, help="share of draw records: a loss floor")
    parser.add_argument("--schedule", choices=["constant", "cosine"], help="the rate after warmup")
    parser.add_argument("--outer-lr", type=float, default=0.7, help="DiLoCo outer learning rate")
    parser.add_argument("--outer-momentum", type=float, default=0.9, help="DiLoCo outer momentum")
    parser.add_argument("--encodings", default=",".join(ENCODINGS), help="outer, comma-separated")
    args = parser.parse_args()
    mode = MODES["quick" if args.quick else "full"]
    chosen = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in mode.items()}
    encodings = [cast(Encoding, e.strip()) for e in args.encodings.split(",") if e.strip()]
    if not encodings or any(e not in ENCODINGS for e in encodings):
        parser.error(f"--encodings: one or more of {', '.join(ENCODINGS)}; got {args.encodings}")
    hs = [int(h) for h in str(chosen["hs"]).split(",") if h.strip()]
    if not hs or any(h < 1 or chosen["steps"] % h for h in hs):
        parser.error(f"--steps ({chosen['steps']}) must be a multiple of every H; got {hs}")
    setup = Setup(
        steps=chosen["steps"],
        shard_size=chosen["steps"] * chosen["batch_size"],  # one pass over the shard in T steps
        learning_rate=chosen["lr"],
        batch_size=chosen["batch_size"],
        hidden_size=chosen["hidden_size"],
        layers=chosen["layers"],
        pretrain_steps=chosen["pretrain_steps"],
        pretrain_lr=chosen["pretrain_lr"],
        outer_lr=args.outer_lr,
        outer_momentum=args.outer_momentum,
        seeds=chosen["seeds"],
        draw_share=chosen["draw_share"],
        schedule=chosen["schedule"],
    )

    started = time.perf_counter()
    init = warm_start(setup)
    warmed = time.perf_counter()
    data = [shards(setup, s) for s in range(setup.seeds)]
    sync, runs = train(setup, init, [(h, e) for h in hs for e in encodings], data)
    trained = time.perf_counter()
    sync_losses = [held_out_loss(setup, p) for p in sync]
    losses = [held_out_loss(setup, r.global_params) for r in runs]
    warm_loss = held_out_loss(setup, init)
    for s, sync_loss in enumerate(sync_losses):  # each seed's losses, before the averages
        theirs = [
            f"{r.encoding} h{r.h} {x:.4f}" for r, x in zip(runs, losses, strict=True) if r.seed == s
        ]
        print(f"seed {s}: sync {sync_loss:.4f}; {', '.join(theirs)}", file=sys.stderr)
    floor = loss_floor(fresh_model(setup)[1], held_out(setup))
    out = figures(setup, hs, encodings, warm_loss, sync_losses, runs, losses, floor)
    out |= {
        "warm_start_seconds": round(warmed - started, 2),
        "train_seconds": round(trained - warmed, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
    }
    for key, value in out.items():
        print(f"{key:>32}: {value}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
