"""The app's lifespan: the node's scheduled work (`cairn.scheduler`) runs while the app serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI


class Scheduled(Protocol):
    """Work that runs on its own between `start` and `stop` (a node's `Scheduler`)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def lifespan_for(scheduler: Scheduled) -> object:
    """A FastAPI lifespan that starts `scheduler` with the app and stops it after."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    return lifespan
