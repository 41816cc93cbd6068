"""Model assets as folders: which asset a recipe means, and its weights on disk and by CID.

A model asset's metadata says where its weights are: `extra.base_model` for a packaged base
model (the files of a pip package, pinned by hash), `extra.model.weights` for any other model
(the manifest CID of its Hugging Face folder in the store: every model trained on Cairn, and
models uploaded with `register_folder`). Either way `folder` gives a local folder that
`from_pretrained` opens and `manifest` the CID workers fetch it by. A LoRA job's model stores
its adapters alone (`extra.model.adapter` names the base asset): `stored_folder` is that adapter
folder, and `folder` the plain model merged from it once, for whatever needs whole weights
(training from it, a teacher, `--merged` downloads).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from cairn.assets.content import Scope
from cairn.assets.service import Asset, AssetService
from cairn.core.errors import InvalidInput, NotFound
from cairn.core.policy import RevenueSplit
from cairn.store.base import BlobStore
from cairn.train import base_models
from cairn.train.adapter_folder import AdapterBase
from cairn.train.base_models import BaseModels
from cairn.train.weights import base_model_folder, fetch_folder, store_folder

# A trained model's revenue: a share to its owner, to the data it learnt from, to the compute
# that trained it, and to the model it was trained from.
DEFAULT_MODEL_SPLIT = RevenueSplit(owner=2_000, data=4_000, compute=2_000, upstream=2_000)


class ModelCatalog:
    """Resolve model references and materialise model assets as local folders."""

    def __init__(
        self, assets: AssetService, store: BlobStore, bases: BaseModels, cache_dir: Path
    ) -> None:
        self.assets = assets
        self.store = store
        self.bases = bases
        self.cache_dir = cache_dir

    def resolve(self, ref: int | str) -> Asset:
        """The model asset a recipe's `base_model` or `teacher_model` names."""
        if isinstance(ref, str):
            registered = {k.lower(): v for k, v in self.bases.registered().items()}
            if ref.lower() not in registered:
                base_models.find(ref)  # an unknown name: NotFound listing the known ones
                raise NotFound(
                    f"base model {ref!r} is not registered on this node: start the node with "
                    "base models (the default outside tests)"
                )
            ref = registered[ref.lower()]
        asset = self.assets.get(ref)
        if asset.kind != "model":
            raise InvalidInput(f"asset {ref} is a {asset.kind}, not a model")
        return asset

    def metadata(self, asset: Asset) -> dict[str, Any]:
        """The asset's `extra` metadata."""
        extra: dict[str, Any] = self.store.get_json(asset.metadata_cid).get("extra", {})
        return extra

    def family(self, asset: Asset) -> str:
        """ "causal-lm" or "encoder" (what a recipe method can train from it)."""
        extra = self.metadata(asset)
        if "base_model" in extra:
            return str(extra["base_model"]["family"])
        if "model" in extra:
            return str(extra["model"].get("family", "causal-lm"))
        raise InvalidInput(f"model asset {asset.asset_id} names no weights")

    def adapter(self, asset: Asset) -> AdapterBase | None:
        """The base model a LoRA adapter asset adapts; None for a whole model."""
        entry = self.metadata(asset).get("model", {}).get("adapter")
        if entry is None:
            return None
        labels = entry.get("labels")
        return AdapterBase(
            asset_id=int(entry["base_asset"]),
            weights=str(entry["base_weights"]),
            labels=tuple(labels) if labels is not None else None,
        )

    def folder(self, asset: Asset) -> Path:
        """A local Hugging Face folder of the asset's whole model (fetched or converted once;
        an adapter asset's merged into its base once)."""
        extra = self.metadata(asset)
        if "base_model" in extra:
            return base_model_folder(base_models.find(extra["base_model"]["name"]), self.cache_dir)
        adapter = self.adapter(asset)
        if adapter is None:
            return self.stored_folder(asset)
        merged = self.cache_dir / "merged" / str(extra["model"]["weights"])
        done = merged.with_name(f"{merged.name}.complete")  # beside it: the folder is stored
        if not done.exists():
            from cairn.train.adapters import merge_adapter  # torch: only when merging

            base = self.folder(self.assets.get(adapter.asset_id))
            merge_adapter(base, self.stored_folder(asset), merged)
            done.touch()
        return merged

    def stored_folder(self, asset: Asset) -> Path:
        """The asset's files as stored, in a local folder: a LoRA asset's adapters alone."""
        extra = self.metadata(asset)
        if "base_model" in extra:
            return self.folder(asset)
        if "model" in extra:
            cid = str(extra["model"]["weights"])
            folder = self.cache_dir / cid
            if not (folder / ".complete").exists():
                fetch_folder(self.store, cid, folder)
                (folder / ".complete").touch()
            return folder
        raise InvalidInput(f"model asset {asset.asset_id} names no weights")

    def manifest(self, asset: Asset) -> str:
        """The manifest CID of the asset's whole model in the store (a base model's, or an
        adapter's merged into its base, stored once), for workers to train from."""
        extra = self.metadata(asset)
        if "model" in extra and self.adapter(asset) is None:
            return str(extra["model"]["weights"])
        marker = self.cache_dir / f"manifest-{asset.asset_id}-{asset.metadata_cid}.json"
        if marker.exists():
            cid = str(json.loads(marker.read_text())["manifest"])
            if self.store.has(cid):
                self.assets.refs.add_folder(cid, Scope.MODEL, asset.asset_id)
                return cid
        cid = store_folder(self.store, self.folder(asset), link=True)  # converted or merged once
        self.assets.refs.add_folder(cid, Scope.MODEL, asset.asset_id)  # the model's gate
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"manifest": cid}))
        os.replace(tmp, marker)
        return cid

    def register_folder(
        self,
        owner: LocalAccount,
        folder: Path,
        *,
        name: str,
        licence: str,
        family: str,
        description: str = "",
        parents: list[int] | None = None,
        split: RevenueSplit | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Asset:
        """Store a Hugging Face folder and register it as a model asset of `owner`."""
        if family not in ("causal-lm", "encoder"):
            raise InvalidInput(f"family must be causal-lm or encoder; got {family!r}")
        if not (folder / "config.json").exists():
            raise InvalidInput(f"{folder} is not a Hugging Face model folder (no config.json)")
        weights = store_folder(self.store, folder)
        # The owner's own files until the registration claims them for the model.
        self.assets.refs.add_folder(weights, Scope.ACCOUNT, owner.address, account=owner.address)
        config = json.loads((folder / "config.json").read_text())
        architectures = [str(a) for a in config.get("architectures") or []]
        return self.assets.register(
            owner,
            kind="model",
            name=name,
            licence=licence,
            description=description,
            parents=parents,
            split=split or DEFAULT_MODEL_SPLIT,
            extra={
                "model": {"weights": weights, "family": family, "architectures": architectures},
                **(extra or {}),
            },
        )
