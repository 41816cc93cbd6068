"""/openapi.json describes what every route of the compute router answers (issue 14): a job,
a list of jobs, a job's events, the compute network and a provider's stake, each with its
fields named, never `{}` or a bare object."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.api.routers import compute
from tests.api.openapi_check import (
    API,
    assert_declares_what_it_answers,
    openapi_of,
    resolve,
    routes_of,
)


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return openapi_of((compute.router, API))


def test_every_route_declares_what_it_answers(openapi: dict[str, Any]) -> None:
    routes = routes_of(compute.router)
    assert len(routes) == 7
    for path, route in routes:
        assert_declares_what_it_answers(openapi, path, route.methods)


def fields(openapi: dict[str, Any], name: str) -> dict[str, Any]:
    properties: dict[str, Any] = openapi["components"]["schemas"][name]["properties"]
    return properties


def test_a_job_names_the_fields_its_readers_use(openapi: dict[str, Any]) -> None:
    job = fields(openapi, "Job")
    # what the CLI, the demo, the web pages and the workers' tests read of a job
    assert {
        "job_id", "builder", "name", "method", "status", "round", "rounds", "run_id",
        "base_asset", "datasets", "budget", "escrowed", "recipe", "recipe_cid", "metrics",
        "providers", "error", "model_asset", "model_cid", "shares_cid", "reports_root",
        "payouts", "events_offset", "created_at", "updated_at", "finished_at", "history",
        "verification",
    } == set(job)  # fmt: skip
    assert "history" not in fields(openapi, "JobSummary")  # a list leaves the rounds out
    assert job["budget"]["type"] == "string"  # 256-bit: JSON numbers cannot hold it
    assert set(job["status"]["enum"]) == {
        "queued", "running", "finishing", "finished", "failed", "cancelled",
    }  # fmt: skip
    history = resolve(openapi, job["history"]["items"])
    assert {"round", "train_loss", "eval", "workers", "dropped", "checkpoint_cid"} <= set(
        history["properties"]
    )
    assert {"replays", "skipped", "error", "slashed"} == set(fields(openapi, "JobVerification"))
    assert {"amount", "evidence_cid", "tx_hash"} == set(fields(openapi, "Slash"))
    assert {"round", "account", "ok", "exact", "relative", "reason"} <= set(
        fields(openapi, "Replay")
    )
    assert {"events", "offset"} == set(fields(openapi, "JobLog"))
    assert {"type", "time"} <= set(fields(openapi, "JobEvent"))
    assert {"fleet_address", "escrow", "min_stake"} <= set(fields(openapi, "ComputeInfo"))
    assert {"status", "stake", "chain_time", "open_jobs"} <= set(fields(openapi, "ProviderStake"))
