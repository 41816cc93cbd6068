"""Flower's programs as child processes: found beside this Python, each started in a session of
its own that dies with this process, and stopped with everything it spawned.

The node runs `flower-superlink` (`cairn.compute.superlink`), a provider `flower-supernode`
(`cairn.provider.worker`); both start and stop them here, so neither loads the other's code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from cairn.core.children import death_signal
from cairn.core.errors import Unavailable

# Flower 1.32 pulls a message's objects (its arrays) after the message itself, and an object
# not there yet (still being pushed by its sender) is asked for again after 1 s, then 2, 4, up
# to 10 s: over loopback, a round's arrays are seconds late on the first miss. Cairn's Flower
# processes ask again after 20 ms, doubling up to 1 s, with as many tries as Flower's default
# time limit (2 h) allows.
PULL_BACKOFF = {"initial_backoff": 0.02, "backoff_cap": 1.0, "max_tries_per_object": 7200 + 10}


def quicken_object_pulls() -> None:
    """Apply `PULL_BACKOFF` to Flower's object pulls in this process (its defaults, in place)."""
    from flwr.supercore.inflatable import inflatable_utils

    for function in (
        inflatable_utils.pull_objects,
        inflatable_utils.pull_and_inflate_object_from_tree,
    ):
        defaults = function.__kwdefaults__
        if defaults is None or not set(PULL_BACKOFF) <= set(defaults):
            raise RuntimeError(f"{function.__qualname__} no longer takes {sorted(PULL_BACKOFF)}")
        defaults.update(PULL_BACKOFF)


@contextlib.contextmanager
def object_pulls_within(seconds: float) -> Iterator[None]:
    """Within the block, a message's objects not all pulled after `seconds` are given up on.

    Flower's grid pulls a message's objects with its functions' default time limit (2 h); this
    sets that default for the block and puts it back after. Flower then answers the message
    with a `MESSAGE_UNAVAILABLE` error in its place. For one thread's pulls at a time.
    """
    from flwr.supercore.inflatable import inflatable_utils

    all_defaults = []
    for function in (
        inflatable_utils.pull_objects,
        inflatable_utils.pull_and_inflate_object_from_tree,
    ):
        defaults = function.__kwdefaults__
        if defaults is None or "max_time" not in defaults:
            raise RuntimeError(f"{function.__qualname__} no longer takes max_time")
        all_defaults.append(defaults)
    saved = [defaults["max_time"] for defaults in all_defaults]
    for defaults in all_defaults:
        defaults["max_time"] = seconds
    try:
        yield
    finally:
        for defaults, limit in zip(all_defaults, saved, strict=True):
            defaults["max_time"] = limit


def flower_env(flwr_home: Path) -> dict[str, str]:
    """The environment Flower processes need: this venv's bin first (they spawn its tools)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["FLWR_HOME"] = str(flwr_home)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    # Flower reports each process's start and exit to telemetry.flower.ai unless told not to: a
    # node's operator has not agreed to that, and an offline machine would only wait on it
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    return env


def flower_tool(name: str) -> str:
    """The path of a Flower command installed beside this Python."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise Unavailable(f"{name} is not installed beside {sys.executable}: install flwr")
    return str(path)


def spawn_flower(
    command: list[str],
    log: Path,
    flwr_home: Path,
    *,
    keep: int | None = None,
    stdin: int | None = subprocess.DEVNULL,
    die_with_parent: bool = True,
) -> subprocess.Popen[bytes]:
    """Start a Flower process in its own session, logging to `log`, dying with this process.

    `keep` is a descriptor the process inherits (a folder lock it holds until it exits);
    `stdin` what it reads (`subprocess.PIPE`: a pipe this process writes to).
    `die_with_parent=False`: no parent-death signal, for a process that watches for this one's
    end itself (as one reading a pipe from it does). Python then starts it with vfork, which
    runs no fork handlers: gRPC's can deadlock a fork taken just after a channel closed (seen:
    a process hung for minutes in `fork`, under gRPC 1.85's prefork handler).
    """
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=flower_env(flwr_home),
            start_new_session=True,
            preexec_fn=death_signal() if die_with_parent else None,
            pass_fds=() if keep is None else (keep,),
        )


def stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process started in its own session, and everything it spawned.

    SIGTERM to the whole group (even when the process itself has already ended); what is left
    of it after `grace` seconds (the process, or a child stuck on its way out after the
    process has gone) is killed.
    """
    deadline = time.monotonic() + grace
    if _signal_group(process.pid, signal.SIGTERM) and process.poll() is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    while _signal_group(process.pid, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _signal_group(process.pid, signal.SIGKILL):
        process.wait(timeout=grace)


def _signal_group(group: int, signum: int) -> bool:
    """Signal a process group; False if none of it is left (or it is not ours to signal).

    A group outlives its leader while any member lives, and Linux does not hand its number to
    another process until then, so the group of a reaped leader is still this one.
    """
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True
