"""Resumable uploads: a blob larger than one request body goes in chunks, is verified by its
CID, resumes after a dropped connection, and belongs to its uploader only.

The uploads' rules are checked in process (`small_api`); a real uvicorn server (`small`, `live`)
carries what only a socket shows: a file sent in chunks (the blobs and uploads family's
real-server test), a connection dropped mid-chunk, a node that goes away mid-upload, and 300 MiB
in 16 MiB chunks."""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from cairn.api.client import NodeClient
from cairn.assets.content import UPLOAD_TTL, Scope
from cairn.assets.uploads import MAX_BODY
from cairn.core.cid import cid_of, cid_of_stream
from cairn.node import Node
from tests.api.conftest import in_process, node_client
from tests.api.test_api import assert_problem, dev_account
from tests.conftest import LiveServer

MiB = 2**20


@pytest.fixture
def small_node(make_node: Callable[..., Node]) -> Node:
    """A node whose chunks are 1 MiB and whose accounts may hold 4 MiB of uploads."""
    return make_node(upload_chunk_mb=1, upload_quota_mb=4)


@pytest.fixture
def small(small_node: Node) -> Iterator[LiveServer]:
    """`small_node` on a real HTTP server."""
    server = LiveServer(small_node).start()
    yield server
    server.stop()


@pytest.fixture
def small_api(small_node: Node) -> Iterator[TestClient]:
    """`small_node`'s app in process."""
    with in_process(small_node) as client:
        yield client


def client_of(
    server: LiveServer | TestClient, node: Node, label: str, chunk_size: int = MiB
) -> NodeClient:
    """`label`'s `NodeClient`, signed in: over HTTP to a live server, or in process to the app
    an `in_process` client reaches."""
    if isinstance(server, LiveServer):
        api = NodeClient(server.url, chunk_size=chunk_size)
    else:
        api = node_client(server, chunk_size=chunk_size)
    api.sign_in(dev_account(node, label))
    return api


def count_puts(api: NodeClient) -> list[int]:
    """The body sizes of the PUTs `api` sends from now on."""
    sent: list[int] = []

    def hook(request: httpx.Request) -> None:
        if request.method == "PUT":
            sent.append(len(request.content))

    api.http.event_hooks["request"].append(hook)
    return sent


def test_a_file_over_one_chunk_goes_in_chunks_and_is_the_uploaders(
    small: LiveServer, tmp_path: Path
) -> None:
    # the blobs and uploads family's real-server test: uvicorn on 127.0.0.1
    data = random.Random(1).randbytes(3 * MiB + 123)  # three whole chunks and a short one
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    progress: list[int] = []
    with client_of(small, small.node, "alice") as api:
        puts = count_puts(api)
        cid = api.upload_file(path, progress.append)
        assert cid == cid_of(data)
        assert puts == [MiB, MiB, MiB, 123] and sum(progress) == len(data)
        assert api.request("GET", f"/blobs/{cid}") == data  # readable by its uploader
    node = small.node
    [ref] = node.assets.refs.of(cid)
    alice = dev_account(node, "alice").address
    assert (ref.scope, ref.key, ref.account, ref.size) == (Scope.UPLOAD, alice, alice, len(data))
    assert not list((node.data_dir / "uploads").glob("*.part"))  # nothing left staged
    with httpx.Client(base_url=small.url) as anonymous:
        assert anonymous.get(f"/api/v1/blobs/{cid}").status_code == 404  # nobody else's


def test_a_chunk_over_the_node_chunk_size_is_a_413(small_api: TestClient, small_node: Node) -> None:
    data = b"x" * (MiB + 1)
    with client_of(small_api, small_node, "alice") as api:
        staged = api.request("POST", "/uploads", json={"size": len(data), "cid": cid_of(data)})
        assert staged["chunk_size"] == MiB and staged["received"] == 0
        reply = api.http.put(
            f"/api/v1/uploads/{staged['upload_id']}",
            content=data,
            headers={
                "Authorization": f"Bearer {api.token}",
                "Content-Range": f"bytes 0-{MiB}/{len(data)}",
            },
        )
    assert_problem(reply, 413, "larger than 1 MiB, the most PUT /api/v1/uploads/")


