"""The chain the node uses, its contracts, and a relay for transactions signed elsewhere."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cairn.api.deps import AccountsDep, NodeDep
from cairn.api.node_schemas import ChainInfo, ContractPublic, FeeParams, GasEstimate, TokenContract
from cairn.api.schemas import CallBody, RawTransaction, TxResult
from cairn.core.amounts import parse_smallest_units
from cairn.core.errors import InvalidInput
from cairn.core.evm import checksum

router = APIRouter(prefix="/chain", tags=["chain"])


@router.get("", response_model=ChainInfo)
def chain_info(node: NodeDep) -> ChainInfo:
    """Chain id, backend, RPC URL (when there is one) and every contract's address and ABI."""
    deployment = node.chain.deployment
    token = node.chain.token
    return ChainInfo(
        chain_id=node.client.chain_id,
        backend=node.backend.kind,
        rpc_url=node.rpc_url,
        block_number=node.client.block_number(),
        operator=node.operator.address,
        deployed_at_block=deployment.block,
        token=TokenContract(
            address=token.address, symbol=token.symbol(), decimals=token.decimals()
        ),
        contracts={
            name: ContractPublic(address=c.address, abi=c.abi)
            for name, c in deployment.contracts.items()
        },
    )


@router.get("/fees", response_model=FeeParams)
def fees(node: NodeDep) -> FeeParams:
    """EIP-1559 fee parameters that get a transaction into the next block."""
    return FeeParams.model_validate(node.client.fee_params())


@router.post("/estimate", response_model=GasEstimate)
def estimate(node: NodeDep, body: CallBody) -> GasEstimate:
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
    return GasEstimate(gas=node.client.simulate(tx, "call"))


@router.post("/transactions", response_model=TxResult)
def relay(node: NodeDep, accounts: AccountsDep, body: RawTransaction) -> TxResult:
    """Send a transaction signed by the caller's own wallet to one of Cairn's contracts.

    It is simulated first: a transaction that would revert answers 409 with the revert reason
    and is not sent, so it costs nothing and does not use up its nonce.
    """
    receipt = node.client.send_raw(body.raw, allowed_targets=node.chain.addresses)
    node.assets.sync()
    return TxResult(**vars(accounts.transaction(receipt)))
