"""Content-addressed blobs: upload bytes, get them back by CID (verified on every read)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from cairn.api.deps import NodeDep, SessionAddress
from cairn.core.cid import CID
from cairn.core.errors import InvalidInput, NotFound

router = APIRouter(prefix="/blobs", tags=["store"])
MAX_UPLOAD = 256 * 1024 * 1024


@router.post("", status_code=201)
async def upload(node: NodeDep, request: Request, _: SessionAddress) -> dict[str, object]:
    """Store the request body; answers its CIDv1 (raw, sha2-256, base32)."""
    size = 0
    chunks: list[bytes] = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD:
            raise InvalidInput(f"upload exceeds {MAX_UPLOAD} bytes")
        chunks.append(chunk)
    cid = node.store.put_stream(iter(chunks))
    return {"cid": cid, "size": size}


@router.get("/{cid}")
def download(node: NodeDep, cid: str) -> StreamingResponse:
    """The bytes of a blob, streamed and checked against their CID as they are read."""
    parsed = str(CID.parse(cid))
    if not node.store.has(parsed):
        raise NotFound(f"no blob {parsed} in this node's store")
    stream: Iterator[bytes] = node.store.open(parsed)
    return StreamingResponse(stream, media_type="application/octet-stream")
