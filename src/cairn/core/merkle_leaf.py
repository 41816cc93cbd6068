"""How a value becomes a leaf of OpenZeppelin's StandardMerkleTree, byte for byte.

leaf = keccak256(keccak256(abi.encode(leaf_encoding, value))), as `@openzeppelin/merkle-tree`
v1.0.8's `standardLeafHash`: the double hash keeps a 64-byte inner node from passing as a leaf.

Values are sequences, one item per ABI type: ints or decimal / 0x-hex strings for integers,
0x-hex strings (any case) or bytes for addresses and byte strings, as `@metamask/abi-utils`
takes them. Unlike the JavaScript library, an address must be exactly 20 bytes (JS left-pads
shorter hex), and a bad item is an `InvalidInput` naming the value and item at fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi import encode as abi_encode
from eth_abi.exceptions import ABITypeError, ParseError
from eth_abi.grammar import ABIType, BasicType, TupleType, normalize, parse

from cairn.core.errors import InvalidInput
from cairn.core.merkle_proof import keccak256

_HEX = re.compile(r"0x[0-9a-fA-F]*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DECIMAL = re.compile(r"-?[0-9]+")


def standard_leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """keccak256(keccak256(abi.encode(leaf_encoding, value))), OpenZeppelin's leaf hash."""
    return leaf_codec(tuple(leaf_encoding)).leaf_hash(value)


_Coerce = Callable[[Any], Any]


def _bytes_of(item: Any, type_name: str) -> bytes:
    """Bytes from bytes or a 0x-hex string (odd length gets a leading 0, as in @metamask/utils)."""
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    if isinstance(item, str) and _HEX.fullmatch(item):
        digits = item[2:]
        return bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits)
    raise InvalidInput(f"{type_name}: expected 0x-hex or bytes; got {item!r:.80}")


def _int_of(item: Any, type_name: str) -> int:
    """An int from an int or a decimal / 0x-hex string (as @metamask/abi-utils takes them)."""
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    if isinstance(item, str):
        if _DECIMAL.fullmatch(item):
            return int(item)
        if len(item) > 2 and _HEX.fullmatch(item):
            return int(item[2:], 16)
    raise InvalidInput(
        f"{type_name}: expected an int, or a decimal or 0x-hex string; got {item!r:.80}"
    )


def _coercer(t: ABIType, name: str) -> _Coerce:
    """A function turning a JSON-ish item of ABI type `t` into what `eth_abi.encode` takes."""
    if t.is_array:
        item_of = _coercer(t.item_type, name)
        size = t.arrlist[-1][0] if t.arrlist[-1] else None

        def array(item: Any) -> list[Any]:
            if not isinstance(item, list | tuple):
                raise InvalidInput(f"{name}: expected a list; got {item!r:.80}")
            if size is not None and len(item) != size:
                raise InvalidInput(f"{name}: expected {size} items; got {len(item)}")
            return [item_of(x) for x in item]

        return array
    if isinstance(t, TupleType):
        parts = [_coercer(c, c.to_type_str()) for c in t.components]

        def tuple_(item: Any) -> tuple[Any, ...]:
            if not isinstance(item, list | tuple) or len(item) != len(parts):
                raise InvalidInput(f"{name}: expected a list of {len(parts)}; got {item!r:.80}")
            return tuple(part(x) for part, x in zip(parts, item, strict=True))

        return tuple_
    assert isinstance(t, BasicType)
    base, sub = t.base, t.sub
    if base == "address":

        def address(item: Any) -> bytes:
            if isinstance(item, str) and _ADDRESS.fullmatch(item):
                return bytes.fromhex(item[2:])
            if isinstance(item, bytes | bytearray) and len(item) == 20:
                return bytes(item)
            raise InvalidInput(f"address: expected 0x and 40 hex digits; got {item!r:.80}")

        return address
    if base in ("uint", "int"):
        assert isinstance(sub, int)
        low, high = (0, 2**sub - 1) if base == "uint" else (-(2 ** (sub - 1)), 2 ** (sub - 1) - 1)

        def integer(item: Any) -> int:
            n = _int_of(item, name)
            if not low <= n <= high:
                raise InvalidInput(f"{name}: {n} is out of range")
            return n

        return integer
    if base == "bytes":

        def byte_string(item: Any) -> bytes:
            data = _bytes_of(item, name)
            if isinstance(sub, int) and len(data) > sub:
                raise InvalidInput(f"{name}: expected at most {sub} bytes; got {len(data)}")
            return data

        return byte_string
    if base == "string":

        def string(item: Any) -> str:
            if not isinstance(item, str):
                raise InvalidInput(f"string: expected a str; got {item!r:.80}")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"string: not valid UTF-8 text: {item!r:.80}") from None
            return item

        return string
    if base == "bool":

        def boolean(item: Any) -> bool:
            if isinstance(item, bool):
                return item
            if item in ("true", "false"):
                return bool(item == "true")
            raise InvalidInput(f"bool: expected true, false, 'true' or 'false'; got {item!r:.80}")

        return boolean
    raise InvalidInput(f"leaf encoding: ABI type {name!r} is not supported")


