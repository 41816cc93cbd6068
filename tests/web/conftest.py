"""Web pages tested through a real HTTP server: `web` is an httpx client with cookies whose
posts come from the node's own pages, and `signed_in(label)` signs it in as a dev account the
way the dev account picker does."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from cairn.node import Node
from cairn.web import csrf
from tests.conftest import LiveServer


@pytest.fixture
def web(live: LiveServer) -> Iterator[httpx.Client]:
    """A browser-like client of the live node (keeps cookies, does not follow redirects). Its
    posts carry what a post from one of the node's pages does: the node's Origin and, once
    signed in, the session's form token (a test may send other values of either)."""

    def as_a_page_would(request: httpx.Request) -> None:
        if request.method != "POST":
            return
        request.headers.setdefault("Origin", live.url)
        session = client.cookies.get(csrf.SESSION_COOKIE)
        if session and csrf.HEADER not in request.headers:
            request.headers[csrf.HEADER] = csrf.form_token(session)

    with httpx.Client(
        base_url=live.url, timeout=60.0, event_hooks={"request": [as_a_page_would]}
    ) as client:
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
