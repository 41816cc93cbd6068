"""Model weights: the packaged GGUF base model as a folder, and trained models as plain HF folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from cairn.core.errors import InvalidInput
from cairn.store.local import LocalBlobStore
from cairn.train.base_models import entry_path, find
from cairn.train.weights import (
    fetch_folder,
    gguf_as_folder,
    load_causal_lm,
    model_card,
    package,
    store_folder,
)

PLAIN_LOAD = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
assert "cairn" not in sys.modules
model = AutoModelForCausalLM.from_pretrained(folder)
tok = AutoTokenizer.from_pretrained(folder)
ids = tok("a small test", return_tensors="pt").input_ids
with torch.no_grad():
    logits = model(ids).logits
print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "logit_sum": float(logits.sum())}))
"""


def tiny_model() -> tuple[LlamaForCausalLM, AutoTokenizer]:
    tokenizer = AutoTokenizer.from_pretrained(str(entry_path(find("all-MiniLM-L6-v2"))))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    return LlamaForCausalLM(config), tokenizer


@pytest.mark.process
def test_a_packaged_model_round_trips_through_the_store_and_loads_without_cairn(
    tmp_path: Path,
) -> None:
    model, tokenizer = tiny_model()
    card = model_card(
        name="Tiny polite bot",
        licence="Apache-2.0",
        base_model="SmolLM2-135M-Instruct",
        datasets=[
            {"dataset": 3, "version": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"}
        ],
        method="lora",
        metrics={"eval_loss": 1.2345, "perplexity": 3.437},
        recipe_yaml="name: tiny\nmethod: lora\n",
        lineage={"base_model": 1, "datasets": [3], "attribution": ["bafk..."]},
    )
    files = package(model, tokenizer, tmp_path / "out", card)
    names = {p.name for p in files}
    assert {"model.safetensors", "config.json", "README.md"} <= names
    store = LocalBlobStore(tmp_path / "blobs")
    manifest = store_folder(store, tmp_path / "out")
    fetched = fetch_folder(store, manifest, tmp_path / "fetched")
    assert (fetched / "README.md").read_text().startswith('---\nlicense: "apache-2.0"')
    plain = subprocess.run(
        [sys.executable, "-c", PLAIN_LOAD, str(fetched)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert plain.returncode == 0, plain.stderr
    loaded = json.loads(plain.stdout.strip().splitlines()[-1])
    assert loaded["params"] == sum(p.numel() for p in model.parameters())
    ids = tokenizer("a small test", return_tensors="pt").input_ids
    with torch.no_grad():
        expected = float(model(ids).logits.sum())
    assert abs(loaded["logit_sum"] - expected) < 1e-3 * max(1.0, abs(expected))


def test_a_manifest_must_be_a_model_manifest(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    not_manifest = store.put_json({"schema": "something-else"})
    with pytest.raises(InvalidInput, match="not a Cairn model manifest"):
        fetch_folder(store, not_manifest, tmp_path / "x")
    evil = store.put_json(
        {"schema": "cairn.model-files/v1", "files": {"../escape": {"cid": not_manifest, "size": 1}}}
    )
    with pytest.raises(InvalidInput, match="unsafe path"):
        fetch_folder(store, evil, tmp_path / "y")


@pytest.mark.slow
def test_the_gguf_base_model_converts_once_and_still_answers(tmp_path: Path) -> None:
    smol = find("SmolLM2-135M-Instruct")
    folder = gguf_as_folder(smol, tmp_path / "cache", shared=tmp_path / "shared")
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    assert gguf_as_folder(smol, tmp_path / "cache", shared=tmp_path / "shared") == folder
    # another node's cache links the user's converted copy instead of converting again
    [converted] = (tmp_path / "shared").iterdir()
    assert (converted / ".complete").exists()
    other = gguf_as_folder(smol, tmp_path / "other", shared=tmp_path / "shared")
    weights = other / "model.safetensors"
    assert weights.stat().st_ino == (converted / "model.safetensors").stat().st_ino
    assert not (other / ".complete").exists()
    model, tokenizer = load_causal_lm(folder)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}],
        add_generation_prompt=True,
        return_tensors="pt",
    )
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert "5" in tokenizer.decode(out[0][ids.shape[1] :])
