"""Fixtures shared across the suite: nodes on a real chain, and a real HTTP server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.api.server import BackgroundServer
from cairn.chain.anvil import free_port
from cairn.chain.backends import MemoryBackend
from cairn.config import NodeConfig
from cairn.node import Node, bootstrap

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests must not pick up a developer's own settings.
for _name in [n for n in os.environ if n.startswith("CAIRN_")]:
    del os.environ[_name]


# Settings that change only how a node is wired, not what bootstrapping it makes: a node with
# no others can start from a copy of the session's template instead of being bootstrapped.
WIRING_ONLY = {
    "port",
    "fleet_port",
    "host",
    "node_url",
    "epoch_seconds",
    "model_memory_mb",
    "upload_quota_mb",
    "uploads_per_hour",
    "upload_chunk_mb",
    "free_calls_per_minute",
    "secure_cookies",
    "public_domains",
    "control_port",
    "serverappio_port",
}


@dataclass
class Template:
    """A node bootstrapped once per session on the memory chain, closed, its chain snapshot."""

    folder: Path
    backend: MemoryBackend
    snapshot: int

    def node(self, folder: Path, config: NodeConfig) -> Node:
        """A node on a copy of the template's folder and its chain as bootstrapping left it."""
        self.backend.tester.revert_to_snapshot(self.snapshot)
        shutil.copytree(self.folder, folder)
        return Node(config, backend=self.backend)


class Templates:
    """The session's templates, one per set of dev accounts, bootstrapped on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[tuple[str, ...], Template] = {}

    def get(self, dev_accounts: tuple[str, ...]) -> Template:
        if dev_accounts not in self._made:
            folder = self.root / f"template-{len(self._made)}"
            node = bootstrap(NodeConfig.from_env(**_settings(folder, dev_accounts=dev_accounts)))
            backend = node.backend
            assert isinstance(backend, MemoryBackend)
            snapshot = backend.tester.take_snapshot()
            node.close()  # the memory chain stays: closing it is a no-op
            self._made[dev_accounts] = Template(folder, backend, snapshot)
        return self._made[dev_accounts]


def _settings(data_dir: Path, **settings: object) -> dict[str, object]:
    settings.setdefault("chain", "memory")
    settings.setdefault("dev", True)
    settings.setdefault("port", free_port())
    settings.setdefault("fleet_port", free_port())
    return {"data_dir": data_dir, **settings}


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def make_node(tmp_path: Path, templates: Templates) -> Iterator[Callable[..., Node]]:
    """Open nodes on folders under tmp_path (memory chain and dev accounts unless told).

    The first node of a test with no folder of its own and only wiring settings is a copy of
    the session's bootstrapped template (milliseconds); any other is bootstrapped as
    `cairn node start` does, on a chain of its own.
    """
    nodes: list[Node] = []

    def make(data_dir: Path | None = None, **settings: object) -> Node:
        from_template = (
            data_dir is None and not nodes and set(settings) <= WIRING_ONLY | {"dev_accounts"}
        )
        config = NodeConfig.from_env(**_settings(data_dir or tmp_path / "node", **settings))
        if from_template:
            node = templates.get(config.dev_accounts).node(config.data_dir, config)
        else:
            node = bootstrap(config)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


@pytest.fixture
def node(make_node: Callable[..., Node]) -> Node:
    """A dev node on the in-process chain."""
    return make_node()


LiveServer = BackgroundServer  # the name the tests use


@pytest.fixture
def live(node: Node) -> Iterator[LiveServer]:
    """The dev node's API on a real HTTP server."""
    server = LiveServer(node).start()
    yield server
    server.stop()
