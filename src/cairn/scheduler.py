"""Work a node does on its own while it serves, on a daemon thread that costs next to nothing
when there is nothing to do.

The scheduler knows nothing of what it runs: a list of named tasks, each looked at once per
tick. A task says cheaply whether it has anything to do (`due`: one indexed read, never a chain
call, a write or a file read); only then does its expensive part (`run`) run, and once more
every `every` seconds whatever `due` says, for work `due` cannot see (a bounty opened on the
chain by a wallet rather than through this node, an upload whose day ran out). Every task runs
on the first tick, which picks up what a restart left. A task that fails is logged and looked at
again on the next tick; it never stops the others or the thread.

Why: the ticks share a process, its GIL and its SQLite file with the gateway. Ticking every
task every 2 s cost an idle dev node 8.5 ms of CPU a tick, and 32 ms with three bounties (the
economy's tick asked the chain for the bounty count and each bounty: eth_calls through web3's
middleware), and raised the gateway's overhead from 2.2 % to 6-7.4 % (issue 15). An idle tick
now reads four indexed rows, about 1 ms.

`node_tasks` lists what a node runs, from the services the composition root built: anchoring
datasets whose waiting records reached their policy, the economy's tick (bounties, receipts,
epochs), following running jobs, replaying a sample of each anchored batch of usage receipts
(`ReceiptValidator.check_sampled`), and deleting uploads that expired unclaimed or unfinished. A
face starts and stops the scheduler with the app it serves (`cairn.api.background`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from cairn.assets.content import ContentRefs
from cairn.assets.uploads import Uploads
from cairn.compute.jobs import JobService
from cairn.core.errors import CairnError
from cairn.data.anchoring import Anchoring
from cairn.economy.service import Economy
from cairn.serve.validation import ReceiptValidator

log = logging.getLogger("cairn.background")
TICK_SECONDS = 2.0  # between the end of one round of tasks and the start of the next
STOP_SECONDS = 30.0  # how long `stop` waits for the round in progress
FALLBACK_SECONDS = 60.0  # the economy's tick runs at least this often: bounties opened elsewhere
COLLECT_SECONDS = 300.0  # uploads expire after a day: looking every 5 minutes is prompt enough


def _always() -> bool:
    return True


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Task:
    """One piece of scheduled work; `name` says what failed when it fails.

    `due` answers cheaply whether `run` has anything to do now (the default: always, so `run`
    runs every tick); `every` (seconds, None for never) runs it anyway that often.
    """

    name: str
    run: Callable[[], None]
    due: Callable[[], bool] = _always
    every: float | None = None


class Scheduler:
    """Looks at every task once per tick on a daemon thread, until stopped; runs the due ones."""

    def __init__(
        self,
        tasks: Sequence[Task],
        tick: float = TICK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tasks = tuple(tasks)
        self.tick = tick
        self.clock = clock
        self._last_run: dict[int, float] = {}  # task index -> when it last ran (by `clock`)
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

    def run_once(self) -> list[str]:
        """Run every due task once, in order, and return their names; a failure (of `due` or of
        `run`) is logged and the next task runs."""
        ran = []
        for index, task in enumerate(self.tasks):
            try:
                if not self._is_due(index, task):
                    continue
                self._last_run[index] = self.clock()
                ran.append(task.name)
                task.run()
            except CairnError as exc:
                log.warning("%s failed: %s", task.name, exc.message)
            except Exception:  # keep the scheduler alive; the next tick retries
                log.exception("%s crashed", task.name)
        return ran

    def _is_due(self, index: int, task: Task) -> bool:
        last = self._last_run.get(index)
        if last is None:  # the first tick: whatever a restart left
            return True
        if task.every is not None and self.clock() - last >= task.every:
            return True
        return task.due()

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
    validator: ReceiptValidator,
) -> list[Task]:
    """What a serving node does on its own, in the order it does it, each with its cheap check."""
    return [
        Task("scheduled anchoring", partial(_anchor_datasets, anchoring), anchoring.has_waiting),
        Task(
            "anchoring receipts or settling",
            economy.tick,
            economy.has_work,
            every=FALLBACK_SECONDS,
        ),
        # its own one read (the jobs that run or finish) is the check: nothing to ask first
        Task("following jobs", jobs.tick),
        Task(
            "replaying a sample of served receipts",
            partial(_check_receipts, validator),
            validator.receipts.has_unchecked,
        ),
        Task(
            "collecting expired uploads",
            partial(_collect_uploads, refs, uploads),
            _never,
            every=COLLECT_SECONDS,
        ),
    ]


def _anchor_datasets(anchoring: Anchoring) -> None:
    for batch in anchoring.anchor_due():
        log.info(
            "anchored %d records of dataset %d as batch %d",
            batch.count,
            batch.dataset_id,
            batch.batch_index,
        )


def _check_receipts(validator: ReceiptValidator) -> None:
    if checks := validator.check_sampled():
        passed = sum(c.ok is True for c in checks)
        log.info("replayed %d sampled usage receipts: %d passed", len(checks), passed)


def _collect_uploads(refs: ContentRefs, uploads: Uploads) -> None:
    if removed := refs.collect():
        log.info("deleted %d expired uploads that nothing registered", removed)
    if staged := uploads.expire():
        log.info("deleted %d chunked uploads left unfinished for a day", staged)
