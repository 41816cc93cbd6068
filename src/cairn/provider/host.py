"""A provider's process: Flower's SuperNode and Cairn's resident trainer, side by side.

`cairn worker start` runs `python -m cairn.provider.host --key-file K --work-dir D --socket S
-- <flower-supernode arguments>`. The trainer (`cairn.provider.trainer`) listens on the socket
from a thread and loads the training stack in the background; the SuperNode runs in the main
thread, exactly as `flower-supernode` would, with its two fixed waits shortened (see
`quicken_supernode`). Both stop together: the worker stops this process's whole session.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
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


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("usage: python -m cairn.provider.host [options] -- <supernode args>")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m cairn.provider.host")
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--socket", type=Path, required=True)
    args = parser.parse_args(argv[:split])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from eth_account import Account

    from cairn.provider.trainer import TrainerServer

    account = Account.from_key(args.key_file.read_text().strip())
    TrainerServer(args.socket, args.work_dir, account).start()

    import flwr.supernode.start_client_internal as supernode_loop
    from flwr.supernode.cli import flower_supernode

    quicken_supernode(supernode_loop)
    sys.argv = ["flower-supernode", *argv[split + 1 :]]
    flower_supernode()


if __name__ == "__main__":
    main()
