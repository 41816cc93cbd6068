"""The builder's pages: the no-code model builder (/build) and the training jobs (/jobs).

/build turns a form into a recipe (`cairn.web.recipe_form`), shows the YAML it will run and what
the run will cost (`cairn.compute.estimate`), and launches it with `node.jobs.create`, as
`POST /api/v1/jobs` does. /jobs lists the jobs; /jobs/{id} follows one: a live part the page
refreshes every 2 s until the job ends, with its rounds, providers, curves, logs and model.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from cairn.api.deps import NodeDep
from cairn.compute.estimate import ASSUMPTIONS, estimate_run
from cairn.compute.inputs import TASK
from cairn.compute.jobs import ACTIVE
from cairn.core.errors import CairnError
from cairn.core.recipe import METHODS, RECIPES, parse_recipe, recipe_to_yaml
from cairn.node import Node
from cairn.train.models import FAMILY_OF
from cairn.web.charts import Chart, Series, line_chart
from cairn.web.market import account_names
from cairn.web.recipe_form import MARK, FormState, read_form, rewards, settings
from cairn.web.render import count, page, redirect, short
from cairn.web.viewer import MaybeViewer, Viewer, ViewerDep

router = APIRouter()
ENDED = ("finished", "failed", "cancelled")
LOG_LINES = 60  # the newest events the job page shows


# -- the builder ------------------------------------------------------------------------------


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


def _models(node: Node) -> list[dict[str, Any]]:
    """Model assets a recipe can start from, with their family (causal-lm or encoder)."""
    bases = set(node.base_models.registered().values())
    out = []
    for asset in node.assets.list(kind="model", limit=500):
        try:
            family = node.catalog.family(asset)
        except CairnError:
            continue  # a model asset naming no weights: nothing to train from
        out.append(
            {
                "id": asset.asset_id,
                "name": asset.name,
                "family": family,
                "base": asset.asset_id in bases,
            }
        )
    return out


def _datasets(node: Node) -> list[dict[str, Any]]:
    """Datasets with their task and anchored versions (newest first)."""
    out = []
    for dataset in node.data.datasets.list():
        out.append(
            {
                "id": dataset.asset_id,
                "name": dataset.name,
                "task": dataset.spec.task.type,
                "versions": node.data.anchoring.versions(dataset.asset_id),
            }
        )
    return out


def _with_choices(
    values: dict[str, list[str]], models: list[dict[str, Any]], datasets: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """Start from a base model and dataset that fit the method: on a first visit (`?base=`
    picks the model), and when a new method was chosen that the earlier choices do not fit."""
    values = dict(values)
    base = values.pop("base", [""])[0]
    chosen = next((m for m in models if str(m["id"]) == base), None)
    if chosen and "method" not in values:
        values["method"] = ["classify" if chosen["family"] == "encoder" else "lora"]
    method = values.get("method", ["lora"])[0]
    family, task = FAMILY_OF.get(method, ""), TASK.get(method, "")
    switched = MARK in values and values[MARK][:1] != [method]
    current = next((m for m in models if [str(m["id"])] == values.get("base_model")), None)
    if "base_model" not in values or (switched and current and current["family"] != family):
        fits = [m for m in models if m["family"] == family]
        pick = chosen or (fits[0] if fits else None)
        if pick:
            values["base_model"] = [str(pick["id"])]
    ticked = {d["task"] for d in datasets if str(d["id"]) in values.get("dataset", [])}
    if (MARK not in values and "dataset" not in values) or (switched and task not in ticked):
        fits = [d for d in datasets if d["task"] == task and d["versions"]]
        values["dataset"] = [str(fits[0]["id"])] if fits else []
    return values


def _preview(state: FormState, datasets: list[dict[str, Any]]) -> dict[str, Any]:
    """What the preview shows: the recipe YAML and, for a valid recipe, the estimate."""
    if state.recipe is None:
        text = yaml.safe_dump(state.data, sort_keys=False, allow_unicode=True, width=1_000)
        return {"state": state, "yaml": text, "estimate": None, "assumptions": ASSUMPTIONS}
    by_id = {d["id"]: d for d in datasets}
    records = 0
    for ref in state.recipe.datasets:
        versions = by_id.get(ref.dataset, {}).get("versions", [])
        match = [v for v in versions if ref.version in (None, v["version"])]
        records += match[0]["records"] if match else 0
    return {
        "state": state,
        "yaml": recipe_to_yaml(state.recipe),
        "estimate": estimate_run(state.recipe, records or None),
        "records": records,
        "assumptions": ASSUMPTIONS,
    }


def _build_context(node: Node, values: dict[str, list[str]]) -> dict[str, Any]:
    models, datasets = _models(node), _datasets(node)
    state = read_form(_with_choices(values, models, datasets))
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
        **_preview(state, datasets),
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
async def build_page(request: Request, node: NodeDep, viewer: MaybeViewer) -> HTMLResponse:
    """The model builder: choose a base model, data, method and settings; see the recipe."""
    values = await _form_values(request)
    context = await run_in_threadpool(_build_context, node, values)
    return page(request, "build.html", **context)


@router.api_route("/build/preview", methods=["GET", "POST"], response_class=HTMLResponse)
async def build_preview(request: Request, node: NodeDep, viewer: MaybeViewer) -> HTMLResponse:
    """The recipe YAML and cost estimate for the form's values (an HTML fragment)."""
    values = await _form_values(request)
    context = await run_in_threadpool(_build_context, node, values)
    return page(request, "build_preview.html", **context)


