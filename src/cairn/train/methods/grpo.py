"""grpo: DeepSeek-R1's GRPO on verifiable records (`prompt`, `answer`) with built-in rewards.

For each prompt the model samples `num_generations` completions; the built-in rewards of
`cairn.core.rewards` score them against the record's answer, and each completion's advantage is
its distance from its group's mean in units of the group's spread. Written here rather than
through trl's GRPOTrainer: the trainer owns its optimizer, scheduler, data loader and reference
model for a whole run, while a round needs exactly H steps from given weights, replayable from a
seed; the objective is twenty lines. One optimizer step per generation batch (trl's
num_iterations=1), so the clipped ratio is 1 in value but carries the gradient, as in trl; KL
(k3 estimator) to `reference`, by default the model as handed in (for LoRA, the model with its
adapter switched off). Held out: the mean reward and the accuracy of greedy completions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch

from cairn.core.recipe import SPECS, GrpoHyperparameters, NumericAnswerReward
from cairn.core.rewards import exact_answer, numeric_answer, score
from cairn.train.adapters import is_peft
from cairn.train.batches import Records, chat_ids, device_of
from cairn.train.methods.base import AdamW, Method, Run, StepLoss

CLIP_EPSILON = 0.2  # GRPO's ratio clip, as DeepSeekMath and trl


def completion_mask(completions: torch.Tensor, eos_id: int) -> torch.Tensor:
    """1 for each completion token up to and including its first end-of-sequence token."""
    is_eos = completions == eos_id  # (G, C)
    first = torch.where(
        is_eos.any(dim=1),
        is_eos.int().argmax(dim=1),
        torch.full_like(is_eos[:, 0], 10**9, dtype=torch.long),
    )  # (G,)
    positions = torch.arange(completions.size(1), device=completions.device).expand_as(
        completions
    )  # (G, C)
    return (positions <= first.unsqueeze(1)).long()


def completion_logprobs(
    model: Any, sequences: torch.Tensor, mask: torch.Tensor, prompt_len: int, temperature: float
) -> torch.Tensor:
    """Log-probability of each completion token under `model`, at the sampling temperature."""
    logits = model(input_ids=sequences, attention_mask=mask).logits  # (G, P+C, V)
    logits = logits[:, prompt_len - 1 : -1] / temperature  # (G, C, V): predicts the completion
    targets = sequences[:, prompt_len:]  # (G, C)
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def grpo_loss(
    logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """The GRPO objective to minimise for one group (DeepSeekMath eq. 3, one iteration).

    logp, ref_logp, mask: (G, C); advantages: (G,). Per token, -min(r*A, clip(r)*A) + beta*KL,
    r = pi / pi_old with pi_old = pi detached; averaged over each completion, then the group.
    """
    ratio = torch.exp(logp - logp.detach())  # (G, C), 1 in value
    adv = advantages.unsqueeze(1)  # (G, 1)
    clipped = torch.clamp(ratio, 1 - CLIP_EPSILON, 1 + CLIP_EPSILON)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (G, C)
    if ref_logp is not None and beta > 0:
        diff = ref_logp - logp  # k3 estimator of KL(pi || ref), unbiased and >= 0
        per_token = per_token + beta * (torch.exp(diff) - diff - 1)
    m = mask.float()
    return ((per_token * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)).mean()


def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Each reward's distance from its group's mean, in units of the group's spread."""
    return (rewards - rewards.mean()) / (rewards.std() + 1e-4)


def _prompt_ids(tokenizer: Any, prompt: str, max_prompt_length: int) -> torch.Tensor:
    ids, _ = chat_ids(tokenizer, prompt, None)
    return torch.tensor([ids[-max_prompt_length:]])  # (1, P): the prompt's end is kept


