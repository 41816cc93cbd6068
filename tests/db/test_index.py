"""The off-chain index: migrations on SQLite, and the same node on a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from cairn.chain.anvil import free_port
from cairn.db.engine import Database
from cairn.node import Node

TABLES = {"assets", "chain_sync", "siwe_nonces", "sessions", "alembic_version"}


def test_migrations_create_every_table_and_run_twice(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'index.db'}")
    db.migrate()
    db.migrate()  # already at head: nothing to do, nothing breaks
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    db.close()


def _pg_bin(name: str) -> str | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on 127.0.0.1, started here and stopped after."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # PostgreSQL refuses to run as root; run it as the postgres user when we are root.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # pytest's tmp_path is private to root; the server's user needs a folder of its own.
    root = Path(tempfile.mkdtemp(prefix="cairn-pg-"))
    data = root / "pg"
    data.mkdir()
    if as_user:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    user = "postgres" if as_user else os.environ.get("USER", "postgres")
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", user, "--auth=trust"],
        check=True,
        capture_output=True,
        cwd=root,
    )
    port = free_port()
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(data / "log"), "start"],
        check=True,
        capture_output=True,
        cwd=root,
    )
    try:
        time.sleep(0.2)
        yield f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            cwd=root,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.process
@pytest.mark.slow
def test_a_node_runs_its_index_on_postgresql(
    make_node: Callable[..., Node], postgres_url: str
) -> None:
    node = make_node(db_url=postgres_url)
    assert node.db.engine.dialect.name == "postgresql"
    assert set(inspect(node.db.engine).get_table_names()) >= TABLES
    alice = node.signers.get(node.keystore.find_by_label("alice").address)
    data = node.assets.register(alice, kind="dataset", name="Stored in Postgres", licence="MIT")
    model = node.assets.register(
        alice, kind="model", name="m", licence="MIT", parents=[data.asset_id]
    )
    assert [a.asset_id for a in node.assets.list(query="postgres")] == [data.asset_id]
    assert node.assets.get(model.asset_id).parents == [data.asset_id]
    nonce = node.auth.issue_nonce()
    assert len(nonce) >= 16
