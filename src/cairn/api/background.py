"""The app's lifespan: the node's scheduled work (`cairn.scheduler`) runs while the app serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cairn.node import Node


def lifespan_for(node: Node) -> object:
    """A FastAPI lifespan that starts the node's scheduler with the app and stops it after."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        node.scheduler.start()
        try:
            yield
        finally:
            node.scheduler.stop()

    return lifespan
