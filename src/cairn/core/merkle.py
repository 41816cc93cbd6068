"""OpenZeppelin's StandardMerkleTree, byte for byte, in pure Python.

This mirrors `@openzeppelin/merkle-tree` v1.0.8 (`dist/standard.js`, `merkletree.js`, `core.js`),
so a root, proof or dump made here is the one the JavaScript library and OpenZeppelin's
`MerkleProof.sol` expect:

- leaf = keccak256(keccak256(abi.encode(leaf_encoding, value))) (`cairn.core.merkle_leaf`, which
  also says what values may hold);
- leaves are sorted by hash (unless `sort_leaves=False`) and stored at the end of a flat array,
  node i having children 2i+1 and 2i+2; a parent is keccak256 of its children's sorted pair
  (`cairn.core.merkle_proof`, with proofs and multiproofs);
- `dump()` / `load()` use the library's JSON ("format": "standard-v1").

`dump()` writes integers given as Python ints as decimal strings, as JavaScript users dump
bigints, and keeps other items as given, so dumps load in either library. Errors are
`InvalidInput` / `NotFound` with a message naming the value and item at fault.

The hashing and proof functions and `standard_leaf_hash` are importable from here too, where
callers have always imported them.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from cairn.core.errors import InvalidInput, NotFound
from cairn.core.merkle_leaf import leaf_codec, standard_leaf_hash, value_to_json
from cairn.core.merkle_proof import (
    Node,
    hash_pair,
    keccak256,
    make_merkle_tree,
    process_multi_proof,
    process_proof,
    to_hex,
    to_node,
)

__all__ = [
    "FORMAT",
    "MultiProof",
    "Node",
    "StandardMerkleTree",
    "hash_pair",
    "keccak256",
    "make_merkle_tree",
    "process_multi_proof",
    "process_proof",
    "standard_leaf_hash",
]

FORMAT = "standard-v1"


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
    return to_node(root, "root") == process_proof(standard_leaf_hash(leaf_encoding, value), proof)


def _verify_multi_proof(root: Node, leaf_encoding: Sequence[str], multiproof: MultiProof) -> bool:
    """Whether `multiproof` proves its leaves under `root`."""
    codec = leaf_codec(tuple(leaf_encoding))
    leaves = [codec.leaf_hash(leaf) for leaf in multiproof.leaves]
    return to_node(root, "root") == process_multi_proof(
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
        self._codec = leaf_codec(tuple(leaf_encoding))
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
        codec = leaf_codec(tuple(leaf_encoding))
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
        nodes = [to_node(node, f"Merkle dump: tree[{i}]") for i, node in enumerate(tree)]
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
            "tree": [to_hex(node) for node in self._tree],
            "values": [{"value": value_to_json(v), "treeIndex": t} for v, t in self._values],
        }

    @property
    def root(self) -> str:
        """The root, 0x-hex."""
        return to_hex(self._tree[0])

    def __len__(self) -> int:
        """The number of values."""
        return len(self._values)

    def entries(self) -> Iterator[tuple[int, Any]]:
        """(index, value) for every value, in input order."""
        for i, (value, _) in enumerate(self._values):
            yield i, value

    def leaf_hash(self, value: Sequence[Any]) -> str:
        """The leaf hash of `value`, 0x-hex."""
        return to_hex(self._codec.leaf_hash(value))

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
        return [to_hex(node) for node in proof]

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
            proof=[to_hex(node) for node in proof],
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
                + f"{i}) {to_hex(self._tree[i])}"
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
