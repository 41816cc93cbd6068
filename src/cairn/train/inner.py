"""A worker's inner loop: H optimizer steps on its shard, the same loop for every method.

One DiLoCo round on a worker: load the global parameters, run `inner_train` for H steps, send
back `InnerResult.params` (for LoRA only the adapter, and for a LoRA classifier its head too),
which `cairn.core.diloco.outer_step` turns into a pseudo-gradient. What differs between methods
(the loss of a batch, the records a step draws, the optimizer's settings, evaluation) is each
method's plug-in in `cairn.train.methods`; this module is the loop they share.

Every method uses AdamW with the recipe's learning rate, linear warmup over
`warmup_ratio * total_steps` (counted across rounds via `start_step`) then a constant rate
(`learning_rate_at`, which bench/diloco.py's `--schedule cosine` also steps on),
gradient clipping at norm 1, and exactly `steps` optimizer steps cycling through the shard in
an order drawn from `seed`. Same inputs and seed, same parameters, bit for bit, on the CPU.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from cairn.core.errors import InvalidInput
from cairn.core.recipe import Hyperparameters
from cairn.train.adapters import add_lora
from cairn.train.batches import Records
from cairn.train.methods import AdamW, Run, StepLoss, Trainable, training_method

MAX_GRAD_NORM = 1.0
MIN_LR_RATIO = 0.1  # a cosine schedule ends at this share of the peak rate
LrSchedule = Literal["constant", "cosine"]


@dataclass
class InnerResult:
    """What a worker sends back after its inner steps."""

    params: dict[str, torch.Tensor]  # the trainable parameters after the steps (LoRA: adapter)
    samples: int  # records trained on, repeats counted: the weight of this update
    steps: int  # optimizer steps taken
    loss: float  # mean training loss over the steps
    metrics: dict[str, float] = field(default_factory=dict)  # loss_first, loss_last, reward...
    optimizer_state: dict[str, Any] | None = None  # AdamW state to hand to the next round


# --- parameters --------------------------------------------------------------------------------


def trainable_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter that trains: what a round exchanges."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_params(model: torch.nn.Module, params: Mapping[str, torch.Tensor]) -> None:
    """Copy `params` (as `trainable_params` names them) into `model`; names and shapes must fit."""
    own = dict(model.named_parameters())
    for name, value in params.items():
        if name not in own:
            raise InvalidInput(f"parameter {name!r} is not in the model")
        if own[name].shape != value.shape:
            raise InvalidInput(
                f"parameter {name!r}: shape {tuple(value.shape)} does not fit the model's "
                f"{tuple(own[name].shape)}"
            )
    with torch.no_grad():
        for name, value in params.items():
            own[name].copy_(value)


def default_trainable(method: str, hparams: Hyperparameters) -> Trainable:
    """What `method` trains by default: LoRA adapters for lora (and classify with use_lora)."""
    return "lora" if training_method(method).trains_lora(hparams) else "all"


def learning_rate_at(
    step: int,
    total_steps: int,
    peak: float,
    warmup_ratio: float,
    schedule: LrSchedule = "constant",
    min_ratio: float = MIN_LR_RATIO,
) -> float:
    """The rate of the job's step `step` (0-based, counted across rounds) of `total_steps`.

    Linear warmup over ceil(warmup_ratio * total_steps) steps from peak/warmup (never a wasted
    step at rate 0), then "constant": `peak`; "cosine": from `peak` down to `min_ratio * peak`
    at the job's last step, half a cosine over the steps after warmup (the DiLoCo paper's
    schedule, for its baseline and its inner steps alike). Steps past the job stay at the end.
    """
    warmup = math.ceil(warmup_ratio * total_steps)
    if step < warmup:
        return peak * min(1.0, (step + 1) / warmup)
    if schedule == "constant":
        return peak
    progress = min(1.0, (step + 1 - warmup) / max(1, total_steps - warmup))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _shard_order(n: int, seed: int) -> Iterator[int]:
    """Record indices forever: a fresh seeded permutation of the shard each pass."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield from order


# --- the inner loop ----------------------------------------------------------------------------


