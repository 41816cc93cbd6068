"""`cairn train`, `cairn job ...` and `cairn worker start|stake|unbond|withdraw`: training jobs,
provider workers and their stakes.

Over 400 lines because it holds both sides of a job's compute, the builder's commands and the
provider's; the worker commands (from `start_worker` on) are the part to move into their own
module when either side grows.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cairn.api.client import NodeClient
from cairn.cli.common import (
    DataDir,
    NodeUrl,
    client,
    config,
    find_account,
    keystore,
    stop_on_signals,
    unlock,
)
from cairn.cli.output import console, fields, table, units
from cairn.cli.verify import print_verification
from cairn.compute.job import ENDED, Job, JobEvent, JobLog, JobSummary
from cairn.core.errors import Conflict, Forbidden, InvalidInput
from cairn.core.recipe import load_recipe_file, recipe_to_yaml

job_app = typer.Typer(help="Follow and control training jobs.", no_args_is_help=True)
worker_app = typer.Typer(help="Provide compute: run a worker for a node.", no_args_is_help=True)

Account = Annotated[str, typer.Option("--account", "-a", help="Your account: address or label")]


def train(
    recipe_file: Annotated[Path, typer.Argument(help="The recipe YAML (see `cairn recipe init`)")],
    account: Account,
    follow: Annotated[bool, typer.Option(help="Show progress until the job ends")] = True,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Start a training job from a recipe and follow its rounds."""
    recipe = load_recipe_file(recipe_file)
    builder = unlock(data_dir, account)
    with client(node_url) as api:
        api.sign_in(builder)
        text = recipe_to_yaml(recipe)
        try:
            job = Job.model_validate(api.request("POST", "/jobs", json={"recipe": text}))
        except Forbidden:
            # The node does not hold our key: fund the budget in JobEscrow ourselves.
            job_id = _fund_escrow(api, builder, text, recipe)
            body = {"recipe": text, "job_id": job_id}
            job = Job.model_validate(api.request("POST", "/jobs", json=body))
        console.print(f"job [bold]{job.job_id}[/] started ({job.method}, {job.rounds} rounds)")
        if follow:
            job = _follow(api, job.job_id)
            _show(job)


def _fund_escrow(api: NodeClient, builder: Any, text: str, recipe: Any) -> str:
    """Approve and create the job in JobEscrow from the builder's key; returns the job id."""
    import secrets

    budget = int(recipe.budget.max_tokens)
    base = recipe.base_model
    if isinstance(base, str):
        matches = [a for a in api.assets(kind="model") if a["name"].lower() == base.lower()]
        if not matches:
            raise InvalidInput(f"the node has no model asset named {base!r}")
        base = int(matches[0]["asset_id"])
    recipe_cid = api.upload(text.encode())
    job_id = "0x" + secrets.token_hex(32)
    escrow = api.chain()["contracts"]["JobEscrow"]["address"]
    from cairn.core.recipe import DEADLINE_SLACK

    deadline = int(time.time()) + recipe.budget.max_seconds + DEADLINE_SLACK
    api.transact(builder, "CairnToken", "approve", escrow, budget)
    api.transact(builder, "JobEscrow", "create_job", job_id, budget, base, recipe_cid, deadline)
    return job_id


def _job(api: NodeClient, job_id: str) -> Job:
    """The job as the node answers it."""
    return Job.model_validate(api.request("GET", f"/jobs/{job_id}"))


