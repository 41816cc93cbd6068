"""Verified inference against a gateway that serves another model than it advertises.

The advertised model is a LoRA fine-tune (adapters trained a few dozen steps on toy arithmetic
records) over a base: SmolLM2-135M-Instruct, or a tiny Llama with `--quick`. The transformers
backend serves each of SAMPLE chat requests (sampled, seeded, up to 64 tokens) with, in turn:

- `honest`: the advertised fine-tune;
- `other_checkpoint`: another fine-tune of the same base and size (other adapters);
- `base`: the base instead of the fine-tune;
- `int8`, `int4`: the fine-tune merged and its linear weights rounded to 8 or 4 bits per row.

Each generation's commitment (`cairn.verify.inference`) is checked by reading its transcript on
the advertised model in one pass, as `cairn verify receipts` does. Figures:
- `inference_detection_rate_<substitute>`: share of the sampled receipts that fail; the overall
  `inference_detection_rate` over every substitute's;
- `inference_false_positive_rate`: honest receipts that fail (goal 0);
- `commitment_bytes_per_32_tokens`: the bytes of each full chunk of 32 tokens in the sample (a
  5-byte header per commitment aside), and `commitment_bytes_per_answer`, the mean encoded
  size of an answer's commitment (a short answer pays for a whole chunk);
- `validator_overhead`: validation CPU time over serving CPU time for the honest sample, with the
  spread over receipts;
- `serving_commit_overhead`: serving CPU time with commitments over without, minus one (the
  same greedy chats, alternating which goes first), with the spread;
- `honest_relative_max` and `relative_min_<substitute>`: the margin on each side of the
  tolerance (the worst honest error, the least substitute's).

    python bench/verify_inference.py --quick   # a tiny Llama: about a minute
    python bench/verify_inference.py           # SmolLM2-135M-Instruct: several minutes
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch: the machine is shared

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cairn.serve.backends import SamplingParams, ServedModel
from cairn.serve.backends.transformers import TransformersBackend
from cairn.train.adapter_folder import AdapterBase
from cairn.train.adapters import LoraSettings, add_lora, save_adapter
from cairn.train.tiny import tiny_causal_lm
from cairn.verify.inference import TOLERANCE, Commitment, Transcript

SUBSTITUTES = ("other_checkpoint", "base", "int8", "int4")
QUESTIONS = [
    f"What is {a} plus {b}? Explain it step by step."
    for a, b in zip(range(3, 40, 3), range(7, 90, 7), strict=False)
]
RECORDS = [
    f"Question: what is {a} plus {b}? Answer: {a + b}." for a in range(12) for b in range(12)
]


def base_folder(quick: bool, root: Path) -> Path:
    """The base model's Hugging Face folder."""
    if quick:
        model, tokenizer = tiny_causal_lm(seed=0, hidden_size=64, layers=4, heads=4)
        model.save_pretrained(root / "base")
        tokenizer.save_pretrained(root / "base")
        return root / "base"
    from cairn.train import base_models
    from cairn.train.weights import base_model_folder

    cache = Path(os.environ.get("CAIRN_BENCH_CACHE", Path.home() / ".cache" / "cairn-bench"))
    return base_model_folder(base_models.find("SmolLM2-135M-Instruct"), cache)


