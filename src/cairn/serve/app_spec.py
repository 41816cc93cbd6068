"""What an app is: the spec its metadata holds (`extra.app`), read and checked in one place.

The gateway serves apps by these specs, prices them (`cairn.serve.prices`) and the market lists
them; `cairn.serve.apps.Apps` builds and publishes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NotRequired

from typing_extensions import TypedDict  # pydantic reads typing's own only from Python 3.12

from cairn.assets.service import Asset
from cairn.core.amounts import MAX_PRICE
from cairn.core.errors import InvalidInput
from cairn.core.policy import RevenueSplit

EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # the packaged sentence encoder apps retrieve with
DEFAULT_SPLIT = RevenueSplit(owner=5_000, data=2_500, compute=0, upstream=2_500)
MAX_TOP_K = 20
MAX_PROMPT = 8_000  # characters of system prompt
# What retrieved passages may add to a prompt, in the app's model's tokens, unless the app says:
# three records of a few sentences, so an app call costs a bounded share more than its model
# alone whatever the records' length. On 2 CPU cores a prompt token costs about a twentieth of a
# generated one, so the share shrinks as answers grow (bench/apps.py measures it per budget).
DEFAULT_CONTEXT_TOKENS = 256
CONTEXT_SHARE = 4  # and never more than a quarter of the model's context: room for the chat
MIN_CONTEXT_TOKENS = 32  # fewer holds no useful passage


class RetrievalExtra(TypedDict):
    """`Retrieval` as an app's metadata stores it."""

    dataset: int
    version: str
    index: str
    top_k: int
    max_context_tokens: NotRequired[int]  # absent: DEFAULT_CONTEXT_TOKENS


class AppExtra(TypedDict):
    """An app's spec as its metadata stores it (`extra.app`): amounts as decimal strings."""

    model: int
    system_prompt: str
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    retrieval: RetrievalExtra | None
    price_per_call: str


@dataclass(frozen=True)
class Retrieval:
    """Where an app's passages come from."""

    dataset: int
    version: str  # the dataset version's manifest CID
    index: str  # the retrieval index's CID (cairn.retrieval/v1)
    top_k: int = 3
    # the most tokens the passages add to a prompt, counted by the model's tokenizer (None:
    # DEFAULT_CONTEXT_TOKENS); passages past it are cut or left out (`fit_passages`)
    max_context_tokens: int | None = None

    def context_budget(self, context_length: int) -> int:
        """The tokens the passages may add to a prompt for a model reading `context_length`."""
        wanted = self.max_context_tokens or DEFAULT_CONTEXT_TOKENS
        return min(wanted, context_length // CONTEXT_SHARE)

    def to_extra(self) -> RetrievalExtra:
        """Where the passages come from, as an app's metadata stores it."""
        extra = RetrievalExtra(
            dataset=self.dataset, version=self.version, index=self.index, top_k=self.top_k
        )
        if self.max_context_tokens is not None:
            extra["max_context_tokens"] = self.max_context_tokens
        return extra


@dataclass(frozen=True)
class AppSpec:
    """What an app does with each call."""

    model: int  # the chat model asset it wraps
    system_prompt: str = ""
    temperature: float | None = None  # defaults for calls that do not set them
    top_p: float | None = None
    max_tokens: int | None = None
    retrieval: Retrieval | None = None
    price_per_call: int = 0  # smallest token units per call

    def __post_init__(self) -> None:
        if len(self.system_prompt) > MAX_PROMPT:
            raise InvalidInput(f"system prompt: at most {MAX_PROMPT} characters")
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            raise InvalidInput(f"temperature must be 0..2; got {self.temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise InvalidInput(f"top_p must be in (0, 1]; got {self.top_p}")
        if self.max_tokens is not None and not 1 <= self.max_tokens <= 32_768:
            raise InvalidInput(f"max_tokens must be 1..32768; got {self.max_tokens}")
        if not 0 <= self.price_per_call <= MAX_PRICE:
            raise InvalidInput(f"price per call must be 0..{MAX_PRICE}; got {self.price_per_call}")
        if self.retrieval is not None and not 1 <= self.retrieval.top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be 1..{MAX_TOP_K}; got {self.retrieval.top_k}")
        budget = self.retrieval.max_context_tokens if self.retrieval else None
        if budget is not None and (type(budget) is not int or budget < MIN_CONTEXT_TOKENS):
            raise InvalidInput(
                f"max_context_tokens must be a whole number of tokens, at least "
                f"{MIN_CONTEXT_TOKENS}, or unset for {DEFAULT_CONTEXT_TOKENS}; got {budget!r}"
            )

    @property
    def parents(self) -> list[int]:
        """The app's lineage parents: its model and, with retrieval, its dataset."""
        return [self.model] + ([self.retrieval.dataset] if self.retrieval else [])

    def to_extra(self) -> AppExtra:
        """The spec as stored in the app's metadata (amounts as decimal strings)."""
        return AppExtra(
            model=self.model,
            system_prompt=self.system_prompt,
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            retrieval=self.retrieval.to_extra() if self.retrieval else None,
            price_per_call=str(self.price_per_call),
        )

    @classmethod
    def from_extra(cls, app: Any, asset_id: int) -> AppSpec:
        """The spec in an app's metadata; anything malformed is `InvalidInput`."""
        try:
            retrieval = app.get("retrieval")
            return cls(
                model=int(app["model"]),
                system_prompt=str(app.get("system_prompt", "")),
                temperature=_maybe(float, app.get("temperature")),
                top_p=_maybe(float, app.get("top_p")),
                max_tokens=_maybe(int, app.get("max_tokens")),
                retrieval=Retrieval(
                    dataset=int(retrieval["dataset"]),
                    version=str(retrieval["version"]),
                    index=str(retrieval["index"]),
                    top_k=int(retrieval.get("top_k", 3)),
                    max_context_tokens=_maybe(int, retrieval.get("max_context_tokens")),
                )
                if retrieval
                else None,
                price_per_call=int(app.get("price_per_call", "0")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"asset {asset_id} is not a usable Cairn app: {exc}") from exc


def _maybe(kind: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else kind(value)


def app_spec(asset: Asset, metadata: dict[str, Any]) -> AppSpec | None:
    """The spec of an app asset (None for an app asset that is not a Cairn app, such as the
    gateway's receipt ledger)."""
    if asset.kind != "app" or "app" not in metadata:
        return None
    return AppSpec.from_extra(metadata["app"], asset.asset_id)
