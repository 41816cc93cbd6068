"""A training job as the node shows it: frozen records read from the job's index row.

`JobService` answers these, the API serves them as they are (`/openapi.json` names every
field), and a client reads a job back with `Job.model_validate(json)`. Token amounts are
decimal strings (JSON numbers cannot hold 256-bit integers). The recipe is kept as the JSON the
builder's recipe parses to (`cairn.core.recipe.parse_recipe` reads it back): its shape is the
recipe's, owned by `cairn.core.recipe`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cairn.core.errors import InvalidInput

if TYPE_CHECKING:  # the CLI reads these records without loading the index's ORM
    from cairn.compute.models import JobRow

JobStatus = Literal["queued", "running", "finishing", "finished", "failed", "cancelled"]
ACTIVE: tuple[JobStatus, ...] = ("queued", "running")
FOLLOWED: tuple[JobStatus, ...] = (*ACTIVE, "finishing")  # what the node's ticks drive on
ENDED: tuple[JobStatus, ...] = ("finished", "failed", "cancelled")


class JobRecord(BaseModel):
    """A frozen record with named fields; a client reading a newer node's answer (or the node
    an older row) skips the fields it does not know."""

    model_config = ConfigDict(frozen=True)


class DatasetUse(JobRecord):
    """A dataset version a job trains on, with its attribution table."""

    dataset: int
    version: str = Field(..., description="The version's manifest CID")
    records: int
    attribution_cid: str


class JoinedProvider(JobRecord):
    """A provider whose worker joined a job."""

    node_id: int = Field(..., description="Its Flower SuperNode")
    enlisted: bool = Field(..., description="Enlisted in the job's escrow (its stake is locked)")
    released: bool = Field(False, description="Its stake was released once the job ended")


class DroppedWorker(JobRecord):
    """A worker whose reply a round did not count."""

    node_id: int
    reason: str


class ScreenFlag(JobRecord):
    """A screen's suspicion of one worker's update in a round (`cairn.verify.screens`): a
    replay settles it; the round counted the update."""

    node_id: int
    account: str
    kind: str = Field(..., description="zero, duplicate, stale, norm or direction")
    detail: str
    value: float = Field(..., description="The measure that tripped it: a share, cosine or ratio")


class RoundEntry(JobRecord):
    """One DiLoCo round in a job's history."""

    round: int = Field(..., description="1-based")
    train_loss: float | None
    eval: dict[str, float] = Field(..., description="Held-out metrics, when measured this round")
    seconds: float
    compute_seconds: float
    workers: tuple[str, ...] = Field(..., description="Accounts whose work the round counted")
    update_bytes: int = Field(0, description="Bytes of the updates the workers sent, together")
    sent_bytes: int = Field(
        0, description="Bytes of arrays sent over Flower to the round's workers, together"
    )
    received_bytes: int = Field(
        0, description="Bytes of arrays the workers' replies carried over Flower, together"
    )
    dropped: tuple[DroppedWorker, ...]
    screens: tuple[ScreenFlag, ...] = Field((), description="The screens' flags on its updates")
    checkpoint_cid: str | None = Field(None, description="The global weights after the round")


class Replay(JobRecord):
    """One worker-round the coordinator trained again, and what it found."""

    round: int
    account: str
    node_id: int
    ok: bool = Field(..., description="The returned weights are the replayed ones")
    exact: bool = Field(..., description="Bit for bit")
    relative: float | None = Field(
        ..., description="Distance from the replay over the update's length (None: not compared)"
    )
    reason: str
    replay_seconds: float


class Slash(JobRecord):
    """A provider's stake taken for a failed replay, naming the evidence anyone can check."""

    amount: str = Field(..., description="Smallest units taken for the job's builder")
    evidence_cid: str = Field(..., description="The signed report and the replay, public")
    tx_hash: str


class JobVerification(JobRecord):
    """The replay of a job's sampled rounds (`cairn.verify`), after its last round."""

    replays: tuple[Replay, ...] = ()
    skipped: str | None = Field(None, description="Why the job's rounds are not replayed")
    error: str | None = Field(None, description="What stopped the verification")
    slashed: dict[str, Slash] = Field(
        default_factory=dict, description="By account: what a failed replay cost its stake"
    )


