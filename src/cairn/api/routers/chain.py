"""The chain the node uses, its contracts, and a relay for transactions signed elsewhere."""

from __future__ import annotations

from fastapi import APIRouter

from cairn.api.deps import AccountsDep, NetworkDep
from cairn.api.node_schemas import ChainInfo, ContractPublic, FeeParams, GasEstimate, TokenContract
from cairn.api.schemas import CallBody, RawTransaction, TxResult
from cairn.core.amounts import parse_smallest_units

router = APIRouter(prefix="/chain", tags=["chain"])


@router.get("", response_model=ChainInfo)
def chain_info(network: NetworkDep, accounts: AccountsDep) -> ChainInfo:
    """Chain id, backend, RPC URL (when there is one) and every contract's address and ABI."""
    facts = network.facts()
    token = accounts.payment_token()
    return ChainInfo(
        chain_id=facts.chain_id,
        backend=facts.backend,
        rpc_url=facts.rpc_url,
        block_number=facts.block_number,
        operator=facts.operator,
        deployed_at_block=facts.deployed_at_block,
        token=TokenContract(address=token.address, symbol=token.symbol, decimals=token.decimals),
        contracts={
            name: ContractPublic(address=c.address, abi=c.abi)
            for name, c in facts.contracts.items()
        },
    )


@router.get("/fees", response_model=FeeParams)
def fees(network: NetworkDep) -> FeeParams:
    """EIP-1559 fee parameters that get a transaction into the next block."""
    params = network.fees()
    return FeeParams(
        maxFeePerGas=params.max_fee_per_gas, maxPriorityFeePerGas=params.max_priority_fee_per_gas
    )


@router.post("/estimate", response_model=GasEstimate)
def estimate(network: NetworkDep, body: CallBody) -> GasEstimate:
    """Gas for a call to a Cairn contract; a call that would revert answers 409 with the reason."""
    value = parse_smallest_units(body.value, "value")
    return GasEstimate(gas=network.estimate(body.sender, body.to, body.data, value))


@router.post("/transactions", response_model=TxResult)
def relay(network: NetworkDep, body: RawTransaction) -> TxResult:
    """Send a transaction signed by the caller's own wallet to one of Cairn's contracts.

    It is simulated first: a transaction that would revert answers 409 with the revert reason
    and is not sent, so it costs nothing and does not use up its nonce.
    """
    return TxResult(**vars(network.relay(body.raw)))
