"""The node API over a real uvicorn server on 127.0.0.1: every route, good and bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from siwe import SiweMessage

from cairn.api.client import NodeClient
from cairn.core.errors import ChainError, InvalidInput
from cairn.node import DEV_TOKENS, Node
from tests.conftest import LiveServer


def siwe_message(live: LiveServer, address: str, nonce: str, **overrides: Any) -> str:
    fields: dict[str, Any] = {
        "domain": f"127.0.0.1:{live.port}",
        "address": address,
        "statement": "Sign in to Cairn.",
        "uri": live.url,
        "version": "1",
        "chain_id": live.node.client.chain_id,
        "nonce": nonce,
        "issued_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        **overrides,
    }
    return str(SiweMessage(**fields).prepare_message())


def sign_in(http: httpx.Client, live: LiveServer, account: LocalAccount) -> dict[str, str]:
    nonce = http.post("/api/v1/auth/nonce").json()["nonce"]
    message = siwe_message(live, account.address, nonce)
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    reply = http.post("/api/v1/auth/signin", json={"message": message, "signature": signature})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def dev_account(node: Node, label: str) -> LocalAccount:
    return node.signers.get(node.keystore.find_by_label(label).address)


@pytest.fixture
def http(live: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        yield client  # type: ignore[misc]


def assert_problem(reply: httpx.Response, status: int, detail_part: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == status and detail_part in body["detail"], body


def test_health_chain_and_landing_page(http: httpx.Client, live: LiveServer) -> None:
    health = http.get("/api/v1/health").json()
    assert health["status"] == "ok" and health["chain"] == "memory"
    assert set(health) == {"status", "version", "chain", "chain_id", "block_number"}
    chain = http.get("/api/v1/chain").json()
    assert chain["chain_id"] == live.node.client.chain_id and chain["backend"] == "memory"
    assert chain["rpc_url"] is None
    token = {"address": live.node.chain.token.address, "symbol": "CAIRN", "decimals": 18}
    assert chain["token"] == token and chain["operator"] == live.node.operator.address
    assert set(chain["contracts"]) == {
        "CairnToken",
        "AssetRegistry",
        "ContributionLedger",
        "RevenueDistributor",
        "JobEscrow",
        "LicenseToken",
        "DataBounty",
    }
    registry = chain["contracts"]["AssetRegistry"]
    assert registry["address"].startswith("0x") and any(
        e.get("name") == "register" for e in registry["abi"]
    )
    page = http.get("/node")
    assert page.status_code == 200 and "Cairn" in page.text and registry["address"] in page.text
    assert http.get("/docs").status_code == 200
    assert "/api/v1/assets" in http.get("/openapi.json").json()["paths"]


def test_balances_and_accounts(http: httpx.Client, live: LiveServer) -> None:
    alice = dev_account(live.node, "alice")
    balances = http.get(f"/api/v1/balances/{alice.address}").json()
    assert (
        balances["token"]["balance"] == str(DEV_TOKENS) and balances["token"]["symbol"] == "CAIRN"
    )
    assert list(balances["token"]) == ["address", "symbol", "decimals", "balance"]
    account = http.get(f"/api/v1/accounts/{alice.address.lower()}").json()
    assert account["label"] == "alice" and account["held_by_node"] and account["nonce"] >= 0
    labels = {a["label"] for a in http.get("/api/v1/accounts").json()}
    assert {"operator", "alice", "bob", "carol"} <= labels
    assert_problem(http.get("/api/v1/balances/0x123"), 422, "not an Ethereum address")


def test_sign_in_with_ethereum(http: httpx.Client, live: LiveServer) -> None:
    alice, mallory = dev_account(live.node, "alice"), Account.create()
    headers = sign_in(http, live, alice)
    me = http.get("/api/v1/auth/me", headers=headers).json()
    assert me == {"address": alice.address, "key_on_node": True}

    nonce = http.post("/api/v1/auth/nonce").json()["nonce"]
    message = siwe_message(live, alice.address, nonce)
    forged = mallory.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    assert_problem(
        http.post("/api/v1/auth/signin", json={"message": message, "signature": forged}), 401, ""
    )
    genuine = alice.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    first = http.post("/api/v1/auth/signin", json={"message": message, "signature": genuine})
    assert first.status_code == 200  # the forged attempt did not burn the nonce
    replay = http.post("/api/v1/auth/signin", json={"message": message, "signature": genuine})
    assert_problem(replay, 401, "")
    wrong_domain = siwe_message(
        live, alice.address, http.post("/api/v1/auth/nonce").json()["nonce"], domain="evil.example"
    )
    signature = alice.sign_message(encode_defunct(text=wrong_domain)).signature.to_0x_hex()
    assert_problem(
        http.post("/api/v1/auth/signin", json={"message": wrong_domain, "signature": signature}),
        401,
        "",
    )
    assert_problem(
        http.post("/api/v1/auth/signin", json={"message": "hello", "signature": "0x00"}), 422, ""
    )

    assert http.post("/api/v1/auth/signout", headers=headers).status_code == 204
    assert_problem(http.get("/api/v1/auth/me", headers=headers), 401, "")
    assert_problem(http.get("/api/v1/auth/me"), 401, "sign in first")


def test_register_get_list_and_transfer_assets(http: httpx.Client, live: LiveServer) -> None:
    alice, bob = dev_account(live.node, "alice"), dev_account(live.node, "bob")
    headers = sign_in(http, live, alice)
    body = {
        "kind": "app",
        "name": "Polite replies",
        "licence": "CC-BY-4.0",
        "description": "kind words",
    }
    created = http.post("/api/v1/assets", json=body, headers=headers)
    assert created.status_code == 201, created.text
    data = created.json()
    assert data["owner"] == alice.address and data["token_id"] == data["asset_id"]
    assert data["contract"] == live.node.chain.registry.address
    model = http.post(
        "/api/v1/assets",
        json={
            "kind": "model",
            "name": "Polite bot",
            "licence": "MIT",
            "parents": [data["asset_id"]],
            "split": {"owner": 5000, "data": 4000, "compute": 1000, "upstream": 0},
        },
        headers=headers,
    ).json()
    assert model["parents"] == [data["asset_id"]]
    assert http.get(f"/api/v1/assets/{model['asset_id']}").json()["name"] == "Polite bot"
    listed = http.get("/api/v1/assets", params={"kind": "model"}).json()
    assert [a["asset_id"] for a in listed] == [model["asset_id"]]
    blob = http.get(f"/api/v1/blobs/{model['metadata_cid']}")
    assert blob.status_code == 200 and b"Polite bot" in blob.content

    moved = http.post(
        f"/api/v1/assets/{data['asset_id']}/transfer", json={"to": bob.address}, headers=headers
    )
    assert moved.status_code == 200 and moved.json()["owner"] == bob.address
    assert moved.json()["transfer_tx"] not in (moved.json()["tx_hash"], "")
    again = http.post(
        f"/api/v1/assets/{data['asset_id']}/transfer", json={"to": bob.address}, headers=headers
    )
    assert_problem(again, 403, "is owned by")


def test_bad_asset_requests_get_problems_and_change_nothing(
    http: httpx.Client, live: LiveServer
) -> None:
    alice = dev_account(live.node, "alice")
    headers = sign_in(http, live, alice)
    before = live.node.chain.registry.total_assets()
    good = {"kind": "model", "name": "d", "licence": "MIT"}
    assert_problem(http.post("/api/v1/assets", json=good), 401, "sign in first")
    bad_split = {**good, "split": {"owner": 9000, "data": 0, "compute": 0, "upstream": 0}}
    assert_problem(
        http.post("/api/v1/assets", json=bad_split, headers=headers), 422, "must sum to 10000"
    )
    assert_problem(
        http.post("/api/v1/assets", json={**good, "kind": "song"}, headers=headers),
        422,
        "unknown asset kind",
    )
    assert_problem(
        http.post("/api/v1/assets", json={**good, "parents": [42]}, headers=headers),
        422,
        "not a registered",
    )
    assert_problem(
        http.post("/api/v1/assets", json={**good, "colour": "red"}, headers=headers), 422, "colour"
    )
    assert_problem(http.post("/api/v1/assets", content=b"{", headers=headers), 422, "")
    assert_problem(http.get("/api/v1/assets/77"), 404, "no asset with id 77")
    assert_problem(http.get("/api/v1/assets", params={"kind": "song"}), 422, "unknown asset kind")
    assert live.node.chain.registry.total_assets() == before


def test_a_key_the_node_does_not_hold_cannot_act_through_the_node(
    http: httpx.Client, live: LiveServer
) -> None:
    outsider = Account.create()
    headers = sign_in(http, live, outsider)
    reply = http.post(
        "/api/v1/assets", json={"kind": "model", "name": "d", "licence": "MIT"}, headers=headers
    )
    assert_problem(reply, 403, "POST /api/v1/chain/transactions")


def test_wallet_signed_transactions_are_relayed(live: LiveServer) -> None:
    node = live.node
    wallet = Account.create()
    node.backend.fund(wallet.address, 10**18)
    node.chain.token.mint(node.operator, wallet.address, 50)
    bob = dev_account(node, "bob")
    with NodeClient(live.url) as api:
        result = api.transfer_tokens(wallet, bob.address, 20)
        assert set(result) == {"tx_hash", "block_number", "gas_used", "status", "events"}
        assert result["status"] == 1 and set(result["events"][0]) == {"contract", "event", "args"}
        assert (
            result["events"][0]["event"] == "Transfer"
            and result["events"][0]["contract"] == "CairnToken"
        )
        assert node.chain.token.balance_of(wallet.address) == 30
        nonce = node.client.nonce(wallet.address)
        with pytest.raises(ChainError, match="cairn_token"):
            api.transfer_tokens(wallet, bob.address, 31)
        assert (
            node.client.nonce(wallet.address) == nonce
            and node.chain.token.balance_of(wallet.address) == 30
        )

        asset = api.register_asset(wallet, kind="model", name="From a wallet", licence="CC0-1.0")
        assert asset["owner"] == wallet.address and asset["name"] == "From a wallet"
        moved = api.transfer_asset(wallet, asset["asset_id"], bob.address)
        assert moved["owner"] == bob.address


def test_the_relay_refuses_what_it_should(http: httpx.Client, live: LiveServer) -> None:
    wallet = Account.create()
    live.node.backend.fund(wallet.address, 10**18)
    fees = http.get("/api/v1/chain/fees").json()
    assert set(fees) == {"maxFeePerGas", "maxPriorityFeePerGas"}  # web3's names, spread below
    tx = {
        "to": Account.create().address,
        "value": 1,
        "gas": 21_000,
        "nonce": 0,
        "chainId": live.node.client.chain_id,
        **fees,
    }
    raw = wallet.sign_transaction(tx).raw_transaction.to_0x_hex()
    assert_problem(
        http.post("/api/v1/chain/transactions", json={"raw": raw}), 422, "only calls to Cairn"
    )
    assert_problem(
        http.post("/api/v1/chain/transactions", json={"raw": "0xdeadbeef"}), 422, "not a signed"
    )
    other_chain = wallet.sign_transaction({**tx, "chainId": 5}).raw_transaction.to_0x_hex()
    assert_problem(http.post("/api/v1/chain/transactions", json={"raw": other_chain}), 422, "")
    assert live.node.client.nonce(wallet.address) == 0


def test_blobs_need_a_session_and_verify_cids(http: httpx.Client, live: LiveServer) -> None:
    assert_problem(http.post("/api/v1/blobs", content=b"hello"), 401, "")
    headers = sign_in(http, live, dev_account(live.node, "carol"))
    stored = http.post("/api/v1/blobs", content=b"hello world\n", headers=headers)
    cid = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert stored.status_code == 201 and stored.json() == {"cid": cid, "size": 12}
    assert http.get(f"/api/v1/blobs/{cid}", headers=headers).content == b"hello world\n"
    assert_problem(http.get(f"/api/v1/blobs/{cid}"), 404, "")  # an upload is its uploader's
    assert_problem(http.get("/api/v1/blobs/not-a-cid"), 422, "invalid CID")
    assert_problem(
        http.get("/api/v1/blobs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
        404,
        "",
    )


def test_the_client_raises_cairn_errors(live: LiveServer) -> None:
    with NodeClient(live.url) as api, pytest.raises(InvalidInput):
        api.balances("nope")
