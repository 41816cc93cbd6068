"""The default backend: Hugging Face folders run in process with PyTorch.

- Causal LMs serve chat and completions. A chat prompt is the tokenizer's chat template with the
  generation prompt added; a tokenizer without a template gets `plain_chat_prompt` instead.
  A model's concurrent generations are batched continuously by its `BatchEngine` (`batching`):
  a prompt is read in one forward pass when it joins, then each step is one forward pass for
  the next token of every sequence, each over its own KV cache (`CausalLMRunner`).
  Temperature 0 is greedy; otherwise softmax(logits / temperature), cut to the top_p nucleus,
  sampled with the generation's own `torch.Generator` (seeded: same seed and params, same text
  on one device, whatever else runs). An end-of-sequence token finishes with "stop", max_tokens
  with "length", a stop string with "stop" and the text cut before it. `completion_tokens`
  counts every token read, the end token and the token that completed a stop string included.
- Encoders serve embeddings: mean pooling of the last hidden state over the attention mask,
  L2-normalised (the all-MiniLM-L6-v2 recipe), texts truncated to the context. An encoder whose
  config names a sequence-classification architecture also serves classifications: softmax
  over its labels (`config.id2label`), from the same weights, one batch of texts at a time.

Weights stay in memory under a budget (`ResidentModels`); an evicted causal LM's loop thread
ends with its last generation. A LoRA fine-tune is served over its base, loaded once for all of
its fine-tunes, which share its loop: each step runs one forward pass per adapter (`lora`).
Float32; CUDA when there is one. A generation commits to the hidden states behind its tokens
(`cairn.verify.inference`); `verify` reads a transcript in one pass to check such a commitment.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import (
    AttentionInterface,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)

from cairn.core.errors import InvalidInput
from cairn.serve.backends.base import (
    Backend,
    Classification,
    Generation,
    SamplingParams,
    ServedModel,
    check_context,
    check_messages,
    check_texts,
    plain_chat_prompt,
)
from cairn.serve.backends.batching import BatchedGeneration, BatchedSequence, BatchEngine
from cairn.serve.backends.hf_folder import ModelFolder, folder_path, read_folder, unservable
from cairn.serve.backends.kernels import SequenceKV, pack_linears, ragged_attention
from cairn.serve.backends.lora import AdapterSet
from cairn.serve.backends.resident import ResidentModels
from cairn.verify.inference import InferenceVerdict, Transcript, check

EMBED_BATCH = 32  # texts per forward pass when embedding or classifying
RAGGED_TYPES = ("llama", "mistral", "qwen2", "qwen3")  # tested with `ragged_attention` for theirs
RAGGED = "cairn_ragged"  # its name among transformers' attention functions
ROW_MULTIPLE = 4  # a decoding step's rows are padded to a multiple of this (`CausalLMRunner`)

AttentionInterface.register(RAGGED, ragged_attention)


@dataclass
class _Network:
    """A model's weights on one device: a causal LM's decoding loop, or an encoder's lock."""

    module: PreTrainedModel
    device: torch.device
    bytes: int
    engine: BatchEngine | None = None  # causal LMs only
    lock: threading.Lock = field(default_factory=threading.Lock)


