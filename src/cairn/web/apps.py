"""/apps: the apps this node serves, the app builder (/apps/new), and each app's page.

The builder turns its form into an `AppSpec` (with the retrieval index `Apps.index` builds once
per dataset version) and publishes it with `Apps.create`, as `POST /api/v1/apps` does. Its
"Try it" runs one chat through the unpublished spec (`Apps.trial`): the app's system prompt and
the passages retrieved for the question go before it, as the gateway does for an app, and the
model answers through the gateway on the signer's web-playground key, so the builder pays the
model's own per-token price. An app's page chats with the published app through the
gateway, charged the app's price per call.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from cairn.api.deps import AccountsDep, AppsDep, AssetsDep, EconomyDep, GatewayDep
from cairn.core.amounts import parse_units
from cairn.core.errors import CairnError, InvalidInput
from cairn.core.ids import StoredId
from cairn.core.licensing import LicenceRequired
from cairn.economy.accounts import Accounts
from cairn.economy.service import Economy
from cairn.serve.app_spec import DEFAULT_SPLIT, MAX_PROMPT, MAX_TOP_K, AppSpec, Retrieval
from cairn.serve.apps import Apps
from cairn.serve.gateway import Gateway
from cairn.web.deposits import deposit_form
from cairn.web.model_calls import (
    ROLES,
    CallCost,
    ModelChoice,
    conversation,
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


def spec_of(apps: Apps, form: AppForm, builder: str) -> AppSpec:
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
    index = apps.index(int(form.dataset), builder=builder)
    return replace(spec, retrieval=Retrieval(index.dataset, index.version, index.index, top_k))


def chat_models(gateway: Gateway) -> list[ModelChoice]:
    """The chat models an app can wrap."""
    return [m for m in served_models(gateway) if m.kind == "chat" and m.family != "app"]


# -- the list -------------------------------------------------------------------------------


@router.get("/apps", response_class=HTMLResponse)
def apps_page(
    request: Request,
    apps: AppsDep,
    assets: AssetsDep,
    accounts: AccountsDep,
    viewer: MaybeViewer,
) -> HTMLResponse:
    """Every app on this node, newest first."""
    return page(
        request,
        "apps.html",
        title="Apps",
        apps=apps.list(),
        assets={str(a.asset_id): a.name for a in assets.list(limit=1000)},
        names=accounts.names(),
    )


# -- the builder ----------------------------------------------------------------------------


def _builder(
    request: Request,
    apps: Apps,
    gateway: Gateway,
    economy: Economy,
    viewer: Viewer,
    form: AppForm,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    fresh = fresh_viewer(request, viewer)  # a try spent prepaid tokens
    return page(
        request,
        "app_builder.html",
        status=status,
        title="Build an app",
        form=form,
        models=chat_models(gateway),
        datasets=apps.sources(),
        max_top_k=MAX_TOP_K,
        max_prompt=MAX_PROMPT,
        split=DEFAULT_SPLIT,
        deposit=deposit_form(economy, fresh, "/playground"),
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
    request: Request,
    apps: AppsDep,
    gateway: GatewayDep,
    economy: EconomyDep,
    viewer: ViewerDep,
    model: str = "",
    dataset: str = "",
) -> HTMLResponse:
    """The app builder: a chat model, a system prompt, optional retrieval, defaults, a price."""
    form = AppForm(model=model, dataset=dataset)
    return _builder(request, apps, gateway, economy, viewer, form)


@router.post("/apps/new", response_model=None)
def build(
    request: Request,
    apps: AppsDep,
    gateway: GatewayDep,
    economy: EconomyDep,
    accounts: AccountsDep,
    viewer: ViewerDep,
    form: Annotated[AppForm, Form()],
) -> HTMLResponse | RedirectResponse:
    """Try the spec with one question, or publish it; a refused form registers nothing."""
    again = (request, apps, gateway, economy, viewer, form)
    if form.action == "publish":
        try:
            if not form.name.strip():
                raise InvalidInput("an app needs a name")
            made = apps.create(
                accounts.signer(viewer.address),
                name=form.name.strip(),
                spec=spec_of(apps, form, viewer.address),
                description=form.description.strip(),
            )
        except CairnError as exc:
            return _builder(*again, status=exc.status, **_refusal(exc))
        asset = made.asset
        return redirect(
            f"/apps/{asset.asset_id}", f"Published app “{asset.name}” (asset {asset.asset_id})."
        )
    if not form.message.strip():
        return _builder(*again, status=422, error="Write a question to try it with.")
    try:
        spec = spec_of(apps, form, viewer.address)
        key = economy.keys.for_pages(viewer.address)
        tried = apps.trial(key, spec, form.message, max_tokens=ANSWER_TOKENS)
    except CairnError as exc:
        return _builder(*again, status=exc.status, **_refusal(exc))
    return _builder(
        *again,
        answer=tried.answer,
        passages=tried.passages,
        cost=CallCost.of(tried.receipt),
        tried=spec,
    )


# -- an app's page --------------------------------------------------------------------------


def _app(
    request: Request,
    apps: Apps,
    economy: Economy,
    accounts: Accounts,
    viewer: Viewer | None,
    app_id: int,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    detail = apps.detail(app_id)
    fresh = fresh_viewer(request, viewer)  # a chat spent prepaid tokens
    asset = detail.app.asset
    return page(
        request,
        "app.html",
        status=status,
        title=asset.name or f"app {app_id}",
        app=asset,
        spec=detail.app.spec,
        model=detail.model,
        dataset=detail.dataset,
        dataset_version=detail.dataset_version,
        names=accounts.names(),
        roles={**ROLES, "assistant": "App"},
        endpoint=str(request.base_url).rstrip("/") + "/v1",
        deposit=deposit_form(economy, fresh, "/playground"),
        **context,
    )


@router.get("/apps/{app_id}", response_class=HTMLResponse)
def app_page(
    request: Request,
    apps: AppsDep,
    economy: EconomyDep,
    accounts: AccountsDep,
    viewer: MaybeViewer,
    app_id: StoredId,
) -> HTMLResponse:
    """An app: what it wraps and retrieves from, its defaults and price, and a chat with it."""
    return _app(request, apps, economy, accounts, viewer, app_id)


@router.post("/apps/{app_id}/chat", response_class=HTMLResponse)
def chat(
    request: Request,
    apps: AppsDep,
    gateway: GatewayDep,
    economy: EconomyDep,
    accounts: AccountsDep,
    viewer: ViewerDep,
    app_id: StoredId,
    message: Annotated[str, Form(max_length=20_000)] = "",
    role: Annotated[list[str] | None, Form()] = None,
    content: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    """Send the next message to the app; the answer is charged its price per call."""
    again = (request, apps, economy, accounts, viewer, app_id)
    history = conversation(role or [], content or [])
    if not message.strip():
        return _app(*again, status=422, history=history, error="Write a message first.")
    asked = [*history, {"role": "user", "content": message}]
    spec = apps.get(app_id).spec
    try:
        metered = gateway.generate(
            economy.keys.for_pages(viewer.address),
            str(app_id),
            messages=asked,
            max_tokens=spec.max_tokens or ANSWER_TOKENS,
            temperature=None,
            top_p=None,
            stop=(),
            seed=None,
        )
        answer, receipt = metered.text()
    except CairnError as exc:
        return _app(*again, status=exc.status, history=history, draft=message, **_refusal(exc))
    return _app(
        *again,
        history=[*asked, {"role": "assistant", "content": answer}],
        cost=CallCost.of(receipt),
    )
