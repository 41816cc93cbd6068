"""Fixtures shared across the suite: nodes on a real chain, and a real HTTP server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cairn.api.server import BackgroundServer
from cairn.chain.anvil import free_port
from cairn.node import Node, open_node

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Tests must not pick up a developer's own settings.
for _name in [n for n in os.environ if n.startswith("CAIRN_")]:
    del os.environ[_name]


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Open nodes on folders under tmp_path (memory chain and dev accounts unless told)."""
    nodes: list[Node] = []

    def make(data_dir: Path | None = None, **settings: object) -> Node:
        settings.setdefault("chain", "memory")
        settings.setdefault("dev", True)
        settings.setdefault("port", free_port())
        settings.setdefault("fleet_port", free_port())
        node = open_node(data_dir or tmp_path / "node", **settings)
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
