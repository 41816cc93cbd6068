"""Response bodies of the node's own routes: its health, the chain it uses and the contracts on
it, the fees and gas a wallet needs to send them a transaction, who a session belongs to, and
the blobs in its store.

Field names are those the node has always answered, which `NodeClient`, the provider's
`NodeApi` and the CLI read. The fee fields keep web3's camelCase on the wire: a wallet puts
them into a transaction as they are.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]
    version: str = Field(..., description="Cairn's version on this node")
    chain: str = Field(..., description="The chain backend: memory, anvil or rpc")
    chain_id: int
    block_number: int = Field(..., description="The newest block the node sees")


class TokenContract(BaseModel):
    address: str
    symbol: str
    decimals: int


class ContractPublic(BaseModel):
    address: str
    abi: list[dict[str, Any]] = Field(
        ..., description="The contract's ABI, as the compiler wrote it"
    )


class ChainInfo(BaseModel):
    chain_id: int
    backend: str = Field(..., description="memory, anvil or rpc")
    rpc_url: str | None = Field(..., description="None for the in-process chain")
    block_number: int
    operator: str = Field(..., description="The node operator's address")
    deployed_at_block: int = Field(..., description="The block Cairn's contracts were deployed in")
    token: TokenContract = Field(..., description="The payment token")
    contracts: dict[str, ContractPublic] = Field(..., description="Cairn's contracts by name")


class FeeParams(BaseModel):
    max_fee_per_gas: int = Field(..., alias="maxFeePerGas", description="Wei")
    max_priority_fee_per_gas: int = Field(..., alias="maxPriorityFeePerGas", description="Wei")


class GasEstimate(BaseModel):
    gas: int = Field(..., description="A gas limit for the call, with a margin")


class SessionAccount(BaseModel):
    address: str
    key_on_node: bool = Field(..., description="The node holds this account's key unlocked")


class BlobStored(BaseModel):
    cid: str = Field(..., description="The blob's CIDv1 (raw, sha2-256)")
    size: int = Field(..., description="Bytes")
