"""`cairn demo`: Cairn's whole loop, told on a fresh node with real components.

Accounts are created; Alice opens a dataset of arithmetic questions with a paid task (a
bounty per accepted record and useful review); Bob, Carol and Dave contribute (a duplicate and
malformed records are turned away) and review each other's records, and are paid by the task
as soon as the batch is anchored; Erin and Frank run provider workers (Flower SuperNodes) that
fine-tune the packaged SmolLM2-135M-Instruct with LoRA for Alice; Alice prices the model;
Grace deposits tokens, makes an API key and pays for chat completions through the
OpenAI-compatible gateway; Alice publishes an app over the model with retrieval over the
dataset, which Grace calls, and sells a licence to download the model, which Dave buys; the
epoch settles the calls, the app and the licence by lineage, and everyone claims. Each step
returns rows a face prints as a table.

Over 400 lines because the story reads top to bottom in one place, one method per chapter, as a
newcomer follows it; each chapter only calls the domains' façades.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from cairn.api.client import NodeClient
from cairn.api.server import BackgroundServer
from cairn.chain.anvil import free_port
from cairn.core.amounts import TOKEN, units
from cairn.core.data_policy import DatasetSpec
from cairn.core.errors import Unavailable
from cairn.core.recipe import load_recipe
from cairn.data.contributions import UploadResult
from cairn.data.signing import records_root, sign_contribution
from cairn.node import Node, open_node
from cairn.provider.worker import Worker
from cairn.store.local import LocalBlobStore

MARKER = "demo.json"  # in a node's data folder: what seeding the demo community did
PEOPLE = {
    "alice": "dataset owner and model builder",
    "bob": "contributor and reviewer",
    "carol": "contributor and reviewer",
    "dave": "contributor and reviewer",
    "erin": "compute provider",
    "frank": "compute provider",
    "grace": "API user",
}
PRICE_PER_1K = 20 * TOKEN  # what Alice charges per 1,000 tokens
DEPOSIT = 40 * TOKEN
BUDGET = 30 * TOKEN  # the training job's budget, paid to the providers by work
QUESTIONS = ("What is 17 plus 25?", "What is 9 times 8?", "What is 100 minus 37?")
BOUNTY = 30 * TOKEN  # alice's paid task: escrowed before anyone contributes
PER_RECORD = TOKEN // 5  # 0.2 CAIRN per accepted record
PER_REVIEW = TOKEN // 10  # 0.1 CAIRN per useful review
APP_PRICE = TOKEN  # per call of alice's app
LICENCE_PRICE = 5 * TOKEN  # a commercial licence to download alice's model
# A step of LoRA on SmolLM2-135M costs about 5 s of one core, and the node's verification
# replays each provider's round once more after the last: three steps show the loop without
# making a newcomer wait for it.
INNER_STEPS = 3

RECIPE = """
name: arithmetic tutor
description: SmolLM2 taught to answer arithmetic questions in one sentence, by the demo community
method: lora
base_model: SmolLM2-135M-Instruct
datasets:
  - dataset: {dataset}
hyperparameters:
  learning_rate: 0.001
  batch_size: 4
  max_length: 64
  lora_r: 8
  target_modules: [q_proj, v_proj]
evaluation:
  split: 0.1
distributed:
  workers: 2
  min_workers: 2
  rounds: {rounds}
  inner_steps: {inner_steps}
  round_timeout_s: 600
budget:
  max_tokens: "{budget}"
  max_seconds: 1800
