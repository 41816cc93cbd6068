"""A contract call as the calldata a transaction carries: selector, then ABI-encoded arguments.

The node publishes each contract's ABI (GET /chain); a client encodes its calls from it with
eth_abi, so that signing a transaction locally needs neither web3 nor a node of its own. The
arguments are taken as web3 takes them (a `bytesN` or `bytes` as bytes or 0x-hex, an array as a
list), but for an address: 0x-hex in one letter case or with a right EIP-55 checksum, as
`cairn.core.evm.checksum` admits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import encode
from eth_abi.exceptions import EncodingError
from eth_utils.abi import collapse_if_tuple

from cairn.core.errors import InvalidInput
from cairn.core.evm import checksum
from cairn.core.merkle import keccak256


def encode_call(
    abi: list[dict[str, Any]], contract: str, function: str, args: Sequence[Any]
) -> str:
    """The 0x-hex calldata of `contract.function(*args)`; a call the ABI does not admit is
    `InvalidInput`, naming the function and the argument at fault."""
    named = [e for e in abi if e.get("type") == "function" and e.get("name") == function]
    if not named:
        raise InvalidInput(f"{contract} has no function {function}")
    # overloads (safeTransferFrom with or without data) differ in their number of arguments
    chosen = [e for e in named if len(e["inputs"]) == len(args)]
    if len(chosen) != 1:
        counts = " or ".join(sorted({str(len(e["inputs"])) for e in named}))
        raise InvalidInput(f"{contract}.{function} takes {counts} arguments; got {len(args)}")
    inputs = chosen[0]["inputs"]
    types = [collapse_if_tuple(dict(i)) for i in inputs]
    values = [
        _argument(t, value, f"{contract}.{function}: {i.get('name') or n}")
        for n, (t, value, i) in enumerate(zip(types, args, inputs, strict=True))
    ]
    selector = keccak256(f"{function}({','.join(types)})".encode())[:4]
    try:
        data = encode(types, values)
    except EncodingError as exc:
        raise InvalidInput(f"{contract}.{function}: {exc}") from None
    return "0x" + (selector + data).hex()


def _argument(abi_type: str, value: Any, where: str) -> Any:
    """`value` in the form eth_abi encodes as `abi_type`."""
    if abi_type.endswith("]"):
        if not isinstance(value, list | tuple):
            raise InvalidInput(f"{where} must be a list ({abi_type}); got {value!r}")
        item = abi_type[: abi_type.rindex("[")]
        return [_argument(item, v, where) for v in value]
    if abi_type == "address":
        return checksum(value)
    if abi_type.startswith("bytes") and isinstance(value, str):
        try:
            value = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise InvalidInput(f"{where} must be 0x-hex ({abi_type}); got {value!r}") from None
    if abi_type.startswith("bytes") and abi_type != "bytes" and isinstance(value, bytes):
        size = int(abi_type[5:])
        if len(value) != size:
            raise InvalidInput(f"{where} must be {size} bytes ({abi_type}); got {len(value)}")
    return value
