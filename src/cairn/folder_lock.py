"""One node per data folder: an exclusive lock held for the node's whole life.

Two nodes on one folder run two anvils that save one state file in turn and two indexers that
write one index, and the chain comes back older than the index. So a node takes an exclusive
`flock` on `node.lock` in its data folder and writes its PID there. The kernel drops the lock
when the last descriptor of it closes, however the process ends, so a crash leaves no stale
lock. The node's anvil child inherits the descriptor: the folder stays in use until anvil,
signalled when the node dies, has saved its state and exited.

A provider's worker holds `worker.lock` in its work folder the same way, handed on to its
SuperNode process: two SuperNodes on one folder would train with one key and one cache.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from cairn.core.errors import ConfigError

LOCK_FILE = "node.lock"
# How long to wait for the children of a node that died to finish (anvil saving its state).
ORPHAN_WAIT = 30.0


class FolderLock:
    """The exclusive lock on a data folder; `fd` is its descriptor while held.

    Errors name the folder (`what`), the kind of process that holds it (`owner`) and how to
    start one elsewhere.
    """

    def __init__(
        self,
        folder: Path,
        name: str = LOCK_FILE,
        *,
        what: str = "data folder",
        owner: str = "Cairn node",
        elsewhere: str = "start this one with another --data-dir",
    ) -> None:
        self.folder = folder
        self.path = folder / name
        self.what = what
        self.owner = owner
        self.elsewhere = elsewhere
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise `ConfigError` naming the folder and the PID that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + ORPHAN_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if holder is None or _alive(holder):
                    os.close(fd)
                    raise ConfigError(
                        f"{self.what} {self.folder} is in use by another {self.owner} "
                        f"(PID {holder or 'unknown'}): stop that {self.owner.split()[-1]} first, or "
                        f"{self.elsewhere}"
                    ) from None
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise ConfigError(
                        f"{self.what} {self.folder} is still held by a process that the {self.owner} "
                        f"PID {holder} started before it exited: find it with "
                        f"`fuser {self.path}` and stop it, then start again"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Give the folder up (the file stays: removing it would race with the next node)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, run by another user
        return True
    return True
