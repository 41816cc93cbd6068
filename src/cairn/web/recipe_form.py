"""The model builder's form, read from the recipe schema: its settings, and a recipe from its values.

Every setting the form shows comes from the recipe models of `cairn.core.recipe` (name, type,
default, bounds, description), so the form offers exactly what the validator accepts. The values
a browser sends (a POST, or the same as a query string) become the recipe mapping; the
validator's errors come back keyed by the form field they blame. Pure: no node, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cairn.compute.estimate import TARGET_SECONDS
from cairn.core.amounts import parse_units
from cairn.core.errors import InvalidInput
from cairn.core.recipe import (
    BUILTIN_REWARDS,
    METHODS,
    SPECS,
    Budget,
    Distributed,
    Evaluation,
    GrpoHyperparameters,
    Hyperparameters,
    Recipe,
    RecipeError,
    RewardChoice,
    parse_recipe,
)

# Sent by every submit of the form, naming the method whose settings it showed: an unticked
# checkbox then means False (for that method's hyperparameters only if the method is unchanged).
MARK = "_form"
ADVANCED = {"outer_lr", "outer_momentum", "nesterov", "aggregation", "trim_ratio", "byzantine"}
ADVANCED |= {"round_timeout_s", "seed", "warmup_ratio", "weight_decay", "lora_dropout"}
ADVANCED |= {"outer_encoding"}
LABELS = {
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "use_lora": "Train LoRA adapters only",
    "target_modules": "Target modules",
    "max_length": "Max tokens per record",
    "num_generations": "Completions per prompt",
    "beta": "KL weight (beta)",
    "alpha": "Teacher weight (alpha)",
    "inner_steps": "Inner steps (H)",
    "min_workers": "Fewest workers per round",
    "outer_lr": "Outer learning rate",
    "trim_ratio": "Trim ratio",
    "round_timeout_s": "Round timeout (seconds)",
    "outer_encoding": "Update encoding",
    "max_seconds": "Time limit (seconds)",
    "split": "Held-out share",
}
NOTES = {  # what the description alone would not tell a builder
    "epochs": "A distributed run's length is set by rounds × inner steps, not by this.",
    "steps": "A distributed run's length is set by rounds × inner steps, not by this.",
    "target_modules": "Comma-separated.",
}


@dataclass
class Setting:
    """One input of the form, with what the page says beside it."""

    key: str  # the form field name
    label: str
    hint: str
    kind: Literal["number", "text", "checkbox", "select", "model"]
    value: str = ""
    checked: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    min: str = ""
    max: str = ""
    step: str = ""
    advanced: bool = False
    error: str | None = None
    anchor: str = ""  # the HTML id, when the key does not make a unique one

    @property
    def id(self) -> str:
        """The input's HTML id."""
        return self.anchor or anchor(self.key)


@dataclass
class RewardSetting:
    """A GRPO built-in reward: ticked or not, its weight and its parameters."""

    name: str
    hint: str
    on: Setting
    settings: list[Setting]


@dataclass
class FormState:
    """The form as the browser sent it: its values, the recipe they make, and the errors."""

    values: dict[str, list[str]]
    method: str
    data: dict[str, Any]  # the recipe mapping
    recipe: Recipe | None
    errors: list[dict[str, str]]  # {"loc", "msg", "key", "anchor"}: the field blamed, or ""
    fitted: dict[str, str] = field(default_factory=dict)  # form key -> value chosen to fit

    def get(self, key: str, default: str = "") -> str:
        """The first value sent for `key`."""
        return (self.values.get(key) or [default])[0]

    def submitted(self) -> bool:
        """Whether the form was sent (not a first visit)."""
        return MARK in self.values

    def error_for(self, key: str) -> str | None:
        """The first error blaming field `key`."""
        return next((e["msg"] for e in self.errors if e["key"] == key), None)


