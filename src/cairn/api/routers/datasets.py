"""Datasets, contributions, reviews, anchoring, proofs and export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from cairn.api.dataset_schemas import (
    AnchorOutcomePublic,
    AttributionPublic,
    ContributionPublic,
    DatasetDetail,
    DatasetPublic,
    GoldAdded,
    ProofPublic,
    RecordPublic,
    ReviewAnswerPublic,
    ReviewTaskPublic,
    StandingPublic,
    VersionPublic,
)
from cairn.api.deps import DataDep, ExportGate, MaybeSessionAddress, SessionAddress, SessionSigner
from cairn.api.schemas import SplitBody, Strict, file_answer
from cairn.core.errors import InvalidInput
from cairn.core.ids import Offset, StoredId
from cairn.core.policy import RevenueSplit
from cairn.data.datasets import parse_spec
from cairn.data.service import EXPORT_MEDIA
from cairn.data.signing import ContributionTypedData, records_root, upload_lines

router = APIRouter(tags=["datasets"])


class DatasetCreate(Strict):
    name: str = Field(..., max_length=200, examples=["Polite replies"])
    description: str = Field("", max_length=20_000)
    licence: str = Field(..., max_length=64, examples=["CC-BY-4.0"])
    spec: dict[str, Any] = Field(
        ...,
        description="task ({type, labels, answer_type}), record_schema, validation, review, reward, anchoring",
        examples=[{"task": {"type": "instruction"}}],
    )
    split: SplitBody | None = Field(
        None, description="Revenue split; default owner 10 %, data 90 %"
    )


class UploadBody(Strict):
    contributor: str = Field(..., description="The signing account")
    nonce: str = Field(
        ..., pattern=r"^[0-9]{1,78}$", description="Unused nonce of the contributor, decimal"
    )
    signature: str = Field(
        ..., max_length=200, description="EIP-712 signature over (datasetId, recordsRoot, nonce)"
    )
    records: list[str] | None = Field(None, description="The upload's lines (each a JSON record)")
    jsonl: str | None = Field(None, description="Or the whole JSONL file as text")

    def lines(self) -> list[str]:
        if (self.records is None) == (self.jsonl is None):
            raise InvalidInput("send exactly one of 'records' (a list of lines) or 'jsonl' (text)")
        return (
            [line for line in self.records if line.strip()]
            if self.records is not None
            else upload_lines(self.jsonl or "")
        )


class TypedDataBody(Strict):
    nonce: str = Field(..., pattern=r"^[0-9]{1,78}$")
    records: list[str] | None = None
    jsonl: str | None = None


class GoldBody(Strict):
    items: list[dict[str, Any]] = Field(..., description='[{"record": {...}, "answer": "approve"}]')


class AnswerBody(Strict):
    answer: str = Field(..., max_length=200)


@router.get("/datasets", response_model=list[DatasetPublic])
def list_datasets(data: DataDep) -> list[DatasetPublic]:
    """Every dataset, newest first."""
    return [DatasetPublic.model_validate(d) for d in data.datasets.list()]


@router.post("/datasets", status_code=201, response_model=DatasetPublic)
def create_dataset(data: DataDep, body: DatasetCreate, signer: SessionSigner) -> DatasetPublic:
    """Create a dataset owned by the signed-in account (whose key this node holds)."""
    split = RevenueSplit(**body.split.model_dump()) if body.split else None
    dataset = data.datasets.create(
        signer,
        name=body.name,
        licence=body.licence,
        spec=parse_spec(body.spec),
        description=body.description,
        split=split,
    )
    return DatasetPublic.model_validate(dataset)


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail)
def get_dataset(data: DataDep, dataset_id: StoredId) -> DatasetDetail:
    """A dataset with its record counts and versions."""
    return DatasetDetail.model_validate(data.summary(dataset_id))


@router.post(
    "/datasets/{dataset_id}/contributions/typed-data", response_model=ContributionTypedData
)
def typed_data(data: DataDep, dataset_id: StoredId, body: TypedDataBody) -> ContributionTypedData:
    """The EIP-712 document to sign for an upload (for `eth_signTypedData_v4`)."""
    lines = UploadBody(
        contributor="0x" + "0" * 40,
        nonce=body.nonce,
        signature="",
        records=body.records,
        jsonl=body.jsonl,
    ).lines()
    data.datasets.get(dataset_id)
    return data.contributions.typed_data(dataset_id, records_root(lines), int(body.nonce))


@router.post(
    "/datasets/{dataset_id}/contributions",
    status_code=201,
    response_model=ContributionPublic,
    responses={200: {"model": ContributionPublic, "description": "A signed upload sent again"}},
)
def contribute(
    data: DataDep, dataset_id: StoredId, body: UploadBody, response: Response
) -> ContributionPublic:
    """Contribute records; one EIP-712 signature covers the upload. Each record gets a verdict.

    Sending the same signed upload again returns the first answer (`replayed: true`, 200).
    """
    result = data.contributions.contribute(
        dataset_id,
        contributor=body.contributor,
        nonce=int(body.nonce),
        signature=body.signature,
        lines=body.lines(),
    )
    if result.replayed:
        response.status_code = 200
    return ContributionPublic.model_validate(result)


@router.get("/datasets/{dataset_id}/records", response_model=list[RecordPublic])
def list_records(
    data: DataDep,
    gate: ExportGate,
    dataset_id: StoredId,
    me: MaybeSessionAddress,
    status: Annotated[
        str | None, Query(description="review, accepted, anchored, rejected or held")
    ] = None,
    contributor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[RecordPublic]:
    """Stored records of a dataset (of a licensed one: your own, or all with a licence).

    Others' records are listed once review has let them in (accepted or anchored); your own, and
    to the dataset's owner and curators every record, at any status. A public review queue would
    let a reviewer tell a gold question by its absence from it.
    """
    records = data.records_for(
        me,
        dataset_id,
        gate=gate,
        status=status,
        contributor=contributor,
        limit=limit,
        offset=offset,
    )
    return [RecordPublic.model_validate(r) for r in records]


@router.post("/datasets/{dataset_id}/gold", status_code=201, response_model=GoldAdded)
def add_gold(data: DataDep, dataset_id: StoredId, body: GoldBody, me: SessionAddress) -> GoldAdded:
    """Seed gold questions (items with known answers); the dataset's owner only."""
    return GoldAdded(added=data.reviews.add_gold(dataset_id, me, body.items))


