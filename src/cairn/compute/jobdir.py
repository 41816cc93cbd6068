"""A training job's folder: the hand-off between the node and the Flower ServerApp it runs.

The node writes `job.json` (everything the ServerApp needs; it never opens the node's index or
chain) and the held-out records; the ServerApp appends to `events.jsonl` (rounds, providers, work
reports, logs, the end) and writes a checkpoint per round and the trained model. The node reads
the events back into its index and acts on them (enlisting providers, storing checkpoints by CID,
packaging and registering the model, paying providers). `run.json` names the Flower run that
owns the job: a ServerApp left over from before a node restart sees it changed and stops.
`serverapp.json` names the process running that run's ServerApp, so that the node can start the
run again from its checkpoint when that process dies under a node that did not.

    jobs/<job id>/
      job.json                      JobSpec
      eval.jsonl                    held-out records (never sent to workers)
      run.json                      {"run_id": ...}: the current Flower run
      serverapp.json                {"run_id", "pid", "started"}: its ServerApp's process
      cancel                        present: stop after the current round
      events.jsonl                  one JSON object per line, appended
      checkpoints/                  a checkpoint per round (cairn.compute.checkpoints)
      model/                        the trained model's weights and tokenizer, at the end
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cairn.core.errors import InvalidInput, NotFound


@dataclass
class JobSpec:
    """What a job's ServerApp and workers need, fixed when the job is created."""

    job_id: str  # 0x + 64 hex: also the JobEscrow id
    method: str  # lora, sft, classify, grpo, distill
    hparams: dict[str, Any]  # the recipe's hyperparameters, as JSON
    base_folder: str  # the base model's Hugging Face folder on the node
    base_manifest: str  # its files' manifest CID, for workers to fetch
    base_asset: int  # its asset id (a LoRA result names its base by it)
    train_cid: str  # JSONL of the training records (every shard), in the node's store
    train_count: int
    node_url: str  # where workers fetch blobs and the ServerApp checks provider stakes
    workers: int
    min_workers: int
    rounds: int
    inner_steps: int
    outer_lr: float
    outer_momentum: float
    nesterov: bool
    aggregation: str
    trim_ratio: float
    byzantine: int
    round_timeout_s: int
    seed: int
    min_stake: int = 0  # tokens a provider must have staked to take part
    labels: list[str] | None = None  # classify: the label set, in the head's order
    teacher_folder: str | None = None  # distill
    teacher_manifest: str | None = None
    eval_every: int = 1  # rounds between held-out evaluations (the last round always)
    eval_limit: int = 64  # held-out records evaluated between rounds (all of them at the end)
    blob_token: str = ""  # lets the job's workers fetch its blobs (cairn.assets.content)
    outer_encoding: str = "float32"  # how workers send their update (cairn.core.quantize)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        """A spec from its JSON; unknown keys are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"job spec: unknown keys {sorted(unknown)}")
        return cls(**data)


class JobDir:
    """One job's folder; every write is atomic (temp file, then rename) or an append."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checkpoints = path / "checkpoints"
        self.model = path / "model"

    # -- spec and held-out records --------------------------------------------------------------

    def write_spec(self, spec: JobSpec, eval_records: list[dict[str, Any]]) -> None:
        """Create the folder with its spec and held-out records."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in eval_records)
        atomic_write(self.path / "eval.jsonl", lines.encode())
        atomic_write(self.path / "job.json", json.dumps(spec.to_json(), indent=2).encode())

    def spec(self) -> JobSpec:
        """The job's spec."""
        try:
            data = json.loads((self.path / "job.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"no job spec in {self.path}") from None
        return JobSpec.from_json(data)

    def eval_records(self) -> list[dict[str, Any]]:
        """The held-out records."""
        text = (self.path / "eval.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line]

    # -- the owning run and cancellation --------------------------------------------------------

    def set_run(self, run_id: int) -> None:
        """Make `run_id` the Flower run that owns this job."""
        atomic_write(self.path / "run.json", json.dumps({"run_id": run_id}).encode())

    def run_id(self) -> int | None:
        """The Flower run that owns this job, if one was started."""
        try:
            return int(json.loads((self.path / "run.json").read_text())["run_id"])
        except FileNotFoundError:
            return None

    def set_process(self, run_id: int) -> None:
        """Record that this process runs `run_id`'s ServerApp (called from that process)."""
        record = {"run_id": run_id, "pid": os.getpid(), "started": process_started(os.getpid())}
        atomic_write(self.path / "serverapp.json", json.dumps(record).encode())

    def serverapp_gone(self) -> bool:
        """Whether the current run's ServerApp process has been recorded and is no longer
        running (False while none was recorded for the current run: it may be starting)."""
        try:
            record = json.loads((self.path / "serverapp.json").read_text())
        except FileNotFoundError:
            return False
        if record["run_id"] != self.run_id():
            return False  # the current run's ServerApp has not started yet
        return process_started(int(record["pid"])) != record["started"]

    def request_cancel(self) -> None:
        """Ask the ServerApp to stop after its current round."""
        atomic_write(self.path / "cancel", b"")

    def cancel_requested(self) -> bool:
        """Whether the job was asked to stop."""
        return (self.path / "cancel").exists()

    # -- events -------------------------------------------------------------------------------------

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event; returns it. Lines are written whole in one call (O_APPEND)."""
        event = {"type": kind, "time": round(time.time(), 3), **fields}
        line = (json.dumps(event, sort_keys=True) + "\n").encode()
        fd = os.open(self.path / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return event

    def events(self, start: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events from byte offset `start`; returns them and the offset to read from next.

        A line still being written (no newline yet) is left for the next read.
        """
        entries = self.entries(start)
        return [event for event, _ in entries], entries[-1][1] if entries else start

    def entries(self, start: int = 0) -> list[tuple[dict[str, Any], int]]:
        """Events from byte offset `start`, each with the offset just past its line.

        The node records that offset with the event's effect, so after a crash it reads on
        from the first event whose effect it had not recorded. A line still being written is
        left for the next read.
        """
        try:
            with (self.path / "events.jsonl").open("rb") as fh:
                fh.seek(start)
                data = fh.read()
        except FileNotFoundError:
            return []
        whole = data[: data.rfind(b"\n") + 1]
        out = []
        offset = start
        for line in whole.split(b"\n")[:-1]:
            offset += len(line) + 1
            if line.strip():
                out.append((json.loads(line), offset))
        return out


def process_started(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), None if there is none or it is a
    zombie: with the pid, it names one process, never another that reuses the pid later."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])  # state; starttime (field 22)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
