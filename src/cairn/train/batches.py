"""Records as model inputs: chat-formatted token ids and padded instruction batches.

Every causal-LM method writes a record with the tokenizer's chat template: the prompt as the
user's turn with the assistant header after it, then the response. Batches are built on the CPU
and moved to the model's device (`on_device`), so the same records give the same tensors on any
machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

Records = Sequence[Mapping[str, Any]]


def chat_ids(tokenizer: Any, prompt: str, response: str | None) -> tuple[list[int], list[int]]:
    """Token ids of the chat-formatted prompt (with the assistant header) and of the response."""
    user = [{"role": "user", "content": prompt}]
    prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    if response is None:
        return prompt_ids, []
    full = tokenizer.apply_chat_template(
        [*user, {"role": "assistant", "content": response}], tokenize=False
    )
    if full.startswith(prompt_text):  # tokenise the response alone: its ids start cleanly
        return prompt_ids, tokenizer(full[len(prompt_text) :], add_special_tokens=False)[
            "input_ids"
        ]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    return prompt_ids, full_ids[len(prompt_ids) :]


def instruction_batch(tokenizer: Any, records: Records, max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `labels` (-100 outside responses)."""
    rows: list[tuple[list[int], list[int]]] = []
    for record in records:
        prompt, response = chat_ids(tokenizer, record["prompt"], record["response"])
        # too long: keep the prompt's end (up to half the budget) and the response's start
        if len(prompt) + len(response) > max_length:
            prompt = prompt[-max(1, min(len(prompt), max_length // 2)) :]
            response = response[: max_length - len(prompt)]
        rows.append((prompt, response))
    width = max(len(p) + len(r) for p, r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)  # (B, T)
    for i, (p, r) in enumerate(rows):
        n = len(p) + len(r)
        ids[i, :n] = torch.tensor(p + r)
        mask[i, :n] = 1
        labels[i, len(p) : n] = torch.tensor(r, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def device_of(model: Any) -> torch.device:
    """The device `model`'s parameters are on."""
    device: torch.device = next(model.parameters()).device
    return device


def on_device(model: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`batch` on the model's device (batches are built on the CPU)."""
    device = device_of(model)
    return {k: v.to(device) for k, v in batch.items()}
