"""A managed anvil child process on 127.0.0.1 whose state lives in the node's data folder.

Anvil saves its whole state to `--state FILE` every second and when it is stopped (SIGINT or
SIGTERM). The child dies with the node however the node ends (SIGTERM from Linux when the node
is killed, so it still saves), and it holds the data folder's lock until it has exited. What
survives a crash is what anvil last saved: `saved_block` reads that block number from the file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from cairn.core.children import death_signal
from cairn.core.errors import ChainUnavailable

CHAIN_ID = 31337


def find_anvil(project_root: Path | None = None) -> str:
    """The anvil binary: the npm package's in the project folder, else `anvil` on PATH."""
    roots = [project_root] if project_root else []
    roots += [Path.cwd(), Path(__file__).resolve().parents[3]]
    for root in roots:
        for candidate in sorted((root / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise ChainUnavailable(
        "anvil is not installed: run `make run` (it runs `npm install`, which ships anvil in "
        "node_modules/), or choose the in-process chain with --chain memory"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilProcess:
    """Start anvil with `--state FILE` so that a restarted node keeps its assets and balances."""

    def __init__(
        self,
        state_file: Path,
        *,
        port: int | None = None,
        binary: str | None = None,
        lock_fd: int | None = None,
    ):
        self.state_file = state_file
        self.port = port or free_port()
        self.binary = binary or find_anvil()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = state_file.with_suffix(".log")
        self.lock_fd = lock_fd  # the data folder's lock, held by anvil too until it exits
        self._proc: subprocess.Popen[bytes] | None = None
        self._saved: tuple[tuple[int, int, int], int] | None = None  # (file stat, its block)

    def start(self, timeout: float = 20.0) -> None:
        """Start anvil and wait until it answers JSON-RPC."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--hardfork", "prague",
            "--chain-id", str(CHAIN_ID),
            "--state", str(self.state_file),
            # dump every second, so a killed node loses at most a second of chain state
            "--state-interval", "1",
            "--silent",
        ]  # fmt: skip
        log = self.log_file.open("ab")
        self._proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=death_signal(),
            pass_fds=() if self.lock_fd is None else (self.lock_fd,),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ChainUnavailable(
                    f"anvil exited with code {self._proc.returncode}; see {self.log_file}"
                )
            try:
                reply = httpx.post(
                    self.url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                    timeout=1.0,
                )
                if reply.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ChainUnavailable(f"anvil did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop anvil; it writes its state file on the way out."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def saved_block(self) -> int:
        """The newest block in the state file anvil last finished saving; -1 before any.

        A file anvil is writing right now is not valid JSON yet: the previous answer stands.
        """
        try:
            stat = self.state_file.stat()
        except FileNotFoundError:
            return -1
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._saved is not None and self._saved[0] == key:
            return self._saved[1]
        try:
            saved = json.loads(self.state_file.read_bytes())["best_block_number"]
            block = int(str(saved), 0)  # a JSON number; a hex string would do too
        except (ValueError, KeyError, TypeError):
            return self._saved[1] if self._saved is not None else -1
        self._saved = (key, block)
        return block
