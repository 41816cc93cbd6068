"""The sections every recipe has beside its method's: datasets, evaluation, DiLoCo, budget.

Each section is a `RecipePart` with its own defaults, so a recipe names only what it changes;
a rule across two fields of a section (min_workers at most workers, krum's worker count) blames
the field a builder should change.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cairn.core.amounts import MAX_AMOUNT
from cairn.core.cid import CID
from cairn.core.recipe.parts import MAX_SEED, FieldProblem, RecipePart, shown

Aggregation = Literal["mean", "median", "trimmed_mean", "krum"]
# How a worker sends its round's update (`cairn.core.quantize`): int8 and int4 take 4x and ~8x
# fewer bytes than float32, with error feedback so that rounding does not accumulate.
Encoding = Literal["float32", "int8", "int4"]


class DatasetRef(RecipePart):
    """One dataset the model trains on, optionally pinned to a version."""

    dataset: int = Field(ge=1, strict=True, description="Asset id of the dataset")
    version: str | None = Field(
        None, description="Manifest CID of the version to use; the newest when left out"
    )

    @field_validator("version")
    @classmethod
    def _is_cid(cls, value: str | None) -> str | None:
        if value is not None:
            CID.parse(value)  # InvalidInput is a ValueError: its reason becomes the message
        return value


class Evaluation(RecipePart):
    """The held-out share of the datasets the model is evaluated on and never trained on."""

    split: float = Field(
        0.1, gt=0.0, le=0.5, description="Share of each dataset's records held out"
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the held-out draw: same seed, same records"
    )


class Distributed(RecipePart):
    """How the job trains across provider machines: DiLoCo rounds on Flower."""

    workers: int = Field(2, ge=1, le=64, description="Provider machines training each round")
    min_workers: int = Field(
        1, ge=1, le=64, description="Fewest replies a round needs; late or dead workers drop out"
    )
    rounds: int = Field(10, ge=1, le=10_000, description="Outer rounds (DiLoCo outer steps)")
    inner_steps: int = Field(
        50, ge=1, le=100_000, description="H: local optimizer steps per worker between syncs"
    )
    outer_lr: float = Field(
        0.7, gt=0.0, le=10.0, description="Outer SGD learning rate on the averaged update"
    )
    outer_momentum: float = Field(0.9, ge=0.0, lt=1.0, description="Outer SGD momentum")
    nesterov: bool = Field(True, description="Nesterov momentum in the outer step, as DiLoCo")
    aggregation: Aggregation = Field(
        "mean", description="How worker updates combine; the last three resist poisoning"
    )
    trim_ratio: float = Field(
        0.2, ge=0.0, lt=0.5, description="trimmed_mean: share cut from each end per coordinate"
    )
    byzantine: int = Field(
        1, ge=0, le=30, description="krum: faulty workers tolerated (needs 2*byzantine+3 workers)"
    )
    round_timeout_s: int = Field(
        600, ge=10, le=86_400, description="Seconds a round waits for replies"
    )
    outer_encoding: Encoding = Field(
        "float32",
        description="How workers send their update: float32, or int8 / int4 (4x / 8x fewer "
        "bytes, rounding carried to the next round)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Distributed:
        if self.min_workers > self.workers:
            raise FieldProblem(
                ("min_workers",),
                f"must be at most workers ({self.workers}); got {self.min_workers}",
            )
        need = 2 * self.byzantine + 3
        if self.aggregation == "krum" and self.workers < need:
            raise FieldProblem(
                ("workers",),
                f"krum tolerating byzantine={self.byzantine} needs at least 2*byzantine+3 = "
                f"{need} workers; got {self.workers}",
            )
        if self.aggregation == "trimmed_mean" and math.floor(self.trim_ratio * self.workers) < 1:
            fix = (
                f"use at least {math.ceil(1 / self.trim_ratio)} workers, a larger trim_ratio, "
                if self.trim_ratio > 0
                else "set trim_ratio above 0 "
            )
            raise FieldProblem(
                ("trim_ratio",),
                f"trimmed_mean with trim_ratio {self.trim_ratio} and {self.workers} workers "
                f"trims floor({self.trim_ratio}*{self.workers}) = 0 updates, a plain mean: "
                f"{fix}or use aggregation mean",
            )
        return self


DEADLINE_SLACK = 3600  # seconds past a budget's max_seconds before its builder may reclaim it


class Budget(RecipePart):
    """What the job may spend."""

    max_tokens: str = Field(
        "0",
        pattern=r"^[0-9]{1,78}$",
        description="Most CAIRN (smallest units, 10^-18) paid to providers; 0 is volunteer work",
    )
    max_seconds: int = Field(
        3600, ge=60, le=30 * 86_400, description="Wall-clock limit of the whole job"
    )

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        # YAML reads `max_tokens: 1000` as an int; the field is a string to hold uint256 amounts
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,78}", value):
            raise ValueError(
                "must be a whole number of smallest units, digits only (1 CAIRN is 10^18 "
                f"units); got {shown(value)}"
            )
        return value

    @field_validator("max_tokens")
    @classmethod
    def _uint256(cls, value: str) -> str:
        amount = int(value)
        if amount > MAX_AMOUNT:
            raise ValueError("must fit in 256 bits")
        return str(amount)  # one spelling per amount: no leading zeros
