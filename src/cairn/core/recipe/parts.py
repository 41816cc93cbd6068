"""What every part of a recipe shares: strict sections, the error that names each bad field.

A section is a `RecipePart`: unknown keys are an error listing the keys allowed there, and YAML's
`yes` is never read as 1. A validator that blames a field below the model it validates raises
`FieldProblem`; `parse_recipe` turns every error into `RecipeError`'s `{loc, msg}` list. Here
too: how a recipe names a model (`ModelRef`), since the recipe and a method's hyperparameters
(distill's teacher) both do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from cairn.core.data_policy import Policy
from cairn.core.errors import InvalidInput

BASE_MODELS = ("SmolLM2-135M-Instruct", "all-MiniLM-L6-v2")  # registered on every new node
MAX_SEED = 2**32 - 1


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


class FieldProblem(ValueError):
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
                raise FieldProblem((str(key)[:60],), f"unknown field; {expected}")
            # YAML's `yes`/`true` is a bool, and pydantic would quietly read it as 1
            if isinstance(value, bool) and field.annotation in (int, float):
                raise FieldProblem((key,), f"Input should be a number; got {str(value).lower()}")
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
                f"got {shown(name)}"
            )
        return name
    raise ValueError(
        f"a model is an asset id or a base model name such as {BASE_MODELS[0]!r}; got {kind(value)}"
    )


ModelRef = Annotated[int | str, BeforeValidator(_model_ref)]
ModuleName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")]


def shown(value: object) -> str:
    """`value` as an error message quotes it, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind(value: object) -> str:
    """What `value` is, in words: `a list`, `a string`, `nothing`."""
    names = {list: "a list", str: "a string", dict: "a mapping", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)
