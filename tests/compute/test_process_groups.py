"""Flower's processes leave nothing behind: not when stopped, not when their parent is killed.

Real processes, small Python programs standing in for Flower's: a leader that ends on SIGTERM
with a child that will not (as a ServerApp stuck retrying a SuperLink that is gone), and a
grandchild whose parent is killed by SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cairn.compute.flower_processes import spawn_flower, stop_group

pytestmark = pytest.mark.process  # starts processes: the e2e tier


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")  # a zombie is dead
    return not status.exists() or "zombie" not in status.read_text()


def wait_for_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


STUBBORN_CHILD = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stuck on its way out: never ends by itself
open({pid_file!r}, "w").write(str(__import__("os").getpid()))
while True:
    time.sleep(1)
"""

LEADER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {child!r}])
while True:
    time.sleep(1)  # SIGTERM ends it at once
"""


def test_stopping_a_group_ends_a_child_that_outlives_its_leader(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    child = textwrap.dedent(STUBBORN_CHILD).format(pid_file=str(pid_file))
    leader = textwrap.dedent(LEADER).format(child=child)
    process = spawn_flower([sys.executable, "-c", leader], tmp_path / "log", tmp_path)
    child_pid = int(wait_for_file(pid_file))
    started = time.monotonic()
    stop_group(process, grace=1.0)
    assert process.poll() is not None
    deadline = time.monotonic() + 5
    while alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child_pid)  # it ignored SIGTERM: killed when the grace ran out
    assert time.monotonic() - started < 5
    stop_group(process, grace=1.0)  # a second stop finds nothing and does nothing


ORPHAN = """
import sys, time
sys.path[:0] = {path!r}
from cairn.core.children import exit_when_orphaned
exit_when_orphaned(grace=0.5, poll=0.05)
open({pid_file!r}, "w").write(str(__import__("os").getpid()))
while True:
    time.sleep(1)
"""

PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {orphan!r}], start_new_session=True)
while True:
    time.sleep(1)
"""


def test_a_process_whose_parent_is_killed_exits_after_its_grace(tmp_path: Path) -> None:
    pid_file = tmp_path / "orphan.pid"
    orphan = textwrap.dedent(ORPHAN).format(path=sys.path, pid_file=str(pid_file))
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT).format(orphan=orphan)])
    try:
        orphan_pid = int(wait_for_file(pid_file))
        time.sleep(1.0)
        assert alive(orphan_pid)  # its parent lives: it stays
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(orphan_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(orphan_pid)
    finally:
        parent.kill()
        if pid_file.exists() and alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