class TransformersBackend(Backend):
    """Hugging Face folders in process; models loaded on first use, kept under a memory budget."""

    name = "transformers"

    def __init__(
        self, memory_budget_bytes: int, device: str | None = None, *, commit: bool = True
    ) -> None:
        self.commit = commit  # generations commit to their states (bench/verify_inference.py)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.resident: ResidentModels[_Network] = ResidentModels(
            memory_budget_bytes, size_of=lambda net: net.bytes
        )
        self._folders: dict[Path, ModelFolder] = {}
        self._folders_lock = threading.Lock()

    # --- the interface ------------------------------------------------------------------------

    def capabilities(self, model: ServedModel) -> set[str]:
        """causal-lm: chat, completions; encoder: embeddings (+ classifications with a head)."""
        kind = self._folder(model).kind
        if kind == "causal-lm":
            return {"chat", "completions"}
        return {"embeddings", "classifications"} if kind == "classifier" else {"embeddings"}

    def chat(
        self, model: ServedModel, messages: list[dict[str, str]], params: SamplingParams
    ) -> Generation:
        """Start a chat completion over the chat template (or `plain_chat_prompt`)."""
        self.require(model, "chat")
        check_messages(messages)
        folder = self._folder(model)
        tokenizer = folder.tokenizer
        with folder.tokenizer_lock:
            if tokenizer.chat_template:
                text = tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
                ids = tokenizer(str(text), add_special_tokens=False)["input_ids"]
            else:
                ids = tokenizer(plain_chat_prompt(messages))["input_ids"]
        return self._generation(model, folder, list(ids), params)

    def complete(self, model: ServedModel, prompt: str, params: SamplingParams) -> Generation:
        """Start a text completion of `prompt` (with the special tokens its tokenizer adds)."""
        self.require(model, "completions")
        folder = self._folder(model)
        with folder.tokenizer_lock:
            ids = list(folder.tokenizer(prompt)["input_ids"])
        if not ids and folder.tokenizer.bos_token_id is not None:
            ids = [folder.tokenizer.bos_token_id]  # an empty prompt: start from the beginning
        if not ids:
            raise InvalidInput(f"model {model.id}: the prompt is empty")
        return self._generation(model, folder, ids, params)

    def embed(self, model: ServedModel, texts: list[str]) -> tuple[list[list[float]], int]:
        """Mean-pooled, L2-normalised last hidden states, one per text; and the tokens read."""
        self.require(model, "embeddings")
        check_texts(texts)
        folder, net = self._folder(model), self._network(model)
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), EMBED_BATCH):
            batch = self._encode(folder, texts[start : start + EMBED_BATCH], net.device)
            mask = batch["attention_mask"]  # (B, T)
            with net.lock, torch.inference_mode():
                if folder.kind == "classifier":
                    hidden = net.module(**batch, output_hidden_states=True).hidden_states[-1]
                else:
                    hidden = net.module(**batch).last_hidden_state  # (B, T, H)
                weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, H)
                vectors += F.normalize(pooled, p=2, dim=1).cpu().tolist()
            tokens += int(mask.sum())
        return vectors, tokens

    def classify(self, model: ServedModel, texts: list[str]) -> tuple[list[Classification], int]:
        """The softmax over the model's labels for each text; and the tokens read."""
        self.require(model, "classifications")
        check_texts(texts)
        folder, net = self._folder(model), self._network(model)
        labels = folder.labels
        results: list[Classification] = []
        tokens = 0
        for start in range(0, len(texts), EMBED_BATCH):
            batch = self._encode(folder, texts[start : start + EMBED_BATCH], net.device)
            with net.lock, torch.inference_mode():
                probs = torch.softmax(net.module(**batch).logits.float(), dim=-1)  # (B, labels)
            for row in probs.cpu().tolist():
                scores = dict(zip(labels, row, strict=True))
                top = max(range(len(row)), key=row.__getitem__)
                results.append(Classification(labels[top], row[top], scores))
            tokens += int(batch["attention_mask"].sum())
        return results, tokens

    def context_length(self, model: ServedModel) -> int:
        """The config's position limit, or the tokenizer's if that is smaller."""
        return self._folder(model).context

    def verify(self, model: ServedModel, transcript: Transcript) -> InferenceVerdict:
        """Read a generation's transcript on `model` in one pass; check its commitment."""
        if not transcript.prompt or not transcript.completion:
            raise InvalidInput("a transcript holds at least one prompt and one completion token")
        ids = [*transcript.prompt, *transcript.completion[:-1]]
        check_context(model, len(ids), 1, self._folder(model).context)
        self.require(model, "completions")
        runner = self._network(model).engine.runner  # type: ignore[union-attr]
        assert isinstance(runner, CausalLMRunner)
        adapter = None
        if model.adapter is not None:
            adapter = str(model.adapter.resolve())
            runner.adapters.ensure(adapter, model.adapter)
        states = runner.replay(ids, adapter)[len(transcript.prompt) - 1 :]
        return check(transcript.commitment, states)

    def count_tokens(self, model: ServedModel, text: str) -> int:
        """Tokens of `text` alone, without the special tokens a prompt adds."""
        folder = self._folder(model)
        with folder.tokenizer_lock:
            return len(folder.tokenizer(text, add_special_tokens=False)["input_ids"])

    def input_tokens(self, model: ServedModel, texts: list[str]) -> int:
        """Exactly what `embed` and `classify` count: each text with its special tokens,
        truncated to the context, without the padding a batch adds."""
        check_texts(texts)  # as embed and classify do: the tokenizer fails on an empty batch
        folder = self._folder(model)
        with folder.tokenizer_lock:
            ids = folder.tokenizer(list(texts), truncation=True, max_length=folder.context)
        return sum(len(one) for one in ids["input_ids"])

    # --- loading ------------------------------------------------------------------------------

    def _folder(self, model: ServedModel) -> ModelFolder:
        path = folder_path(model)
        with self._folders_lock:
            if path not in self._folders:
                self._folders[path] = read_folder(model, path)
            return self._folders[path]

    def _network(self, model: ServedModel) -> _Network:
        folder = self._folder(model)
        path = folder_path(model)
        return self.resident.get(
            path, lambda: self._load(model, path, folder.kind), f"model {model.id}"
        )

    def _load(self, model: ServedModel, path: Path, kind: str) -> _Network:
        loader = {
            "causal-lm": AutoModelForCausalLM,
            "encoder": AutoModel,
            "classifier": AutoModelForSequenceClassification,
        }[kind]
        try:
            module = loader.from_pretrained(str(path), dtype=torch.float32)
        except Exception as exc:  # damaged weights raise whatever their format's reader does
            raise unservable(model, f"its weights do not load as {kind}", exc) from exc
        module.to(self.device).eval()
        engine = None
        if kind == "causal-lm":  # before sizing: packing changes what the weights take
            engine = BatchEngine(CausalLMRunner(module, self.device), f"model {model.id}")
        size = sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
        return _Network(module=module, device=self.device, bytes=size, engine=engine)

    # --- helpers ------------------------------------------------------------------------------

    def _encode(self, folder: ModelFolder, texts: list[str], device: torch.device) -> Any:
        with folder.tokenizer_lock:
            batch = folder.tokenizer(
                texts, padding=True, truncation=True, max_length=folder.context, return_tensors="pt"
            )
        return batch.to(device)

    def _generation(
        self, model: ServedModel, folder: ModelFolder, ids: list[int], params: SamplingParams
    ) -> TransformersGeneration:
        check_context(model, len(ids), params.max_tokens, folder.context)
        net = self._network(model)
        assert net.engine is not None  # a causal LM's: `require` checked
        config_eos = net.module.generation_config.eos_token_id
        eos = {folder.tokenizer.eos_token_id}
        eos |= set(config_eos) if isinstance(config_eos, list) else {config_eos}
        eos.discard(None)

        def decode(tokens: Sequence[int]) -> str:
            text = folder.tokenizer.decode(
                list(tokens), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            return str(text)

        adapter = None
        if model.adapter is not None:  # a LoRA fine-tune: its adapters over the loaded base
            adapter = str(model.adapter.resolve())
            runner = net.engine.runner
            assert isinstance(runner, CausalLMRunner)
            try:
                runner.adapters.ensure(adapter, model.adapter)
            except InvalidInput as exc:
                raise InvalidInput(f"model {model.id} cannot be served: {exc.message}") from None
        ends = {int(e) for e in eos}
        sequence = BatchedSequence(ids, params, ends, net.device, adapter, commit=self.commit)
        return TransformersGeneration(net.engine, sequence, decode)


class TransformersGeneration(BatchedGeneration):
    """A generation on one of this backend's causal LMs, batched by its model's engine."""


class CausalLMRunner:
    """A causal LM as its `BatchEngine` drives it: a prompt read alone, then one forward pass
    for the next token of every sequence in a step.

    Architectures in `RAGGED_TYPES` whose attention covers the whole context run it through
    `ragged_attention`, each sequence over its own `SequenceKV`, and a step's rows are padded
    to a multiple of `ROW_MULTIPLE` (see `batching` on why): on a CPU with oneDNN, over weights
    laid out for its kernel (`pack_linears`), where four rows cost no more than one. Any other
    architecture (a sliding window, say) decodes each sequence alone with its own cache.
    """

    def __init__(self, module: PreTrainedModel, device: torch.device) -> None:
        self.module, self.device = module, device
        config = module.config
        forward = inspect.signature(module.forward).parameters
        self.cache_keyword = "cache" if "cache" in forward else "past_key_values"  # 5.x: cache
        self.keep: dict[str, int] = {"logits_to_keep": 1} if "logits_to_keep" in forward else {}
        self.pad = int(config.pad_token_id or 0)  # padding rows' input; their output is dropped
        layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
        window = getattr(config, "sliding_window", None) and getattr(
            config, "use_sliding_window", 1
        )
        self.ragged = bool(
            config.model_type in RAGGED_TYPES
            and getattr(module, "_supports_attention_backend", False)
            and layer_types == {"full_attention"}
            and not window
        )
        self.layers = int(config.num_hidden_layers) if self.ragged else 0
        if self.ragged:
            module.set_attn_implementation(RAGGED)
            if device.type == "cpu" and torch.backends.mkldnn.is_available():
                pack_linears(module)
        self.adapters = AdapterSet(module, device)  # LoRA fine-tunes served over this model
        # the output head's input on each call: the last hidden state behind each row's logits
        self._states: list[torch.Tensor] = []
        head = module.get_output_embeddings()
        assert head is not None  # a causal LM's
        head.register_forward_pre_hook(self._record)

    def prefill(self, sequence: BatchedSequence) -> torch.Tensor:
        """The prompt through the model alone, into a new cache; the next logits, (V,)."""
        self._states.clear()
        with self.adapters.lock:
            self.adapters.active.key = sequence.adapter
            return self._prefill(sequence)

    def decode(self, sequences: list[BatchedSequence]) -> torch.Tensor:
        """Each sequence's `last` token at its next position, in one padded batch; (n, V). The
        sequences share one adapter (the engine groups them so)."""
        self._states.clear()
        with self.adapters.lock:
            self.adapters.active.key = sequences[0].adapter
            return self._decode(sequences)

    def states(self, n: int) -> torch.Tensor:
        """The last hidden states behind the last call's first `n` rows, (n, width) float32."""
        return torch.cat(self._states)[:n].float().cpu()

    def replay(self, ids: list[int], adapter: Hashable | None) -> torch.Tensor:
        """The last hidden state at every position of `ids` read in one pass, (T, width)."""
        with self.adapters.lock, torch.inference_mode():
            self.adapters.active.key = adapter
            tokens = torch.tensor([ids], device=self.device)  # (1, T)
            inputs: dict[str, Any] = {"input_ids": tokens, "use_cache": False}
            if self.ragged:
                inputs["position_ids"] = torch.arange(len(ids), device=self.device)[None]
                inputs["cairn_kv"] = [SequenceKV(self.layers)]
            states = self.module.base_model(**inputs).last_hidden_state  # (1, T, width)
            return states[0].float().cpu()

    def _record(self, head: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self._states.append(args[0][:, -1].detach())  # (B, width): each row's last position

    def _prefill(self, sequence: BatchedSequence) -> torch.Tensor:
        ids = torch.tensor([sequence.prompt], device=self.device)  # (1, T)
        if not self.ragged:
            return self._alone(sequence, ids)[0]
        sequence.cache = SequenceKV(self.layers)
        sequence.length = ids.shape[1]
        positions = torch.arange(ids.shape[1], device=self.device)[None]  # (1, T)
        return self._forward(ids, positions, [sequence.cache])[0]

    def _decode(self, sequences: list[BatchedSequence]) -> torch.Tensor:
        if not self.ragged:
            lasts = [torch.tensor([[s.last]], device=self.device) for s in sequences]  # (1, 1)
            return torch.cat([self._alone(s, ids) for s, ids in zip(sequences, lasts, strict=True)])
        n = len(sequences)
        rows = -(-n // ROW_MULTIPLE) * ROW_MULTIPLE
        ids = torch.full((rows, 1), self.pad, device=self.device)  # (B, 1)
        positions = torch.zeros((rows, 1), dtype=torch.long, device=self.device)
        ids[:n, 0] = torch.tensor([s.last for s in sequences])
        positions[:n, 0] = torch.tensor([s.length for s in sequences])
        for sequence in sequences:
            sequence.length += 1
        return self._forward(ids, positions, [s.cache for s in sequences])[:n]

    def _forward(
        self, ids: torch.Tensor, positions: torch.Tensor, caches: list[SequenceKV]
    ) -> torch.Tensor:
        inputs = {"input_ids": ids, "position_ids": positions, "cairn_kv": caches}
        return self.module(**inputs, use_cache=False, **self.keep).logits[:, -1]  # (B, V)

    def _alone(self, sequence: BatchedSequence, ids: torch.Tensor) -> torch.Tensor:
        """`ids` (1, T) after the sequence's transformers cache; the next logits, (1, V)."""
        kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": True, **self.keep}
        if sequence.cache is not None:
            kwargs[self.cache_keyword] = sequence.cache
        out = self.module(**kwargs)
        sequence.cache = getattr(out, self.cache_keyword)
        sequence.length += ids.shape[1]
        return out.logits[:, -1]
