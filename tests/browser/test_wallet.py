"""Sign-In with Ethereum from the page through an injected EIP-1193 provider: the page asks
the wallet for its account, gets the EIP-4361 message from the node, has the wallet sign it
(personal_sign), and is signed in. The wallet here is a real key in the test process, reached
from the page as `window.ethereum` exposes it, as an extension's provider would be."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from tests.browser.conftest import DemoNode, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(1200)]

PROVIDER = """
window.ethereum = {
  isMetaMask: false,
  request: async ({ method, params }) => window.cairnTestWallet(method, params || []),
};
"""


def test_a_browser_wallet_signs_in(page: Any, demo_node: DemoNode) -> None:
    wallet = Account.create()
    asked: list[str] = []

    def answer(method: str, params: list[Any]) -> Any:
        asked.append(method)
        if method == "eth_requestAccounts":
            return [wallet.address.lower()]
        if method == "personal_sign":
            message = bytes.fromhex(params[0][2:]).decode()
            assert params[1].lower() == wallet.address.lower()
            assert "wants you to sign in with your Ethereum account" in message
            return wallet.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
        raise ValueError(f"unexpected wallet call {method}")

    page.expose_function("cairnTestWallet", answer)
    page.add_init_script(PROVIDER)
    page.goto("/signin?next=/earnings")
    page.get_by_role("button", name="Sign in with wallet").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/earnings")
    assert asked == ["eth_requestAccounts", "personal_sign"]
    assert wallet.address[:6] in page.locator("header .who").inner_text()
    screenshot(page, "wallet-signed-in-earnings")


def test_without_a_wallet_the_page_says_what_to_do(page: Any, demo_node: DemoNode) -> None:
    page.goto("/signin")
    page.get_by_role("button", name="Sign in with wallet").click()
    status = page.locator("#wallet-status")
    status.wait_for()
    assert "No browser wallet found" in status.inner_text()
