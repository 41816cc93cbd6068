"""Reading a recipe: from a mapping (`parse_recipe`) or YAML (`load_recipe`), and writing one.

`parse_recipe` validates against the union of every method's recipe, picked by `method` (built
from the method registry), and turns each pydantic error into `{loc, msg}` with the union's
tags taken out of the path, so an error reads `hyperparameters.rewards[0].name: ...` and names
what would be accepted. YAML is loaded safely (no Python objects), refusing a key given twice.
Pure but for `load_recipe_file`, which reads one file.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from cairn.core.errors import InvalidInput
from cairn.core.recipe.base import Recipe
from cairn.core.recipe.methods import METHODS, SPECS
from cairn.core.recipe.methods.grpo import BUILTIN_REWARDS
from cairn.core.recipe.parts import FieldProblem, RecipeError, kind, shown

MAX_RECIPE_BYTES = 65_536  # a recipe is a page of settings; anything far larger is a mistake
RECIPES: dict[str, type[Recipe]] = {name: spec.recipe for name, spec in SPECS.items()}
"""Each method's recipe model, by method name."""
# LoraRecipe | SftRecipe | ...: `method` picks the one to validate against
AnyRecipe: Any = Annotated[
    functools.reduce(operator.or_, RECIPES.values()), Field(discriminator="method")
]
_ADAPTER: TypeAdapter[Recipe] = TypeAdapter(AnyRecipe)


def parse_recipe(data: Any, *, source: str = "recipe") -> Recipe:
    """A recipe from a mapping (parsed YAML, a form, JSON); `RecipeError` names each bad field."""
    if not isinstance(data, Mapping):
        raise RecipeError(
            source, [{"loc": "", "msg": f"must be a mapping of fields; got {kind(data)}"}]
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
    if isinstance(cause, FieldProblem):
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
            msg = f"unknown method {shown(ctx['tag'])}; expected one of {', '.join(choices)}"
        else:
            msg = (
                f"unknown reward {shown(ctx['tag'])}: rewards come from the built-in set "
                f"({', '.join(choices)}); a recipe never runs code"
            )
    elif kind != "missing" and isinstance(error.get("input"), str | int | float):
        msg = f"{msg}; got {shown(error['input'])}"
    return {"loc": _path(loc), "msg": msg}


def _path(loc: list[Any]) -> str:
    """`datasets[0].version` from ('datasets', 0, 'version')."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


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
        what = "nothing (the text is empty)" if data is None else kind(data)
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
