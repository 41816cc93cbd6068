"""`cairn recipe init|check` as a user runs them, on the sub-app alone (no node needed)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from typer.testing import CliRunner

from cairn.cli.recipes import app
from cairn.core.recipe import METHODS, example_recipe

runner = CliRunner()


class Ran(NamedTuple):
    exit_code: int
    text: str  # stdout and stderr, with Rich's line wrapping undone


def run(*args: str) -> Ran:
    result = runner.invoke(app, list(args))
    return Ran(result.exit_code, " ".join(result.output.split()))


@pytest.mark.parametrize("method", METHODS)
def test_init_writes_a_recipe_that_check_accepts(tmp_path: Path, method: str) -> None:
    out = tmp_path / "recipe.yaml"
    made = run("init", "--method", method, "--out", str(out))
    assert made.exit_code == 0, made.text
    assert out.read_text() == example_recipe(method)
    assert f"cairn recipe check {out}" in made.text
    checked = run("check", str(out))
    assert checked.exit_code == 0, checked.text
    assert "valid" in checked.text
    assert f"method │ {method}" in checked.text
    assert "rounds x inner steps (H) │ 10 x 50" in checked.text


def test_init_writes_recipe_yaml_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("init", "--method", "lora").exit_code == 0
    assert (tmp_path / "recipe.yaml").read_text() == example_recipe("lora")


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "recipe.yaml"
    out.write_text("mine\n")
    refused = run("init", "--method", "grpo", "--out", str(out))
    assert refused.exit_code == 1
    assert f"error: {out} already exists: pass --force to overwrite it" in refused.text
    assert out.read_text() == "mine\n"
    forced = run("init", "--method", "grpo", "--out", str(out), "--force")
    assert forced.exit_code == 0, forced.text
    assert out.read_text() == example_recipe("grpo")


def test_init_of_an_unknown_method_fails(tmp_path: Path) -> None:
    out = tmp_path / "recipe.yaml"
    result = run("init", "--method", "dpo", "--out", str(out))
    assert result.exit_code == 1
    assert "unknown method 'dpo'; expected one of lora, sft, classify, grpo, distill" in result.text
    assert not out.exists()


def test_init_into_a_missing_folder_fails(tmp_path: Path) -> None:
    result = run("init", "--method", "sft", "--out", str(tmp_path / "no" / "recipe.yaml"))
    assert result.exit_code == 1
    assert "cannot write" in result.text


def test_check_of_a_bad_recipe_names_every_field_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    data = yaml.safe_load(example_recipe("grpo"))
    data["hyperparameters"]["batch_size"] = 6
    data["distributed"] = {"aggregation": "krum", "workers": 3}
    path.write_text(yaml.safe_dump(data))
    result = run("check", str(path))
    assert result.exit_code == 1
    assert (
        f"error: {path}: hyperparameters.batch_size: must be a multiple of num_generations (4)"
        in result.text
    )
    assert f"{path}: distributed.workers: krum tolerating byzantine=1" in result.text


def test_check_of_broken_yaml_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text("name: run\n  method: lora\n")
    result = run("check", str(path))
    assert result.exit_code == 1
    assert f"error: {path}: line 2, column 9: mapping values are not allowed here" in result.text


def test_check_of_a_missing_file_fails(tmp_path: Path) -> None:
    result = run("check", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1
    assert "nope.yaml: no such file" in result.text


def test_check_prints_user_text_literally(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    data = yaml.safe_load(example_recipe("lora"))
    data["name"] = "[/bold] run [red]"
    path.write_text(yaml.safe_dump(data))
    result = run("check", str(path))
    assert result.exit_code == 0, result.text
    assert "[/bold] run [red]" in result.text
    data["hyperparameters"] = {"[/x]": 1}
    path.write_text(yaml.safe_dump(data))
    result = run("check", str(path))
    assert result.exit_code == 1
    assert "hyperparameters.[/x]: unknown field" in result.text


def test_init_prints_a_path_literally(tmp_path: Path) -> None:
    out = tmp_path / "[red]recipe.yaml"
    out.write_text("mine\n")
    result = run("init", "--method", "lora", "--out", str(out))
    assert result.exit_code == 1
    assert f"{out} already exists" in result.text
