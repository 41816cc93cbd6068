"""/playground: chat with, classify with or embed with any model the gateway serves, paid from
the signed-in account's prepaid balance (topping it up is `cairn.web.deposits`).

Every call goes through the gateway exactly as an API call does (`Gateway.generate`, `classify`,
`embed`): it is held, metered and receipted against the account's key for the web pages
(`ApiKeys.for_pages`), so the price, the 402 and the receipt are the API's own. The conversation
travels in the form as hidden fields, so a plain form post works without JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from cairn.api.deps import EconomyDep, GatewayDep
from cairn.core.errors import CairnError, InvalidInput
from cairn.economy.service import Economy
from cairn.serve.gateway import Gateway
from cairn.web.deposits import deposit_form
from cairn.web.model_calls import (
    ROLES,
    CallCost,
    conversation,
    form_number,
    refusal_text,
    served_models,
)
from cairn.web.render import page
from cairn.web.viewer import MaybeViewer, Viewer, ViewerDep, fresh_viewer

router = APIRouter()

MAX_TOKENS = 2048  # the most one playground answer may ask for
MAX_INPUTS = 32  # texts classified or embedded in one call


@dataclass(frozen=True)
class Labels:
    """One text as a classifier labelled it."""

    text: str
    label: str
    score: float
    scores: list[tuple[str, float]]  # every label's score, highest first


@dataclass(frozen=True)
class Vector:
    """One text's embedding, as far as a page shows it."""

    text: str
    size: int
    head: list[str]  # its first numbers, formatted


