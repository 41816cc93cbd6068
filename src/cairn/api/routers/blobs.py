"""Content-addressed blobs: upload bytes, get them back by CID (verified on every read).

A blob is read with the same access as what it belongs to (see `cairn.economy.access`): an
asset's metadata by anyone, a licensed dataset's batches or a licensed model's weights by those
who may export or download them, an upload by its uploader until an asset claims it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from cairn.api.deps import AccessDep, ReaderAddress, SessionAddress, UploadsDep
from cairn.api.node_schemas import BlobStored
from cairn.api.schemas import file_answer
from cairn.compute.blobs import JOB_TOKEN_HEADER
from cairn.core.cid import CID

router = APIRouter(prefix="/blobs", tags=["store"])


@router.post("", response_model=BlobStored, status_code=201)
async def upload(uploads: UploadsDep, request: Request, me: SessionAddress) -> BlobStored:
    """Store the request body as the signed-in account's upload; answers its CIDv1.

    An upload is readable by its uploader only, until an asset registered by that account
    names it (metadata, a model's weights); one that nothing claims within a day is deleted.
    Each account's unclaimed uploads count against a quota, and uploads per hour are limited.
    """
    allowance = await anyio.to_thread.run_sync(uploads.body_allowance, me)
    try:
        declared = request.headers.get("content-length", "")
        if declared.isdigit():
            allowance.check(int(declared))
        size = 0

        def body() -> Iterator[bytes]:  # runs in the worker thread, as the store reads it
            nonlocal size
            for chunk in from_the_loop(request.stream()):
                size += len(chunk)
                allowance.check(size)
                yield chunk

        # The store hashes and spools the body as it arrives, in a worker thread: one chunk at
        # a time in memory, however large the body, and the event loop free for other requests.
        cid = await anyio.to_thread.run_sync(uploads.store_body, me, body())
    finally:
        allowance.close()  # stored (now counted as an upload) or abandoned
    return BlobStored(cid=cid, size=size)


def from_the_loop(stream: AsyncIterator[bytes]) -> Iterator[bytes]:
    """An async stream read, chunk by chunk, from a worker thread that anyio started."""

    async def next_chunk() -> bytes | None:
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None

    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        if chunk:
            yield chunk


@router.get(
    "/{cid}",
    response_class=StreamingResponse,
    responses=file_answer("The blob's bytes", "application/octet-stream"),
)
def download(
    access: AccessDep,
    cid: str,
    reader: ReaderAddress,
    job_token: Annotated[
        str | None,
        Header(alias=JOB_TOKEN_HEADER, description="A job's token: its workers' access"),
    ] = None,
) -> StreamingResponse:
    """The bytes of a blob, streamed and checked against their CID as they are read.

    Served to whoever may read what the blob belongs to; 403 names the licence to buy, 404
    answers both a blob this node lacks and one the reader may not know of.
    """
    stream = access.read(str(CID.parse(cid)), reader, job_token)
    return StreamingResponse(stream, media_type="application/octet-stream")
