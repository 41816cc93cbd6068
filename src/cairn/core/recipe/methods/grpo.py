"""grpo: DeepSeek-R1-style GRPO on verifiable (prompt, answer) records, with built-in rewards.

Rewards come from a fixed built-in set by name (`cairn.core.rewards` computes them): a recipe
never carries code. Each reward is a model of its own (`name` the tag, `params` its settings),
so an unknown name or parameter is refused with the list of what exists.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

import cairn.core.recipe.hyperparameters as shared
from cairn.core.recipe.base import Recipe
from cairn.core.recipe.methods.base import MethodSpec
from cairn.core.recipe.parts import FieldProblem, RecipePart

RewardName = Literal["exact_answer", "numeric_answer", "answer_format", "length_penalty"]
BUILTIN_REWARDS: tuple[str, ...] = get_args(RewardName)


class NoParams(RecipePart):
    """This reward takes no parameters."""


class NumericAnswerParams(RecipePart):
    """Parameters of `numeric_answer`."""

    tolerance: float = Field(
        1e-6, ge=0.0, le=1e6, description="Largest absolute difference still counted as equal"
    )


class LengthPenaltyParams(RecipePart):
    """Parameters of `length_penalty`."""

    target: int = Field(
        64, ge=1, le=32_768, description="Completion tokens allowed before the penalty starts"
    )
    scale: float = Field(
        1.0, gt=0.0, le=100.0, description="Penalty for each further `target` tokens"
    )


class Reward(RecipePart):
    """One built-in reward and its weight in the sum GRPO maximises."""

    name: RewardName = Field(description="Which built-in reward")
    weight: float = Field(
        1.0, gt=0.0, le=100.0, description="Multiplier of this reward in the total"
    )
    params: RecipePart = Field(default_factory=NoParams, description="The reward's parameters")


class ExactAnswerReward(Reward):
    """1 when the text in <answer>…</answer> (or the whole completion) equals the record's answer."""

    name: Literal["exact_answer"] = Field("exact_answer", description="Which built-in reward")
    params: NoParams = Field(
        default_factory=NoParams, description="This reward takes no parameters"
    )


class NumericAnswerReward(Reward):
    """1 when the answer parses as a number within `tolerance` of the record's answer."""

    name: Literal["numeric_answer"] = Field("numeric_answer", description="Which built-in reward")
    params: NumericAnswerParams = Field(
        default_factory=NumericAnswerParams, description="Parameters of numeric_answer"
    )


class AnswerFormatReward(Reward):
    """1 when the completion is <think>…</think><answer>…</answer> and nothing else."""

    name: Literal["answer_format"] = Field("answer_format", description="Which built-in reward")
    params: NoParams = Field(
        default_factory=NoParams, description="This reward takes no parameters"
    )


class LengthPenaltyReward(Reward):
    """-scale * max(0, tokens - target) / target: nothing up to `target`, negative beyond."""

    name: Literal["length_penalty"] = Field("length_penalty", description="Which built-in reward")
    params: LengthPenaltyParams = Field(
        default_factory=LengthPenaltyParams, description="Parameters of length_penalty"
    )


RewardChoice = ExactAnswerReward | NumericAnswerReward | AnswerFormatReward | LengthPenaltyReward
AnyReward = Annotated[RewardChoice, Field(discriminator="name")]
REWARD_DEFAULTS: dict[str, Reward] = {
    "exact_answer": ExactAnswerReward(),
    "numeric_answer": NumericAnswerReward(),
    "answer_format": AnswerFormatReward(),
    "length_penalty": LengthPenaltyReward(),
}


def _default_rewards() -> list[RewardChoice]:
    # accuracy and format, summed evenly, as DeepSeek-R1 trains
    return [ExactAnswerReward(), AnswerFormatReward()]


class GrpoHyperparameters(shared.Hyperparameters):
    """DeepSeek-R1-style GRPO on verifiable (prompt, answer) records, with built-in rewards."""

    learning_rate: float = shared.learning_rate(1e-6)
    steps: int = Field(100, ge=1, le=1_000_000, description="Optimizer steps on each worker")
    batch_size: int = shared.batch_size(8)
    num_generations: int = Field(
        4, ge=2, le=64, description="Completions sampled per prompt; rewards compare within them"
    )
    max_prompt_length: int = Field(
        256, ge=8, le=32_768, description="Prompt tokens kept (from the end)"
    )
    max_completion_length: int = Field(
        128, ge=1, le=32_768, description="Most tokens generated per completion"
    )
    temperature: float = Field(0.9, gt=0.0, le=2.0, description="Sampling temperature")
    beta: float = Field(
        0.04, ge=0.0, le=1.0, description="Weight of the KL penalty to the reference model"
    )
    seed: int = shared.seed()

    def step_shape(self) -> shared.StepShape:
        # prompts; each is sampled num_generations times within the batch
        return shared.StepShape(
            max(1, self.batch_size // self.num_generations),
            generations=self.num_generations,
            tokens_per_sequence=self.max_prompt_length + self.max_completion_length,
            completion_tokens=self.max_completion_length,
        )

    rewards: list[AnyReward] = Field(
        default_factory=_default_rewards,
        min_length=1,
        max_length=len(BUILTIN_REWARDS),
        description="Built-in rewards summed by weight",
    )

    @field_validator("rewards", mode="before")
    @classmethod
    def _names_alone(cls, value: Any) -> Any:
        # `- exact_answer` is short for `- name: exact_answer`
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GrpoHyperparameters:
        if self.batch_size % self.num_generations:
            raise FieldProblem(
                ("batch_size",),
                f"must be a multiple of num_generations ({self.num_generations}), so each "
                f"prompt's completions share a batch; got {self.batch_size}",
            )
        seen: set[str] = set()
        for i, reward in enumerate(self.rewards):
            if reward.name in seen:
                raise FieldProblem(("rewards", i, "name"), f"{reward.name} is listed twice")
            seen.add(reward.name)
            if (
                isinstance(reward, LengthPenaltyReward)
                and reward.params.target >= self.max_completion_length
            ):
                raise FieldProblem(
                    ("rewards", i, "params", "target"),
                    f"must be below max_completion_length ({self.max_completion_length}), "
                    f"or the penalty never applies; got {reward.params.target}",
                )
        return self


class GrpoRecipe(Recipe):
    """GRPO reinforcement learning with verifiable rewards."""

    method: Literal["grpo"] = Field("grpo", description="The training method")
    hyperparameters: GrpoHyperparameters = Field(
        default_factory=GrpoHyperparameters, description="The method's settings"
    )


GRPO = MethodSpec(
    recipe=GrpoRecipe,
    task="verifiable",
    family="causal-lm",
    fields=("prompt", "answer"),
    intro="GRPO, DeepSeek-R1-style reinforcement learning: for each prompt the model samples "
    "several completions, built-in rewards score them against the record's answer, and the "
    "model learns from how each compares with its group. Needs verifiable datasets (records "
    "with prompt and answer).",
    base_model="SmolLM2-135M-Instruct",
)
