"""/node shows the node's chain, contracts and accounts; while the demo community is being
seeded, every page's banner says how far it is, and /demo-status answers the banner's refresh."""

from __future__ import annotations

import httpx

from cairn.node import Node


def test_the_node_page_shows_its_chain_contracts_and_accounts(
    web: httpx.Client, node: Node
) -> None:
    page = web.get("/node")
    assert page.status_code == 200
    assert f"memory (chain id {node.client.chain_id}, block {node.client.block_number()})" in (
        page.text
    )
    assert all(address in page.text for address in node.chain.addresses)
    assert node.keystore.find_by_label("alice").address in page.text
    assert f"chain id {node.client.chain_id} ·" in page.text  # the footer
    assert "Development node." in page.text  # the dev node's banner


def test_the_banner_follows_the_demo_seeding(web: httpx.Client, node: Node) -> None:
    assert 'data-refresh="/demo-status"' not in web.get("/node").text
    assert "The demo community is ready" in web.get("/demo-status").text

    node.demo_status = "Seeding the demo community: training <models> (reload to see more)"
    page = web.get("/node")
    assert 'data-refresh="/demo-status"' in page.text
    assert "training &lt;models&gt;" in page.text
    assert web.get("/demo-status").text == (
        "Seeding the demo community: training &lt;models&gt; (reload to see more)"
    )