def read_form(values: Mapping[str, list[str]]) -> FormState:
    """The recipe the form's `values` describe, validated; errors name their form field."""
    values = {k: list(v) for k, v in values.items()}
    first = {k: v[0] for k, v in values.items() if v}
    method = first.get("method", "lora")
    if method not in METHODS:
        method = "lora"
    sent = MARK in values
    sent_hyper = first.get(MARK) == method
    problems: list[dict[str, str]] = []
    data: dict[str, Any] = {"name": first.get("name", f"my-{method}-run").strip()}
    if first.get("description", "").strip():
        data["description"] = first["description"].strip()
    data["method"] = method
    data["base_model"] = _model_ref(first.get("base_model", ""))
    data["datasets"] = [
        _dataset(d, first.get(f"version.{d}", "")) for d in values.get("dataset", [])
    ]

    hyper = _hyper_class(method)
    hparams: dict[str, Any] = {}
    for name, info in hyper.model_fields.items():
        key = f"{method}.{name}"
        if name == "rewards":
            if sent_hyper:
                hparams["rewards"] = _rewards(values, first)
            continue
        raw = first.get(key, "")
        if info.annotation is bool:
            if sent_hyper:
                hparams[name] = key in values
        elif name == "target_modules":
            if raw.strip():
                hparams[name] = [m.strip() for m in raw.split(",") if m.strip()]
        elif name == "teacher_model":
            if raw.strip():
                hparams[name] = _model_ref(raw)
        elif raw.strip():
            hparams[name] = _scalar(raw)
    data["hyperparameters"] = hparams

    for section, model in (("evaluation", Evaluation), ("distributed", Distributed)):
        part: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            key = f"{section}.{name}"
            if info.annotation is bool:
                if sent:
                    part[name] = key in values
            elif first.get(key, "").strip():
                part[name] = _scalar(first[key])
        data[section] = part
    budget: dict[str, Any] = {}
    cairn = first.get("budget.max_tokens", "").strip()
    if cairn:
        try:  # typed in CAIRN; the recipe holds the token's smallest unit
            budget["max_tokens"] = str(parse_units(cairn, what="budget", zero=True))
        except InvalidInput as exc:
            problems.append(
                {"loc": "budget.max_tokens", "msg": exc.message, "key": "budget.max_tokens"}
            )
    if first.get("budget.max_seconds", "").strip():
        budget["max_seconds"] = _scalar(first["budget.max_seconds"])
    data["budget"] = budget

    recipe = None
    try:
        recipe = parse_recipe(data, source="recipe")
    except RecipeError as exc:
        for error in exc.errors:
            key = field_key(error["loc"], method, data)
            problems.append({**error, "key": key})
    for problem in problems:
        problem["anchor"] = anchor(problem["key"]) if problem["key"] else ""
    return FormState(values, method, data, None if problems else recipe, problems)


def with_defaults(state: FormState, chosen: Mapping[str, int]) -> FormState:
    """The form with `chosen` values (by recipe location, as `fit_defaults` gives them) in the
    fields the browser left empty; the form as it was if they would not make a valid recipe."""
    keys = {loc: field_key(loc, state.method, state.data) for loc in chosen}
    fitted = {k: str(chosen[loc]) for loc, k in keys.items() if not state.get(k).strip()}
    if not fitted or state.recipe is None:
        return state
    new = read_form({**state.values, **{key: [value] for key, value in fitted.items()}})
    if new.recipe is None:
        return state
    new.fitted = fitted
    return new


def free_fields(state: FormState, paths: Sequence[str]) -> frozenset[str]:
    """The recipe locations among `paths` whose form field the browser left empty."""
    return frozenset(
        p for p in paths if not state.get(field_key(p, state.method, state.data)).strip()
    )


def settings(state: FormState) -> dict[str, list[Setting]]:
    """The form's settings by section (hyperparameters, evaluation, distributed, budget)."""
    method = state.method
    out = {
        "hyperparameters": [
            _setting(f"{method}.{n}", n, f, state)
            for n, f in _hyper_class(method).model_fields.items()
            if n != "rewards"
        ],
        "evaluation": [_setting(f"evaluation.{n}", n, f, state) for n, f in _fields(Evaluation)],
        "distributed": [_setting(f"distributed.{n}", n, f, state) for n, f in _fields(Distributed)],
        "budget": [_setting(f"budget.{n}", n, f, state) for n, f in _fields(Budget)],
    }
    budget = out["budget"][0]
    budget.label, budget.kind, budget.step, budget.min = "Budget (CAIRN)", "number", "any", "0"
    budget.hint = (
        "Most CAIRN paid to the providers who train the model; it is held in escrow when the "
        "job starts. 0 asks for volunteer work. Default 0."
    )
    budget.value = state.get("budget.max_tokens", "0")
    return out


def rewards(state: FormState) -> list[RewardSetting]:
    """GRPO's built-in rewards as the form offers them."""
    defaults = {r.name for r in GrpoHyperparameters().rewards}
    shown = state.get(MARK) == "grpo"
    chosen = set(state.values.get("grpo.reward", [])) if shown else defaults
    out = []
    for choice in get_args(RewardChoice):
        name = choice.model_fields["name"].default
        prefix = f"grpo.reward.{name}"
        on = Setting("grpo.reward", name, choice.__doc__ or "", "checkbox", value=name)
        on.anchor = anchor(prefix)
        on.checked = name in chosen
        on.error = state.error_for(prefix)
        params = choice.model_fields["params"].annotation
        assert isinstance(params, type) and issubclass(params, BaseModel)
        weight = _setting(f"{prefix}.weight", "weight", choice.model_fields["weight"], state)
        extra = [_setting(f"{prefix}.{n}", n, f, state) for n, f in params.model_fields.items()]
        out.append(RewardSetting(name, choice.__doc__ or "", on, [weight, *extra]))
    return out


