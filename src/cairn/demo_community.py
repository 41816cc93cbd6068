"""`cairn node start --demo`: a node that is not empty.

On the first start the demo's story is told on the node being started (accounts, a dataset
with contributions and reviews, a model trained by two provider workers, paid use, a settled
epoch and claims), in a thread once the node's API answers, so that its pages are up at once
and show what the seeding is doing. Erin's and Frank's provider workers stay connected, on
this start and every later one, so a model built from the web form trains at once.
`demo.json` in the data folder records the seeding: a folder is seeded once, and a seeding that
was interrupted is not told again over its remains.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import httpx

from cairn.core.errors import Unavailable
from cairn.demo import (
    INNER_STEPS,
    MARKER,
    PEOPLE,
    Story,
    record_seeding,
    seeded,
    start_providers,
)
from cairn.node import Node
from cairn.provider.worker import Worker

log = logging.getLogger("cairn.demo")

__all__ = ["MARKER", "DemoCommunity", "demo_accounts"]
API_WAIT_SECONDS = 120


def demo_accounts() -> tuple[str, ...]:
    """The dev accounts a demo node has: the story's seven people."""
    return tuple(PEOPLE)


class DemoCommunity:
    """Seeds `node` once and keeps the demo's provider workers running while it serves."""

    def __init__(self, node: Node, *, rounds: int = 1, inner_steps: int = INNER_STEPS) -> None:
        self.node = node
        self.rounds = rounds
        self.inner_steps = inner_steps
        self.marker = node.data_dir / MARKER
        self.workers: list[Worker] = []
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def state(self) -> dict[str, Any] | None:
        """What `demo.json` says: None before any seeding."""
        if not self.marker.exists():
            return None
        document: dict[str, Any] = json.loads(self.marker.read_text())
        return document

    def start(self) -> None:
        """Seed (first start) or reconnect the providers (later starts), in the background."""
        self.thread = threading.Thread(target=self._run, daemon=True, name="demo-community")
        self.thread.start()

    def stop(self) -> None:
        """Disconnect the providers; a seeding in progress stops with the node."""
        self._stopping.set()
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the seeding (or reconnecting) thread is done; re-raise its failure."""
        if self.thread is not None:
            self.thread.join(timeout)
        if self.error is not None:
            raise self.error

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._wait_for_api()
            state = self.state()
            if state is None:
                self._seed()
            elif state.get("status") == "seeded":
                self.workers += start_providers(self.node, self.node.data_dir)
            else:
                log.warning(
                    "the demo seeding of %s was interrupted; start a fresh --data-dir to seed "
                    "again",
                    self.node.data_dir,
                )
        except BaseException as exc:  # reported on the pages and in the log, not swallowed
            self.error = exc
            if not self._stopping.is_set():
                log.exception("seeding the demo community failed")
                self.node.demo_status = f"Seeding the demo community failed: {exc}"
            return

    def _wait_for_api(self) -> None:
        url = self.node.config.base_url + "/api/v1/health"
        deadline = time.monotonic() + API_WAIT_SECONDS
        while not self._stopping.is_set():
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise Unavailable(f"the node's API did not answer at {url}")
            time.sleep(0.2)
        raise Unavailable("the node stopped before the demo community was seeded")

    def _seed(self) -> None:
        started = time.monotonic()
        self._write({"status": "seeding", "started_at": int(time.time())})

        def say(text: str) -> None:
            self.node.demo_status = f"Seeding the demo community: {text} (reload to see more)"
            log.info("demo: %s", text)

        story = Story(self.node.data_dir, say, rounds=self.rounds, inner_steps=self.inner_steps)
        story.tell(self.node, self.workers)
        self._write(seeded(story.demo, time.monotonic() - started))
        self.node.demo_status = None
        log.info("demo community seeded in %.0f s", time.monotonic() - started)

    def _write(self, document: dict[str, Any]) -> None:
        record_seeding(self.node.data_dir, document)
