"""The builder's page offers every registered training method, and the form each one's settings."""

from __future__ import annotations

from cairn.core.recipe import METHODS, SPECS
from cairn.web.builder import methods
from cairn.web.recipe_form import read_form
from cairn.web.recipe_settings import settings


def test_the_builder_lists_every_registered_method_with_its_task_and_family() -> None:
    listed = methods()
    assert [m["name"] for m in listed] == list(METHODS)
    for item in listed:
        spec = SPECS[item["name"]]
        assert item["title"] == spec.title
        assert f"Needs {spec.task} datasets" in item["text"] and spec.family in item["text"]


def test_the_form_shows_each_methods_own_hyperparameters() -> None:
    for name, spec in SPECS.items():
        state = read_form({"method": [name], "base_model": ["1"], "dataset": ["2"]})
        assert state.method == name
        shown = [s.key for s in settings(state)["hyperparameters"]]
        expected = [f"{name}.{f}" for f in spec.hyperparameters.model_fields if f != "rewards"]
        assert shown == expected
