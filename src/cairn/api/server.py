"""A node's app served by uvicorn in a background thread: for the demo, tests and benchmarks."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

import uvicorn

from cairn.api.services import NodeServices
from cairn.core.errors import Unavailable

START_SECONDS = 30
Served = TypeVar("Served", bound=NodeServices)  # the node itself, as callers know it


class BackgroundServer(Generic[Served]):
    """The node's API and web app on `host:port` (the node's own port by default)."""

    def __init__(
        self,
        node: Served,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        background: bool = True,
    ) -> None:
        from cairn.api.app import create_app

        self.node = node
        self.port = port or node.settings.port
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            create_app(node, background=background),
            host=host,
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")

    def start(self) -> BackgroundServer[Served]:
        """Serve, and return once the socket accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise Unavailable(f"the node's HTTP server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def __enter__(self) -> BackgroundServer[Served]:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
