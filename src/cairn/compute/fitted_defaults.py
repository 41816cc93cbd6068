"""Defaults that make a builder's job finish in minutes on this node's providers.

`fit_defaults` picks the workers, rounds, inner steps and batch size a builder left alone so
that the job finishes within TARGET_SECONDS under the node's conditions (its pace, records and
providers online, as `cairn.compute.pace.estimate_time` counts them), and raises the time limits
left alone to cover the estimate TIME_MARGIN times; what a builder typed is kept. Pure: no I/O.
"""

from __future__ import annotations

import annotated_types as at
from pydantic import BaseModel

from cairn.compute.pace import JOB_START_SECONDS, TIME_MARGIN, RunConditions, estimate_time
from cairn.core.recipe import Budget, Distributed, Recipe

TARGET_SECONDS = 300  # a default job on the builder should finish in about 5 minutes

# The settings a builder's default job may have chosen for it, by recipe location.
FITTED_FIELDS = (
    "distributed.workers",
    "distributed.rounds",
    "distributed.inner_steps",
    "hyperparameters.batch_size",
    "distributed.round_timeout_s",
    "budget.max_seconds",
)
MIN_ROUNDS = 3  # a fitted job still shows a curve of rounds and takes outer steps
MIN_INNER_STEPS = 10  # and each round's update carries some local training
MIN_BATCH = 2  # records a step (GRPO: one prompt's completions)


def fit_defaults(
    recipe: Recipe,
    free: frozenset[str],
    conditions: RunConditions,
    target: float = TARGET_SECONDS,
) -> dict[str, int]:
    """New values for the `free` settings (of FITTED_FIELDS) that make `recipe`'s job finish
    within `target` seconds under `conditions`, and its time limits cover it TIME_MARGIN times.

    As many workers as providers are online, when fewer are than the recipe asks for (so that
    no round waits for the missing); then fewer rounds (down to MIN_ROUNDS), each with as many
    inner steps as fit (at least MIN_INNER_STEPS), then smaller batches (halved, down to
    MIN_BATCH); the recipe's own values are the most taken. If nothing reaches MIN_INNER_STEPS,
    the most samples that fit; if nothing fits, the quickest job. Settings not in `free` are
    kept; only changed values come back.
    """
    given, online, dist = recipe, conditions.online, recipe.distributed
    if "distributed.workers" in free and online and dist.min_workers <= online < dist.workers:
        dist = dist.model_copy(update={"workers": online})
        recipe = recipe.model_copy(update={"distributed": dist})
    rounds_free = "distributed.rounds" in free
    steps_free = "distributed.inner_steps" in free
    batches = _batches(recipe) if "hyperparameters.batch_size" in free else [None]
    lowest = min(MIN_ROUNDS, dist.rounds)
    rounds_tried = list(range(dist.rounds, lowest - 1, -1)) if rounds_free else [dist.rounds]
    fitting: list[Recipe] = []
    for batch in batches:
        for rounds in rounds_tried:
            candidate = _candidate(recipe, batch, rounds, dist.inner_steps)
            if steps_free:
                time = estimate_time(candidate, conditions)
                per_round = (target - JOB_START_SECONDS) / rounds
                spare = per_round - (time.round_seconds - time.round_compute)
                steps = min(dist.inner_steps, int(spare // time.step_seconds))
                if steps < 1:
                    continue
                candidate = _candidate(recipe, batch, rounds, steps)
            if estimate_time(candidate, conditions).seconds > target:
                continue
            if candidate.distributed.inner_steps >= min(MIN_INNER_STEPS, dist.inner_steps):
                return _changes(given, _covered(candidate, free, conditions))
            fitting.append(candidate)
    if fitting:  # none with MIN_INNER_STEPS: the most samples that fit
        best = max(fitting, key=lambda c: (_samples(c), c.distributed.rounds))
        return _changes(given, _covered(best, free, conditions))
    quickest = _candidate(
        recipe, batches[-1], rounds_tried[-1], 1 if steps_free else dist.inner_steps
    )
    return _changes(given, _covered(quickest, free, conditions))


def _samples(recipe: Recipe) -> int:
    """Records one worker trains in the whole job."""
    dist = recipe.distributed
    return dist.rounds * dist.inner_steps * recipe.hyperparameters.step_shape().records


def _batches(recipe: Recipe) -> list[int | None]:
    """Batch sizes to try, the recipe's first, halved down to MIN_BATCH (GRPO: whole prompts)."""
    shape = recipe.hyperparameters.step_shape()
    unit = shape.generations  # GRPO: a prompt's completions share a batch
    prompts = shape.records
    out: list[int | None] = [prompts * unit]
    while prompts > 1 and (prompts // 2) * unit >= MIN_BATCH:
        prompts //= 2
        out.append(prompts * unit)
    return out


def _candidate(recipe: Recipe, batch: int | None, rounds: int, steps: int) -> Recipe:
    """`recipe` with these settings (batch None: the recipe's own)."""
    hp = recipe.hyperparameters
    if batch is not None:
        hp = hp.model_copy(update={"batch_size": batch})
    dist = recipe.distributed.model_copy(update={"rounds": rounds, "inner_steps": steps})
    return recipe.model_copy(update={"hyperparameters": hp, "distributed": dist})


def _covered(recipe: Recipe, free: frozenset[str], conditions: RunConditions) -> Recipe:
    """`recipe` with its free time limits raised to cover its estimate TIME_MARGIN times."""
    time = estimate_time(recipe, conditions)
    dist, budget = recipe.distributed, recipe.budget
    if "distributed.round_timeout_s" in free:
        need = _whole_minutes(TIME_MARGIN * (time.round_compute + time.pace.round_overhead))
        if need > dist.round_timeout_s:
            top = _upper(Distributed, "round_timeout_s")
            dist = dist.model_copy(update={"round_timeout_s": min(need, top)})
    if "budget.max_seconds" in free:
        need = _whole_minutes(TIME_MARGIN * time.seconds)
        if need > budget.max_seconds:
            budget = budget.model_copy(
                update={"max_seconds": min(need, _upper(Budget, "max_seconds"))}
            )
    return recipe.model_copy(update={"distributed": dist, "budget": budget})


def _upper(model: type[BaseModel], name: str) -> int:
    """The inclusive upper bound the recipe model sets on field `name`."""
    (bound,) = [m.le for m in model.model_fields[name].metadata if isinstance(m, at.Le)]
    assert isinstance(bound, int), f"{model.__name__}.{name}: an int bound"
    return bound


def _whole_minutes(seconds: float) -> int:
    return int(-(-seconds // 60) * 60)


def _changes(recipe: Recipe, fitted: Recipe) -> dict[str, int]:
    """The FITTED_FIELDS whose value differs between `recipe` and `fitted`."""
    out = {}
    for path in FITTED_FIELDS:
        section, name = path.split(".")
        old = getattr(getattr(recipe, section), name)
        new = getattr(getattr(fitted, section), name)
        if new != old:
            out[path] = int(new)
    return out
