"""The app pages on a real node and HTTP server with the packaged MiniLM and a tiny chat model:
the builder refuses invalid input and registers nothing, tries a spec (the answer and the
passages it retrieved, paid at the model's price), publishes it, and names a licence to buy;
an app's page shows its spec and charges a chat exactly its price per call."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

import cairn
from cairn.api.gateway_schemas import card
from cairn.chain.anvil import free_port
from cairn.economy.balances import cost
from cairn.node import Node, open_node
from cairn.serve import prices
from cairn.serve.app_spec import AppSpec
from cairn.serve.prices import CallPrice
from cairn.train.tiny import tiny_causal_lm
from cairn.web.render import units
from tests.conftest import LiveServer
from tests.data.conftest import dev, make_dataset, upload
from tests.serve.conftest import save
from tests.web.test_market import Form, by_testid, cards, text

pytestmark = pytest.mark.node  # its module fixture opens a node: the node tier

TOKEN = 10**18
PER_CALL = TOKEN // 20  # 0.05 CAIRN a call
MODEL_PRICE = TOKEN // 10  # 0.1 CAIRN per 1,000 tokens for the model itself
FACTS = [
    ("Which city is the capital of France?", "Paris has been the French capital for centuries."),
    ("What do giant pandas eat?", "Pandas live almost entirely on bamboo shoots and leaves."),
    ("Where do emperor penguins breed?", "Emperor penguins breed on Antarctic sea ice in winter."),
    ("Why is the sky blue?", "Rayleigh scattering bends short blue wavelengths of sunlight most."),
    ("Who wrote Hamlet?", "William Shakespeare wrote the tragedy around the year 1600."),
    ("How do bees make honey?", "Worker bees evaporate flower nectar inside wax comb cells."),
]


@dataclass
class AppWorld:
    node: Node
    server: LiveServer
    folder: Path  # the tiny chat model's weights
    alice: LocalAccount  # owns the chat model
    bob: LocalAccount  # owns the dataset and the app; has no prepaid balance
    carol: LocalAccount  # pays for calls
    model: int
    dataset: int
    app: int


@pytest.fixture(scope="module")
def app_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppWorld]:
    root = tmp_path_factory.mktemp("app-pages")
    chat, tokenizer = tiny_causal_lm(seed=0, hidden_size=32, layers=2, heads=2)
    folder = save(chat, tokenizer, root / "chat")
    node = open_node(
        root / "node",
        chain="memory",
        dev=True,
        port=free_port(),
        fleet_port=free_port(),
        base_models=True,
    )
    server = LiveServer(node).start()
    try:
        alice, bob, carol = (dev(node, n) for n in ("alice", "bob", "carol"))
        model = node.catalog.register_folder(
            alice, folder, name="tiny chat", licence="Apache-2.0", family="causal-lm"
        ).asset_id
        node.economy.prices.set(alice.address, model, MODEL_PRICE)
        dataset = make_dataset(node, bob, review={"review_share": 0.0}).asset_id
        upload(node, bob, dataset, [{"prompt": q, "response": a} for q, a in FACTS])
        node.data.anchoring.anchor(dataset)
        app = node.apps.create(
            bob,
            name="Plain helper",
            spec=AppSpec(
                model=model, system_prompt="Be brief.", max_tokens=6, price_per_call=PER_CALL
            ),
        ).asset.asset_id
        node.chain.token.transfer(carol, node.economy.treasury, 10 * TOKEN)
        yield AppWorld(node, server, folder, alice, bob, carol, model, dataset, app)
    finally:
        server.stop()
        node.close()


@pytest.fixture
def node(app_world: AppWorld) -> Node:
    """The web fixtures' node is this module's node."""
    return app_world.node


@pytest.fixture
def live(app_world: AppWorld) -> LiveServer:
    return app_world.server


def form(**fields: str) -> dict[str, str]:
    """The builder's fields with these values."""
    return {
        "name": "",
        "description": "",
        "model": "",
        "system_prompt": "",
        "dataset": "",
        "top_k": "3",
        "temperature": "",
        "max_tokens": "",
        "price": "0",
        "message": "",
        "action": "try",
        **fields,
    }


def app_count(node: Node) -> int:
    return len(node.assets.list(kind="app", limit=1000))


def test_the_apps_list_links_the_builder_and_every_app(
    web: httpx.Client, app_world: AppWorld
) -> None:
    page = web.get("/apps")
    assert page.status_code == 200
    assert '<a href="/apps" aria-current="page">Apps</a>' in page.text
    assert by_testid(page.text, "build-app") == "Build an app"
    rows = [text(r) for r in re.findall(r'data-testid="app-row">(.*?)</tr>', page.text, re.S)]
    assert any(r.startswith("Plain helper tiny chat nothing 0.05") for r in rows), rows
    assert f'href="/apps/{app_world.app}"' in page.text
    # the app's asset page links to its app page
    asset = web.get(f"/assets/{app_world.app}")
    assert by_testid(asset.text, "app-link") == "Open the app"
    assert f'href="/apps/{app_world.app}"' in asset.text


