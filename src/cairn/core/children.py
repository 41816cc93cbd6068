"""Child processes that die with the process that started them, however it ends.

The node starts anvil and the Flower SuperLink, a worker starts its SuperNode. A parent that
exits cleanly stops them itself; one killed by SIGKILL cannot, and an orphan keeps its ports
and, for anvil, keeps saving its state file over the next node's. Linux can signal a child when
its parent dies (PR_SET_PDEATHSIG); elsewhere the parent's clean exit is the only guard.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable


def death_signal() -> Callable[[], None] | None:
    """What to run in a child before exec so that it dies with this process (main thread only).

    Linux ties the signal to the thread that forks, so a child forked from a short-lived
    thread would be killed when that thread ends: only the main thread asks for it.
    """
    return die_with_parent if threading.current_thread() is threading.main_thread() else None


def die_with_parent() -> None:
    """In a child before exec: ask Linux to SIGTERM it when its parent dies, even by SIGKILL.

    SIGTERM lets the child end its own way: anvil saves its state, the SuperLink stops what it
    spawned.
    """
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def exit_when_orphaned(grace: float = 10.0, poll: float = 0.5) -> threading.Thread:
    """Exit this process `grace` seconds after its parent is gone, whatever it is doing then.

    For a grandchild that `die_with_parent` cannot reach: Flower's ServerApp, whose launcher
    (the SuperLink's SuperExec) dies with the node. Flower's own parent watch only interrupts
    it, and its way out then retries a SuperLink that is no longer there, for ever.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        time.sleep(grace)  # its own way out first: a clean exit needs no more
        os._exit(1)

    thread = threading.Thread(target=watch, name="cairn-orphan-watch", daemon=True)
    thread.start()
    return thread
