"""Model downloads: a model asset's weights folder as one tar, for whoever may download it."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from cairn.api.deps import MaybeSessionAddress, ModelDownloadsDep
from cairn.api.schemas import file_answer
from cairn.core.ids import StoredId

router = APIRouter(tags=["models"])


@router.get(
    "/models/{asset_id}/download",
    response_class=FileResponse,
    responses=file_answer("The tar", "application/x-tar"),
)
def download(
    downloads: ModelDownloadsDep, asset_id: StoredId, me: MaybeSessionAddress
) -> FileResponse:
    """The model's Hugging Face folder as an uncompressed tar (weights do not compress).

    A licensed model needs a licence held by the signed-in account; 403 says which to buy.
    """
    path = downloads.tar(asset_id, me)
    return FileResponse(
        path,
        media_type="application/x-tar",
        filename=f"model-{asset_id}.tar",
        background=BackgroundTask(os.unlink, path),
    )
