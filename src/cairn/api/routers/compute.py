"""The compute network: the node's SuperLink, providers' stakes, and training jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from cairn.api.deps import JobsDep, SessionAddress
from cairn.api.schemas import Strict
from cairn.compute.job import Job, JobLog, JobSummary
from cairn.compute.network import ComputeInfo, ProviderStake
from cairn.core.ids import Offset
from cairn.core.recipe import load_recipe, parse_recipe

router = APIRouter(tags=["compute"])


class JobCreate(Strict):
    recipe: str | dict[str, Any] = Field(
        ..., description="The recipe: YAML text, or the same as a JSON object"
    )
    job_id: str | None = Field(
        None,
        description="A job the builder already funded in JobEscrow (0x + 64 hex); leave out to "
        "have the node fund the budget from the signed-in account's key it holds",
    )


@router.get("/compute", response_model=ComputeInfo)
def compute_info(jobs: JobsDep) -> ComputeInfo:
    """Where providers' workers connect, and what a provider must stake."""
    return jobs.network()


@router.get("/providers/{account}", response_model=ProviderStake)
def provider(jobs: JobsDep, account: str) -> ProviderStake:
    """A compute provider's stake and state in JobEscrow (zeros if it never registered).

    `status` is active, unbonding (until `withdraw_after`, chain time), locked (by open jobs),
    withdrawable or none; `chain_time` is the newest block's time, which the escrow goes by.
    """
    return jobs.provider(account)


@router.post("/jobs", status_code=201, response_model=Job)
def create_job(jobs: JobsDep, body: JobCreate, builder: SessionAddress) -> Job:
    """Start a training job from a recipe, built by the signed-in account."""
    if isinstance(body.recipe, str):
        recipe = load_recipe(body.recipe, source="recipe")
    else:
        recipe = parse_recipe(body.recipe, source="recipe")
    return jobs.create(builder, recipe, job_id=body.job_id)


@router.get("/jobs", response_model=list[JobSummary])
def list_jobs(
    jobs: JobsDep, builder: Annotated[str | None, Query(description="Only this builder's")] = None
) -> list[JobSummary]:
    """Jobs, newest first, without their round history."""
    return jobs.list_jobs(builder)


@router.get("/jobs/{job_id}", response_model=Job)
def get_job(jobs: JobsDep, job_id: str) -> Job:
    """A job: status, rounds done, providers, metric history, and the model it made."""
    return jobs.get(job_id)


@router.get("/jobs/{job_id}/logs", response_model=JobLog)
def job_logs(
    jobs: JobsDep,
    job_id: str,
    offset: Annotated[Offset, Query(description="Byte offset from the last answer")] = 0,
) -> JobLog:
    """The job's events from `offset`: rounds, providers, reports, the end."""
    return jobs.logs(job_id, offset)


@router.post("/jobs/{job_id}/cancel", response_model=Job)
def cancel_job(jobs: JobsDep, job_id: str, builder: SessionAddress) -> Job:
    """Stop a running job (its builder only); the budget comes back when the node holds the
    builder's key, else the builder cancels the job in JobEscrow itself."""
    return jobs.cancel(job_id, builder)
