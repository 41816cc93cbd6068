"""API keys, prepaid balances, model prices, usage receipts, epochs, earnings and claims."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from cairn.api.deps import NodeDep, SessionAddress, SessionSigner
from cairn.api.schemas import Strict
from cairn.core.amounts import parse_smallest_units
from cairn.core.errors import Forbidden, NotFound
from cairn.core.evm import checksum
from cairn.core.ids import StoredId
from cairn.node import Node

router = APIRouter(tags=["economy"])


class KeyCreate(Strict):
    name: str = Field("", max_length=100, description="A label to tell your keys apart")


class Deposit(Strict):
    amount: str = Field(..., description="Tokens in the smallest unit, decimal", examples=["1000"])


class PriceSet(Strict):
    price_per_1k: str = Field(..., description="Smallest token units per 1,000 tokens; 0 = free")


class ClaimBody(Strict):
    account: str = Field(..., description="The account to pay (anyone may claim for it)")


@router.post("/keys", status_code=201)
def create_key(node: NodeDep, me: SessionAddress, body: KeyCreate) -> dict[str, Any]:
    """Create an API key for the signed-in account; the secret is shown only in this answer."""
    key, secret = node.economy.keys.create(me, body.name)
    return {**key.to_dict(), "secret": secret}


@router.get("/keys")
def list_keys(node: NodeDep, me: SessionAddress) -> list[dict[str, Any]]:
    """The signed-in account's API keys (never their secrets)."""
    return [k.to_dict() for k in node.economy.keys.list(me)]


@router.delete("/keys/{key_id}")
def revoke_key(node: NodeDep, me: SessionAddress, key_id: str) -> dict[str, Any]:
    """Revoke one of the signed-in account's keys: it stops working at once."""
    return node.economy.keys.revoke(me, key_id).to_dict()


@router.get("/prepaid")
def treasury(node: NodeDep) -> dict[str, Any]:
    """Where to deposit: send the payment token to this address from the account that pays."""
    return {"treasury": node.economy.treasury, "token": node.chain.token.address}


@router.get("/prepaid/{account}")
def prepaid(node: NodeDep, account: str) -> dict[str, Any]:
    """An account's prepaid balance (deposits are credited as they are read from the chain)."""
    balance = node.economy.balances.get(account).to_dict()
    return {**balance, "deposits": node.economy.balances.deposits(account)}


@router.post("/prepaid/deposits")
def deposit(node: NodeDep, signer: SessionSigner, body: Deposit) -> dict[str, Any]:
    """Deposit from a signed-in account whose key this node holds (wallets: send the token to
    the treasury yourself)."""
    made = node.economy.balances.deposit(signer, parse_smallest_units(body.amount, "amount"))
    return {"tx_hash": made.tx_hash, **made.balance.to_dict()}


@router.put("/models/{asset_id}/price")
def set_price(
    node: NodeDep, me: SessionAddress, asset_id: StoredId, body: PriceSet
) -> dict[str, Any]:
    """Set a model's price per 1,000 tokens (its owner only)."""
    price = node.economy.prices.set(
        me, asset_id, parse_smallest_units(body.price_per_1k, "price_per_1k")
    )
    return {"asset_id": asset_id, "price_per_1k": str(price)}


@router.get("/models/{asset_id}/price")
def get_price(node: NodeDep, asset_id: StoredId) -> dict[str, Any]:
    """A model's price per 1,000 tokens."""
    return {"asset_id": asset_id, "price_per_1k": str(node.economy.prices.get(asset_id))}


@router.get("/receipts")
def my_receipts(node: NodeDep, me: SessionAddress, limit: int = 100) -> list[dict[str, Any]]:
    """The signed-in account's newest usage receipts."""
    return node.economy.receipts.of_account(me, limit=min(max(limit, 1), 1000))


@router.get("/receipts/{receipt_id}")
def receipt(node: NodeDep, receipt_id: str) -> dict[str, Any]:
    """A usage receipt with the gateway's signature and its anchoring."""
    return node.economy.receipts.get(receipt_id)


@router.get("/receipts/{receipt_id}/proof")
def receipt_proof(node: NodeDep, receipt_id: str) -> dict[str, Any]:
    """A receipt's Merkle proof against its anchored batch root, checked on chain."""
    return node.economy.receipts.proof(receipt_id)


def _operator_only(node: Node, me: str, what: str) -> None:
    """Anchoring and settling spend the gateway's gas: the node's operator decides when."""
    if checksum(me) != node.operator.address:
        raise Forbidden(
            f"only the node's operator ({node.operator.address}) {what} by hand; the node also "
            "does it on its own schedule"
        )


@router.post("/receipts/anchor")
def anchor_receipts(node: NodeDep, me: SessionAddress) -> list[dict[str, Any]]:
    """Anchor every waiting receipt now (the node's operator only)."""
    _operator_only(node, me, "anchors receipts")
    return node.economy.anchor_receipts()


@router.get("/epochs")
def epochs(node: NodeDep) -> list[dict[str, Any]]:
    """Settled epochs, newest first."""
    return node.economy.epochs.epochs()


@router.get("/epochs/{epoch_id}")
def epoch(node: NodeDep, epoch_id: StoredId) -> dict[str, Any]:
    """One epoch."""
    return node.economy.epochs.epoch(epoch_id)


@router.post("/epochs/settle")
def settle(node: NodeDep, me: SessionAddress) -> dict[str, Any]:
    """Close an epoch now: anchor waiting receipts, split their revenue by lineage, fund it
    (the node's operator only). With nothing to settle the answer says so and nothing changes.
    """
    _operator_only(node, me, "settles epochs")
    result = node.economy.settle()
    return {"settled": result is not None, "epoch": result}


@router.get("/earnings/{account}")
def earnings(node: NodeDep, account: str) -> dict[str, Any]:
    """What each epoch owes an account and why (models, datasets, jobs), and what is unclaimed."""
    rows = node.economy.epochs.earnings(account)
    unclaimed = sum(int(r["amount"]) for r in rows if not r["claimed"] and r["status"] == "funded")
    return {"account": checksum(account), "unclaimed": str(unclaimed), "epochs": rows}


@router.post("/claims")
def claim(node: NodeDep, body: ClaimBody) -> dict[str, Any]:
    """Claim everything an account is owed; the tokens go to that account, whoever asks."""
    paid = node.economy.epochs.claim(body.account)
    if not paid and not node.economy.epochs.earnings(body.account):
        raise NotFound(f"account {checksum(body.account)} has no earnings yet")
    return {
        "account": checksum(body.account),
        "claims": paid,
        "total": str(sum(int(p["amount"]) for p in paid)),
    }
