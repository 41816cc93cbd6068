"""A Fleet API over TLS with SuperNode authentication: a registered SuperNode joins, others don't.

Flower's own processes: a `flower-superlink` with the certificates `make_fleet_tls` writes and
`--enable-supernode-auth`, and `flower-supernode`s that trust the node's CA, one with a key the
node registered through the Control API and one with a key it never saw.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from cairn.chain.anvil import free_port
from cairn.compute.fleet_tls import make_fleet_tls, make_supernode_key
from cairn.compute.flower_processes import flower_tool, spawn_flower, stop_group
from cairn.compute.superlink import SuperLink
from cairn.provider.worker import Worker
from tests.compute.conftest import running_superlink

pytestmark = pytest.mark.process  # starts processes: the e2e tier

JOIN_TIMEOUT = 60.0


@pytest.fixture
def superlink(tmp_path: Path) -> Iterator[SuperLink]:
    """A SuperLink on 127.0.0.1 whose folder holds fleet TLS keys (as `cairn node fleet-tls`
    writes them) and one admitted SuperNode key (as `cairn node admit-supernode` copies it)."""
    make_fleet_tls(tmp_path / "flower" / "tls", ["127.0.0.1"])
    make_supernode_key(tmp_path / "keys" / "provider")
    admitted = tmp_path / "flower" / "tls" / "supernodes"
    admitted.mkdir()
    shutil.copy(tmp_path / "keys" / "provider.pub", admitted / "provider.pub")
    with running_superlink(tmp_path / "flower") as link:
        yield link


class SuperNodes:
    """`flower-supernode` processes against one SuperLink; every one stopped, children too."""

    def __init__(self, link: SuperLink, folder: Path) -> None:
        self.link = link
        self.folder = folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, key: Path, *, ca: Path | None) -> Path:
        """Start a SuperNode with this key, trusting `ca` (None: the system's roots)."""
        trust = ["--root-certificates", str(ca)] if ca is not None else []
        command = [
            flower_tool("flower-supernode"),
            *trust,
            "--superlink", self.link.fleet_address,
            "--auth-supernode-private-key", str(key),
            "--clientappio-api-address", f"127.0.0.1:{free_port()}",
            "--max-retries", "1",
            "--max-wait-time", "5",
        ]  # fmt: skip
        log = self.folder / f"{name}.log"
        self.processes.append(spawn_flower(command, log, self.folder / name))
        return log

    def stop(self) -> None:
        for process in self.processes:
            stop_group(process, grace=5.0)


@pytest.fixture
def supernodes(superlink: SuperLink, tmp_path: Path) -> Iterator[SuperNodes]:
    nodes = SuperNodes(superlink, tmp_path)
    try:
        yield nodes
    finally:
        nodes.stop()


def given_up(process: subprocess.Popen[bytes], log: Path, why: str, timeout: float = 30.0) -> bool:
    """Whether a SuperNode (`--max-retries 1`) gave up on the SuperLink, its log saying `why`."""
    process.wait(timeout)
    assert why in log.read_text(), log.read_text()[-3000:]
    return process.returncode != 0


def online(link: SuperLink, timeout: float) -> dict[int, str]:
    """The SuperNodes online within `timeout` seconds (waits for the first one)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {n: s for n, s in link.supernodes().items() if s == "online"}
        if seen or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_a_registered_supernode_joins_over_tls_and_an_unregistered_one_is_refused(
    superlink: SuperLink, supernodes: SuperNodes, tmp_path: Path
) -> None:
    assert superlink.tls_dir == tmp_path / "flower" / "tls"  # found in its folder
    ca = superlink.tls_dir / "ca.pem"
    make_supernode_key(tmp_path / "keys" / "stranger")  # a key the node never admitted
    (node_id,) = superlink.supernodes()  # provider.pub, registered as the SuperLink started
    assert superlink.supernodes() == {node_id: "registered"}
    superlink.stop()
    superlink.start()  # a restart registers nothing twice
    assert superlink.supernodes() == {node_id: "registered"}

    stranger_log = supernodes.start("stranger", tmp_path / "keys" / "stranger", ca=ca)
    provider_log = supernodes.start("provider", tmp_path / "keys" / "provider", ca=ca)
    assert online(superlink, JOIN_TIMEOUT) == {node_id: "online"}, provider_log.read_text()
    # the stranger reached the Fleet API over TLS and was turned away: it never got a node id
    # (it then exits with an error, unless Flower's shutdown hangs on its own threads: a loaded
    # machine saw that once, and it is Flower's exit, not the refusal, so it is not waited for)
    refused = "No SuperNode found with the given public key"
    deadline = time.monotonic() + JOIN_TIMEOUT
    while refused not in stranger_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    said = stranger_log.read_text()
    assert refused in said, said
    assert "SuperNode ID" not in said
    assert supernodes.processes[0].poll() != 0  # never a clean start
    assert set(superlink.supernodes()) == {node_id}


def test_a_supernode_that_does_not_trust_the_node_ca_does_not_connect(
    superlink: SuperLink, supernodes: SuperNodes, tmp_path: Path
) -> None:
    node_id = superlink.register_supernode(make_supernode_key(tmp_path / "other"))
    log = supernodes.start("other", tmp_path / "other", ca=None)  # no --root-certificates
    assert given_up(supernodes.processes[-1], log, "Tls handshake failed")
    assert online(superlink, 0) == {}
    assert superlink.supernodes()[node_id] == "registered"


def test_a_supernode_without_tls_is_refused(superlink: SuperLink, tmp_path: Path) -> None:
    command = [
        flower_tool("flower-supernode"),
        "--insecure",
        "--superlink", superlink.fleet_address,
        "--clientappio-api-address", f"127.0.0.1:{free_port()}",
        "--max-retries", "1",
        "--max-wait-time", "5",
    ]  # fmt: skip
    process = spawn_flower(command, tmp_path / "plain.log", tmp_path / "plain")
    try:
        assert given_up(process, tmp_path / "plain.log", "Socket closed")
        assert online(superlink, 0) == {}
    finally:
        stop_group(process, grace=5.0)
    assert set(superlink.supernodes().values()) == {"registered"}  # the admitted one, idle


class FleetInfo:
    """The one answer of a node's API a worker needs to find the Fleet API: `GET /compute`."""

    def __init__(self, link: SuperLink) -> None:
        self.base_url = "http://127.0.0.1:1"
        self.link = link

    def compute(self) -> dict[str, object]:
        return {"superlink_running": self.link.running, "fleet_port": self.link.fleet_port}


def test_a_worker_with_the_node_ca_and_an_admitted_key_joins(
    superlink: SuperLink, tmp_path: Path
) -> None:
    assert superlink.tls_dir is not None
    worker = Worker(
        FleetInfo(superlink),  # type: ignore[arg-type]
        Account.create(),
        tmp_path / "worker",
        fleet_ca=superlink.tls_dir / "ca.pem",
        supernode_key=tmp_path / "keys" / "provider",  # the fixture's admitted key
    )
    worker.start()
    try:
        assert list(online(superlink, JOIN_TIMEOUT).values()) == ["online"]
    finally:
        worker.stop()


def test_on_a_public_address_only_the_fleet_api_is_reachable(tmp_path: Path) -> None:
    """Whoever reaches the Control API may register SuperNodes and start runs: it stays local."""
    link = SuperLink(
        tmp_path / "flower",
        host="0.0.0.0",
        fleet_port=free_port(),
        control_port=free_port(),
        serverappio_port=free_port(),
    )
    link.start()
    try:

        def reachable(port: int) -> bool:  # 127.0.0.2 reaches 0.0.0.0, not 127.0.0.1
            with socket.socket() as sock:
                sock.settimeout(2)
                return sock.connect_ex(("127.0.0.2", port)) == 0

        assert reachable(link.fleet_port)
        assert not reachable(link.control_port) and not reachable(link.serverappio_port)
        assert link.supernodes() == {}  # the node itself still reaches its Control API
    finally:
        link.stop()
