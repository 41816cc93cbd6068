"""Verified training against cheating providers: screens, a sampled replay, and what it costs.

Each job is a DiLoCo run of a tiny Llama (`cairn.train.tiny`) on toy instruction records, with
four workers that train their own shard with `inner_train` and keep their AdamW state across
rounds, as providers do, each signing nothing but reporting as a v2 work report would (the
digests of the start weights, the hyperparameters, the optimizer state it resumed and the weights
it returned). Worker `w1` is, in turn, each adversary, in every round:

- `lazy_steps`: trains a quarter of the steps it reports;
- `lazy_start`: returns the weights it was sent;
- `noisy`: adds Gaussian noise of 10 % of its update's length;
- `copier`: returns worker w0's weights of the same round;
- `stale`: sends its update of the round before again (round 1 honestly);
- `scaled`: sends five times its update; `flipped`: sends its update negated.

The coordinator screens each round (`cairn.verify.screens`), takes the outer step, and after the
last round draws the worker-rounds to replay from the reports (`cairn.verify.sampling`: up to
two flagged rounds of each worker, then one round of each at random; a worker's replays stop at
its first failure). Each chosen worker-round is trained again
from the checkpoint the round started from and the optimizer state the worker revealed, and its
weights compared with the returned ones (`cairn.verify.replay`). Workers train on one thread and
the replays on `CAIRN_REPLAY_THREADS` (1 unless set; two threads on a loaded two-core machine
are slower than one, and tests/verify checks that the thread count moves no bit).

Figures (the last line is one JSON object):
- `detection_rate_<adversary>`: share of jobs in which the adversary's replay failed; the
  overall `detection_rate` over every adversary's jobs (goal at least 0.99);
- `screen_rate_<adversary>`: share of jobs in which a screen flagged it (screens alone are not
  evidence);
- `false_positive_rate`: failed replays of honest workers over honest worker-jobs (goal 0);
- `verify_overhead`: replay compute over training compute in the honest jobs (goal at most
  0.10), and `verify_overhead_adversarial` in the adversaries' jobs (flagged rounds are replayed
  on top of the random ones), each the number of replays (of rounds) times its median duration,
  with the spread over jobs. One replay costs about 1.07 training rounds here (the digests and
  the checks of its inputs), so one round per worker in R rounds costs about 1.07 / R: 0.089 at
  the bench's R = 12, 0.107 at R = 10;
- `honest_replays_exact`: share of honest replays equal bit for bit;
- then verified inference's figures (`inference_detection_rate`, `inference_false_positive_rate`,
  `commitment_bytes_per_32_tokens`, `validator_overhead`, ...): bench/verify_inference.py says
  how they are measured.

    python bench/verify.py --quick   # 2 jobs per case, 12 rounds of 4 steps: about 2 minutes
    python bench/verify.py           # 5 jobs per case, 12 rounds of 10 steps, a larger model
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: the machine is shared

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import verify_inference

from cairn.compute.reports import WorkReport, json_digest, params_digest, state_digest
from cairn.core.diloco import OuterState, outer_step
from cairn.core.recipe import SftHyperparameters
from cairn.train.inner import inner_train, load_params, trainable_params
from cairn.train.tiny import tiny_causal_lm
from cairn.verify.replay import RoundInputs, _copy_state, verify_round
from cairn.verify.sampling import choose_rounds, sample_seed
from cairn.verify.screens import screen_round, update_vector

WORKERS = 4
REPLAY_THREADS = int(os.environ.get("CAIRN_REPLAY_THREADS", "1"))
ADVERSARY = "w1"
Params = dict[str, torch.Tensor]
ADVERSARIES = ("lazy_steps", "lazy_start", "noisy", "copier", "stale", "scaled", "flipped")


@dataclass
class Setup:
    rounds: int
    steps: int
    hidden: int
    layers: int
    records: list[dict[str, str]]
    hparams: dict[str, Any]


@dataclass
class JobResult:
    """One job's outcome for the bench."""

    failed: set[str] = field(default_factory=set)  # workers whose replay failed
    flagged: set[str] = field(default_factory=set)  # workers a screen flagged
    train_seconds: list[float] = field(default_factory=list)  # each worker-round's training
    replay_seconds: list[float] = field(default_factory=list)  # each replay, its checks included
    honest_replays: int = 0
    honest_exact: int = 0


