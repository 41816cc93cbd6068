"""Recipes, the no-code layer: how a builder turns datasets into a model without writing code.

A recipe is a YAML file (or the same mapping from the web form or the API): the method and its
hyperparameters, the base model, the dataset versions, the held-out split, the DiLoCo settings
and the budget. Each method has its own hyperparameter model with defaults a practitioner would
pick for a small model, so a recipe names only what it changes. Unknown keys are errors, and
every error names the field at fault (`recipe.yaml: hyperparameters.learning_rate: ...`).

GRPO rewards come from a fixed built-in set by name: a recipe never carries code.
Pure: models, parsing and examples; only `load_recipe_file` reads (one file).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from cairn.core.amounts import MAX_AMOUNT
from cairn.core.cid import CID
from cairn.core.data_policy import Policy
from cairn.core.errors import InvalidInput

Method = Literal["lora", "sft", "classify", "grpo", "distill"]
Aggregation = Literal["mean", "median", "trimmed_mean", "krum"]
RewardName = Literal["exact_answer", "numeric_answer", "answer_format", "length_penalty"]
METHODS: tuple[str, ...] = get_args(Method)
BUILTIN_REWARDS: tuple[str, ...] = get_args(RewardName)
BASE_MODELS = ("SmolLM2-135M-Instruct", "all-MiniLM-L6-v2")  # registered on every new node
MAX_RECIPE_BYTES = 65_536  # a recipe is a page of settings; anything far larger is a mistake
_MAX_SEED = 2**32 - 1


class RecipeError(InvalidInput):
    """A recipe that breaks a rule: `message` is the first error, `errors` all of them.

    Each error is `{"loc": "hyperparameters.learning_rate", "msg": "..."}`, for a form to show
    beside its field; `loc` is "" for the recipe as a whole (YAML syntax, top level).
    """

    def __init__(self, source: str, errors: list[dict[str, str]]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(self.lines()[0])

    def lines(self) -> list[str]:
        """Every error as `source: field.path: message`."""
        return [
            f"{self.source}: {e['loc']}: {e['msg']}" if e["loc"] else f"{self.source}: {e['msg']}"
            for e in self.errors
        ]


class _FieldProblem(ValueError):
    """Raised inside a validator to blame a field below the model being validated."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class RecipePart(Policy):
    """A section of a recipe: unknown keys are an error that lists the keys allowed there."""

    model_config = ConfigDict(allow_inf_nan=False)  # merged with Policy's: forbid, frozen

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        for key, value in data.items():
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            if field is None:
                allowed = ", ".join(cls.model_fields)
                expected = f"expected one of: {allowed}" if allowed else "this takes no fields"
                raise _FieldProblem((str(key)[:60],), f"unknown field; {expected}")
            # YAML's `yes`/`true` is a bool, and pydantic would quietly read it as 1
            if isinstance(value, bool) and field.annotation in (int, float):
                raise _FieldProblem((key,), f"Input should be a number; got {str(value).lower()}")
        return data


