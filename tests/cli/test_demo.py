"""`cairn demo` end to end: the whole loop on a fresh anvil chain, then its kept data folder
served by `cairn node start --demo` to the official OpenAI client (the run's one seeding,
shared with the browser tests: tests/demo_node.py)."""

from __future__ import annotations

import json
import subprocess

import openai
import pytest

from tests.demo_node import CAIRN, DemoNode, DemoStory

pytestmark = [pytest.mark.process, pytest.mark.slow, pytest.mark.timeout(900)]


def test_the_demo_tells_the_whole_story_and_leaves_a_servable_node(
    demo_story: DemoStory, demo_node: DemoNode
) -> None:
    story = demo_story.story
    assert demo_story.seconds < 600
    assert story["data_dir"] == str(demo_story.data_dir.resolve())

    titles = [s["title"] for s in story["steps"]]
    assert titles == [
        "Accounts",
        "Dataset",
        "Training",
        "Usage",
        "Market",
        "Settlement",
        "Balances",
    ]
    dataset = next(s for s in story["steps"] if s["title"] == "Dataset")
    reasons = " ".join(str(r[3]) for r in dataset["rows"] if r[2] == "rejected")
    assert "duplicate" in reasons and "required" in reasons and "JSON" in reasons
    assert story["dataset"]["reviews"] > 0 and story["dataset"]["records"] == 96

    # two providers trained it and were paid from the budget; the revenue was split exactly
    assert len(story["job"]["payouts"]) == 2
    revenue = int(story["epoch"]["revenue"])
    assert revenue > 0 and sum(int(v) for v in story["claims"].values()) == revenue
    roles = {
        row[1] for row in next(s for s in story["steps"] if s["title"] == "Settlement")["rows"]
    }
    assert roles == {"owner", "data", "compute"}  # the app's upstream share reaches the model's
    # the epoch settled the calls (the app's among them) and the licence Dave bought
    assert revenue == int(story["usage"]["spent"]) + 5 * 10**18
    settled = next(s for s in story["steps"] if s["title"] == "Settlement")["rows"]
    assert any("Arithmetic tutor with worked examples" in str(row[2]) for row in settled)
    # the paid task paid the first batch's records and reviews, each claimed at once
    bounty = story["bounty"]
    assert bounty["records"] == story["dataset"]["records"] and bounty["reviews"] > 0
    assert sum(int(v) for v in bounty["paid"].values()) == (
        bounty["records"] * 10**18 // 5 + bounty["reviews"] * 10**18 // 10
    )

    # the kept folder, served by `cairn node start --demo`, serves the model to any OpenAI
    # client with the printed key
    client = openai.OpenAI(base_url=f"{demo_node.url}/v1", api_key=story["api_key"], max_retries=0)
    assert story["model"] in {m.id for m in client.models.list().data}
    stream = client.chat.completions.create(
        model=story["model"],
        messages=[{"role": "user", "content": "What is 6 times 7?"}],
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    # the folder was seeded once, and the node told nothing again
    assert json.loads((demo_story.data_dir / "demo.json").read_text())["status"] == "seeded"


def test_anyone_audits_the_demo_community_from_the_chain(demo_node: DemoNode) -> None:
    """`cairn audit` re-derives the demo's bounty payout, revenue epoch and training job from
    anvil and the node's public blobs, and finds them as funded."""
    run = subprocess.run(
        [CAIRN, "audit", "--node", demo_node.url, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["ok"]
    # The demo's bounty payout and revenue epoch, its training job paid through JobEscrow, and
    # whatever the tests that shared this node before settled (more epochs, the browser's job).
    assert {e["kind"] for e in report["epochs"]} == {"bounty", "revenue"}
    assert len(report["jobs"]) >= 1
    for audited in [*report["epochs"], *report["jobs"]]:
        assert all(f["status"] in ("ok", "unchecked") for f in audited["findings"])
        assert sum(f["status"] == "ok" for f in audited["findings"]) >= 7
