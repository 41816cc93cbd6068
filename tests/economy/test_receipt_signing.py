"""Usage receipts are signed as EIP-712 typed data that any wallet library checks; receipts
signed before with EIP-191 keep their signed bytes, their signatures and their anchored leaves."""

from __future__ import annotations

import dataclasses
import json

import pytest
from eth_account import Account
from pydantic import TypeAdapter

from cairn.cli.verify import signed_receipt
from cairn.core.errors import InvalidInput
from cairn.economy.receipt_signing import signed_payload
from cairn.economy.receipts import (
    SCHEMA,
    TYPED_SCHEMA,
    StoredReceipt,
    UsageReceipt,
    receipt_from_json,
    receipt_leaf,
    sign_receipt,
    verify_receipt,
)
from tests.signatures import published_signer, published_signer_alone

GATEWAY = Account.from_key("0x" + "11" * 32)
# A receipt as the gateway signed it before EIP-712 (schema v1), with the signature and the
# leaf the code of then gave it: they are anchored on chain and must never change.
OLD = {
    "receipt_id": "r1",
    "gateway": GATEWAY.address,
    "chain_id": 31337,
    "account": "0x" + "22" * 20,
    "key_id": "key_1",
    "model": 4,
    "endpoint": "chat.completions",
    "prompt_tokens": 40,
    "completion_tokens": 60,
    "price_per_1k": "20000000000000000000",
    "amount": "2000000000000000000",
    "created_at": 1764900000000,
    "price_per_call": "0",
    "commitment": "",
    "transcript": "",
}
OLD_SIGNED = (
    '{"account":"0x2222222222222222222222222222222222222222","amount":"2000000000000000000",'
    '"chain_id":31337,"completion_tokens":60,"created_at":1764900000000,'
    '"endpoint":"chat.completions","gateway":"0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A",'
    '"key_id":"key_1","model":4,"price_per_1k":"20000000000000000000","prompt_tokens":40,'
    '"receipt_id":"r1","schema":"cairn.usage-receipt/v1"}'
)
OLD_SIGNATURE = (
    "0x61b6aac3fad46f382969ba3fe57eaa362ea00f7c84be29996964c05890bd46fc754bf46262649f7eaa5180ea"
    "31dd1ac2af0d7c6631d1784d22cc98fd3556c0a71b"
)
OLD_LEAF = "0x77b72984fa22f304b89f75f98463c9b64e12928127ff51fe6c171c38afb144b5"
COMMITTED = {"price_per_call": "5", "commitment": "abc", "transcript": "bafy"}
COMMITTED_SIGNATURE = (
    "0x9e50f5525c71ac656141f6edce91214b3f4d35d4a06236e1a9490422fc6234c84ef8db06e879ad50efa8a4f1"
    "a7090380210dc0c3b24dd3b730503d32e6c4cd201c"
)
COMMITTED_LEAF = "0x54b126e9eaabf800bc21af67cd205265cdf14c3daa7d53e75c080c075eb802d1"


def published(receipt: UsageReceipt, signature: str) -> dict[str, object]:
    """The receipt as `GET /api/v1/receipts/{id}` answers it (the same JSON serialisation)."""
    signed, typed = signed_payload(receipt)
    stored = StoredReceipt(
        receipt=receipt.to_dict(),
        signing="eip712" if receipt.typed else "eip191",
        signed=signed,
        typed_data=typed,
        signature=signature,
        leaf=receipt_leaf(receipt, signature),
        batch=None,
        epoch_id=None,
        check=None,
    )
    answer: dict[str, object] = TypeAdapter(StoredReceipt).dump_python(stored, mode="json")
    return json.loads(json.dumps(answer))


@pytest.mark.parametrize(
    ("stored", "signature", "leaf"),
    [
        (OLD, OLD_SIGNATURE, OLD_LEAF),
        ({**OLD, **COMMITTED}, COMMITTED_SIGNATURE, COMMITTED_LEAF),
    ],
    ids=["per-token", "committed"],
)
def test_an_old_eip191_receipt_keeps_its_signed_bytes_signature_and_leaf(
    stored: dict[str, object], signature: str, leaf: str
) -> None:
    entry = {**stored, "signature": signature, "leaf": leaf}  # as its anchored batch lists it
    receipt = receipt_from_json(entry)
    assert receipt.schema == SCHEMA and not receipt.typed
    verify_receipt(receipt, signature)
    assert receipt_leaf(receipt, signature) == leaf
    assert sign_receipt(receipt, GATEWAY) == signature  # RFC 6979: the same bytes, the same one
    if stored is OLD:
        assert receipt.canonical().decode() == OLD_SIGNED
    answer = published(receipt, signature)
    assert answer["signing"] == "eip191" and answer["typed_data"] is None
    assert answer["signed"] == receipt.canonical().decode()
    assert published_signer(answer) == GATEWAY.address
    with pytest.raises(InvalidInput, match="signed by"):
        verify_receipt(receipt_from_json({**entry, "amount": "1"}), signature)