def _model_ref(value: Any) -> Any:
    """An asset id (positive int) or a base model name, checked here so one error says so."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1:
            return value
        raise ValueError(f"a model asset id is a positive integer; got {value}")
    if isinstance(value, str):
        name = value.strip()
        if not name:
            raise ValueError("a model name must not be empty")
        if len(name) > 200:
            raise ValueError(f"a model name has at most 200 characters; got {len(name)}")
        # a name is looked up among the node's models: never a path, a URL or a hub repo
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError(
                "a model name has letters, digits, '.', '_' and '-' only (no paths or URLs); "
                f"got {_shown(name)}"
            )
        return name
    raise ValueError(
        f"a model is an asset id or a base model name such as {BASE_MODELS[0]!r}; "
        f"got {_kind(value)}"
    )


ModelRef = Annotated[int | str, BeforeValidator(_model_ref)]
ModuleName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")]


# Fields several methods share; each method's class still states its own default.
def _learning_rate(default: float) -> Any:
    return Field(default, gt=0.0, le=1.0, description="Peak learning rate of the AdamW optimizer")


def _epochs(default: int) -> Any:
    return Field(default, ge=1, le=100, description="Passes over the training share of the data")


def _batch_size(default: int) -> Any:
    return Field(default, ge=1, le=4096, description="Examples per optimizer step on each worker")


def _max_length(default: int) -> Any:
    return Field(
        default, ge=8, le=32_768, description="Tokens per example; longer ones are truncated"
    )


def _warmup_ratio() -> Any:
    return Field(
        0.03, ge=0.0, le=0.5, description="Share of steps over which the learning rate rises from 0"
    )


def _weight_decay() -> Any:
    return Field(0.0, ge=0.0, le=1.0, description="AdamW decoupled weight decay")


def _lora_r(default: int) -> Any:
    return Field(default, ge=1, le=256, description="Rank of the LoRA update matrices")


def _seed() -> Any:
    return Field(
        42,
        ge=0,
        le=_MAX_SEED,
        description="Seed for shuffling, initialisation and sampling, so a round can be replayed",
    )


class Hyperparameters(RecipePart):
    """The hyperparameters of one method."""


class LoraHyperparameters(Hyperparameters):
    """LoRA adapters on a causal LM, trained on instruction (prompt, response) pairs."""

    learning_rate: float = _learning_rate(2e-4)
    epochs: int = _epochs(1)
    batch_size: int = _batch_size(8)
    max_length: int = _max_length(512)
    lora_r: int = _lora_r(8)
    lora_alpha: int = Field(
        16, ge=1, le=4096, description="LoRA scaling: updates are scaled by lora_alpha / lora_r"
    )
    lora_dropout: float = Field(
        0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input during training"
    )
    target_modules: list[ModuleName] = Field(
        default_factory=lambda: ["q_proj", "v_proj"],
        min_length=1,
        max_length=64,
        description="Names of the linear layers that get adapters (attention query and value)",
    )
    warmup_ratio: float = _warmup_ratio()
    weight_decay: float = _weight_decay()
    seed: int = _seed()


class SftHyperparameters(Hyperparameters):
    """Full fine-tuning of a causal LM on instruction (prompt, response) pairs."""

    learning_rate: float = _learning_rate(2e-5)
    epochs: int = _epochs(1)
    batch_size: int = _batch_size(8)
    max_length: int = _max_length(512)
    warmup_ratio: float = _warmup_ratio()
    weight_decay: float = _weight_decay()
    seed: int = _seed()


class ClassifyHyperparameters(Hyperparameters):
    """An encoder with a classification head, trained on (text, label) records."""

    learning_rate: float = _learning_rate(5e-5)
    epochs: int = _epochs(3)
    batch_size: int = _batch_size(16)
    max_length: int = _max_length(256)
    use_lora: bool = Field(
        False, description="Train LoRA adapters (and the head) instead of every weight"
    )
    lora_r: int = _lora_r(8)
    seed: int = _seed()


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
_REWARD_DEFAULTS: dict[str, Reward] = {
    "exact_answer": ExactAnswerReward(),
    "numeric_answer": NumericAnswerReward(),
    "answer_format": AnswerFormatReward(),
    "length_penalty": LengthPenaltyReward(),
}


def _default_rewards() -> list[RewardChoice]:
    # accuracy and format, summed evenly, as DeepSeek-R1 trains
    return [ExactAnswerReward(), AnswerFormatReward()]


class GrpoHyperparameters(Hyperparameters):
    """DeepSeek-R1-style GRPO on verifiable (prompt, answer) records, with built-in rewards."""

    learning_rate: float = _learning_rate(1e-6)
    steps: int = Field(100, ge=1, le=1_000_000, description="Optimizer steps on each worker")
    batch_size: int = _batch_size(8)
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
    seed: int = _seed()
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
            raise _FieldProblem(
                ("batch_size",),
                f"must be a multiple of num_generations ({self.num_generations}), so each "
                f"prompt's completions share a batch; got {self.batch_size}",
            )
        seen: set[str] = set()
        for i, reward in enumerate(self.rewards):
            if reward.name in seen:
                raise _FieldProblem(("rewards", i, "name"), f"{reward.name} is listed twice")
            seen.add(reward.name)
            if (
                isinstance(reward, LengthPenaltyReward)
                and reward.params.target >= self.max_completion_length
            ):
                raise _FieldProblem(
                    ("rewards", i, "params", "target"),
                    f"must be below max_completion_length ({self.max_completion_length}), "
                    f"or the penalty never applies; got {reward.params.target}",
                )
        return self


class DistillHyperparameters(Hyperparameters):
    """A student trained on a teacher model's output distribution and the data's own targets."""

    teacher_model: ModelRef = Field(
        description="The model whose outputs are the soft targets: an asset id or a base name"
    )
    learning_rate: float = _learning_rate(5e-5)
    epochs: int = _epochs(1)
    batch_size: int = _batch_size(8)
    max_length: int = _max_length(512)
    temperature: float = Field(
        2.0, gt=0.0, le=20.0, description="Softmax temperature of teacher and student logits"
    )
    alpha: float = Field(
        0.5, ge=0.0, le=1.0, description="Weight of the soft (teacher) loss; 1 - alpha the hard"
    )
    seed: int = _seed()


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
        0, ge=0, le=_MAX_SEED, description="Seed of the held-out draw: same seed, same records"
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

    @model_validator(mode="after")
    def _consistent(self) -> Distributed:
        if self.min_workers > self.workers:
            raise _FieldProblem(
                ("min_workers",),
                f"must be at most workers ({self.workers}); got {self.min_workers}",
            )
        need = 2 * self.byzantine + 3
        if self.aggregation == "krum" and self.workers < need:
            raise _FieldProblem(
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
            raise _FieldProblem(
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
                f"units); got {_shown(value)}"
            )
        return value

    @field_validator("max_tokens")
    @classmethod
    def _uint256(cls, value: str) -> str:
        amount = int(value)
        if amount > MAX_AMOUNT:
            raise ValueError("must fit in 256 bits")
        return str(amount)  # one spelling per amount: no leading zeros


_SECTIONS = ("hyperparameters", "evaluation", "distributed", "budget")


class Recipe(RecipePart):
    """A training recipe. Parse one with `parse_recipe`, which picks the subclass for `method`

    (in an API schema, annotate with `AnyRecipe`, which does the same).
    """

    name: str = Field(min_length=1, max_length=200, description="What the run is called")
    description: str | None = Field(None, max_length=2000, description="What the run is for")
    method: Method = Field(description="The training method")
    base_model: ModelRef = Field(description="The model trained from: an asset id or base name")
    datasets: list[DatasetRef] = Field(
        min_length=1, max_length=64, description="The datasets trained on"
    )
    hyperparameters: Hyperparameters = Field(description="The method's settings")
    evaluation: Evaluation = Field(default_factory=Evaluation, description="The held-out split")
    distributed: Distributed = Field(default_factory=Distributed, description="DiLoCo rounds")
    budget: Budget = Field(default_factory=Budget, description="What the job may spend")

    @model_validator(mode="before")
    @classmethod
    def _sections_may_be_empty(cls, data: Any) -> Any:
        # a section whose keys are all commented out reads as null: take it as all defaults
        if isinstance(data, Mapping):
            data = {k: {} if k in _SECTIONS and v is None else v for k, v in data.items()}
            data.setdefault("hyperparameters", {})
        return data

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class LoraRecipe(Recipe):
    """LoRA fine-tuning of a causal LM."""

    method: Literal["lora"] = Field("lora", description="The training method")
    hyperparameters: LoraHyperparameters = Field(
        default_factory=LoraHyperparameters, description="The method's settings"
    )


class SftRecipe(Recipe):
    """Full fine-tuning of a causal LM."""

    method: Literal["sft"] = Field("sft", description="The training method")
    hyperparameters: SftHyperparameters = Field(
        default_factory=SftHyperparameters, description="The method's settings"
    )


class ClassifyRecipe(Recipe):
    """An encoder and classification head."""

    method: Literal["classify"] = Field("classify", description="The training method")
    hyperparameters: ClassifyHyperparameters = Field(
        default_factory=ClassifyHyperparameters, description="The method's settings"
    )


class GrpoRecipe(Recipe):
    """GRPO reinforcement learning with verifiable rewards."""

    method: Literal["grpo"] = Field("grpo", description="The training method")
    hyperparameters: GrpoHyperparameters = Field(
        default_factory=GrpoHyperparameters, description="The method's settings"
    )


class DistillRecipe(Recipe):
    """Distillation from a teacher model."""

    method: Literal["distill"] = Field("distill", description="The training method")
    hyperparameters: DistillHyperparameters = Field(description="The method's settings")

    @model_validator(mode="after")
    def _teacher_differs(self) -> DistillRecipe:
        if self.hyperparameters.teacher_model == self.base_model:
            raise _FieldProblem(
                ("hyperparameters", "teacher_model"), "must be a different model from base_model"
            )
        return self


AnyRecipe = Annotated[
    LoraRecipe | SftRecipe | ClassifyRecipe | GrpoRecipe | DistillRecipe,
    Field(discriminator="method"),
]
RECIPES: dict[str, type[Recipe]] = {
    "lora": LoraRecipe,
    "sft": SftRecipe,
    "classify": ClassifyRecipe,
    "grpo": GrpoRecipe,
    "distill": DistillRecipe,
}
_ADAPTER: TypeAdapter[Recipe] = TypeAdapter(AnyRecipe)


def parse_recipe(data: Any, *, source: str = "recipe") -> Recipe:
    """A recipe from a mapping (parsed YAML, a form, JSON); `RecipeError` names each bad field."""
    if not isinstance(data, Mapping):
        raise RecipeError(
            source, [{"loc": "", "msg": f"must be a mapping of fields; got {_kind(data)}"}]
        )
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise RecipeError(source, [_describe(e) for e in exc.errors()]) from None


def _describe(error: Any) -> dict[str, str]:
    """One pydantic error as {loc, msg}, with method and reward tags taken out of the path."""
    loc = list(error["loc"])
    if loc and loc[0] in METHODS:
        loc.pop(0)
    for i in range(len(loc) - 1, 1, -1):  # rewards.<i>.<tag>
        if loc[i] in BUILTIN_REWARDS and loc[i - 2] == "rewards" and isinstance(loc[i - 1], int):
            loc.pop(i)
    kind, ctx = error["type"], error.get("ctx") or {}
    msg: str = error["msg"]
    cause = ctx.get("error")
    if isinstance(cause, _FieldProblem):
        loc.extend(cause.loc)
        msg = str(cause)
    elif isinstance(cause, ValueError):  # our own validators: the reason alone
        msg = str(cause)
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "")).strip("'")
        loc.append(field)
        choices = METHODS if field == "method" else BUILTIN_REWARDS
        if kind == "union_tag_not_found":
            msg = f"Field required: one of {', '.join(choices)}"
        elif field == "method":
            msg = f"unknown method {_shown(ctx['tag'])}; expected one of {', '.join(choices)}"
        else:
            msg = (
                f"unknown reward {_shown(ctx['tag'])}: rewards come from the built-in set "
                f"({', '.join(choices)}); a recipe never runs code"
            )
    elif kind != "missing" and isinstance(error.get("input"), str | int | float):
        msg = f"{msg}; got {_shown(error['input'])}"
    return {"loc": _path(loc), "msg": msg}


def _path(loc: list[Any]) -> str:
    """`datasets[0].version` from ('datasets', 0, 'version')."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    names = {list: "a list", str: "a string", dict: "a mapping", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


