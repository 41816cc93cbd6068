"""The dataset API, driven as a wallet-holding client would: over a real uvicorn server for the
family's real-server test, in process (`api`) for the rest."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from starlette.testclient import TestClient

from cairn.api.client import NodeClient
from cairn.core.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from cairn.data.datasets import parse_spec
from cairn.node import Node
from tests.api.conftest import node_client
from tests.api.test_api import assert_problem, dev_account, sign_in
from tests.conftest import LiveServer
from tests.data.conftest import pair
from tests.signatures import published_signer

SPEC = {"task": {"type": "instruction"}, "review": {"review_share": 0.0}}


def test_a_wallet_creates_a_dataset_contributes_anchors_and_proves(live: LiveServer) -> None:
    # the datasets family's real-server test: NodeClient over uvicorn on 127.0.0.1
    wallet, contributor = Account.create(), Account.create()
    for account in (wallet, contributor):
        live.node.backend.fund(account.address, 10**18)
    with NodeClient(live.url) as api:
        dataset = api.create_dataset(wallet, name="From a wallet", licence="CC0-1.0", spec=SPEC)
        dataset_id = dataset["asset_id"]
        assert dataset["owner"] == wallet.address
        assert live.node.chain.registry.is_curator(dataset_id, live.node.operator.address)

        lines = [json.dumps(pair(i)) for i in range(4)] + ["[1, 2]"]
        result = api.contribute(contributor, dataset_id, lines, nonce=5)
        assert result["accepted"] == 4 and result["verdicts"][4]["code"] == "schema"
        assert api.contribute(contributor, dataset_id, lines, nonce=5)["replayed"] is True
        with pytest.raises(Conflict):
            api.contribute(contributor, dataset_id, lines[:2], nonce=5)

        with NodeClient(live.url) as anonymous, pytest.raises(Unauthorized):
            anonymous.anchor(dataset_id)
        api.sign_in(contributor)
        with pytest.raises(Forbidden, match="neither the owner nor a curator"):
            api.anchor(dataset_id)
        api.sign_in(wallet)
        anchored = api.anchor(dataset_id)
        assert anchored["anchored"] and anchored["batch"]["count"] == 4
        record_hash = result["verdicts"][0]["record_hash"]
        proof = api.proof(dataset_id, record_hash)
        assert proof["verified_on_chain"] and proof["contributor"] == contributor.address
        assert len(api.versions(dataset_id)) == 1
        table = api.attribution(dataset_id)
        assert [e["account"] for e in table["entries"]] == [contributor.address]
        assert b"From a wallet" not in api.export(dataset_id, "jsonl")
        assert api.export(dataset_id, "jsonl").count(b"\n") == 4
        assert api.export(dataset_id, "parquet")[:4] == b"PAR1"


def test_the_typed_data_endpoint_gives_what_a_wallet_signs(api: TestClient, node: Node) -> None:
    owner = dev_account(node, "alice")
    wallet = Account.create()
    headers = sign_in(api, node, owner)
    created = api.post(
        "/api/v1/datasets",
        json={"name": "Typed", "licence": "MIT", "spec": SPEC},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    dataset_id = created.json()["asset_id"]
    lines = [json.dumps(pair(1)), json.dumps(pair(2))]
    typed = api.post(
        f"/api/v1/datasets/{dataset_id}/contributions/typed-data",
        json={"nonce": "9", "records": lines},
    ).json()
    assert (
        typed["primaryType"] == "Contribution"
        and typed["domain"]["chainId"] == node.client.chain_id
    )
    signature = wallet.sign_message(encode_typed_data(full_message=typed)).signature.to_0x_hex()
    body = {
        "contributor": wallet.address,
        "nonce": "9",
        "signature": signature,
        "jsonl": "\n".join(lines) + "\n",
    }
    reply = api.post(f"/api/v1/datasets/{dataset_id}/contributions", json=body)
    assert reply.status_code == 201 and reply.json()["accepted"] == 2
    # the answer carries what was signed: anyone checks the contributor's signature from it
    assert reply.json()["typed_data"] == typed and reply.json()["signature"] == signature
    assert published_signer(reply.json()) == reply.json()["contributor"] == wallet.address
    again = api.post(f"/api/v1/datasets/{dataset_id}/contributions", json=body)
    assert again.status_code == 200  # a retry
    assert again.json()["replayed"] and published_signer(again.json()) == wallet.address
    forged = {**body, "contributor": owner.address}
    assert_problem(
        api.post(f"/api/v1/datasets/{dataset_id}/contributions", json=forged),
        401,
        "recovers to",
    )
    both = {**body, "records": lines}
    assert_problem(
        api.post(f"/api/v1/datasets/{dataset_id}/contributions", json=both),
        422,
        "exactly one of",
    )
    bad_spec = {"name": "x", "licence": "MIT", "spec": {"task": {"type": "poetry"}}}
    assert_problem(api.post("/api/v1/datasets", json=bad_spec, headers=headers), 422, "task.type")
    assert_problem(api.get("/api/v1/datasets/999"), 404, "")
    assert_problem(
        api.get(f"/api/v1/datasets/{dataset_id}/records", params={"status": "lost"}),
        422,
        "status must be",
    )
    assert_problem(api.get(f"/api/v1/datasets/{dataset_id}/records/abc/proof"), 404, "")
    records = api.get(f"/api/v1/datasets/{dataset_id}/records").json()
    assert {r["status"] for r in records} == {"accepted"}
    assert_problem(
        api.get(f"/api/v1/datasets/{dataset_id}/records/{records[0]['record_hash']}/proof"),
        422,
        "not anchored yet",
    )


def test_reviews_over_http(api: TestClient, node: Node) -> None:
    owner, contributor, reviewer = (dev_account(node, label) for label in ("alice", "bob", "carol"))
    spec = {
        "task": {"type": "instruction"},
        "review": {"review_share": 1.0, "votes_per_record": 1, "gold_share": 0.0},
    }
    with node_client(api) as client:
        client.sign_in(owner)
        dataset_id = node.data.datasets.create(
            owner,
            name="Reviewed",
            licence="MIT",
            spec=parse_spec(spec),
        ).asset_id
        client.contribute(contributor, dataset_id, [json.dumps(pair(1))])
        client.sign_in(reviewer)
        task = client.next_review(dataset_id)
        assert task is not None and task["record"]["prompt"] == pair(1)["prompt"]
        with pytest.raises(InvalidInput):
            client.answer_review(task["task_id"], "fine")
        answered = client.answer_review(task["task_id"], "approve")
        assert answered == {
            "task_id": task["task_id"],
            "answer": "approve",
        }  # nothing decided shown
        [record] = node.data.list_records(dataset_id)
        assert record.status == "accepted"
        assert client.next_review(dataset_id) is None
        # one answer does not count yet (answers count in groups), so nobody is listed
        assert api.get(f"/api/v1/datasets/{dataset_id}/reputation").json() == []


def test_the_published_reputation_has_no_split_between_gold_and_decided_records() -> None:
    from cairn.api.app import create_app

    schema = create_app(None, background=False).openapi()  # type: ignore[arg-type]
    fields = set(schema["components"]["schemas"]["StandingPublic"]["properties"])
    assert fields == {"account", "reputation", "judged", "held"}


def test_an_answer_does_not_name_what_it_decided() -> None:
    """A gold question decides no record, so an answer that named the records it decided would
    tell a reviewer which of its tasks were real."""
    from cairn.api.app import create_app

    schema = create_app(None, background=False).openapi()  # type: ignore[arg-type]
    fields = set(schema["components"]["schemas"]["ReviewAnswerPublic"]["properties"])
    assert fields == {"task_id", "answer"}


def test_a_reviewer_cannot_tell_a_gold_question_by_its_absence_from_the_listed_records(
    api: TestClient, node: Node
) -> None:
    """A task is a record under review or a gold question; were the records under review listed
    to anyone, a reviewer would look its task up there, and one not found would be gold."""
    owner, contributor, reviewer = (dev_account(node, label) for label in ("alice", "bob", "carol"))
    spec = {
        "task": {"type": "instruction"},
        "review": {"review_share": 1.0, "votes_per_record": 3, "gold_share": 0.5},
    }
    dataset_id = node.data.datasets.create(
        owner, name="Gold kept", licence="MIT", spec=parse_spec(spec)
    ).asset_id
    node.data.reviews.add_gold(
        dataset_id, owner.address, [{"record": pair(100), "answer": "approve"}]
    )
    records = f"/api/v1/datasets/{dataset_id}/records"
    with node_client(api) as client:
        client.contribute(contributor, dataset_id, [json.dumps(pair(1))])
        client.sign_in(reviewer)
        task = client.next_review(dataset_id)
        assert task is not None
        for headers in ({}, sign_in(api, node, reviewer)):  # anyone, and the reviewer itself
            assert api.get(records, headers=headers).json() == []
            assert_problem(
                api.get(records, params={"status": "review"}, headers=headers),
                403,
                "listed only to their contributor and to the dataset's owner and curators",
            )
            assert_problem(api.get(records, params={"status": "lost"}, headers=headers), 422, "")
        mine = api.get(
            records,
            params={"contributor": contributor.address},
            headers=sign_in(api, node, contributor),
        ).json()
        assert [(r["status"], r["content"]) for r in mine] == [("review", pair(1))]
        everything = api.get(records, headers=sign_in(api, node, owner)).json()
        assert [r["content"] for r in everything] == [pair(1)]
