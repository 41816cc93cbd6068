"""OpenZeppelin's StandardMerkleTree, byte for byte, in pure Python.

This mirrors `@openzeppelin/merkle-tree` v1.0.8 (`dist/standard.js`, `merkletree.js`, `core.js`),
so a root, proof or dump made here is the one the JavaScript library and OpenZeppelin's
`MerkleProof.sol` expect:

- leaf = keccak256(keccak256(abi.encode(leaf_encoding, value)));
- leaves are sorted by hash (unless `sort_leaves=False`) and stored at the end of a flat array,
  node i having children 2i+1 and 2i+2; a parent is keccak256 of its children's sorted pair;
- `dump()` / `load()` use the library's JSON ("format": "standard-v1").

Values are sequences, one item per ABI type: ints or decimal / 0x-hex strings for integers,
0x-hex strings (any case) or bytes for addresses and byte strings. `dump()` writes integers
given as Python ints as decimal strings, as JavaScript users dump bigints, and keeps other
items as given, so dumps load in either library.

Differences from the JavaScript library, on purpose: an address must be exactly 20 bytes (JS
left-pads shorter hex), and errors are `InvalidInput` / `NotFound` with a message naming the
value and item at fault.
"""

from __future__ import annotations

import re
import types
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from eth_abi import encode as abi_encode
from eth_abi.exceptions import ABITypeError, ParseError
from eth_abi.grammar import ABIType, BasicType, TupleType, normalize, parse

from cairn.core.errors import InvalidInput, NotFound

try:  # safe-pysha3 comes with eth-tester[py-evm] on CPython; 7x faster per call than eth_utils
    from sha3 import keccak_256 as _keccak_256

    def _keccak(data: bytes) -> bytes:
        return bytes(_keccak_256(data).digest())

except ImportError:  # pragma: no cover - the same hash through pycryptodome
    from eth_utils import keccak as _eth_keccak

    def _keccak(data: bytes) -> bytes:
        return bytes(_eth_keccak(data))


def keccak256(data: bytes) -> bytes:
    """Keccak-256 of `data` (Ethereum's hash), by the fastest implementation installed."""
    return _keccak(data)


FORMAT = "standard-v1"

Node = bytes | str
"""A 32-byte tree node: raw bytes or a 0x-hex string."""

