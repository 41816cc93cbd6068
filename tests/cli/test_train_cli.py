"""Training from the command line: a node, a provider's `cairn worker start`, `cairn train`."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli.test_cli import CAIRN, Cli, cli  # noqa: F401 (the fixture)
from tests.compute.conftest import reverse_record, save_tiny_model

pytestmark = [pytest.mark.process, pytest.mark.slow]


def test_train_a_model_with_a_worker_from_the_command_line(cli: Cli, tmp_path: Path) -> None:  # noqa: F811
    folder = save_tiny_model(tmp_path / "tiny", "causal-lm")
    registered = cli(
        "model", "register", str(folder), "--name", "tiny llama", "--licence", "Apache-2.0",
        "--from", "alice",
    ).stdout  # fmt: skip
    assert "Registered model 2" in registered  # asset 1 is the gateway's
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"review": {"review_share": 0.0}}))
    cli(
        "dataset", "create", "--name", "reverse", "--licence", "CC0-1.0", "--task",
        "instruction", "--policy", str(policy), "--from", "alice",
    )  # fmt: skip
    rng = random.Random(1)
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(reverse_record(rng)) + "\n" for _ in range(30)))
    assert "accepted" in cli("contribute", "3", str(records), "--from", "bob").stdout
    cli("dataset", "anchor", "3", "--from", "alice")

    recipe = tmp_path / "recipe.yaml"
    cli("recipe", "init", "--method", "sft", "--out", str(recipe))
    edits = {
        "base_model: SmolLM2-135M-Instruct": "base_model: 2",
        "dataset: 1": "dataset: 3",
        "learning_rate: 2.0e-05": "learning_rate: 0.003",
        "max_length: 512": "max_length: 64",
        "workers: 2": "workers: 1",
        "rounds: 10": "rounds: 2",
        "inner_steps: 50": "inner_steps: 4",
        "max_tokens: '0'": "max_tokens: '3000000000000000000'",
    }
    text = recipe.read_text()
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    recipe.write_text(text)
    bad = cli("train", str(tmp_path / "missing.yaml"), "--account", "alice", ok=False)
    assert "missing.yaml" in bad.stderr

    worker_log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [CAIRN, "worker", "start", "--account", "carol", "--stake", "5"],
        env=cli.env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        # started as a shell starts a background job, with SIGINT ignored: Ctrl-C still stops it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        trained = subprocess.run(
            [CAIRN, "train", str(recipe), "--account", "alice"],
            env=cli.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert trained.returncode == 0, trained.stdout + trained.stderr
        assert "finished" in trained.stdout and "model asset" in trained.stdout
        assert "3 CAIRN" in trained.stdout.split("Payouts")[1]  # the one provider earns it all
        listing = cli("job", "list").stdout
        assert "finished" in listing and "sft" in listing
        job_id = json.loads(
            subprocess.run(
                ["curl", "-s", f"{cli.env['CAIRN_NODE']}/api/v1/jobs"],
                capture_output=True,
                text=True,
            ).stdout
        )[0]["job_id"]
        shown = cli("job", "show", job_id).stdout
        assert "Rounds" in shown and "Replayed rounds" in shown
        # the coordinator replayed one of carol's rounds (a round 2 from its revealed state)
        verified = cli("verify", "job", job_id).stdout
        assert "Replayed rounds" in verified and "passed" in verified, verified
        assert "FAILED" not in verified
        logs = cli("job", "logs", job_id).stdout
        assert "round 1/" in logs and "provider" in logs and "finished" in logs
        refused = cli("job", "cancel", job_id, "--account", "alice", ok=False)
        assert "is finished" in refused.stderr
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=30)
        worker_log.close()
    log = (tmp_path / "worker.log").read_text()
    assert "Cairn worker" in log and "5 CAIRN" in log
    assert not (tmp_path / "cairn" / "worker-key").exists()
