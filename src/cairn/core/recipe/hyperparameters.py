"""The base of every method's hyperparameter model, and the fields several methods share.

Each method (`cairn.core.recipe.methods.<name>`) declares its own model over `Hyperparameters`
with defaults a practitioner would pick for a small model; a field several methods have is made
by one function here, so its bounds and description are written once while each method still
states its own default.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from cairn.core.recipe.parts import MAX_SEED, RecipePart


@dataclass(frozen=True)
class StepShape:
    """What one optimizer step on one worker draws and runs through the model: the unit a run's
    estimate counts in, and the weight of a step's update."""

    records: int  # records drawn from the shard (GRPO: prompts)
    generations: int = 1  # sequences made of each record (GRPO: completions per prompt)
    tokens_per_sequence: int = 0  # at most
    completion_tokens: int = 0  # generated per sequence (GRPO), at most


class Hyperparameters(RecipePart):
    """The hyperparameters of one method."""

    @abstractmethod
    def step_shape(self) -> StepShape:
        """What one optimizer step trains on, from this method's own settings."""


def learning_rate(default: float) -> Any:
    """The peak learning rate of AdamW."""
    return Field(default, gt=0.0, le=1.0, description="Peak learning rate of the AdamW optimizer")


def epochs(default: int) -> Any:
    """Passes over the data (a distributed run's length is rounds x inner steps instead)."""
    return Field(default, ge=1, le=100, description="Passes over the training share of the data")


def batch_size(default: int) -> Any:
    """Examples per optimizer step."""
    return Field(default, ge=1, le=4096, description="Examples per optimizer step on each worker")


def max_length(default: int) -> Any:
    """Tokens per example."""
    return Field(
        default, ge=8, le=32_768, description="Tokens per example; longer ones are truncated"
    )


def warmup_ratio() -> Any:
    """The share of steps over which the learning rate warms up linearly."""
    return Field(
        0.03, ge=0.0, le=0.5, description="Share of steps over which the learning rate rises from 0"
    )


def weight_decay() -> Any:
    """AdamW's decoupled weight decay, off by default."""
    return Field(0.0, ge=0.0, le=1.0, description="AdamW decoupled weight decay")


def lora_r(default: int) -> Any:
    """The rank of LoRA's update matrices."""
    return Field(default, ge=1, le=256, description="Rank of the LoRA update matrices")


def seed() -> Any:
    """The seed a round replays from."""
    return Field(
        42,
        ge=0,
        le=MAX_SEED,
        description="Seed for shuffling, initialisation and sampling, so a round can be replayed",
    )