def _render(
    request: Request,
    gateway: Gateway,
    economy: Economy,
    viewer: Viewer | None,
    model: str | None,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The playground with `model` open, after whatever the request changed."""
    viewer = fresh_viewer(request, viewer)  # a call spent prepaid tokens in this request
    models = served_models(gateway)
    chosen = next((m for m in models if m.id == model), None)
    if chosen is None and model is None and models:
        chosen = next((m for m in models if m.kind == "chat"), models[0])
    return page(
        request,
        "playground.html",
        status=status,
        title="Playground",
        models=models,
        model=chosen,
        missing=model if model is not None and chosen is None else None,
        roles=ROLES,
        max_tokens_limit=MAX_TOKENS,
        deposit=deposit_form(
            economy, viewer, f"/playground?model={chosen.id}" if chosen else "/playground"
        ),
        **context,
    )


def _refused(
    request: Request,
    gateway: Gateway,
    economy: Economy,
    viewer: Viewer,
    model: str,
    exc: CairnError,
    **context: Any,
) -> HTMLResponse:
    """The playground again with why the call was refused (402: what to top up); nothing was
    charged."""
    return _render(
        request,
        gateway,
        economy,
        viewer,
        model,
        status=exc.status,
        error=refusal_text(exc),
        payment_required=exc.status == 402,
        **context,
    )


@router.get("/playground", response_class=HTMLResponse)
def playground(
    request: Request,
    gateway: GatewayDep,
    economy: EconomyDep,
    viewer: MaybeViewer,
    model: str | None = None,
) -> HTMLResponse:
    """Pick a model, see its price, and call it."""
    return _render(request, gateway, economy, viewer, model)


@router.post("/playground/chat", response_class=HTMLResponse)
def chat(
    request: Request,
    gateway: GatewayDep,
    economy: EconomyDep,
    viewer: ViewerDep,
    model: Annotated[str, Form(max_length=200)],
    message: Annotated[str, Form(max_length=20_000)] = "",
    max_tokens: Annotated[str, Form(max_length=20)] = "128",
    temperature: Annotated[str, Form(max_length=20)] = "0.7",
    system: Annotated[str, Form(max_length=4000)] = "",
    role: Annotated[list[str] | None, Form()] = None,
    content: Annotated[list[str] | None, Form()] = None,
) -> HTMLResponse:
    """Send the next message of a conversation; the answer is charged like an API call."""
    history = conversation(role or [], content or [])
    settings = {"max_tokens": max_tokens, "temperature": temperature, "system": system}
    try:
        answer_tokens = form_number(
            max_tokens.strip() or "128", "max answer tokens", int, 1, MAX_TOKENS
        )
        heat = form_number(temperature.strip() or "0.7", "temperature", float, 0.0, 2.0)
        if not message.strip():
            raise InvalidInput("Write a message first.")
    except InvalidInput as exc:  # the form comes back as it was sent, with the message
        return _render(
            request,
            gateway,
            economy,
            viewer,
            model,
            status=422,
            history=history,
            settings=settings,
            draft=message,
            error=exc.message,
        )
    asked = [*history, {"role": "user", "content": message}]
    system_turn = [{"role": "system", "content": system}] if system.strip() else []
    try:
        metered = gateway.generate(
            economy.keys.for_pages(viewer.address),
            model,
            messages=system_turn + asked,
            max_tokens=answer_tokens,
            temperature=heat,
            top_p=1.0,
            stop=(),
            seed=None,
        )
        answer, receipt = metered.text()
    except CairnError as exc:
        return _refused(
            request,
            gateway,
            economy,
            viewer,
            model,
            exc,
            history=history,
            settings=settings,
            draft=message,
        )
    return _render(
        request,
        gateway,
        economy,
        viewer,
        model,
        history=[*asked, {"role": "assistant", "content": answer}],
        settings=settings,
        cost=CallCost.of(receipt),
        finish_reason=metered.generation.finish_reason,
    )


def _inputs(text: str) -> list[str]:
    """One input per non-empty line."""
    texts = [line.strip() for line in text.splitlines() if line.strip()]
    if not texts:
        raise InvalidInput("write a text to send, one per line")
    if len(texts) > MAX_INPUTS:
        raise InvalidInput(f"{len(texts)} lines: the playground sends at most {MAX_INPUTS}")
    return texts


@router.post("/playground/classify", response_class=HTMLResponse)
def classify(
    request: Request,
    gateway: GatewayDep,
    economy: EconomyDep,
    viewer: ViewerDep,
    model: Annotated[str, Form(max_length=200)],
    text: Annotated[str, Form(max_length=50_000)] = "",
) -> HTMLResponse:
    """Label texts with a classifier (one per line), charged like an API call."""
    try:
        texts = _inputs(text)
        results, receipt = gateway.classify(economy.keys.for_pages(viewer.address), model, texts)
    except CairnError as exc:
        return _refused(request, gateway, economy, viewer, model, exc, draft=text)
    rows = [
        Labels(t, r.label, r.score, sorted(r.scores.items(), key=lambda kv: -kv[1]))
        for t, r in zip(texts, results, strict=True)
    ]
    return _render(
        request, gateway, economy, viewer, model, draft=text, labels=rows, cost=CallCost.of(receipt)
    )


@router.post("/playground/embed", response_class=HTMLResponse)
def embed(
    request: Request,
    gateway: GatewayDep,
    economy: EconomyDep,
    viewer: ViewerDep,
    model: Annotated[str, Form(max_length=200)],
    text: Annotated[str, Form(max_length=50_000)] = "",
) -> HTMLResponse:
    """Embed texts with an encoder (one per line), charged like an API call."""
    try:
        texts = _inputs(text)
        vectors, receipt = gateway.embed(economy.keys.for_pages(viewer.address), model, texts)
    except CairnError as exc:
        return _refused(request, gateway, economy, viewer, model, exc, draft=text)
    rows = [
        Vector(t, len(v), [f"{x:.4f}" for x in v[:6]]) for t, v in zip(texts, vectors, strict=True)
    ]
    return _render(
        request,
        gateway,
        economy,
        viewer,
        model,
        draft=text,
        vectors=rows,
        cost=CallCost.of(receipt),
    )
