"""Fixtures shared across the suite: nodes on a real chain, and a real HTTP server."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn

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


class LiveServer:
    """A node's app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, node: Node) -> None:
        from cairn.api.app import create_app

        self.node = node
        self.port = node.config.port
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(node), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(node: Node) -> Iterator[LiveServer]:
    """The dev node's API on a real HTTP server."""
    server = LiveServer(node).start()
    yield server
    server.stop()
