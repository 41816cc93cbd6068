"""The node's ServerApp executor: every run's ServerApp in a process forked from one that
imported it once, none started by Flower's SuperExec; a failed run takes nothing else with it.

A real SuperLink and executor; the runs name job folders that do not exist, so each ServerApp
is Cairn's, claimed and run, and fails at once with "no job spec" (the jobs' own tests run
whole jobs through the same executor).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cairn.compute.superlink import SuperLink
from tests.compute.conftest import running_superlink

pytestmark = pytest.mark.process  # starts processes: the e2e tier

IMPORTED = "Cairn's ServerApp is imported"


@pytest.fixture
def link(tmp_path: Path) -> Iterator[SuperLink]:
    with running_superlink(tmp_path / "flower") as link:
        yield link


def log_of(link: SuperLink) -> str:
    return (link.folder / "serverapps.log").read_text()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def processes() -> Iterator[tuple[int, str, int, int]]:
    """Every process: its pid, state, parent's pid and group."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:  # the fields after the name (which may hold spaces): state, ppid, pgrp
            state, ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):  # gone meanwhile
            continue
        yield int(entry.name), state, int(ppid), int(pgrp)


def children_of(parent: int) -> list[str]:
    """The command lines of `parent`'s child processes."""
    found = []
    for pid, _, ppid, _ in processes():
        if ppid == parent:
            try:
                found.append(
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
            except OSError:
                continue
    return found


def test_each_run_is_run_by_a_process_forked_from_one_executor_that_imported_it_once(
    link: SuperLink, tmp_path: Path
) -> None:
    assert link.process is not None and link.serverapps.process is not None
    executor = link.serverapps.process
    assert not any("superexec" in c for c in children_of(link.process.pid))  # Flower's is off
    assert IMPORTED not in log_of(link)  # an idle node never pays for the import

    for i in range(3):
        link.start_run(tmp_path / f"no-job-{i}")
        wait_until(lambda i=i: log_of(link).count("no job spec in") >= i + 1)

    wait_until(lambda: log_of(link).count("ServerApp process") >= 3)  # reaped by the executor
    log = log_of(link)
    assert log.count(IMPORTED) == 1
    assert log.count("ServerApp process") == 3  # each its own process, each a child of ours
    assert executor.poll() is None  # three failed runs: the executor serves on
    assert not any("flwr-serverapp" in c for c in children_of(executor.pid))  # none exec'd


def test_the_executor_stops_when_the_node_is_gone_and_a_new_run_starts_another(
    link: SuperLink, tmp_path: Path
) -> None:
    first = link.serverapps.process
    assert first is not None and first.stdin is not None
    first.stdin.close()  # as when the node dies: its end of the pipe closes
    first.wait(timeout=10)

    link.start_run(tmp_path / "no-job")  # a new executor takes the run
    wait_until(lambda: "no job spec in" in log_of(link))
    second = link.serverapps.process
    assert second is not None and second.pid != first.pid and second.poll() is None

    link.stop()
    assert not live_members(second.pid)  # its whole group is gone


def live_members(group: int) -> list[int]:
    """The processes of group `group` that still run (not zombies)."""
    return [pid for pid, state, _, pgrp in processes() if pgrp == group and state != "Z"]
