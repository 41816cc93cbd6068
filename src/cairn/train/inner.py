"""A worker's inner loop: H optimizer steps on its shard, for every recipe method.

One DiLoCo round on a worker: load the global parameters, run `inner_train` for H steps, send
back `InnerResult.params` (for LoRA only the adapter, and for a LoRA classifier its head too),
which `cairn.core.diloco.outer_step` turns into a pseudo-gradient.

- `sft`, `lora`: causal LM on instruction records (`prompt`, `response`), written with the
  tokenizer's chat template; the loss is the cross-entropy of the response tokens only.
- `classify`: an encoder with a classification head on (`text`, `label`) records; `labels`
  (the dataset's label list, in the head's order) maps each label to its class index.
- `distill`: the student learns the teacher's softened distribution on instruction records,
  alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(response); teacher and student
  share one tokenizer.
- `grpo`: DeepSeek-R1's GRPO on verifiable records (`prompt`, `answer`) with the built-in
  rewards of `cairn.core.rewards`. Written here rather than through trl's GRPOTrainer: the
  trainer owns its optimizer, scheduler, data loader and reference model for a whole run, while
  a round needs exactly H steps from given weights, replayable from a seed; the objective is
  twenty lines. One optimizer step per generation batch (trl's num_iterations=1), so the clipped
  ratio is 1 in value but carries the gradient, as in trl; KL (k3 estimator) to `reference`,
  by default the model as handed in (for LoRA, the model with its adapter switched off).

Every method uses AdamW with the recipe's learning rate, linear warmup over
`warmup_ratio * total_steps` (counted across rounds via `start_step`) then a constant rate,
gradient clipping at norm 1, and exactly `steps` optimizer steps cycling through the shard in
an order drawn from `seed`. Same inputs and seed, same parameters, bit for bit, on the CPU.
"""

from __future__ import annotations

import copy
import math
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from cairn.core.errors import InvalidInput
from cairn.core.recipe import (
    METHODS,
    ClassifyHyperparameters,
    DistillHyperparameters,
    GrpoHyperparameters,
    Hyperparameters,
    LoraHyperparameters,
    NumericAnswerReward,
    SftHyperparameters,
)
from cairn.core.rewards import exact_answer, numeric_answer, score

if TYPE_CHECKING:
    from peft import PeftModel

Trainable = Literal["all", "lora"]
Records = Sequence[Mapping[str, Any]]
HPARAMS: dict[str, type[Hyperparameters]] = {
    "sft": SftHyperparameters,
    "lora": LoraHyperparameters,
    "classify": ClassifyHyperparameters,
    "distill": DistillHyperparameters,
    "grpo": GrpoHyperparameters,
}
FIELDS = {  # the record fields each method reads (the dataset task's required fields)
    "sft": ("prompt", "response"),
    "lora": ("prompt", "response"),
    "distill": ("prompt", "response"),
    "classify": ("text", "label"),
    "grpo": ("prompt", "answer"),
}
CLIP_EPSILON = 0.2  # GRPO's ratio clip, as DeepSeekMath and trl
MAX_GRAD_NORM = 1.0


@dataclass
class InnerResult:
    """What a worker sends back after its inner steps."""

    params: dict[str, torch.Tensor]  # the trainable parameters after the steps (LoRA: adapter)
    samples: int  # records trained on, repeats counted: the weight of this update
    steps: int  # optimizer steps taken
    loss: float  # mean training loss over the steps
    metrics: dict[str, float] = field(default_factory=dict)  # loss_first, loss_last, reward...
    optimizer_state: dict[str, Any] | None = None  # AdamW state to hand to the next round


# --- parameters --------------------------------------------------------------------------------


def trainable_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter that trains: what a round exchanges."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_params(model: torch.nn.Module, params: Mapping[str, torch.Tensor]) -> None:
    """Copy `params` (as `trainable_params` names them) into `model`; names and shapes must fit."""
    own = dict(model.named_parameters())
    for name, value in params.items():
        if name not in own:
            raise InvalidInput(f"parameter {name!r} is not in the model")
        if own[name].shape != value.shape:
            raise InvalidInput(
                f"parameter {name!r}: shape {tuple(value.shape)} does not fit the model's "
                f"{tuple(own[name].shape)}"
            )
    with torch.no_grad():
        for name, value in params.items():
            own[name].copy_(value)


