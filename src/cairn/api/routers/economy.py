"""API keys, prepaid balances, model prices, usage receipts, epochs, earnings and claims."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cairn.api.deps import EconomyDep, SessionAddress, SessionSigner, ValidatorDep
from cairn.api.schemas import Strict
from cairn.core.amounts import parse_smallest_units
from cairn.core.errors import Forbidden
from cairn.core.ids import StoredId
from cairn.economy.balances import WITHDRAW_ALL, Balance, CreditedDeposit
from cairn.economy.epochs import Claims, Earnings, Epoch
from cairn.economy.keys import ApiKey, IssuedKey
from cairn.economy.receipts import AnchoredReceipts, ListedReceipt, ReceiptProof, StoredReceipt
from cairn.economy.service import DepositTarget
from cairn.serve.validation import ReceiptCheck

router = APIRouter(tags=["economy"])


class KeyCreate(Strict):
    name: str = Field("", max_length=100, description="A label to tell your keys apart")


class Deposit(Strict):
    amount: str = Field(..., description="Tokens in the smallest unit, decimal", examples=["1000"])


class PriceSet(Strict):
    price_per_1k: str = Field(..., description="Smallest token units per 1,000 tokens; 0 = free")


class ClaimBody(Strict):
    account: str = Field(..., description="The account to pay (anyone may claim for it)")


class PrepaidBalance(BaseModel):
    """A prepaid balance; amounts in the token's smallest unit, decimal."""

    account: str
    deposited: str
    spent: str
    held: str = Field(..., description="Set aside by requests in flight")
    withdrawn: str = Field(..., description="Paid back by the vault")
    withdrawing: str = Field(
        ..., description='Asked to withdraw and set aside: decimal, "all", or "0" for none'
    )
    available: str = Field(..., description="What the account may still spend")

    @classmethod
    def of(cls, balance: Balance) -> PrepaidBalance:
        """The balance as the API shows it."""
        return cls(
            account=balance.account,
            deposited=str(balance.deposited),
            spent=str(balance.spent),
            held=str(balance.held),
            withdrawn=str(balance.withdrawn),
            withdrawing="all" if balance.withdrawing == WITHDRAW_ALL else str(balance.withdrawing),
            available=str(balance.available),
        )


class PrepaidAccount(PrepaidBalance):
    deposits: list[CreditedDeposit] = Field(..., description="Credited deposits, newest first")
    withdrawal_available_at: int | None = Field(
        ..., description="When the vault pays the pending withdrawal (unix time); null: none"
    )


class DepositMade(PrepaidBalance):
    tx_hash: str = Field(..., description="The deposit's token transfer")


class ModelPrice(BaseModel):
    asset_id: int
    price_per_1k: str = Field(..., description="Smallest token units per 1,000 tokens")


class Settled(BaseModel):
    settled: bool = Field(..., description="False: nothing to settle, and nothing changed")
    epoch: Epoch | None


@router.post("/keys", status_code=201, response_model=IssuedKey)
def create_key(economy: EconomyDep, me: SessionAddress, body: KeyCreate) -> IssuedKey:
    """Create an API key for the signed-in account; the secret is shown only in this answer."""
    key, secret = economy.keys.create(me, body.name)
    return IssuedKey(**vars(key), secret=secret)


@router.get("/keys", response_model=list[ApiKey])
def list_keys(economy: EconomyDep, me: SessionAddress) -> list[ApiKey]:
    """The signed-in account's API keys (never their secrets)."""
    return economy.keys.list(me)


@router.delete("/keys/{key_id}", response_model=ApiKey)
def revoke_key(economy: EconomyDep, me: SessionAddress, key_id: str) -> ApiKey:
    """Revoke one of the signed-in account's keys: it stops working at once."""
    return economy.keys.revoke(me, key_id)


@router.get("/prepaid", response_model=DepositTarget)
def treasury(economy: EconomyDep) -> DepositTarget:
    """Where to deposit: approve `vault` for the token, then call its `deposit(amount)`, from
    the account that pays (a plain transfer to `treasury` is deposited there for you)."""
    return economy.deposit_target()


@router.get("/prepaid/{account}", response_model=PrepaidAccount)
def prepaid(economy: EconomyDep, account: str) -> PrepaidAccount:
    """An account's prepaid balance (deposits and withdrawals are read from the chain)."""
    balance = PrepaidBalance.of(economy.balances.get(account))
    pending = economy.balances.pending_withdrawal(account)
    return PrepaidAccount(
        **balance.model_dump(),
        deposits=economy.balances.deposits(account),
        withdrawal_available_at=pending.available_at if pending is not None else None,
    )


@router.post("/prepaid/deposits", response_model=DepositMade)
def deposit(economy: EconomyDep, signer: SessionSigner, body: Deposit) -> DepositMade:
    """Deposit into the vault from a signed-in account whose key this node holds (wallets:
    approve the vault and deposit yourself)."""
    made = economy.balances.deposit(signer, parse_smallest_units(body.amount, "amount"))
    return DepositMade(**PrepaidBalance.of(made.balance).model_dump(), tx_hash=made.tx_hash)


