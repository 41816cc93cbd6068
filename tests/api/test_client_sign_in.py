"""`NodeClient.sign_in` writes its EIP-4361 message without the `siwe` package (whose import
compiles a grammar: 1.5 s of each `cairn` command that signs in), and a node that parses with
`siwe` accepts it."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.api.client import NodeClient
from cairn.db.engine import Database
from cairn.identity.siwe import SiweAuth
from cairn.identity.siwe_message import siwe_message

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # abnf's notes on siwe's grammar, at import
    from siwe import SiweMessage

CHAIN_ID = 31337
BASE_URL = "http://127.0.0.1:8765"


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[SiweAuth]:
    """The node's side of signing in, on a migrated SQLite index."""
    database = Database(f"sqlite:///{tmp_path}/index.db")
    database.migrate()
    yield SiweAuth(
        database,
        domains={"127.0.0.1:8765"},
        chain_id=CHAIN_ID,
        nonce_ttl=600,
        session_ttl=3600,
    )
    database.close()


def node_routes(auth: SiweAuth, signed: list[str]) -> httpx.MockTransport:
    """The three routes sign-in calls, answered by `auth` as the node's API answers them."""

    def answer(request: httpx.Request) -> httpx.Response:
        route = (request.method, request.url.path)
        if route == ("POST", "/api/v1/auth/nonce"):
            return httpx.Response(200, json={"nonce": auth.issue_nonce()})
        if route == ("GET", "/api/v1/chain"):
            return httpx.Response(200, json={"chain_id": CHAIN_ID})
        if route == ("POST", "/api/v1/auth/signin"):
            body = json.loads(request.content)
            signed.append(body["message"])
            session = auth.sign_in(body["message"], body["signature"])
            return httpx.Response(200, json={"token": session.token})
        return httpx.Response(404, json={"title": "not found", "status": 404})

    return httpx.MockTransport(answer)


def test_the_client_signs_in_to_a_siwe_node_without_importing_siwe(
    auth: SiweAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "siwe" or m.startswith("siwe.")]:
        monkeypatch.delitem(sys.modules, name)  # the node's parser keeps its own references
    monkeypatch.setitem(sys.modules, "siwe", None)  # `import siwe` now raises ImportError
    wallet: LocalAccount = Account.create()
    client = NodeClient(BASE_URL)
    signed: list[str] = []
    client.http = httpx.Client(base_url=BASE_URL, transport=node_routes(auth, signed))
    with client:
        token = client.sign_in(wallet)
    assert token and auth.resolve(token) == wallet.address
    assert signed[0].startswith(
        f"127.0.0.1:8765 wants you to sign in with your Ethereum account:\n{wallet.address}\n"
    )


@settings(max_examples=50)
@given(
    statement=st.sampled_from(["Sign in to this Cairn node.", None]),
    chain_id=st.integers(min_value=1, max_value=2**53),
    nonce=st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8),
    port=st.integers(min_value=1, max_value=65535),
)
def test_the_message_is_the_one_siwe_writes(
    statement: str | None, chain_id: int, nonce: str, port: int
) -> None:
    fields = {
        "domain": f"localhost:{port}",
        "address": "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4",
        "statement": statement,
        "uri": f"http://localhost:{port}",
        "chain_id": chain_id,
        "nonce": nonce,
        "issued_at": "2026-12-05T05:00:00Z",
    }
    ours = siwe_message(**fields)  # type: ignore[arg-type]
    theirs = SiweMessage(**fields, version="1").prepare_message()
    assert ours == theirs
    assert SiweMessage.from_message(ours).nonce == nonce
