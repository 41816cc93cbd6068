"""`cairn verify job`: the replays' table, what a failed one cost, and the exit status."""

from __future__ import annotations

import pytest

from cairn.cli.verify import print_verification
from cairn.compute.job import Job, JobVerification


def job_with(verification: dict[str, object] | None) -> Job:
    v = None if verification is None else JobVerification.model_validate(verification)
    return Job.model_construct(verification=v)


def replay(account: str, ok: bool, relative: float | None, reason: str) -> dict[str, object]:
    return {"round": 2, "account": account, "node_id": 1, "ok": ok, "exact": ok,
            "relative": relative, "reason": reason, "replay_seconds": 1.0}  # fmt: skip


def test_a_failed_replay_is_shown_with_its_cost_and_fails_the_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = job_with({
        "replays": [replay("0xBob", True, 0.0, "replayed bit for bit"),
                    replay("0xCarol", False, 0.1, "0.1 of the update away")],
        "slashed": {"0xCarol": {"amount": str(10 * 10**18), "evidence_cid": "bafyEVIDENCE",
                                "tx_hash": "0xabc"}},
    })  # fmt: skip
    assert print_verification(job) is False
    out = capsys.readouterr().out
    assert "passed" in out and "FAILED" in out and "0.1 of the update away" in out
    assert "0xCarol: not paid for this job; 10 CAIRN" in out and "bafyEVIDENCE" in out


def test_passed_unrevealed_skipped_and_pending_jobs_pass_the_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    unrevealed = replay("0xDave", False, None, "not replayed: the worker did not reveal")
    assert print_verification(job_with({"replays": [unrevealed]})) is True
    assert "not verified" in capsys.readouterr().out
    assert print_verification(job_with({"skipped": "updates travel as int8"})) is True
    assert "not replayed: updates travel as int8" in capsys.readouterr().out
    assert print_verification(job_with(None)) is True
    assert "not verified yet" in capsys.readouterr().out
