"""Work reports: what a provider signs for each round it trained, and how work is counted.

A report names the job, the round, the provider's account and Flower node, the shard, the
optimizer steps and samples it trained, its mean loss, and the SHA-256 of the parameters it
returned (`params_digest`), so a report cannot be reused for other weights. The provider signs
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

    def canonical(self) -> bytes:
        """The bytes that are signed: sorted-key compact JSON with the schema name."""
        body = {"schema": SCHEMA, **asdict(self)}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


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


def report_from_json(data: Mapping[str, Any]) -> WorkReport:
    """A report from its JSON fields (without schema or signature)."""
    fields = {k: v for k, v in data.items() if k not in ("schema", "signature")}
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
