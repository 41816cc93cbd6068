"""What travels in a round, as typed values and as Flower records.

The coordinator sends each selected worker a `RoundTask` (a ConfigRecord holding its JSON) and
the global trainable parameters (an ArrayRecord, packed: one array per dtype and a layout,
`cairn.compute.packed`); the worker answers with its parameters, packed the same way, its
metrics (a MetricRecord) and its signed `WorkReport` (a ConfigRecord). A worker's failure comes
back as a Flower error reply, never as a half-filled record.

To replay a worker's round (`cairn.verify.replay`) the coordinator asks it, after the fact, for
the inner optimizer state that round resumed (`reveal_message`); the worker answers with it
(`state_content`: its tensors packed like parameters, the rest as JSON), and the state's digest
must be the one its report signed.

A job whose recipe sets `outer_encoding` int8 or int4 gets, instead of parameters, the worker's
update quantised (`EncodedUpdate`: the integers and the scales of each parameter's pseudo-
gradient, `cairn.core.quantize`); the report signs those arrays, and the coordinator decodes
them against the global parameters it sent, whose names and shapes it trusts, not the reply's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from cairn.compute.packed import pack, unpack
from cairn.compute.reports import WorkReport, params_digest, report_from_json
from cairn.core.errors import InvalidInput
from cairn.core.quantize import ENCODINGS, Encoded, decode
from cairn.core.recipe.sections import Encoding

TRAIN = "train"  # Flower message type of a round's work
IDENTIFY = "query"  # Flower message type asking a worker which account it trains for
REVEAL = "query.reveal"  # asking a worker for the AdamW state one of its rounds resumed
LAYOUT_SUFFIX = "_layout"  # the record beside a packed ArrayRecord (cairn.compute.packed)


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
    encoding: str = "float32"  # how the reply carries the update (cairn.core.quantize)

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


@dataclass(frozen=True)
class EncodedUpdate:
    """A worker's update as sent quantised: per parameter, its integers and its scales."""

    encoding: Encoding  # int8 or int4
    block: int  # values per scale
    values: dict[str, torch.Tensor]
    scales: dict[str, torch.Tensor]

    @classmethod
    def of(cls, encoded: dict[str, Encoded]) -> EncodedUpdate:
        """The update of a worker's encoded pseudo-gradients (`ErrorFeedback.encode`)."""
        kinds = {(e.encoding, e.block) for e in encoded.values()}
        if len(kinds) != 1:
            raise InvalidInput("an update is encoded one way throughout")
        ((encoding, block),) = kinds
        values = {n: e.values for n, e in encoded.items()}
        return cls(encoding, block, values, {n: e.scales for n, e in encoded.items()})

    def digest(self) -> str:
        """What the work report signs: the encoding, every array's name, dtype, shape, bytes."""
        arrays = {f"{self.encoding}/{self.block}/values/{n}": v for n, v in self.values.items()}
        arrays |= {f"{self.encoding}/{self.block}/scales/{n}": v for n, v in self.scales.items()}
        return params_digest(arrays)

    def nbytes(self) -> int:
        """Bytes of the arrays: what the update costs on the wire."""
        tensors = [*self.values.values(), *self.scales.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def params(self, global_params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The worker's parameters: the global ones minus the decoded update, in their dtypes;
        `InvalidInput` if the arrays do not fit the global parameters' names and shapes."""
        if set(self.values) != set(global_params) or set(self.scales) != set(global_params):
            raise InvalidInput("the update sent does not have the job's parameter names")
        params = {}
        for name, g in global_params.items():
            shape = tuple(g.shape)
            delta = decode(
                Encoded(self.encoding, shape, self.values[name], self.scales[name], self.block)
            )
            params[name] = (g.detach().to(torch.float32) - delta).to(g.dtype)  # (*shape)
        return params


@dataclass
class WorkerReply:
    """A worker's answer to a round: its parameters and the report it signed for them.

    A quantised reply comes with `encoded` and no `params` until the coordinator decodes it.
    """

    node_id: int
    params: dict[str, torch.Tensor]
    report: WorkReport
    signature: str
    metrics: dict[str, float]
    encoded: EncodedUpdate | None = None
    wire_bytes: int = 0  # the reply's arrays as Flower carried them (`array_bytes`)

    def update_bytes(self) -> int:
        """Bytes of the update the worker sent: its arrays, quantised or not."""
        if self.encoded is not None:
            return self.encoded.nbytes()
        return sum(t.numel() * t.element_size() for t in self.params.values())


def task_message(
    task: RoundTask, params: dict[str, torch.Tensor], node_id: int, ttl: float
) -> Message:
    """The Flower message carrying `task` and the global parameters to `node_id`, alive for
    `ttl` seconds (the round's time limit: a provider's SuperNode gives up on its ClientApp at
    the message's end, see cairn.provider.watchdog, instead of Flower's default 12 hours)."""
    content = RecordDict({"task": task.to_record()})
    _put(content, "params", params)
    return Message(content, node_id, TRAIN, ttl=ttl)


def task_params(content: RecordDict) -> dict[str, torch.Tensor]:
    """The global parameters a round's task message carries; `InvalidInput` if malformed."""
    try:
        return unpacked(content, "params")
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"the round carries no parameters: {exc}") from None


def reply_content(
    update: dict[str, torch.Tensor] | EncodedUpdate,
    report: WorkReport,
    signature: str,
    metrics: dict[str, float],
) -> RecordDict:
    """The RecordDict of a worker's reply: its parameters, or its update quantised."""
    report_json = json.dumps(asdict(report), sort_keys=True)
    content = RecordDict(
        {
            "report": ConfigRecord({"report": report_json, "signature": signature}),
            "metrics": MetricRecord({k: float(v) for k, v in metrics.items()}),
        }
    )
    if isinstance(update, EncodedUpdate):
        _put(content, "values", update.values)
        _put(content, "scales", update.scales)
        content["encoding"] = ConfigRecord({"encoding": update.encoding, "block": update.block})
    else:
        _put(content, "params", update)
    return content


def parse_reply(message: Message) -> WorkerReply:
    """A worker's reply from its Flower message; `InvalidInput` if it is malformed."""
    if message.has_error():
        raise InvalidInput(f"worker error: {message.error.reason}")
    content = message.content
    try:
        encoded = None
        params: dict[str, torch.Tensor] = {}
        if "encoding" in content:
            encoded = _encoded_update(content)
        else:
            params = unpacked(content, "params")
        report_record = content["report"]
        report = report_from_json(json.loads(str(report_record["report"])))
        signature = str(report_record["signature"])
        metrics = {k: float(v) for k, v in content["metrics"].items()}  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed worker reply: {exc}") from None
    return WorkerReply(
        message.metadata.src_node_id,
        params,
        report,
        signature,
        metrics,
        encoded,
        wire_bytes=array_bytes(message.content),
    )


def array_bytes(content: RecordDict) -> int:
    """Bytes of the arrays a Flower message carries, as serialised for the wire (each array's
    .npy bytes, header included): all but a few hundred bytes of the message."""
    return sum(len(a.data) for record in content.array_records.values() for a in record.values())


def _put(content: RecordDict, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """`tensors` into `content` as `name` (packed: a few arrays, not one per tensor) and its
    layout (`name` + LAYOUT_SUFFIX)."""
    arrays, layout = pack(tensors)
    content[name] = arrays
    content[name + LAYOUT_SUFFIX] = layout


def unpacked(content: RecordDict, name: str) -> dict[str, torch.Tensor]:
    """The tensors packed into `content` as `name` (see `_put`)."""
    arrays, layout = content[name], content[name + LAYOUT_SUFFIX]
    if not isinstance(arrays, ArrayRecord) or not isinstance(layout, ConfigRecord):
        raise TypeError(f"{name} is not a packed ArrayRecord with its layout")
    return unpack(arrays, layout)


def _encoded_update(content: RecordDict) -> EncodedUpdate:
    config = content["encoding"]
    if not isinstance(config, ConfigRecord):
        raise TypeError("encoding is not a ConfigRecord")
    encoding, block = str(config["encoding"]), config["block"]
    if encoding not in ENCODINGS or encoding == "float32":
        raise ValueError(f"unknown update encoding {encoding!r}")
    if not isinstance(block, int) or isinstance(block, bool):
        raise TypeError("block is not an integer")
    values, scales = unpacked(content, "values"), unpacked(content, "scales")
    return EncodedUpdate(cast(Encoding, encoding), block, values, scales)


# -- revealing a round's optimizer state -------------------------------------------------------


def reveal_message(job_id: str, round_: int, shard: int, node_id: int, ttl: float) -> Message:
    """Ask `node_id` for the AdamW state it resumed in round `round_` of `job_id` as `shard`."""
    record = ConfigRecord({"job_id": job_id, "round": round_, "shard": shard})
    return Message(RecordDict({"reveal": record}), node_id, REVEAL, ttl=ttl)


def reveal_request(content: RecordDict) -> tuple[str, int, int]:
    """The (job, round, shard) a reveal message asks for; `InvalidInput` if malformed."""
    try:
        record = content["reveal"]
        job_id, round_, shard = str(record["job_id"]), record["round"], record["shard"]
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"malformed reveal request: {exc}") from None
    if not isinstance(round_, int) or not isinstance(shard, int) or round_ < 1 or shard < 0:
        raise InvalidInput("a reveal request names a round from 1 and a shard from 0")
    if not job_id or Path(job_id).name != job_id or job_id.startswith("."):
        raise InvalidInput(f"not a job id: {job_id!r}")
    return job_id, round_, shard


def state_content(state: dict[str, Any] | None) -> RecordDict:
    """An optimizer state (or None: the round started afresh) as a reply's content."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _skeleton(state, tensors)
    content = RecordDict({"state": ConfigRecord({"skeleton": json.dumps(skeleton)})})
    if tensors:
        _put(content, "state_arrays", tensors)
    return content


def state_from_content(content: RecordDict) -> dict[str, Any] | None:
    """The optimizer state a reveal reply carries; `InvalidInput` if it is malformed."""
    try:
        skeleton = json.loads(str(content["state"]["skeleton"]))
        tensors = unpacked(content, "state_arrays") if "state_arrays" in content else {}
        state = _flesh(skeleton, tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"malformed optimizer state: {exc}") from None
    if state is not None and not isinstance(state, dict):
        raise InvalidInput("malformed optimizer state: not a mapping")
    return state


def _skeleton(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """`value` as JSON: tensors moved into `tensors` by name, dicts as [key, value] pairs (an
    optimizer state's keys are parameter indices: integers must stay integers)."""
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().contiguous()
        return {"tensor": name}
    if isinstance(value, dict):
        return {"dict": [[k, _skeleton(v, tensors)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return {"list": [_skeleton(v, tensors) for v in value]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise InvalidInput(f"an optimizer state holds a {type(value).__name__}")


def _flesh(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if "tensor" in value:
            return tensors[str(value["tensor"])]
        if "dict" in value:
            return {_key(k): _flesh(v, tensors) for k, v in value["dict"]}
        return [_flesh(v, tensors) for v in value["list"]]
    return value


def _key(key: Any) -> int | str:
    if not isinstance(key, int | str) or isinstance(key, bool):
        raise TypeError(f"a key of {type(key).__name__}")
    return key
