"""The chain the node uses, its contracts, and a relay for transactions signed elsewhere."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from hexbytes import HexBytes
from web3.types import TxReceipt

from cairn.api.deps import NodeDep
from cairn.api.schemas import CallBody, RawTransaction, TxResult
from cairn.core.amounts import parse_smallest_units
from cairn.core.errors import InvalidInput
from cairn.core.evm import checksum
from cairn.node import Node

router = APIRouter(prefix="/chain", tags=["chain"])


def tx_result(node: Node, receipt: TxReceipt) -> TxResult:
    """A receipt as the API shows it, with Cairn's events decoded."""
    return TxResult(
        tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
        block_number=int(receipt["blockNumber"]),
        gas_used=int(receipt["gasUsed"]),
        status=int(receipt["status"]),
        events=node.chain.decode_events(receipt),
    )


@router.get("")
def chain_info(node: NodeDep) -> dict[str, Any]:
    """Chain id, backend, RPC URL (when there is one) and every contract's address and ABI."""
    deployment = node.chain.deployment
    return {
        "chain_id": node.client.chain_id,
        "backend": node.backend.kind,
        "rpc_url": node.rpc_url,
        "block_number": node.client.block_number(),
        "operator": node.operator.address,
        "deployed_at_block": deployment.block,
        "token": {
            "address": node.chain.token.address,
            "symbol": node.chain.token.symbol(),
            "decimals": node.chain.token.decimals(),
        },
        "contracts": {
            name: {"address": c.address, "abi": c.abi} for name, c in deployment.contracts.items()
        },
    }


@router.get("/fees")
def fees(node: NodeDep) -> dict[str, int]:
    """EIP-1559 fee parameters that get a transaction into the next block."""
    return node.client.fee_params()


@router.post("/estimate")
def estimate(node: NodeDep, body: CallBody) -> dict[str, int]:
    """Gas for a call to a Cairn contract; a call that would revert answers 409 with the reason."""
    to = checksum(body.to)
    if to not in node.chain.addresses:
        raise InvalidInput("only calls to Cairn's own contracts can be estimated here")
    tx: Any = {
        "from": checksum(body.sender),
        "to": to,
        "data": body.data,
        "value": parse_smallest_units(body.value, "value"),
    }
    return {"gas": node.client.simulate(tx, "call")}


@router.post("/transactions", response_model=TxResult)
def relay(node: NodeDep, body: RawTransaction) -> TxResult:
    """Send a transaction signed by the caller's own wallet to one of Cairn's contracts.

    It is simulated first: a transaction that would revert answers 409 with the revert reason
    and is not sent, so it costs nothing and does not use up its nonce.
    """
    receipt = node.client.send_raw(body.raw, allowed_targets=node.chain.addresses)
    node.assets.sync()
    return tx_result(node, receipt)
