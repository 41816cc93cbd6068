"""Following and finishing a job survive a crash at any step, and each effect happens once.

A job's folder is written here as its ServerApp writes it (two providers, their signed work
reports, two rounds with checkpoints, the trained model, the end); no Flower run is started. A
crash is an exception nothing in the node catches, raised right after a step's effect reached the
chain, the store or the index and before the node recorded it; then the node ticks or resumes
again, on the same chain, store and index.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cairn.chain.escrow import Enlistment, JobState
from cairn.compute import finish
from cairn.compute.checkpoints import save_checkpoint
from cairn.compute.follow import Follower
from cairn.compute.job import JobLog
from cairn.compute.jobdir import JobDir
from cairn.compute.reports import WorkReport, published_report, report_from_json, sign_report
from cairn.core.diloco import OuterState
from cairn.core.errors import ChainError
from cairn.core.recipe import load_recipe
from cairn.node import Node
from cairn.train.adapter_folder import AdapterBase
from cairn.train.adapters import LoraSettings, add_lora
from cairn.train.models import save_result
from tests.compute.conftest import TOKEN, anchored_dataset, register_tiny, save_tiny_model
from tests.data.conftest import dev
from tests.signatures import published_signer

BUDGET = 100 * TOKEN
PROVIDERS = ("bob", "carol")
SAMPLES = {"bob": (20, 30), "carol": (10, 25)}  # samples trained in rounds 1 and 2
# work: bob 20 + 30 = 50 units, carol 10 + 25 = 35, of 85; each is paid budget * work // 85,
# rounded down: bob 58.82... tokens, carol 41.17...
PAID = {"bob": BUDGET * 50 // 85, "carol": BUDGET * 35 // 85}


class Crash(Exception):
    """The node dies here: not a CairnError, so nothing in the node catches it."""


def crash_after(mp: pytest.MonkeyPatch, owner: object, name: str, nth: int = 1) -> None:
    """The `nth` call of `owner.name` does its work, then the node crashes."""
    original = getattr(owner, name)
    calls = itertools.count(1)

    def crashing(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if next(calls) == nth:
            raise Crash(f"after {name} #{nth}")
        return result

    mp.setattr(owner, name, crashing)


def crash_before(mp: pytest.MonkeyPatch, owner: object, name: str, nth: int = 1) -> None:
    """The node crashes as the `nth` call of `owner.name` starts."""
    original = getattr(owner, name)
    calls = itertools.count(1)

    def crashing(*args: Any, **kwargs: Any) -> Any:
        if next(calls) == nth:
            raise Crash(f"before {name} #{nth}")
        return original(*args, **kwargs)

    mp.setattr(owner, name, crashing)


def start_job(node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A job of alice's with its budget in escrow, bob and carol staked as providers."""
    runs = itertools.count(1)
    monkeypatch.setattr(node.superlink, "start_run", lambda path: next(runs))  # no Flower here
    alice = dev(node, "alice")
    for label in PROVIDERS:
        node.chain.escrow.register_provider(
            dev(node, label), node.chain.token, 10 * TOKEN, f"https://{label}.example"
        )
    lm = register_tiny(node, alice, tmp_path, "causal-lm").asset_id
    dataset = anchored_dataset(node, alice, dev(node, "bob"), "instruction", n=12)
    recipe = load_recipe(
        f"name: reverse words\nmethod: sft\nbase_model: {lm}\ndatasets:\n  - dataset: {dataset}\n"
        f"distributed:\n  rounds: 2\n  inner_steps: 5\nbudget:\n  max_tokens: '{BUDGET}'\n"
    )
    return node.jobs.create(alice.address, recipe).job_id


def play_job(
    node: Node,
    job_id: str,
    model: bool = True,
    lora: bool = False,
    verified: dict[str, Any] | None = None,
) -> None:
    """Write what a coordinator writes for bob and carol training two rounds: 9 events (the
    model a whole one, or with `lora` adapters on the job's base; with `verified`, the replay's
    event before the end)."""
    folder = node.jobs.job_dir(job_id)
    accounts = {label: dev(node, label) for label in PROVIDERS}
    workers = [{"node_id": 7 + i, "account": a.address} for i, a in enumerate(accounts.values())]
    for worker in workers:
        folder.append("provider", run_id=1, stake=10 * TOKEN, **worker)
    for round_ in (1, 2):
        for i, (label, account) in enumerate(accounts.items()):
            samples = SAMPLES[label][round_ - 1]
            report = WorkReport(
                job_id, round_, account.address, 7 + i, i, 5, samples, 1.0, "00" * 32, 1.5
            )
            signature = sign_report(report, account)
            folder.append("report", run_id=1, **published_report(report, signature))
        save_checkpoint(folder, round_, {"w": torch.full((4,), float(round_))}, OuterState())
        folder.append(
            "round",
            run_id=1,
            round=round_,
            rounds=2,
            workers=workers,
            dropped=[],
            train_loss=2.0 / round_,
            eval={"loss": 2.5 / round_},
            seconds=2.0,
            compute_seconds=1.5,
            overhead_seconds=0.5,
        )
    if model and lora:
        save_tiny_adapters(folder)
    elif model:
        save_tiny_model(folder.model, "causal-lm")
    if verified is not None:
        folder.append("verified", run_id=1, **verified)
    folder.append("finished", run_id=1, metrics={"loss": 1.25, "perplexity": 3.5}, rounds=2)