def sample_group(
    model: Any, tokenizer: Any, prompt: str, hparams: GrpoHyperparameters, n: int, greedy: bool
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`n` completions of one prompt: the full sequences, their attention mask, the prompt length."""
    device = device_of(model)
    prompt_ids = _prompt_ids(tokenizer, prompt, hparams.max_prompt_length).to(device)  # (1, P)
    sampling: dict[str, Any] = (
        {"do_sample": False}
        if greedy
        else {"do_sample": True, "temperature": hparams.temperature, "top_k": 0, "top_p": 1.0}
    )
    was_training = model.training
    model.eval()
    with torch.no_grad():
        sequences = model.generate(
            input_ids=prompt_ids.expand(n, -1),
            attention_mask=torch.ones((n, prompt_ids.size(1)), dtype=torch.long, device=device),
            max_new_tokens=hparams.max_completion_length,
            min_new_tokens=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )  # (n, P+C)
    model.train(was_training)
    prompt_len = prompt_ids.size(1)
    mask = completion_mask(sequences[:, prompt_len:], tokenizer.eos_token_id)  # (n, C)
    full_mask = torch.cat(
        [torch.ones((n, prompt_len), dtype=torch.long, device=device), mask], dim=1
    )
    return sequences, full_mask, prompt_len


def _completion_texts(
    tokenizer: Any, sequences: torch.Tensor, mask: torch.Tensor, prompt_len: int
) -> tuple[list[str], list[int]]:
    completion = sequences[:, prompt_len:]  # (G, C)
    keep = mask[:, prompt_len:].bool()  # (G, C)
    texts = [
        tokenizer.decode(row[k].tolist(), skip_special_tokens=True)
        for row, k in zip(completion, keep, strict=True)
    ]
    return texts, keep.sum(dim=1).tolist()


class Grpo(Method[GrpoHyperparameters]):
    """Group-relative policy optimisation with built-in rewards."""

    spec = SPECS["grpo"]

    def optimizer(self, hp: GrpoHyperparameters) -> AdamW:
        # the grpo recipe sets no weight decay and no warmup: it trains without either
        return AdamW(hp.learning_rate, weight_decay=0.0, warmup_ratio=0.0)

    def step_loss(self, run: Run, hp: GrpoHyperparameters) -> StepLoss:
        return _grpo_step(run.model, run.tokenizer, hp, run.reference)

    def evaluate(
        self, run: Run, hp: GrpoHyperparameters, records: Records, batch_size: int
    ) -> dict[str, float]:
        """Mean `reward` and `accuracy` of greedy completions (numeric_answer's if rewarded)."""
        return _evaluate(run.model, run.tokenizer, records, hp)


def _grpo_step(
    model: Any, tokenizer: Any, hparams: GrpoHyperparameters, reference: Any
) -> StepLoss:
    """GRPO's loss over a batch of prompts, each sampled as a group of completions."""
    if reference is None and hparams.beta > 0 and not is_peft(model):
        reference = copy.deepcopy(model)  # the policy as this round received it
    if reference is not None:
        reference.eval()

    def reference_logprobs(seqs: torch.Tensor, mask: torch.Tensor, plen: int) -> torch.Tensor:
        with torch.no_grad():
            if reference is not None:
                return completion_logprobs(reference, seqs, mask, plen, hparams.temperature)
            with model.disable_adapter():  # LoRA: the base model is the reference
                return completion_logprobs(model, seqs, mask, plen, hparams.temperature)

    def grpo_step(batch: list[Mapping[str, Any]]) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros((), device=device_of(model))
        rewards_seen: list[float] = []
        for record in batch:
            seqs, mask, plen = sample_group(
                model, tokenizer, record["prompt"], hparams, hparams.num_generations, greedy=False
            )  # (G, P+C), (G, P+C)
            texts, counts = _completion_texts(tokenizer, seqs, mask, plen)
            rewards = torch.tensor(
                score(texts, [record["answer"]] * len(texts), hparams.rewards, counts),
                device=seqs.device,
            )  # (G,)
            rewards_seen.extend(rewards.tolist())
            logp = completion_logprobs(model, seqs, mask, plen, hparams.temperature)  # (G, C)
            ref = reference_logprobs(seqs, mask, plen) if hparams.beta > 0 else None
            loss = grpo_loss(logp, ref, group_advantages(rewards), mask[:, plen:], hparams.beta)
            total = total + loss / len(batch)
        return total, {"reward": sum(rewards_seen) / len(rewards_seen)}

    return grpo_step


def _evaluate(
    model: Any, tokenizer: Any, records: Records, hparams: GrpoHyperparameters
) -> dict[str, float]:
    """One greedy completion per record: the mean reward and the share answered right."""
    numeric = next((r for r in hparams.rewards if isinstance(r, NumericAnswerReward)), None)
    tolerance = numeric.params.tolerance if numeric is not None else 0.0
    reward_total, correct = 0.0, 0.0
    for record in records:
        seqs, mask, plen = sample_group(model, tokenizer, record["prompt"], hparams, 1, greedy=True)
        texts, counts = _completion_texts(tokenizer, seqs, mask, plen)
        reward_total += score(texts, [record["answer"]], hparams.rewards, counts)[0]
        if numeric is not None:
            correct += numeric_answer(texts[0], record["answer"], tolerance)
        else:
            correct += exact_answer(texts[0], record["answer"])
    return {"reward": reward_total / len(records), "accuracy": correct / len(records)}