class JobSummary(JobRecord):
    """A job without its round history, as lists show it."""

    job_id: str = Field(..., description="0x + 64 hex: its id in JobEscrow too")
    builder: str
    name: str
    method: str
    status: JobStatus
    round: int = Field(..., description="Rounds done")
    rounds: int
    run_id: int | None = Field(..., description="The Flower run that owns the job")
    base_asset: int
    datasets: tuple[DatasetUse, ...]
    budget: str = Field(..., description="Smallest token units")
    escrowed: bool = Field(..., description="The budget is held in JobEscrow")
    recipe: dict[str, Any] = Field(..., description="The recipe, as JSON")
    recipe_cid: str
    metrics: dict[str, float] = Field(..., description="The final model's held-out metrics")
    providers: dict[str, JoinedProvider] = Field(..., description="By account")
    error: str | None
    model_asset: int | None
    model_cid: str | None
    shares_cid: str | None = Field(..., description="The work shares and signed reports")
    reports_root: str | None = Field(..., description="Anchored on ContributionLedger")
    payouts: dict[str, str] = Field(
        ..., description="Smallest units paid to each provider, and `refund` to the builder"
    )
    events_offset: int = Field(..., description="Bytes of the job's events read into the index")
    verification: JobVerification | None = Field(
        None, description="The replay of sampled rounds (None: not verified yet)"
    )
    created_at: float
    updated_at: float
    finished_at: float | None

    @property
    def inner_steps(self) -> int:
        """Optimizer steps each worker takes per round (H)."""
        return int(self.recipe["distributed"]["inner_steps"])

    @property
    def max_seconds(self) -> int:
        """The job's wall-clock limit."""
        return int(self.recipe["budget"]["max_seconds"])

    @property
    def refund(self) -> int:
        """What the budget gave back to the builder, smallest units."""
        return int(self.payouts.get("refund", 0))


class Job(JobSummary):
    """A job with its round history."""

    history: tuple[RoundEntry, ...] = Field(..., description="Rounds in order, each once")


class JobEvent(BaseModel):
    """One line of a job's events, as its coordinator wrote it: `type` and `time`, then the
    fields of that kind of event (a round's losses, a provider's account, an error)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = Field(..., description="started, provider, report, round, failed, finished, ...")
    time: float

    @property
    def fields(self) -> dict[str, Any]:
        """The event's own fields, beside `type` and `time`."""
        return dict(self.__pydantic_extra__ or {})


class JobLog(JobRecord):
    """A job's events from an offset, and the offset to read on from."""

    events: tuple[JobEvent, ...]
    offset: int


def summary_of(row: JobRow) -> JobSummary:
    """A job's index row as a summary."""
    return JobSummary.model_validate(_fields(row))


def job_of(row: JobRow) -> Job:
    """A job's index row as the node shows it."""
    return Job.model_validate({**_fields(row), "history": row.history})


def _fields(row: JobRow) -> dict[str, Any]:
    return {
        "job_id": row.job_id,
        "builder": row.builder,
        "name": row.name,
        "method": row.method,
        "status": row.status,
        "round": row.round,
        "rounds": row.rounds,
        "run_id": int(row.run_id) if row.run_id is not None else None,
        "base_asset": row.base_asset,
        "datasets": row.datasets,
        "budget": row.budget,
        "escrowed": bool(row.escrowed),
        "recipe": row.recipe,
        "recipe_cid": row.recipe_cid,
        "metrics": row.metrics,
        "providers": row.providers,
        "error": row.error,
        "model_asset": row.model_asset,
        "model_cid": row.model_cid,
        "shares_cid": row.shares_cid,
        "reports_root": row.reports_root,
        "payouts": row.payouts,
        "events_offset": row.events_offset,
        "verification": row.verification,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }


def check_job_id(job_id: str) -> str:
    """A job id in lower case; `InvalidInput` unless it is 0x and 64 hex digits."""
    text = job_id.lower()
    if (
        len(text) != 66
        or not text.startswith("0x")
        or any(c not in "0123456789abcdef" for c in text[2:])
    ):
        raise InvalidInput(f"a job id is 0x and 64 hex digits; got {job_id!r}")
    return text