def test_a_new_receipt_is_eip712_typed_data_any_wallet_library_checks() -> None:
    receipt = UsageReceipt(**{**OLD, **COMMITTED, "schema": TYPED_SCHEMA})  # type: ignore[arg-type]
    signature = sign_receipt(receipt, GATEWAY)
    verify_receipt(receipt, signature)
    typed = receipt.typed_data()
    assert typed["primaryType"] == "UsageReceipt"
    assert typed["domain"] == {"name": "Cairn", "version": "1", "chainId": 31337}
    assert [f["name"] for f in typed["types"]["EIP712Domain"]] == ["name", "version", "chainId"]
    kinds = {f["name"]: f["type"] for f in typed["types"]["UsageReceipt"]}
    assert kinds["gateway"] == kinds["account"] == "address"
    assert {kinds[n] for n in ("model", "promptTokens", "amount", "pricePer1k", "createdAt")} == {
        "uint256"
    }
    assert kinds["receiptId"] == kinds["commitment"] == kinds["transcript"] == "string"
    assert typed["message"]["amount"] == "2000000000000000000"  # past 2**53: a decimal string
    assert len(kinds) == len(dataclasses.fields(UsageReceipt)) - 2  # all but chain_id, schema

    answer = published(receipt, signature)
    assert answer["signing"] == "eip712" and answer["signed"] is None
    assert answer["receipt"] == {**receipt.to_dict()} and answer["typed_data"] == typed
    assert published_signer(answer) == GATEWAY.address  # eth_account alone, no cairn
    forged = json.loads(json.dumps(answer))
    forged["typed_data"]["message"]["amount"] = "1"
    assert published_signer(forged) != GATEWAY.address

    # an entry of its anchored batch document comes back as it was signed, leaf and all
    entry = {**receipt.to_dict(), "signature": signature, "leaf": answer["leaf"]}
    again = receipt_from_json(json.loads(json.dumps(entry)))
    assert again == receipt and receipt_leaf(again, signature) == answer["leaf"]
    verify_receipt(again, signature)
    assert '"schema":"cairn.usage-receipt/v2"' in receipt.canonical().decode()
    with pytest.raises(InvalidInput, match="signed by"):
        verify_receipt(dataclasses.replace(receipt, amount="1"), signature)
    with pytest.raises(InvalidInput, match="malformed"):
        verify_receipt(receipt, "0x1234")
    # the same fields under the old scheme are another signed payload, another leaf
    old = dataclasses.replace(receipt, schema=SCHEMA)
    with pytest.raises(InvalidInput):
        verify_receipt(old, signature)
    assert receipt_leaf(old, signature) != answer["leaf"]


def test_a_receipt_of_an_unknown_schema_or_with_a_bad_amount_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown schema"):
        receipt_from_json({**OLD, "schema": "cairn.usage-receipt/v9"})
    with pytest.raises(InvalidInput, match="decimal string"):
        receipt_from_json({**OLD, "amount": "-1"})
    with pytest.raises(InvalidInput, match="usage receipt"):
        receipt_from_json({**OLD, "tip": "1"})


def test_cairn_verify_receipts_reads_the_fields_only_from_what_was_signed() -> None:
    new = UsageReceipt(**{**OLD, "schema": TYPED_SCHEMA})  # type: ignore[arg-type]
    old = receipt_from_json(OLD)
    for receipt in (new, old):
        answer = published(receipt, sign_receipt(receipt, GATEWAY))
        fields, signer = signed_receipt(answer)
        assert fields == receipt.to_dict() and signer == GATEWAY.address
        lying = {**answer, "receipt": {**receipt.to_dict(), "completion_tokens": 1}}
        with pytest.raises(InvalidInput, match="is not its fields"):
            signed_receipt(lying)


@pytest.mark.process
def test_the_readme_script_checks_a_receipt_in_an_interpreter_that_never_imports_cairn() -> None:
    """The other tests run the README's `check_signature.py` here (their tiers start no
    process); this one runs it in a fresh `python -I`, which must recover the gateway from an
    EIP-712 and an EIP-191 receipt without importing cairn."""
    for schema in (TYPED_SCHEMA, SCHEMA):
        receipt = UsageReceipt(**{**OLD, **COMMITTED, "schema": schema})  # type: ignore[arg-type]
        answer = published(receipt, sign_receipt(receipt, GATEWAY))
        assert published_signer_alone(answer) == GATEWAY.address