def add_lora(model: torch.nn.Module, hparams: Hyperparameters, seed: int = 0) -> PeftModel:
    """`model` with LoRA adapters from `hparams` (a PeftModel is returned as it is).

    `seed` fixes the adapters' initialisation (B starts at zero, A at random). Mutates `model` (peft injects the adapters in place): keep the returned model for later
    rounds. A classifier's head trains with its adapters. Methods without LoRA settings get
    rank 8, alpha 16, dropout 0.05 on peft's default modules for the architecture.
    """
    # peft takes seconds to import: only LoRA methods pay for it (a worker's process is new
    # every round)
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from peft.tuners.lora import LoraLayer

    if isinstance(model, PeftModel):
        return model
    if any(isinstance(m, LoraLayer) for m in model.modules()):
        raise InvalidInput(
            "the model already holds LoRA layers: pass the PeftModel add_lora returned"
        )
    rank = int(getattr(hparams, "lora_r", 8))
    config = LoraConfig(
        r=rank,
        lora_alpha=int(getattr(hparams, "lora_alpha", 2 * rank)),
        lora_dropout=float(getattr(hparams, "lora_dropout", 0.05)),
        target_modules=getattr(hparams, "target_modules", None),
        task_type=TaskType.SEQ_CLS if isinstance(hparams, ClassifyHyperparameters) else None,
    )
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return get_peft_model(model, config)
    except ValueError as exc:  # e.g. a target module the model does not have
        raise InvalidInput(f"cannot add LoRA adapters: {exc}") from None


