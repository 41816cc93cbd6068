"""Cancelling a job and ending one that cannot finish: the job shows an end only once its budget
went back, and finishing retries what may still work but fails the job on what never will.

Jobs are written as their ServerApp writes them (`test_jobs_crash_safe.play_job`); no Flower run
is started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.chain.escrow import Enlistment, JobState
from cairn.core.errors import ChainError, InvalidInput, Unavailable
from cairn.node import Node
from tests.compute.test_jobs_crash_safe import (
    BUDGET,
    PROVIDERS,
    assert_finished_once,
    balances,
    models_of,
    play_job,
    start_job,
)
from tests.data.conftest import dev


def refusing(error: Exception) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise error

    return call


@pytest.fixture
def job_id(node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """alice's running job, its budget in escrow; stopping its run is a no-op here."""
    monkeypatch.setattr(node.superlink, "stop_run", lambda run_id: None)
    return start_job(node, tmp_path, monkeypatch)


def test_a_cancel_whose_refund_fails_leaves_the_job_running(
    node: Node, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = dev(node, "alice").address
    before = node.chain.token.balance_of(alice)
    with monkeypatch.context() as mp:
        mp.setattr(node.chain.escrow, "cancel_job", refusing(ChainError("the chain is down")))
        with pytest.raises(ChainError):
            node.jobs.cancel(job_id, alice)
    job = node.jobs.get(job_id)
    assert (job.status, job.payouts, job.finished_at) == ("running", {}, None)
    assert node.chain.escrow.job_state(job_id) == JobState.OPEN

    cancelled = node.jobs.cancel(job_id, alice)  # the chain is back: cancelling again works
    assert cancelled.status == "cancelled" and cancelled.refund == BUDGET
    assert node.chain.token.balance_of(alice) == before + BUDGET


def test_a_cancelled_run_is_cancelled_in_the_index_only_once_the_budget_is_back(
    node: Node, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.jobs.job_dir(job_id).append("cancelled", run_id=1, round=0)
    with monkeypatch.context() as mp:
        mp.setattr(node.chain.escrow, "cancel_job", refusing(ChainError("the chain is down")))
        node.jobs.tick()
    assert node.jobs.get(job_id).status == "running"  # tried again on the next tick
    node.jobs.tick()
    job = node.jobs.get(job_id)
    assert job.status == "cancelled" and job.payouts == {"refund": str(BUDGET)}
    assert node.chain.escrow.job_state(job_id) == JobState.CANCELLED


@pytest.mark.parametrize(
    "error",
    [ChainError("the chain is unreachable"), Unavailable("the RPC endpoint does not answer")],
    ids=["chain error", "unavailable"],
)
def test_a_transient_finishing_error_is_shown_and_retried(
    error: Exception, node: Node, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    play_job(node, job_id)
    before = balances(node)
    with monkeypatch.context() as mp:
        mp.setattr(node.chain.escrow, "settle_job", refusing(error))
        node.jobs.tick()
        node.jobs.tick()  # still out of reach: still finishing
    job = node.jobs.get(job_id)
    assert (job.status, job.error) == ("finishing", f"finishing: {error}")
    node.jobs.tick()
    assert_finished_once(node, job_id, before)


def test_a_permanent_finishing_error_fails_the_job_and_gives_the_budget_back(
    node: Node, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    play_job(node, job_id)
    before = balances(node)
    attempts = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise InvalidInput("name: at most 200 characters")

    monkeypatch.setattr(node.chain.registry, "register", refuse)
    node.jobs.tick()
    node.jobs.tick()  # a failed job is not tried again
    job = node.jobs.get(job_id)
    assert (job.status, job.error) == ("failed", "finishing: name: at most 200 characters")
    assert len(attempts) == 1 and job.finished_at is not None
    assert job.payouts == {"refund": str(BUDGET)} and models_of(node, job_id) == []
    assert node.chain.escrow.job_state(job_id) == JobState.CANCELLED
    assert balances(node) == {**before, "alice": before["alice"] + BUDGET}
    for label in PROVIDERS:
        account = dev(node, label).address
        assert node.chain.escrow.enlistment(job_id, account) == Enlistment.RELEASED
