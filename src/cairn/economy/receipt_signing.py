"""A usage receipt, and how its gateway signs it: EIP-712 typed data, or EIP-191 before.

A receipt of schema `cairn.usage-receipt/v2` (every receipt made now) is signed as EIP-712
typed data (`eth_signTypedData_v4`): domain {name "Cairn", version "1", chainId the receipt's
chain}, primary type `UsageReceipt` with every other field typed (addresses, uint256 counts,
prices, amounts and times, strings for ids, the endpoint, the commitment and the transcript).
`typed_data` is that whole document, so any wallet library recovers the gateway from it and the
signature. A receipt of `cairn.usage-receipt/v1` (signed before, and anchored: its signed bytes
and leaf never change) was signed with EIP-191 `personal_sign` over its canonical JSON: the
fields with the schema's name, sorted and compact, without a per-call price of "0", an empty
commitment or an empty transcript. The JSON a receipt is stored and published as names its
schema; one without a schema is v1, as receipts were stored before v2.

The anchored leaf is, for both, the SHA-256 of the receipt's canonical JSON with the signature
added (`statement_leaf`); a v2 receipt's canonical JSON holds every field and its schema.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from typing_extensions import TypedDict  # pydantic reads its fields only from this one on 3.11

from cairn.core.errors import InvalidInput
from cairn.data.signing import TypedField
from cairn.identity.statements import check_signer, sign_statement, statement_leaf

SCHEMA = "cairn.usage-receipt/v1"  # EIP-191 personal_sign over the canonical JSON
TYPED_SCHEMA = "cairn.usage-receipt/v2"  # EIP-712 typed data
SCHEMAS = (SCHEMA, TYPED_SCHEMA)
DOMAIN_NAME = "Cairn"
DOMAIN_VERSION = "1"
# The receipt's fields as the EIP-712 message names and types them (chain_id is the domain's).
TYPED_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("receiptId", "string", "receipt_id"),
    ("gateway", "address", "gateway"),
    ("account", "address", "account"),
    ("keyId", "string", "key_id"),
    ("model", "uint256", "model"),
    ("endpoint", "string", "endpoint"),
    ("promptTokens", "uint256", "prompt_tokens"),
    ("completionTokens", "uint256", "completion_tokens"),
    ("pricePer1k", "uint256", "price_per_1k"),
    ("pricePerCall", "uint256", "price_per_call"),
    ("amount", "uint256", "amount"),
    ("createdAt", "uint256", "created_at"),
    ("commitment", "string", "commitment"),
    ("transcript", "string", "transcript"),
)
RECEIPT_TYPES: dict[str, list[TypedField]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ],
    "UsageReceipt": [{"name": name, "type": kind} for name, kind, _ in TYPED_FIELDS],
}
DECIMALS = ("price_per_1k", "price_per_call", "amount")  # may pass 2**53: JSON strings


class ReceiptDomain(TypedDict):
    """The EIP-712 domain of a receipt: Cairn on the receipt's chain."""

    name: str
    version: str
    chainId: int


class ReceiptMessage(TypedDict):
    """A receipt's fields as the EIP-712 message (uint256 amounts and prices as decimal
    strings, which every EIP-712 library takes, since they may pass 2**53)."""

    receiptId: str
    gateway: str
    account: str
    keyId: str
    model: int
    endpoint: str
    promptTokens: int
    completionTokens: int
    pricePer1k: str
    pricePerCall: str
    amount: str
    createdAt: int
    commitment: str
    transcript: str


class ReceiptTypedData(TypedDict):
    """The full EIP-712 document a gateway signs for a receipt (`eth_signTypedData_v4`)."""

    types: dict[str, list[TypedField]]
    primaryType: str
    domain: ReceiptDomain
    message: ReceiptMessage


