"""What travels in a round, as typed values and as Flower records.

The coordinator sends each selected worker a `RoundTask` (a ConfigRecord holding its JSON) and
the global trainable parameters (an ArrayRecord); the worker answers with its parameters, its
metrics (a MetricRecord) and its signed `WorkReport` (a ConfigRecord). A worker's failure comes
back as a Flower error reply, never as a half-filled record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from cairn.compute.reports import WorkReport, report_from_json
from cairn.core.errors import InvalidInput

TRAIN = "train"  # Flower message type of a round's work
IDENTIFY = "query"  # Flower message type asking a worker which account it trains for


@dataclass(frozen=True)
class RoundTask:
    """One worker's work in one round."""

    job_id: str
    method: str
    hparams: dict[str, Any]
    base_manifest: str
    train_cid: str
    node_url: str
    round: int  # 1-based
    shard: int
    shards: int
    steps: int  # H
    seed: int  # this worker's seed for this round
    start_step: int  # optimizer steps this shard took in earlier rounds (warmup schedule)
    total_steps: int  # rounds * H
    labels: list[str] | None = None
    teacher_manifest: str | None = None
    blob_token: str = ""  # the job's token for fetching its training set and model files

    def to_record(self) -> ConfigRecord:
        """The task as a Flower ConfigRecord."""
        return ConfigRecord({"task": json.dumps(asdict(self), sort_keys=True)})

    @classmethod
    def from_record(cls, record: ConfigRecord) -> RoundTask:
        """A task from its ConfigRecord."""
        try:
            return cls(**json.loads(str(record["task"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed round task: {exc}") from None


@dataclass
class WorkerReply:
    """A worker's answer to a round: its parameters and the report it signed for them."""

    node_id: int
    params: dict[str, torch.Tensor]
    report: WorkReport
    signature: str
    metrics: dict[str, float]


def task_message(task: RoundTask, params: dict[str, torch.Tensor], node_id: int) -> Message:
    """The Flower message carrying `task` and the global parameters to `node_id`."""
    content = RecordDict({"params": ArrayRecord(params), "task": task.to_record()})
    return Message(content, node_id, TRAIN)


def reply_content(
    params: dict[str, torch.Tensor],
    report: WorkReport,
    signature: str,
    metrics: dict[str, float],
) -> RecordDict:
    """The RecordDict of a worker's reply."""
    report_json = json.dumps(asdict(report), sort_keys=True)
    return RecordDict(
        {
            "params": ArrayRecord({k: v.contiguous() for k, v in params.items()}),
            "report": ConfigRecord({"report": report_json, "signature": signature}),
            "metrics": MetricRecord({k: float(v) for k, v in metrics.items()}),
        }
    )


def parse_reply(message: Message) -> WorkerReply:
    """A worker's reply from its Flower message; `InvalidInput` if it is malformed."""
    if message.has_error():
        raise InvalidInput(f"worker error: {message.error.reason}")
    content = message.content
    try:
        arrays = content["params"]
        if not isinstance(arrays, ArrayRecord):
            raise TypeError("params is not an ArrayRecord")
        params = arrays.to_torch_state_dict()
        report_record = content["report"]
        report = report_from_json(json.loads(str(report_record["report"])))
        signature = str(report_record["signature"])
        metrics = {k: float(v) for k, v in content["metrics"].items()}  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed worker reply: {exc}") from None
    return WorkerReply(message.metadata.src_node_id, params, report, signature, metrics)
