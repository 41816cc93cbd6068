"""Apps: build one (retrieval index, checks), publish it, list and describe apps.

`POST /apps` publishes with the signed-in account's key held by this node (dev accounts, the
web app). Wallets and the CLI build the index (`POST /apps/index`), check the spec
(`POST /apps/check`), then register the app asset themselves with the spec in `extra.app`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from cairn.api.deps import NodeDep, SessionAddress, SessionSigner
from cairn.api.schemas import SplitBody, Strict
from cairn.core.amounts import parse_smallest_units
from cairn.core.ids import StoredId
from cairn.core.policy import RevenueSplit
from cairn.serve.app_spec import DEFAULT_SPLIT, AppSpec, Retrieval, describe

router = APIRouter(tags=["apps"])


class IndexBody(Strict):
    dataset: StoredId = Field(..., description="The dataset to retrieve from")
    version: str | None = Field(None, description="Its version (manifest CID); default newest")


class AppBody(Strict):
    model: StoredId = Field(..., description="The chat model asset the app wraps")
    system_prompt: str = Field("", max_length=8_000)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    dataset: StoredId | None = Field(None, description="Retrieve passages from this dataset")
    version: str | None = Field(None, description="Its version; default the newest")
    top_k: int = Field(3, ge=1, le=20, description="Passages put into each prompt")
    price_per_call: str = Field("0", description="Smallest token units per call; 0 = free")


class AppCreate(AppBody):
    name: str = Field(..., min_length=1, max_length=200)
    description: str = Field("", max_length=4_000)
    licence: str = Field("proprietary", max_length=64)
    split: SplitBody | None = Field(None, description="Default 5000/2500/0/2500")


def _spec(node: Any, body: AppBody, builder: str) -> AppSpec:
    retrieval = None
    if body.dataset is not None:
        index = node.apps.index(body.dataset, body.version, builder=builder)
        retrieval = Retrieval(body.dataset, index["version"], index["index"], body.top_k)
    return AppSpec(
        model=body.model,
        system_prompt=body.system_prompt,
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_tokens,
        retrieval=retrieval,
        price_per_call=parse_smallest_units(body.price_per_call, "price_per_call"),
    )


@router.get("/apps")
def list_apps(node: NodeDep) -> list[dict[str, Any]]:
    """Every app, newest first."""
    return node.apps.list()


@router.get("/apps/{app_id}")
def get_app(node: NodeDep, app_id: StoredId) -> dict[str, Any]:
    """One app and its spec."""
    asset, spec = node.apps.spec(app_id)
    return describe(asset, spec)


@router.post("/apps/index")
def build_index(node: NodeDep, body: IndexBody, me: SessionAddress) -> dict[str, Any]:
    """Embed a dataset version's records for retrieval (once per version; may take a while)."""
    return node.apps.index(body.dataset, body.version, builder=me)


@router.post("/apps/check")
def check_app(node: NodeDep, body: AppBody, me: SessionAddress) -> dict[str, Any]:
    """The spec to publish in `extra.app`, after checking the signed-in account may build it."""
    spec = _spec(node, body, me)
    node.apps.check(me, spec)
    parents = [spec.model] + ([spec.retrieval.dataset] if spec.retrieval else [])
    return {"app": spec.to_extra(), "parents": parents}


@router.post("/apps", status_code=201)
def create_app(node: NodeDep, body: AppCreate, signer: SessionSigner) -> dict[str, Any]:
    """Publish an app owned by the signed-in account."""
    split = RevenueSplit(**body.split.model_dump()) if body.split else DEFAULT_SPLIT
    return node.apps.create(
        signer,
        name=body.name,
        spec=_spec(node, body, signer.address),
        description=body.description,
        licence=body.licence,
        split=split,
    )