def save_tiny_adapters(folder: JobDir) -> None:
    """LoRA adapters on the job's base, moved off their start as training would, saved as a
    job's coordinator saves them."""
    spec = folder.spec()
    model = add_lora(
        AutoModelForCausalLM.from_pretrained(spec.base_folder),
        LoraSettings(rank=4, alpha=8, dropout=0.0),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(torch.randn_like(param))  # enough to change what it answers
    tokenizer = AutoTokenizer.from_pretrained(spec.base_folder)
    save_result(model, tokenizer, folder.model, AdapterBase(spec.base_asset, spec.base_manifest))


def balances(node: Node) -> dict[str, int]:
    labels = ("alice", *PROVIDERS)
    return {label: node.chain.token.balance_of(dev(node, label).address) for label in labels}


def models_of(node: Node, job_id: str) -> list[int]:
    """Every model asset whose metadata names the job."""
    return [
        asset.asset_id
        for asset in node.assets.list(kind="model", limit=1000)
        if node.catalog.metadata(asset).get("training", {}).get("job_id") == job_id
    ]


def assert_finished_once(node: Node, job_id: str, before: dict[str, int]) -> None:
    """One model, one history entry per round, each report once, each provider paid and
    released once, the model given to alice."""
    job = node.jobs.get(job_id)
    assert (job.status, job.error) == ("finished", None)
    assert [h.round for h in job.history] == [1, 2]
    assert all(h.checkpoint_cid for h in job.history)
    accounts = {label: dev(node, label).address for label in PROVIDERS}
    reports = [(r.round, r.account) for r in node.jobs.reports(job_id)]
    assert reports == sorted((round_, a) for round_ in (1, 2) for a in accounts.values())
    shares = node.store.get_json(job.shares_cid)  # public: anyone checks each signature
    assert len(shares["reports"]) == 4
    assert [published_signer(r) for r in shares["reports"]] == [
        r["account"] for r in shares["reports"]
    ]

    assert job.model_asset is not None and models_of(node, job_id) == [job.model_asset]
    assert node.assets.get(job.model_asset).owner == dev(node, "alice").address
    assert node.chain.ledger.batch_count(job.model_asset) == 1
    assert node.chain.ledger.is_anchored(job.model_asset, job.reports_root)

    escrow = node.chain.escrow
    on_chain = escrow.job(job_id)
    assert on_chain.state == JobState.SETTLED and on_chain.paid == sum(PAID.values())
    assert job.payouts == {accounts[label]: str(PAID[label]) for label in PROVIDERS}
    after = balances(node)
    assert after["alice"] == before["alice"]  # the budget left her when the job was funded
    for label, account in accounts.items():
        assert after[label] == before[label] + PAID[label]
        assert escrow.enlistment(job_id, account) == Enlistment.RELEASED
        assert escrow.provider(account).open_jobs == 0


def test_a_jobs_logs_publish_each_report_as_it_was_signed(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id)
    log = node.jobs.logs(job_id, 0)  # what GET /api/v1/jobs/{id}/logs answers
    events = JobLog.model_validate_json(log.model_dump_json()).events  # as JSON, and back
    reports = [e.fields for e in events if e.type == "report"]
    assert len(reports) == 4
    for event in reports:
        assert published_signer(event) == event["report"]["account"]
        assert event["signed"] == report_from_json(event["report"]).canonical().decode()


def test_a_job_followed_without_a_crash_finishes_once(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id)
    before = balances(node)
    node.jobs.tick()
    assert_finished_once(node, job_id, before)
    node.jobs.tick()  # a finished job is left as it is
    assert node.jobs.resume() == []
    assert_finished_once(node, job_id, before)


FOLLOWING = {  # where following crashes: (what, method, nth call, crash after its effect)
    "enlisting bob": (lambda n: n.chain.escrow, "enlist", 1, True),
    "enlisting carol": (lambda n: n.chain.escrow, "enlist", 2, True),
    "storing checkpoint 1": (lambda n: n.store, "put_stream", 1, True),
    "storing checkpoint 2": (lambda n: n.store, "put_stream", 2, True),
    **{f"before event {i}": (lambda n: Follower, "apply", i, False) for i in range(2, 10)},
}


@pytest.mark.parametrize("where", list(FOLLOWING))
def test_a_crash_while_following_is_replayed_once(
    where: str, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id)
    before = balances(node)
    owner, name, nth, after = FOLLOWING[where]
    with monkeypatch.context() as mp:
        (crash_after if after else crash_before)(mp, owner(node), name, nth)
        with pytest.raises(Crash):
            node.jobs.tick()
    node.jobs.tick()
    assert_finished_once(node, job_id, before)


FINISHING: dict[str, tuple[Callable[[Node], object], str, int]] = {
    "storing the shares": (lambda n: n.store, "put_json", 1),
    "storing the model folder": (lambda n: finish, "store_folder", 1),
    "registering the model": (lambda n: n.chain.registry, "register", 1),
    "anchoring the reports": (lambda n: n.chain.ledger, "anchor", 1),
    "settling the budget": (lambda n: n.chain.escrow, "settle_job", 1),
    "paying bob": (lambda n: n.chain.escrow, "claim_payout", 1),
    "paying carol": (lambda n: n.chain.escrow, "claim_payout", 2),
    "releasing bob": (lambda n: n.chain.escrow, "release", 1),
    "releasing carol": (lambda n: n.chain.escrow, "release", 2),
    "giving the model to alice": (lambda n: n.chain.registry, "transfer", 1),
}


@pytest.mark.parametrize("where", list(FINISHING))
def test_a_crash_while_finishing_is_resumed_where_it_stopped(
    where: str, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id)
    before = balances(node)
    owner, name, nth = FINISHING[where]
    with monkeypatch.context() as mp:
        crash_after(mp, owner(node), name, nth)
        with pytest.raises(Crash):
            node.jobs.tick()
    assert node.jobs.get(job_id).status == "finishing"
    started = node.superlink.start_run(Path())  # the stub's next run id
    assert node.jobs.resume() == [job_id]  # finished, not run again
    assert node.superlink.start_run(Path()) == started + 1
    assert_finished_once(node, job_id, before)


def test_a_chain_error_while_finishing_is_shown_and_the_next_tick_finishes(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id)
    before = balances(node)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise ChainError("the chain is unreachable")

    with monkeypatch.context() as mp:
        mp.setattr(node.chain.escrow, "settle_job", unreachable)
        node.jobs.tick()
    job = node.jobs.get(job_id)
    assert job.status == "finishing"
    assert job.error == "finishing: the chain is unreachable"
    assert job.model_asset is not None and job.payouts == {}
    node.jobs.tick()
    assert_finished_once(node, job_id, before)


@pytest.mark.parametrize(
    "where",
    [None, ("cancel_job", 1), ("release", 1), ("release", 2)],
    ids=["no crash", "after cancelling", "after releasing bob", "after releasing carol"],
)
def test_a_job_that_wrote_no_model_fails_and_gives_its_budget_back_once(
    where: tuple[str, int] | None, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = start_job(node, tmp_path, monkeypatch)
    play_job(node, job_id, model=False)
    before = balances(node)
    if where is not None:
        with monkeypatch.context() as mp:
            crash_after(mp, node.chain.escrow, *where)
            with pytest.raises(Crash):
                node.jobs.tick()
        node.jobs.resume()
    node.jobs.tick()
    job = node.jobs.get(job_id)
    assert job.status == "failed"
    assert job.error == f"finishing: job {job_id} finished without writing its model"
    assert job.payouts == {"refund": str(BUDGET)} and job.model_asset is None
    assert models_of(node, job_id) == []
    assert node.chain.escrow.job_state(job_id) == JobState.CANCELLED
    after = balances(node)
    assert after == {**before, "alice": before["alice"] + BUDGET}
    for label in PROVIDERS:
        account = dev(node, label).address
        assert node.chain.escrow.enlistment(job_id, account) == Enlistment.RELEASED
        assert node.chain.escrow.provider(account).open_jobs == 0


@pytest.mark.process
@pytest.mark.slow
def test_a_node_restarted_after_registering_a_model_finds_it_and_finishes(
    make_node: Callable[..., Node], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "anvil-node"
    first = make_node(data_dir, chain="anvil")
    job_id = start_job(first, tmp_path, monkeypatch)
    play_job(first, job_id)
    before = balances(first)
    crash_after(monkeypatch, first.chain.registry, "register")
    with pytest.raises(Crash):
        first.jobs.tick()
    registered = models_of(first, job_id)
    assert len(registered) == 1 and first.jobs.get(job_id).model_asset is None
    first.close()

    second = make_node(data_dir, chain=None)  # the data folder remembers anvil
    assert second.jobs.resume() == [job_id]  # what starting its compute does
    assert second.jobs.get(job_id).model_asset == registered[0]
    assert_finished_once(second, job_id, before)
