"""LoRA fine-tunes served over one resident base (cairn.serve.backends.lora): each answers as
peft's model of its adapters does, several share the base's memory and its decoding loop in one
batch, and an adapter that does not fit the base is refused without touching it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import PreTrainedModel

from cairn.core.errors import InvalidInput
from cairn.serve.backends import SamplingParams
from cairn.serve.backends.batching import BatchedSequence, BatchEngine
from cairn.serve.backends.lora import LoraSwitch, read_adapter
from cairn.serve.backends.transformers import CausalLMRunner
from cairn.train.adapter_folder import AdapterBase
from cairn.train.adapters import LoraSettings, add_lora, save_adapter
from tests.serve.test_batching import CPU, END, GREEDY, tiny_model

PROMPTS = [[5, 9, 17], [40, 41, 42, 43, 44, 45], [11]]


def adapter(tmp_path: Path, name: str, seed: int, targets: tuple[str, ...]) -> Path:
    """LoRA adapters on the tiny llama, moved well off their start, saved as a job saves them."""
    model = add_lora(
        tiny_model("llama"), LoraSettings(rank=4, alpha=8, dropout=0.0, target_modules=targets)
    )
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for param_name, param in model.named_parameters():
            if "lora_" in param_name:
                param.copy_(torch.randn_like(param) * 0.3)
    folder = tmp_path / name
    save_adapter(model, _NoTokenizer(), folder, AdapterBase(1, "bafkreibase"))
    return folder


class _NoTokenizer:
    def save_pretrained(self, folder: str) -> None:
        del folder


def peft_greedy(base: PreTrainedModel, folder: Path | None, prompt: list[int]) -> list[int]:
    """What transformers' generate on peft's model of the adapters (or the base) decodes."""
    model = PeftModel.from_pretrained(base, str(folder)).eval() if folder else base
    out = model.generate(
        input_ids=torch.tensor([prompt]),
        max_new_tokens=GREEDY.max_tokens,
        do_sample=False,
        eos_token_id=END,
        pad_token_id=0,
    )
    return [int(t) for t in out[0, len(prompt) :]]


def decode_all(engine: BatchEngine, jobs: list[tuple[list[int], str | None]]) -> list[list[int]]:
    """Every (prompt, adapter) submitted at once: one batch, a forward pass per adapter."""
    sequences = [BatchedSequence(p, GREEDY, {END}, CPU, key) for p, key in jobs]
    for one in sequences:
        engine.submit(one)
    return [list(engine.tokens(one)) for one in sequences]


def test_fine_tunes_over_one_base_answer_as_peft_does_in_one_batch(tmp_path: Path) -> None:
    folders = {
        "qv": adapter(tmp_path, "qv", 1, ("q_proj", "v_proj")),
        "mlp": adapter(tmp_path, "mlp", 2, ("gate_proj", "up_proj", "down_proj")),
    }
    runner = CausalLMRunner(tiny_model("llama"), CPU)
    for key, folder in folders.items():
        runner.adapters.ensure(key, folder)
    runner.adapters.ensure("qv", folders["qv"])  # again: loaded once
    engine = BatchEngine(runner, "tiny")
    jobs = [(p, key) for p in PROMPTS for key in (None, "qv", "mlp")]
    got = decode_all(engine, jobs)
    for (prompt, key), tokens in zip(jobs, got, strict=True):
        expected = peft_greedy(tiny_model("llama"), folders[key] if key else None, prompt)
        assert tokens == expected, (prompt, key)
    # the adapters change the answers, and the base's own stay the base's
    by_key = {key: [t for (_, k), t in zip(jobs, got, strict=True) if k == key] for key in folders}
    base = [t for (_, k), t in zip(jobs, got, strict=True) if k is None]
    assert by_key["qv"] != base and by_key["mlp"] != base and by_key["qv"] != by_key["mlp"]
    # one base: each adapted layer is wrapped once, holding the adapter that adapts it
    switches = [m for m in runner.module.modules() if isinstance(m, LoraSwitch)]
    assert len(switches) == 2 * 5  # two layers: q, v, gate, up, down
    assert all(len(s.adapters) == 1 for s in switches)


def test_an_adapter_that_does_not_fit_the_base_changes_nothing(tmp_path: Path) -> None:
    folder = adapter(tmp_path, "qv", 1, ("q_proj", "v_proj"))
    runner = CausalLMRunner(tiny_model("llama"), CPU)
    weights = read_adapter(folder, CPU)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "adapter_config.json").write_text((folder / "adapter_config.json").read_text())
    tensors = {}
    for path, (a, b) in weights.modules.items():
        tensors[f"base_model.model.{path}.lora_A.weight"] = a
        tensors[f"base_model.model.{path}.lora_B.weight"] = b
    last = sorted(weights.modules)[-1]
    tensors[f"base_model.model.{last}.lora_B.weight"] = torch.zeros(7, 4)  # out 7: not the base's
    save_file(tensors, str(wrong / "adapter_model.safetensors"))
    with pytest.raises(InvalidInput, match="the adapter's weights are for"):
        runner.adapters.ensure("wrong", wrong)
    assert not [m for m in runner.module.modules() if isinstance(m, LoraSwitch)]
    missing = dict(tensors)
    missing["base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight"] = torch.zeros(4, 64)
    missing["base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight"] = torch.zeros(64, 4)
    del missing[f"base_model.model.{last}.lora_B.weight"]
    save_file(missing, str(wrong / "adapter_model.safetensors"))
    with pytest.raises(InvalidInput, match="lacks half"):
        runner.adapters.ensure("wrong", wrong)
    (wrong / "adapter_config.json").write_text('{"peft_type": "PROMPT_TUNING"}')
    with pytest.raises(InvalidInput, match="only LoRA"):
        runner.adapters.ensure("wrong", wrong)
    runner.adapters.ensure("qv", folder)  # a good one still loads after


def test_adapters_load_while_the_loop_decodes(tmp_path: Path) -> None:
    """Wrapping layers waits for the running forward pass: answers stay exact throughout."""
    folders = [adapter(tmp_path, f"a{i}", i, ("q_proj", "v_proj", "o_proj")) for i in range(3)]
    runner = CausalLMRunner(tiny_model("llama"), CPU)
    engine = BatchEngine(runner, "tiny")
    long = SamplingParams(max_tokens=120, temperature=0.0)
    base_run = BatchedSequence([5, 6, 7], long, set(), CPU)
    engine.submit(base_run)
    loader = threading.Thread(
        target=lambda: [runner.adapters.ensure(str(f), f) for f in folders], daemon=True
    )
    loader.start()
    tokens = list(engine.tokens(base_run))
    loader.join(timeout=30)
    assert runner.adapters.loaded == {str(f) for f in folders}
    alone = CausalLMRunner(tiny_model("llama"), CPU)
    again = BatchedSequence([5, 6, 7], long, set(), CPU)
    other = BatchEngine(alone, "tiny-2")
    other.submit(again)
    assert tokens == list(other.tokens(again))  # the base's answer, untouched by the loads
