"""Apps on a real node: built with retrieval over a dataset version (the packaged MiniLM),
answered through the official `openai` client with the app's id as model, charged per call,
and their revenue settled by the app's lineage."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import openai
import pytest
from eth_account.signers.local import LocalAccount

from cairn.api.client import NodeClient
from cairn.chain.anvil import free_port
from cairn.core.errors import InvalidInput
from cairn.core.licensing import LicenceRequired
from cairn.node import Node, open_node
from cairn.serve.app_spec import AppSpec, Retrieval
from tests.conftest import LiveServer
from tests.data.conftest import dev, make_dataset, upload

pytestmark = pytest.mark.node  # its module fixture opens a node: the node tier

TOKEN = 10**18
PER_CALL = TOKEN // 20  # 0.05 CAIRN
FACTS = [
    ("Which city is the capital of France?", "Paris has been the French capital for centuries."),
    ("What do giant pandas eat?", "Pandas live almost entirely on bamboo shoots and leaves."),
    (
        "How tall can a giraffe grow?",
        "Giraffes reach nearly six metres thanks to their long necks.",
    ),
    ("Where do emperor penguins breed?", "Emperor penguins breed on Antarctic sea ice in winter."),
    ("What powers a steam locomotive?", "Coal burns in a firebox and boils water into steam."),
    ("Why is the sky blue?", "Rayleigh scattering bends short blue wavelengths of sunlight most."),
    ("Who wrote Hamlet?", "William Shakespeare wrote the tragedy around the year 1600."),
    ("What is sourdough starter?", "A fermented culture of flour, water, wild yeast and bacteria."),
    ("How do bees make honey?", "Worker bees evaporate flower nectar inside wax comb cells."),
    (
        "What is the boiling point of water?",
        "At sea level pure water boils at 100 degrees Celsius.",
    ),
]


@dataclass
class AppWorld:
    node: Node
    url: str
    alice: LocalAccount  # owns the chat model
    bob: LocalAccount  # owns the dataset and the app
    carol: LocalAccount  # pays for calls
    secret: str
    model: int
    encoder: int
    dataset: int
    version: str
    app: int

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.secret, max_retries=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> Iterator[AppWorld]:
    root = tmp_path_factory.mktemp("apps")
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
            alice, folders["chat"], name="tiny chat", licence="Apache-2.0", family="causal-lm"
        ).asset_id
        encoder = node.catalog.register_folder(
            alice, folders["encoder"], name="tiny encoder", licence="Apache-2.0", family="encoder"
        ).asset_id
        dataset = make_dataset(node, bob, review={"review_share": 0.0}).asset_id
        upload(node, bob, dataset, [{"prompt": q, "response": a} for q, a in FACTS[:6]])
        upload(node, carol, dataset, [{"prompt": q, "response": a} for q, a in FACTS[6:]])
        node.data.anchoring.anchor(dataset)
        version = node.data.anchoring.versions(dataset)[0].version
        index = node.apps.index(dataset, builder=bob.address)
        made = node.apps.create(
            bob,
            name="Fact finder",
            spec=AppSpec(
                model=model,
                system_prompt="Answer in one sentence.",
                max_tokens=8,
                temperature=0.0,
                retrieval=Retrieval(dataset, version, index.index, top_k=2),
                price_per_call=PER_CALL,
            ),
        )
        node.chain.token.transfer(carol, node.economy.treasury, 10 * TOKEN)
        _, secret = node.economy.keys.create(carol.address, "tests")
        yield AppWorld(
            node,
            server.url,
            alice,
            bob,
            carol,
            secret,
            model,
            encoder,
            dataset,
            version,
            made.asset.asset_id,
        )
    finally:
        server.stop()
        node.close()


def test_the_index_holds_every_record_of_the_version_and_is_built_once(world: AppWorld) -> None:
    index = world.node.apps.index(world.dataset, builder=world.bob.address)
    assert index.version == world.version and index.passages == len(FACTS)
    again = world.node.apps.index(world.dataset, world.version, builder=world.bob.address)
    assert again == index


def test_retrieval_puts_the_right_passages_before_the_question(world: AppWorld) -> None:
    _, spec = world.node.apps.spec(world.app)
    asked = [{"role": "user", "content": "What is the capital city of France?"}]
    messages = world.node.gateway.app_messages(spec, asked)
    assert messages[0]["role"] == "system" and messages[-1] == asked[0]
    system = messages[0]["content"]
    assert system.startswith("Answer in one sentence.")
    assert "[1] prompt: Which city is the capital of France?" in system
    assert system.count("\n[") == 2  # top_k passages


def test_an_app_answers_the_openai_client_and_costs_its_price_per_call(world: AppWorld) -> None:
    # the serving family's real-server test (the OpenAI-compatible /v1 and the apps): the
    # official `openai` client over TCP to uvicorn, the module's one server, which the other
    # tests here share (started once, it costs them nothing in process would save)
    node, client = world.node, world.client()
    spent = node.economy.balances.get(world.carol.address).spent
    question = [{"role": "user", "content": "Why is the sky blue?"}]
    answer = client.chat.completions.create(model=str(world.app), messages=question)
    assert answer.model == str(world.app) and answer.usage is not None
    assert answer.usage.completion_tokens <= 8  # the app's default max_tokens
    assert node.economy.balances.get(world.carol.address).spent == spent + PER_CALL
    direct = client.chat.completions.create(model=str(world.model), messages=question, max_tokens=8)
    assert direct.usage is not None
    # the app's prompt carries its system prompt and two passages
    assert answer.usage.prompt_tokens > direct.usage.prompt_tokens + 20

    streamed = client.chat.completions.create(model=str(world.app), messages=question, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) is not None
    assert node.economy.balances.get(world.carol.address).spent == spent + 2 * PER_CALL

    listed = {m.id: m for m in client.models.list().data}
    assert listed[str(world.app)].model_extra["price_per_call"] == str(PER_CALL)
    with pytest.raises(openai.BadRequestError, match="answers chats"):
        client.completions.create(model=str(world.app), prompt="hi")


def test_app_revenue_is_split_by_the_apps_lineage(world: AppWorld) -> None:
    node, economy = world.node, world.node.economy
    economy.settle()  # earlier calls, of other tests
    client = world.client()
    for _ in range(3):
        client.chat.completions.create(
            model=str(world.app), messages=[{"role": "user", "content": "What do pandas eat?"}]
        )
    epoch = economy.settle()
    assert epoch is not None and int(epoch.revenue) == 3 * PER_CALL
    revenue = Fraction(3 * PER_CALL)
    app_split = node.assets.get(world.app).split
    dataset_split = node.assets.get(world.dataset).split
    model_split = node.assets.get(world.model).split
    table = node.data.anchoring.attribution(world.dataset)
    owed: dict[str, Fraction] = {}

    def add(account: str, amount: Fraction) -> None:
        owed[account] = owed.get(account, Fraction(0)) + amount

    add(world.bob.address, revenue * app_split["owner"] / 10_000)
    data = revenue * app_split["data"] / 10_000
    add(world.bob.address, data * dataset_split["owner"] / 10_000)
    for account, weight in table.items():
        add(account, data * dataset_split["data"] / 10_000 * Fraction(weight, 10**18))
    upstream = revenue * app_split["upstream"] / 10_000
    assert sum(model_split.values()) == 10_000  # no lineage: every role goes to its owner
    add(world.alice.address, upstream)
    got = {}
    for account, exact in owed.items():
        rows = [e for e in economy.epochs.earnings(account).epochs if e.epoch_id == epoch.id]
        got[account] = sum(int(r.amount) for r in rows)
        assert abs(got[account] - exact) <= 3, account
    assert sum(got.values()) == 3 * PER_CALL
    for account in got:
        assert economy.epochs.claim(account).claims


def test_bad_apps_are_refused_and_nothing_is_registered(world: AppWorld) -> None:
    node = world.node
    before = node.chain.registry.total_assets()
    with pytest.raises(InvalidInput, match="does not chat"):
        node.apps.create(world.bob, name="x", spec=AppSpec(model=world.encoder))
    with pytest.raises(InvalidInput, match=r"top_k must be 1\.\.20"):
        AppSpec(model=world.model, retrieval=Retrieval(world.dataset, world.version, "x", 50))
    offer = node.licences.offer(world.bob, world.dataset, price=TOKEN, terms="commercial")
    try:
        index = node.apps.index(world.dataset, builder=world.bob.address)
        spec = AppSpec(
            model=world.model, retrieval=Retrieval(world.dataset, world.version, index.index)
        )
        with pytest.raises(LicenceRequired, match="no licence on offer covers this"):
            node.apps.create(world.carol, name="copycat", spec=spec)
    finally:
        node.licences.set_active(world.bob, offer.offer_id, False)
        node.licences.offer(world.bob, world.dataset, price=0, terms="open")
    assert node.chain.registry.total_assets() == before


def test_a_wallet_publishes_an_app_through_the_api(world: AppWorld) -> None:
    with NodeClient(world.url) as api:
        api.sign_in(world.carol)
        checked = api.request(
            "POST",
            "/apps/check",
            json={
                "model": world.model,
                "dataset": world.dataset,
                "top_k": 1,
                "price_per_call": "7",
            },
        )
        assert checked["parents"] == [world.model, world.dataset]
        made = api.register_asset(
            world.carol,
            kind="app",
            name="Wallet app",
            licence="proprietary",
            parents=checked["parents"],
            extra={"app": checked["app"]},
        )
        shown = api.request("GET", f"/apps/{made['asset_id']}")
        assert shown["price_per_call"] == "7" and shown["retrieval"]["top_k"] == 1
        assert made["asset_id"] in [a["asset_id"] for a in api.request("GET", "/apps")]
