"""Example recipes: what `cairn recipe init` writes, one per method.

An example is generated from the models, so every comment states the default the parser applies
(with its bounds and choices) and an example always loads to the defaults; only the name, the
base model, the dataset ids and a required setting (distill's teacher) are placeholders. The
method's own text and starting model come from its `MethodSpec`.
"""

from __future__ import annotations

import textwrap
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
import yaml
from pydantic import BaseModel

from cairn.core.recipe.base import Recipe
from cairn.core.recipe.methods import METHODS, method_spec
from cairn.core.recipe.methods.grpo import BUILTIN_REWARDS, REWARD_DEFAULTS, GrpoHyperparameters
from cairn.core.recipe.parts import BASE_MODELS

_PLACEHOLDER_DATASET = 1
_WIDTH = 96


def example_recipe(method: str) -> str:
    """A commented example recipe for `method`: every field, what it does and its default."""
    spec = method_spec(method)
    fields = Recipe.model_fields
    out = _wrap(f"Cairn recipe: {method}. {spec.intro}", "")
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
    out += [f"base_model: {spec.base_model}"]
    out += _wrap(
        "The datasets trained on, at least one. `dataset` is the dataset's asset id (see "
        f"`cairn dataset list`): {_PLACEHOLDER_DATASET} is a placeholder, put yours. `version` "
        "pins a version by its manifest CID (see `cairn dataset show ID`); left out, the newest "
        "version is used.",
        "",
    )
    out += ["datasets:", f"  - dataset: {_PLACEHOLDER_DATASET}", "    # version: bafkrei..."]
    hyper = spec.hyperparameters
    values = hyper.model_validate(spec.example)
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
        if field.is_required():  # distill's teacher: the example holds a placeholder
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
        reward = REWARD_DEFAULTS[name]
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
