"""A provider's worker: stake in JobEscrow, then run a Flower SuperNode for a node.

`cairn worker start --node URL --account NAME` does three things:

1. asks the node where its SuperLink's Fleet API is and what a provider must stake;
2. registers the account as a provider in JobEscrow with that stake (or tops it up), signing
   locally and letting the node relay the transactions (the node never sees the key);
3. runs Flower's SuperNode against the Fleet API with Cairn's ClientApp
   (`cairn.provider.clientapp`), handing it the key in a 0600 file that is removed when the
   worker stops, in one process with the resident trainer (`cairn.provider.host`) that keeps
   the training stack, the model and the records loaded across rounds.

One worker per work folder: the worker holds `worker.lock` there and hands it on to the
SuperNode's process, so the folder stays taken until that process has exited, even when the
worker was killed (the resident trainer then stops by itself: `cairn.provider.host`). A node
restarted after a crash thus waits for its demo providers' old processes instead of running
a second SuperNode beside each.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from cairn.chain.anvil import free_port
from cairn.compute.flower_processes import flower_tool, spawn_flower, stop_group
from cairn.core.errors import InvalidInput, Unavailable
from cairn.folder_lock import FolderLock
from cairn.provider.node_api import NodeAPI

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount


class Worker:
    """One provider account working for one node."""

    def __init__(
        self,
        api: NodeAPI,
        account: LocalAccount,
        work_dir: Path,
        *,
        stake: int | None = None,
        fleet_ca: Path | None = None,
        supernode_key: Path | None = None,
        resident: bool = True,
        blob_source: Path | None = None,
    ) -> None:
        self.api = api
        self.account = account
        self.work_dir = work_dir
        self.stake = stake  # None: the node's minimum stake
        # a node whose Fleet API uses TLS: its CA (`ca.pem` of `cairn node fleet-tls`) and the
        # SuperNode key it admitted (`cairn node supernode-key`); None: a plaintext Fleet API
        self.fleet_ca = fleet_ca
        self.supernode_key = supernode_key
        self.resident = resident  # a resident trainer beside the SuperNode (cairn.provider.host)
        # the node's blob folder when it runs on this machine: the trainer links what it needs
        # from there (verified) instead of fetching a second copy
        self.blob_source = blob_source
        self.process: subprocess.Popen[bytes] | None = None
        self.key_file = work_dir / "provider.key"
        self.socket_dir: Path | None = None
        self.lock = FolderLock(
            work_dir,
            "worker.lock",
            what="work folder",
            owner="Cairn worker",
            elsewhere="give this one another --work-dir",
        )

    def fleet_address(self) -> str:
        """Where this worker's SuperNode connects: the node's host, the Fleet API's port."""
        info = self.api.compute()
        if not info["superlink_running"]:
            raise Unavailable(f"the node at {self.api.base_url} runs no Flower SuperLink")
        host = urlparse(self.api.base_url).hostname or "127.0.0.1"
        return f"{host}:{info['fleet_port']}"

    def ensure_staked(self) -> dict[str, Any]:
        """Register as a provider with the stake (or add what is missing); returns the record."""
        info = self.api.compute()
        wanted = self.stake if self.stake is not None else int(info["min_stake"])
        if wanted < int(info["min_stake"]):
            raise InvalidInput(f"the node asks providers to stake at least {info['min_stake']}")
        address = self.account.address
        record = self.api.provider(address)
        if record["active"] and int(record["stake"]) >= wanted:
            return record
        have = int(record["stake"]) if record["active"] else 0
        missing = wanted - have
        if missing > 0:
            self.api.transact(self.account, "CairnToken", "approve", info["escrow"], missing)
        if record["active"]:
            self.api.transact(self.account, "JobEscrow", "add_stake", missing)
        else:
            endpoint = f"supernode@{socket.gethostname()}"
            self.api.transact(self.account, "JobEscrow", "register_provider", missing, endpoint)
        return self.api.provider(address)

    def start(self) -> subprocess.Popen[bytes]:
        """Start the SuperNode and the trainer (in their own process group); their process.

        A worker made with `resident=False` runs a bare `flower-supernode` instead, whose
        ClientApp trains in the process Flower starts for each round (less memory held between
        rounds, seconds more per round).
        """
        fleet = self.fleet_address()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()  # waits for the processes of a worker that was killed to end
        try:
            return self._spawn(fleet)
        except BaseException:
            self.lock.release()
            raise

    def _spawn(self, fleet: str) -> subprocess.Popen[bytes]:
        assert self.lock.fd is not None
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.account.key.hex())
        node_config = f"key-file='{self.key_file}' work-dir='{self.work_dir}'"
        security = (
            ["--insecure"] if self.fleet_ca is None else ["--root-certificates", str(self.fleet_ca)]
        )
        if self.supernode_key is not None:
            security += ["--auth-supernode-private-key", str(self.supernode_key)]
        supernode = flower_tool("flower-supernode")  # refuses a Python without Flower's programs
        host: list[str] = [supernode]
        if self.resident:
            # a Unix socket's path is short (108 bytes) and its folder is the provider's alone
            self.socket_dir = Path(tempfile.mkdtemp(prefix="cairn-trainer-"))
            trainer_socket = self.socket_dir / "trainer.sock"
            node_config += f" trainer-socket='{trainer_socket}'"
            host = [sys.executable, "-m", "cairn.provider.host", "--key-file", str(self.key_file)]
            host += ["--work-dir", str(self.work_dir), "--socket", str(trainer_socket)]
            host += ["--parent-pid", str(os.getpid())]
            if self.blob_source is not None:
                host += ["--blob-source", str(self.blob_source)]
            host += ["--"]
        command = [
            *host,
            *security,
            "--superlink",
            fleet,
            "--clientappio-api-address",
            f"127.0.0.1:{free_port()}",
            "--node-config",
            node_config,
        ]
        self.process = spawn_flower(
            command, self.work_dir / "supernode.log", self.work_dir / "flower", keep=self.lock.fd
        )
        return self.process

    def stop(self) -> None:
        """Stop the SuperNode and whatever it runs; remove the key file."""
        if self.process is not None:
            stop_group(self.process)
            self.process = None
        with contextlib.suppress(FileNotFoundError):
            self.key_file.unlink()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None
        self.lock.release()
