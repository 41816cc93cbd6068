"""The scheduler: every task runs once a tick, in order; a failing task is logged and neither
stops the others nor the thread; stopping waits for the round in progress."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from cairn.core.errors import Unavailable
from cairn.scheduler import Scheduler, Task


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
