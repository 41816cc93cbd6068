"""Accounts, balances and token transfers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cairn.api.deps import NodeDep, SessionAddress, SessionSigner
from cairn.api.routers.chain import tx_result
from cairn.api.schemas import TokenTransfer, TxResult, Unlock
from cairn.core.amounts import parse_smallest_units
from cairn.core.errors import Forbidden, NotFound
from cairn.core.evm import checksum
from cairn.node import Node

router = APIRouter(tags=["accounts"])


def balances(node: Node, address: str) -> dict[str, Any]:
    """Token and ether balances of `address`, amounts as decimal strings."""
    account = checksum(address)
    token = node.chain.token
    return {
        "address": account,
        "token": {
            "address": token.address,
            "symbol": token.symbol(),
            "decimals": token.decimals(),
            "balance": str(token.balance_of(account)),
        },
        "ether": str(node.client.balance(account)),
    }


@router.get("/accounts")
def list_accounts(node: NodeDep) -> list[dict[str, Any]]:
    """Accounts whose keystores live in this node's data folder."""
    return [
        {
            "address": info.address,
            "label": info.label,
            "dev": info.dev,
            "unlocked": node.signers.holds(info.address),
        }
        for info in node.keystore.list()
    ]


@router.get("/accounts/{address}")
def get_account(node: NodeDep, address: str) -> dict[str, Any]:
    """Balances and the next nonce of any address; label and lock state if this node holds it."""
    out = balances(node, address)
    out["nonce"] = node.client.nonce(out["address"])
    try:
        info = node.keystore.get(out["address"])
        out.update(
            label=info.label,
            dev=info.dev,
            held_by_node=True,
            unlocked=node.signers.holds(info.address),
        )
    except NotFound:
        out.update(label=None, dev=False, held_by_node=False, unlocked=False)
    return out


@router.post("/accounts/{address}/unlock")
def unlock(node: NodeDep, address: str, body: Unlock, me: SessionAddress) -> dict[str, Any]:
    """Unlock the signed-in account's key on this node with its password."""
    if checksum(address).lower() != me.lower():
        raise Forbidden(f"signed in as {me}; you may unlock only that account")
    account = node.signers.unlock(address, body.password)
    return {"address": account.address, "unlocked": True}


@router.get("/balances/{address}")
def get_balances(node: NodeDep, address: str) -> dict[str, Any]:
    """CAIRN token and ether balances of an address."""
    return balances(node, address)


@router.post("/tokens/transfer", response_model=TxResult)
def transfer_tokens(node: NodeDep, body: TokenTransfer, signer: SessionSigner) -> TxResult:
    """Send CAIRN from the signed-in account (whose key this node holds) to another address."""
    amount = parse_smallest_units(body.amount, "amount")
    receipt = node.chain.token.transfer(signer, checksum(body.to), amount)
    return tx_result(node, receipt)
