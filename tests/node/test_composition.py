"""The composition root: bootstrapping a ready folder changes nothing, opening a node changes
nothing, and a node refuses a folder that bootstrap has not made ready."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from cairn.chain.anvil import free_port
from cairn.chain.memory import MemoryBackend
from cairn.config import NodeConfig
from cairn.core.errors import ConfigError
from cairn.db.engine import Database
from cairn.node import Node, bootstrap
from tests.conftest import Templates

pytestmark = pytest.mark.node


def _config(folder: Path) -> NodeConfig:
    return NodeConfig.from_env(
        data_dir=folder, chain="memory", dev=True, port=free_port(), fleet_port=free_port()
    )


def _state(node: Node) -> tuple[int, str, list[str]]:
    """The chain's head, a digest of every row of the index, and the files of the folder."""
    digest = hashlib.sha256()
    with node.db.engine.connect() as connection:
        for table in sorted(inspect(connection).get_table_names()):
            for row in connection.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')):
                digest.update(repr((table, tuple(row))).encode())
    files = sorted(
        str(p.relative_to(node.data_dir))
        for p in node.data_dir.rglob("*")
        if p.is_file() and not p.name.startswith(("index.db", "node.lock"))
    )
    return node.client.block_number(), digest.hexdigest(), files


def test_bootstrapping_a_ready_folder_changes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path / "n")
    first = bootstrap(config)
    backend = first.backend
    before = _state(first)
    first.close()
    again = bootstrap(config, backend=backend)  # the same chain: a restart of the node
    try:
        assert _state(again) == before  # no transaction, no row, no file
    finally:
        again.close()


def test_opening_a_node_changes_nothing(templates: Templates, tmp_path: Path) -> None:
    config = _config(tmp_path / "n")
    template = templates.get(config.dev_accounts)
    node = template.node(config.data_dir, config)
    before = _state(node)
    node.close()
    again = Node(config, backend=template.backend)
    try:
        assert _state(again) == before
        assert again.chain.token.balance_of(again.keystore.find_by_label("alice").address) > 0
    finally:
        again.close()


def test_a_node_refuses_a_folder_bootstrap_has_not_made_ready(tmp_path: Path) -> None:
    config = _config(tmp_path / "empty")
    with pytest.raises(ConfigError, match="not a node's data folder"):
        Node(config)
    config.data_dir.mkdir()
    with pytest.raises(ConfigError, match="not up to date: start the node with `cairn node start`"):
        Node(config)
    Database(config.index_url).migrate()  # an index, but no contracts on this new chain
    with pytest.raises(ConfigError, match="contracts are not deployed on the memory chain"):
        Node(config, backend=MemoryBackend())
    # neither attempt left the folder locked
    bootstrap(config).close()