@router.post("/build", response_model=None)
async def launch(
    request: Request, node: NodeDep, viewer: ViewerDep
) -> HTMLResponse | RedirectResponse:
    """Start the job the form describes; invalid settings show the validator's message."""
    values = await _form_values(request)
    context = await run_in_threadpool(_build_context, node, values)
    state: FormState = context["state"]
    if state.recipe is None:
        return page(request, "build.html", status=422, **context)
    try:
        job = await run_in_threadpool(
            node.jobs.create,
            viewer.address,
            state.recipe,
            signer=node.signers.find(viewer.address),
        )
    except CairnError as exc:
        return page(request, "build.html", status=exc.status, launch_error=exc.message, **context)
    return redirect(f"/jobs/{job['job_id']}", f"Job “{job['name']}” started.")


# -- jobs -------------------------------------------------------------------------------------


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request, node: NodeDep, viewer: MaybeViewer, builder: str | None = None
) -> HTMLResponse:
    """Every training job, newest first (one builder's with ?builder=)."""
    return page(
        request,
        "jobs.html",
        title="Training jobs",
        jobs=node.jobs.list_jobs(builder),
        builder=builder,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, node: NodeDep, job_id: str, viewer: MaybeViewer) -> HTMLResponse:
    """A job: its recipe, and a live part with its progress, curves, logs and model."""
    job = node.jobs.get(job_id)
    names = {}
    for asset_id in [job["base_asset"], *(d["dataset"] for d in job["datasets"])]:
        try:
            names[asset_id] = node.assets.get(asset_id).name
        except CairnError:
            names[asset_id] = f"asset {asset_id}"
    return page(
        request,
        "job.html",
        title=job["name"],
        names=names,
        recipe_yaml=recipe_to_yaml(parse_recipe(job["recipe"])),
        **live_context(node, job, viewer),
    )


@router.get("/jobs/{job_id}/live", response_class=HTMLResponse)
def job_live(request: Request, node: NodeDep, job_id: str, viewer: MaybeViewer) -> HTMLResponse:
    """The live part of a job's page (an HTML fragment); it carries data-done once the job ends."""
    return page(request, "job_live.html", **live_context(node, node.jobs.get(job_id), viewer))


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, node: NodeDep, job_id: str, viewer: ViewerDep) -> RedirectResponse:
    """Stop a running job (its builder only); the budget comes back when the node holds the key."""
    job = node.jobs.cancel(job_id, viewer.address, node.signers.find(viewer.address))
    refund = job["payouts"].get("refund")
    note = " Its budget was returned to you." if refund and int(refund) > 0 else ""
    return redirect(f"/jobs/{job_id}", f"Job “{job['name']}” cancelled.{note}")