def toy_records(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        out.append({"prompt": f"add {a}+{b}", "response": str(a + b)})
    return out


def cheat(
    kind: str | None,
    start: Params,
    honest: Callable[[int], Params],
    steps: int,
    others: dict[str, Params],
    last_update: Params | None,
    rng: torch.Generator,
) -> Params:
    """What worker w1 returns as `kind` (None: honest), given a way to train `steps` honestly."""
    if kind is None:
        return honest(steps)
    if kind == "lazy_steps":
        return honest(max(1, steps // 4))
    if kind == "lazy_start":
        return {k: v.clone() for k, v in start.items()}
    if kind == "copier":
        return {k: v.clone() for k, v in others["w0"].items()}
    if kind == "stale":
        if last_update is None:
            return honest(steps)
        return {k: start[k] + last_update[k] for k in start}
    trained = honest(steps)
    update = {k: trained[k] - start[k] for k in start}
    if kind == "scaled":
        return {k: start[k] + 5 * update[k] for k in start}
    if kind == "flipped":
        return {k: start[k] - update[k] for k in start}
    if kind == "noisy":
        length = float(update_vector(start, trained).norm())
        noise = {k: torch.randn(v.shape, generator=rng, dtype=v.dtype) for k, v in start.items()}
        scale = 0.1 * length / float(torch.cat([n.flatten() for n in noise.values()]).norm())
        return {k: trained[k] + scale * noise[k] for k in start}
    raise ValueError(kind)


def run_job(setup: Setup, kind: str | None, job_seed: int) -> JobResult:
    """One job with w1 playing `kind` (None: every worker honest)."""
    result = JobResult()
    hp = SftHyperparameters.model_validate(setup.hparams)
    job_id = f"bench-{kind or 'honest'}-{job_seed}"
    model, tokenizer = tiny_causal_lm(seed=job_seed, hidden_size=setup.hidden, layers=setup.layers)
    workers = [f"w{i}" for i in range(WORKERS)]
    models = {w: tiny_causal_lm(seed=job_seed, hidden_size=setup.hidden, layers=setup.layers)[0]
              for w in workers}  # fmt: skip
    global_params = trainable_params(model)
    outer = OuterState()
    states: dict[str, dict[str, Any] | None] = {w: None for w in workers}
    last: dict[str, Params] = {}
    checkpoints = {0: global_params}
    kept: dict[tuple[str, int], tuple[WorkReport, Params, dict[str, Any] | None]] = {}
    leaves: list[str] = []
    flagged_pairs: set[tuple[str, int]] = set()
    rng = torch.Generator().manual_seed(job_seed)
    total = setup.rounds * setup.steps
    for round_ in range(1, setup.rounds + 1):
        start = checkpoints[round_ - 1]
        returned: dict[str, Params] = {}
        for shard, w in enumerate(workers):
            seed = (job_seed * 1_000_003 + round_ * 1_009 + shard) % 2**31
            resumed = _copy_state(states[w])  # what it reveals if this round is drawn

            def honest(
                steps: int, w: str = w, shard: int = shard, seed: int = seed, round_: int = round_,
                start: Params = start,
            ) -> Params:  # fmt: skip
                load_params(models[w], start)
                began = time.perf_counter()
                out = inner_train(
                    "sft", models[w], tokenizer, setup.records[shard::WORKERS], hp,
                    steps=steps, seed=seed, start_step=(round_ - 1) * setup.steps,
                    total_steps=total, optimizer_state=states[w],
                )  # fmt: skip
                result.train_seconds.append(time.perf_counter() - began)
                states[w] = out.optimizer_state
                return out.params

            params = cheat(
                kind if w == ADVERSARY else None, start, honest, setup.steps, returned,
                last.get(w), rng,
            )  # fmt: skip
            returned[w] = params
            report = WorkReport(
                job_id=job_id, round=round_, account=w, node_id=shard, shard=shard,
                steps=setup.steps, samples=setup.steps * hp.batch_size, loss=0.0,
                params_digest=params_digest(params), compute_seconds=0.0,
                start_digest=params_digest(start), seed=seed, train_cid="bench",
                shards=WORKERS, hparams_digest=json_digest(setup.hparams),
                start_step=(round_ - 1) * setup.steps, total_steps=total,
                optimizer_digest=state_digest(resumed),
            )  # fmt: skip
            kept[(w, round_)] = (report, params, resumed)
            leaves.append(params_digest(params) + w)
        updates = {w: update_vector(start, returned[w]) for w in workers}
        previous = {w: update_vector(checkpoints[round_ - 2], last_params(w, kept, round_ - 1))
                    for w in workers if round_ > 1}  # fmt: skip
        for flag in screen_round(updates, previous):
            result.flagged.add(flag.worker)
            flagged_pairs.add((flag.worker, round_))
        for w in workers:
            last[w] = {k: returned[w][k] - start[k] for k in start}
        new, outer = outer_step(
            start, [returned[w] for w in workers], [1.0] * WORKERS, outer, lr=0.7, momentum=0.9
        )
        checkpoints[round_] = new

    chosen = choose_rounds(
        sample_seed(job_id, leaves),
        {w: list(range(1, setup.rounds + 1)) for w in workers},
        flagged=flagged_pairs,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(REPLAY_THREADS)
    try:
        for w, round_ in chosen:
            if w in result.failed:
                continue  # one failed replay is evidence enough
            report, params, resumed = kept[(w, round_)]
            inputs = RoundInputs(
                method="sft", hparams=setup.hparams, records=setup.records,
                start=checkpoints[round_ - 1], optimizer_state=resumed,
            )  # fmt: skip
            verdict = verify_round(model, tokenizer, report, inputs, params)
            result.replay_seconds.append(verdict.replay_seconds)
            if not verdict.ok:
                result.failed.add(w)
            if w != ADVERSARY or kind is None:
                result.honest_replays += 1
                result.honest_exact += int(verdict.exact)
    finally:
        torch.set_num_threads(threads)
    return result


def overhead_of(r: JobResult) -> float:
    """Replay compute over training compute: the count of each times its median duration (the
    machine is shared; a median is not moved by another process's burst as a sum is)."""
    train = len(r.train_seconds) * statistics.median(r.train_seconds)
    return len(r.replay_seconds) * statistics.median(r.replay_seconds) / train


def last_params(w: str, kept: dict[tuple[str, int], Any], round_: int) -> Params:
    return kept[(w, round_)][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 jobs per case, a small model")
    parser.add_argument("--jobs", type=int, help="jobs per case (default 2 quick, 5 full)")
    parser.add_argument("--training-only", action="store_true", help="skip verified inference")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quick = args.quick
    jobs = args.jobs or (2 if quick else 5)
    setup = Setup(
        rounds=12,
        steps=4 if quick else 10,
        hidden=32 if quick else 64,
        layers=2 if quick else 4,
        records=toy_records(256, 0),
        hparams={"learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.0},
    )
    cases: list[str | None] = [None, *ADVERSARIES]
    out: dict[str, Any] = {}
    honest_workers = honest_failed = 0
    exact = replays = 0
    overhead: dict[str, list[float]] = {"honest": [], "adversarial": []}
    caught: list[float] = []
    began = time.perf_counter()
    for kind in cases:
        detected = screened = 0
        for j in range(jobs):
            r = run_job(setup, kind, 1_000 + j)
            honest = [f"w{i}" for i in range(WORKERS) if kind is None or f"w{i}" != ADVERSARY]
            honest_workers += len(honest)
            honest_failed += len(r.failed & set(honest))
            exact += r.honest_exact
            replays += r.honest_replays
            overhead["honest" if kind is None else "adversarial"].append(overhead_of(r))
            if kind is not None:
                detected += ADVERSARY in r.failed
                screened += ADVERSARY in r.flagged
        if kind is not None:
            out[f"detection_rate_{kind}"] = detected / jobs
            out[f"screen_rate_{kind}"] = screened / jobs
            caught.append(detected / jobs)
        print(f"{kind or 'honest':>12}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    out["detection_rate"] = round(statistics.mean(caught), 4)
    out["false_positive_rate"] = honest_failed / honest_workers
    for name, values in overhead.items():
        key = "verify_overhead" if name == "honest" else "verify_overhead_adversarial"
        out[key] = round(statistics.mean(values), 4)
        out[f"{key}_spread"] = round(max(values) - min(values), 4)
    out["honest_replays_exact"] = round(exact / max(replays, 1), 4)
    out["jobs_per_case"] = jobs
    out["rounds"] = setup.rounds
    if not args.training_only:  # verified inference (bench/verify_inference.py)
        out.update(verify_inference.run(quick, 8 if quick else 12))
    for key, value in out.items():
        print(f"{key:>40}: {value}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
