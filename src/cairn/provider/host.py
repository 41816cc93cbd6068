"""A provider's process: Flower's SuperNode and Cairn's resident trainer, side by side.

`cairn worker start` runs `python -m cairn.provider.host --key-file K --work-dir D --socket S
--parent-pid P -- <flower-supernode arguments>`. The trainer (`cairn.provider.trainer`) listens on the socket
from a thread and loads the training stack in the background; the SuperNode runs in the main
thread, as `flower-supernode --isolation process` would, with its fixed waits shortened (see
`quicken_supernode`), and its ClientApp tasks run in threads of this process
(`cairn.provider.appexec`), not in a process started per message. Both stop together: the
worker stops this process's whole session.

A stuck ClientApp cannot wedge the SuperNode (`cairn.provider.watchdog`): a message no
ClientApp can answer any more is answered for it.

The host also stops when the process that started it is gone, even by SIGKILL (`watch_parent`):
a node killed with its demo providers, or a killed `cairn worker start`, leaves no SuperNode
training on with a key file in its folder. (Linux's parent-death signal cannot do this for a
host started from a thread, as the demo's are: it fires when that thread ends.)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cairn.provider.appexec import InProcessClientApps

# Flower 1.32's SuperNode (`flwr.supernode.start_client_internal`) sleeps 3 s whenever the
# SuperLink has no message for it, and 0.5 s between looks for the ClientApp's reply: on
# average about 2 s of every round, next to a second or less of work for a small model.
# Asking the SuperLink often costs it a call each time, so the wait grows with the time since
# this SuperNode last had work: a round's next message, which comes soon after the slowest
# worker's reply, is asked for within a fraction of a second, and an idle provider asks once a
# second (a worker waiting a minute for a slower one asks about 100 times, not 1,200).
ACTIVE_POLL = 0.05  # seconds between asks to the SuperLink right after a message or reply
IDLE_POLL = 1.0  # seconds between asks once idle for (IDLE_POLL - ACTIVE_POLL) * IDLE_RAMP s
IDLE_RAMP = 20.0  # seconds idle per second added to the wait (1 s after 19 s idle)
REPLY_POLL = 0.02  # seconds between looks for the ClientApp's reply (a local lookup)


class _QuickClock:
    """`time` as the SuperNode's loop sees it: its fixed sleeps shortened, all else as is."""

    def __init__(self) -> None:
        self.active_at = time.monotonic()  # when this SuperNode last took a message or replied

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def active(self) -> None:
        self.active_at = time.monotonic()

    def idle_poll(self) -> float:
        idle = time.monotonic() - self.active_at
        return min(IDLE_POLL, ACTIVE_POLL + idle / IDLE_RAMP)

    def sleep(self, seconds: float) -> None:
        time.sleep(self.idle_poll() if seconds >= 1 else min(seconds, REPLY_POLL))


def quicken_supernode(module: ModuleType) -> _QuickClock:
    """Shorten the fixed waits of Flower's SuperNode loop (`module`), for this process only."""
    if getattr(module, "time", None) is not time:
        raise RuntimeError(f"{module.__name__} no longer sleeps through `time`: check flwr")
    clock = _QuickClock()
    module.time = clock  # type: ignore[attr-defined]
    return clock


def run_clientapps_here(
    loop: ModuleType, clock: _QuickClock, argv: list[str]
) -> tuple[list[str], InProcessClientApps]:
    """Make the SuperNode of `loop` leave its ClientApp tasks to an executor in this process.

    Returns the SuperNode's arguments (with `--isolation process`, and a loopback ClientAppIo
    address when none was given: that API claims tasks unauthenticated) and the executor,
    which the SuperNode wakes each time it has stored a message.
    """
    from cairn.provider.appexec import InProcessClientApps

    if "--isolation" in argv:
        raise SystemExit("the provider host chooses the SuperNode's isolation itself")
    argv = [*argv, "--isolation", "process"]
    if "--clientappio-api-address" not in argv:
        from cairn.chain.anvil import free_port

        argv += ["--clientappio-api-address", f"127.0.0.1:{free_port()}"]
    address = argv[argv.index("--clientappio-api-address") + 1]
    if not address.startswith(("127.", "localhost:", "[::1]:")):
        raise SystemExit(f"the ClientAppIo API must listen on loopback only, not {address}")
    apps = InProcessClientApps(address)
    pull, push = loop._pull_and_store_message, loop._push_messages

    def pull_and_store(**kwargs: Any) -> int | None:
        run_id: int | None = pull(**kwargs)
        if run_id is not None:
            clock.active()
            apps.notify()
        return run_id

    def push_messages(**kwargs: Any) -> None:
        push(**kwargs)
        clock.active()

    loop._pull_and_store_message = pull_and_store  # type: ignore[attr-defined]
    loop._push_messages = push_messages  # type: ignore[attr-defined]
    return argv, apps


PARENT_POLL = 0.2  # seconds between looks at whether the parent is still there
STOP_GRACE = 5.0  # seconds the SuperNode has to stop on SIGINT before the group is killed

log = logging.getLogger("cairn.provider.host")


def watch_parent(
    parent: int, on_orphaned: Callable[[], None], poll: float = PARENT_POLL
) -> threading.Thread:
    """Call `on_orphaned` once, from a daemon thread, when this process's parent `parent` is gone.

    A dead parent shows as a new parent process id (the child is handed to init or to a
    subreaper), so a recycled pid is never mistaken for the parent; a parent that died before
    the watch began is seen at once.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        on_orphaned()

    thread = threading.Thread(target=watch, name="cairn-parent-watch", daemon=True)
    thread.start()
    return thread


def stop_orphaned_host(key_file: Path, socket: Path) -> None:
    """The parent is gone: remove the key and the trainer's socket folder (what the worker
    removes when it stops), stop the SuperNode as Ctrl-C does, then for sure."""
    log.warning("the worker that started this provider process is gone: stopping")
    with contextlib.suppress(FileNotFoundError):
        key_file.unlink()
    shutil.rmtree(socket.parent, ignore_errors=True)  # the worker made it for this host alone
    signal.raise_signal(signal.SIGINT)  # Flower's SuperNode stops its SuperExec and exits
    time.sleep(STOP_GRACE)
    if os.getpgid(0) == os.getpid():  # still here: its whole group goes (the worker's session)
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("usage: python -m cairn.provider.host [options] -- <supernode args>")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m cairn.provider.host")
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--parent-pid", type=int, required=True, help="the worker's process")
    parser.add_argument("--blob-source", type=Path, help="a node's blob folder to link from")
    args = parser.parse_args(argv[:split])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from eth_account import Account

    from cairn.compute.flower_processes import quicken_object_pulls
    from cairn.provider.trainer import TrainerServer
    from cairn.provider.watchdog import ClientAppGuard

    watch_parent(args.parent_pid, lambda: stop_orphaned_host(args.key_file, args.socket))
    account = Account.from_key(args.key_file.read_text().strip())
    TrainerServer(args.socket, args.work_dir, account, args.blob_source).start().share_in_process()

    import flwr.supernode.start_client_internal as supernode_loop
    from flwr.supernode.cli import flower_supernode

    quicken_object_pulls()  # a round's arrays are taken as soon as the node has pushed them
    clock = quicken_supernode(supernode_loop)
    guard = ClientAppGuard()
    guard.install(supernode_loop)
    supernode_argv, apps = run_clientapps_here(supernode_loop, clock, argv[split + 1 :])
    apps.start()
    sys.argv = ["flower-supernode", *supernode_argv]
    flower_supernode()


if __name__ == "__main__":
    main()