def inner_train(
    method: str,
    model: Any,
    tokenizer: Any,
    records: Records,
    hparams: Hyperparameters,
    *,
    steps: int,  # H: optimizer steps to take
    seed: int,  # fixes shard order, dropout and sampling: the round's replay seed
    trainable: Trainable | None = None,  # None: "lora" for lora (and classify use_lora), else all
    teacher: Any = None,  # distill: the teacher model (same tokenizer)
    reference: Any = None,  # grpo: the KL reference; None = the model as handed in
    labels: Sequence[str] | None = None,  # classify: the dataset's labels, in the head's order
    start_step: int = 0,  # optimizer steps this job took before, for the warmup schedule
    total_steps: int | None = None,  # the job's steps per worker (rounds * H); None = `steps`
    optimizer_state: dict[str, Any] | None = None,  # this worker's AdamW state from its last round
) -> InnerResult:
    """Run `steps` optimizer steps of `method` on one worker's shard and return its parameters.

    `model` trains in place. With trainable="lora" a plain model is wrapped by `add_lora`
    (in place); pass the returned PeftModel (from `add_lora`) in later rounds. Raises
    `InvalidInput` for an empty shard, a record without the method's fields, a label outside
    `labels`, hyperparameters of another method, or a missing teacher.
    """
    plugin = training_method(method)
    plugin.check_inputs(records, hparams, labels)
    if not isinstance(steps, int) or steps < 1:
        raise InvalidInput(f"{method}: steps must be a positive integer; got {steps!r}")
    chosen = trainable or default_trainable(method, hparams)
    if chosen not in ("all", "lora"):
        raise InvalidInput(f"trainable must be 'all' or 'lora'; got {chosen!r}")
    plugin.check_training(Run(model, tokenizer, labels, teacher, reference), chosen)

    if chosen == "lora":
        model = add_lora(model, plugin.lora(hparams), seed)
    else:
        for p in model.parameters():
            p.requires_grad_(True)

    per_step = plugin.records_per_step(hparams)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        step_loss = plugin.step_loss(Run(model, tokenizer, labels, teacher, reference), hparams)
        losses, metrics, opt_state = _optimize(
            model,
            step_loss,
            records,
            plugin.optimizer(hparams),
            per_step,
            steps,
            seed,
            start_step,
            total_steps or steps,
            optimizer_state,
        )
    return InnerResult(
        params=trainable_params(model),
        samples=steps * per_step,
        steps=steps,
        loss=sum(losses) / len(losses),
        metrics={"loss_first": losses[0], "loss_last": losses[-1], **metrics},
        optimizer_state=opt_state,
    )


def _optimize(
    model: Any,
    step_loss: StepLoss,
    records: Records,
    adamw: AdamW,
    per_step: int,
    steps: int,
    seed: int,
    start_step: int,
    total_steps: int,
    optimizer_state: dict[str, Any] | None = None,
) -> tuple[list[float], dict[str, float], dict[str, Any]]:
    """AdamW for `steps` steps over batches drawn in a seeded order; the loss of each step.

    DiLoCo keeps each worker's inner optimizer across rounds: pass the state the last round
    returned and the moment estimates carry on instead of restarting from zero.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    lr = adamw.learning_rate
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=adamw.weight_decay)
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError) as exc:
            raise InvalidInput(f"the optimizer state does not fit this model: {exc}") from None
        for p in params:  # AdamW matches parameters by position, not by shape: check it here
            moment = optimizer.state.get(p, {}).get("exp_avg")
            if moment is not None and moment.shape != p.shape:
                raise InvalidInput(
                    f"the optimizer state does not fit this model: a moment of shape "
                    f"{tuple(moment.shape)} for a parameter of shape {tuple(p.shape)}"
                )
    order = _shard_order(len(records), seed)
    losses: list[float] = []
    rewards: list[float] = []
    was_training = model.training
    model.train()
    try:
        for i in range(steps):
            rate = learning_rate_at(start_step + i, total_steps, lr, adamw.warmup_ratio)
            for group in optimizer.param_groups:
                group["lr"] = rate
            batch = [records[next(order)] for _ in range(per_step)]
            loss, metrics = step_loss(batch)
            if not torch.isfinite(loss):
                raise InvalidInput(f"step {i}: the loss is not finite ({loss.item()})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            losses.append(float(loss.item()))
            if "reward" in metrics:
                rewards.append(metrics["reward"])
    finally:
        model.train(was_training)
    extra: dict[str, float] = {"lr": rate}
    if rewards:
        extra |= {
            "reward": sum(rewards) / len(rewards),
            "reward_first": rewards[0],
            "reward_last": rewards[-1],
        }
    return losses, extra, optimizer.state_dict()


# --- evaluation --------------------------------------------------------------------------------


def evaluate(
    method: str,
    model: Any,
    tokenizer: Any,
    records: Records,
    hparams: Hyperparameters,
    *,
    labels: Sequence[str] | None = None,  # classify: the dataset's labels, in the head's order
    batch_size: int = 16,
) -> dict[str, float]:
    """Held-out metrics of `model` for `method`.

    sft, lora, distill: `loss` (response-token cross-entropy) and `perplexity`; classify:
    `accuracy`, macro `f1` and `loss`; grpo: mean `reward` and `accuracy` of greedy completions
    (accuracy by numeric_answer when the recipe rewards it, else exact_answer).
    """
    plugin = training_method(method)
    plugin.check_inputs(records, hparams, labels)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return plugin.evaluate(Run(model, tokenizer, labels), hparams, records, batch_size)
    finally:
        model.train(was_training)