def live_context(node: Node, job: dict[str, Any], viewer: Viewer | None) -> dict[str, Any]:
    """What the live part shows: progress, providers and their work, curves, logs, the model."""
    inner = int(job["recipe"]["distributed"]["inner_steps"])
    history = job.get("history", [])
    work: dict[str, dict[str, Any]] = {}
    for report in node.jobs.reports(job["job_id"]):
        entry = work.setdefault(report.account, {"rounds": 0, "samples": 0, "loss": None})
        entry["rounds"] += 1
        entry["samples"] += report.samples
        entry["loss"] = report.report.get("loss")
    providers = []
    for account in dict.fromkeys([*job["providers"], *work]):
        info = job["providers"].get(account, {})
        providers.append(
            {
                "account": account,
                "node_id": info.get("node_id"),
                "enlisted": info.get("enlisted", False),
                "released": info.get("released", False),
                "paid": job["payouts"].get(account),
                **work.get(account, {"rounds": 0, "samples": 0, "loss": None}),
            }
        )
    events, _ = node.jobs.logs(job["job_id"])
    ended = job["status"] in ENDED
    names = account_names(node)
    return {
        "job": job,
        "ended": ended,
        "can_cancel": viewer is not None
        and viewer.address.lower() == job["builder"].lower()
        and job["status"] in ACTIVE,
        "step": job["round"] * inner,
        "total_steps": job["rounds"] * inner,
        "providers": providers,
        "history": history,
        "charts": charts_of(history),
        "logs": [log_line(e, names) for e in events[-LOG_LINES:]],
        "accounts": names,  # labels of the accounts this node holds keys for
        "log_count": len(events),
    }


def charts_of(history: list[dict[str, Any]]) -> list[Chart]:
    """The loss chart (training and held-out) and one chart per other held-out metric."""
    train = [(h["round"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    held = [(h["round"], h["eval"]["loss"]) for h in history if "loss" in (h.get("eval") or {})]
    charts = [
        line_chart(
            [Series("training loss", train), Series("held-out loss", held)],
            title="Loss by round",
            y_label="loss",
        )
    ]
    metrics = dict.fromkeys(k for h in history for k in (h.get("eval") or {}) if k != "loss")
    for metric in metrics:
        points = [
            (h["round"], h["eval"][metric]) for h in history if metric in (h.get("eval") or {})
        ]
        charts.append(line_chart([Series(metric, points)], title=f"Held-out {metric} by round"))
    return charts


def log_line(event: dict[str, Any], names: dict[str, str] | None = None) -> dict[str, Any]:
    """One job event as a line a person reads; accounts by their labels in `names` (by
    lower-case address), as the rest of the pages show them."""
    kind = event.get("type", "?")
    names = names or {}
    text = {
        "started": lambda e: f"run started after round {e.get('resumed_after', 0)}",
        "provider": lambda e: (
            f"provider {_who(e.get('account'), names)} joined (node {e.get('node_id')})"
        ),
        "provider_refused": lambda e: f"node {e.get('node_id')} refused: {e.get('reason')}",
        "report": lambda e: _report_text(e.get("report") or {}, names),
        "round": lambda e: _round_text(e),
        "round_failed": lambda e: (
            f"round {e.get('round')}: {e.get('replies')} replies, {e.get('needed')} needed; "
            "trying again"
        ),
        "failed": lambda e: f"failed: {e.get('error')}",
        "cancelled": lambda e: f"cancelled after round {e.get('round')}",
        "finished": lambda e: f"finished; held-out {_metrics_text(e.get('metrics') or {})}",
    }.get(kind)
    return {
        "time": event.get("time"),
        "type": kind,
        "text": text(event) if text else str({k: v for k, v in event.items() if k != "type"})[:300],
    }


def _who(address: Any, names: dict[str, str]) -> str:
    """An account as a log line names it: its label and short address, or the short address."""
    label = names.get(str(address).lower())
    return f"{label} ({short(address)})" if label else short(address)


def _report_text(report: dict[str, Any], names: dict[str, str]) -> str:
    return (
        f"round {report.get('round')}: {_who(report.get('account'), names)} trained "
        f"{report.get('samples')} samples in {report.get('steps')} steps, "
        f"loss {_num(report.get('loss'))}"
    )


def _round_text(event: dict[str, Any]) -> str:
    text = (
        f"round {event.get('round')}/{event.get('rounds')} done: training loss "
        f"{_num(event.get('train_loss'))}, {count(len(event.get('workers') or []), 'worker')}"
    )
    if event.get("eval"):
        text += f", held-out {_metrics_text(event['eval'])}"
    if event.get("dropped"):
        text += f", {len(event['dropped'])} dropped"
    return text + f", {_num(event.get('seconds'))} s"


def _metrics_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_num(v)}" for k, v in metrics.items()) or "-"


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)
