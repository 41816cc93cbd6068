"""What registering an asset costs a node on its in-process chain, and how many chain requests.

A dev node on the memory chain registers assets through `AssetService.register` (metadata
stored, the transaction simulated, sent and mined, the index synced), half of them naming the
one before as a parent. Each round times N registrations (CPU and wall time per registration)
and, as the baseline measured in the same round, N plain ether transfers sent straight through
web3 (no Cairn code: what the chain itself costs a mined transaction on this machine). It also
times a sync when the chain's head has not moved, and counts the JSON-RPC requests of one
registration and of one such sync, by method. Rounds alternate with the baseline so that a
machine's drift shows in both; the figures are medians over the rounds, with their spread.

Prints progress on stderr; the last line of stdout is one JSON object of figures.

    python bench/register.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from eth_account import Account
from web3.types import TxParams

from cairn.chain.anvil import free_port
from cairn.node import Node, open_node

ETHER = 10**18


class RequestCounter:
    """Counts the JSON-RPC requests a node's Web3 makes, by method (whatever the backend)."""

    def __init__(self, node: Node) -> None:
        self.counts: Counter[str] = Counter()
        manager = node.backend.w3.manager
        original = manager.request_blocking

        def counting(method: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
            self.counts[str(method)] += 1
            return original(method, params, *args, **kwargs)

        manager.request_blocking = counting  # type: ignore[method-assign]

    def during(self, action: Callable[[], object]) -> dict[str, int]:
        """The requests `action` makes, by method, and their total under "total"."""
        self.counts.clear()
        action()
        counts = dict(sorted(self.counts.items()))
        counts["total"] = sum(self.counts.values())
        return counts


def timed(action: Callable[[], object], times: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per run of `action`, over `times` runs."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(times):
        action()
    return (
        (time.process_time() - cpu) * 1000 / times,
        (time.perf_counter() - wall) * 1000 / times,
    )


def spread(values: list[float]) -> dict[str, float]:
    """Median, least and most of `values`, rounded."""
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (under a minute)")
    args = parser.parse_args()
    per_round, rounds = (15, 5) if args.quick else (40, 9)

    with tempfile.TemporaryDirectory() as tmp:
        node = open_node(
            Path(tmp) / "node", chain="memory", dev=True, port=free_port(), fleet_port=free_port()
        )
        try:
            owner = node.operator
            w3 = node.backend.w3
            bank = w3.eth.default_account
            sink = Account.create().address
            made: list[int] = []

            def register() -> None:
                parents = [made[-1]] if made and len(made) % 2 else []
                asset = node.assets.register(
                    owner,
                    kind="dataset",
                    name=f"bench dataset {len(made)}",
                    licence="CC-BY-4.0",
                    parents=parents,
                )
                made.append(asset.asset_id)

            def plain_transfer() -> None:
                tx = {"from": bank, "to": sink, "value": 1, "gas": 21_000}
                tx_hash = w3.eth.send_transaction(cast(TxParams, tx))
                w3.eth.get_transaction_receipt(tx_hash)

            register()  # warm every code path once
            plain_transfer()
            counter = RequestCounter(node)
            requests = counter.during(register)
            node.assets.sync()
            idle_requests = counter.during(node.assets.sync)

            reg_cpu, reg_wall, base_cpu, ratios, idle_cpu = [], [], [], [], []
            for i in range(rounds):
                cpu, wall = timed(register, per_round)
                base, _ = timed(plain_transfer, per_round)
                idle, _ = timed(node.assets.sync, 50)
                reg_cpu.append(cpu)
                reg_wall.append(wall)
                base_cpu.append(base)
                ratios.append(cpu / base)
                idle_cpu.append(idle)
                print(
                    f"round {i + 1}/{rounds}: register {cpu:.1f} ms CPU ({wall:.1f} wall), "
                    f"plain transfer {base:.1f} ms, idle sync {idle:.2f} ms",
                    file=sys.stderr,
                )
        finally:
            node.close()

    figures: dict[str, Any] = {
        "quick": args.quick,
        "registrations": per_round * rounds,
        "register_cpu_ms": spread(reg_cpu),
        "register_wall_ms": spread(reg_wall),
        "baseline_plain_transfer_cpu_ms": spread(base_cpu),
        "register_vs_plain_transfer": spread(ratios),
        "idle_sync_cpu_ms": spread(idle_cpu),
        "requests_per_register": requests,
        "requests_per_idle_sync": idle_requests,
    }
    print("\n".join(f"{k:>32}: {v}" for k, v in figures.items()), file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