def _follow(api: NodeClient, job_id: str) -> Job:
    """A progress bar over rounds until the job ends; returns the job."""
    job = _job(api, job_id)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("round {task.completed:.0f}/{task.total:.0f}"),
        TextColumn("step {task.fields[step]}/{task.fields[steps]}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        h = job.inner_steps  # optimizer steps per worker per round
        bar = progress.add_task(
            job.name, total=job.rounds, status=job.status, step=0, steps=job.rounds * h
        )
        while True:
            job = _job(api, job_id)
            status: str = job.status
            if job.history:
                last = job.history[-1]
                status += f"  loss {_num(last.train_loss)}"
                status += "".join(f"  {k} {v:.4f}" for k, v in sorted(last.eval.items()))
            progress.update(bar, completed=job.round, status=status, step=job.round * h)
            if job.status in ENDED:
                return job
            time.sleep(1.0)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _show(job: Job) -> None:
    items: dict[str, Any] = {
        "job": job.job_id,
        "name": job.name,
        "method": job.method,
        "status": job.status,
        "builder": job.builder,
        "rounds": f"{job.round}/{job.rounds}",
        "base model": job.base_asset,
        "datasets": ", ".join(str(d.dataset) for d in job.datasets),
        "budget": units(job.budget, 18) + " CAIRN",
    }
    if job.error:
        items["error"] = job.error
    if job.model_asset is not None:
        items["model asset"] = job.model_asset
        items["model files"] = job.model_cid
        items["work shares"] = job.shares_cid
    items.update({f"eval {k}": f"{v:.4f}" for k, v in sorted(job.metrics.items())})
    fields(f"Job {job.name}", items)
    if job.history:
        table(
            "Rounds",
            ["round", "workers", "train loss", "held-out", "seconds"],
            [
                [
                    h.round,
                    len(h.workers),
                    _num(h.train_loss),
                    " ".join(f"{k} {v:.4f}" for k, v in sorted(h.eval.items())),
                    f"{h.seconds:.1f}",
                ]
                for h in job.history
            ],
        )
    paid = {a: v for a, v in job.payouts.items() if a != "refund"}
    if paid:
        table(
            "Payouts", ["provider", "paid"], [[a, units(v, 18) + " CAIRN"] for a, v in paid.items()]
        )
    if "refund" in job.payouts:
        console.print(f"budget refunded to the builder: {units(job.refund, 18)} CAIRN")
    if job.status in ENDED:
        print_verification(job)


@job_app.command("list")
def list_jobs(
    builder: Annotated[str | None, typer.Option(help="Only this builder's jobs")] = None,
    node_url: NodeUrl = None,
) -> None:
    """Jobs on the node, newest first."""
    with client(node_url) as api:
        answer = api.request("GET", "/jobs", params={"builder": builder} if builder else None)
    jobs = [JobSummary.model_validate(j) for j in answer]
    table(
        "Jobs",
        ["job", "name", "method", "status", "rounds", "model"],
        [
            [
                j.job_id[:18] + "…",
                j.name,
                j.method,
                j.status,
                f"{j.round}/{j.rounds}",
                j.model_asset if j.model_asset is not None else "",
            ]
            for j in jobs
        ],
    )


@job_app.command("show")
def show(job_id: str, node_url: NodeUrl = None) -> None:
    """A job's status, rounds, metrics, model and payouts."""
    with client(node_url) as api:
        _show(_job(api, job_id))


@job_app.command("logs")
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line")] = False,
    node_url: NodeUrl = None,
) -> None:
    """A job's events: providers, rounds, reports, the end."""
    offset = 0
    with client(node_url) as api:
        while True:
            answer = JobLog.model_validate(
                api.request("GET", f"/jobs/{job_id}/logs", params={"offset": offset})
            )
            offset = answer.offset
            for event in answer.events:
                if as_json:
                    console.print_json(event.model_dump_json())
                else:
                    console.print(_describe(event), markup=False, highlight=False)
            if not follow:
                return
            if not answer.events and _job(api, job_id).status in ENDED:
                return
            time.sleep(1.0)


def _describe(event: JobEvent) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.time))
    kind, e = event.type, event.fields  # each kind of event has its own fields
    if kind == "round":
        evals = " ".join(f"{k}={v:.4f}" for k, v in sorted(e["eval"].items()))
        dropped = f", {len(e['dropped'])} dropped" if e["dropped"] else ""
        return (
            f"{stamp} round {e['round']}/{e['rounds']}: {len(e['workers'])} workers"
            f"{dropped}, train loss {e['train_loss']:.4f} {evals} ({e['seconds']:.1f} s)"
        )
    if kind == "report":
        r = e["report"]
        return f"{stamp} report round {r['round']} by {r['account']}: {r['samples']} samples"
    rest = {k: v for k, v in e.items() if k != "run_id"}
    return f"{stamp} {kind} {json.dumps(rest, sort_keys=True)}"


@job_app.command("cancel")
def cancel(
    job_id: str, account: Account, data_dir: DataDir = None, node_url: NodeUrl = None
) -> None:
    """Stop a running job (its builder only)."""
    builder = unlock(data_dir, account)
    with client(node_url) as api:
        api.sign_in(builder)
        job = Job.model_validate(api.request("POST", f"/jobs/{job_id}/cancel"))
        refund = job.payouts.get("refund")
        if job.escrowed and refund is None:
            # the node does not hold our key: take the budget back from JobEscrow ourselves
            api.transact(builder, "JobEscrow", "cancel_job", job.job_id)
            refund = job.budget
    console.print(f"job {job.job_id} is {job.status}")
    if refund is not None:
        console.print(f"budget refunded: {units(refund, 18)} CAIRN")


