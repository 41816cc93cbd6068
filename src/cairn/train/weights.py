"""Model weights on disk and in the store: load base models, package trained ones.

A packaged model is a plain Hugging Face folder (safetensors, config, tokenizer, a model card in
README.md) that loads with `from_pretrained` and no Cairn code. In the store it is one blob per
file plus a manifest naming each file's CID; the manifest's CID names the model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cairn.core.errors import InvalidInput, NotFound
from cairn.store.base import BlobStore
from cairn.train import MANIFEST_SCHEMA
from cairn.train.adapter_folder import ADAPTER_BASE, ADAPTER_CONFIG, AdapterBase
from cairn.train.base_models import BaseModel, entry_path, file_facts

if TYPE_CHECKING:  # torch and transformers load when weights are converted or loaded, not before:
    # the node imports this module for storing and fetching model folders.
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def user_model_cache() -> Path:
    """The machine-wide cache of this user's converted base models (shared by every node)."""
    return Path.home() / ".cache" / "cairn" / "models"


def gguf_as_folder(model: BaseModel, cache_dir: Path, shared: Path | None = None) -> Path:
    """A Hugging Face folder holding a GGUF base model's weights, converted once and cached.

    transformers de-quantises GGUF on every load (seconds, for a 135M model); the folder loads
    in a fraction of that. The weights are copied into a fresh model built from the GGUF's
    config, which is how transformers saves a model that came from GGUF. Converting takes half
    a minute or more, so the result is also kept in the user's cache (`shared`, by default
    ~/.cache/cairn/models, keyed by the GGUF's hash and the transformers version) and a new
    node links it into its own `cache_dir` instead of converting again.
    """
    if model.format != "gguf":
        raise InvalidInput(f"{model.name} is {model.format}, not GGUF")
    sha = model.files[0].sha256
    folder = cache_dir / f"{model.name}-{sha[:16]}"
    if (folder / "config.json").exists():
        return folder
    facts = file_facts(model)  # refuses a file that does not match its pinned hash
    del facts
    shared = user_model_cache() if shared is None else shared
    converted = shared / f"{model.name}-{sha[:16]}-transformers-{metadata.version('transformers')}"
    if not (converted / COMPLETE).exists():
        _convert(model, converted)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir))
    try:
        shutil.copytree(converted, tmp, dirs_exist_ok=True, copy_function=_link_or_copy)
        (tmp / COMPLETE).unlink(missing_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


COMPLETE = ".complete"  # written last: a folder without it is a conversion that was cut short


def _convert(model: BaseModel, folder: Path) -> None:
    """De-quantise the GGUF into a safetensors folder at `folder` (atomically)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = entry_path(model)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / COMPLETE).touch()
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the filesystem allows (no second copy of the weights), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def base_model_folder(model: BaseModel, cache_dir: Path) -> Path:
    """The folder `from_pretrained` opens for a packaged base model."""
    if model.format == "gguf":
        return gguf_as_folder(model, cache_dir)
    file_facts(model)
    return entry_path(model)


def load_causal_lm(folder: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a Hugging Face folder, in float32 on the CPU."""
    if not (folder / "config.json").exists():
        raise NotFound(f"{folder} is not a Hugging Face model folder (no config.json)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32)
    return model, tokenizer


def model_card(
    *,
    name: str,
    licence: str,
    base_model: str,
    datasets: list[dict[str, Any]],
    method: str,
    metrics: dict[str, float],
    recipe_yaml: str,
    lineage: dict[str, Any],
    adapter_of: tuple[int, str] | None = None,  # a LoRA adapter: its base's asset id and CID
) -> str:
    """README.md for a trained model: lineage, metrics, licence and the recipe that made it."""
    front = {
        "license": licence.lower(),
        "library_name": "peft" if adapter_of else "transformers",
        "base_model": base_model,
        "tags": ["cairn", method],
    }
    lines = ["---", *(f"{k}: {json.dumps(v)}" for k, v in front.items()), "---", ""]
    lines += [
        f"# {name}",
        "",
        f"Trained on Cairn with the `{method}` recipe from `{base_model}`.",
        "",
    ]
    if adapter_of:
        asset_id, weights = adapter_of
        lines += [
            f"These are LoRA adapters (peft) for `{base_model}`: Cairn model asset {asset_id}, "
            f"weights `{weights}`. Load that model, then "
            "`peft.PeftModel.from_pretrained(base, this_folder)`; "
            "`cairn model download --merged` gives the merged model instead.",
            "",
        ]
    lines += ["## Lineage", "", "```json", json.dumps(lineage, indent=2, sort_keys=True), "```", ""]
    lines += ["## Datasets", ""]
    lines += [
        f"- dataset {d['dataset']} version `{d.get('version') or 'newest'}`" for d in datasets
    ]
    lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items())]
    lines += [
        "",
        "## Licence",
        "",
        licence,
        "",
        "## Recipe",
        "",
        "```yaml",
        recipe_yaml.rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def package(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path, card: str
) -> list[Path]:
    """Write a plain Hugging Face folder: safetensors weights, config, tokenizer, README.md."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def store_folder(store: BlobStore, folder: Path, *, link: bool = False) -> str:
    """Store every file of a folder by CID, then a manifest of them; returns the manifest's CID.

    `link`: the folder is written once and never changed in place (a converted base model, a
    job's result), so a local store may keep its files as they are rather than copy them.
    """
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[path.relative_to(folder).as_posix()] = {
            "cid": store.put_file(path, link=link),
            "size": path.stat().st_size,
        }
    if not files:
        raise InvalidInput(f"{folder} holds no files to store")
    return store.put_json({"schema": MANIFEST_SCHEMA, "files": files})


def fetch_folder(store: BlobStore, manifest_cid: str, folder: Path) -> Path:
    """Write a stored model's files into `folder` (each verified against its CID; a local
    store's files are linked rather than copied). A file already there is replaced, never
    written through: it may be a link to a stored blob."""
    manifest = store.get_json(manifest_cid)
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise InvalidInput(f"{manifest_cid} is not a Cairn model manifest")
    for name, entry in manifest["files"].items():
        target = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise InvalidInput(f"manifest {manifest_cid} names an unsafe path {name!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        if store.link_to(entry["cid"], target):
            continue
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as fh:
                for chunk in store.open(entry["cid"]):
                    fh.write(chunk)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return folder


def stored_adapter(store: BlobStore, manifest_cid: str) -> AdapterBase | None:
    """The base a stored folder's adapters adapt, or None when it holds a whole model."""
    manifest = store.get_json(manifest_cid)
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise InvalidInput(f"{manifest_cid} is not a Cairn model manifest")
    files = manifest["files"]
    if ADAPTER_CONFIG not in files or "config.json" in files:
        return None
    if ADAPTER_BASE not in files:
        raise InvalidInput(f"the adapters in {manifest_cid} name no base model ({ADAPTER_BASE})")
    return AdapterBase.parse(store.get(files[ADAPTER_BASE]["cid"]))


def model_entry(store: BlobStore, weights: str, family: str) -> dict[str, Any]:
    """A trained model asset's `extra.model`: its weights' manifest, its family and, for LoRA
    adapters, the base they adapt (and a classifier's labels)."""
    entry: dict[str, Any] = {"weights": weights, "family": family}
    adapter = stored_adapter(store, weights)
    if adapter is not None:
        entry["adapter"] = {"base_asset": adapter.asset_id, "base_weights": adapter.weights}
        if adapter.labels is not None:
            entry["adapter"]["labels"] = list(adapter.labels)
    return entry
