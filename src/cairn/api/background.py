"""The app's lifespan: the node's scheduled work (`cairn.scheduler`) runs while the app serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cairn.node import Node
from cairn.scheduler import Scheduler, node_tasks


def lifespan_for(node: Node) -> object:
    """A FastAPI lifespan that starts the node's scheduler with the app and stops it after."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler = Scheduler(
            node_tasks(
                anchoring=node.data.anchoring,
                economy=node.economy,
                jobs=node.jobs,
                refs=node.assets.refs,
                uploads=node.uploads,
            )
        )
        scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()

    return lifespan