def test_the_builder_needs_a_session_and_labels_every_field(
    web: httpx.Client, app_world: AppWorld, signed_in: Callable[[str], httpx.Client]
) -> None:
    reply = web.get("/apps/new")
    assert reply.status_code == 303 and reply.headers["location"] == "/signin?next=/apps/new"
    page = signed_in("bob").get("/apps/new")
    assert page.status_code == 200
    fields = Form()
    fields.feed(page.text)
    assert fields.controls[:10] == [
        "app-name",
        "app-description",
        "app-model",
        "app-prompt",
        "app-dataset",
        "app-top-k",
        "app-temperature",
        "app-max-tokens",
        "app-price",
        "app-message",
    ]
    assert set(fields.controls) <= fields.labels
    assert f'<option value="{app_world.model}">#{app_world.model} tiny chat' in page.text
    assert f'<option value="{app_world.dataset}">#{app_world.dataset} Polite replies · v1' in (
        page.text
    )
    assert '<option value="' + str(app_world.app) + '"' not in page.text  # apps wrap models only
    levels = [int(n) for n in re.findall(r"<h(\d)", page.text)]
    assert levels[0] == 1 and all(b <= a + 1 for a, b in pairwise(levels))


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("abc", "price per call 'abc' is not a number"),
        ("-1", "price per call '-1' must be zero or more with at most 18 decimals"),
        ("0.0000000000000000001", "price per call '0.0000000000000000001' must be zero or more"),
    ],
)
def test_an_invalid_price_comes_back_with_the_message_and_registers_nothing(
    app_world: AppWorld, signed_in: Callable[[str], httpx.Client], price: str, message: str
) -> None:
    web = signed_in("bob")
    before = app_count(app_world.node)
    reply = web.post(
        "/apps/new",
        data=form(name="Priced", model=str(app_world.model), price=price, action="publish"),
    )
    assert reply.status_code == 422
    assert message in text(by_testid(reply.text, "app-error"))
    assert 'value="Priced"' in reply.text and f'value="{html.escape(price)}"' in reply.text
    assert app_count(app_world.node) == before


def test_a_nameless_app_or_a_bad_setting_is_refused_before_anything_is_built(
    app_world: AppWorld, signed_in: Callable[[str], httpx.Client]
) -> None:
    web = signed_in("bob")
    before = app_count(app_world.node)
    refused = {
        "an app needs a name": form(model=str(app_world.model), action="publish"),
        "temperature must be 0..2; got 3.0": form(
            name="Hot", model=str(app_world.model), temperature="3", action="publish"
        ),
        "passages per question must be 1..20; got 50": form(
            name="Greedy",
            model=str(app_world.model),
            dataset=str(app_world.dataset),
            top_k="50",
            action="publish",
        ),
    }
    for message, data in refused.items():
        reply = web.post("/apps/new", data=data)
        assert reply.status_code == 422, message
        assert message in text(by_testid(reply.text, "app-error"))
    assert app_count(app_world.node) == before


def test_try_it_answers_with_the_retrieved_passages_at_the_models_price(
    app_world: AppWorld, signed_in: Callable[[str], httpx.Client]
) -> None:
    node, carol = app_world.node, app_world.carol.address
    web = signed_in("carol")
    before = app_count(node)
    receipts = len(node.economy.receipts.of_account(carol))
    reply = web.post(
        "/apps/new",
        data=form(
            model=str(app_world.model),
            system_prompt="Answer in one sentence.",
            dataset=str(app_world.dataset),
            top_k="2",
            max_tokens="5",
            temperature="0",
            price="0.05",
            message="What is the capital city of France?",
        ),
    )
    assert reply.status_code == 200, reply.text
    assert 'id="tried-title">The answer</h2>' in reply.text
    passages = re.findall(r"<li>(.*?)</li>", by_testid(reply.text, "passages"), re.S)
    assert len(passages) == 2
    assert "Which city is the capital of France?" in html.unescape(passages[0])
    # one call of the model itself, on carol's page key, at its per-token price
    [receipt, *_] = node.economy.receipts.of_account(carol)
    assert len(node.economy.receipts.of_account(carol)) == receipts + 1
    assert receipt.model == app_world.model and receipt.price_per_call == "0"
    assert 1 <= receipt.completion_tokens <= 5
    tokens = receipt.prompt_tokens + receipt.completion_tokens
    assert int(receipt.amount) == cost(MODEL_PRICE, tokens)
    assert receipt.prompt_tokens > 40  # the system prompt and both passages went in
    shown = text(by_testid(reply.text, "call-cost"))
    assert f"used {tokens} tokens" in shown and f"cost {units(receipt.amount, 18)}" in shown
    assert 'data-testid="try-answer"' in reply.text
    assert app_count(node) == before  # trying publishes nothing