_HEX = re.compile(r"0x[0-9a-fA-F]*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DECIMAL = re.compile(r"-?[0-9]+")
_NODE = re.compile(r"0x[0-9a-fA-F]{64}")


# ---------------------------------------------------------------------------------- hashing


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of the two nodes in ascending order (OpenZeppelin's `standardNodeHash`)."""
    return _keccak(a + b if a <= b else b + a)


def process_proof(leaf: Node, proof: Sequence[Node]) -> bytes:
    """The root that `leaf` and its sibling path `proof` lead to (`MerkleProof.processProof`)."""
    node = _node(leaf, "leaf")
    for i, sibling in enumerate(proof):
        node = hash_pair(node, _node(sibling, f"proof[{i}]"))
    return node


def process_multi_proof(
    leaves: Sequence[Node], proof: Sequence[Node], proof_flags: Sequence[bool]
) -> bytes:
    """The root a multiproof leads to (`MerkleProof.processMultiProof`)."""
    queue = deque(_node(leaf, f"leaves[{i}]") for i, leaf in enumerate(leaves))
    siblings = deque(_node(node, f"proof[{i}]") for i, node in enumerate(proof))
    if len(siblings) < sum(1 for flag in proof_flags if not flag):
        raise InvalidInput("multiproof: fewer proof nodes than false proof flags")
    if len(queue) + len(siblings) != len(proof_flags) + 1:
        raise InvalidInput("multiproof: len(leaves) + len(proof) must be len(proof_flags) + 1")
    for flag in proof_flags:
        if not queue or (flag and len(queue) < 2):
            raise InvalidInput("multiproof: proof flags ask for more nodes than there are")
        a = queue.popleft()
        b = queue.popleft() if flag else siblings.popleft()
        queue.append(hash_pair(a, b))
    if len(queue) + len(siblings) != 1:
        raise InvalidInput("multiproof: leaves and proof do not reduce to one root")
    return queue.pop() if queue else siblings.popleft()


def make_merkle_tree(leaves: Sequence[bytes]) -> list[bytes]:
    """The flat tree over `leaves` (in the given order): leaves at the end, reversed; root at 0."""
    if not leaves:
        raise InvalidInput("a Merkle tree needs at least one value; got none")
    n = len(leaves)
    tree = [b""] * (n - 1) + list(reversed(leaves))
    keccak = _keccak
    for i in range(n - 2, -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak(a + b if a <= b else b + a)
    return tree


def standard_leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """keccak256(keccak256(abi.encode(leaf_encoding, value))), OpenZeppelin's leaf hash."""
    return _codec(tuple(leaf_encoding)).leaf_hash(value)


def _node(value: Node, what: str) -> bytes:
    """A 32-byte node from bytes or 0x-hex, or `InvalidInput` naming `what`."""
    if isinstance(value, bytes | bytearray) and len(value) == 32:
        return bytes(value)
    if isinstance(value, str) and _NODE.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise InvalidInput(f"{what}: expected 32 bytes as 0x-hex (66 characters); got {value!r:.80}")


def _hex(node: bytes) -> str:
    return "0x" + node.hex()


# ---------------------------------------------------------------------------------- values

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
class _LeafCodec:
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
        return _keccak(_keccak(self.encode(value)))


@lru_cache(maxsize=64)
def _codec(leaf_encoding: tuple[str, ...]) -> _LeafCodec:
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
    return _LeafCodec(
        abi_types=tuple(t.to_type_str() for t in parsed),
        coercers=tuple(_coercer(t, t.to_type_str()) for t in parsed),
        words=None if None in words else tuple(w for w in words if w is not None),
    )


def _to_json(item: Any) -> Any:
    """A value item as JSON: ints as decimal strings (JS bigints), bytes as 0x-hex."""
    if isinstance(item, bool | str) or item is None:
        return item
    if isinstance(item, int):
        return str(item)
    if isinstance(item, bytes | bytearray):
        return "0x" + item.hex()
    if isinstance(item, list | tuple):
        return [_to_json(x) for x in item]
    return item


# ---------------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class MultiProof:
    """Several values proven at once; `proof_flags` as OpenZeppelin's `multiProofVerify` wants."""

    leaves: list[Any]
    proof: list[str]
    proof_flags: list[bool]


_P = ParamSpec("_P")
_Q = ParamSpec("_Q")
_R = TypeVar("_R")


class _StaticOrBound(Generic[_P, _Q, _R]):
    """A method that is one function on the class and another, bound, on an instance.

    OpenZeppelin's `StandardMerkleTree.verify(root, enc, leaf, proof)` is static while
    `tree.verify(leaf, proof)` is an instance method; Python cannot name both `verify`
    without this descriptor.
    """

    def __init__(
        self, static: Callable[_P, _R], method: Callable[Concatenate[Any, _Q], _R]
    ) -> None:
        self._static = static
        self._method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[_P, _R]: ...
    @overload
    def __get__(self, obj: StandardMerkleTree, owner: type) -> Callable[_Q, _R]: ...
    def __get__(self, obj: StandardMerkleTree | None, owner: type) -> Callable[..., _R]:
        if obj is None:
            return self._static
        return types.MethodType(self._method, obj)


def _verify(
    root: Node, leaf_encoding: Sequence[str], value: Sequence[Any], proof: Sequence[Node]
) -> bool:
    """Whether `proof` proves `value` under `root` (static form of `StandardMerkleTree.verify`)."""
    return _node(root, "root") == process_proof(standard_leaf_hash(leaf_encoding, value), proof)


def _verify_multi_proof(root: Node, leaf_encoding: Sequence[str], multiproof: MultiProof) -> bool:
    """Whether `multiproof` proves its leaves under `root`."""
    codec = _codec(tuple(leaf_encoding))
    leaves = [codec.leaf_hash(leaf) for leaf in multiproof.leaves]
    return _node(root, "root") == process_multi_proof(
        leaves, multiproof.proof, multiproof.proof_flags
    )


class StandardMerkleTree:
    """A Merkle tree of ABI-encoded values, identical to OpenZeppelin's `StandardMerkleTree`.

    `verify` and `verify_multi_proof` work in both of the library's forms: on the class they
    take the root and leaf encoding (`StandardMerkleTree.verify(root, enc, value, proof)`), on
    a tree they check against its own root (`tree.verify(index_or_value, proof)`).
    """

    def __init__(
        self, tree: list[bytes], values: list[tuple[Any, int]], leaf_encoding: Sequence[str]
    ) -> None:
        """Wrap a built tree; use `of()` or `load()` rather than calling this."""
        self._tree = tree
        self._values = values  # (value as given, tree index), in input order
        self.leaf_encoding = list(leaf_encoding)
        self._codec = _codec(tuple(leaf_encoding))
        # one hash may stand for duplicate values: the last one wins, as in JS
        self._lookup = {tree[tree_index]: i for i, (_, tree_index) in enumerate(values)}

    @classmethod
    def of(
        cls,
        values: Sequence[Sequence[Any]],
        leaf_encoding: Sequence[str],
        *,
        sort_leaves: bool = True,
    ) -> StandardMerkleTree:
        """Build the tree of `values`, each a sequence matching `leaf_encoding`."""
        if not values:
            raise InvalidInput("a Merkle tree needs at least one value; got none")
        codec = _codec(tuple(leaf_encoding))
        hashes: list[bytes] = []
        for i, value in enumerate(values):
            try:
                hashes.append(codec.leaf_hash(value))
            except InvalidInput as e:
                raise InvalidInput(f"value {i}: {e.message}") from None
        order = (
            sorted(range(len(hashes)), key=hashes.__getitem__)
            if sort_leaves
            else range(len(hashes))
        )
        tree = make_merkle_tree([hashes[i] for i in order])
        tree_index = [0] * len(values)
        for leaf_index, value_index in enumerate(order):
            tree_index[value_index] = len(tree) - 1 - leaf_index
        return cls(tree, list(zip(values, tree_index, strict=True)), leaf_encoding)

    @classmethod
    def load(cls, data: dict[str, Any]) -> StandardMerkleTree:
        """A tree from `dump()` output (ours or the JavaScript library's), validated."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else data
            raise InvalidInput(f"Merkle dump: unknown format {got!r:.40}; expected {FORMAT!r}")
        encoding, tree, values = data.get("leafEncoding"), data.get("tree"), data.get("values")
        if not isinstance(encoding, list) or not all(isinstance(t, str) for t in encoding):
            raise InvalidInput("Merkle dump: 'leafEncoding' must be a list of ABI type strings")
        if not isinstance(tree, list) or not tree:
            raise InvalidInput("Merkle dump: 'tree' must be a non-empty list of 0x-hex nodes")
        if not isinstance(values, list):
            raise InvalidInput("Merkle dump: 'values' must be a list")
        nodes = [_node(node, f"Merkle dump: tree[{i}]") for i, node in enumerate(tree)]
        indexed: list[tuple[Any, int]] = []
        for i, entry in enumerate(values):
            index = entry.get("treeIndex") if isinstance(entry, dict) else None
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(nodes):
                raise InvalidInput(f"Merkle dump: values[{i}] needs a 'treeIndex' in the tree")
            indexed.append((entry.get("value"), index))
        loaded = cls(nodes, indexed, encoding)
        loaded.validate()
        return loaded

    def dump(self) -> dict[str, Any]:
        """The library's JSON form: format, leafEncoding, tree, values (with treeIndex)."""
        return {
            "format": FORMAT,
            "leafEncoding": list(self.leaf_encoding),
            "tree": [_hex(node) for node in self._tree],
            "values": [{"value": _to_json(v), "treeIndex": t} for v, t in self._values],
        }

    @property
    def root(self) -> str:
        """The root, 0x-hex."""
        return _hex(self._tree[0])

    def __len__(self) -> int:
        """The number of values."""
        return len(self._values)

    def entries(self) -> Iterator[tuple[int, Any]]:
        """(index, value) for every value, in input order."""
        for i, (value, _) in enumerate(self._values):
            yield i, value

    def leaf_hash(self, value: Sequence[Any]) -> str:
        """The leaf hash of `value`, 0x-hex."""
        return _hex(self._codec.leaf_hash(value))

    def leaf_lookup(self, value: Sequence[Any]) -> int:
        """The index of `value` among the values; `NotFound` if it is not in the tree."""
        index = self._lookup.get(self._codec.leaf_hash(value))
        if index is None:
            raise NotFound(f"value {value!r:.120} is not in the Merkle tree")
        return index

    def get_proof(self, index_or_value: int | Sequence[Any]) -> list[str]:
        """The sibling path proving one value (given by index or itself), 0x-hex."""
        tree_index = self._tree_index(index_or_value)
        proof = []
        i = tree_index
        while i > 0:
            sibling = i + 1 if i % 2 else i - 1
            proof.append(self._tree[sibling])
            i = (i - 1) // 2
        if process_proof(self._tree[tree_index], proof) != self._tree[0]:
            raise InvalidInput("Merkle tree is inconsistent: cannot prove the value")
        return [_hex(node) for node in proof]

    def get_multi_proof(self, indices_or_values: Sequence[int | Sequence[Any]]) -> MultiProof:
        """One proof for several values (by index or value), as `multiProofVerify` wants it."""
        indices = sorted((self._tree_index(x) for x in indices_or_values), reverse=True)
        if any(a == b for a, b in pairwise(indices)):
            raise InvalidInput("multiproof: cannot prove the same value twice")
        stack = list(indices)
        proof: list[bytes] = []
        flags: list[bool] = []
        head = 0  # stack[head:] is the JS queue; shifting = moving head
        while head < len(stack) and stack[head] > 0:
            j = stack[head]
            head += 1
            sibling, parent = (j + 1 if j % 2 else j - 1), (j - 1) // 2
            if head < len(stack) and stack[head] == sibling:
                flags.append(True)
                head += 1
            else:
                flags.append(False)
                proof.append(self._tree[sibling])
            stack.append(parent)
        if not indices:
            proof.append(self._tree[0])
        leaves = [self._tree[i] for i in indices]
        if process_multi_proof(leaves, proof, flags) != self._tree[0]:
            raise InvalidInput("Merkle tree is inconsistent: cannot prove the values")
        return MultiProof(
            leaves=[self._values[self._lookup[leaf]][0] for leaf in leaves],
            proof=[_hex(node) for node in proof],
            proof_flags=flags,
        )

    def _verify_here(self, index_or_value: int | Sequence[Any], proof: Sequence[Node]) -> bool:
        """Whether `proof` proves the value (given by index or itself) under this tree's root."""
        return process_proof(self._leaf_hash_of(index_or_value), proof) == self._tree[0]

    def _verify_multi_here(self, multiproof: MultiProof) -> bool:
        """Whether `multiproof` proves its leaves (values or indices) under this tree's root."""
        leaves = [self._leaf_hash_of(leaf) for leaf in multiproof.leaves]
        return (
            process_multi_proof(leaves, multiproof.proof, multiproof.proof_flags) == self._tree[0]
        )

    # `StandardMerkleTree.verify(root, leaf_encoding, value, proof)` on the class,
    # `tree.verify(index_or_value, proof)` on a tree; likewise for `verify_multi_proof`.
    verify = _StaticOrBound(_verify, _verify_here)
    verify_multi_proof = _StaticOrBound(_verify_multi_proof, _verify_multi_here)

    def validate(self) -> None:
        """Check every value hashes to its leaf and every parent to its children."""
        for i in range(len(self._values)):
            self._check_value(i)
        tree = self._tree
        for i, node in enumerate(tree):
            left, right = 2 * i + 1, 2 * i + 2
            if right < len(tree) and node != hash_pair(tree[left], tree[right]):
                raise InvalidInput(f"Merkle tree is invalid: node {i} is not its children's hash")
            if left == len(tree) - 1:
                raise InvalidInput(f"Merkle tree is invalid: node {i} has one child")

    def render(self) -> str:
        """The tree drawn as text, one node per line (as the library's `render()`)."""
        lines = []
        stack: list[tuple[int, list[int]]] = [(0, [])]
        while stack:
            i, path = stack.pop()
            lines.append(
                "".join(("   ", "│  ")[p] for p in path[:-1])
                + "".join(("└─ ", "├─ ")[p] for p in path[-1:])
                + f"{i}) {_hex(self._tree[i])}"
            )
            if 2 * i + 2 < len(self._tree):
                stack.append((2 * i + 2, [*path, 0]))
                stack.append((2 * i + 1, [*path, 1]))
        return "\n".join(lines)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self._values):
            count = len(self._values)
            raise InvalidInput(f"index {index} is out of range for a tree of {count} values")

    def _check_value(self, index: int) -> None:
        """The value at `index` must hash to its tree node (JS `_validateValueAt`)."""
        self._check_index(index)
        value, tree_index = self._values[index]
        try:
            leaf = self._codec.leaf_hash(value)
        except InvalidInput as e:
            raise InvalidInput(f"value {index}: {e.message}") from None
        if self._tree[tree_index] != leaf:
            raise InvalidInput(f"value {index}: does not match tree node {tree_index}")

    def _tree_index(self, index_or_value: int | Sequence[Any]) -> int:
        """The leaf's place in the flat tree, for a value index or a value."""
        if isinstance(index_or_value, int) and not isinstance(index_or_value, bool):
            index = index_or_value
        elif isinstance(index_or_value, Sequence):
            index = self.leaf_lookup(index_or_value)
        else:
            raise InvalidInput(f"expected a value index or a value; got {index_or_value!r:.80}")
        self._check_value(index)
        tree_index = self._values[index][1]
        if 2 * tree_index + 1 < len(self._tree):
            raise InvalidInput(f"value {index}: tree node {tree_index} is not a leaf")
        return tree_index

    def _leaf_hash_of(self, index_or_value: int | Sequence[Any]) -> bytes:
        if isinstance(index_or_value, int) and not isinstance(index_or_value, bool):
            self._check_index(index_or_value)
            return self._codec.leaf_hash(self._values[index_or_value][0])
        return self._codec.leaf_hash(index_or_value)
