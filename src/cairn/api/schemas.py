"""Request and response bodies of the node API. Token amounts are decimal strings in the
token's smallest unit, since JSON numbers cannot hold 256-bit integers exactly."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cairn.core.ids import StoredId


class Strict(BaseModel):
    """Unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class SplitBody(Strict):
    owner: int = Field(10_000, description="Owner's share in basis points")
    data: int = Field(0, description="Share for data contributors in basis points")
    compute: int = Field(0, description="Share for compute providers in basis points")
    upstream: int = Field(0, description="Share for parent models in basis points")


class AssetCreate(Strict):
    kind: str = Field(
        ..., description="model or app (a dataset: POST /api/v1/datasets)", examples=["model"]
    )
    name: str = Field(..., max_length=200, examples=["Polite replies"])
    description: str = Field("", max_length=20_000)
    licence: str = Field(..., max_length=64, examples=["CC-BY-4.0"])
    parents: list[StoredId] = Field(
        default_factory=list, description="Lineage: ids of parent assets"
    )
    split: SplitBody = Field(default_factory=lambda: SplitBody())
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form metadata")


class AssetTransfer(Strict):
    to: str = Field(..., description="Recipient address")


class AssetPublic(BaseModel):
    asset_id: int
    kind: str
    owner: str
    name: str
    description: str
    metadata_cid: str
    licence: str
    parents: list[int]
    split: dict[str, int]
    registered_at: int
    block_number: int
    tx_hash: str
    contract: str = Field(..., description="AssetRegistry address; the asset is its ERC-721 token")
    token_id: int


class AssetTransferred(AssetPublic):
    transfer_tx: str = Field(
        ..., description="The transfer's transaction (tx_hash: its registration)"
    )


class NonceOut(BaseModel):
    nonce: str


class SignIn(Strict):
    message: str = Field(..., max_length=4096, description="An EIP-4361 message")
    signature: str = Field(..., max_length=200, description="0x-hex personal_sign signature")


class SessionOut(BaseModel):
    token: str
    address: str
    expires_at: int


class Unlock(Strict):
    password: str = Field(..., min_length=1)


class TokenTransfer(Strict):
    to: str
    amount: str = Field(..., pattern=r"^[0-9]{1,78}$", description="Smallest units, decimal")


class RawTransaction(Strict):
    raw: str = Field(..., pattern=r"^0x[0-9a-fA-F]+$", description="A signed transaction, 0x-hex")


class CallBody(Strict):
    sender: str = Field(..., alias="from")
    to: str
    data: str = Field(..., pattern=r"^0x[0-9a-fA-F]*$")
    value: str = Field("0", pattern=r"^[0-9]{1,78}$")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ChainEvent(BaseModel):
    contract: str = Field(..., description="The Cairn contract that logged it")
    event: str
    args: dict[str, Any] = Field(
        ..., description="Bytes as 0x-hex, integers of 2**53 or more as decimal"
    )


class TxResult(BaseModel):
    tx_hash: str
    block_number: int
    gas_used: int
    status: int = Field(..., description="1: success")
    events: list[ChainEvent] = Field(..., description="Cairn's events, in log order")


def file_answer(description: str, *media: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that answers a file: its bytes, in any of `media`."""
    content = {m: {"schema": {"type": "string", "format": "binary"}} for m in media}
    return {200: {"description": description, "content": content}}
