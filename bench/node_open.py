"""What a node costs to open: bootstrapped from nothing, against opened on a ready folder.

The baseline is `bootstrap` on a new folder and a new memory chain (migrations, node and dev
accounts, contract deployment, minting, the treasury), which every test paid before issue 14;
the figure is opening the container (`Node`) on a copy of one bootstrapped folder with its
memory chain reverted to the snapshot bootstrapping left, which the suite does per test now.
Both are repeated and the spread shown. The last line is one JSON object of the figures.

    python bench/node_open.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from cairn.chain.anvil import free_port
from cairn.chain.memory import MemoryBackend
from cairn.config import NodeConfig
from cairn.node import Node, bootstrap


def _config(folder: Path) -> NodeConfig:
    return NodeConfig.from_env(
        data_dir=folder, chain="memory", dev=True, port=free_port(), fleet_port=free_port()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (seconds)")
    args = parser.parse_args()
    repeats = 5 if args.quick else 20
    logging.disable(logging.WARNING)  # the dev-account warning, once per bootstrap
    root = Path(tempfile.mkdtemp(prefix="cairn-bench-node-"))
    try:
        boots: list[float] = []
        for k in range(repeats):
            started = time.perf_counter()
            node = bootstrap(_config(root / f"boot-{k}"))
            boots.append(time.perf_counter() - started)
            node.close()

        template = root / "template"
        node = bootstrap(_config(template))
        backend = node.backend
        assert isinstance(backend, MemoryBackend)
        snapshot = backend.tester.take_snapshot()
        node.close()
        opens: list[float] = []
        for k in range(repeats):
            started = time.perf_counter()
            backend.tester.revert_to_snapshot(snapshot)
            folder = root / f"copy-{k}"
            shutil.copytree(template, folder)
            node = Node(_config(folder), backend=backend)
            opens.append(time.perf_counter() - started)
            node.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def spread(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"

    print(f"bootstrap a node from nothing (baseline): {spread(boots)} over {repeats}")
    print(f"open a copy of a bootstrapped node:       {spread(opens)} over {repeats}")
    ratio = statistics.median(boots) / statistics.median(opens)
    print(f"opening is {ratio:.0f}x faster than bootstrapping")
    print(
        json.dumps(
            {
                "bootstrap_ms": round(statistics.median(boots) * 1000, 1),
                "open_copy_ms": round(statistics.median(opens) * 1000, 1),
                "bootstrap_over_open": round(ratio, 1),
                "open_copy_ms_min": round(min(opens) * 1000, 1),
                "open_copy_ms_max": round(max(opens) * 1000, 1),
                "repeats": repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
