"""A blob sent as one request body is stored as it arrives: the node holds one chunk of it at a
time, not the body (up to 256 MiB, from every account at once).

Over a real uvicorn server, in this process, so that tracemalloc sees what the server holds
while a client streams the body over a socket."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import httpx

from cairn.api.client import NodeClient
from cairn.core.cid import cid_of
from cairn.node import Node
from tests.conftest import LiveServer
from tests.data.conftest import dev

MiB = 2**20
BODY = 48 * MiB
CHUNK = 64 * 1024


def body() -> Iterator[bytes]:
    """BODY bytes in 64 KiB chunks, each new, so none is held on the client's side."""
    for i in range(BODY // CHUNK):
        yield bytes([i % 251]) * CHUNK


def test_a_large_body_is_stored_holding_one_chunk_at_a_time(node: Node, live: LiveServer) -> None:
    api = NodeClient(live.url)
    token = api.sign_in(dev(node, "alice"))
    expected = cid_of(b"".join(body()))
    tracemalloc.start()
    try:
        reply = httpx.post(
            f"{live.url}/api/v1/blobs",
            content=body(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.status_code == 201, reply.text
    assert reply.json() == {"cid": expected, "size": BODY}
    assert node.store.get(expected)[:CHUNK] == bytes([0]) * CHUNK
    assert peak < 8 * MiB, f"the node held {peak / MiB:.1f} MiB to store a {BODY // MiB} MiB body"
