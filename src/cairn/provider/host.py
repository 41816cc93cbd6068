"""A provider's process: Flower's SuperNode and Cairn's resident trainer, side by side.

`cairn worker start` runs `python -m cairn.provider.host --key-file K --work-dir D --socket S
--parent-pid P -- <flower-supernode arguments>`. The trainer (`cairn.provider.trainer`) listens on the socket
from a thread and loads the training stack in the background; the SuperNode runs in the main
thread, exactly as `flower-supernode` would, with its two fixed waits shortened (see
`quicken_supernode`). Both stop together: the worker stops this process's whole session.

A stuck `flwr-clientapp` cannot wedge the SuperNode (`cairn.provider.watchdog`): a message no
ClientApp can answer any more is answered for it, and the stuck process is killed.

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
from typing import Any

# Flower 1.32's SuperNode (`flwr.supernode.start_client_internal`) sleeps 3 s whenever the
# SuperLink has no message for it, and 0.5 s between looks for the ClientApp's reply: on
# average about 2 s of every round, next to a second or less of work for a small model.
IDLE_POLL = 0.5  # seconds between asks to the SuperLink when there is nothing to do
REPLY_POLL = 0.05  # seconds between looks for the ClientApp's reply (a local lookup)


class _QuickClock:
    """`time` as the SuperNode's loop sees it: its fixed sleeps shortened, all else as is."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(IDLE_POLL if seconds >= 1 else min(seconds, REPLY_POLL))


def quicken_supernode(module: ModuleType) -> None:
    """Shorten the fixed waits of Flower's SuperNode loop (`module`), for this process only."""
    if getattr(module, "time", None) is not time:
        raise RuntimeError(f"{module.__name__} no longer sleeps through `time`: check flwr")
    module.time = _QuickClock()  # type: ignore[attr-defined]


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

    from cairn.provider.trainer import TrainerServer
    from cairn.provider.watchdog import ClientAppGuard

    watch_parent(args.parent_pid, lambda: stop_orphaned_host(args.key_file, args.socket))
    account = Account.from_key(args.key_file.read_text().strip())
    TrainerServer(args.socket, args.work_dir, account, args.blob_source).start()

    import flwr.supernode.start_client_internal as supernode_loop
    from flwr.supernode.cli import flower_supernode

    quicken_supernode(supernode_loop)
    guard = ClientAppGuard()
    guard.install(supernode_loop)
    guard.watch()
    sys.argv = ["flower-supernode", *argv[split + 1 :]]
    flower_supernode()


if __name__ == "__main__":
    main()
