"""Web pages tested in process through ASGI: `web` is an httpx client with cookies whose posts
come from the node's own pages, and `signed_in(label)` signs it in as a dev account the way the
dev account picker does.

`web` reaches the node's app without a socket (Starlette's `TestClient`, an httpx client over
ASGI), as the node's own URL, from 127.0.0.1; real HTTP is the `live` fixture's, which the tests
of a real server's behaviour (streaming, the CLI, workers, Chromium) use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from cairn.api.app import create_app
from cairn.node import Node
from cairn.web import csrf


@pytest.fixture
def web(node: Node, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A browser-like client of the dev node (keeps cookies, does not follow redirects). Its
    posts carry what a post from one of the node's pages does: the node's Origin and, once
    signed in, the session's form token (a test may send other values of either).

    Its app runs the node's scheduler, as a served node does, unless the test also serves the
    node on `live`, whose server runs it: one scheduler per node.
    """
    url = f"http://127.0.0.1:{node.config.port}"  # the URL `live` serves the node on
    app = create_app(node, background="live" not in request.fixturenames)

    def as_a_page_would(request: httpx.Request) -> None:
        if request.method != "POST":
            return
        request.headers.setdefault("Origin", url)
        session = client.cookies.get(csrf.SESSION_COOKIE)
        if session and csrf.HEADER not in request.headers:
            request.headers[csrf.HEADER] = csrf.form_token(session)

    with TestClient(
        app,
        base_url=url,
        raise_server_exceptions=False,  # a server error is a 500 page, as over HTTP
        follow_redirects=False,
        client=("127.0.0.1", 50000),
    ) as client:  # the app's lifespan: started and stopped with the client
        client.event_hooks = {"request": [as_a_page_would], "response": []}
        yield client


@pytest.fixture
def signed_in(web: httpx.Client, node: Node) -> Callable[[str], httpx.Client]:
    """Sign `web` in as the dev account with `label`; returns the same client."""

    def sign_in(label: str) -> httpx.Client:
        address = node.keystore.find_by_label(label).address
        reply = web.post("/signin/dev", data={"address": address, "next": "/"})
        assert reply.status_code == 303, reply.text
        return web

    return sign_in
