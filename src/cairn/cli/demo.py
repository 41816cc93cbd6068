"""`cairn demo`: the whole loop on a fresh node, printed as tables (or JSON)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from cairn.cli.output import console, errors, table
from cairn.core.errors import InvalidInput


def demo(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the story as one JSON object")
    ] = False,
    keep: Annotated[
        Path | None,
        typer.Option(
            "--keep",
            help="Leave the node's data folder here (must be new or empty): "
            "`cairn node start --data-dir DIR` then serves the trained model",
        ),
    ] = None,
    rounds: Annotated[int, typer.Option(help="DiLoCo rounds of the training job", min=1)] = 1,
    inner_steps: Annotated[
        int | None, typer.Option(help="Local steps per round  [default: the demo's own, 3]", min=1)
    ] = None,
) -> None:
    """Run Cairn's whole story on a fresh embedded chain: data, training, paid use, payouts."""
    from cairn.demo import INNER_STEPS, Story

    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise InvalidInput(f"--keep {keep}: the folder is not empty; name a new one")
    folder = keep if keep is not None else Path(tempfile.mkdtemp(prefix="cairn-demo-"))
    started = time.monotonic()

    def say(text: str) -> None:
        (errors if as_json else console).print(f"[dim]{time.monotonic() - started:6.1f}s[/] {text}")

    try:
        result = Story(folder, say, rounds=rounds, inner_steps=inner_steps or INNER_STEPS).run()
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    seconds = round(time.monotonic() - started, 1)
    if as_json:
        steps = [
            {"title": s.title, "text": s.text, "columns": s.columns, "rows": s.rows}
            for s in result.steps
        ]
        out = {**result.facts, "steps": steps, "seconds": seconds}
        if keep is not None:
            out["data_dir"] = str(keep.resolve())
        print(json.dumps(out, default=str))
        return
    for step in result.steps:
        console.print()
        console.print(f"[bold]{step.title}[/]: {step.text}", highlight=False)
        table("", step.columns, step.rows)
    console.print(f"\ndone in {seconds} s")
    if keep is not None:
        console.print(
            f"\nThe node's data is in {keep}. Serve the model with\n"
            f"  cairn node start --data-dir {keep}\n"
            f"and call model {result.facts['model']} with the API key\n"
            f"  {result.facts['api_key']}",
            highlight=False,
        )