@worker_app.command("start")
def start_worker(
    account: Account,
    stake: Annotated[
        str | None, typer.Option(help="CAIRN to stake, e.g. 10 [default: the node's minimum]")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Cache folder [default: DATA_DIR/worker-ACCOUNT]")
    ] = None,
    fleet_ca: Annotated[
        Path | None,
        typer.Option(help="The node's fleet CA (its ca.pem): connect to its Fleet API over TLS"),
    ] = None,
    supernode_key: Annotated[
        Path | None,
        typer.Option(help="The SuperNode key the node admitted (`cairn node supernode-key`)"),
    ] = None,
    blob_source: Annotated[
        Path | None,
        typer.Option(
            help="The node's blob folder (DATA_DIR/blobs) when it runs on this machine: link "
            "model files from it, verified, instead of downloading a second copy"
        ),
    ] = None,
    data_dir: DataDir = None,
    node_url: NodeUrl = None,
) -> None:
    """Stake as a provider and train for the node until interrupted."""
    from cairn.provider.worker import Worker

    provider = unlock(data_dir, account)
    folder = work_dir or config(data_dir).data_dir / f"worker-{provider.address[:10].lower()}"
    api = client(node_url)
    amount = None
    if stake is not None:
        from cairn.cli.output import parse_units

        amount = parse_units(stake, 18)
    if blob_source is not None and not blob_source.is_dir():
        raise InvalidInput(f"--blob-source {blob_source} is not a folder")
    worker = Worker(
        api,
        provider,
        folder,
        stake=amount,
        fleet_ca=fleet_ca,
        supernode_key=supernode_key,
        blob_source=blob_source,
    )
    stop_on_signals()  # the SuperNode is stopped with the worker, however the worker is stopped
    try:
        record = worker.ensure_staked()
        process = worker.start()
        fields(
            "Cairn worker",
            {
                "provider": provider.address,
                "stake": units(record["stake"], 18) + " CAIRN",
                "node": api.base_url,
                "fleet API": worker.fleet_address(),
                "cache": str(folder),
                "log": str(folder / "supernode.log"),
            },
        )
        console.print("training for the node; Ctrl-C stops")
        code = process.wait()
        if code:
            raise InvalidInput(
                f"the SuperNode exited with code {code}: see {folder / 'supernode.log'}"
            )
    finally:
        worker.stop()
        api.close()


# -- a provider's stake: show it, unbond it, withdraw it ---------------------------------------

# What a provider can do next with its stake, by status (see `cairn.chain.escrow.StakeStatus`).
NEXT_STEP = {
    "none": "it has no stake in JobEscrow (`cairn worker start --account {who} --stake N`)",
    "active": "its stake is active: `cairn worker unbond --account {who}` stops new jobs and "
    "starts {period} of unbonding",
    "unbonding": "unbonding until {until}: withdraw after that "
    "(`cairn worker withdraw --account {who}`)",
    "locked": "{jobs} open job(s) still lock its stake: withdraw once they finish",
    "withdrawable": "`cairn worker withdraw --account {who}` pays the stake back now",
}


@worker_app.command("stake")
def show_stake(account: Account, data_dir: DataDir = None, node_url: NodeUrl = None) -> None:
    """Show a provider's stake in JobEscrow: how much, whether it unbonds, when it may leave."""
    if account.startswith("0x"):
        address = account
    else:
        address = find_account(keystore(data_dir), account).address
    with client(node_url) as api:
        record = api.request("GET", f"/providers/{address}")
    _show_stake(record, account, f"Stake of {account}")


@worker_app.command("unbond")
def unbond(account: Account, data_dir: DataDir = None, node_url: NodeUrl = None) -> None:
    """Stop taking jobs and start the unbonding period; `cairn worker withdraw` pays the stake
    back once it has passed and no job locks it."""
    provider = unlock(data_dir, account)
    with client(node_url) as api:
        record = api.request("GET", f"/providers/{provider.address}")
        if record["status"] != "active":
            raise Conflict(f"{account} cannot unbond: {_next_step(record, account)}")
        api.transact(provider, "JobEscrow", "request_withdrawal")
        record = api.request("GET", f"/providers/{provider.address}")
    _show_stake(record, account, f"{account} is unbonding")


@worker_app.command("withdraw")
def withdraw(account: Account, data_dir: DataDir = None, node_url: NodeUrl = None) -> None:
    """Take an unbonded stake back from JobEscrow."""
    provider = unlock(data_dir, account)
    with client(node_url) as api:
        record = api.request("GET", f"/providers/{provider.address}")
        if record["status"] != "withdrawable":
            raise Conflict(f"{account} cannot withdraw yet: {_next_step(record, account)}")
        result = api.transact(provider, "JobEscrow", "withdraw_stake")
    [event] = [e for e in result["events"] if e["event"] == "StakeWithdrawn"]
    fields(
        f"{account} withdrew its stake",
        {
            "provider": provider.address,
            "withdrawn": units(event["args"]["amount"], 18) + " CAIRN",
            "tx": result["tx_hash"],
        },
    )


def _show_stake(record: dict[str, Any], who: str, title: str) -> None:
    withdraw_after = int(record["withdraw_after"])
    fields(
        title,
        {
            "provider": record["account"],
            "stake": units(record["stake"], 18) + " CAIRN",
            "status": record["status"],
            "unbonding period": _period(int(record["unbonding_period"])),
            "withdraw after": _when(withdraw_after) if withdraw_after else "-",
            "open jobs": record["open_jobs"],
            "next": _next_step(record, who),
        },
    )


def _next_step(record: dict[str, Any], who: str) -> str:
    return NEXT_STEP[record["status"]].format(
        who=who,
        until=_when(int(record["withdraw_after"])),
        period=_period(int(record["unbonding_period"])),
        jobs=record["open_jobs"],
    )


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _period(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    if days and not rest:
        return f"{days} day{'s' if days > 1 else ''}"
    return f"{seconds} s"
