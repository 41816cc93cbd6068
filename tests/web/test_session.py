"""Signing in to the web app: the dev account picker, a wallet's EIP-4361 message, signing out,
pages that need an account, form posts from other sites refused, a session cookie that is Secure
over HTTPS, and a sign-in that never sends the browser to another site."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct

from cairn.node import Node
from cairn.web.session import SESSION_COOKIE
from tests.conftest import LiveServer


def test_the_dev_picker_signs_in_and_the_header_shows_the_account(
    web: httpx.Client, node: Node
) -> None:
    page = web.get("/signin?next=/node")
    assert page.status_code == 200 and "alice" in page.text and "Sign in with wallet" in page.text
    alice = node.keystore.find_by_label("alice").address
    reply = web.post("/signin/dev", data={"address": alice, "next": "/node"})
    assert reply.status_code == 303 and reply.headers["location"] == "/node"
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    home = web.get("/node")
    assert "Signed in as alice" in home.text and 'data-testid="wallet-balance">1,000' in home.text
    assert web.get("/node").text.count("Signed in as alice") == 0  # a flash is shown once

    web.post("/signout")
    assert "Sign out" not in web.get("/node").text


def test_a_wallet_signs_the_message_the_page_prepares(web: httpx.Client, node: Node) -> None:
    wallet = Account.create()
    prepared = web.post("/signin/message", data={"address": wallet.address.lower()})
    message = prepared.json()["message"]
    assert message.startswith(f"127.0.0.1:{node.config.port} wants you to sign in")
    assert wallet.address in message and f"Chain ID: {node.client.chain_id}" in message
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    reply = web.post(
        "/signin/wallet",
        json={"message": message, "signature": signature, "next": "//evil.example"},
    )
    assert reply.status_code == 200 and reply.json() == {"address": wallet.address, "next": "/"}
    assert wallet.address[:6] in web.get("/node").text

    again = web.post("/signin/wallet", json={"message": message, "signature": signature})
    assert again.status_code == 401 and "already used" in again.json()["detail"]
    bad = web.post("/signin/message", data={"address": "0x123"})
    assert bad.status_code == 422 and "not an Ethereum address" in bad.json()["detail"]


def test_pages_that_act_for_an_account_send_visitors_to_sign_in(
    web: httpx.Client, node: Node, signed_in: Callable[[str], httpx.Client]
) -> None:
    reply = web.get("/earnings")
    assert reply.status_code == 303 and reply.headers["location"] == "/signin?next=/earnings"
    missing = web.get("/no-such-page")
    assert missing.status_code == 404 and "<h1>Not Found</h1>" in missing.text
    assert web.get("/api/v1/no-such").headers["content-type"] == "application/problem+json"

    signed_in("bob")
    foreign = web.post("/signout", headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "may not act on this node" in foreign.text
    assert "Sign out" in web.get("/node").text


def test_only_dev_accounts_can_use_the_picker(web: httpx.Client, node: Node) -> None:
    reply = web.post("/signin/dev", data={"address": node.gateway_account.address})
    assert reply.status_code == 403 and "not a dev account" in reply.text
    stranger = web.post("/signin/dev", data={"address": Account.create().address})
    assert stranger.status_code == 404 and "Sign out" not in stranger.text
    listed = web.get("/signin").text
    assert "operator" in listed and "(runs this node)" in listed and "gateway" not in listed


def cookie_flags(reply: httpx.Response) -> set[str]:
    """The attributes of the session cookie a reply sets (httponly, secure, …), lower case."""
    (session,) = [c for c in reply.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)]
    return {part.split("=")[0].strip().lower() for part in session.split(";")[1:]}


def test_the_session_cookie_is_secure_when_the_page_came_over_https(
    live: LiveServer, node: Node, make_node: Callable[..., Node], tmp_path: Path
) -> None:
    # over real HTTP (the proxy headers are uvicorn's to read), each sign-in a new browser's
    signin, origin = f"{live.url}/signin/dev", {"Origin": live.url}
    alice = node.keystore.find_by_label("alice").address
    plain = httpx.post(signin, data={"address": alice}, headers=origin)
    assert plain.status_code == 303 and "secure" not in cookie_flags(plain)
    # behind a TLS proxy on this machine: uvicorn believes 127.0.0.1's X-Forwarded-Proto
    proxied = httpx.post(
        signin, data={"address": alice}, headers={**origin, "X-Forwarded-Proto": "https"}
    )
    assert proxied.status_code == 303
    assert {"secure", "httponly", "samesite"} <= cookie_flags(proxied)

    # a proxy that says nothing: the node is told (CAIRN_SECURE_COOKIES) instead
    told = make_node(tmp_path / "told", secure_cookies=True)
    with LiveServer(told) as server, httpx.Client(base_url=server.url) as client:
        address = told.keystore.find_by_label("bob").address
        reply = client.post(
            "/signin/dev", data={"address": address}, headers={"Origin": server.url}
        )
        assert reply.status_code == 303 and "secure" in cookie_flags(reply)


def test_after_signing_in_the_browser_stays_on_this_node(web: httpx.Client, node: Node) -> None:
    page = web.get("/signin", params={"next": "/\\127.0.0.1:8299/x"})  # ?next=/%5C127.0.0.1…
    assert 'data-next="/"' in page.text and 'name="next" value="/"' in page.text

    wallet = Account.create()
    message = web.post("/signin/message", data={"address": wallet.address}).json()["message"]
    signature = wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    reply = web.post(
        "/signin/wallet",
        json={"message": message, "signature": signature, "next": "/\\127.0.0.1:8299/x"},
    )
    assert reply.status_code == 200 and reply.json()["next"] == "/"

    alice = node.keystore.find_by_label("alice").address
    # browsers read a backslash as a slash and drop tabs and line breaks: each is another site
    for bad in ("/\\evil.example", "/\t/evil.example", "/\n/evil.example", "/\\\\evil.example"):
        reply = web.post("/signin/dev", data={"address": alice, "next": bad})
        assert reply.status_code == 303 and reply.headers["location"] == "/", bad
    kept = web.post("/signin/dev", data={"address": alice, "next": "/assets/3?tab=x#licences"})
    assert kept.headers["location"] == "/assets/3?tab=x#licences"