def _word(t: ABIType) -> Callable[[Any], bytes] | None:
    """The 32-byte ABI word of a coerced static elementary item, or None for other types."""
    if not isinstance(t, BasicType) or t.is_array:
        return None
    if t.base == "address":
        return lambda a: b"\0" * 12 + a
    if t.base == "uint":
        return lambda n: n.to_bytes(32, "big")
    if t.base == "int":
        return lambda n: n.to_bytes(32, "big", signed=True)
    if t.base == "bool":
        return lambda b: b"\0" * 31 + (b"\1" if b else b"\0")
    if t.base == "bytes" and isinstance(t.sub, int):
        return lambda data: data.ljust(32, b"\0")
    return None


@dataclass(frozen=True)
class LeafCodec:
    """How to check, ABI-encode and hash values of one leaf encoding."""

    abi_types: tuple[str, ...]
    coercers: tuple[_Coerce, ...]
    # abi.encode of all-static elementary types is just their words side by side; skipping
    # eth_abi there makes a 100,000-leaf tree several times faster.
    words: tuple[Callable[[Any], bytes], ...] | None

    def coerce(self, value: Any) -> list[Any]:
        """The value's items as `eth_abi` takes them, or `InvalidInput`."""
        if not isinstance(value, list | tuple):
            count = len(self.coercers)
            raise InvalidInput(f"a value must be a list of {count} items; got {value!r:.80}")
        if len(value) != len(self.coercers):
            wanted = ", ".join(self.abi_types)
            raise InvalidInput(f"expected {len(self.coercers)} items ({wanted}); got {len(value)}")
        return [coerce(item) for coerce, item in zip(self.coercers, value, strict=True)]

    def encode(self, value: Any) -> bytes:
        """abi.encode(leaf_encoding, value)."""
        items = self.coerce(value)
        if self.words is not None:
            return b"".join(word(item) for word, item in zip(self.words, items, strict=True))
        return abi_encode(list(self.abi_types), items)

    def leaf_hash(self, value: Any) -> bytes:
        """OpenZeppelin's double-keccak leaf hash."""
        return keccak256(keccak256(self.encode(value)))


@lru_cache(maxsize=64)
def leaf_codec(leaf_encoding: tuple[str, ...]) -> LeafCodec:
    """The codec of one leaf encoding (a tuple of ABI type strings), or `InvalidInput`."""
    if not leaf_encoding:
        raise InvalidInput("leaf encoding: expected at least one ABI type")
    parsed: list[ABIType] = []
    for type_str in leaf_encoding:
        try:
            t = parse(normalize(str(type_str).replace(" ", "")))
            t.validate()
        except (ParseError, ABITypeError) as e:
            raise InvalidInput(f"leaf encoding: {type_str!r} is not an ABI type ({e})") from None
        parsed.append(t)
    words = [_word(t) for t in parsed]
    return LeafCodec(
        abi_types=tuple(t.to_type_str() for t in parsed),
        coercers=tuple(_coercer(t, t.to_type_str()) for t in parsed),
        words=None if None in words else tuple(w for w in words if w is not None),
    )


def value_to_json(item: Any) -> Any:
    """A value item as JSON: ints as decimal strings (JS bigints), bytes as 0x-hex."""
    if isinstance(item, bool | str) or item is None:
        return item
    if isinstance(item, int):
        return str(item)
    if isinstance(item, bytes | bytearray):
        return "0x" + item.hex()
    if isinstance(item, list | tuple):
        return [value_to_json(x) for x in item]
    return item
