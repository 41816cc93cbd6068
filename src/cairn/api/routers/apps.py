"""Apps: build one (retrieval index, checks), publish it, list and describe apps.

`POST /apps` publishes with the signed-in account's key held by this node (dev accounts, the
web app). Wallets and the CLI build the index (`POST /apps/index`), check the spec
(`POST /apps/check`), then register the app asset themselves with the spec in `extra.app`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cairn.api.deps import AppsDep, SessionAddress, SessionSigner
from cairn.api.schemas import SplitBody, Strict
from cairn.assets.service import Asset
from cairn.core.amounts import parse_smallest_units
from cairn.core.ids import StoredId
from cairn.core.policy import RevenueSplit
from cairn.serve.app_spec import DEFAULT_SPLIT, AppExtra, AppSpec, Retrieval, RetrievalExtra
from cairn.serve.apps import Apps, PublishedApp, VersionIndex

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


@dataclass(frozen=True)
class AppPublic(Asset):
    """An app: its asset's fields, its spec as its metadata holds it (`app`), and the spec's
    model, price per call (smallest token units; 0 = free) and retrieval repeated at the top."""

    app: AppExtra
    model: int  # the chat model asset it wraps
    price_per_call: str
    retrieval: RetrievalExtra | None  # where its passages come from

    @classmethod
    def of(cls, published: PublishedApp) -> AppPublic:
        """An app as the API shows it."""
        spec = published.spec
        return cls(
            **vars(published.asset),
            app=spec.to_extra(),
            model=spec.model,
            price_per_call=str(spec.price_per_call),
            retrieval=spec.retrieval.to_extra() if spec.retrieval else None,
        )


class AppChecked(BaseModel):
    app: AppExtra = Field(..., description="The spec to register the app with, as `extra.app`")
    parents: list[int] = Field(..., description="Its lineage parents: the model, the dataset")


def _spec(apps: Apps, body: AppBody, builder: str) -> AppSpec:
    retrieval = None
    if body.dataset is not None:
        index = apps.index(body.dataset, body.version, builder=builder)
        retrieval = Retrieval(body.dataset, index.version, index.index, body.top_k)
    return AppSpec(
        model=body.model,
        system_prompt=body.system_prompt,
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=body.max_tokens,
        retrieval=retrieval,
        price_per_call=parse_smallest_units(body.price_per_call, "price_per_call"),
    )


@router.get("/apps", response_model=list[AppPublic])
def list_apps(apps: AppsDep) -> list[AppPublic]:
    """Every app, newest first."""
    return [AppPublic.of(app) for app in apps.list()]


@router.get("/apps/{app_id}", response_model=AppPublic)
def get_app(apps: AppsDep, app_id: StoredId) -> AppPublic:
    """One app and its spec."""
    return AppPublic.of(apps.get(app_id))


@router.post("/apps/index", response_model=VersionIndex)
def build_index(apps: AppsDep, body: IndexBody, me: SessionAddress) -> VersionIndex:
    """Embed a dataset version's records for retrieval (once per version; may take a while)."""
    return apps.index(body.dataset, body.version, builder=me)


@router.post("/apps/check", response_model=AppChecked)
def check_app(apps: AppsDep, body: AppBody, me: SessionAddress) -> AppChecked:
    """The spec to publish in `extra.app`, after checking the signed-in account may build it."""
    spec = _spec(apps, body, me)
    apps.check(me, spec)
    return AppChecked(app=spec.to_extra(), parents=spec.parents)


@router.post("/apps", status_code=201, response_model=AppPublic)
def create_app(apps: AppsDep, body: AppCreate, signer: SessionSigner) -> AppPublic:
    """Publish an app owned by the signed-in account."""
    split = RevenueSplit(**body.split.model_dump()) if body.split else DEFAULT_SPLIT
    made = apps.create(
        signer,
        name=body.name,
        spec=_spec(apps, body, signer.address),
        description=body.description,
        licence=body.licence,
        split=split,
    )
    return AppPublic.of(made)
