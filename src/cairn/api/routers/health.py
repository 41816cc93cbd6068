"""Liveness of the node and its chain."""

from __future__ import annotations

from fastapi import APIRouter

from cairn import __version__
from cairn.api.deps import NodeDep
from cairn.api.node_schemas import Health

router = APIRouter(tags=["node"])


@router.get("/health", response_model=Health)
def health(node: NodeDep) -> Health:
    """Whether the node is up, and which chain block it sees."""
    return Health(
        status="ok",
        version=__version__,
        chain=node.backend.kind,
        chain_id=node.client.chain_id,
        block_number=node.client.block_number(),
    )
