"""How long a training run takes on a node's providers: a provider's pace, and the time at it.

A round takes its slowest worker's compute plus the round's own overhead (sending the weights,
checking the replies, the outer step, the held-out evaluation, the checkpoint); workers train in
parallel, so a round's compute is one worker's: `inner_steps` steps of work at the pace of one
provider. Work is counted in token passes (`step_tokens`): the tokens of a step's sequences (a
typical record's tokens when the records are known, as batches are padded to their longest
sequence only; else the token limit), each weighed by what training it costs beside LoRA on the
same model, plus GRPO's sampled tokens. A whole job adds its start and finish to its rounds.

The pace is what a node's finished rounds show on the same base model (`measured_pace`;
`JobService.conditions` gathers them), or, with no history, one CPU provider's, measured
(`DEFAULT_PACE`). `estimate_time` says how long a recipe takes under those conditions and warns
of what will not fit its time limits or will wait for providers. What the run is in samples and
tokens, and what its budget pays, is `cairn.compute.estimate`; the defaults fitted to a target
time are `cairn.compute.fitted_defaults`. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.core.recipe import Recipe

TIME_MARGIN = 2.0  # a time limit should cover twice the estimate: a provider may be busy
JOB_START_SECONDS = 30.0
# ^ launch to the first round's start, the first round's model fetch and load, and finishing
# (model, payouts): 9 s + 8 s + 6 s = 23 s for the demo's one-round job on 2 cores, rounded up
ROUND_OVERHEAD_SECONDS = 10.0
# ^ a round beyond its compute without history: 5.5-7.2 s per round in bench/flower_rounds.py
# (2 SuperNodes, resident trainers) and 15 s in the demo's first round, which loads the model
WAIT_FOR_ALL_SECONDS = 30.0
# ^ cairn.compute.coordinator.WAIT_FOR_ALL: a round with fewer providers online than `workers`
# waits this long (at most half the round timeout) before it trains with fewer

# Tokens of a record as counted here: its fields' UTF-8 bytes over BYTES_PER_TOKEN (English
# BPE runs near 4 bytes a token, digits near 2), plus what the model's input adds around them:
# SmolLM2's chat template with its system prompt is 32 tokens (measured on an empty turn), an
# encoder's [CLS] and [SEP] are 2. The 90th percentile stands for a padded batch's width.
BYTES_PER_TOKEN = 3
TEMPLATE_TOKENS = {"causal-lm": 32, "encoder": 2}
TYPICAL_PERCENTILE = 0.9
SIZE_SAMPLE = 2_000  # records sized per dataset version
MEASURED_JOBS = 5  # a node's pace on a model: from its newest jobs on it,
MEASURED_ROUNDS = 30  # and at most this many of their newest rounds

# What a token costs to train, beside LoRA on the same model (1.0). Measured on one thread of a
# 2-core machine, SmolLM2-135M, 8 demo records a step: LoRA 4.4 s, every weight (sft) 8.9 s.
ADAPTERS_COST = 1.0
WHOLE_MODEL_COST = 2.0
FORWARD_COST = 0.5  # one more forward pass (distill's teacher, GRPO's KL reference): not measured
# A sampled token (GRPO), one at a time: fitted to a GRPO step on the same thread (8 completions
# of at most 32 tokens: 27.7 s; the model says 8 x 71 x 2.5 + 256 x 3.0 = 2,188 token passes, at
# the probe's 82 a second 26.7 s).
GENERATED_TOKEN_COST = 3.0


@dataclass(frozen=True)
class Pace:
    """How fast one provider trains, and what a round costs beside training."""

    tokens_per_second: float  # token passes one provider trains per second of compute
    round_overhead: float  # seconds a round takes beyond its slowest worker's compute
    measured_rounds: int  # rounds of this node's history it stands on; 0: a default rate

    @property
    def measured(self) -> bool:
        """Whether the pace comes from this node's finished rounds."""
        return self.measured_rounds > 0


# Without history: one CPU provider. causal-lm: the builder's default recipe (LoRA on
# SmolLM2-135M-Instruct, batch 8, 50 inner steps) took 307 s a round on a 2-core machine with 2
# workers, on the demo's arithmetic records (45 tokens each as counted here: 37 bytes / 3 + 32):
# 50 x 8 x 45 = 18,000 token passes in 307 - 10 = 297 s, 60.6 a second. The same machine, one
# thread to itself: 82 a second on demo records, 58 on 512-token records (70.9 s a step).
# encoder: classify on all-MiniLM-L6-v2 (every weight, 16 demo texts of 15 tokens a step) took
# 0.48 s a step on one thread, 1,000 token passes a second; 700 is that scaled as 60.6 / 82.
DEFAULT_PACE: dict[str, Pace] = {
    "causal-lm": Pace(
        tokens_per_second=60.0, round_overhead=ROUND_OVERHEAD_SECONDS, measured_rounds=0
    ),
    "encoder": Pace(
        tokens_per_second=700.0, round_overhead=ROUND_OVERHEAD_SECONDS, measured_rounds=0
    ),
}


@dataclass(frozen=True)
class RunConditions:
    """What a node knows of how fast a run on it goes: the pace, its records, its providers."""

    pace: Pace
    record_tokens: int | None  # a typical record's tokens (`typical_tokens`); None: unknown
    online: int | None  # providers (Flower SuperNodes) online now; None: unknown


@dataclass(frozen=True)
class RoundSample:
    """One finished round, as the pace is measured from it."""

    tokens: float  # token passes one worker trained in the round (`step_tokens` x inner steps)
    compute_seconds: float  # the slowest worker's
    seconds: float  # the whole round's


