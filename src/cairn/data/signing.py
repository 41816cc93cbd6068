"""EIP-712 typed data for contribution uploads: one signature covers a whole upload.

The contributor signs (dataset id, Merkle root of the upload's line hashes, nonce) under a
domain bound to this chain and this node's ContributionLedger, so a signature cannot be
replayed on another chain, another deployment, another dataset or another upload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from typing_extensions import TypedDict  # pydantic reads its fields only from this one on 3.11

from cairn.core.errors import InvalidInput, Unauthorized
from cairn.core.merkle import StandardMerkleTree

DOMAIN_NAME = "Cairn"
DOMAIN_VERSION = "1"
LINE_LEAF = ["bytes32"]


class TypedField(TypedDict):
    """One field of an EIP-712 struct type."""

    name: str
    type: str


class ContributionDomain(TypedDict):
    """The EIP-712 domain: this chain and this node's ContributionLedger."""

    name: str
    version: str
    chainId: int
    verifyingContract: str


class ContributionMessage(TypedDict):
    """What the contributor signs: the dataset, the upload's records root and a nonce."""

    datasetId: int
    recordsRoot: str
    nonce: int


class ContributionTypedData(TypedDict):
    """The full EIP-712 document of an upload, as `eth_signTypedData_v4` takes it."""

    types: dict[str, list[TypedField]]
    primaryType: str
    domain: ContributionDomain
    message: ContributionMessage


CONTRIBUTION_TYPES: dict[str, list[TypedField]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Contribution": [
        {"name": "datasetId", "type": "uint256"},
        {"name": "recordsRoot", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
}


def line_hash(line: str) -> str:
    """sha2-256 of one uploaded line as UTF-8, without its line ending (0x-hex)."""
    return "0x" + hashlib.sha256(line.rstrip("\r\n").encode("utf-8")).hexdigest()


def upload_lines(text: str) -> list[str]:
    """The non-blank lines of a JSONL upload, as they are hashed and signed."""
    return [line for line in text.splitlines() if line.strip()]


def records_root(lines: Sequence[str]) -> str:
    """The Merkle root (OpenZeppelin StandardMerkleTree, leaves `bytes32`) over the line hashes."""
    if not lines:
        raise InvalidInput("an upload needs at least one record")
    return StandardMerkleTree.of([[line_hash(line)] for line in lines], LINE_LEAF).root


def contribution_typed_data(
    *, chain_id: int, ledger: str, dataset_id: int, root: str, nonce: int
) -> ContributionTypedData:
    """The full EIP-712 document a wallet signs (`eth_signTypedData_v4`)."""
    return {
        "types": CONTRIBUTION_TYPES,
        "primaryType": "Contribution",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": ledger,
        },
        "message": {"datasetId": dataset_id, "recordsRoot": root, "nonce": nonce},
    }


def sign_contribution(account: LocalAccount, typed_data: ContributionTypedData) -> str:
    """Sign the typed data with a local key (what a wallet does)."""
    signed = account.sign_message(encode_typed_data(full_message=dict(typed_data)))
    return signed.signature.to_0x_hex()


def recover_signer(typed_data: ContributionTypedData, signature: str) -> str:
    """The address that signed `typed_data`; a malformed signature is `Unauthorized`."""
    try:
        raw = HexBytes(signature)
        if len(raw) != 65:
            raise ValueError(f"a signature is 65 bytes, got {len(raw)}")
        return str(
            Account.recover_message(encode_typed_data(full_message=dict(typed_data)), signature=raw)
        )
    except Exception as exc:  # bad hex, bad length, bad curve point
        raise Unauthorized(f"the upload's signature is not valid: {exc}") from exc
