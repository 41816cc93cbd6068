"""`cairn recipe init|check`: write a commented example recipe, and check one before training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape

from cairn.cli.output import console, fail, fields, units
from cairn.core.errors import CairnError, Conflict, InvalidInput
from cairn.core.recipe import (
    METHODS,
    GrpoHyperparameters,
    Recipe,
    RecipeError,
    Reward,
    example_recipe,
    load_recipe_file,
)

app = typer.Typer(help="No-code training recipes: write one, check one.", no_args_is_help=True)


@app.command("init")
def init(
    method: Annotated[str, typer.Option(help=f"Training method: {', '.join(METHODS)}")],
    out: Annotated[Path, typer.Option(help="File to write")] = Path("recipe.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite the file if it exists")] = False,
) -> None:
    """Write a commented example recipe for a method: every field with its default."""
    try:
        text = example_recipe(method)
        try:
            with out.open("w" if force else "x", encoding="utf-8") as file:
                file.write(text)
        except FileExistsError:
            raise Conflict(f"{out} already exists: pass --force to overwrite it") from None
        except OSError as exc:
            raise InvalidInput(f"cannot write {out}: {exc.strerror}") from None
    except CairnError as exc:
        _fail(exc.message)
    console.print(f"Wrote a {method} recipe to {escape(str(out))}.", highlight=False)
    console.print(
        f"Put your own values in place of the placeholders, then check it with "
        f"[bold]cairn recipe check {escape(str(out))}[/].",
        highlight=False,
    )


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="Recipe YAML file")]) -> None:
    """Check a recipe and show it with every default filled in."""
    try:
        recipe = load_recipe_file(file)
    except RecipeError as exc:  # every error, not just the first, so one edit fixes them all
        _fail("\n".join(exc.lines()))
    except CairnError as exc:
        _fail(exc.message)
    _show(recipe, f"Recipe {file}: valid")


def _show(recipe: Recipe, title: str) -> None:
    """The resolved recipe as one table: what it trains, on what, how, and across how many."""
    items: dict[str, Any] = {
        "name": recipe.name,
        "method": recipe.method,
        "base model": _model(recipe.base_model),
        "datasets": ", ".join(
            f"{d.dataset} @ {d.version}" if d.version else f"{d.dataset} (newest version)"
            for d in recipe.datasets
        ),
    }
    if recipe.description:
        items["description"] = recipe.description
    hyper = recipe.hyperparameters
    for name in type(hyper).model_fields:
        if name != "rewards":
            items[name] = getattr(hyper, name)
    if isinstance(hyper, GrpoHyperparameters):
        items["rewards"] = ", ".join(_reward(r) for r in hyper.rewards)
    items["evaluation"] = f"{recipe.evaluation.split:.0%} held out (seed {recipe.evaluation.seed})"
    dist = recipe.distributed
    items["workers"] = f"{dist.workers} (at least {dist.min_workers} per round)"
    items["rounds x inner steps (H)"] = f"{dist.rounds} x {dist.inner_steps}"
    items["outer optimizer"] = f"SGD lr {dist.outer_lr:g}, momentum {dist.outer_momentum:g}" + (
        ", Nesterov" if dist.nesterov else ""
    )
    items["aggregation"] = {
        "trimmed_mean": f"trimmed_mean (trim {dist.trim_ratio:g} each end)",
        "krum": f"krum (tolerating {dist.byzantine} faulty)",
    }.get(dist.aggregation, dist.aggregation)
    items["round timeout"] = f"{dist.round_timeout_s} s"
    budget = recipe.budget
    paid = f"{units(budget.max_tokens)} CAIRN" if budget.max_tokens != "0" else "unpaid"
    items["budget"] = f"{paid}, at most {budget.max_seconds} s"
    # names and descriptions are the user's text: never Rich markup
    fields(title, items)


def _fail(message: str) -> NoReturn:
    """`fail` with the message printed literally: paths and field names are not Rich markup."""
    fail(InvalidInput(message))


def _model(ref: int | str) -> str:
    return f"asset {ref}" if isinstance(ref, int) else ref


def _reward(reward: Reward) -> str:
    """`length_penalty x0.5 (target=64, scale=1.0)`."""
    params = ", ".join(f"{k}={v}" for k, v in reward.params.model_dump().items())
    return f"{reward.name} x{reward.weight:g}" + (f" ({params})" if params else "")
