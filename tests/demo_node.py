"""The demo community, seeded once per run and shared by `tests/cli/test_demo.py` and the
browser tests (a seeding trains a model with two provider workers: minutes on 2 cores).

`demo_story` runs `cairn demo --json --keep DIR`, the whole story on a fresh anvil chain, which
leaves DIR a seeded demo folder; `demo_node` then serves DIR with `cairn node start --demo`,
exactly what `make run` starts on a folder it seeded before: the providers reconnect and
nothing is told twice. To iterate on pages without seeding, point CAIRN_BROWSER_NODE at a
running demo node as URL#DATA_DIR (the browser flows then change that node's state).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.chain.anvil import free_port

ROOT = Path(__file__).resolve().parents[1]
CAIRN = str(Path(sys.executable).with_name("cairn"))
SEED_SECONDS = 900  # the demo's training round on 2 busy cores, with room to spare
START_SECONDS = 180


@dataclass
class DemoStory:
    """What `cairn demo --json --keep` printed, the folder it kept and how long it took."""

    story: dict[str, Any]
    data_dir: Path
    seconds: float


@dataclass
class DemoNode:
    """A `cairn node start --demo` process on the seeded folder, and what the seeding recorded."""

    url: str
    data_dir: Path
    process: subprocess.Popen[bytes] | None  # None: a node started outside the tests
    log: Path
    facts: dict[str, Any]

    def address(self, name: str) -> str:
        """The address of one of the demo's people (alice ... grace)."""
        return str(self.facts["accounts"][name])


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")},
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@pytest.fixture(scope="session")
def demo_story(tmp_path_factory: pytest.TempPathFactory) -> DemoStory:
    """`cairn demo --json --keep DIR`: the story, told once per run."""
    kept = tmp_path_factory.mktemp("demo") / "node"
    started = time.monotonic()
    run = subprocess.run(
        [CAIRN, "demo", "--json", "--keep", str(kept)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=SEED_SECONDS,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    story = json.loads(run.stdout.strip().splitlines()[-1])
    return DemoStory(story, kept, time.monotonic() - started)


@pytest.fixture(scope="session")
def demo_node(request: pytest.FixtureRequest) -> Iterator[DemoNode]:
    """`cairn node start --demo` on the folder `cairn demo` seeded, serving on 127.0.0.1."""
    if os.environ.get("CAIRN_BROWSER_NODE"):
        url, _, folder = os.environ["CAIRN_BROWSER_NODE"].partition("#")
        facts = json.loads((Path(folder) / "demo.json").read_text())["facts"]
        yield DemoNode(url, Path(folder), None, Path(folder) / "none.log", facts)
        return
    seeded: DemoStory = request.getfixturevalue("demo_story")
    data_dir = seeded.data_dir
    port = free_port()
    log = data_dir.parent / "demo-node.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                CAIRN,
                "node",
                "start",
                "--demo",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--fleet-port",
                str(free_port()),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the demo node exited ({process.returncode}):\n{_tail(log)}")
            try:
                if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo node did not answer in time:\n{_tail(log)}")
            time.sleep(0.5)
        facts = json.loads((data_dir / "demo.json").read_text())["facts"]
        yield DemoNode(url, data_dir, process, log, facts)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
