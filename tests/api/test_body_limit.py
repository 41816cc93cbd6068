"""Request bodies are bounded per route as they arrive: a 413 before parsing, without reading
the rest, in each face's error shape; uploads get their larger limits, after authentication.

Over a real uvicorn server (`live`), every test: what they check is how bodies arrive over a
socket (declared and never sent, chunked, split into many messages), which an in-process
client, handing the app the whole body at once, cannot show."""

from __future__ import annotations

import http.client
import json
import time

import httpx

from cairn.api.body_limit import DEFAULT_LIMIT
from tests.api.test_api import dev_account, sign_in
from tests.conftest import LiveServer

MiB = 2**20
HUGE = 200 * MiB  # what the four parallel requests each declared


def post_head_only(
    live: LiveServer, path: str, length: int, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes, float]:
    """POST declaring a `length`-byte body but sending only its first 64 KiB, then read the
    answer: a server that waited for the whole body would never answer."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        connection.putrequest("POST", path)
        for name, value in {
            "Content-Type": "application/json",
            "Content-Length": str(length),
            **(headers or {}),
        }.items():
            connection.putheader(name, value)
        connection.endheaders(message_body=b"[" + b" " * (64 * 1024))
        reply = connection.getresponse()
        body = reply.read()
        return reply.status, dict(reply.getheaders()), body, time.monotonic() - started
    finally:
        connection.close()


def test_a_200_mib_body_to_a_json_route_is_a_413_before_it_is_read(live: LiveServer) -> None:
    status, headers, body, seconds = post_head_only(live, "/api/v1/keys", HUGE)
    assert status == 413 and seconds < 5
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["status"] == 413 and problem["detail"] == (
        "the request body is larger than 1 MiB, the most POST /api/v1/keys accepts; "
        "send less (split a large upload into parts)"
    )
    # the OpenAI-compatible routes answer in OpenAI's shape
    status, _, body, seconds = post_head_only(live, "/v1/embeddings", HUGE)
    assert status == 413 and seconds < 5
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "request_too_large"
    assert "larger than 1 MiB" in error["message"]


def test_a_chunked_body_is_counted_as_it_streams(live: LiveServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        connection.putrequest("POST", "/api/v1/auth/signin")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        chunk = b" " * (64 * 1024)
        for _ in range(2 * MiB // len(chunk)):  # 2 MiB in chunks, and the body never ends
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        reply = connection.getresponse()
        assert reply.status == 413
        assert "larger than 1 MiB" in json.loads(reply.read())["detail"]
    finally:
        connection.close()


def test_within_the_limit_a_body_is_read_as_before(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        padded = {"message": "x", "signature": "0x00", "pad": " " * (DEFAULT_LIMIT - 200)}
        reply = http.post("/api/v1/auth/signin", json=padded)
    assert reply.status_code == 422  # parsed and refused on its fields, not on its size


def test_uploads_take_their_larger_limit_only_once_signed_in(live: LiveServer) -> None:
    # anonymous: 401 at once, without the body being read
    status, _, body, seconds = post_head_only(live, "/api/v1/blobs", HUGE)
    assert status == 401 and seconds < 5
    assert json.loads(body)["detail"].startswith("sign in first")
    # signed in: a 3 MiB blob is over the default limit and within the upload's
    with httpx.Client(base_url=live.url, timeout=60) as http:
        auth = sign_in(http, live.node, dev_account(live.node, "alice"))
        blob = bytes(range(256)) * (3 * MiB // 256)
        stored = http.post("/api/v1/blobs", content=blob, headers=auth)
        assert stored.status_code == 201, stored.text
        assert stored.json()["size"] == len(blob)


def test_a_web_form_over_its_limit_is_a_413_page(live: LiveServer) -> None:
    status, headers, body, seconds = post_head_only(
        live, "/signin/message", HUGE, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 413 and seconds < 5
    assert headers["content-type"].startswith("text/html")
    assert b"larger than 1 MiB" in body