@dataclass(frozen=True)
class TimeEstimate:
    """How long a run takes on a node's providers, and what in it may not fit."""

    pace: Pace
    online: int | None  # providers online now; None: unknown
    providers: int  # who train each round: the recipe's workers, or fewer when fewer are online
    step_tokens: float  # token passes of one optimizer step on one worker
    step_seconds: float
    round_compute: float  # one worker's inner steps
    round_seconds: float  # with the round's overhead and any wait for missing workers
    seconds: float  # the whole job, launch to model
    max_seconds: int  # the recipe's time limit
    round_timeout_s: int
    warnings: tuple[str, ...]  # what will not fit, or will wait

    @property
    def duration(self) -> str:
        """The whole job as a person says it: "45 s", "5 minutes", "2.5 hours"."""
        return duration(self.seconds)


def typical_tokens(sizes: list[int], family: str) -> int | None:
    """A typical record's tokens (the 90th percentile) from its fields' UTF-8 byte sizes."""
    if not sizes:
        return None
    ordered = sorted(sizes)
    size = ordered[min(len(ordered) - 1, int(TYPICAL_PERCENTILE * len(ordered)))]
    return -(-size // BYTES_PER_TOKEN) + TEMPLATE_TOKENS.get(family, 0)


def step_tokens(recipe: Recipe, record_tokens: int | None = None) -> float:
    """Token passes of one optimizer step on one worker, weighed by what training them costs."""
    hp = recipe.hyperparameters
    shape = hp.step_shape()
    read = shape.tokens_per_sequence - shape.completion_tokens  # the input's limit
    if record_tokens is not None:
        read = min(read, record_tokens)  # a batch is padded to its longest sequence only
    sequences = shape.records * shape.generations
    # the model's trained weights, as each method's plug-in chooses them (cairn.train.methods)
    adapters = recipe.method == "lora" or bool(getattr(hp, "use_lora", False))
    cost = ADAPTERS_COST if adapters else WHOLE_MODEL_COST
    if getattr(hp, "teacher_model", None) is not None:
        cost += FORWARD_COST  # distill: the teacher's forward pass
    if shape.completion_tokens and getattr(hp, "beta", 0.0) > 0:
        cost += FORWARD_COST  # GRPO: the KL reference's forward pass
    trained = sequences * (read + shape.completion_tokens) * cost
    return trained + sequences * shape.completion_tokens * GENERATED_TOKEN_COST


def measured_pace(samples: list[RoundSample]) -> Pace | None:
    """The pace finished rounds show (token passes over compute seconds, the median overhead);
    None without a round that computed."""
    rounds = [s for s in samples if s.compute_seconds > 0 and s.tokens > 0]
    if not rounds:
        return None
    overheads = sorted(max(0.0, s.seconds - s.compute_seconds) for s in rounds)
    return Pace(
        tokens_per_second=sum(s.tokens for s in rounds) / sum(s.compute_seconds for s in rounds),
        round_overhead=overheads[len(overheads) // 2],
        measured_rounds=len(rounds),
    )


def estimate_time(recipe: Recipe, conditions: RunConditions) -> TimeEstimate:
    """How long `recipe` takes under `conditions`, and what in it will not fit or will wait."""
    dist, pace, online = recipe.distributed, conditions.pace, conditions.online
    tokens = step_tokens(recipe, conditions.record_tokens)
    step_seconds = tokens / pace.tokens_per_second
    round_compute = dist.inner_steps * step_seconds
    round_seconds = round_compute + pace.round_overhead + _wait(recipe, online)
    seconds = JOB_START_SECONDS + dist.rounds * round_seconds
    limit = recipe.budget.max_seconds
    warnings = []
    if online == 0:
        warnings.append(
            "No provider is online: the job waits for one to join before its first round."
        )
    elif online is not None and online < dist.min_workers:
        warnings.append(
            f"{online} provider{'s are' if online > 1 else ' is'} online, fewer than "
            f"min_workers ({dist.min_workers}): no round finishes until more join."
        )
    elif online is not None and online < dist.workers:
        warnings.append(
            f"{online} of {dist.workers} workers online: each round waits up to "
            f"{_wait(recipe, online):.0f} s for the rest, then trains with fewer."
        )
    if seconds > limit:
        warnings.append(
            f"About {duration(seconds)}, more than the time limit ({limit:,} s): the job would "
            "stop before its last round. Take fewer rounds, inner steps or a smaller batch, or "
            "a longer time limit."
        )
    elif seconds * TIME_MARGIN > limit:
        warnings.append(
            f"About {duration(seconds)}, within the time limit ({limit:,} s) but by less than "
            f"{TIME_MARGIN:g}x: a slower or busy provider would overrun it."
        )
    if round_compute + pace.round_overhead > dist.round_timeout_s:
        warnings.append(
            f"A round trains for about {duration(round_compute)}, more than the round timeout "
            f"({dist.round_timeout_s:,} s): its workers would be dropped. Take fewer inner "
            "steps or a longer round timeout."
        )
    return TimeEstimate(
        pace=pace,
        online=online,
        providers=dist.workers if not online else min(online, dist.workers),
        step_tokens=tokens,
        step_seconds=step_seconds,
        round_compute=round_compute,
        round_seconds=round_seconds,
        seconds=seconds,
        max_seconds=limit,
        round_timeout_s=dist.round_timeout_s,
        warnings=tuple(warnings),
    )


def _wait(recipe: Recipe, online: int | None) -> float:
    """What each round waits for workers that are not online."""
    dist = recipe.distributed
    if online is None or online == 0 or online >= dist.workers:
        return 0.0
    return min(WAIT_FOR_ALL_SECONDS, dist.round_timeout_s / 2)


def duration(seconds: float) -> str:
    """`seconds` in the unit a person reads them in, rounded."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5_400:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"
