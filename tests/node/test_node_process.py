"""`cairn node start` on anvil, killed and stopped as an operator would: nothing rolls back.

The node runs as a real process with its anvil child. kill -9 of the node must take anvil with
it (no orphan saving the state file over the next node's), SIGTERM must stop both cleanly, a
second node must not start on the folder in use, and a deposit acknowledged by the API must
outlive kill -9 of node and anvil.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from cairn.api.client import NodeClient
from cairn.chain.anvil import free_port
from cairn.identity.keystore import Keystore
from cairn.node import DEV_TOKENS, TOKEN
from tests.processes import pids_with_args

pytestmark = pytest.mark.process  # starts processes: the e2e tier

CAIRN = str(Path(sys.executable).with_name("cairn"))
START_TIMEOUT = 120.0
ENV = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}


class NodeProcess:
    """`cairn node start --dev --chain anvil` on one data folder, started again as needed."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.state_file = data_dir / "chain" / "anvil-state.json"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def command(self, port: int) -> list[str]:
        return [
            CAIRN, "node", "start", "--dev", "--chain", "anvil", "--no-base-models",
            "--data-dir", str(self.data_dir),
            "--port", str(port), "--fleet-port", str(free_port()),
        ]  # fmt: skip

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(port), env=ENV, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the node did not answer in time"
            time.sleep(0.2)

    def signal(self, signum: int) -> int:
        """Send `signum` to the node and wait for it to end; returns its exit status."""
        assert self.proc is not None
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=60)

    def anvils(self) -> list[int]:
        """Live processes whose arguments name this folder's state file: its anvils."""
        return pids_with_args(self.state_file)

    def account(self, label: str) -> LocalAccount:
        store = Keystore(self.data_dir / "accounts")
        return store.unlock(store.find_by_label(label).address, None)

    def api(self, label: str) -> NodeClient:
        client = NodeClient(self.url)
        client.sign_in(self.account(label))
        return client

    def tokens(self, label: str) -> int:
        with NodeClient(self.url) as client:
            return int(client.balances(self.account(label).address)["token"]["balance"])

    def prepaid(self, label: str) -> int:
        with NodeClient(self.url) as client:
            address = self.account(label).address
            return int(client.request("GET", f"/prepaid/{address}")["deposited"])

    def block(self) -> int:
        return int(httpx.get(f"{self.url}/api/v1/health", timeout=10).json()["block_number"])


def gone(pids: list[int], timeout: float) -> bool:
    """Whether every process in `pids` has exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}/cmdline").exists() and _alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path / "cairn", tmp_path / "node.log")
    yield process
    # Whatever the test left running (it started all of these): end it by pid.
    if process.proc is not None and process.proc.poll() is None:
        process.proc.kill()
        process.proc.wait()
    for pid in process.anvils():
        os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_killed_node_takes_anvil_with_it_and_nothing_rolls_back(node: NodeProcess) -> None:
    node.start()
    assert node.proc is not None
    with node.api("alice") as alice:
        asset = alice.register_asset(
            node.account("alice"), kind="model", name="Outlives kill -9", licence="MIT"
        )
        alice.transfer_tokens(node.account("alice"), node.account("bob").address, 21 * TOKEN)
    anvils = node.anvils()
    assert len(anvils) == 1
    block = node.block()

    # kill -9: the node cannot stop anvil itself; Linux signals it, and it saves and exits.
    assert node.signal(signal.SIGKILL) == -signal.SIGKILL
    assert gone(anvils, 20), f"anvil {anvils} outlived the node killed with SIGKILL"

    node.start()
    assert node.block() >= block
    assert node.tokens("bob") == DEV_TOKENS + 21 * TOKEN
    assert NodeClient(node.url).asset(asset["asset_id"])["owner"] == node.account("alice").address
    with node.api("bob") as bob:
        bob.transfer_tokens(node.account("bob"), node.account("carol").address, 5 * TOKEN)
    # A second node on the folder in use is refused, naming the folder and the PID holding it.
    second = subprocess.run(
        node.command(free_port()), env=ENV, capture_output=True, text=True, timeout=120
    )
    assert second.returncode != 0
    said = " ".join((second.stdout + second.stderr).split())
    assert f"data folder {node.data_dir} is in use by another Cairn node (PID {node.proc.pid})" in (
        said
    )
    anvils, block = node.anvils(), node.block()
    assert len(anvils) == 1

    # SIGTERM (a service manager's stop): a clean stop, anvil saved and gone with the node.
    assert node.signal(signal.SIGTERM) == 0, node.log.read_text()[-3000:]
    assert gone(anvils, 1), f"anvil {anvils} outlived the node stopped with SIGTERM"

    node.start()
    assert node.block() >= block
    assert node.tokens("alice") == DEV_TOKENS - 21 * TOKEN
    assert node.tokens("bob") == DEV_TOKENS + 16 * TOKEN
    assert node.tokens("carol") == DEV_TOKENS + 5 * TOKEN
    shown = NodeClient(node.url).asset(asset["asset_id"])
    assert shown["owner"] == node.account("alice").address and shown["name"] == "Outlives kill -9"

    # A deposit the API acknowledged outlives kill -9 of node and anvil right after the 200.
    with node.api("carol") as carol:
        reply = carol.request("POST", "/prepaid/deposits", json={"amount": str(100 * TOKEN)})
    assert int(reply["deposited"]) == 100 * TOKEN
    anvils = node.anvils()
    for pid in anvils:
        os.kill(pid, signal.SIGKILL)
    node.signal(signal.SIGKILL)
    assert gone(anvils, 5)

    node.start()
    assert node.tokens("carol") == DEV_TOKENS - 95 * TOKEN
    assert node.prepaid("carol") == 100 * TOKEN
    assert node.signal(signal.SIGTERM) == 0
