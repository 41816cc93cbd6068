"""Forged page posts, through a real HTTP server: a post with `Origin: null` or with neither
Origin nor Referer moves nothing even with the session cookie, a post without this session's
form token is refused, every post form carries the token, and the JSON API needs none.

The clients here are plain httpx clients (not the `web` fixture, which adds what a page adds),
so each test says exactly which headers and fields a post carries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

import cairn.web
from cairn.api.client import NodeClient
from cairn.node import Node
from tests.conftest import LiveServer
from tests.data.conftest import dev

TOKEN = 10**18
TEMPLATES = Path(cairn.web.__file__).with_name("templates")
HEADER = "X-CSRF-Token"  # what the pages' scripts send the form token in
HIDDEN = re.compile(r'<input type="hidden" name="csrf_token" value="([0-9a-f]{64})">')


@contextmanager
def browser(live: LiveServer, node: Node, label: str) -> Iterator[httpx.Client]:
    """A client signed in as the dev account `label` from the node's own sign-in page."""
    with httpx.Client(base_url=live.url, timeout=60.0) as client:
        address = node.keystore.find_by_label(label).address
        reply = client.post("/signin/dev", data={"address": address}, headers={"Origin": live.url})
        assert reply.status_code == 303, reply.text
        yield client


def form_token(page: str) -> str:
    """The form token of the first post form on a rendered page."""
    found = HIDDEN.search(page)
    assert found, "no form token on the page"
    return found.group(1)


def test_a_licence_buy_with_origin_null_or_no_origin_moves_nothing(
    live: LiveServer, node: Node
) -> None:
    alice, carol = dev(node, "alice"), dev(node, "carol")
    asset = node.assets.register(alice, kind="dataset", name="Replies", licence="CC0-1.0")
    offer = node.licences.offer(alice, asset.asset_id, price=TOKEN, terms="commercial")
    buy = f"/licences/{offer.offer_id}/buy"
    wallet = node.chain.token.balance_of(carol.address)
    with browser(live, node, "carol") as page:
        token = form_token(page.get(f"/assets/{asset.asset_id}").text)
        # Chromium sends Origin: null after a redirect from another port's page, cookie included
        null = page.post(buy, data={"csrf_token": token}, headers={"Origin": "null"})
        assert null.status_code == 403 and "Origin: null" in null.text
        bare = page.post(buy, data={"csrf_token": token})
        assert bare.status_code == 403 and "neither Origin nor Referer" in bare.text
        other_port = page.post(
            buy, data={"csrf_token": token}, headers={"Referer": "http://127.0.0.1:8299/x"}
        )
        assert other_port.status_code == 403 and "127.0.0.1:8299" in other_port.text
        assert node.chain.token.balance_of(carol.address) == wallet
        assert node.licences.held(carol.address) == []

        # a browser that sends only a Referer on the node (no Origin) is believed
        bought = page.post(
            buy, data={"csrf_token": token}, headers={"Referer": f"{live.url}/assets/1"}
        )
        assert bought.status_code == 303, bought.text
        assert node.chain.token.balance_of(carol.address) == wallet - TOKEN
        assert [h.offer.offer_id for h in node.licences.held(carol.address)] == [offer.offer_id]


def test_a_post_without_this_sessions_form_token_is_refused(live: LiveServer, node: Node) -> None:
    carol = node.keystore.find_by_label("carol").address
    same_origin = {"Origin": live.url}
    with browser(live, node, "bob") as bob, browser(live, node, "carol") as page:
        bobs = form_token(bob.get("/earnings").text)
        earnings = page.get("/earnings").text
        token = form_token(earnings)
        assert token != bobs
        # every post form on the page carries it, the sign-out form in the header included
        forms = re.findall(r'<form[^>]*method="post"[^>]*>(<input[^>]*>)', earnings)
        assert len(forms) == earnings.count('method="post"') >= 3
        assert {HIDDEN.fullmatch(f).group(1) for f in forms} == {token}  # type: ignore[union-attr]

        for data in ({}, {"csrf_token": "0" * 64}, {"csrf_token": bobs}):
            refused = page.post("/earnings/keys", data={"name": "k", **data}, headers=same_origin)
            assert refused.status_code == 403 and "form token" in refused.text
        refused = page.post(
            "/earnings/keys", data={"name": "k"}, headers={**same_origin, HEADER: bobs}
        )
        assert refused.status_code == 403
        assert node.economy.keys.list(carol) == []

        made = page.post(
            "/earnings/keys", data={"name": "field", "csrf_token": token}, headers=same_origin
        )
        assert made.status_code == 201 and "cairn-sk-" in made.text
        # the pages' scripts send it as a header instead (the wallet sign-in does)
        made = page.post(
            "/earnings/keys", data={"name": "header"}, headers={**same_origin, HEADER: token}
        )
        assert made.status_code == 201
        assert sorted(k.name for k in node.economy.keys.list(carol)) == ["field", "header"]

        # signing in again makes a new session, and the old page's token stops working
        again = page.post(
            "/signin/dev", data={"address": carol}, headers={**same_origin, HEADER: token}
        )
        assert again.status_code == 303
        stale = page.post(
            "/earnings/keys", data={"name": "stale", "csrf_token": token}, headers=same_origin
        )
        assert stale.status_code == 403
        assert form_token(page.get("/earnings").text) != token


def test_every_post_form_in_the_templates_renders_the_token() -> None:
    forms = 0
    for template in sorted(TEMPLATES.glob("*.html")):
        source = template.read_text()
        for found in re.finditer(r'<form\b[^>]*\bmethod="post"[^>]*>', source, re.I | re.S):
            forms += 1
            follows = source[found.end() : found.end() + len("{{ csrf_field }}")]
            assert follows == "{{ csrf_field }}", f"{template.name}: {found.group(0)}"
    assert forms >= 20


def test_signed_out_posts_need_the_origin_and_the_api_needs_no_token(
    live: LiveServer, node: Node
) -> None:
    alice = node.keystore.find_by_label("alice").address
    with httpx.Client(base_url=live.url, timeout=60.0) as anonymous:
        # signing someone in from another page would act for them too
        for headers in ({"Origin": "null"}, {}, {"Origin": "https://evil.example"}):
            refused = anonymous.post("/signin/dev", data={"address": alice}, headers=headers)
            assert refused.status_code == 403 and "cairn_session" not in refused.cookies
    with NodeClient(live.url) as api:
        api.sign_in(dev(node, "alice"))
        made = api.http.post(
            "/api/v1/keys", json={"name": "api"}, headers={"Authorization": f"Bearer {api.token}"}
        )
        assert made.status_code == 201, made.text
