"""/apps: the apps this node serves, the app builder (/apps/new), and each app's page.

The builder turns its form into an `AppSpec` (with the retrieval index `Apps.index` builds once
per dataset version) and publishes it with `Apps.create`, as `POST /api/v1/apps` does. Its
"Try it" runs one chat through the unpublished spec: the app's system prompt and the passages
retrieved for the question go before it (`augment_messages`, as the gateway does for an app),
and the model answers through the gateway on the signer's web-playground key, so the builder
pays the model's own per-token price. An app's page chats with the published app through the
gateway, charged the app's price per call.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from cairn.api.deps import NodeDep, get_node
from cairn.core.amounts import parse_units
from cairn.core.errors import CairnError, InvalidInput
from cairn.core.ids import StoredId
from cairn.core.licensing import LicenceRequired
from cairn.node import Node
from cairn.serve.app_spec import DEFAULT_SPLIT, MAX_PROMPT, MAX_TOP_K, AppSpec, Retrieval
from cairn.serve.prices import CallPrice
from cairn.serve.retrieval import augment_messages
from cairn.web.market import account_names
from cairn.web.playground import (
    ROLES,
    call_cost,
    conversation,
    deposit_context,
    form_number,
    refusal_text,
    served_models,
)
from cairn.web.render import page, redirect
from cairn.web.viewer import MaybeViewer, Viewer, ViewerDep, fresh_viewer

router = APIRouter()

ANSWER_TOKENS = 128  # an answer's length on these pages when the spec sets none


class AppForm(BaseModel):
    """The builder's fields as typed, so a refused form comes back exactly as it was sent."""

    name: str = Field("", max_length=200)
    description: str = Field("", max_length=4_000)
    model: str = Field("", max_length=20)
    system_prompt: str = Field("", max_length=MAX_PROMPT)
    dataset: str = Field("", max_length=20)  # "": no retrieval
    top_k: str = Field("3", max_length=10)
    temperature: str = Field("", max_length=20)  # "": the model's default
    max_tokens: str = Field("", max_length=10)
    price: str = Field("0", max_length=80)  # CAIRN per call
    message: str = Field("", max_length=20_000)  # the question "Try it" asks
    action: str = Field("try", max_length=10)  # try or publish


def spec_of(node: Node, form: AppForm, builder: str) -> AppSpec:
    """The spec the form describes; with a dataset, its newest version's index (built once)."""
    if not form.model.strip().isdigit():
        raise InvalidInput("pick the chat model the app wraps")
    spec = AppSpec(
        model=int(form.model),
        system_prompt=form.system_prompt,
        temperature=form_number(form.temperature, "temperature", float),
        max_tokens=form_number(form.max_tokens, "max answer tokens", int),
        price_per_call=parse_units(form.price, what="price per call", zero=True),
    )
    if not form.dataset.strip():
        return spec
    top_k = form_number(form.top_k, "passages per question", int) or 0
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidInput(f"passages per question must be 1..{MAX_TOP_K}; got {top_k}")
    if not form.dataset.strip().isdigit():
        raise InvalidInput("pick a dataset from the list, or none")
    index = node.apps.index(int(form.dataset), builder=builder)
    return replace(
        spec, retrieval=Retrieval(index["dataset"], index["version"], index["index"], top_k)
    )


def chat_models(node: Node) -> list[dict[str, Any]]:
    """The chat models an app can wrap."""
    return [m for m in served_models(node) if m["kind"] == "chat" and m["family"] != "app"]


def retrievable(node: Node) -> list[dict[str, Any]]:
    """Datasets with an anchored version to retrieve from, with their newest version."""
    out = []
    for asset in node.assets.list(kind="dataset", limit=500):
        try:
            versions = node.data.anchoring.versions(asset.asset_id)
        except CairnError:
            continue  # a dataset asset without a Cairn spec has no versions
        if versions:
            out.append({"id": asset.asset_id, "name": asset.name, "newest": versions[0]})
    return out


# -- the list -------------------------------------------------------------------------------


@router.get("/apps", response_class=HTMLResponse)
def apps_page(request: Request, node: NodeDep, viewer: MaybeViewer) -> HTMLResponse:
    """Every app on this node, newest first."""
    assets = {str(a.asset_id): a.name for a in node.assets.list(limit=1000)}
    return page(
        request,
        "apps.html",
        title="Apps",
        apps=[{**a, "price": CallPrice.from_fields(a)} for a in node.apps.list()],
        assets=assets,
        names=account_names(node),
    )


# -- the builder ----------------------------------------------------------------------------


def _builder(
    request: Request, viewer: Viewer, form: AppForm, *, status: int = 200, **context: Any
) -> HTMLResponse:
    node = get_node(request)
    fresh = fresh_viewer(request, viewer)  # a try spent prepaid tokens
    return page(
        request,
        "app_builder.html",
        status=status,
        title="Build an app",
        form=form,
        models=chat_models(node),
        datasets=retrievable(node),
        max_top_k=MAX_TOP_K,
        max_prompt=MAX_PROMPT,
        split=DEFAULT_SPLIT,
        deposit=deposit_context(node, fresh, "/playground"),
        **context,
    )


