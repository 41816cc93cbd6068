"""The data domain on a real node: datasets, signed uploads, anchoring, proofs, versions, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from cairn.core.attribution import SCALE
from cairn.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from cairn.data.signing import records_root, sign_contribution
from cairn.node import Node
from tests.data.conftest import make_dataset, pair, upload


def test_creating_a_dataset_registers_it_and_makes_the_node_its_curator(
    node: Node, owner: LocalAccount
) -> None:
    dataset = make_dataset(
        node, owner, task={"type": "classification", "labels": ["positive", "negative"]}
    )
    assert dataset.owner == owner.address and dataset.spec.task.labels == ["positive", "negative"]
    asset = node.assets.get(dataset.asset_id)
    assert asset.kind == "dataset" and asset.split["data"] == 9_000
    assert node.chain.registry.is_curator(dataset.asset_id, node.operator.address)
    assert [d.asset_id for d in node.data.datasets.list()] == [dataset.asset_id]


def test_a_bad_spec_is_refused_before_anything_is_registered(
    node: Node, owner: LocalAccount
) -> None:
    from cairn.data.datasets import parse_spec

    before = node.chain.registry.total_assets()
    with pytest.raises(InvalidInput, match="at least two distinct labels"):
        parse_spec({"task": {"type": "classification", "labels": ["only"]}})
    with pytest.raises(InvalidInput, match="review_share"):
        parse_spec({"task": {"type": "instruction"}, "review": {"review_share": 2}})
    with pytest.raises(InvalidInput, match="reviw"):
        parse_spec({"task": {"type": "instruction"}, "reviw": {}})
    with pytest.raises(InvalidInput, match="not a valid JSON Schema"):
        parse_spec({"task": {"type": "instruction"}, "record_schema": {"type": "strnig"}})
    assert node.chain.registry.total_assets() == before


def test_every_record_gets_a_verdict_and_valid_ones_are_stored(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(node, owner, review={"review_share": 0.0})
    records = [
        pair(1),
        "{not json",
        {"prompt": "missing its response"},
        pair(1),
        {
            "prompt": "Write to me at jane.doe@example.com please",
            "response": "I will write to the address you gave me.",
        },
    ]
    result = upload(node, contributor, dataset.asset_id, records)
    codes = [v.code for v in result.verdicts]
    assert codes == ["ok", "invalid_json", "schema", "duplicate", "ok"]
    assert all(str(v.reason).startswith(f"line {v.line}: ") for v in result.verdicts if not v.ok)
    assert result.accepted == 2 and result.total == 5 and not result.replayed
    stored = node.data.list_records(dataset.asset_id)
    assert [r.status for r in stored] == ["accepted", "accepted"]
    assert "[EMAIL]" in stored[1].content["prompt"] and stored[1].pii == ("email",)

    again = upload(node, contributor, dataset.asset_id, [pair(1), pair(2)])
    assert [v.code for v in again.verdicts] == ["duplicate", "ok"]  # across the whole dataset


def test_signatures_nonces_and_retries(
    node: Node, owner: LocalAccount, contributor: LocalAccount, outsider: LocalAccount
) -> None:
    dataset = make_dataset(node, owner)
    other = make_dataset(node, owner)
    lines = [json.dumps(pair(i)) for i in range(3)]
    typed = node.data.contributions.typed_data(dataset.asset_id, records_root(lines), 77)
    signature = sign_contribution(contributor, typed)
    send = node.data.contributions.contribute

    forged = sign_contribution(outsider, typed)
    with pytest.raises(Unauthorized, match="recovers to"):
        send(
            dataset.asset_id,
            contributor=contributor.address,
            nonce=77,
            signature=forged,
            lines=lines,
        )
    with pytest.raises(Unauthorized):  # signed for another dataset
        send(
            other.asset_id,
            contributor=contributor.address,
            nonce=77,
            signature=signature,
            lines=lines,
        )
    with pytest.raises(Unauthorized):  # records changed after signing
        send(
            dataset.asset_id,
            contributor=contributor.address,
            nonce=77,
            signature=signature,
            lines=lines[:2],
        )
    with pytest.raises(Unauthorized, match="not valid"):
        send(
            dataset.asset_id,
            contributor=contributor.address,
            nonce=77,
            signature="0x1234",
            lines=lines,
        )
    assert node.data.list_records(dataset.asset_id) == []

    first = send(
        dataset.asset_id,
        contributor=contributor.address,
        nonce=77,
        signature=signature,
        lines=lines,
    )
    retry = send(
        dataset.asset_id,
        contributor=contributor.address,
        nonce=77,
        signature=signature,
        lines=lines,
    )
    assert (
        retry.replayed and retry.upload_id == first.upload_id and retry.verdicts == first.verdicts
    )
    assert len(node.data.list_records(dataset.asset_id)) == 3

    new_lines = [json.dumps(pair(9))]
    reused = sign_contribution(
        contributor,
        node.data.contributions.typed_data(dataset.asset_id, records_root(new_lines), 77),
    )
    with pytest.raises(Conflict, match="already used"):
        send(
            dataset.asset_id,
            contributor=contributor.address,
            nonce=77,
            signature=reused,
            lines=new_lines,
        )
    assert len(node.data.list_records(dataset.asset_id)) == 3


def test_upload_limits(node: Node, owner: LocalAccount, contributor: LocalAccount) -> None:
    dataset = make_dataset(node, owner, validation={"max_records_per_upload": 2})
    with pytest.raises(InvalidInput, match="at most 2 per upload"):
        upload(node, contributor, dataset.asset_id, [pair(1), pair(2), pair(3)])
    with pytest.raises(InvalidInput, match="at least one record"):
        upload(node, contributor, dataset.asset_id, [])
    with pytest.raises(NotFound):
        upload(node, contributor, 999, [pair(1)])


def test_anchoring_gives_every_record_a_proof_that_verifies_on_chain(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(node, owner, review={"review_share": 0.0})
    upload(node, contributor, dataset.asset_id, [pair(i) for i in range(6)])
    upload(node, owner, dataset.asset_id, [pair(i) for i in range(6, 9)])
    batch = node.data.anchoring.anchor(dataset.asset_id)
    assert batch is not None and batch.count == 9 and batch.batch_index == 0
    assert node.chain.ledger.is_anchored(dataset.asset_id, batch.root)
    assert node.data.anchoring.anchor(dataset.asset_id) is None  # nothing left waiting
    for record in node.data.list_records(dataset.asset_id):
        assert record.status == "anchored"
        proof = node.data.anchoring.proof(dataset.asset_id, record.record_hash)
        assert proof.verified_on_chain and proof.root == batch.root
        # anyone can check it against the chain with the leaf and proof alone
        assert node.chain.ledger.verify(dataset.asset_id, proof.root, proof.leaf, list(proof.proof))
        assert not node.chain.ledger.verify(
            dataset.asset_id, proof.root, proof.leaf, [*proof.proof, "0x" + "00" * 32]
        )

    versions = node.data.anchoring.versions(dataset.asset_id)
    assert [v.number for v in versions] == [1] and versions[0].version == batch.version
    table = node.store.get_json(batch.attribution_cid)
    weights = {e["account"]: int(e["weight"]) for e in table["entries"]}
    assert sum(weights.values()) == SCALE
    assert weights[contributor.address] > weights[owner.address] > 0  # 6 records against 3

    upload(node, contributor, dataset.asset_id, [pair(20)])
    second = node.data.anchoring.anchor(dataset.asset_id)
    assert second is not None and second.batch_index == 1
    manifest = node.data.anchoring.manifest(dataset.asset_id)
    assert manifest.number == 2 and manifest.previous == batch.version and manifest.records == 10


def test_a_version_exports_as_jsonl_and_parquet_for_the_datasets_library(
    node: Node,
    owner: LocalAccount,
    contributor: LocalAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    dataset = make_dataset(node, owner, review={"review_share": 0.0})
    upload(node, contributor, dataset.asset_id, [pair(i) for i in range(5)])
    batch = node.data.anchoring.anchor(dataset.asset_id)
    assert batch is not None
    (tmp_path / "r.jsonl").write_bytes(node.data.export(dataset.asset_id, "jsonl"))
    (tmp_path / "r.parquet").write_bytes(
        node.data.export(dataset.asset_id, "parquet", batch.version)
    )
    from_jsonl = datasets.load_dataset(
        "json", data_files=str(tmp_path / "r.jsonl"), split="train", cache_dir=str(tmp_path / "c")
    )
    from_parquet = datasets.load_dataset(
        "parquet",
        data_files=str(tmp_path / "r.parquet"),
        split="train",
        cache_dir=str(tmp_path / "c"),
    )
    assert len(from_jsonl) == len(from_parquet) == 5
    assert sorted(from_parquet["prompt"]) == sorted(pair(i)["prompt"] for i in range(5))
    assert set(from_jsonl["_contributor"]) == {contributor.address}
    with pytest.raises(InvalidInput, match="format"):
        node.data.export(dataset.asset_id, "csv")
    with pytest.raises(NotFound):
        node.data.export(
            dataset.asset_id, "jsonl", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        )


def test_anchoring_needs_the_node_to_be_a_curator(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(node, owner, review={"review_share": 0.0})
    node.chain.registry.set_curator(owner, dataset.asset_id, node.operator.address, False)
    upload(node, contributor, dataset.asset_id, [pair(1)])
    with pytest.raises(Forbidden, match="must make it a curator"):
        node.data.anchoring.anchor(dataset.asset_id)
    assert node.data.list_records(dataset.asset_id)[0].status == "accepted"


def test_scheduled_anchoring_follows_the_policy(
    node: Node, owner: LocalAccount, contributor: LocalAccount
) -> None:
    dataset = make_dataset(
        node,
        owner,
        review={"review_share": 0.0},
        anchoring={"every_records": 3, "every_seconds": 3600},
    )
    upload(node, contributor, dataset.asset_id, [pair(1), pair(2)])
    assert node.data.anchoring.anchor_due() == []
    upload(node, contributor, dataset.asset_id, [pair(3)])
    [batch] = node.data.anchoring.anchor_due()
    assert batch.count == 3
    upload(node, contributor, dataset.asset_id, [pair(4)])
    import time

    assert node.data.anchoring.anchor_due(now=time.time() + 3601)[0].count == 1