@router.get(
    "/datasets/{dataset_id}/reviews/next",
    response_model=ReviewTaskPublic | None,
    responses={204: {"description": "Nothing to review"}},
)
def next_review(
    data: DataDep, dataset_id: StoredId, me: SessionAddress, response: Response
) -> ReviewTaskPublic | None:
    """The signed-in account's next review task; 204 when there is nothing to review."""
    task = data.reviews.next_task(dataset_id, me)
    if task is None:
        response.status_code = 204
        return None
    return ReviewTaskPublic.model_validate(task)


@router.post("/reviews/{task_id}", response_model=ReviewAnswerPublic)
def answer_review(
    data: DataDep, task_id: StoredId, body: AnswerBody, me: SessionAddress
) -> ReviewAnswerPublic:
    """Answer a review task: approve/reject, or a label. The answer says nothing of what it
    decided (a gold question decides nothing, so that would tell which tasks were gold): a
    record shows its decision once review accepts it."""
    return ReviewAnswerPublic.model_validate(data.reviews.submit(task_id, me, body.answer))


@router.get("/datasets/{dataset_id}/reputation", response_model=list[StandingPublic])
def reputation(data: DataDep, dataset_id: StoredId) -> list[StandingPublic]:
    """Every reviewer's reputation on the dataset, with how many of its answers were checked.

    A reviewer's answers count in groups of five, each group once every record in it is decided,
    and the split between gold questions and records is not published: no change here shows
    whether one task was gold.
    """
    return [StandingPublic.model_validate(s) for s in data.reviews.standings(dataset_id)]


@router.post("/datasets/{dataset_id}/anchor", response_model=AnchorOutcomePublic)
def anchor(data: DataDep, dataset_id: StoredId, me: SessionAddress) -> AnchorOutcomePublic:
    """Anchor the accepted records now (the dataset's owner or curators); the dataset's
    bounties pay for the new batch at once."""
    return AnchorOutcomePublic.model_validate(data.anchoring.anchor_by(me, dataset_id))


@router.get("/datasets/{dataset_id}/versions", response_model=list[VersionPublic])
def versions(data: DataDep, dataset_id: StoredId) -> list[VersionPublic]:
    """The dataset's versions, newest first, each named by its manifest's CID."""
    return [VersionPublic.model_validate(v) for v in data.anchoring.versions(dataset_id)]


@router.get("/datasets/{dataset_id}/attribution", response_model=AttributionPublic)
def attribution(
    data: DataDep, dataset_id: StoredId, version: str | None = None
) -> AttributionPublic:
    """A version's attribution table (account -> weight in parts of 10**18)."""
    return AttributionPublic.model_validate(data.anchoring.attribution_of(dataset_id, version))


@router.get("/datasets/{dataset_id}/records/{record}/proof", response_model=ProofPublic)
def proof(data: DataDep, dataset_id: StoredId, record: str) -> ProofPublic:
    """(batch, index, proof) of an anchored record, checked against ContributionLedger."""
    return ProofPublic.model_validate(data.anchoring.proof(dataset_id, record))


@router.get(
    "/datasets/{dataset_id}/export",
    response_class=Response,
    responses=file_answer("The version's records, one file", *EXPORT_MEDIA.values()),
)
def export(
    data: DataDep,
    gate: ExportGate,
    dataset_id: StoredId,
    me: MaybeSessionAddress,
    format: Annotated[str, Query(description="jsonl or parquet")] = "jsonl",
    version: Annotated[str | None, Query(description="manifest CID; default the newest")] = None,
) -> Response:
    """A version's records as JSONL or Parquet.

    A licensed dataset needs a licence held by the signed-in account; 403 says which to buy.
    """
    exported = data.export_for(me, dataset_id, format, version, gate=gate)
    return Response(
        exported,
        media_type=EXPORT_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="dataset-{dataset_id}.{format}"'},
    )
