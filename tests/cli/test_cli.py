"""The `cairn` command as a user runs it: a real node process, real commands, real output."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cairn.chain.anvil import free_port
from cairn.store.base import canonical_json
from tests.data.conftest import pair

pytestmark = pytest.mark.process  # starts processes: the e2e tier

CAIRN = str(Path(sys.executable).with_name("cairn"))


class Cli:
    def __init__(self, data_dir: Path, url: str) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
            "CAIRN_DATA_DIR": str(data_dir),
            "CAIRN_NODE": url,
            "COLUMNS": "200",
        }

    def __call__(self, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CAIRN, *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if ok:
            assert result.returncode == 0, result.stdout + result.stderr
        else:
            assert result.returncode != 0, result.stdout
        return result


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """`cairn node start --chain memory --dev` in a child process, and a way to run commands."""
    port = free_port()
    data_dir = tmp_path / "cairn"
    url = f"http://127.0.0.1:{port}"
    run = Cli(data_dir, url)
    log = (tmp_path / "node.log").open("w")
    proc = subprocess.Popen(
        [
            CAIRN,
            "node",
            "start",
            "--chain",
            "memory",
            "--dev",
            "--no-base-models",
            "--port",
            str(port),
            "--fleet-port",
            str(free_port()),
        ],
        env=run.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    stopped = False
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "node.log").read_text()
            assert time.monotonic() < deadline, "node did not start"
            time.sleep(0.2)
        yield run
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        stopped = True
    finally:
        if not stopped:  # a node that failed to start or stop is not left running
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_a_user_session_from_the_command_line(cli: Cli) -> None:
    status = cli("node", "status").stdout
    assert "memory" in status and "AssetRegistry" in status and "ok" in status

    accounts = cli("account", "list").stdout
    assert "alice" in accounts and "dev (unencrypted)" in accounts
    created = cli("account", "create", "--label", "dave", CAIRN_PASSWORD="s3cret pass").stdout
    assert "dave" in created and "0x" in created

    assert "1000 CAIRN" in cli("token", "balance", "alice").stdout
    sent = cli("token", "transfer", "dave", "12.5", "--from", "alice").stdout
    assert "987.5 CAIRN" in sent
    assert "12.5 CAIRN" in cli("token", "balance", "dave").stdout
    shown = cli("account", "show", "dave").stdout
    assert "12.5" in shown and "dave" in shown

    registered = cli(
        "asset",
        "register",
        "--kind",
        "app",
        "--name",
        "Polite replies",
        "--licence",
        "CC-BY-4.0",
        "--split",
        "7000,2000,1000,0",
        "--from",
        "alice",
    ).stdout
    assert "Registered asset 1" in registered and "owner 7000, data 2000" in registered
    cli(
        "asset",
        "register",
        "--kind",
        "model",
        "--name",
        "Polite bot",
        "--licence",
        "MIT",
        "--parent",
        "1",
        "--from",
        "bob",
    )
    listing = cli("asset", "list", "--kind", "model").stdout
    assert "Polite bot" in listing and "Polite replies" not in listing
    moved = cli("asset", "transfer", "1", "carol", "--from", "alice").stdout
    assert "now belongs to" in moved
    assert "Polite replies" in cli("asset", "list", "--owner", "carol").stdout
    assert "Polite bot" in cli("asset", "show", "2").stdout


@pytest.mark.slow
def test_command_line_errors_are_clear_and_change_nothing(cli: Cli) -> None:
    cli(
        "asset",
        "register",
        "--kind",
        "app",
        "--name",
        "d",
        "--licence",
        "MIT",
        "--from",
        "alice",
    )
    cases = [
        (("asset", "transfer", "1", "bob", "--from", "carol"), "not token owner"),
        (
            (
                "asset",
                "register",
                "--kind",
                "app",
                "--name",
                "d",
                "--licence",
                "MIT",
                "--split",
                "5000,0,0,0",
                "--from",
                "alice",
            ),
            "must sum to 10000",
        ),
        (
            (
                "asset",
                "register",
                "--kind",
                "song",
                "--name",
                "d",
                "--licence",
                "MIT",
                "--from",
                "alice",
            ),
            "unknown asset kind",
        ),
        (
            (
                "asset",
                "register",
                "--kind",
                "model",
                "--name",
                "d",
                "--licence",
                "MIT",
                "--parent",
                "9",
                "--from",
                "alice",
            ),
            "parent",
        ),
        (
            (
                "asset",
                "register",
                "--kind",
                "dataset",
                "--name",
                "d",
                "--licence",
                "MIT",
                "--from",
                "alice",
            ),
            "create datasets with `cairn dataset create`",
        ),
        (("token", "transfer", "bob", "5000", "--from", "alice"), "cairn_token"),
        (("token", "transfer", "bob", "0", "--from", "alice"), "must be positive"),
        (("token", "transfer", "bob", "1.5.2", "--from", "alice"), "is not a number"),
        (("token", "balance", "nobody"), "no account labelled 'nobody'"),
        (("asset", "show", "42"), "no asset with id 42"),
    ]
    for args, message in cases:
        result = cli(*args, ok=False)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    listing = cli("asset", "list").stdout
    assert listing.count("app") == 1
    assert "1000 CAIRN" in cli("token", "balance", "alice").stdout
    unreachable = cli("node", "status", "--node", f"http://127.0.0.1:{free_port()}", ok=False)
    assert "no Cairn node answers" in unreachable.stderr


@pytest.mark.slow
def test_a_dataset_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"review": {"review_share": 0.0}, "validation": {"pii_action": "reject"}})
    )
    created = cli(
        "dataset", "create", "--name", "Polite replies", "--licence", "CC-BY-4.0",
        "--task", "instruction", "--policy", str(policy), "--from", "alice",
    ).stdout  # fmt: skip
    assert (
        "Dataset 1: Polite replies" in created and "instruction" in created and "reject" in created
    )
    bad_policy = tmp_path / "bad.json"
    bad_policy.write_text(json.dumps({"review": {"review_share": 3}}))
    refused = cli(
        "dataset",
        "create",
        "--name",
        "x",
        "--licence",
        "MIT",
        "--task",
        "instruction",
        "--policy",
        str(bad_policy),
        "--from",
        "alice",
        ok=False,
    )
    assert "review.review_share" in refused.stderr
    pii = json.dumps(
        {
            "prompt": "Mail me at someone@example.com today",
            "response": "Sure, I will send it over soon.",
        }
    )
    records = [json.dumps(pair(i)) for i in range(5)] + ["{broken", json.dumps(pair(0)), pii]
    upload = tmp_path / "upload.jsonl"
    upload.write_text("\n".join(records) + "\n")
    contributed = cli("contribute", "1", str(upload), "--from", "bob").stdout
    assert "invalid_json" in contributed and "duplicate" in contributed and "line 6:" in contributed
    assert "pii" in contributed and "someone@example.com" not in contributed
    assert "accepted" in contributed and "5" in contributed
    assert "No review tasks" in cli("review", "next", "1", "--from", "carol").stdout
    listing = cli("dataset", "list").stdout
    assert "Polite replies" in listing

    anchored = cli("dataset", "anchor", "1", "--from", "alice").stdout
    assert "Anchored batch 0 of dataset 1" in anchored
    assert "Nothing to anchor" in cli("dataset", "anchor", "1", "--from", "alice").stdout

    from cairn.core.merkle import StandardMerkleTree  # noqa: F401  (the proof is OpenZeppelin-compatible)

    record_hash = hashlib.sha256(canonical_json(pair(3))).hexdigest()
    proved = cli(
        "dataset", "proof", "1", record_hash, "--json", str(tmp_path / "proof.json")
    ).stdout
    assert "verified on chain" in proved and "yes" in proved
    assert json.loads((tmp_path / "proof.json").read_text())["verified_on_chain"] is True
    cli("dataset", "export", "1", "--out", str(tmp_path / "export"))
    assert (tmp_path / "export" / "records.jsonl").read_text().count("\n") == 5
    assert (tmp_path / "export" / "records.parquet").read_bytes()[:4] == b"PAR1"
    shown = cli("dataset", "show", "1").stdout
    assert "anchored 5" in shown and "Versions" in shown
    missing = cli("contribute", "1", str(tmp_path / "nope.jsonl"), "--from", "bob", ok=False)
    assert "does not exist" in missing.stderr


@pytest.mark.parametrize("flag", ["--dev", "--demo"])
def test_a_dev_node_on_a_public_address_does_not_start(tmp_path: Path, flag: str) -> None:
    data_dir = tmp_path / "cairn"
    run = Cli(data_dir, "http://127.0.0.1:1")
    refused = run(
        "node", "start", flag, "--chain", "memory", "--host", "0.0.0.0", "--no-base-models",
        "--port", str(free_port()), "--fleet-port", str(free_port()), ok=False,
    )  # fmt: skip
    said = " ".join(refused.stderr.split())  # the console wraps long lines
    assert "must not listen on 0.0.0.0" in said and "--unsafe-dev-on-public-address" in said
    assert not data_dir.exists()  # refused before anything was created
