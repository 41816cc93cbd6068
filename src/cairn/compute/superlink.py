"""The node's Flower SuperLink: a managed child process, and the runs it executes.

Providers' SuperNodes connect to its Fleet API (`fleet_address`). The node starts one Flower run
per job (and a new one when it resumes a job after a restart) through the Control API, with a
Flower App Bundle built in memory whose components are Cairn's own ServerApp and ClientApp,
imported from the installed `cairn` package (runtime dependency installation is off: nothing is
downloaded). The SuperLink runs with `--isolation process`: its ServerApps run in processes
forked by the node's ServerApp executor (`cairn.compute.serverexec`), which has imported them
once, instead of a Python started per run. Each runs in a process group of its own, so that
stopping them stops everything they started.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import subprocess
import time
from pathlib import Path

import grpc
from flwr.cli.build import build_fab_from_files
from flwr.common.serde import fab_to_proto, user_config_to_proto
from flwr.proto.control_pb2 import (
    ListNodesRequest,
    RegisterNodeRequest,
    StartRunRequest,
    StopRunRequest,
)
from flwr.proto.control_pb2_grpc import ControlStub
from flwr.proto.node_pb2 import NodeInfo
from flwr.supercore.fab import Fab

from cairn import __version__
from cairn.compute.fleet_tls import load_supernode_public_key
from cairn.compute.flower_processes import flower_tool, spawn_flower, stop_group
from cairn.compute.serverexec import ServerAppExecutor
from cairn.core.errors import ConfigError, Unavailable

log = logging.getLogger("cairn.superlink")

START_TIMEOUT = 60.0
# the Control and ServerAppIo APIs serve the node alone, on this machine: whoever reaches the
# Control API may start runs and register SuperNodes, so only the Fleet API follows `host`
LOCAL = "127.0.0.1"

FAB_PYPROJECT = f"""\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "cairn-job"
version = "{__version__}"
description = "A Cairn training job: DiLoCo rounds of the installed cairn package"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "cairn"

[tool.flwr.app.components]
serverapp = "cairn.compute.serverapp:app"
clientapp = "cairn.provider.clientapp:app"

