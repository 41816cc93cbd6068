"""Signed statements: canonical JSON signed with EIP-191 (`personal_sign`), and its leaf.

Work reports and usage receipts are both statements: the signer signs the canonical bytes; the
anchored leaf is the SHA-256 of the canonical JSON with the signature added, so a leaf commits
to who signed as well as to what was said.
"""

from __future__ import annotations

import hashlib
import json

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from cairn.core.errors import InvalidInput


def sign_statement(account: LocalAccount, canonical: bytes) -> str:
    """`account`'s EIP-191 signature over `canonical`, 0x-hex."""
    return str(account.sign_message(encode_defunct(primitive=canonical)).signature.to_0x_hex())


def check_signer(canonical: bytes, signature: str, expected: str, what: str) -> None:
    """Raise `InvalidInput` unless `signature` over `canonical` recovers to `expected`."""
    try:
        signer = Account.recover_message(encode_defunct(primitive=canonical), signature=signature)
    except Exception as exc:  # malformed signatures raise several types
        raise InvalidInput(f"{what} signature is malformed: {exc}") from None
    if signer.lower() != expected.lower():
        raise InvalidInput(f"{what} is signed by {signer}, not by {expected}")


def statement_leaf(canonical: bytes, signature: str) -> str:
    """SHA-256 of the canonical JSON with `signature` added, 0x-hex."""
    body = json.loads(canonical)
    body["signature"] = signature
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return "0x" + hashlib.sha256(data).hexdigest()
