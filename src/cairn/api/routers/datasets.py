"""Datasets, contributions, reviews, anchoring, proofs and export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from cairn.api.deps import MaybeSessionAddress, NodeDep, SessionAddress, SessionSigner
from cairn.api.schemas import SplitBody, Strict
from cairn.core.errors import InvalidInput
from cairn.core.ids import Offset, StoredId
from cairn.core.licensing import Use
from cairn.core.policy import RevenueSplit
from cairn.data.datasets import parse_spec
from cairn.data.signing import records_root, upload_lines

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


@router.get("/datasets")
def list_datasets(node: NodeDep) -> list[dict[str, Any]]:
    """Every dataset, newest first."""
    return [d.to_dict() for d in node.data.datasets.list()]


@router.post("/datasets", status_code=201)
def create_dataset(node: NodeDep, body: DatasetCreate, signer: SessionSigner) -> dict[str, Any]:
    """Create a dataset owned by the signed-in account (whose key this node holds)."""
    split = RevenueSplit(**body.split.model_dump()) if body.split else None
    dataset = node.data.datasets.create(
        signer,
        name=body.name,
        licence=body.licence,
        spec=parse_spec(body.spec),
        description=body.description,
        split=split,
    )
    return dataset.to_dict()


@router.get("/datasets/{dataset_id}")
def get_dataset(node: NodeDep, dataset_id: StoredId) -> dict[str, Any]:
    """A dataset with its record counts and versions."""
    return node.data.summary(dataset_id)


@router.post("/datasets/{dataset_id}/contributions/typed-data")
def typed_data(node: NodeDep, dataset_id: StoredId, body: TypedDataBody) -> dict[str, Any]:
    """The EIP-712 document to sign for an upload (for `eth_signTypedData_v4`)."""
    lines = UploadBody(
        contributor="0x" + "0" * 40,
        nonce=body.nonce,
        signature="",
        records=body.records,
        jsonl=body.jsonl,
    ).lines()
    node.data.datasets.get(dataset_id)
    return node.data.contributions.typed_data(dataset_id, records_root(lines), int(body.nonce))


@router.post("/datasets/{dataset_id}/contributions")
def contribute(
    node: NodeDep, dataset_id: StoredId, body: UploadBody, response: Response
) -> dict[str, Any]:
    """Contribute records; one EIP-712 signature covers the upload. Each record gets a verdict.

    Sending the same signed upload again returns the first answer (`replayed: true`).
    """
    result = node.data.contributions.contribute(
        dataset_id,
        contributor=body.contributor,
        nonce=int(body.nonce),
        signature=body.signature,
        lines=body.lines(),
    )
    response.status_code = 200 if result.replayed else 201
    return result.to_dict()


@router.get("/datasets/{dataset_id}/records")
def list_records(
    node: NodeDep,
    dataset_id: StoredId,
    me: MaybeSessionAddress,
    status: Annotated[
        str | None, Query(description="review, accepted, anchored, rejected or held")
    ] = None,
    contributor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[dict[str, Any]]:
    """Stored records of a dataset (of a licensed one: your own, or all with a licence)."""
    if not (me and contributor and contributor.lower() == me.lower()):
        node.licences.require(Use.EXPORT, dataset_id, me)
    return node.data.list_records(
        dataset_id, status=status, contributor=contributor, limit=limit, offset=offset
    )


@router.post("/datasets/{dataset_id}/gold", status_code=201)
def add_gold(
    node: NodeDep, dataset_id: StoredId, body: GoldBody, me: SessionAddress
) -> dict[str, int]:
    """Seed gold questions (items with known answers); the dataset's owner only."""
    return {"added": node.data.reviews.add_gold(dataset_id, me, body.items)}


@router.get("/datasets/{dataset_id}/reviews/next")
def next_review(
    node: NodeDep, dataset_id: StoredId, me: SessionAddress, response: Response
) -> dict[str, Any] | None:
    """The signed-in account's next review task; 204 when there is nothing to review."""
    task = node.data.reviews.next_task(dataset_id, me)
    if task is None:
        response.status_code = 204
        return None
    return task.to_dict()


@router.post("/reviews/{task_id}")
def answer_review(
    node: NodeDep, task_id: StoredId, body: AnswerBody, me: SessionAddress
) -> dict[str, Any]:
    """Answer a review task: approve/reject, or a label."""
    return node.data.reviews.submit(task_id, me, body.answer)


@router.get("/datasets/{dataset_id}/reputation")
def reputation(node: NodeDep, dataset_id: StoredId) -> list[dict[str, Any]]:
    """Every reviewer's reputation on the dataset, with its evidence."""
    node.data.datasets.get(dataset_id)
    held = node.data.reviews.held_accounts(dataset_id)
    return [
        {
            "account": account,
            "reputation": round(score, 4),
            **evidence.__dict__,
            "held": account in held,
        }
        for account, (score, evidence) in sorted(node.data.reviews.reputations(dataset_id).items())
    ]


@router.post("/datasets/{dataset_id}/anchor")
def anchor(node: NodeDep, dataset_id: StoredId, me: SessionAddress) -> dict[str, Any]:
    """Anchor the accepted records now (the dataset's owner or curators); the dataset's
    bounties pay for the new batch at once."""
    return node.data.anchoring.anchor_by(me, dataset_id).to_dict()


@router.get("/datasets/{dataset_id}/versions")
def versions(node: NodeDep, dataset_id: StoredId) -> list[dict[str, Any]]:
    """The dataset's versions, newest first, each named by its manifest's CID."""
    return node.data.anchoring.versions(dataset_id)


@router.get("/datasets/{dataset_id}/attribution")
def attribution(node: NodeDep, dataset_id: StoredId, version: str | None = None) -> dict[str, Any]:
    """A version's attribution table (account -> weight in parts of 10**18)."""
    return node.data.anchoring.attribution_of(dataset_id, version)


@router.get("/datasets/{dataset_id}/records/{record}/proof")
def proof(node: NodeDep, dataset_id: StoredId, record: str) -> dict[str, Any]:
    """(batch, index, proof) of an anchored record, checked against ContributionLedger."""
    return node.data.anchoring.proof(dataset_id, record)


@router.get("/datasets/{dataset_id}/export")
def export(
    node: NodeDep,
    dataset_id: StoredId,
    me: MaybeSessionAddress,
    format: Annotated[str, Query(description="jsonl or parquet")] = "jsonl",
    version: Annotated[str | None, Query(description="manifest CID; default the newest")] = None,
) -> Response:
    """A version's records as JSONL or Parquet.

    A licensed dataset needs a licence held by the signed-in account; 403 says which to buy.
    """
    node.licences.require(Use.EXPORT, dataset_id, me)
    data = node.data.export(dataset_id, format, version)
    media = "application/x-ndjson" if format == "jsonl" else "application/vnd.apache.parquet"
    filename = f"dataset-{dataset_id}.{format}"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
