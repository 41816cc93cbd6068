"""The model builder's form read into a recipe: the values a browser sends, validated.

The values a browser sends (a POST, or the same as a query string) become the recipe mapping of
`cairn.core.recipe`; the validator's errors come back keyed by the form field they blame
(`field_key`), with the HTML id their links point to (`anchor`). The time settings a builder left
empty (`free_fields`) can be filled with fitted values (`with_defaults`). What the form shows for
each setting is `cairn.web.recipe_settings`. Pure: no node, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.core.amounts import parse_units
from cairn.core.errors import InvalidInput
from cairn.core.recipe import (
    BUILTIN_REWARDS,
    METHODS,
    SPECS,
    Distributed,
    Evaluation,
    Hyperparameters,
    Recipe,
    RecipeError,
    parse_recipe,
)

# Sent by every submit of the form, naming the method whose settings it showed: an unticked
# checkbox then means False (for that method's hyperparameters only if the method is unchanged).
MARK = "_form"


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


def _hyper_class(method: str) -> type[Hyperparameters]:
    return SPECS[method].hyperparameters


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
