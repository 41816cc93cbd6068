"""Resumable uploads: a blob larger than one request body, sent in chunks and verified by CID.

`POST /uploads` declares the blob (size and CID), `PUT /uploads/{id}` sends each chunk with a
`Content-Range`, `GET /uploads/{id}` says how many bytes the node has (resume from there), and
`POST /uploads/{id}/complete` stores the blob as the signed-in account's upload, as
`POST /blobs` does. The rules are `cairn.assets.uploads`'.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from cairn.api.deps import SessionAddress, UploadsDep
from cairn.api.node_schemas import BlobStored
from cairn.api.schemas import Strict
from cairn.assets.uploads import ChunkRange, StagedUpload

router = APIRouter(prefix="/uploads", tags=["store"])

UploadId = Annotated[str, Path(max_length=64, description="What POST /uploads answered")]


class UploadCreate(Strict):
    size: int = Field(..., ge=1, le=2**53, description="The blob's length in bytes")
    cid: str = Field(
        ..., max_length=128, description="The blob's CIDv1 (raw, sha2-256), computed by the sender"
    )


class UploadPublic(BaseModel):
    upload_id: str
    size: int
    cid: str
    received: int = Field(..., description="Bytes the node holds: send the next chunk from here")
    chunk_size: int = Field(..., description="The most bytes one PUT may carry")
    expires_at: float = Field(..., description="Unix time the upload is deleted if idle")
    stored: bool = Field(..., description="Completed: the blob is stored")


def public(upload: StagedUpload) -> UploadPublic:
    """An upload as its uploader sees it."""
    return UploadPublic(
        upload_id=upload.upload_id,
        size=upload.size,
        cid=upload.cid,
        received=upload.received,
        chunk_size=upload.chunk_size,
        expires_at=upload.expires_at,
        stored=upload.stored,
    )


@router.post("", response_model=UploadPublic, status_code=201)
def start_upload(
    uploads: UploadsDep, body: UploadCreate, me: SessionAddress, response: Response
) -> UploadPublic:
    """Open an upload of a blob of `size` bytes hashing to `cid`, counted against your quota.

    Declaring a blob whose upload is already open answers that upload (200), so a client
    that lost its connection resumes from `received`.
    """
    upload, created = uploads.start(me, body.size, body.cid)
    if not created:
        response.status_code = 200
    return public(upload)


@router.get("/{upload_id}", response_model=UploadPublic)
def get_upload(uploads: UploadsDep, upload_id: UploadId, me: SessionAddress) -> UploadPublic:
    """One of your uploads: how many bytes the node holds. Others' uploads are 404."""
    return public(uploads.get(upload_id, me))


@router.put("/{upload_id}", response_model=UploadPublic)
async def put_chunk(
    uploads: UploadsDep,
    upload_id: UploadId,
    request: Request,
    me: SessionAddress,
    content_range: Annotated[
        str | None,
        Header(description="bytes FIRST-LAST/TOTAL: where the body goes", max_length=80),
    ] = None,
) -> UploadPublic | Response:
    """Stage the body at the range's offset: from `received` on, or again over bytes already
    sent (they must be the same). A chunk that would leave a gap is 409."""
    chunk = ChunkRange.parse(content_range)
    try:
        data = await request.body()  # at most one chunk: the body limit is the node's chunk size
    except ClientDisconnect:  # the sender went away mid-chunk: none of it is staged
        return Response(status_code=400)
    upload = await run_in_threadpool(uploads.write, upload_id, me, chunk, data)
    return public(upload)


@router.post("/{upload_id}/complete", response_model=BlobStored, status_code=201)
def complete_upload(uploads: UploadsDep, upload_id: UploadId, me: SessionAddress) -> BlobStored:
    """Hash what was sent, store it if it is the declared CID (else 422, and the upload is
    discarded), and answer the blob; it is then your upload, as if sent to POST /blobs."""
    upload = uploads.complete(upload_id, me)
    return BlobStored(cid=upload.cid, size=upload.size)


@router.delete("/{upload_id}", status_code=204, response_model=None)
def cancel_upload(uploads: UploadsDep, upload_id: UploadId, me: SessionAddress) -> Response:
    """Give up an open upload: its bytes are deleted and your quota freed."""
    uploads.cancel(upload_id, me)
    return Response(status_code=204)
