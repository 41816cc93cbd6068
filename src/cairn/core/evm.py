"""EVM values as the contracts take them: checksummed addresses and 32-byte words.

Each is checked where it enters, so that a malformed one is `InvalidInput` with the value in
the message rather than an encoding error from deep inside web3.
"""

from __future__ import annotations

from eth_utils import is_address, is_checksum_address, to_checksum_address
from hexbytes import HexBytes

from cairn.core.errors import InvalidInput


def checksum(address: str) -> str:
    """A checksummed address; anything that is not 20 bytes of hex is `InvalidInput`, and so is
    a mixed-case address whose EIP-55 checksum is wrong (a mistyped character)."""
    if not isinstance(address, str) or not is_address(address):
        raise InvalidInput(f"not an Ethereum address: {address!r}")
    digits = address[2:] if address[:2] in ("0x", "0X") else address
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(address):
        raise InvalidInput(f"the checksum of address {address!r} is wrong: is it mistyped?")
    return str(to_checksum_address(address))


def to_bytes32(value: str | bytes) -> bytes:
    """A 32-byte value from 0x-hex or bytes; anything else is `InvalidInput`."""
    try:
        data = HexBytes(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"not 32 bytes of hex: {value!r}") from exc
    if len(data) != 32:
        raise InvalidInput(f"expected 32 bytes, got {len(data)}: {value!r}")
    return bytes(data)