"""


@dataclass
class Step:
    """One part of the story: a title, a sentence, and a table."""

    title: str
    text: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Demo:
    """Everything the demo did, for tables or JSON."""

    steps: list[Step] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def _question(rng: random.Random) -> dict[str, str]:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    op, value = rng.choice([("plus", a + b), ("minus", a - b), ("times", a * b)])
    return {"prompt": f"What is {a} {op} {b}?", "response": f"{a} {op} {b} is {value}."}


PROVIDERS = ("erin", "frank")


def start_providers(node: Node, data_dir: Path) -> list[Worker]:
    """Erin's and Frank's provider workers (Flower SuperNodes), staked and connected."""
    workers = []
    try:
        for name in PROVIDERS:
            account = node.signers.get(node.keystore.find_by_label(name).address)
            worker = Worker(
                NodeClient(node.config.base_url),
                account,
                data_dir / "workers" / name,
                blob_source=node.store.root if isinstance(node.store, LocalBlobStore) else None,
            )
            worker.ensure_staked()
            worker.start()
            workers.append(worker)
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
    return workers


def seeded(demo: Demo, seconds: float) -> dict[str, Any]:
    """What `demo.json` says of a folder the story was told on."""
    facts = dict(demo.facts)
    facts.pop("api_key", None)  # a secret: shown once by `cairn demo`, never stored in clear
    return {"status": "seeded", "seconds": round(seconds, 1), "facts": facts}


def record_seeding(data_dir: Path, document: dict[str, Any]) -> None:
    """Write `demo.json` in `data_dir` (atomically: a crash leaves the old one or the new)."""
    marker = data_dir / MARKER
    temporary = marker.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str))
    temporary.replace(marker)


def _units(amount: int) -> str:
    return units(amount, places=4, grouped=True)  # the story's tables: CAIRN to 4 decimals


class Story:
    """Runs the demo on a node in `data_dir`, reporting progress through `say`."""

    def __init__(
        self,
        data_dir: Path,
        say: Callable[[str], None],
        *,
        rounds: int = 1,
        inner_steps: int = INNER_STEPS,
    ) -> None:
        self.data_dir = data_dir
        self.say = say
        self.rounds = rounds
        self.inner_steps = inner_steps
        self.demo = Demo()
        self.rng = random.Random(2024)
        self.nonce = 1

    def run(self) -> Demo:
        """Tell the whole story; the node is closed at the end (its state stays on disk)."""
        self.say("starting a node on a fresh anvil chain")
        port = free_port()
        node = open_node(
            self.data_dir,
            chain="anvil",
            dev=True,
            dev_accounts=tuple(PEOPLE),
            base_models=True,
            port=port,
            node_url=f"http://127.0.0.1:{port}",
            fleet_port=free_port(),
            epoch_seconds=0.0,
        )
        server = None
        workers: list[Worker] = []
        try:
            node.start_compute()
            server = BackgroundServer(node).start()
            started = time.monotonic()
            self.tell(node, workers)
            # the folder is a seeded demo node: `cairn node start --demo` on it tells nothing again
            record_seeding(self.data_dir, seeded(self.demo, time.monotonic() - started))
        finally:
            for worker in workers:
                worker.stop()
            if server is not None:
                server.stop()
            node.close()
        return self.demo

    def tell(self, node: Node, workers: list[Worker]) -> Demo:
        """The story on `node`, whose API answers at its base URL and whose accounts include
        the seven people; the provider workers started are appended to `workers`."""
        people = {n: node.signers.get(node.keystore.find_by_label(n).address) for n in PEOPLE}
        node.superlink.serverapps.prepare()  # the job's imports, while the community is set up
        self.start = {n: node.chain.token.balance_of(a.address) for n, a in people.items()}
        self._accounts(node, people)
        dataset = self._dataset(node, people)
        model = self._train(node, people, dataset, workers)
        self._use(node, people, model)
        self._market(node, people, dataset, model)
        self._settle(node, people)
        return self.demo

    def _step(self, title: str, text: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.demo.steps.append(Step(title, text, columns, rows))

    def _accounts(self, node: Node, people: dict[str, LocalAccount]) -> None:
        rows = [
            [name, a.address, PEOPLE[name], _units(node.chain.token.balance_of(a.address))]
            for name, a in people.items()
        ]
        self._step(
            "Accounts",
            "Seven dev accounts, each given ether for gas and 1,000 CAIRN.",
            ["name", "address", "role", "CAIRN"],
            rows,
        )
        self.demo.facts["accounts"] = {n: a.address for n, a in people.items()}

    def _upload(
        self, node: Node, who: LocalAccount, dataset: int, records: list[Any]
    ) -> UploadResult:
        lines = [json.dumps(r) if not isinstance(r, str) else r for r in records]
        typed = node.data.contributions.typed_data(dataset, records_root(lines), self.nonce)
        signature = sign_contribution(who, typed)
        self.nonce += 1
        return node.data.contributions.contribute(
            dataset, contributor=who.address, nonce=self.nonce - 1, signature=signature, lines=lines
        )

    def _dataset(self, node: Node, people: dict[str, LocalAccount]) -> int:
        self.say("alice opens a dataset; bob, carol and dave contribute and review")
        spec = DatasetSpec.model_validate(
            {
                "task": {"type": "instruction"},
                "review": {
                    "review_share": 0.25,
                    "votes_per_record": 2,
                    "min_votes": 2,
                    "accept_threshold": 0.8,
                    "gold_share": 0.0,
                },
            }
        )
        dataset = node.data.datasets.create(
            people["alice"],
            name="Arithmetic questions",
            licence="CC-BY-4.0",
            spec=spec,
            description="Arithmetic questions answered in one sentence.",
        ).asset_id
        bounty = node.economy.bounties.open(
            people["alice"], dataset, budget=BOUNTY, per_record=PER_RECORD, per_review=PER_REVIEW
        )
        rows = []
        counts = {"bob": 48, "carol": 32, "dave": 16}
        for name, n in counts.items():
            records: list[Any] = [_question(self.rng) for _ in range(n)]
            if name == "carol":  # one of bob's records again, and two broken ones
                records += [
                    self.demo.facts["bob_first"],
                    {"prompt": "What is 2 plus 2?"},
                    "not json at all",
                ]
            result = self._upload(node, people[name], dataset, records)
            if name == "bob":
                self.demo.facts["bob_first"] = records[0]
            for verdict in result.verdicts:
                if not verdict.ok:
                    rows.append([name, f"line {verdict.line}", "rejected", verdict.reason])
            rows.append(
                [
                    name,
                    f"{len(records)} sent",
                    f"{result.accepted} accepted",
                    f"{sum(v.status == 'review' for v in result.verdicts)} to review",
                ]
            )
        reviews = 0
        for name in ("bob", "carol", "dave"):
            who = people[name].address
            while (task := node.data.reviews.next_task(dataset, who)) is not None:
                node.data.reviews.submit(task.task_id, who, "approve")
                reviews += 1
        # The paid task pays the batch at once (here or in the economy's tick, if it came first).
        anchored = node.data.anchoring.anchor_by(people["alice"].address, dataset)
        batch, [paid] = anchored.batch, anchored.bounties_paid
        bounty_pay: dict[str, int] = {}
        for name in ("bob", "carol", "dave"):
            for claim in node.economy.epochs.claim(people[name].address).claims:
                bounty_pay[name] = bounty_pay.get(name, 0) + int(claim.amount)
            rows.append(
                [name, "paid task", f"{_units(bounty_pay.get(name, 0))} CAIRN", "claimed at once"]
            )
        self.demo.facts["bounty"] = {
            "id": bounty.bounty_id,
            "records": paid.records,
            "reviews": paid.reviews,
            "paid": {n: str(v) for n, v in bounty_pay.items()},
        }
        version = node.data.anchoring.versions(dataset)[0]
        table = node.data.anchoring.attribution(dataset)
        rows += [
            [name, "attribution", f"{table.get(a.address, 0) / 10**16:.2f} %", "of the data share"]
            for name, a in people.items()
            if a.address in table
        ]
        self._step(
            "Dataset",
            f"Dataset {dataset}: {version.records} records anchored "
            f"(batch root {batch.root if batch else '-'}), {reviews} reviews. Alice's paid "
            f"task ({_units(PER_RECORD)} CAIRN a record, {_units(PER_REVIEW)} a useful review) "
            f"paid {paid.records} records and {paid.reviews} reviews in one transaction.",
            ["who", "what", "verdict", "reason"],
            rows,
        )
        self.demo.facts.pop("bob_first", None)
        self.demo.facts["dataset"] = {
            "id": dataset,
            "version": version.version,
            "records": version.records,
            "reviews": reviews,
        }
        return dataset

    def _train(
        self, node: Node, people: dict[str, LocalAccount], dataset: int, workers: list[Worker]
    ) -> int:
        self.say("erin and frank start provider workers; alice trains a model on the dataset")
        workers += start_providers(node, self.data_dir)
        text = RECIPE.format(
            dataset=dataset, rounds=self.rounds, inner_steps=self.inner_steps, budget=BUDGET
        )
        job = node.jobs.create(people["alice"].address, load_recipe(text))
        job_id = job.job_id
        last = -1
        while job.status not in ("finished", "failed", "cancelled"):
            time.sleep(1.0)
            job = node.jobs.get(job_id)
            if job.round != last:
                last = job.round
                self.say(f"training: {job.round} of {job.rounds} DiLoCo rounds done")
        if job.status != "finished" or job.model_asset is None:
            raise Unavailable(f"the demo's training job {job.status}: {job.error}")
        rows = [
            [n, a, _units(int(job.payouts.get(a, 0)))]
            for n, a in ((n, people[n].address) for n in ("erin", "frank"))
        ]
        metrics = job.metrics
        self._step(
            "Training",
            f"Job {job_id[:12]}: LoRA on SmolLM2-135M-Instruct, {job.rounds} DiLoCo round(s) "
            f"on 2 SuperNodes; held-out loss {metrics.get('loss', float('nan')):.3f}; "
            f"model asset {job.model_asset}.",
            ["provider", "address", "paid from the job budget (CAIRN)"],
            rows,
        )
        self.demo.facts["job"] = {"id": job_id, "metrics": metrics, "payouts": job.payouts}
        self.demo.facts["model"] = str(job.model_asset)
        return job.model_asset

    def _use(self, node: Node, people: dict[str, LocalAccount], model: int) -> None:
        self.say("grace deposits tokens, makes an API key and asks the model")
        alice, grace = people["alice"], people["grace"]
        node.economy.prices.set(alice.address, model, PRICE_PER_1K)
        node.economy.balances.deposit(grace, DEPOSIT)  # into the vault, not to the node
        key, secret = node.economy.keys.create(grace.address, "demo")
        rows = []
        with httpx.Client(
            base_url=node.config.base_url + "/v1",
            timeout=300.0,
            headers={"Authorization": f"Bearer {secret}"},
        ) as http:
            for question in QUESTIONS:
                answer = http.post(
                    "/chat/completions",
                    json={
                        "model": str(model),
                        "messages": [{"role": "user", "content": question}],
                        "max_tokens": 24,
                        "temperature": 0,
                        "seed": 1,
                    },
                )
                answer.raise_for_status()
                body = answer.json()
                rows.append(
                    [
                        question,
                        body["choices"][0]["message"]["content"].strip(),
                        body["usage"]["total_tokens"],
                        _units(int(body["cairn"]["amount"])),
                    ]
                )
        balance = node.economy.balances.get(grace.address)
        self._step(
            "Usage",
            f"Grace deposited {_units(DEPOSIT)} CAIRN and paid {_units(balance.spent)} for "
            f"{len(rows)} calls at {_units(PRICE_PER_1K)} CAIRN per 1,000 tokens.",
            ["question", "answer", "tokens", "CAIRN"],
            rows,
        )
        self.demo.facts["api_key"] = secret
        self.demo.facts["api_key_id"] = key.key_id
        self.demo.facts["usage"] = {
            "spent": str(balance.spent),
            "available": str(balance.available),
        }

    def _market(
        self, node: Node, people: dict[str, LocalAccount], dataset: int, model: int
    ) -> None:
        self.say("alice publishes an app and sells licences to her model; grace and dave buy")
        from cairn.serve.app_spec import AppSpec, Retrieval

        alice, dave, grace = people["alice"], people["dave"], people["grace"]
        index = node.apps.index(dataset, builder=alice.address)
        app = node.apps.create(
            alice,
            name="Arithmetic tutor with worked examples",
            description="Answers arithmetic questions, shown similar questions from the dataset.",
            spec=AppSpec(
                model=model,
                system_prompt="Answer the arithmetic question in one sentence.",
                max_tokens=24,
                temperature=0.0,
                retrieval=Retrieval(dataset, index.version, index.index, top_k=2),
                price_per_call=APP_PRICE,
            ),
        )
        secret = self.demo.facts["api_key"]
        with httpx.Client(
            base_url=node.config.base_url + "/v1",
            timeout=300.0,
            headers={"Authorization": f"Bearer {secret}"},
        ) as http:
            answer = http.post(
                "/chat/completions",
                json={
                    "model": str(app.asset.asset_id),
                    "messages": [{"role": "user", "content": QUESTIONS[0]}],
                    "seed": 1,
                },
            )
            answer.raise_for_status()
        body = answer.json()
        offer = node.licences.offer(
            alice, model, price=LICENCE_PRICE, terms="commercial", max_copies=100
        )
        bought = node.licences.buy(dave, offer.offer_id)
        rows = [
            [
                "app",
                f"{app.asset.name} (asset {app.asset.asset_id})",
                f"grace asked {QUESTIONS[0]!r}: {body['choices'][0]['message']['content'].strip()}",
                _units(int(body["cairn"]["amount"])),
            ],
            [
                "licence",
                f"offer {offer.offer_id}: commercial use of model {model}, 100 copies",
                "dave bought one: he may now download the model",
                _units(int(bought.paid)),
            ],
        ]
        self._step(
            "Market",
            f"Alice's app wraps her model with retrieval over {index.passages} records at "
            f"{_units(APP_PRICE)} CAIRN a call; her model's download licence costs "
            f"{_units(LICENCE_PRICE)} CAIRN. Both earn by lineage, like the model's own calls.",
            ["what", "which", "done", "CAIRN"],
            rows,
        )
        self.demo.facts["app"] = app.asset.asset_id
        self.demo.facts["licence"] = offer.offer_id
        balance = node.economy.balances.get(grace.address)
        self.demo.facts["usage"] = {
            "spent": str(balance.spent),
            "available": str(balance.available),
        }

    def _settle(self, node: Node, people: dict[str, LocalAccount]) -> None:
        self.say("settling the epoch and claiming")
        epoch = node.economy.settle()
        assert epoch is not None
        names: dict[str, str] = {a.address: n for n, a in people.items()}
        names[node.operator.address] = "operator (base model owner)"
        rows = []
        for account in sorted(set(names)):
            for row in node.economy.epochs.earnings(account).epochs:
                if row.epoch_id != epoch.id:  # the paid task's epochs were shown before
                    continue
                for line in row.lines:
                    rows.append(
                        [
                            names[account],
                            line.role,
                            line.via_name or line.via,
                            _units(int(line.amount)),
                        ]
                    )
        self._step(
            "Settlement",
            f"Epoch {epoch.epoch}: revenue {_units(int(epoch.revenue))} CAIRN split by "
            f"lineage; root {epoch.root}.",
            ["who", "role", "through", "CAIRN"],
            rows,
        )
        claimed: dict[str, int] = {}
        for account in names:
            for claim in node.economy.epochs.claim(account).claims:
                claimed[account] = claimed.get(account, 0) + int(claim.amount)
        final = []
        job_pay = {a: int(v) for a, v in self.demo.facts["job"]["payouts"].items()}
        usage = self.demo.facts["usage"]
        bounty_pay = {n: int(v) for n, v in self.demo.facts["bounty"]["paid"].items()}
        for name, a in people.items():
            end = node.chain.token.balance_of(a.address)
            earned = claimed.get(a.address, 0)
            why = {
                "alice": f"paid the {_units(BUDGET)} training budget and escrowed "
                f"{_units(BOUNTY)} for the paid task; earned {_units(earned)} as owner of the "
                "dataset, the model and the app",
                "grace": f"deposited {_units(DEPOSIT)} for API calls: spent "
                f"{_units(int(usage['spent']))}, {_units(int(usage['available']))} left to spend",
            }.get(
                name,
                f"{_units(job_pay.get(a.address, 0))} from the job budget for training, "
                f"{_units(earned)} of the revenue for compute"
                if a.address in job_pay
                else f"{_units(bounty_pay.get(name, 0))} from the paid task, "
                f"{_units(earned)} of the revenue for records and reviews"
                + (f"; paid {_units(LICENCE_PRICE)} for a model licence" if name == "dave" else ""),
            )
            final.append(
                [name, _units(self.start[name]), _units(end), _units(end - self.start[name]), why]
            )
        self._step(
            "Balances",
            "Token balances before and after; every payment went to its account on chain.",
            ["name", "before", "after", "change", "why"],
            final,
        )
        self.demo.facts["epoch"] = {
            "epoch": epoch.epoch,
            "revenue": epoch.revenue,
            "root": epoch.root,
            "tree_cid": epoch.tree_cid,
        }
        self.demo.facts["claims"] = {names[a]: str(v) for a, v in claimed.items()}
        self.demo.facts["balances"] = {r[0]: r[2] for r in final}
