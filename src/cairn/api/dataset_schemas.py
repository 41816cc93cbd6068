"""Response bodies of the dataset API, read from the data domain's records.

Field names are those the node has always answered, which the CLI and `NodeClient` read;
each model validates from the record it shows (`Model.model_validate(record)`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cairn.core.data_policy import DatasetSpec, RewardPolicy
from cairn.data.signing import ContributionTypedData


class Public(BaseModel):
    """A response body read from a domain record's attributes."""

    model_config = ConfigDict(from_attributes=True)


class DatasetPublic(Public):
    asset_id: int
    name: str
    owner: str
    licence: str
    metadata_cid: str
    spec: DatasetSpec
    counts: dict[str, int] = Field(..., description="Records per status")
    versions: int = Field(..., description="Anchored versions")
    latest_version: str | None = Field(..., description="The newest version's manifest CID")


class VersionPublic(Public):
    version: str = Field(..., description="The manifest's CID, which names the version")
    number: int
    records: int
    batches: int
    attribution_cid: str
    created_at: int


class DatasetDetail(DatasetPublic):
    version_list: list[VersionPublic] = Field(..., description="Newest first")


class VerdictPublic(Public):
    line: int = Field(..., description="1-based line of the upload")
    ok: bool
    code: str = Field(..., description="ok, or why the record was refused")
    reason: str | None
    record_hash: str | None
    duplicate_of: str | None
    pii: list[str] = Field(..., description="Kinds of personal data found")
    status: str | None = Field(..., description="accepted, review or held; None when refused")


class ContributionPublic(Public):
    upload_id: int
    dataset_id: int
    contributor: str
    nonce: str = Field(..., description="Decimal")
    root: str = Field(..., description="Merkle root of the upload's line hashes")
    total: int
    accepted: int
    rejected: int
    replayed: bool = Field(..., description="This signed upload had been received before")
    verdicts: list[VerdictPublic]
    typed_data: ContributionTypedData = Field(
        ..., description="The EIP-712 document the contributor signed (eth_signTypedData_v4)"
    )
    signature: str = Field(..., description="The contributor's signature over `typed_data`")

    @field_validator("nonce", mode="before")
    @classmethod
    def _decimal(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class RecordPublic(Public):
    id: int
    record_hash: str
    contributor: str
    status: str = Field(..., description="review, accepted, anchored, rejected or held")
    reason: str | None
    quality: float
    label: str | None = Field(..., description="The label review settled on")
    pii: list[str]
    content: dict[str, Any] = Field(..., description="The record, in the dataset's shape")


class GoldAdded(BaseModel):
    added: int


class ReviewTaskPublic(Public):
    task_id: int
    dataset_id: int
    kind: str = Field(..., description="approve (approve or reject) or label")
    labels: list[str]
    record: dict[str, Any]


class ReviewAnswerPublic(Public):
    """An answer recorded. It does not say which records it decided: a gold question never
    decides one, so naming them would tell a reviewer which of its tasks were real."""

    task_id: int
    answer: str


class StandingPublic(Public):
    """A reviewer's standing, without its split between gold questions and decided records (a
    split that moved would say which tasks were gold)."""

    account: str
    reputation: float
    judged: int = Field(
        ...,
        description="Answers checked, against gold or a decision; they count in groups, each "
        "once the records in it are decided",
    )
    held: bool = Field(..., description="Below the floor: no more tasks, its records held")


class AnchoredBatchPublic(Public):
    dataset_id: int
    batch_index: int
    root: str
    count: int
    cid: str
    tx_hash: str
    version: str
    attribution_cid: str


class BountyPaidPublic(Public):
    bounty_id: int
    batch_root: str
    records: int
    reviews: int
    amount: str = Field(..., description="Smallest units, decimal")
    epoch: int | None
    tx_hash: str | None


class AnchorOutcomePublic(Public):
    anchored: bool
    batch: AnchoredBatchPublic | None
    bounties_paid: list[BountyPaidPublic] = Field(..., description="Paid by the new batch")


class AttributionEntryPublic(Public):
    account: str
    weight: str = Field(..., description="Parts of `scale`, decimal")


class AttributionPublic(Public):
    version: str
    cid: str
    schema_: str = Field(..., alias="schema")
    scale: str
    dataset_id: int
    policy: RewardPolicy
    entries: list[AttributionEntryPublic]


class ProofPublic(Public):
    dataset_id: int
    record_hash: str
    contributor: str
    batch_index: int
    batch_cid: str
    root: str
    leaf_encoding: list[str]
    value: list[str]
    leaf: str
    proof: list[str]
    ledger: str = Field(..., description="ContributionLedger's address")
    verified_on_chain: bool
