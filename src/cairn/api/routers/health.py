"""Liveness of the node and its chain."""

from __future__ import annotations

from fastapi import APIRouter

from cairn import __version__
from cairn.api.deps import NetworkDep
from cairn.api.node_schemas import Health

router = APIRouter(tags=["node"])


@router.get("/health", response_model=Health)
def health(network: NetworkDep) -> Health:
    """Whether the node is up, and which chain block it sees."""
    chain = network.status()
    return Health(
        status="ok",
        version=__version__,
        chain=chain.backend,
        chain_id=chain.chain_id,
        block_number=chain.block_number,
    )
