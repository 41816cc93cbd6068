"""The jobs pages: the list, a job's live progress (rounds, providers, curves, logs), cancelling,
and the model a finished job made."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cairn.compute.reports import WorkReport, sign_report
from cairn.core.recipe import load_recipe
from cairn.node import Node
from cairn.web.render import short
from tests.compute.conftest import TOKEN, anchored_dataset, register_tiny
from tests.data.conftest import dev
from tests.web.test_market import by_testid, text


def start_job(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int = 0, rounds: int = 4
) -> str:
    """A running job of alice's on a tiny model (no provider has joined); its Flower run is
    not started: the tests write its events as the run would."""
    monkeypatch.setattr(node.superlink, "start_run", lambda path: 1)
    monkeypatch.setattr(node.superlink, "stop_run", lambda run_id: None)
    alice, bob = dev(node, "alice"), dev(node, "bob")
    lm = register_tiny(node, alice, tmp_path, "causal-lm").asset_id
    dataset = anchored_dataset(node, alice, bob, "instruction", n=12)
    recipe = load_recipe(
        f"name: reverse words\nmethod: sft\nbase_model: {lm}\ndatasets:\n  - dataset: {dataset}\n"
        f"distributed:\n  rounds: {rounds}\n  inner_steps: 5\n"
        f"budget:\n  max_tokens: '{budget}'\n"
    )
    return node.jobs.create(alice.address, recipe).job_id


def play_rounds(
    node: Node,
    job_id: str,
    losses: list[float],
    screens: dict[int, list[dict[str, object]]] | None = None,
) -> None:
    """Write what a coordinator writes for bob training `losses` rounds (with the screens'
    flags of each round in `screens`), and index it."""
    bob = dev(node, "bob")
    folder = node.jobs.job_dir(job_id)
    folder.append("provider", run_id=0, node_id=7, account=bob.address, stake=10 * TOKEN)
    for i, loss in enumerate(losses, start=1):
        report = WorkReport(job_id, i, bob.address, 7, 0, 5, 20, loss, "00" * 32, 1.5)
        folder.append(
            "report", run_id=0, report=report.__dict__, signature=sign_report(report, bob)
        )
        folder.append(
            "round",
            run_id=0,
            round=i,
            rounds=4,
            workers=[{"node_id": 7, "account": bob.address}],
            dropped=[],
            train_loss=loss,
            eval={"loss": loss + 0.25, "perplexity": 2.0 * loss} if i % 2 == 0 else {},
            seconds=2.5,
            compute_seconds=1.5,
            overhead_seconds=1.0,
            **({"screens": screens[i]} if screens and i in screens else {}),
        )
    node.jobs.tick()


def test_no_jobs_yet(web: httpx.Client) -> None:
    page = web.get("/jobs")
    assert page.status_code == 200 and "No jobs yet" in page.text


def test_the_list_and_a_running_jobs_live_progress(
    web: httpx.Client, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_rounds(node, job_id, [3.0, 2.0, 1.25])

    listing = web.get("/jobs").text
    assert f'href="/jobs/{job_id}">reverse words</a>' in listing
    assert "running" in listing and "3 of 4" in listing and '<th scope="col">' in listing
    assert 'class="table-wrap"' in listing

    page = web.get(f"/jobs/{job_id}").text
    assert f'data-refresh="/jobs/{job_id}/live" data-every="2"' in page
    assert "name: reverse words" in page  # the recipe it runs

    live = web.get(f"/jobs/{job_id}/live")
    assert live.status_code == 200 and "<html" not in live.text
    html = live.text
    assert "data-done" not in html
    assert 'data-testid="job-status" class="">running' in html
    assert "round 3 of 4" in html and "step 15 of 20 per worker" in html
    # the loss chart: training loss each round, held-out loss where it was measured
    chart = re.search(
        r'<svg class="chart" role="img" aria-label="([^"]*)"[^>]*data-testid="loss-chart"', html
    )
    assert chart is not None
    assert chart.group(1) == (
        "Loss by round: training loss 1.25 at round 3; held-out loss 2.25 at round 2"
    )
    assert 'aria-label="Held-out perplexity by round: perplexity 4 at round 2"' in html
    # bob's work: three rounds of 20 samples, his last loss
    providers = html.split('data-testid="job-providers"')[1].split("</table>")[0]
    assert dev(node, "bob").address in providers and ">60<" in providers and ">1.25<" in providers
    logs = html.split('data-testid="job-logs"')[1]
    assert "round 3/4 done: training loss 1.25, 1 worker" in logs
    assert f"provider bob ({short(dev(node, 'bob').address)}) joined (node 7)" in logs
    assert 'data-testid="cancel-job"' not in html  # only the builder may cancel


def test_a_rounds_screen_flags_show_on_the_job_page_and_in_its_history(
    web: httpx.Client, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch, rounds=2)
    bob = dev(node, "bob").address
    flag = {"node_id": 7, "account": bob, "kind": "stale", "detail": "the same update as its "
            "last round's", "value": 0.9999}  # fmt: skip
    play_rounds(node, job_id, [2.0, 1.5], screens={2: [flag]})
    first, second = node.jobs.get(job_id).history
    assert first.screens == () and [f.model_dump() for f in second.screens] == [flag]
    cells = [
        text(c)
        for c in re.findall(
            r'data-testid="round-screens">(.*?)</td>', web.get(f"/jobs/{job_id}/live").text
        )
    ]
    assert cells[1] == "passed"  # newest round first
    assert cells[0].startswith(f"bob {short(bob)}")
    assert cells[0].endswith(": stale (the same update as its last round's)")


def test_a_jobs_replays_show_who_passed_and_who_failed_and_why(
    web: httpx.Client, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch, rounds=2)
    play_rounds(node, job_id, [2.0, 1.5])
    assert node.jobs.get(job_id).verification is None
    assert (
        "After the last round a sample of rounds is trained again"
        in web.get(f"/jobs/{job_id}/live").text
    )
    bob, carol = dev(node, "bob").address, dev(node, "carol").address
    replays = [
        {"round": 2, "account": bob, "node_id": 7, "ok": True, "exact": True, "relative": 0.0,
         "reason": "replayed bit for bit", "replay_seconds": 1.2, "job_id": job_id,
         "replayed_digest": "ab" * 32},
        {"round": 1, "account": carol, "node_id": 8, "ok": False, "exact": False,
         "relative": 0.1, "reason": "the returned weights are 0.1 of the update away from the "
         "replay (tolerance 1e-03)", "replay_seconds": 1.1, "job_id": job_id,
         "replayed_digest": "cd" * 32},
    ]  # fmt: skip
    node.jobs.job_dir(job_id).append("verified", run_id=0, replays=replays)
    node.jobs.tick()
    verification = node.jobs.get(job_id).verification
    assert verification is not None and [r.ok for r in verification.replays] == [True, False]
    table = web.get(f"/jobs/{job_id}/live").text.split('data-testid="job-verification"')[1]
    rows = [text(r) for r in re.findall(r"<tr>(.*?)</tr>", table.split("</table>")[0], re.S)]
    assert rows[1].startswith("2 bob") and "passed replayed bit for bit" in rows[1]
    assert rows[2].startswith("1 carol") and "failed the returned weights are 0.1" in rows[2]


def test_a_job_page_names_its_people_by_label_and_counts_one_round_as_one(
    web: httpx.Client, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch, rounds=1)
    play_rounds(node, job_id, [2.0])
    alice, bob = dev(node, "alice").address, dev(node, "bob").address
    page = web.get(f"/jobs/{job_id}").text
    facts = text(by_testid(page, "job-facts"))
    assert f"Builder alice {short(alice)}" in facts
    assert "1 round of 5 inner steps" in facts and "1 rounds" not in facts
    providers = page.split('data-testid="job-providers"')[1].split("</table>")[0]
    [row] = re.findall(r"<tr>(.*?)</tr>", providers.split("<tbody>")[1], re.S)
    assert text(row).startswith(f"bob {short(bob)} 7 1 20")
    logs = text(page.split('data-testid="job-logs"')[1])
    assert f"provider bob ({short(bob)}) joined (node 7)" in logs
    assert f"round 1: bob ({short(bob)}) trained 20 samples" in logs
    assert bob not in logs  # no raw address where a label is known


def test_the_builder_cancels_and_gets_the_budget_back(
    web: httpx.Client,
    signed_in: Callable[[str], httpx.Client],
    node: Node,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch, budget=3 * TOKEN)
    alice = dev(node, "alice").address
    before = node.chain.token.balance_of(alice)

    signed_in("bob")
    assert 'data-testid="cancel-job"' not in web.get(f"/jobs/{job_id}/live").text
    refused = web.post(f"/jobs/{job_id}/cancel")
    assert refused.status_code == 403 and "belongs to" in refused.text
    assert node.jobs.get(job_id).status == "running"

    web.post("/signout")
    signed_in("alice")
    assert 'data-testid="cancel-job"' in web.get(f"/jobs/{job_id}/live").text
    reply = web.post(f"/jobs/{job_id}/cancel")
    assert reply.status_code == 303 and reply.headers["location"] == f"/jobs/{job_id}"
    page = web.get(reply.headers["location"]).text
    assert "cancelled. Its budget was returned to you." in page
    assert "data-refresh=" not in page  # an ended job is not followed
    live = web.get(f"/jobs/{job_id}/live").text
    assert "data-done" in live and 'data-testid="cancel-job"' not in live
    assert "Budget returned to the builder: 3 CAIRN" in live
    assert node.chain.token.balance_of(alice) == before + 3 * TOKEN


def test_a_failed_job_shows_its_error_and_stops_refreshing(
    web: httpx.Client, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    node.jobs.job_dir(job_id).append("failed", run_id=0, error="round 1: no workers came")
    node.jobs.tick()
    live = web.get(f"/jobs/{job_id}/live").text
    assert "data-done" in live and 'class="bad">failed' in live
    assert 'data-testid="job-error">round 1: no workers came' in live
    assert 'aria-label="Loss by round: no data yet"' in live and "no data yet</text>" in live


def test_unknown_and_malformed_job_ids(web: httpx.Client) -> None:
    missing = web.get("/jobs/0x" + "00" * 32)
    assert missing.status_code == 404 and "no job" in missing.text
    bad = web.get("/jobs/42/live")
    assert bad.status_code == 422 and "64 hex" in bad.text