def test_an_upload_cut_off_resumes_from_what_the_node_has(small: LiveServer) -> None:
    # over uvicorn: a connection that drops half-way through a chunk needs a socket
    data = random.Random(2).randbytes(3 * MiB)
    cid = cid_of(data)
    with client_of(small, small.node, "alice") as first:
        staged = first.request("POST", "/uploads", json={"size": len(data), "cid": cid})
        upload_id = staged["upload_id"]
        for offset in (0, MiB):
            first.request(
                "PUT",
                f"/uploads/{upload_id}",
                content=data[offset : offset + MiB],
                headers={"Content-Range": f"bytes {offset}-{offset + MiB - 1}/{len(data)}"},
            )
        token = first.token
    # the third chunk's connection drops half-way: the node keeps none of it
    connection = http.client.HTTPConnection("127.0.0.1", small.port, timeout=10)
    connection.putrequest("PUT", f"/api/v1/uploads/{upload_id}")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Range", f"bytes {2 * MiB}-{3 * MiB - 1}/{len(data)}")
    connection.putheader("Content-Length", str(MiB))
    connection.endheaders(message_body=data[2 * MiB : 2 * MiB + MiB // 2])
    connection.close()
    time.sleep(0.2)

    progress: list[int] = []
    with client_of(small, small.node, "alice") as second:  # a fresh client, as after a restart
        assert second.request("GET", f"/uploads/{upload_id}")["received"] == 2 * MiB
        puts = count_puts(second)
        assert second.upload(data, progress.append) == cid
        assert puts == [MiB]  # only what the node lacked
        assert progress == [2 * MiB, MiB]
        done = second.request("GET", f"/uploads/{upload_id}")
        assert done["stored"] and done["received"] == len(data)
    assert small.node.store.get(cid) == data


def test_a_client_whose_node_goes_away_mid_upload_carries_on(
    make_node: Callable[..., Node],
) -> None:
    # over uvicorn: the server the client talks to stops, and another starts
    node = make_node(upload_chunk_mb=1)
    data = random.Random(4).randbytes(4 * MiB)
    servers = [LiveServer(node).start()]

    def restart_after_the_first_chunk(sent: int) -> None:
        if len(servers) == 1:  # the node stops, and is back a moment later
            servers[0].stop()
            threading.Timer(0.3, lambda: servers.append(LiveServer(node).start())).start()

    try:
        with client_of(servers[0], node, "alice") as api:
            puts = count_puts(api)
            assert api.upload(data, restart_after_the_first_chunk) == cid_of(data)
        assert len(servers) == 2 and sum(puts) > len(data)  # a chunk went twice
        assert node.store.get(cid_of(data)) == data
    finally:
        servers[-1].stop()


def test_chunks_come_in_order_and_never_change(small_api: TestClient, small_node: Node) -> None:
    data = random.Random(3).randbytes(2 * MiB)
    with client_of(small_api, small_node, "alice") as api:
        auth = {"Authorization": f"Bearer {api.token}"}
        staged = api.request("POST", "/uploads", json={"size": len(data), "cid": cid_of(data)})
        path = f"/api/v1/uploads/{staged['upload_id']}"

        def put(first: int, body: bytes, total: int | str = len(data)) -> httpx.Response:
            last = first + len(body) - 1
            headers = {**auth, "Content-Range": f"bytes {first}-{last}/{total}"}
            return api.http.put(path, content=body, headers=headers)

        assert_problem(put(MiB, data[MiB:]), 409, "send the chunk at offset 0 next")
        assert_problem(
            api.http.put(path, content=data[:10], headers=auth), 422, "needs a Content-Range"
        )
        assert_problem(put(0, data[:MiB], total=5), 422, "was declared with 2097152")
        assert put(0, data[:MiB]).json()["received"] == MiB
        assert put(0, data[:MiB]).json()["received"] == MiB  # a retry changes nothing
        changed = bytes([data[0] ^ 1]) + data[1:MiB]
        assert_problem(put(0, changed), 409, "already holds different bytes at offsets 0-")
        assert_problem(
            api.http.post(f"{path}/complete", headers=auth), 409, "has 1048576 of its 2097152"
        )
        # overlapping what is staged and running on: the overlap is checked, the rest appended
        assert put(MiB // 2, data[MiB // 2 : MiB // 2 + MiB]).json()["received"] == 3 * MiB // 2
        assert put(3 * MiB // 2, data[3 * MiB // 2 :]).json()["received"] == len(data)
        stored = api.http.post(f"{path}/complete", headers=auth)
        assert stored.status_code == 201 and stored.json() == {
            "cid": cid_of(data),
            "size": len(data),
        }
        again = api.http.post(f"{path}/complete", headers=auth)  # the first answer was lost
        assert again.status_code == 201 and again.json()["cid"] == cid_of(data)
        assert_problem(put(0, data[:MiB]), 409, "is complete")

        # bytes that do not hash to the declared CID are refused, and discarded
        other = data[::-1][:MiB]
        lying = api.request("POST", "/uploads", json={"size": MiB, "cid": cid_of(data[:MiB])})
        lied = f"/api/v1/uploads/{lying['upload_id']}"
        range_ = {**auth, "Content-Range": f"bytes 0-{MiB - 1}/{MiB}"}
        assert api.http.put(lied, content=other, headers=range_).status_code == 200
        assert_problem(
            api.http.post(f"{lied}/complete", headers=auth), 422, f"hash to {cid_of(other)}"
        )
        assert_problem(api.http.get(lied, headers=auth), 404, "no upload")
    assert not small_node.store.has(cid_of(other))


def test_an_upload_is_its_uploaders_alone(small_api: TestClient, small_node: Node) -> None:
    data = b"mine" * 1000
    with (
        client_of(small_api, small_node, "alice") as alice,
        client_of(small_api, small_node, "bob") as bob,
    ):
        staged = alice.request("POST", "/uploads", json={"size": len(data), "cid": cid_of(data)})
        path = f"/api/v1/uploads/{staged['upload_id']}"
        theirs = {"Authorization": f"Bearer {bob.token}"}
        chunk = {**theirs, "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"}
        for reply in (
            bob.http.get(path, headers=theirs),
            bob.http.put(path, content=data, headers=chunk),
            bob.http.post(f"{path}/complete", headers=theirs),
            bob.http.delete(path, headers=theirs),
        ):
            assert_problem(reply, 404, f"no upload {staged['upload_id']}")
        assert_problem(bob.http.get("/api/v1/uploads/..%2F..", headers=theirs), 404, "")
        assert_problem(alice.http.get(path), 401, "sign in first")
        assert alice.request("GET", path.removeprefix("/api/v1"))["received"] == 0


def test_staged_uploads_count_against_the_quota_and_expire(
    small_api: TestClient, small_node: Node
) -> None:
    node = small_node
    big, small_blob = b"a" * (3 * MiB), b"b" * (MiB + MiB // 2)
    with client_of(small_api, node, "alice") as api:
        auth = {"Authorization": f"Bearer {api.token}"}
        staged = api.request("POST", "/uploads", json={"size": len(big), "cid": cid_of(big)})
        # the open upload reserves its 3 MiB of the 4: neither a second upload nor a blob fits
        again = {"size": len(small_blob), "cid": cid_of(small_blob)}
        assert_problem(api.http.post("/api/v1/uploads", json=again, headers=auth), 429, "room")
        assert_problem(api.http.post("/api/v1/blobs", content=small_blob, headers=auth), 429, "")
        # the same blob declared again is the same upload
        same = api.http.post(
            "/api/v1/uploads", json={"size": len(big), "cid": cid_of(big)}, headers=auth
        )
        assert same.status_code == 200 and same.json()["upload_id"] == staged["upload_id"]
        api.request("PUT", f"/uploads/{staged['upload_id']}", content=big[:MiB],
                    headers={"Content-Range": f"bytes 0-{MiB - 1}/{len(big)}"})  # fmt: skip

        # a day without a chunk and it is gone, bytes and reservation
        assert node.uploads.expire(now=time.time() + UPLOAD_TTL - 60) == 0
        assert node.uploads.expire(now=time.time() + UPLOAD_TTL + 60) == 1
        assert not list((node.data_dir / "uploads").iterdir())
        gone = api.http.get(f"/api/v1/uploads/{staged['upload_id']}", headers=auth)
        assert_problem(gone, 404, "expired, or never existed")
        # the space is free again; cancelling frees it at once
        staged = api.request("POST", "/uploads", json={"size": len(big), "cid": cid_of(big)})
        assert staged["received"] == 0
        cancelled = api.http.delete(f"/api/v1/uploads/{staged['upload_id']}", headers=auth)
        assert cancelled.status_code == 204
        assert api.upload(small_blob) == cid_of(small_blob)


@pytest.mark.slow
def test_a_blob_over_the_single_request_limit_uploads_in_chunks(
    live: LiveServer, tmp_path: Path
) -> None:
    # over uvicorn: 300 MiB through a socket, in the client's default chunks
    size = 300 * MiB
    assert size > MAX_BODY  # what one POST /blobs may carry
    path = tmp_path / "model.safetensors"
    with path.open("wb") as out:  # sparse: only a little of it is ever on the disk
        out.truncate(size)
        out.seek(size // 2)
        out.write(os.urandom(4096))
    with path.open("rb") as source:
        cid = cid_of_stream(source)
    started = time.monotonic()
    with NodeClient(live.url) as api:  # the default chunk, 16 MiB
        api.sign_in(dev_account(live.node, "alice"))
        puts = count_puts(api)
        assert api.upload_file(path) == cid
    seconds = time.monotonic() - started
    assert len(puts) == 19 and max(puts) == 16 * MiB
    assert live.node.store.size(cid) == size
    print(f"300 MiB in {seconds:.1f} s: {size / MiB / seconds:.0f} MiB/s")
