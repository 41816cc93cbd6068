"""A provider whose replay failed is not paid for the job and loses its stake to the builder,
once, even across a crash; the evidence is public by CID and names its own signed report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.chain.escrow import JobState
from cairn.compute.reports import WorkReport, sign_report, verify_report
from cairn.node import Node
from cairn.verify.replay import EVIDENCE_SCHEMA
from tests.compute.conftest import TOKEN
from tests.compute.test_jobs_crash_safe import (
    BUDGET,
    Crash,
    balances,
    crash_after,
    play_job,
    start_job,
)
from tests.data.conftest import dev
from tests.signatures import published_signer
from tests.web.conftest import web

__all__ = ["web"]  # the web tests' client of the node


def caught_carol(node: Node, job_id: str) -> dict[str, Any]:
    """The replay's event: bob's round 2 matched, carol's round 1 did not; her evidence, as the
    coordinator writes it, in the job folder."""
    bob, carol = dev(node, "bob"), dev(node, "carol")
    report = WorkReport(job_id, 1, carol.address, 8, 1, 5, 10, 1.0, "00" * 32, 1.5)
    signature = sign_report(report, carol)
    folder = node.jobs.job_dir(job_id).path / "verify"
    folder.mkdir(parents=True, exist_ok=True)
    evidence = {"schema": EVIDENCE_SCHEMA, "job_id": job_id, "round": 1,
                "account": carol.address, "report": {**json.loads(report.canonical()),
                "signature": signature}, "signed": report.canonical().decode(),
                "replayed_digest": "ab" * 32,
                "relative_distance": 0.1, "tolerance": 1e-3, "reason": "0.1 away"}  # fmt: skip
    (folder / "evidence-round-000001-node-8.json").write_text(json.dumps(evidence))
    replay = {"job_id": job_id, "replay_seconds": 1.0, "replayed_digest": "ab" * 32}
    return {
        "replays": [
            {**replay, "round": 2, "account": bob.address, "node_id": 7, "ok": True,
             "exact": True, "relative": 0.0, "reason": "replayed bit for bit"},
            {**replay, "round": 1, "account": carol.address, "node_id": 8, "ok": False,
             "exact": False, "relative": 0.1, "reason": "0.1 of the update away"},
        ]
    }  # fmt: skip


def assert_carol_slashed_once(node: Node, job_id: str, before: dict[str, int]) -> None:
    bob, carol = dev(node, "bob").address, dev(node, "carol").address
    job = node.jobs.get(job_id)
    assert (job.status, job.error) == ("finished", None)
    # carol's work is not paid: bob's is all the work, so the whole budget is his
    assert job.payouts == {bob: str(BUDGET)}
    shares = node.store.get_json(job.shares_cid)
    assert {s["account"] for s in shares["shares"]} == {bob}
    assert {r["account"] for r in shares["reports"]} == {bob}
    assert node.chain.escrow.job(job_id).state == JobState.SETTLED
    # her whole stake (the job asked none) went to alice, the builder, naming the evidence
    assert node.chain.escrow.provider(carol).stake == 0
    after = balances(node)
    assert after["alice"] == before["alice"] + 10 * TOKEN
    assert after["carol"] == before["carol"] and after["bob"] == before["bob"] + BUDGET
    assert job.verification is not None
    slash = job.verification.slashed[carol]
    assert slash.amount == str(10 * TOKEN) and slash.tx_hash.startswith("0x")
    document = node.store.get_json(slash.evidence_cid)
    assert document["schema"] == EVIDENCE_SCHEMA and document["account"] == carol
    signed = {k: v for k, v in document["report"].items() if k not in ("schema", "signature")}
    verify_report(WorkReport(**signed), document["report"]["signature"])  # her own report
    assert document["signed"] == WorkReport(**signed).canonical().decode()
    evidence = {"signed": document["signed"], "signature": document["report"]["signature"]}
    assert published_signer(evidence) == carol  # checked without Cairn's code


def test_a_failed_replay_withholds_the_share_and_slashes_the_stake_once(
    node: Node, web: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id, verified=caught_carol(node, job_id))
    before = balances(node)
    node.jobs.tick()
    assert_carol_slashed_once(node, job_id, before)
    node.jobs.tick()  # nothing is taken twice
    assert_carol_slashed_once(node, job_id, before)
    page = web.get(f"/jobs/{job_id}/live").text
    [said] = re.findall(r'data-testid="job-slashed">(.*?)</p>', page, re.S)
    cid = node.jobs.get(job_id).verification.slashed[dev(node, "carol").address].evidence_cid  # type: ignore[union-attr]
    assert "was not paid for this job and lost 10 CAIRN of its stake" in said and cid in said


def test_a_crash_right_after_the_slash_does_not_slash_again(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id, verified=caught_carol(node, job_id))
    before = balances(node)
    with monkeypatch.context() as mp:
        crash_after(mp, node.chain.escrow, "slash")
        with pytest.raises(Crash):
            node.jobs.tick()
    node.jobs.tick()
    assert_carol_slashed_once(node, job_id, before)


def test_a_worker_that_did_not_reveal_is_neither_withheld_nor_slashed(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    verified = caught_carol(node, job_id)
    verified["replays"][1] |= {"relative": None, "reason": "not replayed: the worker did not "
                               "reveal the AdamW state its report signs"}  # fmt: skip
    play_job(node, job_id, verified=verified)
    node.jobs.tick()
    job = node.jobs.get(job_id)
    assert job.status == "finished" and len(job.payouts) == 2
    assert node.chain.escrow.provider(dev(node, "carol").address).stake == 10 * TOKEN