def test_publishing_creates_the_app_and_its_page_shows_the_spec(
    app_world: AppWorld, signed_in: Callable[[str], httpx.Client]
) -> None:
    node = app_world.node
    web = signed_in("bob")
    reply = web.post(
        "/apps/new",
        data=form(
            name="Fact finder",
            description="Answers from a few facts.",
            model=str(app_world.model),
            system_prompt="Answer in one sentence.",
            dataset=str(app_world.dataset),
            top_k="2",
            temperature="0.5",
            max_tokens="8",
            price="0.25",
            action="publish",
        ),
    )
    assert reply.status_code == 303, reply.text
    app_id = int(reply.headers["location"].removeprefix("/apps/"))
    asset, spec = node.apps.spec(app_id)
    assert asset.owner == app_world.bob.address and asset.name == "Fact finder"
    assert spec.model == app_world.model and spec.system_prompt == "Answer in one sentence."
    assert spec.temperature == 0.5 and spec.max_tokens == 8 and spec.price_per_call == TOKEN // 4
    assert spec.retrieval is not None and spec.retrieval.dataset == app_world.dataset
    version = node.data.anchoring.versions(app_world.dataset)[0].version
    assert spec.retrieval.version == version and spec.retrieval.top_k == 2

    page = web.get(reply.headers["location"])
    assert "Published app “Fact finder”" in page.text
    assert by_testid(page.text, "app-name") == "Fact finder"
    assert text(by_testid(page.text, "app-model")) == f"#{app_world.model} tiny chat"
    assert f'href="/assets/{app_world.model}"' in page.text
    retrieval = text(by_testid(page.text, "app-retrieval"))
    assert retrieval.startswith("the 2 passages nearest each question from Polite replies v1")
    assert f'href="/assets/{app_world.dataset}"' in page.text
    assert text(by_testid(page.text, "app-prompt")) == "Answer in one sentence."
    assert text(by_testid(page.text, "app-defaults")).startswith("temperature 0.5,")
    assert text(by_testid(page.text, "app-price")) == "0.25 CAIRN"
    assert text(by_testid(page.text, "app-split")).startswith(
        "owner 50.0 %, data 25.0 % (the dataset version it retrieves from), compute 0.0 %"
    )
    snippet = html.unescape(by_testid(page.text, "code-snippet"))
    assert f'base_url="{app_world.server.url}/v1"' in snippet
    assert f'model="{app_id}"' in snippet and "from openai import OpenAI" in snippet


def test_a_chat_on_the_app_page_costs_exactly_its_price_per_call(
    app_world: AppWorld, signed_in: Callable[[str], httpx.Client]
) -> None:
    node, carol = app_world.node, app_world.carol.address
    web = signed_in("carol")
    page = web.get(f"/apps/{app_world.app}")
    assert by_testid(page.text, "chat-send") == "Send (0.05 CAIRN)"
    before = node.economy.balances.get(carol)

    reply = web.post(f"/apps/{app_world.app}/chat", data={"message": "Hello there"})
    assert reply.status_code == 200, reply.text
    after = node.economy.balances.get(carol)
    assert after.spent == before.spent + PER_CALL
    assert after.available == before.available - PER_CALL
    [receipt, *_] = node.economy.receipts.of_account(carol)
    assert receipt.model == app_world.app and receipt.amount == str(PER_CALL)
    assert receipt.price_per_call == str(PER_CALL) and receipt.completion_tokens <= 6
    shown = text(by_testid(reply.text, "call-cost"))
    assert "cost 0.05 CAIRN , the app's price per call" in shown
    assert text(by_testid(reply.text, "prepaid-balance")) == f"{units(after.available, 4)} prepaid"
    assert '<strong>You:</strong> <span class="text">Hello there</span>' in reply.text
    assert 'data-testid="chat-answer"><strong>App:</strong>' in reply.text

    # the conversation travels in the form: the next message is one more call
    again = web.post(
        f"/apps/{app_world.app}/chat",
        data={
            "message": "And again",
            "role": ["user", "assistant"],
            "content": ["Hello there", "hi"],
        },
    )
    assert again.status_code == 200
    assert node.economy.balances.get(carol).spent == before.spent + 2 * PER_CALL


