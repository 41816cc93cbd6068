"""`MethodSpec`: what a training method is without torch, as one value in the method registry.

A method is a plug-in in two halves, keyed by the same name. This half is pure and lives in
core, because parsing a recipe, writing an example and showing the web form need it while core
must not import torch: the recipe subclass (its `method` name and hyperparameter model), the
dataset task it trains on, the model family it trains, the record fields it reads and the text
that introduces it. The other half, `cairn.train.methods.<name>`, holds what needs torch: the
loss of a step, evaluation and the model it loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cairn.core.data_policy import TaskType
from cairn.core.errors import InvalidInput
from cairn.core.recipe.base import Recipe
from cairn.core.recipe.hyperparameters import Hyperparameters

Family = Literal["causal-lm", "encoder"]


@dataclass(frozen=True)
class MethodSpec:
    """One training method's recipe model and the data and model it needs."""

    recipe: type[Recipe]  # fixes `method` (a Literal default) and `hyperparameters`
    task: TaskType  # the dataset task it trains on
    family: Family  # the model family it trains: what its base model must be
    fields: tuple[str, ...]  # the record fields it reads: the task's required fields
    intro: str  # what it does and needs, in a sentence or three: the example recipe's header
    base_model: str  # the base model an example recipe starts from
    example: Mapping[str, Any] = field(default_factory=dict)  # placeholders for required settings
    labelled: bool = False  # trains on the dataset's labels: 2+ distinct, each record's among them

    @property
    def name(self) -> str:
        """The method's name, as a recipe's `method` spells it."""
        name = self.recipe.model_fields["method"].default
        assert isinstance(name, str), f"{self.recipe.__name__}.method needs a default"
        return name

    @property
    def hyperparameters(self) -> type[Hyperparameters]:
        """The method's hyperparameter model."""
        hyper = self.recipe.model_fields["hyperparameters"].annotation
        assert isinstance(hyper, type) and issubclass(hyper, Hyperparameters)
        return hyper

    @property
    def title(self) -> str:
        """The method in a few words: the first line of its recipe's docstring, no full stop."""
        return (self.recipe.__doc__ or self.name).splitlines()[0].rstrip(".")

    def check_records(
        self, records: Sequence[Any], hp: Hyperparameters, labels: Sequence[str] | None
    ) -> None:
        """Raise `InvalidInput` naming the first record, field or setting that does not fit.

        Pure, so that the node checks a job's inputs before it escrows a budget (without
        loading torch) exactly as each worker checks its shard before training.
        """
        if not isinstance(hp, self.hyperparameters):
            raise InvalidInput(
                f"{self.name}: hyperparameters must be {self.hyperparameters.__name__}; "
                f"got {type(hp).__name__}"
            )
        if not records:
            raise InvalidInput(
                f"{self.name}: the shard is empty; a worker needs at least one record"
            )
        if self.labelled and (labels is None or len(labels) < 2 or len(set(labels)) != len(labels)):
            raise InvalidInput(
                f"{self.name}: labels must list the dataset's 2 or more distinct labels"
            )
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InvalidInput(f"record {i}: must be an object with {', '.join(self.fields)}")
            for name in self.fields:
                if not isinstance(record.get(name), str):
                    problem = "missing" if name not in record else "must be a string"
                    raise InvalidInput(
                        f"record {i}: field {name!r} {problem} (a {self.name} record has "
                        f"{', '.join(self.fields)})"
                    )
            if self.labelled and labels is not None and record["label"] not in labels:
                raise InvalidInput(
                    f"record {i}: field 'label' must be one of {', '.join(labels)}; "
                    f"got {record['label']!r}"
                )
