"""What a dataset is and how it treats contributions: task, validation, review, reward policy.

Pure value types (pydantic), stored in a dataset's metadata and validated on the way in, so a
bad policy is refused with the field at fault before anything is registered.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cairn.core.errors import InvalidInput

TaskType = Literal["instruction", "classification", "verifiable"]
PiiKind = Literal["email", "phone", "card", "ip"]
PiiAction = Literal["flag", "redact", "reject"]
ALL_PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "ip")


class Policy(BaseModel):
    """Unknown keys are an error: a typo in a policy must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(Policy):
    """The task a dataset's records serve, and so the fields every record has.

    - instruction: `prompt`, `response` (supervised fine-tuning pairs)
    - classification: `text`, `label`, with `label` one of `labels`
    - verifiable: `prompt`, `answer`, where `answer` is checked by `answer_type` (RL rewards)
    """

    type: TaskType
    labels: list[str] = Field(default_factory=list, description="classification: the label set")
    answer_type: Literal["exact", "numeric"] = Field(
        "exact", description="verifiable: how answers compare"
    )

    @model_validator(mode="after")
    def _labels_fit_the_task(self) -> TaskSpec:
        if self.type == "classification":
            if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
                raise ValueError("a classification task needs at least two distinct labels")
        elif self.labels:
            raise ValueError(f"labels only apply to classification tasks, not {self.type}")
        return self

    @property
    def text_fields(self) -> tuple[str, ...]:
        """Fields holding free text: normalised, deduplicated and checked for personal data."""
        return {
            "instruction": ("prompt", "response"),
            "classification": ("text",),
            "verifiable": ("prompt", "answer"),
        }[self.type]

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Fields every record of this task must have."""
        return {
            "instruction": ("prompt", "response"),
            "classification": ("text", "label"),
            "verifiable": ("prompt", "answer"),
        }[self.type]

    def base_schema(self) -> dict[str, Any]:
        """The JSON Schema every record of this task satisfies, before the dataset's own."""
        props: dict[str, Any] = {f: {"type": "string"} for f in self.required_fields}
        if self.type == "classification":
            props["label"] = {"type": "string", "enum": list(self.labels)}
        return {"type": "object", "required": list(self.required_fields), "properties": props}


class ValidationPolicy(Policy):
    """Which checks run on each contributed record, and their limits."""

    max_record_bytes: int = Field(
        16_384, ge=64, le=1_048_576, description="UTF-8 bytes of one JSON record"
    )
    max_field_chars: int = Field(
        8_000, ge=1, le=1_000_000, description="characters in one text field"
    )
    max_records_per_upload: int = Field(10_000, ge=1, le=1_000_000)
    normalize: bool = Field(
        True, description="Unicode NFC, unify line ends, collapse runs of spaces, strip"
    )
    exact_dedup: bool = Field(
        True, description="reject a record whose normalised content is already in the dataset"
    )
    near_dedup: bool = Field(
        True, description="reject a record too similar to one already in the dataset"
    )
    near_dup_threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Jaccard similarity on shingles"
    )
    shingle_words: int = Field(
        3, ge=1, le=10, description="words per shingle for near-duplicate detection"
    )
    pii_action: PiiAction = Field(
        "redact", description="what to do with personal data found in text"
    )
    pii_kinds: list[PiiKind] = Field(default_factory=lambda: list(ALL_PII_KINDS))
    min_chars: int = Field(
        1, ge=0, description="shortest acceptable text field after normalisation"
    )
    reject_degenerate: bool = Field(
        True, description="reject text that is one character or word repeated"
    )


class ReviewPolicy(Policy):
    """How many records are reviewed, by how many people, and when a record is decided."""

    review_share: float = Field(
        0.2, ge=0.0, le=1.0, description="share of valid records that get reviewed"
    )
    votes_per_record: int = Field(
        3, ge=1, le=50, description="reviews requested per reviewed record"
    )
    min_votes: int = Field(
        3,
        ge=1,
        le=50,
        description="votes needed for the Dawid-Skene model; fewer use weighted majority",
    )
    accept_threshold: float = Field(
        0.9, gt=0.5, le=1.0, description="posterior confidence that decides a record"
    )
    gold_share: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of a reviewer's tasks that are gold questions"
    )
    reputation_floor: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="below this, an account gets no tasks and its records are held",
    )
    min_gold_for_reputation: int = Field(
        3, ge=1, description="gold answers before reputation can drop an account"
    )
    reviewers: list[str] = Field(
        default_factory=list,
        max_length=1_000,
        description="addresses admitted to review a licensed dataset without holding a licence "
        "(reviewers see full records: a licensed dataset admits its owner, its curators, "
        "licence holders and these)",
    )

    @model_validator(mode="after")
    def _reviewers_are_addresses(self) -> ReviewPolicy:
        for address in self.reviewers:
            if not (
                isinstance(address, str)
                and len(address) == 42
                and address.startswith("0x")
                and all(c in "0123456789abcdefABCDEF" for c in address[2:])
            ):
                raise ValueError(f"reviewers: {address!r} is not a 0x address")
        return self


class RewardPolicy(Policy):
    """How a dataset version's attribution divides between contributors and reviewers (bps)."""

    contributors_bps: int = Field(9_000, ge=0, le=10_000)
    reviewers_bps: int = Field(1_000, ge=0, le=10_000)

    @model_validator(mode="after")
    def _sums_to_whole(self) -> RewardPolicy:
        if self.contributors_bps + self.reviewers_bps != 10_000:
            raise ValueError("contributors_bps + reviewers_bps must be 10000")
        return self


class AnchorPolicy(Policy):
    """When accepted records are batched and anchored on chain."""

    every_records: int = Field(
        1_000, ge=1, description="anchor once this many accepted records wait"
    )
    every_seconds: int = Field(300, ge=1, description="anchor waiting records at least this often")


class DatasetSpec(Policy):
    """Everything that defines a dataset beyond its asset: stored in its metadata."""

    task: TaskSpec
    record_schema: dict[str, Any] | None = Field(
        None, description="extra JSON Schema every record must satisfy"
    )
    validation: ValidationPolicy = Field(default_factory=lambda: ValidationPolicy())
    review: ReviewPolicy = Field(default_factory=lambda: ReviewPolicy())
    reward: RewardPolicy = Field(default_factory=lambda: RewardPolicy())
    anchoring: AnchorPolicy = Field(default_factory=lambda: AnchorPolicy())

    @property
    def review_labels(self) -> list[str]:
        """What a reviewer answers: a label for classification, else approve or reject."""
        return (
            list(self.task.labels) if self.task.type == "classification" else ["approve", "reject"]
        )


def parse_spec(raw: Any) -> DatasetSpec:
    """A dataset spec from JSON, every error naming its field; the record schema is checked too."""
    try:
        spec = DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"dataset spec: {where}: {first['msg']}") from None
    if spec.record_schema is not None:
        # jsonschema loads only for a spec that has a schema: not for every reader of specs
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(spec.record_schema)
        except SchemaError as exc:
            raise InvalidInput(
                f"dataset spec: record_schema is not a valid JSON Schema: {exc.message}"
            ) from None
    return spec