def anchor(key: str) -> str:
    """The HTML id of the input (or group) for form field `key`, which error links point to."""
    return "f-" + key.replace(".", "-")


def field_key(loc: str, method: str, data: Mapping[str, Any]) -> str:
    """The form field a recipe error at `loc` blames ("" when none does)."""
    if loc.startswith("hyperparameters.rewards"):
        rest = loc.removeprefix("hyperparameters.rewards")
        if not rest.startswith("["):
            return "grpo.reward"
        index, _, tail = rest[1:].partition("]")
        names = [r.get("name") for r in data["hyperparameters"].get("rewards", [])]
        if not index.isdigit() or int(index) >= len(names):
            return "grpo.reward"
        tail = tail.lstrip(".").removeprefix("params.")
        prefix = f"grpo.reward.{names[int(index)]}"
        return f"{prefix}.{tail}" if tail and tail != "name" else prefix
    if loc.startswith("hyperparameters."):
        return f"{method}.{loc.removeprefix('hyperparameters.')}"
    if loc.startswith("datasets["):
        index = loc[len("datasets[") :].partition("]")[0]
        refs = data["datasets"]
        if index.isdigit() and int(index) < len(refs) and loc.endswith(".version"):
            return f"version.{refs[int(index)]['dataset']}"
        return "dataset"
    if loc in ("name", "description", "base_model", "datasets", "method"):
        return "dataset" if loc == "datasets" else loc
    if loc.split(".")[0] in ("evaluation", "distributed", "budget"):
        return loc
    return ""


def _setting(key: str, name: str, info: FieldInfo, state: FormState) -> Setting:
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    hint = (info.description or "").rstrip(".") + "."
    if NOTES.get(name):
        hint += f" {NOTES[name]}"
    if key in state.fitted:
        hint += (
            f" Default {_shown(default)}; {state.fitted[key]} here, chosen from the time estimate "
            f"for a job of about {TARGET_SECONDS // 60} minutes on this node's providers."
        )
    elif default is not None:
        hint += f" Default {_shown(default)}."
    low, high = _bounds(info)
    setting = Setting(
        key,
        LABELS.get(name, name.replace("_", " ").capitalize()),
        hint,
        "text",
        advanced=name in ADVANCED,
    )
    setting.error = state.error_for(key)
    sent = state.values.get(key)
    if info.annotation is bool:
        setting.kind = "checkbox"
        shown = (
            state.get(MARK) == state.method
            if key.startswith(state.method + ".")
            else state.submitted()
        )
        setting.checked = (key in state.values) if shown else bool(default)
        setting.value = "on"
        return setting
    if get_origin(info.annotation) is Literal:
        setting.kind = "select"
        setting.choices = [(str(c), str(c)) for c in get_args(info.annotation)]
    elif name == "teacher_model":
        setting.kind = "model"
    elif info.annotation in (int, float):
        setting.kind = "number"
        setting.step = "1" if info.annotation is int else "any"
        setting.min, setting.max = low, high
    setting.value = sent[0] if sent else ("" if default is None else _shown(default))
    return setting


def _fields(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    return list(model.model_fields.items())


def _hyper_class(method: str) -> type[Hyperparameters]:
    return SPECS[method].hyperparameters


def _bounds(info: FieldInfo) -> tuple[str, str]:
    """The inclusive bounds an <input type=number> can state (exclusive ones are left open)."""
    low = high = ""
    for rule in info.metadata:
        if isinstance(rule, at.Ge):
            low = _shown(rule.ge)
        elif isinstance(rule, at.Le):
            high = _shown(rule.le)
    return low, high


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _scalar(raw: str) -> int | float | str:
    """A number as a number (the YAML then reads as typed), anything else as sent."""
    text = raw.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _model_ref(raw: str) -> int | str:
    text = raw.strip()
    return int(text) if text.isdigit() else text


def _dataset(raw: str, version: str) -> dict[str, Any]:
    ref: dict[str, Any] = {"dataset": int(raw) if raw.strip().isdigit() else raw}
    if version.strip():
        ref["version"] = version.strip()
    return ref


def _rewards(values: Mapping[str, Sequence[str]], first: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    for name in values.get("grpo.reward", []):
        if name not in BUILTIN_REWARDS:
            out.append({"name": name})  # the validator names the built-in set
            continue
        prefix = f"grpo.reward.{name}"
        reward: dict[str, Any] = {"name": name}
        if first.get(f"{prefix}.weight", "").strip():
            reward["weight"] = _scalar(first[f"{prefix}.weight"])
        params = {
            k.removeprefix(prefix + "."): _scalar(v)
            for k, v in first.items()
            if k.startswith(prefix + ".") and k != f"{prefix}.weight" and v.strip()
        }
        if params:
            reward["params"] = params
        out.append(reward)
    return out