def fine_tune(base: Path, out: Path, seed: int, steps: int) -> Path:
    """LoRA adapters on q/v projections trained `steps` steps on toy records; their folder."""
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    settings = LoraSettings(rank=8, alpha=16, dropout=0.0, target_modules=("q_proj", "v_proj"))
    peft = add_lora(model, settings, seed=seed)
    optimizer = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=2e-3)
    order = torch.randperm(len(RECORDS), generator=torch.Generator().manual_seed(seed))
    peft.train()
    for step in range(steps):
        batch = [RECORDS[int(i)] for i in order[step * 4 : step * 4 + 4]]
        ids = tokenizer(batch, return_tensors="pt", padding=True)
        loss = peft(**ids, labels=ids["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    save_adapter(peft, tokenizer, out, AdapterBase(1, "bafkreibench"))
    return out


def quantised(base: Path, adapter: Path, out: Path, bits: int) -> Path:
    """The fine-tune merged, every linear weight rounded to `bits` bits per output row."""
    from peft import PeftModel

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    top = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for module in merged.modules():
            if isinstance(module, torch.nn.Linear):
                scale = module.weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / top
                module.weight.copy_((module.weight / scale).round().clamp(-top, top) * scale)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def serve(backend: TransformersBackend, model: ServedModel, i: int) -> tuple[Transcript, float]:
    """One sampled chat; its transcript and the serving CPU seconds."""
    params = SamplingParams(max_tokens=64, temperature=0.8, seed=100 + i)
    started = time.process_time()
    generation = backend.chat(
        model, [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], params
    )
    "".join(generation)
    made = generation.transcript()
    assert made is not None
    return made, time.process_time() - started


def run(quick: bool, sample: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="cairn-bench-inference-"))
    base = base_folder(quick, root)
    steps = 30 if quick else 24
    tuned = fine_tune(base, root / "tuned", seed=1, steps=steps)
    models = {
        "honest": ServedModel("tuned", base, "causal-lm", adapter=tuned),
        "other_checkpoint": ServedModel(
            "other", base, "causal-lm", adapter=fine_tune(base, root / "other", seed=2, steps=steps)
        ),
        "base": ServedModel("base", base, "causal-lm"),
        "int8": ServedModel("int8", quantised(base, tuned, root / "int8", 8), "causal-lm"),
        "int4": ServedModel("int4", quantised(base, tuned, root / "int4", 4), "causal-lm"),
    }
    advertised = models["honest"]
    backend = TransformersBackend(memory_budget_bytes=8 << 30)
    out: dict[str, Any] = {}
    ratios: list[float] = []
    sizes: list[int] = []  # bytes of each full chunk
    answers: list[int] = []  # bytes of each honest answer's commitment
    caught: list[float] = []
    began = time.perf_counter()
    for name, model in models.items():
        failed, relatives = 0, []
        for i in range(sample):
            transcript, served = serve(backend, model, i)
            started = time.process_time()
            verdict = backend.verify(advertised, transcript)
            checked = time.process_time() - started
            failed += not verdict.ok
            relatives.append(verdict.relative)
            if name == "honest":
                ratios.append(checked / served)
                encoded = transcript.commitment.encode()
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                answers.append(len(raw))
                full = [c for c in transcript.commitment.chunks if c.positions == 32]
                sizes.extend(len(Commitment(1, (c,)).encode_bytes()) - 5 for c in full)
        if name == "honest":
            out["inference_false_positive_rate"] = failed / sample
            out["honest_relative_max"] = float(f"{max(relatives):.3g}")
        else:
            out[f"inference_detection_rate_{name}"] = failed / sample
            out[f"relative_min_{name}"] = float(f"{min(relatives):.3g}")
            caught.append(failed / sample)
        print(f"{name:>18}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    out["inference_detection_rate"] = round(statistics.mean(caught), 4)
    out["commitment_bytes_per_32_tokens"] = round(statistics.mean(sizes), 1) if sizes else None
    out["commitment_bytes_per_answer"] = round(statistics.mean(answers), 1)
    out["validator_overhead"] = round(statistics.median(ratios), 4)
    out["validator_overhead_spread"] = round(max(ratios) - min(ratios), 4)
    plain = TransformersBackend(memory_budget_bytes=8 << 30, commit=False)
    greedy = SamplingParams(max_tokens=64, temperature=0.0)
    costs: list[float] = []
    for i in range(sample):
        seconds = {}
        for which in (backend, plain) if i % 2 else (plain, backend):
            started = time.process_time()
            question = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
            "".join(which.chat(advertised, question, greedy))
            seconds[which is backend] = time.process_time() - started
        costs.append(seconds[True] / seconds[False] - 1)
    out["serving_commit_overhead"] = round(statistics.median(costs), 4)
    out["serving_commit_overhead_spread"] = round(max(costs) - min(costs), 4)
    out["inference_tolerance"] = TOLERANCE
    out["inference_sample"] = sample
    out["inference_model"] = "tiny-llama" if quick else "SmolLM2-135M-Instruct"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny Llama instead of SmolLM2")
    parser.add_argument("--sample", type=int, help="receipts per model (default 8 quick, 12)")
    args = parser.parse_args()
    out = run(args.quick, args.sample or (8 if args.quick else 12))
    for key, value in out.items():
        print(f"{key:>40}: {value}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
