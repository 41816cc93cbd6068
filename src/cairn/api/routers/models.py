"""Model downloads: a model asset's weights folder as one tar, for whoever may download it."""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Query
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
    downloads: ModelDownloadsDep,
    asset_id: StoredId,
    me: MaybeSessionAddress,
    merged: Annotated[
        bool,
        Query(description="A LoRA model: its adapters merged into the base, as one plain model"),
    ] = False,
) -> FileResponse:
    """The model's Hugging Face folder as an uncompressed tar (weights do not compress).

    A LoRA model's folder holds its peft adapters, which name the base model by asset id and
    CID; `merged=true` sends the plain model merged from them instead. A licensed model needs a
    licence held by the signed-in account; 403 says which to buy.
    """
    path = downloads.tar(asset_id, me, merged=merged)
    return FileResponse(
        path,
        media_type="application/x-tar",
        filename=f"model-{asset_id}.tar",
        background=BackgroundTask(os.unlink, path),
    )
