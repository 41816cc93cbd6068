"""Every byte of a licensed asset needs the licence its export or download needs, whichever
path names its CID: blobs, version manifests, batches, verdicts, weights, retrieval passages,
review tasks. Public stays what audits need: metadata, attribution tables, hashes and proofs."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import select
from starlette.testclient import TestClient

from cairn.assets.content import Scope
from cairn.core.errors import NotFound
from cairn.core.policy import AssetKind, RevenueSplit
from cairn.data.models import UploadRow
from cairn.node import Node
from tests.api.conftest import attached, in_process
from tests.api.test_api import dev_account, sign_in
from tests.compute.conftest import register_tiny, reverse_record
from tests.data.conftest import make_dataset, upload

TOKEN = 10**18


def _blob(api: TestClient, cid: str, headers: dict[str, str] | None = None) -> int:
    return api.get(f"/api/v1/blobs/{cid}", headers=headers or {}).status_code


def test_a_licensed_dataset_has_no_side_doors(api: TestClient, node: Node) -> None:
    alice, bob, carol = (dev_account(node, n) for n in ("alice", "bob", "carol"))
    stranger = Account.create()
    node.backend.fund(stranger.address, TOKEN)
    rng = random.Random(5)
    dataset = make_dataset(node, alice, review={"review_share": 0.0}).asset_id
    uploaded = upload(node, bob, dataset, [reverse_record(rng) for _ in range(6)])
    node.data.anchoring.anchor(dataset)
    version = api.get(f"/api/v1/datasets/{dataset}/versions").json()[0]
    manifest = version["version"]
    batch = node.store.get_json(manifest)["batches"][0]["cid"]
    record_hash = uploaded.verdicts[0].record_hash
    proof = api.get(f"/api/v1/datasets/{dataset}/records/{record_hash}/proof").json()
    assert proof["batch_cid"] == batch  # CIDs and proofs stay public: they reveal no bytes
    with node.db.session() as session:
        verdicts = session.scalars(select(UploadRow.verdicts_cid)).one()
    metadata = node.assets.get(dataset).metadata_cid
    attribution = node.store.get_json(manifest)["attribution"]

    # An unlicensed dataset is open: anyone reads its batches.
    assert _blob(api, batch) == 200 and _blob(api, manifest) == 200

    node.licences.offer(alice, dataset, price=5 * TOKEN, terms="commercial")
    as_stranger = sign_in(api, node, stranger)
    as_bob, as_carol = sign_in(api, node, bob), sign_in(api, node, carol)
    for cid in (batch, manifest):
        for headers in (None, as_stranger, as_carol):
            reply = api.get(f"/api/v1/blobs/{cid}", headers=headers or {})
            assert reply.status_code == 403, (cid, reply.text)
            assert "licence" in reply.json()["detail"].lower()
    assert _blob(api, verdicts, as_stranger) == 403  # verdicts quote the records
    assert _blob(api, verdicts, as_bob) == 200  # ... and are the contributor's own
    for cid in (metadata, attribution):  # what anyone needs to audit stays public
        assert _blob(api, cid) == 200
    assert _blob(api, batch, sign_in(api, node, alice)) == 200  # the owner

    # Review tasks show whole records: a new wallet is not a reviewer of a licensed dataset.
    refused = api.get(f"/api/v1/datasets/{dataset}/reviews/next", headers=as_stranger)
    assert refused.status_code == 403 and "chooses its reviewers" in refused.json()["detail"]
    # Nor may it have the node embed the records into a retrieval index it could read.
    index = api.post("/api/v1/apps/index", json={"dataset": dataset}, headers=as_stranger)
    assert index.status_code == 403, index.text
    assert not list((node.data_dir / "apps").glob("index-*.json"))

    # A licence opens every path; the web session cookie counts as much as a bearer token.
    offer = node.licences.offers(dataset)[0].offer_id
    node.licences.buy(carol, offer)
    assert _blob(api, batch, as_carol) == 200 and _blob(api, manifest, as_carol) == 200
    assert api.get(f"/api/v1/datasets/{dataset}/reviews/next", headers=as_carol).status_code in (
        200,
        204,
    )
    cookie = as_carol["Authorization"].removeprefix("Bearer ")
    with closing(attached(api, cookies={"cairn_session": cookie})) as browser:
        assert browser.get(f"/api/v1/blobs/{batch}").status_code == 200


def test_a_review_policy_admits_listed_reviewers(api: TestClient, node: Node) -> None:
    alice, bob = dev_account(node, "alice"), dev_account(node, "bob")
    listed, other = Account.create(), Account.create()
    dataset = make_dataset(
        node, alice, review={"review_share": 1.0, "reviewers": [listed.address]}
    ).asset_id
    upload(node, bob, dataset, [reverse_record(random.Random(2)) for _ in range(3)])
    node.licences.offer(alice, dataset, price=TOKEN, terms="commercial")
    ok = api.get(f"/api/v1/datasets/{dataset}/reviews/next", headers=sign_in(api, node, listed))
    assert ok.status_code == 200 and "record" in ok.json(), ok.text
    no = api.get(f"/api/v1/datasets/{dataset}/reviews/next", headers=sign_in(api, node, other))
    assert no.status_code == 403


def test_a_licensed_models_weights_need_its_licence(
    api: TestClient, node: Node, tmp_path: Path
) -> None:
    alice, carol = dev_account(node, "alice"), dev_account(node, "carol")
    model = register_tiny(node, alice, tmp_path, "causal-lm")
    manifest = node.catalog.manifest(model)
    files = [e["cid"] for e in node.store.get_json(manifest)["files"].values()]
    assert _blob(api, manifest) == 200  # unlicensed: open to workers and anyone
    node.licences.offer(alice, model.asset_id, price=TOKEN, terms="commercial")
    as_carol = sign_in(api, node, carol)
    for cid in (manifest, *files):
        assert _blob(api, cid) == 403 and _blob(api, cid, as_carol) == 403
    assert _blob(api, files[0], sign_in(api, node, alice)) == 200

    # Registering an asset whose metadata names alice's weights gives carol nothing.
    thief = node.assets.register(
        carol,
        kind="model",
        name="mine now",
        licence="MIT",
        extra={"model": {"weights": manifest, "family": "causal-lm"}},
    )
    assert thief.owner == carol.address
    assert all(r.key != str(thief.asset_id) for r in node.assets.refs.of(manifest))
    assert _blob(api, manifest, as_carol) == 403

    # A job's workers read what it trains on with its token, and only that.
    token = node.assets.refs.job_token("0x" + "ab" * 32)
    node.assets.refs.add(files[0], Scope.JOB, "0x" + "ab" * 32, account=carol.address)
    headers = {"X-Cairn-Job-Token": token}
    assert _blob(api, files[0], headers) == 200
    assert _blob(api, files[1], headers) == 403
    forged = {"X-Cairn-Job-Token": token[:-4] + "0000"}
    assert _blob(api, files[0], forged) == 403


def test_uploads_belong_to_their_uploader_until_claimed_and_expire(
    api: TestClient, node: Node
) -> None:
    alice, stranger = dev_account(node, "alice"), Account.create()
    as_stranger = sign_in(api, node, stranger)
    stored = api.post("/api/v1/blobs", content=b"free hosting?", headers=as_stranger)
    assert stored.status_code == 201
    cid = stored.json()["cid"]
    assert _blob(api, cid, as_stranger) == 200
    assert _blob(api, cid) == 404 and _blob(api, cid, sign_in(api, node, alice)) == 404

    # alice uploads metadata and registers it: the metadata becomes public.
    as_alice = sign_in(api, node, alice)
    doc = json.dumps({"name": "claimed", "kind": "dataset"}).encode()
    meta = api.post("/api/v1/blobs", content=doc, headers=as_alice).json()["cid"]
    node.chain.registry.register(
        alice, AssetKind.DATASET, meta, "MIT", [], RevenueSplit.owner_only()
    )
    node.assets.sync()
    assert _blob(api, meta) == 200

    later = node.assets.refs.collect(now=time.time() + 2 * 86_400)
    assert later == 1 and not node.store.has(cid) and node.store.has(meta)
    with pytest.raises(NotFound):
        node.access.check(cid, stranger.address)


def test_uploads_have_a_quota_and_a_rate(make_node: Callable[..., Node]) -> None:
    node = make_node(upload_quota_mb=1, uploads_per_hour=3)
    with in_process(node) as api:
        me = sign_in(api, node, Account.create())
        big = api.post("/api/v1/blobs", content=b"x" * (2 * 1024 * 1024), headers=me)
        assert big.status_code == 429 and "register what you uploaded" in big.json()["detail"]
        for i in range(3):
            assert api.post("/api/v1/blobs", content=b"%d" % i, headers=me).status_code == 201
        fourth = api.post("/api/v1/blobs", content=b"4", headers=me)
        assert fourth.status_code == 429 and "uploads in the last hour" in fourth.json()["detail"]
