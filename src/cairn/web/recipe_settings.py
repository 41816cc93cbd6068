"""The builder's inputs as the page shows them, read from the recipe schema.

Every setting the form shows comes from the recipe models of `cairn.core.recipe` (name, type,
default, bounds, description), so the form offers exactly what the validator accepts: a `Setting`
per field, by section, with the label, hint, input kind and bounds the page needs, the value the
browser sent (or the default, or the value fitted to the time estimate) and the error blaming it;
GRPO's built-in rewards as `RewardSetting`s. Reading the sent values into a recipe is
`cairn.web.recipe_form`. Pure: no node, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cairn.compute.fitted_defaults import TARGET_SECONDS
from cairn.core.recipe import (
    SPECS,
    Budget,
    Distributed,
    Evaluation,
    GrpoHyperparameters,
    RewardChoice,
)
from cairn.web.recipe_form import MARK, FormState, anchor

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


def settings(state: FormState) -> dict[str, list[Setting]]:
    """The form's settings by section (hyperparameters, evaluation, distributed, budget)."""
    method = state.method
    out = {
        "hyperparameters": [
            _setting(f"{method}.{n}", n, f, state)
            for n, f in SPECS[method].hyperparameters.model_fields.items()
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
