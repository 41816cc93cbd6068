"""Work a node does on its own while it serves, every couple of seconds, on a daemon thread.

The scheduler knows nothing of what it runs: a list of named tasks, each run once per tick.
A task that fails is logged and run again on the next tick; it never stops the others or the
thread. `node_tasks` lists what a node runs, from the services the composition root built:
anchoring datasets whose waiting records reached their policy, the economy's tick (bounties,
receipts, epochs), following running jobs, and deleting uploads that expired unclaimed or
unfinished. A face starts and stops the scheduler with the app it serves
(`cairn.api.background`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from cairn.assets.content import ContentRefs
from cairn.assets.uploads import Uploads
from cairn.compute.jobs import JobService
from cairn.core.errors import CairnError
from cairn.data.anchoring import Anchoring
from cairn.economy.service import Economy

log = logging.getLogger("cairn.background")
TICK_SECONDS = 2.0  # between the end of one round of tasks and the start of the next
STOP_SECONDS = 30.0  # how long `stop` waits for the round in progress


@dataclass(frozen=True)
class Task:
    """One piece of scheduled work; `name` says what failed when it fails."""

    name: str
    run: Callable[[], None]


class Scheduler:
    """Runs every task once per tick on a daemon thread, until stopped."""

    def __init__(self, tasks: Sequence[Task], tick: float = TICK_SECONDS) -> None:
        self.tasks = tuple(tasks)
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # construction starts nothing

    @property
    def running(self) -> bool:
        """Whether the thread is ticking."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start ticking; nothing happens if it already ticks, and a stopped one starts again."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cairn-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round of tasks."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_SECONDS)

    def run_once(self) -> None:
        """Run every task once, in order; a failure is logged and the next task runs."""
        for task in self.tasks:
            try:
                task.run()
            except CairnError as exc:
                log.warning("%s failed: %s", task.name, exc.message)
            except Exception:  # keep the scheduler alive; the next tick retries
                log.exception("%s crashed", task.name)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self.run_once()


def node_tasks(
    *,
    anchoring: Anchoring,
    economy: Economy,
    jobs: JobService,
    refs: ContentRefs,
    uploads: Uploads,
) -> list[Task]:
    """What a serving node does on its own, in the order it does it."""
    return [
        Task("scheduled anchoring", partial(_anchor_datasets, anchoring)),
        Task("anchoring receipts or settling", economy.tick),
        Task("following jobs", jobs.tick),
        Task("collecting expired uploads", partial(_collect_uploads, refs, uploads)),
    ]


def _anchor_datasets(anchoring: Anchoring) -> None:
    for batch in anchoring.anchor_due():
        log.info(
            "anchored %d records of dataset %d as batch %d",
            batch.count,
            batch.dataset_id,
            batch.batch_index,
        )


def _collect_uploads(refs: ContentRefs, uploads: Uploads) -> None:
    if removed := refs.collect():
        log.info("deleted %d expired uploads that nothing registered", removed)
    if staged := uploads.expire():
        log.info("deleted %d chunked uploads left unfinished for a day", staged)
