"""bench/diloco.py trains every model of a run in one forward: its stacked forward is the tiny
Llama's, its DiLoCo round is inner_train's steps then outer_step, its sync model is data-parallel
AdamW (at a constant or a cosine rate), and its smallest run prints finite, positive ratios under
the names the issue asks for."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from cairn.core.diloco import OuterState, outer_step
from cairn.train.batches import instruction_batch
from cairn.train.inner import MAX_GRAD_NORM, inner_train, load_params, trainable_params
from cairn.train.methods.sft import response_loss

BENCH = Path(__file__).resolve().parents[2] / "bench" / "diloco.py"


def load_bench() -> ModuleType:
    """bench/diloco.py as a module: bench/ is a folder of scripts, not a package."""
    spec = importlib.util.spec_from_file_location("bench_diloco", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = load_bench()
SETUP = bench.Setup(
    steps=6, shard_size=12, learning_rate=3e-3, batch_size=2, hidden_size=16, layers=2,
    pretrain_steps=0, pretrain_lr=3e-3, seeds=1,
)  # fmt: skip


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=2e-5, rtol=1e-4, msg=name)


def test_the_stacked_forward_is_the_llama_forward_of_each_model() -> None:
    model, tokenizer = bench.fresh_model(SETUP)
    base = trainable_params(model)
    stacked = {  # three different models: the base, and two perturbed copies
        n: torch.stack([t, t + 0.05 * torch.randn_like(t), t * 0.9]) for n, t in base.items()
    }
    batch = instruction_batch(tokenizer, bench.records(9, 5), 64)
    ids, labels = batch["input_ids"].view(3, 3, -1), batch["labels"].view(3, 3, -1)

    losses = bench.group_losses(stacked, ids, labels, model.config)

    for g in range(3):
        load_params(model, {n: t[g] for n, t in stacked.items()})
        mask = batch["attention_mask"].view(3, 3, -1)[g]
        logits = model(input_ids=ids[g], attention_mask=mask).logits
        torch.testing.assert_close(losses[g], response_loss(logits, labels[g]))


def test_a_diloco_round_is_inner_train_on_each_worker_then_the_outer_step() -> None:
    init = trainable_params(bench.fresh_model(SETUP)[0])

    _, (run,) = bench.train(SETUP, init, [(SETUP.steps, "float32")], [bench.shards(SETUP, 0)])

    model, tokenizer = bench.fresh_model(SETUP)
    ends = []
    for w, shard in enumerate(bench.shards(SETUP, 0)):
        load_params(model, init)
        hp = bench.hyperparameters(SETUP)
        ends.append(inner_train("sft", model, tokenizer, shard, hp, steps=6, seed=w).params)
    expected, _ = outer_step(init, ends, [1.0] * bench.WORKERS, OuterState(), lr=0.7)
    close(run.global_params, expected)
    assert run.state.step == 1
    assert run.sent == 2 * bench.WORKERS * 4 * sum(t.numel() for t in init.values())


# the rate of each of SETUP's 6 steps: warmup is ceil(0.03 * 6) = 1 step, then constant or a
# cosine over the 5 steps left, down to a tenth of the peak (inner_train's learning_rate_at)
COSINE = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 5)) for k in range(6)]
SCHEDULES = {"constant": [1.0] * 6, "cosine": COSINE}


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_the_sync_model_steps_on_the_mean_of_the_workers_gradients(schedule: str) -> None:
    setup = bench.replace(SETUP, schedule=schedule)
    init = trainable_params(bench.fresh_model(setup)[0])

    (sync,), _ = bench.train(setup, init, [], [bench.shards(setup, 0)])

    model, tokenizer = bench.fresh_model(setup)
    load_params(model, init)
    hp = bench.hyperparameters(setup)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate, weight_decay=0.0)
    orders = [bench.shard_order(setup.shard_size, w) for w in range(bench.WORKERS)]
    shards = bench.shards(setup, 0)
    for share in SCHEDULES[schedule]:
        for group in optimizer.param_groups:
            group["lr"] = hp.learning_rate * share
        optimizer.zero_grad()
        for shard, order in zip(shards, orders, strict=True):
            inputs = instruction_batch(tokenizer, [shard[next(order)] for _ in range(2)], 64)
            logits = model(input_ids=inputs["input_ids"]).logits
            (response_loss(logits, inputs["labels"]) / bench.WORKERS).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
    close(sync, trainable_params(model))


def test_the_smallest_run_prints_every_figure_as_a_finite_positive_ratio(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = "--steps 4 --hs 2,4 --lr 3e-3 --batch-size 2 --hidden-size 16 --layers 1 --seeds 2"
    floor = ["--draw-share", "0.5"]  # random responses: the excess ratios over the floor too
    monkeypatch.setattr(sys, "argv", ["diloco.py", *argv.split(), "--pretrain-steps", "2", *floor])
    monkeypatch.setattr(bench, "EVAL_RECORDS", 32)

    bench.main()

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for h in (2, 4):
        for enc in ("float32", "int8", "int4"):
            for key in (
                f"loss_ratio_{enc}_h{h}",
                f"comm_reduction_{enc}_h{h}",
                f"excess_ratio_{enc}_h{h}",
            ):
                assert math.isfinite(figures[key]) and figures[key] > 0, key
        assert figures[f"comm_reduction_float32_h{h}"] == h  # float32 both ways, once a round
        assert 3.5 * h < figures[f"comm_reduction_int8_h{h}"] < 4 * h  # scales cost a little
        assert 6.5 * h < figures[f"comm_reduction_int4_h{h}"] < 8 * h
        assert figures[f"loss_vs_float32_int4_h{h}"] > 0
        assert figures[f"loss_ratio_int4_h{h}_spread"] >= 0  # two seeds: their spread
    assert figures["sync_loss"] > figures["loss_floor"] > 0


def test_the_warm_start_is_inner_train_of_one_model_on_its_own_records() -> None:
    setup = bench.replace(SETUP, pretrain_steps=5)

    warm = bench.warm_start(setup)

    model, tokenizer = bench.fresh_model(setup)
    hp = bench.hyperparameters(bench.replace(setup, learning_rate=setup.pretrain_lr))
    data = bench.records(5 * setup.batch_size, 2_000)
    close(warm, inner_train("sft", model, tokenizer, data, hp, steps=5, seed=0).params)


def test_the_loss_floor_is_the_drawn_letters_entropy_over_all_response_tokens() -> None:
    tokenizer = bench.fresh_model(SETUP)[1]
    draw = {"prompt": "draw aab", "response": "a" * bench.DRAWN}  # a: 2/3, b: 1/3
    entropy = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    sort = {"prompt": "sort ba", "response": "ab"}  # 2 letters, then the end of the turn

    floor = bench.loss_floor(tokenizer, [draw, sort])

    assert floor == pytest.approx(bench.DRAWN * entropy / (bench.DRAWN + 2 + 2 + 2))
    assert bench.loss_floor(tokenizer, bench.records(64, 1)) == 0  # no draw records by default
