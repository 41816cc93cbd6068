"""A LoRA job's model is stored as its adapters: registered, downloaded (as adapters or merged),
and trained from again, on a node (the job's folder written as its ServerApp writes it)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cairn.assets.content import Scope
from cairn.core.recipe import load_recipe
from cairn.node import Node
from cairn.serve.backends import SamplingParams
from cairn.serve.backends.transformers import TransformersBackend
from cairn.train.adapter_folder import AdapterBase
from cairn.train.weights import fetch_folder
from tests.api.conftest import in_process, node_client
from tests.compute.test_jobs_crash_safe import play_job, start_job
from tests.data.conftest import dev


def lora_model(node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    """A finished job whose result is LoRA adapters; its id and the model asset's."""
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id, lora=True)
    node.jobs.tick()
    job = node.jobs.get(job_id)
    assert (job.status, job.error) == ("finished", None), job.error
    assert job.model_asset is not None
    return job_id, job.model_asset


def tar_names(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return set(tar.getnames())


def test_a_lora_job_registers_its_adapters_naming_the_base(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, model_id = lora_model(node, tmp_path, monkeypatch)
    spec = node.jobs.job_dir(job_id).spec()
    model = node.assets.get(model_id)
    assert node.catalog.adapter(model) == AdapterBase(spec.base_asset, spec.base_manifest)
    assert spec.base_asset in model.parents
    stored = node.catalog.stored_folder(model)
    assert not (stored / "config.json").exists()
    adapter_bytes = sum(p.stat().st_size for p in stored.rglob("*") if p.is_file())
    base_bytes = sum(p.stat().st_size for p in Path(spec.base_folder).rglob("*") if p.is_file())
    assert adapter_bytes < base_bytes / 2, (
        adapter_bytes,
        base_bytes,
    )  # tiny base: weights vs tokenizer
    assert "peft" in (stored / "README.md").read_text()  # the card says how to load it

    merged = node.catalog.folder(model)  # the plain model, merged once
    assert (merged / "config.json").is_file()
    assert node.catalog.folder(model) == merged
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = tokenizer("reverse abc", return_tensors="pt").input_ids
    with torch.no_grad():
        base_logits = AutoModelForCausalLM.from_pretrained(spec.base_folder)(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
    assert not torch.allclose(base_logits, merged_logits, atol=1e-4)  # the adapters are in it


def test_a_lora_model_downloads_as_adapters_or_merged(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, model_id = lora_model(node, tmp_path, monkeypatch)
    alice = dev(node, "alice").address
    adapters = node.model_downloads.tar(model_id, alice)
    merged = node.model_downloads.tar(model_id, alice, merged=True)
    try:
        names = tar_names(adapters)
        assert {"adapter_config.json", "adapter_model.safetensors", "cairn_adapter.json"} <= names
        assert "config.json" not in names
        assert {"config.json", "model.safetensors"} <= tar_names(merged)
        assert "adapter_config.json" not in tar_names(merged)
        assert merged.stat().st_size > adapters.stat().st_size
    finally:
        adapters.unlink()
        merged.unlink()


def test_a_job_trains_from_a_lora_model_as_a_whole_model(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, model_id = lora_model(node, tmp_path, monkeypatch)
    model = node.assets.get(model_id)
    alice = dev(node, "alice")
    (first,) = node.jobs.list_jobs()
    dataset = node.jobs.get(first.job_id).datasets[0].dataset
    recipe = load_recipe(
        f"name: again\nmethod: sft\nbase_model: {model_id}\ndatasets:\n  - dataset: {dataset}\n"
        "distributed:\n  rounds: 1\n  inner_steps: 1\nbudget:\n  max_tokens: '1000'\n"
    )
    job = node.jobs.create(alice.address, recipe)
    spec = node.jobs.job_dir(job.job_id).spec()
    assert spec.base_asset == model_id
    assert spec.base_manifest != node.catalog.metadata(model)["model"]["weights"]
    fetched = fetch_folder(node.store, spec.base_manifest, tmp_path / "workers-base")
    assert (fetched / "config.json").is_file()  # workers get the whole model, merged
    # the merged weights are gated as the model's, and shared with the job's workers
    for entry in node.store.get_json(spec.base_manifest)["files"].values():
        refs = {(r.scope, r.key) for r in node.assets.refs.of(entry["cid"])}
        assert (Scope.MODEL, str(model_id)) in refs and (Scope.JOB, job.job_id) in refs, refs


def test_the_api_sends_adapters_and_merged_on_request(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, model_id = lora_model(node, tmp_path, monkeypatch)
    with in_process(node, background=False) as client:
        api = node_client(client)
        sizes = {}
        for merged in (False, True):
            target = tmp_path / f"model-{merged}.tar"
            sizes[merged] = api.download_model(model_id, target, merged=merged)
            assert ("config.json" in tar_names(target)) is merged
        assert sizes[True] > sizes[False]
        refused = client.get(f"/api/v1/models/{model_id}/download", params={"merged": "maybe"})
        assert refused.status_code == 422


def test_the_model_page_says_it_is_adapters_over_its_base(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, model_id = lora_model(node, tmp_path, monkeypatch)
    base = node.jobs.job_dir(job_id).spec().base_asset
    with in_process(node, background=False) as client:
        page = client.get(f"/assets/{model_id}").text
        base_page = client.get(f"/assets/{base}").text
    assert 'data-testid="adapter"' in page and f'href="/assets/{base}"' in page
    assert f'href="/api/v1/models/{model_id}/download?merged=true"' in page
    assert 'data-testid="adapter"' not in base_page  # a whole model says nothing of adapters


def test_the_gateway_serves_a_lora_model_over_its_base_without_merging(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, model_id = lora_model(node, tmp_path, monkeypatch)
    spec = node.jobs.job_dir(job_id).spec()
    served = node.gateway.resolver.resolve(str(model_id))
    assert served.model.adapter is not None and served.model.folder == Path(spec.base_folder)
    base = node.gateway.resolver.resolve(str(spec.base_asset))
    params = SamplingParams(max_tokens=12, temperature=0.0)
    tuned = served.backend.complete(served.model, "reverse abc", params)
    plain = base.backend.complete(base.model, "reverse abc", params)
    tuned_text, plain_text = "".join(tuned), "".join(plain)
    assert tuned.completion_tokens > 0 and tuned_text != plain_text  # its adapters answer
    backend = served.backend
    assert isinstance(backend, TransformersBackend) and len(backend.resident.keys()) == 1
    assert not (node.catalog.cache_dir / "merged").exists()  # no merged copy on disk
