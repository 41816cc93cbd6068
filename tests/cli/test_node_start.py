"""`cairn node start` refuses a busy port before it builds anything, naming the port and flag."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn.chain.anvil import free_port

CAIRN = str(Path(sys.executable).with_name("cairn"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")} | {"COLUMNS": "250"}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket listening on a free 127.0.0.1 port, with SO_REUSEPORT as gRPC servers set it."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def start_node(data_dir: Path, port: int, fleet_port: int) -> tuple[int, str, float]:
    """Run `cairn node start` to its end; returns its exit code, its output and its seconds."""
    began = time.monotonic()
    result = subprocess.run(
        [
            CAIRN, "node", "start", "--dev", "--chain", "memory", "--no-base-models",
            "--data-dir", str(data_dir), "--port", str(port), "--fleet-port", str(fleet_port),
        ],
        env=ENV, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    said = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
    return result.returncode, said, time.monotonic() - began


@pytest.mark.parametrize(
    ("busy", "what", "flag"),
    [("api", "the API and web UI", "--port"), ("fleet", "the Flower fleet API", "--fleet-port")],
)
def test_a_busy_port_is_refused_before_anything_is_built(
    tmp_path: Path, listener: socket.socket, busy: str, what: str, flag: str
) -> None:
    taken = listener.getsockname()[1]
    port, fleet_port = (taken, free_port()) if busy == "api" else (free_port(), taken)
    data_dir = tmp_path / "cairn"
    code, said, seconds = start_node(data_dir, port, fleet_port)
    assert code == 1, said
    assert (
        f"port {taken} ({what}" in said
        and f"is in use: stop what uses it or choose another with {flag}" in said
    )
    assert "Traceback" not in said and "Cairn node" not in said  # no banner, no crash
    assert seconds < 30  # refused at once, not after starting a chain and a SuperLink
    assert not data_dir.exists()  # no folder lock, no index, no chain


def test_the_same_port_for_api_and_fleet_is_refused(tmp_path: Path) -> None:
    port = free_port()
    code, said, _ = start_node(tmp_path / "cairn", port, port)
    assert code == 1 and f"--port and --fleet-port are both {port}" in said, said
    assert not (tmp_path / "cairn").exists()
