"""The live processes of this machine, found by their arguments (for tests that check what a
crash left running)."""

from __future__ import annotations

import os
import time
from pathlib import Path

# A process just started shows an empty command line for a moment: Popen returns once the child
# has begun its exec, and Linux fills in the new arguments a little later (90 of 200 reads
# right after a Popen from a thread found it empty on a 2-core machine).
EXEC_SETTLE_SECONDS = 2.0


def command_line(entry: Path) -> list[bytes] | None:
    """A process's arguments, waiting out an exec in progress; None if it has ended."""
    deadline = time.monotonic() + EXEC_SETTLE_SECONDS
    while True:
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            return None
        if raw or time.monotonic() > deadline or not _runs_a_program(entry):
            return raw.split(b"\0")
        time.sleep(0.01)


def _runs_a_program(entry: Path) -> bool:
    """False for a kernel thread or a zombie (no executable), whose command line stays empty."""
    try:
        os.readlink(entry / "exe")
    except OSError:
        return False
    return True


def pids_with_args(*parts: str | Path) -> list[int]:
    """The processes whose command line holds every one of `parts` as a whole argument."""
    wanted = [str(part).encode() for part in parts]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = command_line(entry)
        if args is not None and all(part in args for part in wanted):
            found.append(int(entry.name))
    return found
