"""Apps on a real node: built with retrieval over a dataset version (the packaged MiniLM),
answered through the official `openai` client with the app's id as model, charged per call,
and their revenue settled by the app's lineage; the passages an app adds stay within its token
budget in its model's tokens, each naming its record, and bad budgets are refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import openai
import pytest
from eth_account.signers.local import LocalAccount

from cairn.api.client import NodeClient
from cairn.chain.anvil import free_port
from cairn.core.errors import InvalidInput
from cairn.core.licensing import LicenceRequired
from cairn.node import Node, open_node
from cairn.serve.app_spec import AppSpec, Retrieval
from cairn.serve.passage_budget import TRUNCATED, passages_block
from cairn.serve.retrieval import passage_text
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


def test_an_apps_passages_stay_within_its_token_budget_and_name_their_records(
    world: AppWorld,
) -> None:
    node = world.node
    key = node.economy.keys.authenticate(world.secret)
    index = node.apps.index(world.dataset, builder=world.bob.address)
    served = node.gateway.resolve(str(world.model))

    def count(text: str) -> int:  # the chat model's own tokenizer (a character per token)
        return served.backend.count_tokens(served.model, text)

    def ask(budget: int | None) -> tuple[tuple[str, ...], list[tuple[str | None, bool]], int]:
        retrieval = Retrieval(world.dataset, world.version, index.index, 3, budget)
        tried = node.apps.trial(
            key,
            AppSpec(model=world.model, retrieval=retrieval),
            "Why is the sky blue?",
            max_tokens=2,
        )
        assert tried.passages == tuple(p.text for p in tried.sources)
        used = [(p.record, p.truncated) for p in tried.sources]
        return tried.passages, used, tried.receipt.prompt_tokens

    small, small_used, small_tokens = ask(100)
    assert count(passages_block(small)) <= 100
    [(record, truncated)] = small_used  # the best passage, cut to fit: it still names its record
    assert truncated and small[0].endswith(TRUNCATED)
    by_hash = {
        r["_record_hash"]: passage_text(r)
        for r in node.data.anchoring.records(world.dataset, world.version)
    }
    assert "Rayleigh scattering" in by_hash[str(record)]
    assert by_hash[str(record)].startswith(small[0].removesuffix(TRUNCATED))

    large, large_used, large_tokens = ask(250)
    assert count(passages_block(large)) <= 250 < count(passages_block(list(by_hash.values())))
    assert large_used[0] == (record, False) and len(large_used) > 1  # whole now, and more
    assert all(r in by_hash for r, _ in large_used)
    assert small_tokens < large_tokens <= small_tokens + 250

    unset, _, _ = ask(None)  # the default, 256 tokens: a quarter of the model's 1,024
    assert 250 < count(passages_block(unset)) <= 256
    default = Retrieval(world.dataset, world.version, index.index)
    assert (default.context_budget(8192), default.context_budget(512)) == (256, 128)


def test_a_bad_token_budget_is_refused_and_nothing_is_registered(world: AppWorld) -> None:
    node = world.node
    index = node.apps.index(world.dataset, builder=world.bob.address)

    def spec(budget: Any) -> AppSpec:
        retrieval = Retrieval(world.dataset, world.version, index.index, 3, budget)
        return AppSpec(model=world.model, retrieval=retrieval)

    for bad in (0, 31, True, 64.0, "64"):
        with pytest.raises(
            InvalidInput,
            match=f"max_context_tokens must be a whole number of tokens, at least 32, or unset "
            f"for 256; got {bad!r}",
        ):
            spec(bad)
    before = node.chain.registry.total_assets()
    with pytest.raises(
        InvalidInput,
        match=f"max_context_tokens 300 is over 1/4 of model {world.model}'s context of 1024 "
        "tokens: at most 256, to leave room for the chat and the answer",
    ):
        node.apps.create(world.bob, name="Greedy", spec=spec(300))
    assert node.chain.registry.total_assets() == before

    stored = spec(200).to_extra()
    assert stored["retrieval"] is not None and stored["retrieval"]["max_context_tokens"] == 200
    assert AppSpec.from_extra(stored, 1) == spec(200)
    unset = spec(None).to_extra()["retrieval"]
    assert unset is not None and "max_context_tokens" not in unset  # as apps stored before
    broken = {**stored, "retrieval": {**stored["retrieval"], "max_context_tokens": "lots"}}
    with pytest.raises(InvalidInput, match="asset 9 is not a usable Cairn app"):
        AppSpec.from_extra(broken, 9)
