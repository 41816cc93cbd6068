"""Fixtures for the data domain: a dev node with a dataset, and signed uploads."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from cairn.core.data_policy import DatasetSpec
from cairn.data.contributions import UploadResult
from cairn.data.datasets import Dataset
from cairn.data.signing import records_root, sign_contribution
from cairn.node import Node

_nonces = itertools.count(1)


def dev(node: Node, label: str) -> LocalAccount:
    return node.signers.get(node.keystore.find_by_label(label).address)


def lines_of(records: list[Any]) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


def upload(
    node: Node, account: LocalAccount, dataset_id: int, records: list[Any], nonce: int | None = None
) -> UploadResult:
    """Sign and send an upload the way a wallet would."""
    lines = lines_of(records)
    nonce = next(_nonces) if nonce is None else nonce
    typed = node.data.contributions.typed_data(dataset_id, records_root(lines), nonce)
    signature = sign_contribution(account, typed)
    return node.data.contributions.contribute(
        dataset_id, contributor=account.address, nonce=nonce, signature=signature, lines=lines
    )


def make_dataset(node: Node, owner: LocalAccount, **spec: Any) -> Dataset:
    spec.setdefault("task", {"type": "instruction"})
    return node.data.datasets.create(
        owner, name="Polite replies", licence="CC-BY-4.0", spec=DatasetSpec.model_validate(spec)
    )


WORDS = [
    "garden",
    "tax",
    "bicycle",
    "sourdough",
    "chess",
    "tide",
    "knitting",
    "jazz",
    "river",
    "mountain",
    "lantern",
    "copper",
    "violin",
    "harbour",
    "meadow",
    "orchard",
    "glacier",
    "pepper",
    "saddle",
    "compass",
    "marble",
    "thunder",
    "willow",
    "ember",
    "falcon",
    "quartz",
    "tundra",
    "walnut",
    "cobalt",
    "prairie",
    "canyon",
    "beacon",
    "lattice",
    "nectar",
    "pebble",
    "summit",
    "thistle",
    "velvet",
    "anchor",
    "bramble",
    "cinder",
    "dune",
    "fjord",
    "grove",
    "hollow",
    "ivory",
    "juniper",
    "kestrel",
    "lagoon",
    "mosaic",
]


def pair(i: int) -> dict[str, str]:
    """A distinct, plausible instruction record (random words: no two are near-duplicates)."""
    rng = random.Random(i)
    prompt = " ".join(rng.choice(WORDS) for _ in range(12))
    response = " ".join(rng.choice(WORDS) for _ in range(20))
    return {"prompt": f"Explain {prompt} (case {i})?", "response": f"In short: {response}."}


@pytest.fixture
def owner(node: Node) -> LocalAccount:
    return dev(node, "alice")


@pytest.fixture
def contributor(node: Node) -> LocalAccount:
    return dev(node, "bob")


@pytest.fixture
def outsider() -> LocalAccount:
    return Account.create()
