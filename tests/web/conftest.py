"""Web pages tested through a real HTTP server: `web` is an httpx client with cookies, and
`signed_in(label)` signs it in as a dev account the way the dev account picker does."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from cairn.node import Node
from tests.conftest import LiveServer


@pytest.fixture
def web(live: LiveServer) -> Iterator[httpx.Client]:
    """A browser-like client of the live node (keeps cookies, does not follow redirects)."""
    with httpx.Client(base_url=live.url, timeout=60.0) as client:
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
