"""OpenZeppelin's Merkle proof arithmetic (`MerkleProof.sol`, merkle-tree's `core.js`) in Python.

A parent is keccak256 of its two children in ascending byte order, so a proof is just the
sibling at each level, with no left/right flags; a multiproof proves several leaves at once
with one shared list of siblings and a flag per step. `make_merkle_tree` lays a tree out flat
as the JavaScript library does: node i has children 2i+1 and 2i+2, the leaves at the end
(reversed), the root at 0. `cairn.core.merkle_leaf` makes the leaves; `cairn.core.merkle`
builds, dumps and proves whole trees.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

from cairn.core.errors import InvalidInput

try:  # safe-pysha3 comes with eth-tester[py-evm] on CPython; 7x faster per call than eth_utils
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        """Keccak-256 of `data` (Ethereum's hash), by the fastest implementation installed."""
        return bytes(_keccak_256(data).digest())

except ImportError:  # pragma: no cover - the same hash through pycryptodome
    from eth_utils import keccak as _eth_keccak

    def keccak256(data: bytes) -> bytes:
        """Keccak-256 of `data` (Ethereum's hash), by the fastest implementation installed."""
        return bytes(_eth_keccak(data))


Node = bytes | str
"""A 32-byte tree node: raw bytes or a 0x-hex string."""

_NODE = re.compile(r"0x[0-9a-fA-F]{64}")


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of the two nodes in ascending order (OpenZeppelin's `standardNodeHash`)."""
    return keccak256(a + b if a <= b else b + a)


def process_proof(leaf: Node, proof: Sequence[Node]) -> bytes:
    """The root that `leaf` and its sibling path `proof` lead to (`MerkleProof.processProof`)."""
    node = to_node(leaf, "leaf")
    for i, sibling in enumerate(proof):
        node = hash_pair(node, to_node(sibling, f"proof[{i}]"))
    return node


def process_multi_proof(
    leaves: Sequence[Node], proof: Sequence[Node], proof_flags: Sequence[bool]
) -> bytes:
    """The root a multiproof leads to (`MerkleProof.processMultiProof`)."""
    queue = deque(to_node(leaf, f"leaves[{i}]") for i, leaf in enumerate(leaves))
    siblings = deque(to_node(node, f"proof[{i}]") for i, node in enumerate(proof))
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
    keccak = keccak256
    for i in range(n - 2, -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak(a + b if a <= b else b + a)
    return tree


def to_node(value: Node, what: str) -> bytes:
    """A 32-byte node from bytes or 0x-hex, or `InvalidInput` naming `what`."""
    if isinstance(value, bytes | bytearray) and len(value) == 32:
        return bytes(value)
    if isinstance(value, str) and _NODE.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise InvalidInput(f"{what}: expected 32 bytes as 0x-hex (66 characters); got {value!r:.80}")


def to_hex(node: bytes) -> str:
    """A node as 0x-hex."""
    return "0x" + node.hex()
