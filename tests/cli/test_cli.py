"""The `cairn` command as a user runs it: a real node process, real commands, real output.

The tests of a module share one node process (starting one takes 6-16 s): each reads the ids
its commands print, compares balances before and after, and keeps to names of its own, so
that it passes alone and in any order with the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
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


@contextmanager
def node_process(folder: Path) -> Iterator[Cli]:
    """`cairn node start --chain memory --dev` in a child process on `folder`, and a way to run
    commands against it; stopped with Ctrl-C (SIGINT), which must end it cleanly."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run = Cli(folder / "cairn", url)
    log_path = folder / "node.log"
    log = log_path.open("w")
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
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "node did not start"
            time.sleep(0.2)
        yield run
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, log_path.read_text()
        stopped = True
    finally:
        if not stopped:  # a node that failed to start or stop is not left running
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """One dev node process for the module's tests, and a way to run commands against it.

    A module that imports this fixture gets a node of its own: pytest registers the fixture
    in each module that holds it and keeps a module-scoped value per module.
    """
    with node_process(tmp_path_factory.mktemp("cli-node")) as run:
        yield run


def rows(output: str) -> list[list[str]]:
    """The body rows of the Rich tables a command printed, as their cells' text."""
    return [
        [cell.strip() for cell in line.strip()[1:-1].split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def row(output: str, first: str) -> list[str]:
    """The one table row whose first cell is `first`."""
    found = [r for r in rows(output) if r[0] == first]
    assert len(found) == 1, output
    return found[0]


def field(output: str, name: str) -> str:
    """A field's value in a record the command printed (a two-column table)."""
    return row(output, name)[1]


def number(pattern: str, output: str) -> str:
    """The group of `pattern` in a command's output, e.g. the id it printed."""
    found = re.search(pattern, output)
    assert found, output
    return found.group(1)


def tokens(amount: str) -> Decimal:
    """A token amount as printed, e.g. '987.5 CAIRN'."""
    value, symbol = amount.split()
    assert symbol == "CAIRN", amount
    return Decimal(value)


def balance(cli: Cli, who: str) -> Decimal:
    """An account's CAIRN balance."""
    return tokens(row(cli("token", "balance", who).stdout, who)[2])


# First: pytest stops a module-scoped node only when the module ends, so the tests that need no
# node run before those that share it.
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


@pytest.mark.slow
def test_a_user_session_from_the_command_line(cli: Cli) -> None:
    status = cli("node", "status").stdout
    assert "memory" in status and "AssetRegistry" in status and "ok" in status

    accounts = cli("account", "list").stdout
    assert "alice" in accounts and "dev (unencrypted)" in accounts
    created = cli("account", "create", "--label", "dave", CAIRN_PASSWORD="s3cret pass").stdout
    assert "dave" in created and "0x" in created

    before = balance(cli, "alice")
    sent = cli("token", "transfer", "dave", "12.5", "--from", "alice").stdout
    assert tokens(field(sent, "sender balance")) == before - Decimal("12.5")
    assert balance(cli, "dave") == Decimal("12.5")  # a new account: it held nothing
    shown = cli("account", "show", "dave").stdout
    assert field(shown, "CAIRN") == "12.5" and field(shown, "label") == "dave"

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
    app = number(r"Registered asset (\d+)", registered)
    assert "owner 7000, data 2000" in registered
    derived = cli(
        "asset",
        "register",
        "--kind",
        "model",
        "--name",
        "Polite bot",
        "--licence",
        "MIT",
        "--parent",
        app,
        "--from",
        "bob",
    ).stdout
    model = number(r"Registered asset (\d+)", derived)
    models = cli("asset", "list", "--kind", "model").stdout
    assert row(models, model)[1:3] == ["model", "Polite bot"]
    assert {r[1] for r in rows(models) if r[0]} == {"model"}  # the app is not listed
    moved = cli("asset", "transfer", app, "carol", "--from", "alice").stdout
    assert f"Asset {app} now belongs to" in moved
    assert row(cli("asset", "list", "--owner", "carol").stdout, app)[2] == "Polite replies"
    shown = cli("asset", "show", model).stdout
    assert field(shown, "name") == "Polite bot" and field(shown, "parents") == app


@pytest.mark.slow
def test_command_line_errors_are_clear_and_change_nothing(cli: Cli) -> None:
    balances = cli("token", "balance").stdout  # every account in the data folder
    registered = cli(
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
    ).stdout
    asset = number(r"Registered asset (\d+)", registered)
    unknown = str(int(asset) + 100)  # past the newest asset

    def state() -> tuple[str, str]:
        """What a failed command must leave as it found it: the assets (datasets included),
        and the balances of every account in the data folder."""
        return cli("asset", "list").stdout, cli("token", "balance").stdout

    before = state()
    assert row(before[0], asset)[1:3] == ["app", "d"]
    assert before[1] == balances  # registering cost no tokens
    too_much = str(tokens(row(balances, "alice")[2]) + 1)
    cases = [
        (("asset", "transfer", asset, "bob", "--from", "carol"), "not token owner"),
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
                unknown,
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
        (("token", "transfer", "bob", too_much, "--from", "alice"), "cairn_token"),
        (("token", "transfer", "bob", "0", "--from", "alice"), "must be positive"),
        (("token", "transfer", "bob", "1.5.2", "--from", "alice"), "is not a number"),
        (("token", "balance", "nobody"), "no account labelled 'nobody'"),
        (("asset", "show", unknown), f"no asset with id {unknown}"),
    ]
    for args, message in cases:
        result = cli(*args, ok=False)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert state() == before
    unreachable = cli("node", "status", "--node", f"http://127.0.0.1:{free_port()}", ok=False)
    assert "no Cairn node answers" in unreachable.stderr


@pytest.mark.slow
def test_a_dataset_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"review": {"review_share": 0.0}, "validation": {"pii_action": "reject"}})
    )
    created = cli(
        "dataset", "create", "--name", "Kind answers", "--licence", "CC-BY-4.0",
        "--task", "instruction", "--policy", str(policy), "--from", "alice",
    ).stdout  # fmt: skip
    dataset = number(r"Dataset (\d+): Kind answers", created)
    assert field(created, "task") == "instruction" and field(created, "personal data") == "reject"
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
    contributed = cli("contribute", dataset, str(upload), "--from", "bob").stdout
    assert "invalid_json" in contributed and "duplicate" in contributed and "line 6:" in contributed
    assert "pii" in contributed and "someone@example.com" not in contributed
    assert "accepted" in contributed and "5" in contributed
    assert "No review tasks" in cli("review", "next", dataset, "--from", "carol").stdout
    assert row(cli("dataset", "list").stdout, dataset)[1] == "Kind answers"

    anchored = cli("dataset", "anchor", dataset, "--from", "alice").stdout
    assert f"Anchored batch 0 of dataset {dataset}" in anchored
    assert "Nothing to anchor" in cli("dataset", "anchor", dataset, "--from", "alice").stdout

    from cairn.core.merkle import StandardMerkleTree  # noqa: F401  (the proof is OpenZeppelin-compatible)

    record_hash = hashlib.sha256(canonical_json(pair(3))).hexdigest()
    proved = cli(
        "dataset", "proof", dataset, record_hash, "--json", str(tmp_path / "proof.json")
    ).stdout
    assert "verified on chain" in proved and "yes" in proved
    assert json.loads((tmp_path / "proof.json").read_text())["verified_on_chain"] is True
    cli("dataset", "export", dataset, "--out", str(tmp_path / "export"))
    assert (tmp_path / "export" / "records.jsonl").read_text().count("\n") == 5
    assert (tmp_path / "export" / "records.parquet").read_bytes()[:4] == b"PAR1"
    shown = cli("dataset", "show", dataset).stdout
    assert "anchored 5" in shown and "Versions" in shown
    missing = cli("contribute", dataset, str(tmp_path / "nope.jsonl"), "--from", "bob", ok=False)
    assert "does not exist" in missing.stderr