def _refusal(exc: CairnError) -> dict[str, Any]:
    """Why a try or a publish was refused, as the pages show it; nothing was charged or made."""
    return {
        "error": refusal_text(exc),
        "payment_required": exc.status == 402,
        "licence_asset": exc.asset_id if isinstance(exc, LicenceRequired) else None,
    }


@router.get("/apps/new", response_class=HTMLResponse)
def builder(
    request: Request, viewer: ViewerDep, model: str = "", dataset: str = ""
) -> HTMLResponse:
    """The app builder: a chat model, a system prompt, optional retrieval, defaults, a price."""
    return _builder(request, viewer, AppForm(model=model, dataset=dataset))


@router.post("/apps/new", response_model=None)
def build(
    request: Request, node: NodeDep, viewer: ViewerDep, form: Annotated[AppForm, Form()]
) -> HTMLResponse | RedirectResponse:
    """Try the spec with one question, or publish it; a refused form registers nothing."""
    if form.action == "publish":
        try:
            if not form.name.strip():
                raise InvalidInput("an app needs a name")
            made = node.apps.create(
                node.signers.get(viewer.address),
                name=form.name.strip(),
                spec=spec_of(node, form, viewer.address),
                description=form.description.strip(),
            )
        except CairnError as exc:
            return _builder(request, viewer, form, status=exc.status, **_refusal(exc))
        return redirect(
            f"/apps/{made['asset_id']}",
            f"Published app “{made['name']}” (asset {made['asset_id']}).",
        )
    if not form.message.strip():
        return _builder(request, viewer, form, status=422, error="Write a question to try it with.")
    try:
        spec = spec_of(node, form, viewer.address)
        node.apps.check(viewer.address, spec)
        passages: list[str] = []
        if spec.retrieval is not None:
            passages = node.gateway.retriever.retrieve(
                spec.retrieval.index, form.message, spec.retrieval.top_k
            )
        asked = [{"role": "user", "content": form.message}]
        metered = node.gateway.generate(
            node.economy.keys.for_pages(viewer.address),
            str(spec.model),
            messages=augment_messages(asked, spec.system_prompt or None, passages),
            max_tokens=spec.max_tokens or ANSWER_TOKENS,
            temperature=spec.temperature,
            top_p=spec.top_p,
            stop=(),
            seed=None,
        )
        answer = "".join(metered)
        receipt = metered.finish()
    except CairnError as exc:
        return _builder(request, viewer, form, status=exc.status, **_refusal(exc))
    assert receipt is not None  # a failed generation raised above
    return _builder(
        request, viewer, form, answer=answer, passages=passages, cost=call_cost(receipt), tried=spec
    )


# -- an app's page --------------------------------------------------------------------------


def _app(
    request: Request, viewer: Viewer | None, app_id: int, *, status: int = 200, **context: Any
) -> HTMLResponse:
    node = get_node(request)
    asset, spec = node.apps.spec(app_id)
    fresh = fresh_viewer(request, viewer)  # a chat spent prepaid tokens
    model = node.assets.get(spec.model)
    dataset, version = None, None
    if spec.retrieval is not None:
        dataset = node.assets.get(spec.retrieval.dataset)
        version = next(
            (
                v["number"]
                for v in node.data.anchoring.versions(dataset.asset_id)
                if v["version"] == spec.retrieval.version
            ),
            None,
        )
    return page(
        request,
        "app.html",
        status=status,
        title=asset.name or f"app {app_id}",
        app=asset,
        spec=spec,
        model=model,
        dataset=dataset,
        dataset_version=version,
        names=account_names(node),
        roles={**ROLES, "assistant": "App"},
        endpoint=str(request.base_url).rstrip("/") + "/v1",
        deposit=deposit_context(node, fresh, "/playground"),
        **context,
    )


@router.get("/apps/{app_id}", response_class=HTMLResponse)
def app_page(request: Request, viewer: MaybeViewer, app_id: StoredId) -> HTMLResponse:
    """An app: what it wraps and retrieves from, its defaults and price, and a chat with it."""
    return _app(request, viewer, app_id)


@router.post("/apps/{app_id}/chat", response_class=HTMLResponse)
def chat(
    request: Request,
    node: NodeDep,
    viewer: ViewerDep,
    app_id: StoredId,
    message: Annotated[str, Form(max_length=20_000)] = "",
    role: Annotated[list[str] | None, Form()] = None,
    content: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    """Send the next message to the app; the answer is charged its price per call."""
    history = conversation(role or [], content or [])
    if not message.strip():
        return _app(
            request, viewer, app_id, status=422, history=history, error="Write a message first."
        )
    asked = [*history, {"role": "user", "content": message}]
    _, spec = node.apps.spec(app_id)
    try:
        metered = node.gateway.generate(
            node.economy.keys.for_pages(viewer.address),
            str(app_id),
            messages=asked,
            max_tokens=spec.max_tokens or ANSWER_TOKENS,
            temperature=None,
            top_p=None,
            stop=(),
            seed=None,
        )
        answer = "".join(metered)
        receipt = metered.finish()
    except CairnError as exc:
        return _app(
            request,
            viewer,
            app_id,
            status=exc.status,
            history=history,
            draft=message,
            **_refusal(exc),
        )
    assert receipt is not None  # a failed generation raised above
    return _app(
        request,
        viewer,
        app_id,
        history=[*asked, {"role": "assistant", "content": answer}],
        cost=call_cost(receipt),
    )