@dataclass(frozen=True)
class UsageReceipt:
    """One charged request, as the gateway signs it."""

    receipt_id: str
    gateway: str  # the signing gateway's address
    chain_id: int
    account: str  # who paid
    key_id: str
    model: int  # the model asset
    endpoint: str  # chat.completions, completions, embeddings, classifications
    prompt_tokens: int
    completion_tokens: int
    price_per_1k: str  # smallest token units per 1,000 tokens, decimal
    amount: str  # charged, decimal
    created_at: int  # unix milliseconds
    price_per_call: str = "0"  # an app's price per call, decimal; "0" for per-token pricing
    # A generation's commitment to the model's hidden states (`cairn.verify.inference`) and the
    # CID of its transcript (the token ids, salted, readable by the paying account): what a
    # validator replays. Empty for a call that commits to nothing (embeddings, an upstream).
    commitment: str = ""
    transcript: str = ""
    # How it is signed: v2 EIP-712 typed data, v1 (every receipt stored without one) EIP-191.
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        if self.schema not in SCHEMAS:
            raise InvalidInput(f"usage receipt: unknown schema {self.schema!r}")
        for name in DECIMALS:
            value = getattr(self, name)
            if not (isinstance(value, str) and value.isdigit() and value.isascii()):
                raise InvalidInput(f"usage receipt: {name} must be a decimal string, not {value!r}")

    @property
    def typed(self) -> bool:
        """Whether it is signed as EIP-712 typed data (v2)."""
        return self.schema == TYPED_SCHEMA

    def canonical(self) -> bytes:
        """Sorted-key compact JSON of the fields with the schema name: what a v1 receipt signs
        (without a per-call price of "0", a commitment or a transcript when there is none, as
        receipts were before those fields), and for both what the leaf hashes."""
        body = asdict(self)
        if not self.typed:
            for optional, absent in (
                ("price_per_call", "0"),
                ("commitment", ""),
                ("transcript", ""),
            ):
                if body[optional] == absent:
                    del body[optional]
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def typed_data(self) -> ReceiptTypedData:
        """The full EIP-712 document a v2 receipt's gateway signs (`eth_signTypedData_v4`)."""
        fields = asdict(self)
        message = {name: fields[field] for name, _, field in TYPED_FIELDS}
        return {
            "types": RECEIPT_TYPES,
            "primaryType": "UsageReceipt",
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.chain_id},
            "message": ReceiptMessage(**message),  # type: ignore[typeddict-item]
        }

    def to_dict(self) -> dict[str, Any]:
        """The receipt's fields, its schema among them."""
        return asdict(self)


def sign_receipt(receipt: UsageReceipt, gateway: LocalAccount) -> str:
    """The gateway's signature over the receipt (EIP-712, or EIP-191 for v1), 0x-hex."""
    if gateway.address.lower() != receipt.gateway.lower():
        raise InvalidInput(f"receipt names gateway {receipt.gateway}, key is {gateway.address}")
    if receipt.typed:
        message = encode_typed_data(full_message=dict(receipt.typed_data()))
        signed = gateway.sign_message(message)
        return str(signed.signature.to_0x_hex())
    return sign_statement(gateway, receipt.canonical())


def verify_receipt(receipt: UsageReceipt, signature: str) -> None:
    """Raise `InvalidInput` unless the receipt's gateway signed it."""
    if not receipt.typed:
        check_signer(receipt.canonical(), signature, receipt.gateway, "receipt")
        return
    try:
        message = encode_typed_data(full_message=dict(receipt.typed_data()))
        signer = Account.recover_message(message, signature=signature)
    except Exception as exc:  # malformed signatures raise several types
        raise InvalidInput(f"receipt signature is malformed: {exc}") from None
    if signer.lower() != receipt.gateway.lower():
        raise InvalidInput(f"receipt is signed by {signer}, not by {receipt.gateway}")


def receipt_leaf(receipt: UsageReceipt, signature: str) -> str:
    """The anchored leaf: SHA-256 of the canonical JSON with the signature, 0x-hex."""
    return statement_leaf(receipt.canonical(), signature)


def receipt_from_json(data: dict[str, Any]) -> UsageReceipt:
    """A receipt from its JSON: as stored, published, or an entry of an anchored batch document
    (signature, leaf and what the API adds beside them ignored; no schema: v1)."""
    ignored = ("signature", "leaf", "signed", "typed_data")
    fields = {k: v for k, v in data.items() if k not in ignored}
    try:
        return UsageReceipt(**fields)
    except TypeError as exc:
        raise InvalidInput(f"usage receipt: {exc}") from None


def signed_payload(receipt: UsageReceipt) -> tuple[str | None, ReceiptTypedData | None]:
    """What the gateway signed, as published: (the EIP-191 text, None) for a v1 receipt,
    (None, the EIP-712 typed data) for a v2 one."""
    if receipt.typed:
        return None, receipt.typed_data()
    return receipt.canonical().decode(), None
