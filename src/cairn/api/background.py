"""Work the node does on its own while it serves: anchoring datasets, following jobs."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cairn.core.errors import CairnError
from cairn.node import Node

log = logging.getLogger("cairn.background")
TICK_SECONDS = 2.0


class Scheduler:
    """A daemon thread: anchors datasets whose waiting records reached their policy, reads
    running jobs' events into the index, and deletes uploads that expired unclaimed or
    unfinished."""

    def __init__(self, node: Node, tick: float = TICK_SECONDS) -> None:
        self.node = node
        self.tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cairn-scheduler", daemon=True)

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current tick."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                for batch in self.node.data.anchoring.anchor_due():
                    log.info(
                        "anchored %d records of dataset %d as batch %d",
                        batch.count,
                        batch.dataset_id,
                        batch.batch_index,
                    )
            except CairnError as exc:
                log.warning("scheduled anchoring failed: %s", exc.message)
            except Exception:  # keep the scheduler alive; the next tick retries
                log.exception("scheduled anchoring crashed")
            try:
                self.node.economy.tick()
            except CairnError as exc:
                log.warning("anchoring receipts or settling failed: %s", exc.message)
            except Exception:  # keep the scheduler alive; the next tick retries
                log.exception("anchoring receipts or settling crashed")
            try:
                self.node.jobs.tick()
            except CairnError as exc:
                log.warning("following jobs failed: %s", exc.message)
            except Exception:  # keep the scheduler alive; the next tick retries
                log.exception("following jobs crashed")
            try:
                if removed := self.node.assets.refs.collect():
                    log.info("deleted %d expired uploads that nothing registered", removed)
                if staged := self.node.uploads.expire():
                    log.info("deleted %d chunked uploads left unfinished for a day", staged)
            except Exception:  # keep the scheduler alive; the next tick retries
                log.exception("collecting expired uploads crashed")


def lifespan_for(node: Node) -> object:
    """A FastAPI lifespan that runs the scheduler while the app serves."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler = Scheduler(node)
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    return lifespan
