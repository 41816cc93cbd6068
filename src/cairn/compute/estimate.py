"""What a training run will do and what its budget buys.

A DiLoCo run's size is fixed by its recipe: each of `workers` providers takes `inner_steps`
optimizer steps in each of `rounds` rounds, every step on `batch_size` records (GRPO: on
`batch_size / num_generations` prompts, each sampled `num_generations` times) of at most
`max_length` tokens. Providers are paid by samples trained: a finished job pays its whole budget
out of JobEscrow in proportion to each provider's samples, and a cancelled or failed job gives it
back. So the budget is what the run costs; the estimate says how much work that is and what each
unit of work is paid.

How long the run takes on a node's providers is `cairn.compute.pace`; the defaults that make a
builder's job finish in minutes are `cairn.compute.fitted_defaults`. ASSUMPTIONS, stated beside
every estimate, covers both. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.core.recipe import Recipe

# Stated beside every estimate, so a builder knows what the numbers stand on.
ASSUMPTIONS: tuple[str, ...] = (
    "Every worker the recipe asks for trains in every round; with fewer workers fewer samples "
    "are trained and each is paid more.",
    "Every sequence fills its token limit (max_length; for GRPO the prompt and completion "
    "limits), so the token counts are upper bounds.",
    "The run's length is rounds × inner steps per worker; epochs do not change it.",
    "A finished job pays its whole budget to the providers in proportion to the samples they "
    "trained; a cancelled or failed job returns the budget to you.",
    "GRPO's sampled completions and distillation's teacher passes are extra work on the same "
    "samples: they make each step slower, not the count larger.",
    "Time: workers train at once, so a round takes one worker's inner steps at one provider's "
    "pace, plus the round's own overhead. Without finished rounds on the base model here, one "
    "CPU provider's pace is assumed: 60 tokens a second for a causal LM (the builder's earlier "
    "default, LoRA on SmolLM2-135M, took 307 s a round on 2 CPU cores).",
    "Time counts a record's tokens from its size (about 3 bytes a token, plus the chat template) "
    "up to the token limit; a faster or busier provider changes it.",
)


@dataclass(frozen=True)
class RunEstimate:
    """The size of a run and what its budget pays per unit of work."""

    workers: int
    rounds: int
    steps_per_worker: int  # rounds * inner_steps
    worker_steps: int  # optimizer steps over all workers
    samples: int  # records trained on, the unit providers are paid by
    sequences: int  # token sequences through the model (GRPO: samples * num_generations)
    tokens_per_sequence: int
    tokens: int  # sequences * tokens_per_sequence: an upper bound
    generated_tokens: int  # GRPO: completion tokens sampled, an upper bound; else 0
    data_passes: float | None  # samples / training records, when the record count is known
    budget: int  # smallest units JobEscrow holds for the run
    per_worker: int  # budget / workers: each worker's pay when all train alike
    per_thousand_samples: int  # budget per 1,000 samples, smallest units
    per_million_tokens: int  # budget per 10^6 tokens (upper bound on tokens: a lower bound)
    max_seconds: int  # the recipe's wall-clock limit


def estimate_run(recipe: Recipe, records: int | None = None) -> RunEstimate:
    """The run `recipe` describes; `records` is the number of training records, if known."""
    hp = recipe.hyperparameters
    dist = recipe.distributed
    steps_per_worker = dist.rounds * dist.inner_steps
    worker_steps = dist.workers * steps_per_worker
    shape = hp.step_shape()
    per_step, generations = shape.records, shape.generations
    tokens_per_sequence, completion = shape.tokens_per_sequence, shape.completion_tokens
    samples = worker_steps * per_step
    sequences = samples * generations
    tokens = sequences * tokens_per_sequence
    budget = int(recipe.budget.max_tokens)
    return RunEstimate(
        workers=dist.workers,
        rounds=dist.rounds,
        steps_per_worker=steps_per_worker,
        worker_steps=worker_steps,
        samples=samples,
        sequences=sequences,
        tokens_per_sequence=tokens_per_sequence,
        tokens=tokens,
        generated_tokens=sequences * completion,
        data_passes=samples / records if records else None,
        budget=budget,
        per_worker=budget // dist.workers,
        per_thousand_samples=budget * 1000 // samples,
        per_million_tokens=budget * 1_000_000 // tokens,
        max_seconds=recipe.budget.max_seconds,
    )
