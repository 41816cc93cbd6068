"""The marketplace and the asset page, through a real HTTP server: cards with real figures,
filters that exclude, a drawn lineage that links every element, and a 404 for unknown assets."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx

from cairn.node import Node
from tests.economy.conftest import build_world

PRICE = 2 * 10**15  # 0.002 CAIRN per 1,000 tokens


class Form(HTMLParser):
    """The form controls of a page and the labels that name them."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[str] = []
        self.labels: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.controls.append(found.get("id") or "")
        if tag == "label" and found.get("for"):
            self.labels.add(found["for"] or "")


def cards(page: str) -> dict[int, str]:
    """Each asset card's text by asset id."""
    found = re.findall(
        r'<article class="card" data-testid="asset-card" data-kind="\w+" '
        r'data-asset-id="(\d+)">(.*?)</article>',
        page,
        re.S,
    )
    return {int(i): text(body) for i, body in found}


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def by_testid(page: str, name: str) -> str:
    """The inner HTML of the first element with data-testid=`name`."""
    match = re.search(rf'<(\w+)[^>]*data-testid="{name}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no {name} in the page"
    return match.group(2)


def test_an_empty_marketplace_says_how_to_start_and_labels_every_filter(
    web: httpx.Client,
) -> None:
    page = web.get("/")
    assert page.status_code == 200
    assert "Nothing is listed on this node yet" in text(by_testid(page.text, "market-empty"))
    assert 'href="/contribute"' in page.text and 'href="/build"' in page.text
    form = Form()
    form.feed(page.text)
    assert form.controls == ["f-q", "f-kind", "f-licence", "f-task", "f-price", "f-max"]
    assert set(form.controls) <= form.labels
    assert "<h1>Marketplace</h1>" in page.text and "<h3" not in page.text


def test_cards_show_real_figures_and_filters_exclude(
    web: httpx.Client, node: Node, tmp_path: Path
) -> None:
    world = build_world(node, tmp_path)
    node.economy.prices.set(world.alice.address, world.model, PRICE)
    charge = node.economy.meter.open(world.key, world.model, "chat.completions", 1000)
    node.economy.meter.close(charge, 120, 30)
    records = node.data.anchoring.versions(world.dataset)[0].records

    shown = cards(web.get("/").text)
    assert set(shown) == {world.dataset, world.base, world.model}
    dataset, model = shown[world.dataset], shown[world.model]
    assert f"Size {records} records · 1 version" in dataset
    assert "Owner alice" in dataset and "1 model built on it" in dataset
    assert "Quality 100.0 % accepted" in dataset
    assert "Usage 1 call · 150 tokens" in model and "Price 0.002 CAIRN per 1k tokens" in model
    assert "kB of weights" in model and "sft" in model
    assert f'href="/assets/{world.dataset}"' in web.get("/").text

    def ids(query: str) -> set[int]:
        reply = web.get("/" + query)
        assert reply.status_code == 200
        return set(cards(reply.text))

    assert ids("?kind=dataset") == {world.dataset}
    assert ids("?kind=model&price=paid") == {world.model}
    assert ids("?price=free") == {world.base}
    assert ids("?max_price=0.001") == {world.base}
    assert ids("?licence=CC-BY-4.0") == {world.dataset}
    assert ids("?task=instruction") == {world.dataset, world.model}
    assert ids("?q=reverser") == {world.model}
    nothing = web.get("/?q=no+such+thing&kind=app")
    assert "Nothing matches these filters" in nothing.text and 'href="/">clear' in nothing.text
    assert 'value="no such thing"' in nothing.text  # the form keeps what was asked

    bad = web.get("/?max_price=lots")
    assert bad.status_code == 400
    assert "maximum price 'lots' is not a number" in html.unescape(
        by_testid(bad.text, "filter-error")
    )
    assert 'value="lots"' in bad.text and "Nothing matches" not in bad.text
    huge = web.get("/?max_price=1e1000000")
    assert huge.status_code == 400 and "is too large" in by_testid(huge.text, "filter-error")


def test_a_dataset_page_shows_versions_contributors_lineage_and_where_to_help(
    web: httpx.Client, node: Node, tmp_path: Path
) -> None:
    world = build_world(node, tmp_path)
    page = web.get(f"/assets/{world.dataset}")
    assert page.status_code == 200
    version = node.data.anchoring.versions(world.dataset)[0]
    root = node.store.get_json(version.version)["batches"][0]["root"]
    actions = by_testid(page.text, "asset-actions")
    assert f'href="/datasets/{world.dataset}/contribute"' in actions
    assert f'href="/review/{world.dataset}"' in actions
    versions = by_testid(page.text, "versions")
    assert f'title="{root}"' in versions and f"{version.records}" in text(versions)
    on_chain = text(by_testid(page.text, "on-chain"))
    assert node.chain.registry.address in on_chain and node.chain.ledger.address in on_chain
    assert f"Token id {world.dataset}" in on_chain and "1 batch" in on_chain
    contributors = by_testid(page.text, "contributors")
    table = node.data.anchoring.attribution(world.dataset)
    for account, weight in table.items():
        assert f'title="{account}"' in contributors
        assert f"{weight / 10**16:.2f} %" in contributors
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    assert f'href="/assets/{world.model}"' in svg  # the model built on it, downstream


def test_a_model_page_draws_every_lineage_element_with_its_link(
    web: httpx.Client, node: Node, tmp_path: Path
) -> None:
    world = build_world(node, tmp_path)
    page = web.get(f"/assets/{world.model}")
    assert page.status_code == 200
    job = "0x" + "ab" * 32
    actions = by_testid(page.text, "asset-actions")
    assert f'href="/playground?model={world.model}"' in actions
    assert f'href="/build?base={world.model}"' in actions
    assert f'href="/jobs/{job}"' in by_testid(page.text, "overview")
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>") + 6]
    assert 'role="group"' in svg and 'aria-label="Lineage of reverser: ' in svg
    keys = set(re.findall(r'data-key="([^"]+)"', svg))
    assert keys == {
        f"model {world.model}",
        f"model {world.base}",
        f"dataset {world.dataset}@{world.version}",
        f"job {job}",
        f"provider {world.bob.address}",
        f"provider {world.carol.address}",
    }
    for href in (f"/assets/{world.model}", f"/assets/{world.base}", f"/assets/{world.dataset}"):
        assert f'href="{href}"' in svg
    assert f'href="/jobs/{job}"' in svg
    assert ">bob</text>" in svg  # providers the node knows by name
    listed = text(by_testid(page.text, "lineage-list"))
    made_from = [world.bob.address, world.carol.address]  # providers in address order
    names = ", ".join(("bob", "carol")[made_from.index(a)] for a in sorted(made_from))
    assert f"made from tiny causal-lm, Polite replies v1, {names}" in listed
    shares = text(by_testid(page.text, "payees"))
    assert "alice" in shares and "24.00 % owner of Polite replies v1; owner of reverser" in shares
    assert "Compute 20.0 %" in text(by_testid(page.text, "split"))
    providers = text(by_testid(page.text, "providers"))
    assert "bob 0x" in providers and "300 75.0 %" in providers


def test_an_unknown_asset_is_a_404_page_and_odd_assets_still_show(
    web: httpx.Client, node: Node
) -> None:
    missing = web.get("/assets/999")
    assert missing.status_code == 404 and "no asset with id 999" in missing.text
    assert "<h1>Not found</h1>" in missing.text
    assert web.get("/assets/abc").status_code == 422
    for past in (f"/assets/{2**63}", f"/assets/{2**64 + 5}", "/assets/-1"):
        beyond = web.get(past)  # past any id the node stores: a page that says why, not a 500
        assert beyond.status_code == 422 and "asset_id: Input should be" in beyond.text, past
    alice = node.signers.get(node.keystore.find_by_label("alice").address)
    asset = node.assets.register(
        alice,
        kind="model",  # a bare app asset serves nothing, so the marketplace leaves it out
        name='<script>alert("x")</script>',
        licence="MIT",
        description="<img src=x onerror=alert(1)>",
    )
    for path in ("/", f"/assets/{asset.asset_id}"):
        page = web.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;" in page
    # metadata registered from a wallet may have any shape: the pages show what they can
    odd = node.assets.register(
        alice,
        kind="model",
        name="odd",
        licence="MIT",
        extra={"training": "nonsense", "model": {"weights": 5}, "base_model": [1]},
    )
    assert odd.asset_id in cards(web.get("/").text)
    page = web.get(f"/assets/{odd.asset_id}")
    assert page.status_code == 200
    assert "cannot be read" in by_testid(page.text, "lineage-error")