class _RecipeLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice (the later one would silently win)."""


def _mapping_without_duplicates(loader: _RecipeLoader, node: yaml.MappingNode) -> Any:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, str | int | float | bool):
            continue  # an unhashable key fails in construct_mapping with its own message
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_RecipeLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def load_recipe(text: str, *, source: str = "recipe") -> Recipe:
    """A recipe from YAML text (safe loading only); syntax errors give line and column."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_RECIPE_BYTES:
        raise RecipeError(source, [{"loc": "", "msg": f"longer than {MAX_RECIPE_BYTES} bytes"}])
    try:
        data = yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader subclass: no Python objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = exc.problem or exc.context or "not valid YAML"
        raise RecipeError(source, [{"loc": "", "msg": f"{where}{reason}"}]) from None
    except yaml.YAMLError as exc:
        raise RecipeError(source, [{"loc": "", "msg": f"not valid YAML: {exc}"}]) from None
    except ValueError as exc:  # a scalar YAML cannot build: a 5,000-digit number, 2024-02-30
        reason = str(exc).split(";")[0]
        raise RecipeError(
            source, [{"loc": "", "msg": f"a value cannot be read: {reason}"}]
        ) from None
    if not isinstance(data, Mapping):
        what = "nothing (the text is empty)" if data is None else _kind(data)
        msg = f"the top level must be a mapping of fields (name, method, ...); got {what}"
        raise RecipeError(source, [{"loc": "", "msg": msg}])
    return parse_recipe(data, source=source)