@router.put("/models/{asset_id}/price", response_model=ModelPrice)
def set_price(
    economy: EconomyDep, me: SessionAddress, asset_id: StoredId, body: PriceSet
) -> ModelPrice:
    """Set a model's price per 1,000 tokens (its owner only)."""
    price = economy.prices.set(
        me, asset_id, parse_smallest_units(body.price_per_1k, "price_per_1k")
    )
    return ModelPrice(asset_id=asset_id, price_per_1k=str(price))


@router.get("/models/{asset_id}/price", response_model=ModelPrice)
def get_price(economy: EconomyDep, asset_id: StoredId) -> ModelPrice:
    """A model's price per 1,000 tokens."""
    return ModelPrice(asset_id=asset_id, price_per_1k=str(economy.prices.get(asset_id)))


@router.get("/receipts", response_model=list[ListedReceipt])
def my_receipts(economy: EconomyDep, me: SessionAddress, limit: int = 100) -> list[ListedReceipt]:
    """The signed-in account's newest usage receipts."""
    return economy.receipts.of_account(me, limit=min(max(limit, 1), 1000))


@router.get("/receipts/{receipt_id}", response_model=StoredReceipt)
def receipt(economy: EconomyDep, receipt_id: str) -> StoredReceipt:
    """A usage receipt with the gateway's signature and its anchoring."""
    return economy.receipts.get(receipt_id)


class TranscriptOut(BaseModel):
    """A committed call's transcript document, as stored: its canonical JSON (sorted keys, no
    spaces) hashes to the CID the receipt signs, so a validator checks it came unchanged."""

    receipt_id: str
    cid: str = Field(..., description="The document's CID, as the receipt signs it")
    document: dict[str, Any] = Field(
        ..., description="schema, salt, prompt and completion (token ids, template included)"
    )


@router.get("/receipts/{receipt_id}/transcript", response_model=TranscriptOut)
def receipt_transcript(
    validator: ValidatorDep, me: SessionAddress, receipt_id: str
) -> TranscriptOut:
    """A committed call's token ids, for the account that paid for it only."""
    receipt = validator.receipt(receipt_id)
    if receipt.account.lower() != me.lower():
        raise Forbidden(f"usage receipt {receipt_id} is another account's")
    document = validator.transcripts.document(receipt.transcript)
    return TranscriptOut(receipt_id=receipt_id, cid=receipt.transcript, document=document)


@router.post("/receipts/{receipt_id}/verify", response_model=ReceiptCheck)
def verify_receipt(validator: ValidatorDep, me: SessionAddress, receipt_id: str) -> ReceiptCheck:
    """Replay a committed call on the model its receipt names, here on the node, and compare
    the hidden states with the receipt's commitment (the account that paid for it only; `cairn
    verify receipts` replays on your own machine instead)."""
    receipt = validator.receipt(receipt_id)
    if receipt.account.lower() != me.lower():
        raise Forbidden(f"usage receipt {receipt_id} is another account's")
    return validator.check(receipt_id)


@router.get("/receipts/{receipt_id}/proof", response_model=ReceiptProof)
def receipt_proof(economy: EconomyDep, receipt_id: str) -> ReceiptProof:
    """A receipt's Merkle proof against its anchored batch root, checked on chain."""
    return economy.receipts.proof(receipt_id)


@router.post("/receipts/anchor", response_model=list[AnchoredReceipts])
def anchor_receipts(economy: EconomyDep, me: SessionAddress) -> list[AnchoredReceipts]:
    """Anchor every waiting receipt now (the node's operator only)."""
    return economy.anchor_receipts_by(me)


@router.get("/epochs", response_model=list[Epoch])
def epochs(economy: EconomyDep) -> list[Epoch]:
    """Settled epochs, newest first."""
    return economy.epochs.epochs()


@router.get("/epochs/{epoch_id}", response_model=Epoch)
def epoch(economy: EconomyDep, epoch_id: StoredId) -> Epoch:
    """One epoch."""
    return economy.epochs.epoch(epoch_id)


@router.post("/epochs/settle", response_model=Settled)
def settle(economy: EconomyDep, me: SessionAddress) -> Settled:
    """Close an epoch now: anchor waiting receipts, split their revenue by lineage, fund it
    (the node's operator only). With nothing to settle the answer says so and nothing changes.
    """
    result = economy.settle_by(me)
    return Settled(settled=result is not None, epoch=result)


@router.get("/earnings/{account}", response_model=Earnings)
def earnings(economy: EconomyDep, account: str) -> Earnings:
    """What each epoch owes an account and why (models, datasets, jobs), and what is unclaimed."""
    return economy.epochs.earnings(account)


@router.post("/claims", response_model=Claims)
def claim(economy: EconomyDep, body: ClaimBody) -> Claims:
    """Claim everything an account is owed; the tokens go to that account, whoever asks."""
    return economy.epochs.claim(body.account, earned=True)
