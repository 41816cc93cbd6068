"""The compute network: the node's SuperLink, providers' stakes, and training jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from cairn.api.deps import NodeDep, SessionAddress
from cairn.api.schemas import Strict
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


@router.get("/compute")
def compute_info(node: NodeDep) -> dict[str, Any]:
    """Where providers' workers connect, and what a provider must stake."""
    return {
        "fleet_port": node.superlink.fleet_port,
        "fleet_address": node.superlink.fleet_address,
        "superlink_running": node.superlink.running,
        "escrow": node.chain.escrow.address,
        "min_stake": str(node.chain.escrow.min_stake()),
    }


@router.get("/providers/{account}")
def provider(node: NodeDep, account: str) -> dict[str, Any]:
    """A compute provider's stake and state in JobEscrow (zeros if it never registered).

    `status` is active, unbonding (until `withdraw_after`, chain time), locked (by open jobs),
    withdrawable or none; `chain_time` is the newest block's time, which the escrow goes by.
    """
    escrow = node.chain.escrow
    record = escrow.provider(account)
    now = node.client.block_time()
    return {
        "account": record.account,
        "registered": record.active or record.stake > 0,
        "active": record.active,
        "status": str(record.status(now)),
        "stake": str(record.stake),
        "endpoint": record.endpoint,
        "withdraw_after": record.withdraw_after,
        "unbonding_period": escrow.unbonding_period(),
        "chain_time": now,
        "open_jobs": record.open_jobs,
    }


@router.post("/jobs", status_code=201)
def create_job(node: NodeDep, body: JobCreate, builder: SessionAddress) -> dict[str, Any]:
    """Start a training job from a recipe, built by the signed-in account."""
    if isinstance(body.recipe, str):
        recipe = load_recipe(body.recipe, source="recipe")
    else:
        recipe = parse_recipe(body.recipe, source="recipe")
    signer = node.signers.find(builder)
    return node.jobs.create(builder, recipe, signer=signer, job_id=body.job_id)


@router.get("/jobs")
def list_jobs(
    node: NodeDep, builder: Annotated[str | None, Query(description="Only this builder's")] = None
) -> list[dict[str, Any]]:
    """Jobs, newest first."""
    return node.jobs.list_jobs(builder)


@router.get("/jobs/{job_id}")
def get_job(node: NodeDep, job_id: str) -> dict[str, Any]:
    """A job: status, rounds done, providers, metric history, and the model it made."""
    return node.jobs.get(job_id)


@router.get("/jobs/{job_id}/logs")
def job_logs(
    node: NodeDep,
    job_id: str,
    offset: Annotated[Offset, Query(description="Byte offset from the last answer")] = 0,
) -> dict[str, Any]:
    """The job's events from `offset`: rounds, providers, reports, the end."""
    events, next_offset = node.jobs.logs(job_id, offset)
    return {"events": events, "offset": next_offset}


@router.post("/jobs/{job_id}/cancel")
def cancel_job(node: NodeDep, job_id: str, builder: SessionAddress) -> dict[str, Any]:
    """Stop a running job (its builder only); the budget comes back when the node holds the
    builder's key, else the builder cancels the job in JobEscrow itself."""
    return node.jobs.cancel(job_id, builder, node.signers.find(builder))
