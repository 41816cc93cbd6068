"""`cairn node start` refuses a busy port before it builds anything, naming the port and flag;
`cairn node fleet-tls|supernode-key|admit-supernode` make and admit the Fleet API's keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from typer.testing import CliRunner

from cairn.chain.anvil import free_port
from cairn.cli.main import app
from cairn.compute.fleet_tls import make_fleet_tls
from cairn.core.errors import CairnError

pytestmark = pytest.mark.process  # starts processes: the e2e tier

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


def start_node_here(data_dir: Path, port: int, fleet_port: int) -> tuple[int, str, float]:
    """`start_node` in this process (the same command, without a second of Python start-up)."""
    began = time.monotonic()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = CliRunner().invoke(
            app,
            ["node", "start", "--dev", "--chain", "memory", "--no-base-models",
             "--data-dir", str(data_dir), "--port", str(port), "--fleet-port", str(fleet_port)],
            env={"COLUMNS": "250"},
        )  # fmt: skip
    finally:
        for signum, handler in handlers.items():  # `node start` takes SIGINT and SIGTERM
            signal.signal(signum, handler)
    error = result.exception
    said = result.output + (error.message if isinstance(error, CairnError) else repr(error))
    return result.exit_code, " ".join(said.split()), time.monotonic() - began


@pytest.mark.parametrize(
    ("busy", "what", "flag", "run"),
    [
        ("api", "the API and web UI", "--port", start_node),  # the console script, as typed
        ("fleet", "the Flower fleet API", "--fleet-port", start_node_here),
    ],
)
def test_a_busy_port_is_refused_before_anything_is_built(
    tmp_path: Path, listener: socket.socket, busy: str, what: str, flag: str, run: Any
) -> None:
    taken = listener.getsockname()[1]
    port, fleet_port = (taken, free_port()) if busy == "api" else (free_port(), taken)
    data_dir = tmp_path / "cairn"
    code, said, seconds = run(data_dir, port, fleet_port)
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
    code, said, _ = start_node_here(tmp_path / "cairn", port, port)
    assert code == 1 and f"--port and --fleet-port are both {port}" in said, said
    assert not (tmp_path / "cairn").exists()


def test_fleet_tls_keys_and_admitted_supernodes_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()

    def cairn(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
        said = result.output + (
            result.exception.message if isinstance(result.exception, CairnError) else ""
        )
        return result.exit_code, " ".join(said.split())

    data_dir = str(tmp_path / "cairn")
    tls = tmp_path / "cairn" / "flower" / "tls"
    code, said = cairn("node", "supernode-key", str(tmp_path / "provider"))
    assert code == 0 and "provider.pub" in said, said
    assert (tmp_path / "provider").stat().st_mode & 0o777 == 0o600
    code, said = cairn(
        "node", "admit-supernode", str(tmp_path / "provider.pub"), "--data-dir", data_dir
    )
    assert code != 0 and "no fleet TLS keys" in said and "cairn node fleet-tls" in said

    code, said = cairn(
        "node", "fleet-tls", "fleet.example.org", "203.0.113.7", "--data-dir", data_dir
    )
    assert code == 0 and "ca.pem" in said, said
    assert {p.name for p in tls.iterdir()} == {"ca.pem", "ca.key", "server.pem", "server.key"}
    assert all((tls / key).stat().st_mode & 0o777 == 0o600 for key in ("ca.key", "server.key"))
    names = x509.load_pem_x509_certificate((tls / "server.pem").read_bytes()).extensions
    san = names.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["fleet.example.org", "localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["203.0.113.7", "127.0.0.1"]
    ca = (tls / "ca.pem").read_bytes()
    code, said = cairn("node", "fleet-tls", "fleet.example.org", "--data-dir", data_dir)
    assert code != 0 and "--replace" in said and (tls / "ca.pem").read_bytes() == ca

    code, said = cairn(
        "node", "admit-supernode", str(tmp_path / "provider.pub"), "--data-dir", data_dir
    )
    assert code == 0, said
    assert (tls / "supernodes" / "provider.pub").read_bytes() == (
        tmp_path / "provider.pub"
    ).read_bytes()
    (tmp_path / "junk.pub").write_text("not a key")
    code, said = cairn(
        "node", "admit-supernode", str(tmp_path / "junk.pub"), "--data-dir", data_dir
    )
    assert code != 0 and "is not a SuperNode public key" in said
    assert not (tls / "supernodes" / "junk.pub").exists()


def test_a_node_serves_https_with_its_certificate(tmp_path: Path) -> None:
    make_fleet_tls(tmp_path / "tls", ["127.0.0.1"])  # any server certificate for 127.0.0.1
    tls = tmp_path / "tls"
    port = free_port()
    command = [
        CAIRN, "node", "start", "--dev", "--chain", "memory", "--no-base-models",
        "--data-dir", str(tmp_path / "cairn"), "--port", str(port), "--fleet-port", str(free_port()),
        "--ssl-certfile", str(tls / "server.pem"), "--ssl-keyfile", str(tls / "server.key"),
    ]  # fmt: skip
    with (tmp_path / "node.log").open("wb") as log:
        node = subprocess.Popen(command, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(
                    f"https://127.0.0.1:{port}/api/v1/health", verify=str(tls / "ca.pem"), timeout=2
                )
                break
            except httpx.TransportError:
                assert node.poll() is None, (tmp_path / "node.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "node.log").read_text()
                time.sleep(0.5)
        assert health.status_code == 200
        with pytest.raises(httpx.TransportError):  # no plaintext beside it
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
        assert f"https://127.0.0.1:{port}" in " ".join((tmp_path / "node.log").read_text().split())
    finally:
        node.terminate()
        node.wait(timeout=60)


def test_https_needs_both_the_certificate_and_its_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["node", "start", "--dev", "--chain", "memory", "--data-dir", str(tmp_path / "cairn"),
         "--ssl-certfile", str(tmp_path / "cert.pem")],
    )  # fmt: skip
    assert isinstance(result.exception, CairnError)
    assert result.exception.message == "HTTPS needs both --ssl-certfile and --ssl-keyfile"
    assert not (tmp_path / "cairn").exists()
