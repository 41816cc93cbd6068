"""A provider's processes live no longer than the worker that started them, and one work folder
has one worker: a node killed with its demo providers, restarted, runs each provider once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cairn.api.client import NodeClient
from cairn.core.errors import ConfigError
from cairn.node import Node
from cairn.provider.worker import Worker
from tests.conftest import LiveServer
from tests.data.conftest import dev
from tests.processes import pids_with_args

pytestmark = pytest.mark.process  # a SuperLink and provider processes

# A worker started from a thread, as the node starts the demo's providers: Linux's parent-death
# signal is tied to the forking thread, so it cannot be what stops the provider's process.
WORKER = textwrap.dedent(
    """
    import os, sys, threading, time
    from pathlib import Path
    from eth_account import Account
    from cairn.api.client import NodeClient
    from cairn.provider.worker import Worker

    worker = Worker(NodeClient(sys.argv[1]), Account.from_key(os.environ["KEY"]), Path(sys.argv[2]))
    started = threading.Thread(target=worker.start)
    started.start()
    started.join()
    print(worker.process.pid, worker.socket_dir, flush=True)
    time.sleep(600)
    """
)


def hosts_on(folder: Path) -> list[int]:
    """The provider processes (`cairn.provider.host`) that run on a work folder."""
    return pids_with_args("cairn.provider.host", folder)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_killed_workers_provider_stops_and_its_folder_takes_one_worker_again(
    node: Node, live: LiveServer, tmp_path: Path
) -> None:
    node.start_compute()
    bob = dev(node, "bob")
    folder = tmp_path / "worker-bob"
    child = subprocess.Popen(
        [sys.executable, "-c", WORKER, live.url, str(folder)],
        env={**os.environ, "KEY": bob.key.hex()},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        pid, socket_dir = child.stdout.readline().split()
        host, sockets = int(pid), Path(socket_dir)
        assert hosts_on(folder) == [host] and sockets.is_dir()
        assert (folder / "provider.key").exists()

        # a second worker on the folder is refused while the first runs, and starts nothing
        second = Worker(NodeClient(live.url), bob, folder)
        with pytest.raises(
            ConfigError, match=rf"in use by another Cairn worker \(PID {child.pid}\)"
        ):
            second.start()
        assert second.process is None and hosts_on(folder) == [host]

        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 20
        while not gone(host) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(host), "the provider process outlived the worker that started it"
        assert not (folder / "provider.key").exists()  # the key is not left behind
        assert not sockets.exists()  # nor the trainer's socket folder

        again = Worker(NodeClient(live.url), bob, folder)
        again.start()
        try:
            assert again.process is not None and hosts_on(folder) == [again.process.pid]
        finally:
            again.stop()
        assert hosts_on(folder) == []
    finally:
        child.kill()
        child.wait()
        for pid in hosts_on(folder):
            os.kill(pid, signal.SIGKILL)
