"""Cairn's ServerApps, each in a process forked from one that has already imported them.

Flower 1.32's SuperLink, in its default `subprocess` isolation, starts a `flower-superexec` that
looks for a new ServerApp task once a second and starts a `flwr-serverapp` process for each: a
Python start and the imports of Cairn's ServerApp (torch, transformers, Flower: about 8.5 s of
one core on a 2-core machine) before a job's first round, on every job and every resume. The
node runs the SuperLink with `--isolation process` instead, and this executor, a child of the
node, takes that SuperExec's place:

- the node wakes it, a line on its standard input, each time it has started a Flower run
  (`ServerAppExecutor.wake`); it looks for nothing otherwise, and an idle node's executor costs
  nothing but its Python start;
- on the first wake-up (or earlier, when told a job is coming: `prepare`) it imports Cairn's
  ServerApp, once. Each task then runs in a process
  forked from this one: the imports are shared (copy-on-write), not repeated, and a job still has
  a process of its own, as under Flower, so its memory goes back when it ends and one that
  crashes takes no other job with it;
- this process never opens a gRPC channel, whose state does not survive a fork: each forked
  process claims a pending ServerApp task itself over the SuperLink's ServerAppIo API, as
  `flower-superexec` does, tells this process so (another task may be pending), and runs the
  task exactly as `flwr-serverapp --token` does (Flower's `run_serverapp`);
- it exits when its standard input closes: the node is gone (even by SIGKILL). Its ServerApps
  then leave on their own (`cairn.core.children.exit_when_orphaned`), as before.

The ServerAppIo API listens on loopback only (`cairn.compute.superlink.LOCAL`), as it did for
Flower's SuperExec.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import subprocess
import sys
import threading
from pathlib import Path

from cairn.compute.flower_processes import spawn_flower, stop_group
from cairn.core.errors import Unavailable

log = logging.getLogger("cairn.serverexec")

REAP_EVERY = 1.0  # seconds between looks for ended ServerApp processes when nothing happens
NOTHING_PENDING = 3  # a forked process's exit code when it found no task to claim


class ServerAppExecutor:
    """The node's side: the executor process, started and woken by the SuperLink's owner."""

    def __init__(self, serverappio_address: str, log_path: Path, flwr_home: Path) -> None:
        self.serverappio_address = serverappio_address
        self.log_path = log_path
        self.flwr_home = flwr_home
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the executor if it is not running."""
        with self._lock:
            if self.running:
                return
            self.process = spawn_flower(
                [
                    sys.executable,
                    "-m",
                    "cairn.compute.serverexec",
                    "--serverappio-api-address",
                    self.serverappio_address,
                ],
                self.log_path,
                self.flwr_home,
                stdin=subprocess.PIPE,
                # it stops when its input closes (this process gone, even by SIGKILL); and it is
                # started right after gRPC calls, when a plain fork can hang in gRPC's handler
                die_with_parent=False,
            )

    def prepare(self) -> None:
        """A run may start soon: import Cairn's ServerApp now, while the node prepares it."""
        self._send(b"w")

    def wake(self) -> None:
        """A run was started: have its ServerApp task claimed and run now."""
        self._send(b"\n")

    def _send(self, signal: bytes) -> None:
        for _ in range(2):  # once more on a fresh executor if this one has died
            self.start()
            with self._lock:
                assert self.process is not None and self.process.stdin is not None
                try:
                    self.process.stdin.write(signal)
                    self.process.stdin.flush()
                    return
                except BrokenPipeError:
                    log.warning("the ServerApp executor had stopped: starting it again")
                    self.process.wait()
        raise Unavailable(f"the ServerApp executor stops as soon as it starts: see {self.log_path}")

    def stop(self) -> None:
        """Stop the executor and every ServerApp it runs."""
        with self._lock:
            if self.process is not None:
                stop_group(self.process)
                if self.process.stdin is not None:
                    with contextlib.suppress(BrokenPipeError):
                        self.process.stdin.close()
                self.process = None


# --- the executor process ----------------------------------------------------------------------


