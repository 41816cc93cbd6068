"""A LoRA job's result: a peft adapter folder that names its base, and the model merged from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from cairn.core.errors import InvalidInput
from cairn.store.local import LocalBlobStore
from cairn.train.adapter_folder import ADAPTER_BASE, AdapterBase, is_adapter_folder
from cairn.train.adapters import LoraSettings, add_lora, load_with_adapter, merge_adapter
from cairn.train.models import save_result
from cairn.train.tiny import tiny_causal_lm, tiny_encoder
from cairn.train.weights import store_folder, stored_adapter

BASE = AdapterBase(asset_id=7, weights="bafkreibase")

# Loads the adapters with plain peft on the base, in a Python that never imports Cairn.
PLAIN_PEFT = """
import json, sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
base_folder, adapter_folder = sys.argv[1], sys.argv[2]
base = AutoModelForCausalLM.from_pretrained(base_folder)
model = PeftModel.from_pretrained(base, adapter_folder)
tok = AutoTokenizer.from_pretrained(adapter_folder)
ids = tok("a small test", return_tensors="pt").input_ids
with torch.no_grad():
    logits = model(ids).logits
assert not any(name == "cairn" or name.startswith("cairn.") for name in sys.modules)
print(json.dumps({"logits": logits[0, -1].tolist()}))
"""


def trained_lora(tmp_path: Path) -> tuple[torch.nn.Module, object, Path]:
    """A tiny causal LM saved as the base, then wrapped with adapters moved off their start."""
    model, tokenizer = tiny_causal_lm(seed=1)
    base_folder = tmp_path / "base"
    model.save_pretrained(base_folder)
    tokenizer.save_pretrained(base_folder)
    peft_model = add_lora(model, LoraSettings(rank=4, alpha=8, dropout=0.0), seed=3)
    with torch.no_grad():  # as training would: B starts at zero, so move it
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return peft_model.eval(), tokenizer, base_folder


def last_logits(model: torch.nn.Module, tokenizer: object) -> torch.Tensor:
    ids = tokenizer("a small test", return_tensors="pt").input_ids  # type: ignore[operator]
    with torch.no_grad():
        return model(ids).logits[0, -1]


def test_a_lora_result_is_an_adapter_folder_naming_its_base(tmp_path: Path) -> None:
    model, tokenizer, _ = trained_lora(tmp_path)
    out = tmp_path / "result"
    save_result(model, tokenizer, out, BASE)
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", ADAPTER_BASE} <= names
    assert "config.json" not in names and "model.safetensors" not in names
    assert is_adapter_folder(out)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "cairn:model/7"  # not the node's local path
    assert AdapterBase.read(out) == BASE
    adapters = (out / "adapter_model.safetensors").stat().st_size
    whole = sum(p.numel() * 4 for p in model.get_base_model().parameters())
    assert adapters < whole / 10, (adapters, whole)
    # in the store, the folder says what it adapts without being fetched
    store = LocalBlobStore(tmp_path / "blobs")
    assert stored_adapter(store, store_folder(store, out)) == BASE


def test_a_full_model_result_is_a_plain_folder(tmp_path: Path) -> None:
    model, tokenizer = tiny_causal_lm(seed=1)
    out = tmp_path / "result"
    save_result(model, tokenizer, out, BASE)
    assert (out / "config.json").is_file() and not is_adapter_folder(out)
    store = LocalBlobStore(tmp_path / "blobs")
    assert stored_adapter(store, store_folder(store, out)) is None


@pytest.mark.process
def test_plain_peft_loads_the_adapters_on_the_base(tmp_path: Path) -> None:
    model, tokenizer, base_folder = trained_lora(tmp_path)
    out = tmp_path / "result"
    save_result(model, tokenizer, out, BASE)
    plain = subprocess.run(
        [sys.executable, "-c", PLAIN_PEFT, str(base_folder), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert plain.returncode == 0, plain.stderr
    loaded = torch.tensor(json.loads(plain.stdout.strip().splitlines()[-1])["logits"])
    expected = last_logits(model, tokenizer)
    assert torch.allclose(loaded, expected, atol=1e-5)
    # and the adapters matter: the base alone answers otherwise
    base = AutoModelForCausalLM.from_pretrained(base_folder)
    assert not torch.allclose(last_logits(base, tokenizer), expected, atol=1e-3)


def test_the_merged_model_answers_as_the_adapters_do(tmp_path: Path) -> None:
    model, tokenizer, base_folder = trained_lora(tmp_path)
    out = tmp_path / "result"
    save_result(model, tokenizer, out, BASE)
    merged = merge_adapter(base_folder, out, tmp_path / "merged")
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
    plain = AutoModelForCausalLM.from_pretrained(merged)
    assert torch.allclose(last_logits(plain, tokenizer), last_logits(model, tokenizer), atol=1e-4)
    assert not list(tmp_path.glob(".merged.*"))  # no half-written folder left beside it


def test_a_classifier_adapter_keeps_its_head_and_labels(tmp_path: Path) -> None:
    encoder, tokenizer = tiny_encoder(num_labels=2, seed=1)
    base_folder = tmp_path / "base"
    encoder.base_model.save_pretrained(base_folder)  # an encoder without a head, as bases are
    tokenizer.save_pretrained(base_folder)
    labels = ("negative", "positive")
    classifier = AutoModelForSequenceClassification.from_pretrained(
        base_folder, num_labels=2, id2label=dict(enumerate(labels))
    )
    model = add_lora(classifier, LoraSettings(rank=4, alpha=8, dropout=0.0, classifier=True), 2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "classifier" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.eval()
    out = tmp_path / "result"
    save_result(model, tokenizer, out, AdapterBase(3, "bafkreienc", labels))
    assert AdapterBase.read(out).labels == labels
    expected = last_logits(model, tokenizer)
    assert torch.allclose(last_logits(load_with_adapter(base_folder, out), tokenizer), expected)
    merged = AutoModelForSequenceClassification.from_pretrained(
        merge_adapter(base_folder, out, tmp_path / "merged")
    )
    assert merged.config.id2label == {0: "negative", 1: "positive"}
    assert torch.allclose(last_logits(merged, tokenizer), expected, atol=1e-4)


@pytest.mark.parametrize(
    "record",
    [
        b"not json",
        b"{}",
        b'{"schema": "cairn.adapter/v1", "base_weights": "bafk"}',
        b'{"schema": "other", "base_asset": 1, "base_weights": "bafk"}',
        b'{"schema": "cairn.adapter/v1", "base_asset": "x", "base_weights": "bafk"}',
        b"[1, 2]",
    ],
)
def test_a_malformed_adapter_record_is_refused(record: bytes) -> None:
    with pytest.raises(InvalidInput, match="adapter"):
        AdapterBase.parse(record)


def test_adapters_that_do_not_fit_the_base_are_refused(tmp_path: Path) -> None:
    model, tokenizer, _ = trained_lora(tmp_path)
    out = tmp_path / "result"
    save_result(model, tokenizer, out, BASE)
    other, other_tokenizer = tiny_causal_lm(seed=1, hidden_size=32)
    other.save_pretrained(tmp_path / "other")
    other_tokenizer.save_pretrained(tmp_path / "other")
    with pytest.raises(InvalidInput, match="do not fit the base"):
        merge_adapter(tmp_path / "other", out, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
