"""The node API, every route, good and bad input: in process through ASGI (`api`), and for the
health, auth and assets families over a real uvicorn server on 127.0.0.1 (`live`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from siwe import SiweMessage
from starlette.testclient import TestClient

from cairn.core.errors import ChainError, InvalidInput
from cairn.node import DEV_TOKENS, Node
from tests.api.conftest import node_client, url_of
from tests.conftest import LiveServer


def siwe_message(node: Node, address: str, nonce: str, **overrides: Any) -> str:
    """An EIP-4361 message signing in to `node` at its own URL (in process or on `live`)."""
    fields: dict[str, Any] = {
        "domain": f"127.0.0.1:{node.config.port}",
        "address": address,
        "statement": "Sign in to Cairn.",
        "uri": url_of(node),
        "version": "1",
        "chain_id": node.client.chain_id,
        "nonce": nonce,
        "issued_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        **overrides,
    }
    return str(SiweMessage(**fields).prepare_message())


def sign_in(http: httpx.Client | TestClient, node: Node, account: LocalAccount) -> dict[str, str]:
    """Sign `account` in to `node` through `http`; the bearer header of its session."""
    nonce = http.post("/api/v1/auth/nonce").json()["nonce"]
    message = siwe_message(node, account.address, nonce)
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    reply = http.post("/api/v1/auth/signin", json={"message": message, "signature": signature})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def dev_account(node: Node, label: str) -> LocalAccount:
    return node.signers.get(node.keystore.find_by_label(label).address)


def assert_problem(reply: httpx.Response, status: int, detail_part: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["status"] == status and detail_part in body["detail"], body


def test_health_chain_and_landing_page(http: httpx.Client, live: LiveServer) -> None:
    # the health, chain and node family's real-server test: uvicorn on 127.0.0.1
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
        "PrepaidVault",
    }
    registry = chain["contracts"]["AssetRegistry"]
    assert registry["address"].startswith("0x") and any(
        e.get("name") == "register" for e in registry["abi"]
    )
    page = http.get("/node")
    assert page.status_code == 200 and "Cairn" in page.text and registry["address"] in page.text
    assert http.get("/docs").status_code == 200
    assert "/api/v1/assets" in http.get("/openapi.json").json()["paths"]


def test_balances_and_accounts(api: TestClient, node: Node) -> None:
    alice = dev_account(node, "alice")
    balances = api.get(f"/api/v1/balances/{alice.address}").json()
    assert (
        balances["token"]["balance"] == str(DEV_TOKENS) and balances["token"]["symbol"] == "CAIRN"
    )
    assert list(balances["token"]) == ["address", "symbol", "decimals", "balance"]
    account = api.get(f"/api/v1/accounts/{alice.address.lower()}").json()
    assert account["label"] == "alice" and account["held_by_node"] and account["nonce"] >= 0
    labels = {a["label"] for a in api.get("/api/v1/accounts").json()}
    assert {"operator", "alice", "bob", "carol"} <= labels
    assert_problem(api.get("/api/v1/balances/0x123"), 422, "not an Ethereum address")


def test_sign_in_with_ethereum(http: httpx.Client, live: LiveServer) -> None:
    # the auth family's real-server test: uvicorn on 127.0.0.1
    alice, mallory = dev_account(live.node, "alice"), Account.create()
    headers = sign_in(http, live.node, alice)
    me = http.get("/api/v1/auth/me", headers=headers).json()
    assert me == {"address": alice.address, "key_on_node": True}

    nonce = http.post("/api/v1/auth/nonce").json()["nonce"]
    message = siwe_message(live.node, alice.address, nonce)
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
        live.node,
        alice.address,
        http.post("/api/v1/auth/nonce").json()["nonce"],
        domain="evil.example",
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
    # the assets family's real-server test: uvicorn on 127.0.0.1
    alice, bob = dev_account(live.node, "alice"), dev_account(live.node, "bob")
    headers = sign_in(http, live.node, alice)
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


def test_bad_asset_requests_get_problems_and_change_nothing(api: TestClient, node: Node) -> None:
    alice = dev_account(node, "alice")
    headers = sign_in(api, node, alice)
    before = node.chain.registry.total_assets()
    good = {"kind": "model", "name": "d", "licence": "MIT"}
    assert_problem(api.post("/api/v1/assets", json=good), 401, "sign in first")
    bad_split = {**good, "split": {"owner": 9000, "data": 0, "compute": 0, "upstream": 0}}
    assert_problem(
        api.post("/api/v1/assets", json=bad_split, headers=headers), 422, "must sum to 10000"
    )
    assert_problem(
        api.post("/api/v1/assets", json={**good, "kind": "song"}, headers=headers),
        422,
        "unknown asset kind",
    )
    assert_problem(
        api.post("/api/v1/assets", json={**good, "parents": [42]}, headers=headers),
        422,
        "not a registered",
    )
    assert_problem(
        api.post("/api/v1/assets", json={**good, "colour": "red"}, headers=headers), 422, "colour"
    )
    assert_problem(api.post("/api/v1/assets", content=b"{", headers=headers), 422, "")
    assert_problem(api.get("/api/v1/assets/77"), 404, "no asset with id 77")
    assert_problem(api.get("/api/v1/assets", params={"kind": "song"}), 422, "unknown asset kind")
    assert node.chain.registry.total_assets() == before


def test_a_key_the_node_does_not_hold_cannot_act_through_the_node(
    api: TestClient, node: Node
) -> None:
    outsider = Account.create()
    headers = sign_in(api, node, outsider)
    reply = api.post(
        "/api/v1/assets", json={"kind": "model", "name": "d", "licence": "MIT"}, headers=headers
    )
    assert_problem(reply, 403, "POST /api/v1/chain/transactions")


def test_wallet_signed_transactions_are_relayed(api: TestClient, node: Node) -> None:
    wallet = Account.create()
    node.backend.fund(wallet.address, 10**18)
    node.chain.token.mint(node.operator, wallet.address, 50)
    bob = dev_account(node, "bob")
    with node_client(api) as client:
        result = client.transfer_tokens(wallet, bob.address, 20)
        assert set(result) == {"tx_hash", "block_number", "gas_used", "status", "events"}
        assert result["status"] == 1 and set(result["events"][0]) == {"contract", "event", "args"}
        assert (
            result["events"][0]["event"] == "Transfer"
            and result["events"][0]["contract"] == "CairnToken"
        )
        assert node.chain.token.balance_of(wallet.address) == 30
        nonce = node.client.nonce(wallet.address)
        with pytest.raises(ChainError, match="cairn_token"):
            client.transfer_tokens(wallet, bob.address, 31)
        assert (
            node.client.nonce(wallet.address) == nonce
            and node.chain.token.balance_of(wallet.address) == 30
        )

        asset = client.register_asset(wallet, kind="model", name="From a wallet", licence="CC0-1.0")
        assert asset["owner"] == wallet.address and asset["name"] == "From a wallet"
        moved = client.transfer_asset(wallet, asset["asset_id"], bob.address)
        assert moved["owner"] == bob.address


def test_the_relay_refuses_what_it_should(api: TestClient, node: Node) -> None:
    wallet = Account.create()
    node.backend.fund(wallet.address, 10**18)
    fees = api.get("/api/v1/chain/fees").json()
    assert set(fees) == {"maxFeePerGas", "maxPriorityFeePerGas"}  # web3's names, spread below
    tx = {
        "to": Account.create().address,
        "value": 1,
        "gas": 21_000,
        "nonce": 0,
        "chainId": node.client.chain_id,
        **fees,
    }
    raw = wallet.sign_transaction(tx).raw_transaction.to_0x_hex()
    assert_problem(
        api.post("/api/v1/chain/transactions", json={"raw": raw}), 422, "only calls to Cairn"
    )
    assert_problem(
        api.post("/api/v1/chain/transactions", json={"raw": "0xdeadbeef"}), 422, "not a signed"
    )
    other_chain = wallet.sign_transaction({**tx, "chainId": 5}).raw_transaction.to_0x_hex()
    assert_problem(api.post("/api/v1/chain/transactions", json={"raw": other_chain}), 422, "")
    assert node.client.nonce(wallet.address) == 0


def test_blobs_need_a_session_and_verify_cids(api: TestClient, node: Node) -> None:
    assert_problem(api.post("/api/v1/blobs", content=b"hello"), 401, "")
    headers = sign_in(api, node, dev_account(node, "carol"))
    stored = api.post("/api/v1/blobs", content=b"hello world\n", headers=headers)
    cid = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert stored.status_code == 201 and stored.json() == {"cid": cid, "size": 12}
    assert api.get(f"/api/v1/blobs/{cid}", headers=headers).content == b"hello world\n"
    assert_problem(api.get(f"/api/v1/blobs/{cid}"), 404, "")  # an upload is its uploader's
    assert_problem(api.get("/api/v1/blobs/not-a-cid"), 422, "invalid CID")
    assert_problem(
        api.get("/api/v1/blobs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
        404,
        "",
    )


def test_the_client_raises_cairn_errors(api: TestClient) -> None:
    with node_client(api) as client, pytest.raises(InvalidInput):
        client.balances("nope")
