"""Calling a model from a page: the models a page offers, a conversation carried in a form, the
numbers typed into it, what a call cost and why one was refused (the playground and the apps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cairn.core.amounts import TOKEN_DECIMALS
from cairn.core.errors import CairnError, InvalidInput, PaymentRequired
from cairn.economy.receipts import UsageReceipt
from cairn.serve.catalogue import CatalogueEntry
from cairn.serve.gateway import Gateway
from cairn.serve.prices import CallPrice
from cairn.web.render import units

MAX_TURNS = 40  # messages kept in a conversation (the form carries them all)
ROLES = {"user": "You", "assistant": "Model", "system": "System"}


@dataclass(frozen=True)
class ModelChoice:
    """A model or app as the playground offers it."""

    id: str
    name: str
    family: str
    kind: str  # what the playground does with it: chat, classify or embed
    price: CallPrice

    @classmethod
    def of(cls, entry: CatalogueEntry) -> ModelChoice:
        """What the playground does with a model the gateway serves."""
        if "chat" in entry.capabilities:
            kind = "chat"
        else:
            kind = "classify" if "classifications" in entry.capabilities else "embed"
        return cls(entry.id, entry.name, entry.family, kind, entry.price)


@dataclass(frozen=True)
class CallCost:
    """A call's receipt as the page shows it."""

    receipt_id: str
    prompt_tokens: int
    completion_tokens: int
    tokens: int
    price: CallPrice
    amount: str

    @classmethod
    def of(cls, receipt: UsageReceipt) -> CallCost:
        """What a receipt charged, and at which price."""
        return cls(
            receipt_id=receipt.receipt_id,
            prompt_tokens=receipt.prompt_tokens,
            completion_tokens=receipt.completion_tokens,
            tokens=receipt.prompt_tokens + receipt.completion_tokens,
            price=CallPrice.of_receipt(receipt),
            amount=receipt.amount,
        )


def served_models(gateway: Gateway) -> list[ModelChoice]:
    """Every model and app the gateway serves, with what the playground does with it and its
    price."""
    return [ModelChoice.of(entry) for entry in gateway.models()]


def form_number(
    text: str,
    what: str,
    kind: type[int] | type[float],
    low: float | None = None,
    high: float | None = None,
) -> Any:
    """A number typed in a form field, within [low, high] when given; None for an empty field."""
    typed = text.strip()
    if not typed:
        return None
    try:
        value = kind(typed)
    except ValueError:
        raise InvalidInput(f"{what}: {typed!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInput(f"{what}: {typed!r} is not a number")
    if low is not None and high is not None and not low <= value <= high:
        raise InvalidInput(f"{what} must be {low:g}..{high:g}; got {typed}")
    return value


def conversation(role: list[str], content: list[str]) -> list[dict[str, str]]:
    """The conversation the form carried back, checked."""
    if len(role) != len(content):
        raise InvalidInput("the conversation came back damaged: start a new one")
    turns = [{"role": r, "content": c} for r, c in zip(role, content, strict=True)]
    for turn in turns:
        if turn["role"] not in ROLES:
            raise InvalidInput(f"conversation role must be one of {', '.join(ROLES)}")
    return turns[-MAX_TURNS:]


def refusal_text(exc: CairnError) -> str:
    """Why a call was refused, as a page says it to a person: a 402 in CAIRN, not in the
    token's smallest unit, and with the deposit form below rather than a command to run."""
    if isinstance(exc, PaymentRequired):
        return (
            f"This call may cost up to {units(exc.needed, TOKEN_DECIMALS)} CAIRN, and your "
            f"prepaid balance has {units(exc.available, TOKEN_DECIMALS)} CAIRN available."
        )
    return exc.message
