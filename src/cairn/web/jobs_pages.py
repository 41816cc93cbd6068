"""The training jobs' pages: the list (/jobs) and one job's page (/jobs/{id}), which follows it.

A job's page shows its recipe and a live part (/jobs/{id}/live) that the page refreshes every
2 s until the job ends: its progress, its providers with their accepted work and pay, the loss
and held-out metric curves by round, its newest events as lines a person reads, and its model.
Its builder may cancel it from there. Jobs are started from the builder (`cairn.web.builder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from cairn.api.deps import AccountsDep, AssetsDep, JobsDep
from cairn.assets.service import AssetService
from cairn.compute.job import ACTIVE, ENDED, Job, JobEvent, RoundEntry
from cairn.compute.jobs import SERVERAPP_RESTARTS, JobService
from cairn.core.errors import CairnError
from cairn.core.recipe import parse_recipe, recipe_to_yaml
from cairn.web.charts import Chart, Series, line_chart
from cairn.web.render import count, page, redirect, short
from cairn.web.viewer import MaybeViewer, Viewer, ViewerDep

router = APIRouter()
LOG_LINES = 60  # the newest events the job page shows


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request, jobs: JobsDep, viewer: MaybeViewer, builder: str | None = None
) -> HTMLResponse:
    """Every training job, newest first (one builder's with ?builder=)."""
    return page(
        request,
        "jobs.html",
        title="Training jobs",
        jobs=jobs.list_jobs(builder),
        builder=builder,
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request,
    jobs: JobsDep,
    assets: AssetsDep,
    accounts: AccountsDep,
    job_id: str,
    viewer: MaybeViewer,
) -> HTMLResponse:
    """A job: its recipe, and a live part with its progress, curves, logs and model."""
    job = jobs.get(job_id)
    return page(
        request,
        "job.html",
        title=job.name,
        names=asset_names(assets, [job.base_asset, *(d.dataset for d in job.datasets)]),
        recipe_yaml=recipe_to_yaml(parse_recipe(job.recipe)),
        **live_context(jobs, job, viewer, accounts.names()),
    )


@router.get("/jobs/{job_id}/live", response_class=HTMLResponse)
def job_live(
    request: Request, jobs: JobsDep, accounts: AccountsDep, job_id: str, viewer: MaybeViewer
) -> HTMLResponse:
    """The live part of a job's page (an HTML fragment); it carries data-done once the job ends."""
    context = live_context(jobs, jobs.get(job_id), viewer, accounts.names())
    return page(request, "job_live.html", **context)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, jobs: JobsDep, job_id: str, viewer: ViewerDep) -> RedirectResponse:
    """Stop a running job (its builder only); the budget comes back when the node holds the key."""
    job = jobs.cancel(job_id, viewer.address)
    note = " Its budget was returned to you." if job.refund > 0 else ""
    return redirect(f"/jobs/{job_id}", f"Job “{job.name}” cancelled.{note}")


def asset_names(assets: AssetService, asset_ids: list[int]) -> dict[int, str]:
    """The names of the assets a job names, by id ("asset 7" for one the node cannot read)."""
    names = {}
    for asset_id in asset_ids:
        try:
            names[asset_id] = assets.get(asset_id).name
        except CairnError:
            names[asset_id] = f"asset {asset_id}"
    return names


@dataclass(frozen=True)
class ProviderRow:
    """A provider as a job's page shows it: how it joined, its accepted work, its pay."""

    account: str
    node_id: int | None  # None: its reports came in, but not its joining
    enlisted: bool
    released: bool
    paid: str | None  # smallest units from the job's budget
    rounds: int  # rounds with an accepted report
    samples: int
    loss: float | None  # in its last accepted report


@dataclass(frozen=True)
class LogLine:
    """A job event as a line a person reads."""

    time: float
    type: str
    text: str


def provider_rows(jobs: JobService, job: Job) -> list[ProviderRow]:
    """The job's providers: those that joined, then any whose reports alone came in."""
    reports: dict[str, list[tuple[int, float | None]]] = {}
    for report in jobs.reports(job.job_id):
        reports.setdefault(report.account, []).append((report.samples, report.report.get("loss")))
    rows = []
    for account in dict.fromkeys([*job.providers, *reports]):
        joined = job.providers.get(account)
        work = reports.get(account, [])
        rows.append(
            ProviderRow(
                account=account,
                node_id=joined.node_id if joined else None,
                enlisted=joined.enlisted if joined else False,
                released=joined.released if joined else False,
                paid=job.payouts.get(account),
                rounds=len(work),
                samples=sum(samples for samples, _ in work),
                loss=work[-1][1] if work else None,
            )
        )
    return rows


def live_context(
    jobs: JobService, job: Job, viewer: Viewer | None, names: dict[str, str]
) -> dict[str, Any]:
    """What the live part shows: progress, providers and their work, curves, logs, the model;
    accounts by the labels in `names` (the accounts this node holds keys for)."""
    events = jobs.logs(job.job_id).events
    return {
        "job": job,
        "ended": job.status in ENDED,
        "can_cancel": viewer is not None
        and viewer.address.lower() == job.builder.lower()
        and job.status in ACTIVE,
        "step": job.round * job.inner_steps,
        "total_steps": job.rounds * job.inner_steps,
        "providers": provider_rows(jobs, job),
        "history": job.history,
        "charts": charts_of(job.history),
        "logs": [log_line(e, names) for e in events[-LOG_LINES:]],
        "accounts": names,
        "log_count": len(events),
    }


def charts_of(history: tuple[RoundEntry, ...]) -> list[Chart]:
    """The loss chart (training and held-out) and one chart per other held-out metric."""
    train = [(h.round, h.train_loss) for h in history if h.train_loss is not None]
    held = [(h.round, h.eval["loss"]) for h in history if "loss" in h.eval]
    charts = [
        line_chart(
            [Series("training loss", train), Series("held-out loss", held)],
            title="Loss by round",
            y_label="loss",
        )
    ]
    metrics = dict.fromkeys(k for h in history for k in h.eval if k != "loss")
    for metric in metrics:
        points = [(h.round, h.eval[metric]) for h in history if metric in h.eval]
        charts.append(line_chart([Series(metric, points)], title=f"Held-out {metric} by round"))
    return charts


def log_line(event: JobEvent, names: dict[str, str] | None = None) -> LogLine:
    """One job event as a line a person reads; accounts by their labels in `names` (by
    lower-case address), as the rest of the pages show them."""
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
        "serverapp_died": lambda e: (
            f"its ServerApp process (run {e.get('run_id')}) died: run started again "
            f"({e.get('restart')} of {SERVERAPP_RESTARTS})"
        ),
        "failed": lambda e: f"failed: {e.get('error')}",
        "cancelled": lambda e: f"cancelled after round {e.get('round')}",
        "finished": lambda e: f"finished; held-out {_metrics_text(e.get('metrics') or {})}",
    }.get(event.type)
    fields = event.fields  # each kind of event has its own
    return LogLine(
        time=event.time,
        type=event.type,
        text=text(fields) if text else str({"time": event.time, **fields})[:300],
    )


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