def load_recipe_file(path: Path) -> Recipe:
    """A recipe from a YAML file; errors start with the path."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(str(path), [{"loc": "", "msg": f"longer than {MAX_RECIPE_BYTES} bytes"}])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RecipeError(str(path), [{"loc": "", "msg": "not UTF-8 text"}]) from None
    return load_recipe(text, source=str(path))


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe, every default written out, as YAML that `load_recipe` reads back."""
    data = recipe.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1_000)


# Examples: `cairn recipe init` writes these. They are generated from the models above, so every
# comment states the default the parser applies and an example always loads to the defaults.
_INTROS: dict[str, tuple[str, str]] = {
    "lora": (
        "LoRA fine-tuning: small adapter matrices trained on a causal language model while its "
        "own weights stay frozen. Needs instruction datasets (records with prompt and response).",
        "SmolLM2-135M-Instruct",
    ),
    "sft": (
        "Supervised fine-tuning: every weight of a causal language model is trained. Needs "
        "instruction datasets (records with prompt and response).",
        "SmolLM2-135M-Instruct",
    ),
    "classify": (
        "Classification: an encoder with a new classification head, optionally with LoRA. Needs "
        "classification datasets (records with text and label); the labels come from them.",
        "all-MiniLM-L6-v2",
    ),
    "grpo": (
        "GRPO, DeepSeek-R1-style reinforcement learning: for each prompt the model samples "
        "several completions, built-in rewards score them against the record's answer, and the "
        "model learns from how each compares with its group. Needs verifiable datasets (records "
        "with prompt and answer).",
        "SmolLM2-135M-Instruct",
    ),
    "distill": (
        "Distillation: the base model (the student) learns to match a teacher model's output "
        "distribution as well as the data's own targets. Needs instruction datasets.",
        "SmolLM2-135M-Instruct",
    ),
}
_PLACEHOLDER_DATASET = 1
_PLACEHOLDER_TEACHER = 2
_WIDTH = 96