def is_peft(model: Any) -> bool:
    """Whether `model` carries peft adapters (without importing peft when it is not loaded)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def default_trainable(method: str, hparams: Hyperparameters) -> Trainable:
    """What `method` trains by default: LoRA adapters for lora (and classify with use_lora)."""
    if method == "lora" or (isinstance(hparams, ClassifyHyperparameters) and hparams.use_lora):
        return "lora"
    return "all"


# --- inputs ------------------------------------------------------------------------------------


def check_inputs(
    method: str, records: Records, hparams: Hyperparameters, labels: Sequence[str] | None
) -> None:
    """Raise `InvalidInput` naming the first record, field or setting that does not fit."""
    if method not in METHODS:
        raise InvalidInput(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    expected = HPARAMS[method]
    if not isinstance(hparams, expected):
        raise InvalidInput(
            f"{method}: hyperparameters must be {expected.__name__}; got {type(hparams).__name__}"
        )
    if not records:
        raise InvalidInput(f"{method}: the shard is empty; a worker needs at least one record")
    if method == "classify" and (
        labels is None or len(labels) < 2 or len(set(labels)) != len(labels)
    ):
        raise InvalidInput("classify: labels must list the dataset's 2 or more distinct labels")
    fields = FIELDS[method]
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise InvalidInput(f"record {i}: must be an object with {', '.join(fields)}")
        for name in fields:
            if not isinstance(record.get(name), str):
                problem = "missing" if name not in record else "must be a string"
                raise InvalidInput(
                    f"record {i}: field {name!r} {problem} (a {method} record has "
                    f"{', '.join(fields)})"
                )
        if method == "classify" and labels is not None and record["label"] not in labels:
            raise InvalidInput(
                f"record {i}: field 'label' must be one of {', '.join(labels)}; "
                f"got {record['label']!r}"
            )


def _chat_ids(tokenizer: Any, prompt: str, response: str | None) -> tuple[list[int], list[int]]:
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
        prompt, response = _chat_ids(tokenizer, record["prompt"], record["response"])
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


def classification_batch(
    tokenizer: Any, records: Records, labels: Sequence[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Padded encoder inputs and each record's class index in `labels`."""
    encoded = tokenizer(
        [r["text"] for r in records],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    index = {label: i for i, label in enumerate(labels)}
    return {
        "input_ids": encoded["input_ids"],  # (B, T)
        "attention_mask": encoded["attention_mask"],  # (B, T)
        "labels": torch.tensor([index[r["label"]] for r in records]),  # (B,)
    }


def _device(model: Any) -> torch.device:
    device: torch.device = next(model.parameters()).device
    return device


def _on(model: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`batch` on the model's device (batches are built on the CPU)."""
    device = _device(model)
    return {k: v.to(device) for k, v in batch.items()}


def _shard_order(n: int, seed: int) -> Iterator[int]:
    """Record indices forever: a fresh seeded permutation of the shard each pass."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield from order


# --- losses ------------------------------------------------------------------------------------


def response_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the tokens whose label is not -100."""
    logits = logits[:, :-1]  # (B, T-1, V): position t predicts token t+1
    targets = labels[:, 1:]  # (B, T-1)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE, over response tokens."""
    keep = labels[:, 1:] != -100  # (B, T-1)
    s = student[:, :-1][keep] / temperature  # (N, V)
    t = teacher[:, :-1][keep] / temperature  # (N, V)
    soft = F.kl_div(
        F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="batchmean"
    )
    return alpha * temperature**2 * soft + (1 - alpha) * response_loss(student, labels)


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
    ids, _ = _chat_ids(tokenizer, prompt, None)
    return torch.tensor([ids[-max_prompt_length:]])  # (1, P): the prompt's end is kept


def sample_group(
    model: Any, tokenizer: Any, prompt: str, hparams: GrpoHyperparameters, n: int, greedy: bool
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """`n` completions of one prompt: the full sequences, their attention mask, the prompt length."""
    device = _device(model)
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


# --- the inner loop ----------------------------------------------------------------------------


def inner_train(
    method: str,
    model: Any,
    tokenizer: Any,
    records: Records,
    hparams: Hyperparameters,
    *,
    steps: int,  # H: optimizer steps to take
    seed: int,  # fixes shard order, dropout and sampling: the round's replay seed
    trainable: Trainable | None = None,  # None: "lora" for lora (and classify use_lora), else all
    teacher: Any = None,  # distill: the teacher model (same tokenizer)
    reference: Any = None,  # grpo: the KL reference; None = the model as handed in
    labels: Sequence[str] | None = None,  # classify: the dataset's labels, in the head's order
    start_step: int = 0,  # optimizer steps this job took before, for the warmup schedule
    total_steps: int | None = None,  # the job's steps per worker (rounds * H); None = `steps`
    optimizer_state: dict[str, Any] | None = None,  # this worker's AdamW state from its last round
) -> InnerResult:
    """Run `steps` optimizer steps of `method` on one worker's shard and return its parameters.

    `model` trains in place. With trainable="lora" a plain model is wrapped by `add_lora`
    (in place); pass the returned PeftModel (from `add_lora`) in later rounds. Raises
    `InvalidInput` for an empty shard, a record without the method's fields, a label outside
    `labels`, hyperparameters of another method, or a missing teacher.
    """
    check_inputs(method, records, hparams, labels)
    if not isinstance(steps, int) or steps < 1:
        raise InvalidInput(f"{method}: steps must be a positive integer; got {steps!r}")
    chosen = trainable or default_trainable(method, hparams)
    if chosen not in ("all", "lora"):
        raise InvalidInput(f"trainable must be 'all' or 'lora'; got {chosen!r}")
    if method == "lora" and chosen != "lora":
        raise InvalidInput("method lora trains LoRA adapters: trainable must be 'lora'")
    if method == "sft" and chosen != "all":
        raise InvalidInput("method sft trains every weight: use method lora for adapters")
    if method == "distill" and teacher is None:
        raise InvalidInput("distill needs a teacher model")
    if method == "classify" and labels is not None:
        num_labels = getattr(getattr(model, "config", None), "num_labels", None)
        if num_labels != len(labels):
            raise InvalidInput(
                f"classify: the model's head has {num_labels} classes but the dataset has "
                f"{len(labels)} labels"
            )

    if chosen == "lora":
        model = add_lora(model, hparams, seed)
    else:
        for p in model.parameters():
            p.requires_grad_(True)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        step_loss = _step_function(method, model, tokenizer, hparams, teacher, reference, labels)
        losses, metrics, opt_state = _optimize(
            model,
            step_loss,
            records,
            hparams,
            steps,
            seed,
            start_step,
            total_steps or steps,
            optimizer_state,
        )
    per_step = _records_per_step(hparams)
    return InnerResult(
        params=trainable_params(model),
        samples=steps * per_step,
        steps=steps,
        loss=sum(losses) / len(losses),
        metrics={"loss_first": losses[0], "loss_last": losses[-1], **metrics},
        optimizer_state=opt_state,
    )


def _records_per_step(hparams: Hyperparameters) -> int:
    if isinstance(hparams, GrpoHyperparameters):  # prompts; each gets num_generations samples
        return max(1, hparams.batch_size // hparams.num_generations)
    return int(getattr(hparams, "batch_size", 8))


StepLoss = Callable[[list[Mapping[str, Any]]], tuple[torch.Tensor, dict[str, float]]]


def _step_function(
    method: str,
    model: Any,
    tokenizer: Any,
    hparams: Hyperparameters,
    teacher: Any,
    reference: Any,
    labels: Sequence[str] | None,
) -> StepLoss:
    """The loss of one batch of records (and metrics of that step) for `method`."""
    if method in ("sft", "lora"):
        max_length = int(getattr(hparams, "max_length", 512))

        def lm_step(batch: list[Mapping[str, Any]]) -> tuple[torch.Tensor, dict[str, float]]:
            inputs = _on(model, instruction_batch(tokenizer, batch, max_length))
            logits = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            ).logits  # (B, T, V)
            return response_loss(logits, inputs["labels"]), {}

        return lm_step

    if method == "classify":
        assert labels is not None and isinstance(hparams, ClassifyHyperparameters)
        label_list, cls_length = list(labels), hparams.max_length

        def classify_step(batch: list[Mapping[str, Any]]) -> tuple[torch.Tensor, dict[str, float]]:
            inputs = _on(model, classification_batch(tokenizer, batch, label_list, cls_length))
            logits = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            ).logits  # (B, K)
            return F.cross_entropy(logits, inputs["labels"]), {}

        return classify_step

    if method == "distill":
        assert isinstance(hparams, DistillHyperparameters)
        teacher.eval()
        hp = hparams

        def distill_step(batch: list[Mapping[str, Any]]) -> tuple[torch.Tensor, dict[str, float]]:
            inputs = _on(model, instruction_batch(tokenizer, batch, hp.max_length))
            args = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
            student = model(**args).logits  # (B, T, V)
            with torch.no_grad():
                soft_targets = teacher(**args).logits  # (B, T, V')
            if soft_targets.size(-1) != student.size(-1):
                raise InvalidInput(
                    f"distill: the teacher's vocabulary ({soft_targets.size(-1)}) differs from "
                    f"the student's ({student.size(-1)}); they must share a tokenizer"
                )
            return distill_loss(
                student, soft_targets, inputs["labels"], hp.temperature, hp.alpha
            ), {}

        return distill_step

    assert isinstance(hparams, GrpoHyperparameters)
    return _grpo_step_function(model, tokenizer, hparams, reference)


def _grpo_step_function(
    model: Any, tokenizer: Any, hparams: GrpoHyperparameters, reference: Any
) -> StepLoss:
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
        total = torch.zeros((), device=_device(model))
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


def _optimize(
    model: Any,
    step_loss: StepLoss,
    records: Records,
    hparams: Hyperparameters,
    steps: int,
    seed: int,
    start_step: int,
    total_steps: int,
    optimizer_state: dict[str, Any] | None = None,
) -> tuple[list[float], dict[str, float], dict[str, Any]]:
    """AdamW for `steps` steps over batches drawn in a seeded order; the loss of each step.

    DiLoCo keeps each worker's inner optimizer across rounds: pass the state the last round
    returned and the moment estimates carry on instead of restarting from zero.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    lr = float(getattr(hparams, "learning_rate", 1e-4))
    optimizer = torch.optim.AdamW(
        params, lr=lr, weight_decay=float(getattr(hparams, "weight_decay", 0.0))
    )
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
        except (ValueError, KeyError) as exc:
            raise InvalidInput(f"the optimizer state does not fit this model: {exc}") from None
        for p in params:  # AdamW matches parameters by position, not by shape: check it here
            moment = optimizer.state.get(p, {}).get("exp_avg")
            if moment is not None and moment.shape != p.shape:
                raise InvalidInput(
                    f"the optimizer state does not fit this model: a moment of shape "
                    f"{tuple(moment.shape)} for a parameter of shape {tuple(p.shape)}"
                )
    warmup = math.ceil(float(getattr(hparams, "warmup_ratio", 0.0)) * total_steps)
    order = _shard_order(len(records), seed)
    per_step = _records_per_step(hparams)
    losses: list[float] = []
    rewards: list[float] = []
    was_training = model.training
    model.train()
    try:
        for i in range(steps):
            step = start_step + i  # warm up from lr/warmup, never a wasted step at lr 0
            rate = lr * min(1.0, (step + 1) / warmup) if warmup else lr
            for group in optimizer.param_groups:
                group["lr"] = rate
            batch = [records[next(order)] for _ in range(per_step)]
            loss, metrics = step_loss(batch)
            if not torch.isfinite(loss):
                raise InvalidInput(f"step {i}: the loss is not finite ({loss.item()})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            losses.append(float(loss.item()))
            if "reward" in metrics:
                rewards.append(metrics["reward"])
    finally:
        model.train(was_training)
    extra: dict[str, float] = {"lr": rate}
    if rewards:
        extra |= {
            "reward": sum(rewards) / len(rewards),
            "reward_first": rewards[0],
            "reward_last": rewards[-1],
        }
    return losses, extra, optimizer.state_dict()


# --- evaluation --------------------------------------------------------------------------------


def evaluate(
    method: str,
    model: Any,
    tokenizer: Any,
    records: Records,
    hparams: Hyperparameters,
    *,
    labels: Sequence[str] | None = None,  # classify: the dataset's labels, in the head's order
    batch_size: int = 16,
) -> dict[str, float]:
    """Held-out metrics of `model` for `method`.

    sft, lora, distill: `loss` (response-token cross-entropy) and `perplexity`; classify:
    `accuracy`, macro `f1` and `loss`; grpo: mean `reward` and `accuracy` of greedy completions
    (accuracy by numeric_answer when the recipe rewards it, else exact_answer).
    """
    check_inputs(method, records, hparams, labels)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if method == "classify":
                assert labels is not None
                return _evaluate_classify(model, tokenizer, records, hparams, labels, batch_size)
            if method == "grpo":
                assert isinstance(hparams, GrpoHyperparameters)
                return _evaluate_grpo(model, tokenizer, records, hparams)
            return _evaluate_lm(model, tokenizer, records, hparams, batch_size)
    finally:
        model.train(was_training)


def _evaluate_lm(
    model: Any, tokenizer: Any, records: Records, hparams: Hyperparameters, batch_size: int
) -> dict[str, float]:
    max_length = int(getattr(hparams, "max_length", 512))
    total, tokens = 0.0, 0
    for start in range(0, len(records), batch_size):
        inputs = _on(
            model, instruction_batch(tokenizer, records[start : start + batch_size], max_length)
        )
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits  # (B, T, V)
        n = int((inputs["labels"][:, 1:] != -100).sum())
        if n:
            total += float(response_loss(logits, inputs["labels"])) * n
            tokens += n
    if not tokens:
        raise InvalidInput("no response tokens to evaluate (all responses empty or truncated)")
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}


def _evaluate_classify(
    model: Any,
    tokenizer: Any,
    records: Records,
    hparams: Hyperparameters,
    labels: Sequence[str],
    batch_size: int,
) -> dict[str, float]:
    max_length = int(getattr(hparams, "max_length", 256))
    predicted: list[int] = []
    truth: list[int] = []
    total = 0.0
    for start in range(0, len(records), batch_size):
        inputs = _on(
            model,
            classification_batch(
                tokenizer, records[start : start + batch_size], labels, max_length
            ),
        )
        logits = model(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits  # (B, K)
        total += float(F.cross_entropy(logits, inputs["labels"], reduction="sum"))
        predicted += logits.argmax(dim=-1).tolist()
        truth += inputs["labels"].tolist()
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    return {
        "accuracy": accuracy,
        "f1": macro_f1(predicted, truth, len(labels)),
        "loss": total / len(truth),
    }


def macro_f1(predicted: Sequence[int], truth: Sequence[int], classes: int) -> float:
    """The unweighted mean over classes of F1 (a class never predicted nor present scores 0)."""
    scores = []
    for c in range(classes):
        tp = sum(p == c and t == c for p, t in zip(predicted, truth, strict=True))
        fp = sum(p == c and t != c for p, t in zip(predicted, truth, strict=True))
        fn = sum(p != c and t == c for p, t in zip(predicted, truth, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / classes


def _evaluate_grpo(
    model: Any, tokenizer: Any, records: Records, hparams: GrpoHyperparameters
) -> dict[str, float]:
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
