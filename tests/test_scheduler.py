"""The scheduler: every due task runs once a tick, in order; a task runs when its cheap check
says so, at its fallback, and on the first tick; a failing task is logged and neither stops the
others nor the thread; stopping waits for the round in progress. A node's idle tick reads one
row a task and neither writes nor calls the chain, and work that comes is done on the next tick."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from sqlalchemy import event

from cairn.core.errors import Unavailable
from cairn.node import Node
from cairn.scheduler import Scheduler, Task
from tests.data.conftest import dev, make_dataset, pair, upload


def test_a_failing_task_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    def refused() -> None:
        ran.append("refused")
        raise Unavailable("the chain is not answering")

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("a bug")

    scheduler = Scheduler(
        [
            Task("anchoring", refused),
            Task("following jobs", broken),
            Task("collecting", lambda: ran.append("collecting")),
        ]
    )
    with caplog.at_level(logging.INFO, logger="cairn.background"):
        scheduler.run_once()
        scheduler.run_once()
    assert ran == ["refused", "broken", "collecting"] * 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "anchoring failed: the chain is not answering"
    ] * 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["following jobs crashed"] * 2
    assert all(r.exc_info is not None for r in errors)  # the traceback is in the log


def test_the_thread_ticks_until_stopped_and_starts_again() -> None:
    ticks = threading.Semaphore(0)
    scheduler = Scheduler([Task("counting", ticks.release)], tick=0.01)
    assert not scheduler.running  # building one starts nothing
    for _ in range(2):  # a stopped scheduler starts again (an app served twice)
        scheduler.start()
        scheduler.start()  # already ticking: nothing more
        try:
            assert scheduler.running
            for _ in range(3):  # several rounds, each on the thread, none in the caller
                assert ticks.acquire(timeout=5)
        finally:
            scheduler.stop()
        assert not scheduler.running
        while ticks.acquire(blocking=False):
            pass
        time.sleep(0.05)
        assert not ticks.acquire(blocking=False)  # nothing runs after stop


def test_stopping_a_scheduler_never_started_returns_at_once() -> None:
    started = time.monotonic()
    Scheduler([Task("never", lambda: None)]).stop()
    assert time.monotonic() - started < 1


def test_a_task_runs_when_due_and_at_its_fallback_and_on_the_first_tick() -> None:
    now = [1000.0]
    has_work = [False]
    ran: list[str] = []
    scheduler = Scheduler(
        [
            Task("checked", lambda: ran.append("checked"), lambda: has_work[0], every=60),
            Task("slow", lambda: ran.append("slow"), lambda: False, every=300),
            Task("always", lambda: ran.append("always")),
        ],
        clock=lambda: now[0],
    )
    assert scheduler.run_once() == ["checked", "slow", "always"]  # whatever a restart left
    now[0] += 2
    assert scheduler.run_once() == ["always"]  # nothing to do: neither runs
    has_work[0] = True
    now[0] += 2
    assert scheduler.run_once() == ["checked", "always"]
    has_work[0] = False
    now[0] += 59
    assert scheduler.run_once() == ["always"]  # 59 s since it last ran: not yet
    now[0] += 1
    assert scheduler.run_once() == ["checked", "always"]  # its fallback: work it cannot see
    now[0] += 240
    assert scheduler.run_once() == ["checked", "slow", "always"]
    assert ran.count("slow") == 2 and ran.count("checked") == 4


def test_a_failing_check_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreadable() -> bool:
        raise Unavailable("the index is locked")

    ran: list[str] = []
    scheduler = Scheduler(
        [Task("anchoring", lambda: ran.append("anchoring"), unreadable), Task("b", lambda: None)]
    )
    scheduler.run_once()  # the first tick runs it without asking
    with caplog.at_level(logging.WARNING, logger="cairn.background"):
        assert scheduler.run_once() == ["b"]
    assert ran == ["anchoring"]
    assert [r.getMessage() for r in caplog.records] == ["anchoring failed: the index is locked"]


# -- the node's tasks -----------------------------------------------------------------------------

TOKEN = 10**18


class Operations:
    """What the node's index and chain were asked while counting: SQL statements, the writes
    among them, and JSON-RPC requests (every one goes through web3's request manager)."""

    def __init__(self, node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements: list[str] = []
        self.chain_requests: list[str] = []
        event.listen(node.db.engine, "before_cursor_execute", self._statement)
        manager = node.chain.client.w3.manager
        sent = manager.request_blocking

        def request(method: Any, *args: Any, **kwargs: Any) -> Any:
            self.chain_requests.append(str(method))
            return sent(method, *args, **kwargs)

        monkeypatch.setattr(manager, "request_blocking", request)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)

    @property
    def writes(self) -> list[str]:
        return [s for s in self.statements if not s.lstrip().upper().startswith("SELECT")]

    def reset(self) -> None:
        self.statements.clear()
        self.chain_requests.clear()


@pytest.fixture
def paid_bounty(node: Node) -> int:
    """A dataset anchored by hand and paid by its bounty, with a bounty that was closed:
    the history the economy's tick used to ask the chain about on every tick."""
    alice, bob = dev(node, "alice"), dev(node, "bob")
    dataset = make_dataset(
        node, alice, review={"review_share": 0.0}, anchoring={"every_records": 3}
    ).asset_id
    closed = node.economy.bounties.open(alice, dataset, budget=TOKEN, per_record=TOKEN // 10)
    node.economy.bounties.close(alice, closed.bounty_id)
    node.economy.bounties.open(alice, dataset, budget=10 * TOKEN, per_record=TOKEN // 10)
    upload(node, bob, dataset, [pair(i) for i in range(3)])
    node.data.anchoring.anchor_by(alice.address, dataset)
    return dataset


def test_an_idle_node_tick_reads_a_row_a_task_and_writes_and_sends_nothing(
    node: Node, paid_bounty: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = node.scheduler
    scheduler.run_once()  # the first tick runs every task
    scheduler.run_once()  # the economy looks once more after its own transactions
    operations = Operations(node, monkeypatch)
    for _ in range(5):
        # the jobs' check is their tick's one read; the others' expensive parts stay idle
        assert scheduler.run_once() == ["following jobs"]
    # before: 18 JSON-RPC requests a tick (the bounty count, each bounty, web3's own asking)
    assert operations.chain_requests == []
    assert operations.writes == []
    assert len(operations.statements) <= 5 * len(scheduler.tasks)  # before: 7 or 8 a tick


def test_work_is_done_on_the_next_tick_after_an_idle_one(
    node: Node, paid_bounty: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, bob = node.scheduler, dev(node, "bob")
    scheduler.run_once()
    scheduler.run_once()
    assert scheduler.run_once() == ["following jobs"]
    upload(node, bob, paid_bounty, [pair(i) for i in range(10, 13)])  # the policy's 3 records
    operations = Operations(node, monkeypatch)
    ran = scheduler.run_once()
    assert ran == ["scheduled anchoring", "anchoring receipts or settling", "following jobs"]
    assert operations.chain_requests  # it did go to the chain: anchored, then paid
    assert node.data.list_records(paid_bounty, status="accepted") == []
    [bounty] = [b for b in node.economy.bounties.listing(paid_bounty) if b.open]
    payouts = node.economy.bounties.get(bounty.bounty_id).payouts
    assert [(p.records, p.status) for p in payouts] == [(3, "paid"), (3, "paid")]
