"""The node's API tested in process through ASGI (issue 14): `api` is a client of the dev node's
app, the very app uvicorn serves (`cairn.api.app.create_app`, with its body limits, problem+json
errors and every router), reached without a socket, as the node's own URL, from 127.0.0.1.

`api` is Starlette's `TestClient`, which here builds on httpx2 (httpx's API; not an
`httpx.Client`): it answers `get`, `post`, `stream`, ..., as the httpx client of a real server
does. Its app's lifespan runs while the fixture lasts.

Real HTTP is the `live` fixture's (uvicorn in a thread), and `http` is an httpx client of it. It
stays for one test per router family, each saying so ("the ... family's real-server test"), and
for the tests whose subject only a real server has: bodies refused while they stream, chunked
and cut-off uploads, a node that goes away mid-upload, clients that must reach the node over TCP.

`node_client(api)` is the project's `NodeClient` on the same in-process app, for tests that
drive the API as the CLI and wallets do; `attached(api)` is another caller of that app, with
cookies of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from cairn.api.app import create_app
from cairn.api.client import NodeClient
from cairn.node import Node
from tests.conftest import LiveServer

CALLER = ("127.0.0.1", 50000)  # where in-process requests come from, as over loopback


def url_of(node: Node) -> str:
    """The node's own URL: the one `live` serves it on, and its sign-in messages name."""
    return f"http://127.0.0.1:{node.config.port}"


@contextmanager
def in_process(node: Node, *, background: bool = True) -> Iterator[TestClient]:
    """A client of `node`'s app in process, its lifespan started and stopped with it.

    `background` runs the node's scheduler with the app, as a served node does; a test that
    also serves the node on `live` leaves it to that server: one scheduler per node.
    """
    with TestClient(
        create_app(node, background=background),
        base_url=url_of(node),
        raise_server_exceptions=False,  # a server error is a 500 answer, as over HTTP
        follow_redirects=False,  # as httpx.Client and NodeClient
        client=CALLER,
    ) as client:
        yield client


def attached(client: TestClient, **options: Any) -> TestClient:
    """Another caller of the app `client` reaches in process (an `in_process` client), with
    cookies of its own, on the same event loop, as a second connection to one server: closing
    it leaves `client` open. Use it without `with`, which would start the app's lifespan (and
    the node's scheduler) a second time; `contextlib.closing` closes it."""
    assert isinstance(client, TestClient) and client.portal is not None, "not an entered client"
    other = TestClient(
        client.app,
        base_url=str(client.base_url),
        raise_server_exceptions=False,
        follow_redirects=False,
        client=CALLER,
        **options,
    )
    other.portal = client.portal  # the entered client's loop, which runs the app's lifespan
    return other


def node_client(client: TestClient, **options: Any) -> NodeClient:
    """The project's `NodeClient` talking to `client`'s app in process (`options` are its own:
    chunk_size). Its `with` closes only its own caller."""
    node_api = NodeClient(str(client.base_url), **options)
    node_api.http.close()  # its own pool, never used
    # httpx2's client where NodeClient types an httpx one: the calls it makes are the same
    node_api.http = attached(client)  # type: ignore[assignment]
    return node_api


@pytest.fixture
def api(node: Node, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """An httpx client of the dev node's app, in process. Its app runs the node's scheduler
    unless the test also serves the node on `live`, whose server runs it."""
    with in_process(node, background="live" not in request.fixturenames) as client:
        yield client


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    """An httpx client of the dev node over real HTTP: uvicorn on 127.0.0.1 (`live`)."""
    with httpx.Client(base_url=live.url, timeout=60) as client:
        yield client
