"""Model downloads: a model asset's weights folder as one tar, for whoever may download it.

A LoRA model downloads as its adapter folder, or merged into its base on request.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path

from cairn.core.errors import InvalidInput
from cairn.core.licensing import Use
from cairn.economy.licences import LicenceBook
from cairn.train.catalog import ModelCatalog

SKIPPED = frozenset({".complete"})  # the catalogue's marker of a fully unpacked folder


class ModelDownloads:
    """Package a model's Hugging Face folder for a reader its licences allow."""

    def __init__(self, catalog: ModelCatalog, licences: LicenceBook) -> None:
        self.catalog = catalog
        self.licences = licences

    def tar(self, asset_id: int, reader: str | None, *, merged: bool = False) -> Path:
        """The model's folder as an uncompressed tar in a temporary file (weights do not
        compress) that the caller deletes; a licensed model needs a licence `reader` holds.

        A LoRA model's folder is its adapters (megabytes; they name the base by asset id and
        CID); `merged` asks for the plain model made by merging them into the base instead.
        Any other model is whole already, and `merged` changes nothing."""
        asset = self.catalog.assets.get(asset_id)
        if asset.kind != "model":
            raise InvalidInput(f"asset {asset_id} is a {asset.kind}, not a model")
        self.licences.require(Use.DOWNLOAD, asset_id, reader)
        folder = self.catalog.folder(asset) if merged else self.catalog.stored_folder(asset)
        fd, path = tempfile.mkstemp(prefix=f"model-{asset_id}-", suffix=".tar")
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                if file.name in SKIPPED:
                    continue
                tar.add(file, arcname=file.relative_to(folder).as_posix(), recursive=False)
        return Path(path)
