"""The no-code model builder (/build): a form that becomes a recipe, its preview, its launch.

/build turns a form into a recipe (`cairn.web.recipe_form`, its inputs from
`cairn.web.recipe_settings`), shows the YAML it will run, what the run will cost
(`cairn.compute.estimate`) and how long it will take on this node's providers
(`cairn.compute.pace`), and launches it with `JobService.create`, as `POST /api/v1/jobs` does.
The rounds, inner steps, batch size and time limits a builder leaves empty (every one, on a
first visit) are fitted so that the job finishes in about `TARGET_SECONDS`
(`cairn.compute.fitted_defaults`). A launched job is followed on its page
(`cairn.web.jobs_pages`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from cairn.api.deps import JobsDep
from cairn.compute.choices import TrainableDataset, TrainableModel
from cairn.compute.estimate import ASSUMPTIONS, estimate_run
from cairn.compute.fitted_defaults import FITTED_FIELDS, TARGET_SECONDS, fit_defaults
from cairn.compute.inputs import TASK
from cairn.compute.jobs import JobService
from cairn.compute.pace import RunConditions, estimate_time
from cairn.core.errors import CairnError
from cairn.core.recipe import FAMILY_OF, METHODS, RECIPES, recipe_to_yaml
from cairn.web.recipe_form import MARK, FormState, free_fields, read_form, with_defaults
from cairn.web.recipe_settings import rewards, settings
from cairn.web.render import page, redirect
from cairn.web.viewer import MaybeViewer, ViewerDep

router = APIRouter()


def methods() -> list[dict[str, str]]:
    """Each method the recipe validator accepts, with a sentence on what it does and needs."""
    out = []
    for name in METHODS:
        recipe = RECIPES[name]
        hyper = recipe.model_fields["hyperparameters"].annotation
        out.append(
            {
                "name": name,
                "title": (recipe.__doc__ or name).splitlines()[0].rstrip("."),
                "text": f"{getattr(hyper, '__doc__', '')} Needs {TASK[name]} datasets and "
                f"{'an' if FAMILY_OF[name][0] in 'aeiou' else 'a'} {FAMILY_OF[name]} base model.",
            }
        )
    return out


def _with_choices(
    values: dict[str, list[str]], models: list[TrainableModel], datasets: list[TrainableDataset]
) -> dict[str, list[str]]:
    """Start from a base model and dataset that fit the method: on a first visit (`?base=`
    picks the model), and when a new method was chosen that the earlier choices do not fit."""
    values = dict(values)
    base = values.pop("base", [""])[0]
    chosen = next((m for m in models if str(m.id) == base), None)
    if chosen and "method" not in values:
        values["method"] = ["classify" if chosen.family == "encoder" else "lora"]
    method = values.get("method", ["lora"])[0]
    family, task = FAMILY_OF.get(method, ""), TASK.get(method, "")
    switched = MARK in values and values[MARK][:1] != [method]
    current = next((m for m in models if [str(m.id)] == values.get("base_model")), None)
    if "base_model" not in values or (switched and current and current.family != family):
        fits = [m for m in models if m.family == family]
        pick = chosen or (fits[0] if fits else None)
        if pick:
            values["base_model"] = [str(pick.id)]
    ticked = {d.task for d in datasets if str(d.id) in values.get("dataset", [])}
    if (MARK not in values and "dataset" not in values) or (switched and task not in ticked):
        usable = [d for d in datasets if d.task == task and d.versions]
        values["dataset"] = [str(usable[0].id)] if usable else []
    return values


def _preview(
    state: FormState, datasets: list[TrainableDataset], conditions: RunConditions | None
) -> dict[str, Any]:
    """What the preview shows: the recipe YAML and, for a valid recipe, the estimates of its
    size, cost and time."""
    if state.recipe is None or conditions is None:
        text = yaml.safe_dump(state.data, sort_keys=False, allow_unicode=True, width=1_000)
        return {
            "state": state,
            "yaml": text,
            "estimate": None,
            "time": None,
            "assumptions": ASSUMPTIONS,
        }
    by_id = {d.id: d for d in datasets}
    records = 0
    for ref in state.recipe.datasets:
        chosen = by_id.get(ref.dataset)
        versions = chosen.versions if chosen else ()
        match = [v for v in versions if ref.version in (None, v.version)]
        records += match[0].records if match else 0
    return {
        "state": state,
        "yaml": recipe_to_yaml(state.recipe),
        "estimate": estimate_run(state.recipe, records or None),
        "time": estimate_time(state.recipe, conditions),
        "target_minutes": TARGET_SECONDS // 60,
        "records": records,
        "assumptions": ASSUMPTIONS,
    }


def _fitted(jobs: JobService, state: FormState) -> tuple[FormState, RunConditions | None]:
    """The form with defaults that fit this node (`fit_defaults`) in the time settings the
    browser left empty, and the conditions they were fitted to; what a builder typed stays."""
    if state.recipe is None:
        return state, None
    conditions = jobs.conditions(state.recipe)
    free = free_fields(state, FITTED_FIELDS)
    # the fitted settings leave the model, data and method as they were: the same conditions
    return with_defaults(state, fit_defaults(state.recipe, free, conditions)), conditions


def _build_context(jobs: JobService, values: dict[str, list[str]]) -> dict[str, Any]:
    models, datasets = jobs.models(), jobs.datasets()
    state, conditions = _fitted(jobs, read_form(_with_choices(values, models, datasets)))
    return {
        "title": "Build a model",
        "methods": methods(),
        "models": models,
        "datasets": datasets,
        "family": FAMILY_OF[state.method],
        "task": TASK[state.method],
        "state": state,
        "sections": settings(state),
        "rewards": rewards(state) if state.method == "grpo" else [],
        **_preview(state, datasets, conditions),
    }


async def _form_values(request: Request) -> dict[str, list[str]]:
    """The form's fields from a POST body, or from the query string of a GET."""
    if request.method == "POST":
        items = [(k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str)]
    else:
        items = list(request.query_params.multi_items())
    values: dict[str, list[str]] = defaultdict(list)
    for key, value in items:
        values[key].append(value)
    return dict(values)


@router.get("/build", response_class=HTMLResponse)
async def build_page(request: Request, jobs: JobsDep, viewer: MaybeViewer) -> HTMLResponse:
    """The model builder: choose a base model, data, method and settings; see the recipe."""
    values = await _form_values(request)
    context = await run_in_threadpool(_build_context, jobs, values)
    return page(request, "build.html", **context)


@router.api_route("/build/preview", methods=["GET", "POST"], response_class=HTMLResponse)
async def build_preview(request: Request, jobs: JobsDep, viewer: MaybeViewer) -> HTMLResponse:
    """The recipe YAML and cost estimate for the form's values (an HTML fragment)."""
    values = await _form_values(request)
    context = await run_in_threadpool(_build_context, jobs, values)
    return page(request, "build_preview.html", **context)


@router.post("/build", response_model=None)
async def launch(
    request: Request, jobs: JobsDep, viewer: ViewerDep
) -> HTMLResponse | RedirectResponse:
    """Start the job the form describes; invalid settings show the validator's message."""
    values = await _form_values(request)
    context = await run_in_threadpool(_build_context, jobs, values)
    state: FormState = context["state"]
    if state.recipe is None:
        return page(request, "build.html", status=422, **context)
    try:
        job = await run_in_threadpool(jobs.create, viewer.address, state.recipe)
    except CairnError as exc:
        return page(request, "build.html", status=exc.status, launch_error=exc.message, **context)
    return redirect(f"/jobs/{job.job_id}", f"Job “{job.name}” started.")
