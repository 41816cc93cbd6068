"""The live processes of this machine, found by their arguments (for tests that check what a
crash left running)."""

from __future__ import annotations

from pathlib import Path


def pids_with_args(*parts: str | Path) -> list[int]:
    """The processes whose command line holds every one of `parts` as a whole argument."""
    wanted = [str(part).encode() for part in parts]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        if all(part in args for part in wanted):
            found.append(int(entry.name))
    return found