def example_recipe(method: str) -> str:
    """A commented example recipe for `method`: every field, what it does and its default."""
    if method not in RECIPES:
        raise InvalidInput(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    intro, base = _INTROS[method]
    fields = Recipe.model_fields
    out = _wrap(f"Cairn recipe: {method}. {intro}", "")
    out += _wrap(
        "Check it with `cairn recipe check recipe.yaml`. "
        "The name, base model and dataset ids are placeholders: put "
        "your own. Every other setting is at its default; delete any you do not change.",
        "",
    )
    out += ["", *_wrap("What the run is called, 1 to 200 characters. Required.", "")]
    out += [f"name: my-{method}-run"]
    out += ["# What the run is for. Optional.", "# description: what this run is for"]
    out += _wrap(f"The training method, one of {', '.join(METHODS)}. Required.", "")
    out += [f"method: {method}"]
    out += _wrap(
        f"The model trained from: a base model name ({', '.join(BASE_MODELS)}) or the asset id "
        "of any model on the node (`cairn asset list --kind model`). Required.",
        "",
    )
    out += [f"base_model: {base}"]
    out += _wrap(
        "The datasets trained on, at least one. `dataset` is the dataset's asset id (see "
        f"`cairn dataset list`): {_PLACEHOLDER_DATASET} is a placeholder, put yours. `version` "
        "pins a version by its manifest CID (see `cairn dataset show ID`); left out, the newest "
        "version is used.",
        "",
    )
    out += ["datasets:", f"  - dataset: {_PLACEHOLDER_DATASET}", "    # version: bafkrei..."]
    hyper = RECIPES[method].model_fields["hyperparameters"].annotation
    assert isinstance(hyper, type) and issubclass(hyper, Hyperparameters)
    values = hyper.model_validate(
        {"teacher_model": _PLACEHOLDER_TEACHER} if method == "distill" else {}
    )
    required = [n for n, f in hyper.model_fields.items() if f.is_required()]
    optional = "Each setting is optional."
    if required:
        optional = f"Each setting but {', '.join(required)} is optional."
    out += _wrap(f"{hyper.__doc__} {optional}", "")
    out += ["hyperparameters:", *_fields(values, "  ")]
    if isinstance(values, GrpoHyperparameters):
        out += _other_rewards([r.name for r in values.rewards], "    ")
    for section in ("evaluation", "distributed", "budget"):
        model: BaseModel = fields[section].get_default(call_default_factory=True)
        out += ["", *_wrap(f"{type(model).__doc__} Each setting is optional.", "")]
        out += [f"{section}:", *_fields(model, "  ")]
    return "\n".join(out) + "\n"


def _fields(model: BaseModel, indent: str, *, first_bare: bool = False) -> list[str]:
    """Each field of `model` as YAML with a comment over it (but the first, if `first_bare`)."""
    out: list[str] = []
    for i, (name, field) in enumerate(type(model).model_fields.items()):
        value = getattr(model, name)
        if name == "teacher_model":
            out += _wrap(f"{field.description}. Required; {value} is a placeholder.", indent)
        elif isinstance(value, BaseModel):
            out += _wrap((field.description or "").rstrip(".") + ".", indent)
        elif not (first_bare and i == 0):
            out += _wrap(_comment_text(field, f"default {_default_text(value)}"), indent)
        if isinstance(value, BaseModel) and type(value).model_fields:
            out += [f"{indent}{name}:", *_fields(value, indent + "  ")]
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            out += [f"{indent}{name}:"]
            for item in value:
                out += _wrap(item.__doc__ or "", indent + "  ")
                lines = _fields(item, indent + "    ", first_bare=True)
                out += [f"{indent}  - {lines[0].lstrip()}", *lines[1:]]
        else:
            out += [f"{indent}{name}: {_scalar(value)}"]
    return out


def _other_rewards(used: list[str], indent: str) -> list[str]:
    """The built-in rewards a recipe does not use yet, as commented-out list items."""
    out = _wrap("Other built-in rewards, to add to the list above:", indent)
    for name in BUILTIN_REWARDS:
        if name in used:
            continue
        reward = _REWARD_DEFAULTS[name]
        out += _wrap(f"{name}: {reward.__doc__}", indent)
        for param, field in type(reward.params).model_fields.items():
            value = _default_text(getattr(reward.params, param))
            out += _wrap(f"params.{param}: {_comment_text(field, f'default {value}')}", indent)
        item = [f"name: {name}", f"weight: {reward.weight}", f"params: {_scalar(reward.params)}"]
        out += [f"{indent}# - {item[0]}", *(f"{indent}#   {line}" for line in item[1:])]
    return out


def _comment_text(field: Any, default: str) -> str:
    """`Description. One of a, b. Default x, in (0, 1].`"""
    text = (field.description or "").rstrip(".") + "."
    choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
    if len(choices) > 1:
        text += f" One of {', '.join(choices)}."
    bounds = _bounds(field)
    return f"{text} {default[0].upper()}{default[1:]}{', ' + bounds if bounds else ''}."


def _bounds(field: Any) -> str:
    """The field's numeric range in words: `1 to 100`, `in (0, 1]`, `at least 60`."""
    low: tuple[str, float] | None = None
    high: tuple[float, str] | None = None
    for rule in field.metadata:
        if isinstance(rule, at.Gt):
            low = ("(", float(rule.gt))  # type: ignore[arg-type]
        elif isinstance(rule, at.Ge):
            low = ("[", float(rule.ge))  # type: ignore[arg-type]
        elif isinstance(rule, at.Lt):
            high = (float(rule.lt), ")")  # type: ignore[arg-type]
        elif isinstance(rule, at.Le):
            high = (float(rule.le), "]")  # type: ignore[arg-type]
    if low is None:
        return ""
    if field.annotation is int:
        least = int(low[1]) + (low[0] == "(")
        if high is None:
            return f"at least {least}"
        return f"{least} to {int(high[0]) - (high[1] == ')')}"
    if high is None:
        return f"{'>' if low[0] == '(' else '>='} {_number(low[1])}"
    return f"in {low[0]}{_number(low[1])}, {_number(high[0])}{high[1]}"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else f"{value:g}"


def _default_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return " and ".join(str(getattr(item, "name", item)) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return _scalar(value)


def _scalar(value: Any) -> str:
    """A value as one line of YAML (flow style for lists and mappings)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    text = yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=1_000
    )
    return text.removesuffix("\n").removesuffix("\n...")


def _wrap(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, _WIDTH - len(indent) - 2)]