def serve(address: str, wake_fd: int) -> None:
    """Fork a process to claim and run a task for every wake-up (a line on `wake_fd`; any other
    byte asks for the imports alone), until `wake_fd` closes."""
    claims_r, claims_w = os.pipe()  # a forked process writes a byte here when it claimed a task
    children: set[int] = set()
    warm = warm_wanted = False
    wanted = 0  # forks still to make
    with selectors.DefaultSelector() as selector:
        selector.register(wake_fd, selectors.EVENT_READ, "wake")
        selector.register(claims_r, selectors.EVENT_READ, "claimed")
        while True:
            for key, _ in selector.select(timeout=REAP_EVERY):
                data = os.read(key.fd, 4096)
                if key.data == "wake":
                    if not data:  # the node closed our input: it is gone
                        log.info("the node is gone: the ServerApp executor stops")
                        return
                    wanted += data.count(b"\n")
                    warm_wanted |= bool(data.replace(b"\n", b""))
                else:  # a task was claimed: look again, another may be pending
                    wanted += len(data)
            if (wanted or warm_wanted) and not warm:
                warm_up()
                warm = True
            while wanted:
                children.add(fork_claimer(address, claims_w))
                wanted -= 1
            children = reap(children)


def warm_up() -> None:
    """Import what every ServerApp needs, once, before the first fork."""
    import flwr.server.serverapp.app  # noqa: F401

    import cairn.compute.serverapp  # noqa: F401

    log.info("Cairn's ServerApp is imported: each job's process is forked from here")


def fork_claimer(address: str, claims_w: int) -> int:
    """A process that claims one pending ServerApp task and runs it; its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = claim_and_run(address, claims_w)
    except SystemExit as exc:  # Flower's way out of a ServerApp (`flwr_exit`)
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("the ServerApp process failed")
    finally:
        logging.shutdown()
        os._exit(code)


def claim_and_run(address: str, claims_w: int) -> int:
    """In a forked process: claim a pending ServerApp task, then run it as flwr-serverapp does."""
    from queue import Queue

    from flwr.common.logger import mirror_output_to_queue
    from flwr.proto.appio_pb2 import ClaimTaskRequest, PullPendingTasksRequest
    from flwr.proto.serverappio_pb2_grpc import ServerAppIoStub
    from flwr.server.serverapp.app import run_serverapp
    from flwr.supercore.constant import TaskType
    from flwr.supercore.grpc import create_channel
    from flwr.supercore.interceptors import RuntimeVersionClientInterceptor

    channel = create_channel(
        server_address=address,
        insecure=True,
        interceptors=[RuntimeVersionClientInterceptor(component_name="SuperExec")],
    )
    token = ""
    try:
        stub = ServerAppIoStub(channel)
        for task in stub.PullPendingTasks(PullPendingTasksRequest()).tasks:
            if task.type != TaskType.SERVER_APP:
                continue
            token = stub.ClaimTask(ClaimTaskRequest(task_id=task.task_id)).token
            if token:  # empty: claimed by another process in between
                break
    finally:
        channel.close()
    if not token:
        return NOTHING_PENDING
    os.write(claims_w, b"+")
    sys.argv = ["flwr-serverapp"]  # what Flower's exit path names the process by
    log_queue: Queue[str | None] = Queue()
    mirror_output_to_queue(log_queue)  # the run's output goes to the SuperLink, as Flower's does
    run_serverapp(
        serverappio_api_address=address,
        log_queue=log_queue,
        token=token,
        insecure=True,
        runtime_dependency_install=False,
    )
    return 0


def reap(children: set[int]) -> set[int]:
    """The children still running; the ended ones are waited for (no zombies)."""
    running = set()
    for pid in children:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if not done:
            running.add(pid)
        elif os.waitstatus_to_exitcode(status) not in (0, NOTHING_PENDING):
            log.warning(
                "ServerApp process %d ended with %s", pid, os.waitstatus_to_exitcode(status)
            )
    return running


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cairn.compute.serverexec")
    parser.add_argument("--serverappio-api-address", required=True)
    args = parser.parse_args(argv)
    if not args.serverappio_api_address.startswith(("127.", "localhost:", "[::1]:")):
        raise SystemExit("the ServerAppIo API must listen on loopback only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its set-up notes on each import
    serve(args.serverappio_api_address, sys.stdin.fileno())


if __name__ == "__main__":
    main()
