"""Content-addressed blobs: upload bytes, get them back by CID (verified on every read).

A blob is read with the same access as what it belongs to (see `cairn.economy.access`): an
asset's metadata by anyone, a licensed dataset's batches or a licensed model's weights by those
who may export or download them, an upload by its uploader until an asset claims it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from cairn.api.deps import NodeDep, ReaderAddress, SessionAddress
from cairn.api.node_schemas import BlobStored
from cairn.api.schemas import file_answer
from cairn.assets.content import Scope
from cairn.compute.blobs import JOB_TOKEN_HEADER
from cairn.core.cid import CID
from cairn.core.errors import InvalidInput, NotFound, RateLimited

router = APIRouter(prefix="/blobs", tags=["store"])
MAX_UPLOAD = 256 * 1024 * 1024
MiB = 1024 * 1024


@router.post("", response_model=BlobStored, status_code=201)
async def upload(node: NodeDep, request: Request, me: SessionAddress) -> BlobStored:
    """Store the request body as the signed-in account's upload; answers its CIDv1.

    An upload is readable by its uploader only, until an asset registered by that account
    names it (metadata, a model's weights); one that nothing claims within a day is deleted.
    Each account's unclaimed uploads count against a quota, and uploads per hour are limited.
    """
    config = node.config
    usage = node.assets.refs.uploads(me, window=3600.0)
    if usage.recent >= config.uploads_per_hour:
        raise RateLimited(
            f"{me} made {usage.recent} uploads in the last hour; the limit is "
            f"{config.uploads_per_hour}: wait, or ask the operator to raise CAIRN_UPLOADS_PER_HOUR"
        )
    room = config.upload_quota_mb * MiB - usage.bytes - node.uploads.reserved(me)
    limit = min(MAX_UPLOAD, room)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_big(me, int(declared), limit, room)
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(me, size, limit, room)
        chunks.append(chunk)
    cid = node.store.put_stream(iter(chunks))
    node.assets.refs.add(cid, Scope.UPLOAD, me, account=me)
    return BlobStored(cid=cid, size=size)


def _too_big(me: str, size: int, limit: int, room: int) -> InvalidInput | RateLimited:
    if limit == room:
        return RateLimited(
            f"{me}'s unclaimed uploads leave room for {max(room, 0) // MiB} MiB; this upload is "
            f"{size // MiB}+ MiB: register what you uploaded (or wait a day for it to expire)"
        )
    return InvalidInput(f"upload exceeds {MAX_UPLOAD} bytes")


@router.get(
    "/{cid}",
    response_class=StreamingResponse,
    responses=file_answer("The blob's bytes", "application/octet-stream"),
)
def download(
    node: NodeDep,
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
    parsed = str(CID.parse(cid))
    node.access.check(parsed, reader, job_token)
    if not node.store.has(parsed):
        raise NotFound(f"no blob {parsed} in this node's store")
    stream: Iterator[bytes] = node.store.open(parsed)
    return StreamingResponse(stream, media_type="application/octet-stream")
