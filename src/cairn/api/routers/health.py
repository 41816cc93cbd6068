"""Liveness of the node and its chain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cairn import __version__
from cairn.api.deps import NodeDep

router = APIRouter(tags=["node"])


@router.get("/health")
def health(node: NodeDep) -> dict[str, Any]:
    """Whether the node is up, and which chain block it sees."""
    return {
        "status": "ok",
        "version": __version__,
        "chain": node.backend.kind,
        "chain_id": node.client.chain_id,
        "block_number": node.client.block_number(),
    }