def test_a_chat_without_prepaid_balance_is_refused_and_charges_nothing(
    app_world: AppWorld, signed_in: Callable[[str], httpx.Client]
) -> None:
    node, bob = app_world.node, app_world.bob.address
    web = signed_in("bob")
    before = node.economy.balances.get(bob)
    assert before.available < PER_CALL
    reply = web.post(f"/apps/{app_world.app}/chat", data={"message": "Hello"})
    assert reply.status_code == 402
    shown = text(by_testid(reply.text, "call-error"))
    assert shown.startswith("Not enough prepaid balance: nothing was served or charged.")
    assert node.economy.balances.get(bob) == before
    assert 'id="deposit"' in reply.text


def test_anyone_reads_an_app_page_but_signs_in_to_chat(
    web: httpx.Client, app_world: AppWorld
) -> None:
    page = web.get(f"/apps/{app_world.app}")
    assert page.status_code == 200
    assert "Sign in to chat with this app" in page.text
    assert 'action="/apps/' not in page.text  # no chat form
    assert text(by_testid(page.text, "app-retrieval")).startswith("none")
    assert text(by_testid(page.text, "app-defaults")) == (
        "temperature the model's, top-p the model's, answers up to 6 tokens; a call may set its own"
    )
    assert web.get("/apps/999").status_code == 404
    assert web.get(f"/apps/{app_world.dataset}").status_code == 404  # a dataset, not an app
    reply = web.post(f"/apps/{app_world.app}/chat", data={"message": "hi"})
    assert reply.status_code == 303 and reply.headers["location"].startswith("/signin")


def test_building_on_a_licensed_model_names_the_licence_to_buy(
    app_world: AppWorld, signed_in: Callable[[str], httpx.Client]
) -> None:
    node = app_world.node
    licensed = node.catalog.register_folder(
        app_world.alice,
        app_world.folder,
        name="licensed chat",
        licence="custom",
        family="causal-lm",
    ).asset_id
    offer = node.licences.offer(app_world.alice, licensed, price=TOKEN, terms="commercial-remix")
    web = signed_in("carol")
    before, spent = app_count(node), node.economy.balances.get(app_world.carol.address).spent
    for action in ("try", "publish"):
        reply = web.post(
            "/apps/new",
            data=form(name="Mine", model=str(licensed), message="hi", action=action),
        )
        assert reply.status_code == 403, action
        shown = text(by_testid(reply.text, "app-error"))
        assert shown.startswith("A licence is needed first: nothing was published or charged.")
        assert f"buy licence {offer.offer_id} (commercial-remix, 1 CAIRN)" in shown
        assert f'href="/assets/{licensed}#licences"' in reply.text
    assert app_count(node) == before
    assert node.economy.balances.get(app_world.carol.address).spent == spent


def test_an_apps_price_is_the_same_on_every_page_and_the_receipt_ledger_is_no_app(
    web: httpx.Client, app_world: AppWorld
) -> None:
    node, app = app_world.node, app_world.app
    ledger = node.economy.gateway_asset()  # the gateway's usage receipts: an asset of kind app
    price = "0.05 CAIRN per call"  # PER_CALL, what the gateway charges a call of the app
    listed = {a.asset.asset_id: a for a in node.apps.list()}
    assert app in listed and ledger not in listed
    served = {m.id: m for m in node.gateway.models()}  # /v1/models
    assert served[str(app)].price == CallPrice(PER_CALL, prices.PER_CALL)
    listed_card = card(served[str(app)]).model_dump()
    assert listed_card["price_per_call"] == str(PER_CALL) and "price_per_1k" not in listed_card
    assert str(ledger) not in served

    apps = web.get("/apps").text
    [row] = [
        r
        for r in re.findall(r'<tr data-testid="app-row">(.*?)</tr>', apps, re.S)
        if f'href="/apps/{app}"' in r
    ]
    assert price in text(row) and f'href="/assets/{ledger}"' not in apps
    market = cards(web.get("/").text)
    assert f"Price {price}" in market[app] and ledger not in market
    assert text(by_testid(web.get(f"/assets/{app}").text, "price")) == price
    playground = web.get("/playground").text
    [option] = re.findall(rf'<option value="{app}"[^>]*>(.*?)</option>', playground)
    assert option.endswith(f"· {price}")
    assert f"Try #{app}" in playground and f"Try #{ledger}" not in playground


def test_an_app_page_shows_cairns_version_in_its_footer(
    web: httpx.Client, app_world: AppWorld
) -> None:
    page = web.get(f"/apps/{app_world.app}").text
    [footer] = re.findall(r"<footer>(.*?)</footer>", page, re.S)
    assert text(footer).startswith(f"Cairn {cairn.__version__} · chain id")