[tool.flwr.app.config]
job-dir = ""
"""


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Wait until something listens on host:port, or fail if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Unavailable(f"the process exited with code {process.returncode} while starting")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise Unavailable(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class SuperLink:
    """A `flower-superlink` child process with its state in `folder`."""

    def __init__(
        self,
        folder: Path,
        *,
        host: str = "127.0.0.1",
        fleet_port: int,
        control_port: int,
        serverappio_port: int,
        tls_dir: Path | None = None,
    ) -> None:
        self.folder = folder
        # a folder made by `make_fleet_tls` (by default `folder/tls`, if `cairn node fleet-tls`
        # made one): TLS on the Fleet and Control APIs, and only SuperNodes whose public keys
        # are registered admitted (those in `tls_dir/supernodes/*.pub` at each start); None:
        # plaintext, and any SuperNode that reaches the Fleet API joins
        if tls_dir is None and (folder / "tls" / "server.pem").exists():
            tls_dir = folder / "tls"
        self.tls_dir = tls_dir
        self.host = host
        self.fleet_port = fleet_port
        self.control_port = control_port
        self.serverappio_port = serverappio_port
        self.process: subprocess.Popen[bytes] | None = None
        self.serverapps = ServerAppExecutor(
            f"{LOCAL}:{serverappio_port}", folder / "serverapps.log", folder / "home"
        )

    @property
    def fleet_address(self) -> str:
        """Where SuperNodes connect (`--superlink`)."""
        return f"{self.host}:{self.fleet_port}"

    @property
    def running(self) -> bool:
        """Whether the SuperLink process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the SuperLink (its state persists in `folder/state.db`) and the executor of its
        ServerApps (`cairn.compute.serverexec`); idempotent."""
        if self.running:
            self.serverapps.start()
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.tls_dir is None:
            security = ["--insecure"]
        else:
            security = [
                "--ssl-certfile", str(self.tls_dir / "server.pem"),
                "--ssl-keyfile", str(self.tls_dir / "server.key"),
                "--ssl-ca-certfile", str(self.tls_dir / "ca.pem"),
                "--enable-supernode-auth",
            ]  # fmt: skip
        command = [
            flower_tool("flower-superlink"),
            *security,
            "--disable-runtime-dependency-installation",
            "--isolation",  # no SuperExec: the ServerApps are `self.serverapps`' to run
            "process",
            "--database",
            str(self.folder / "state.db"),
            "--fleet-api-address",
            self.fleet_address,
            "--control-api-address",
            f"{LOCAL}:{self.control_port}",
            "--serverappio-api-address",
            f"{LOCAL}:{self.serverappio_port}",
        ]
        self.process = spawn_flower(command, self.folder / "superlink.log", self.folder / "home")
        try:
            wait_for_port(LOCAL, self.control_port, START_TIMEOUT, self.process)
            wait_for_port(self.host, self.fleet_port, START_TIMEOUT, self.process)
        except Unavailable as exc:
            self.stop()
            raise Unavailable(
                f"the Flower SuperLink did not start ({exc.message}); see "
                f"{self.folder / 'superlink.log'}"
            ) from None
        if self.tls_dir is not None:
            self._register_admitted_supernodes(self.tls_dir / "supernodes")
        self.serverapps.start()
        log.info(
            "Flower SuperLink: fleet API on %s (%s)",
            self.fleet_address,
            "plaintext, open to any SuperNode"
            if self.tls_dir is None
            else "TLS, registered SuperNodes only",
        )

    def stop(self) -> None:
        """Stop the SuperLink and the ServerApps it runs."""
        self.serverapps.stop()  # first: a stopping ServerApp reports its end to the SuperLink
        if self.process is not None:
            stop_group(self.process)
            self.process = None

    def start_run(self, job_dir: Path) -> int:
        """Start a Flower run of Cairn's ServerApp on `job_dir`; returns the run id."""
        self.start()
        fab_bytes, _ = build_fab_from_files({"pyproject.toml": FAB_PYPROJECT.encode()})
        fab = Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})
        request = StartRunRequest(
            fab=fab_to_proto(fab),
            override_config=user_config_to_proto({"job-dir": str(job_dir)}),
        )
        response = self._control(lambda stub: stub.StartRun(request, timeout=30))
        if not response.HasField("run_id"):
            raise Unavailable("the SuperLink did not start the run")
        self.serverapps.wake()
        return int(response.run_id)

    def stop_run(self, run_id: int) -> None:
        """Ask the SuperLink to stop a run (a finished run is left as it is)."""
        request = StopRunRequest(run_id=run_id)
        try:
            self._control(lambda stub: stub.StopRun(request, timeout=30))
        except Unavailable as exc:
            log.info("stopping run %d: %s", run_id, exc.message)

    def register_supernode(self, public_key: bytes) -> int:
        """Admit the SuperNode holding this public key's private key (PEM); returns its node id."""
        request = RegisterNodeRequest(public_key=public_key)
        response = self._control(lambda stub: stub.RegisterNode(request, timeout=30))
        return int(response.node_id)

    def _register_admitted_supernodes(self, folder: Path) -> None:
        known = {bytes(info.public_key) for info in self._node_infos()}
        for pub in sorted(folder.glob("*.pub")):
            try:
                public_key = load_supernode_public_key(pub)
            except ValueError as exc:
                raise ConfigError(f"{pub} is not a SuperNode public key: {exc}") from None
            if public_key not in known:
                node_id = self.register_supernode(public_key)
                log.info("SuperNode key %s admitted as node %d", pub.name, node_id)

    def _node_infos(self) -> list[NodeInfo]:
        response = self._control(lambda stub: stub.ListNodes(ListNodesRequest(), timeout=30))
        return list(response.nodes_info)

    def supernodes(self) -> dict[int, str]:
        """The SuperNodes the SuperLink knows, by node id, with their status ("online", ...)."""
        return {int(info.node_id): str(info.status) for info in self._node_infos()}

    def _control(self, call):  # type: ignore[no-untyped-def]
        target = f"{LOCAL}:{self.control_port}"
        if self.tls_dir is None:
            channel = grpc.insecure_channel(target)
        else:  # the certificate names localhost; the node dials its own Control API
            credentials = grpc.ssl_channel_credentials((self.tls_dir / "ca.pem").read_bytes())
            channel = grpc.secure_channel(
                target, credentials, options=[("grpc.ssl_target_name_override", "localhost")]
            )
        try:
            return call(ControlStub(channel))
        except grpc.RpcError as exc:
            raise Unavailable(f"Flower Control API: {exc.details()}") from None
        finally:
            channel.close()
