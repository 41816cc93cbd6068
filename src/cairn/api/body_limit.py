"""Request bodies have a size limit per route, enforced as they arrive: a body over it is a 413
before it is parsed, and before the rest of it is read.

A declared `Content-Length` over the limit is refused at the route's first read of the body,
without reading a byte of it; a chunked body is counted as it streams in. Routes that read the
body only after their dependencies (the blob upload, a resumable upload's chunks, the web's
upload form) authenticate first, so an anonymous caller gets its 401 without sending the body at
all. A chunk may carry the node's chunk size (`upload_chunk_mb`), and no more.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cairn.assets.uploads import MAX_BODY as MAX_BLOB
from cairn.web.contribute import MAX_UPLOAD_BYTES as MAX_WEB_UPLOAD

MiB = 2**20
DEFAULT_LIMIT = 1 * MiB  # JSON and forms: the largest a person sends (a recipe, a spec) is KiB
# Routes that take uploads, by method and path: the only bodies over the default.
UPLOAD_LIMITS = (
    ("POST", re.compile(r"/api/v1/blobs"), MAX_BLOB),
    # records as JSON strings (escaped, so larger than the JSONL); bigger uploads go in parts
    ("POST", re.compile(r"/api/v1/datasets/[^/]+/contributions(/typed-data)?"), 64 * MiB),
    ("POST", re.compile(r"/datasets/[^/]+/contribute"), MAX_WEB_UPLOAD + MiB),  # file and fields
)
# A resumable upload's chunk: the node's chunk size (`upload_chunk_mb`), exactly.
CHUNK_ROUTE = ("PUT", re.compile(r"/api/v1/uploads/[^/]+"))


class BodyTooLarge(HTTPException):
    """A request body over its route's limit (413); the error handlers shape it per face."""

    def __init__(self, limit: int, method: str, path: str) -> None:
        super().__init__(
            413,
            f"the request body is larger than {_size(limit)}, the most {method} {path} accepts; "
            "send less (split a large upload into parts)",
        )


def limit_of(method: str, path: str, chunk_size: int) -> int:
    """The most bytes a request body to `path` may have, on a node of `chunk_size` chunks."""
    if method == CHUNK_ROUTE[0] and CHUNK_ROUTE[1].fullmatch(path):
        return chunk_size
    for allowed, pattern, limit in UPLOAD_LIMITS:
        if method == allowed and pattern.fullmatch(path):
            return limit
    return DEFAULT_LIMIT


class BodyLimit:
    """ASGI middleware: every HTTP request's body is bounded by its route's limit."""

    def __init__(self, app: ASGIApp, *, chunk_size: Callable[[], int]) -> None:
        self.app = app
        self.chunk_size = chunk_size  # the node's, asked per request: a resumable upload's chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        limit = limit_of(method, path, self.chunk_size())
        declared = dict(scope["headers"]).get(b"content-length", b"")
        length = int(declared) if declared.isdigit() else None
        received = 0

        async def limited() -> Message:
            # Raised where the route reads its body, so that the app's handlers answer it (a
            # route that refuses the caller first never reads, and answers that instead).
            nonlocal received
            if length is not None and length > limit:
                raise BodyTooLarge(limit, method, path)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, method, path)
            return message

        await self.app(scope, limited, send)


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit} bytes"
