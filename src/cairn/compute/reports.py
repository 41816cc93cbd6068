"""Work reports: what a provider signs for each round it trained, and how work is counted.

A report names the job, the round, the provider's account and Flower node, the shard, the
optimizer steps and samples it trained, its mean loss, and the SHA-256 of the parameters it
returned (`params_digest`), so a report cannot be reused for other weights. A v2 report also
names every input of its round (`REPLAY_FIELDS`: the weights it started from, the records and
shard, the seed, the hyperparameters, the schedule's position, its optimizer state), which the
coordinator checks against what it sent (`check_round_inputs`) and anyone can replay. The provider signs
the report's canonical JSON with EIP-191 (`personal_sign`); the coordinator accepts a reply only
if the signature recovers to the account the report names and the digest matches the weights
received. Accepted reports are anchored in batches like contributions (leaf: the SHA-256 of the
signed report's canonical JSON), and the job's budget is paid by `work_shares`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount

from cairn.core.errors import InvalidInput
from cairn.identity.statements import check_signer, sign_statement, statement_leaf

if TYPE_CHECKING:  # the node reads and checks reports without loading torch
    import torch

SCHEMA = "cairn.work-report/v1"
REPLAYABLE_SCHEMA = "cairn.work-report/v2"  # v1's fields and what a replay of the round needs
# What a report of v2 adds: every input of the round, so that anyone can train it again and
# compare the weights (`params_digest`). All of them, or none (a v1 report, signed before).
REPLAY_FIELDS = (
    "start_digest",
    "seed",
    "train_cid",
    "shards",
    "hparams_digest",
    "start_step",
    "total_steps",
    "optimizer_digest",
)


@dataclass(frozen=True)
class WorkReport:
    """One provider's claim of the work it did in one round of one job."""

    job_id: str
    round: int  # 1-based outer round
    account: str  # the provider's checksummed address
    node_id: int  # its Flower SuperNode
    shard: int
    steps: int  # optimizer steps taken
    samples: int  # records trained on, repeats counted: the work units paid for
    loss: float
    params_digest: str  # sha256 hex of `params_digest(...)` of the returned parameters
    compute_seconds: float
    # The round's inputs (v2), None in a v1 report:
    start_digest: str | None = None  # `params_digest` of the weights the round started from
    seed: int | None = None  # the round's seed: shard order, dropout, sampling
    train_cid: str | None = None  # the records, of which the shard is every `shards`-th
    shards: int | None = None
    hparams_digest: str | None = None  # `json_digest` of the hyperparameters as sent
    start_step: int | None = None  # the learning rate schedule's position and length
    total_steps: int | None = None
    optimizer_digest: str | None = None  # `state_digest` of the inner AdamW state it resumed

    def __post_init__(self) -> None:
        given = [getattr(self, name) is not None for name in REPLAY_FIELDS]
        if any(given) and not all(given):
            missing = [n for n, g in zip(REPLAY_FIELDS, given, strict=True) if not g]
            raise InvalidInput(f"work report: the round's inputs lack {', '.join(missing)}")

    @property
    def replayable(self) -> bool:
        """Whether the report names every input of its round (v2)."""
        return self.start_digest is not None

    def canonical(self) -> bytes:
        """The bytes that are signed: sorted-key compact JSON with the schema name (a v1 report's
        fields alone, so that reports signed before v2 still verify)."""
        body = {"schema": REPLAYABLE_SCHEMA if self.replayable else SCHEMA, **asdict(self)}
        if not self.replayable:
            for name in REPLAY_FIELDS:
                del body[name]
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def check_round_inputs(report: WorkReport, expected: Mapping[str, Any]) -> None:
    """Raise `InvalidInput` unless the report names its round's inputs, and these `expected`
    ones (all but the optimizer state, which only its worker holds) as they were sent."""
    if not report.replayable:
        raise InvalidInput("the report does not name its round's inputs, so it cannot be replayed")
    for name, value in expected.items():
        if getattr(report, name) != value:
            raise InvalidInput(f"the report's {name} is not its round's")


def json_digest(value: Any) -> str:
    """SHA-256 hex of `value` as sorted-key compact JSON (hyperparameters, a task's settings)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def state_digest(state: Any) -> str:
    """SHA-256 hex over an optimizer state (nested dicts, lists, tensors, numbers); "" for None.

    Keys in sorted order, each tensor by dtype, shape and bytes: the same state, the same digest.
    """
    if state is None:
        return ""
    h = hashlib.sha256()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            h.update(b"{")
            for key in sorted(value, key=str):
                h.update(f"{key!s}:".encode())
                walk(value[key])
            h.update(b"}")
        elif isinstance(value, list | tuple):
            h.update(b"[")
            for item in value:
                walk(item)
            h.update(b"]")
        elif hasattr(value, "detach"):  # a tensor
            t = value.detach().contiguous().cpu()
            h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
            h.update(t.view(-1).view(torch_uint8()).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(json.dumps(value).encode())

    walk(state)
    return h.hexdigest()


def torch_uint8() -> Any:
    import torch  # loaded already: the caller holds tensors

    return torch.uint8


def params_digest(params: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of parameters, in name order."""
    import torch  # loaded already: the caller holds tensors

    h = hashlib.sha256()
    for name in sorted(params):
        t = params[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def sign_report(report: WorkReport, account: LocalAccount) -> str:
    """The provider's EIP-191 signature over the report, 0x-hex."""
    if account.address.lower() != report.account.lower():
        raise InvalidInput(f"report names {report.account}, but the key is {account.address}")
    return sign_statement(account, report.canonical())


def verify_report(report: WorkReport, signature: str) -> None:
    """Raise `InvalidInput` unless `signature` is the report's account signing it."""
    check_signer(report.canonical(), signature, report.account, "work report")


def report_leaf(report: WorkReport, signature: str) -> str:
    """The anchored leaf of a signed report: sha256 of its canonical JSON and signature, 0x-hex."""
    return statement_leaf(report.canonical(), signature)


def published_report(report: WorkReport, signature: str) -> dict[str, Any]:
    """A signed report as a job's events publish it: its fields, its signature, and `signed`,
    the exact text signed (EIP-191 personal_sign of its UTF-8 bytes), which any wallet library
    checks without Cairn's code."""
    return {
        "report": asdict(report),
        "signature": signature,
        "signed": report.canonical().decode(),
    }


def listed_report(data: Mapping[str, Any], signature: str, leaf: str) -> dict[str, Any]:
    """A stored report as a job's public work shares list it: its fields, signature and leaf,
    and `signed`, the exact text signed."""
    signed = report_from_json(data).canonical().decode()
    return {**data, "signature": signature, "leaf": leaf, "signed": signed}


def report_from_json(data: Mapping[str, Any]) -> WorkReport:
    """A report from its JSON fields (schema, signature, leaf and signed text ignored)."""
    ignored = ("schema", "signature", "leaf", "signed")
    fields = {k: v for k, v in data.items() if k not in ignored}
    try:
        return WorkReport(**fields)
    except TypeError as exc:
        raise InvalidInput(f"work report: {exc}") from None


def work_shares(reports: Iterable[WorkReport]) -> dict[str, int]:
    """Work units (samples) per provider account, over every accepted report."""
    shares: dict[str, int] = {}
    for report in reports:
        if report.samples < 0:
            raise InvalidInput(f"work report of {report.account}: negative samples")
        shares[report.account] = shares.get(report.account, 0) + report.samples
    return dict(sorted(shares.items()))
