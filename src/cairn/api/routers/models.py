"""Model downloads: a model asset's weights folder as one tar, for whoever may download it."""

from __future__ import annotations

import os
import tarfile
import tempfile

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from cairn.api.deps import MaybeSessionAddress, NodeDep
from cairn.core.errors import InvalidInput
from cairn.core.ids import StoredId
from cairn.core.licensing import Use

router = APIRouter(tags=["models"])


@router.get("/models/{asset_id}/download", response_class=FileResponse)
def download(node: NodeDep, asset_id: StoredId, me: MaybeSessionAddress) -> FileResponse:
    """The model's Hugging Face folder as an uncompressed tar (weights do not compress).

    A licensed model needs a licence held by the signed-in account; 403 says which to buy.
    """
    asset = node.assets.get(asset_id)
    if asset.kind != "model":
        raise InvalidInput(f"asset {asset_id} is a {asset.kind}, not a model")
    node.licences.require(Use.DOWNLOAD, asset_id, me)
    folder = node.catalog.folder(asset)
    fd, path = tempfile.mkstemp(prefix=f"model-{asset_id}-", suffix=".tar")
    with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            if file.name == ".complete":
                continue
            tar.add(file, arcname=file.relative_to(folder).as_posix(), recursive=False)
    return FileResponse(
        path,
        media_type="application/x-tar",
        filename=f"model-{asset_id}.tar",
        background=BackgroundTask(os.unlink, path),
    )
