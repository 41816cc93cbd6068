"""Fixtures for the compute domain: a served node with a SuperLink, tiny models, datasets.

A Flower cluster (a node served over HTTP, its SuperLink, providers' SuperNodes) takes seconds
to start and to stop: `shared_cluster` is one per test module, with bob's and carol's SuperNodes
started once, for tests that only run jobs on it; `cluster` is a test's own, for tests that kill
or restart part of it.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from cairn.api.client import NodeClient
from cairn.assets.service import Asset
from cairn.chain.anvil import free_port
from cairn.compute.job import ACTIVE, Job
from cairn.compute.superlink import SuperLink
from cairn.config import NodeConfig
from cairn.core.errors import Conflict
from cairn.node import Node, bootstrap
from cairn.provider.worker import Worker
from cairn.train.tiny import tiny_causal_lm, tiny_encoder
from tests.conftest import LiveServer, _settings
from tests.data.conftest import dev, make_dataset, upload

TOKEN = 10**18
LETTERS = "abcdefgh"
SHARED_PROVIDERS = ("bob", "carol")  # the SuperNodes of `shared_cluster`


def reverse_record(rng: random.Random) -> dict[str, str]:
    """An instruction record a tiny model learns in a few dozen steps: reverse some letters."""
    word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))
    return {"prompt": f"reverse {word} #{rng.randrange(10**6)}", "response": word[::-1]}


def sentiment_record(rng: random.Random) -> dict[str, str]:
    good = rng.random() < 0.5
    words = ["great", "lovely", "fine"] if good else ["awful", "bad", "poor"]
    text = f"{rng.choice(words)} {rng.choice(words)} day #{rng.randrange(10**6)}"
    return {"text": text, "label": "positive" if good else "negative"}


def save_tiny_model(folder: Path, family: str) -> Path:
    texts = ["reverse abcdefgh #0123456789", "great lovely fine awful bad poor day"]
    model, tokenizer = (
        tiny_causal_lm(texts=texts, hidden_size=32, layers=2, heads=2)
        if family == "causal-lm"
        else tiny_encoder(texts=texts)
    )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def register_tiny(node: Node, owner: LocalAccount, tmp: Path, family: str) -> Asset:
    folder = save_tiny_model(tmp / f"tiny-{family}", family)
    return node.catalog.register_folder(
        owner, folder, name=f"tiny {family}", licence="Apache-2.0", family=family
    )


def anchored_dataset(
    node: Node, owner: LocalAccount, contributor: LocalAccount, kind: str, n: int = 40
) -> int:
    rng = random.Random(7)
    if kind == "instruction":
        dataset = make_dataset(node, owner)
        records: list[Any] = [reverse_record(rng) for _ in range(n)]
    else:
        dataset = make_dataset(
            node, owner, task={"type": "classification", "labels": ["positive", "negative"]}
        )
        records = [sentiment_record(rng) for _ in range(n)]
    result = upload(node, contributor, dataset.asset_id, records)
    assert result.accepted == n, result
    node.data.anchoring.anchor(dataset.asset_id)
    return dataset.asset_id


class Cluster:
    """A served dev node with its SuperLink, and provider workers started on demand."""

    def __init__(self, node: Node, tmp: Path) -> None:
        self.node = node
        self.tmp = tmp
        self.node.start_compute()
        self.server = LiveServer(node).start()
        self.api = NodeClient(self.server.url)
        self.workers: list[Worker] = []

    def worker(self, label: str, stake: int = 10 * TOKEN) -> Worker:
        account = dev(self.node, label)
        worker = Worker(
            NodeClient(self.server.url), account, self.tmp / f"worker-{label}", stake=stake
        )
        worker.ensure_staked()
        worker.start()
        self.workers.append(worker)
        return worker

    def providers(self) -> set[str]:
        """The accounts of the workers this cluster started."""
        return {worker.account.address for worker in self.workers}

    def sign_in(self, label: str) -> NodeClient:
        api = NodeClient(self.server.url)
        api.sign_in(dev(self.node, label))
        return api

    def wait(self, job_id: str, done: Callable[[Job], bool], timeout: float = 240) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.node.jobs.get(job_id)
            if done(job):
                return job
            if job.status in ("failed", "cancelled") and not done(job):
                raise AssertionError(f"job {job.status}: {job.error}\n{self.logs(job_id)}")
            time.sleep(0.5)
        raise AssertionError(f"timed out; job is {self.node.jobs.get(job_id)}\n{self.logs(job_id)}")

    def logs(self, job_id: str) -> str:
        events = self.node.jobs.logs(job_id).events
        return "\n".join(str(e)[:300] for e in events)

    def close(self) -> None:
        # at once: each SuperNode takes seconds to stop, as Ctrl-C stops it
        with ThreadPoolExecutor() as pool:
            list(pool.map(Worker.stop, self.workers))
        self.server.stop()


@pytest.fixture
def cluster(node: Node, tmp_path: Path) -> Iterator[Cluster]:
    """A test's own cluster, with no workers until it starts them: for a test that kills a
    worker or stops the node."""
    c = Cluster(node, tmp_path)
    yield c
    c.close()


@pytest.fixture(scope="module")
def _module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the module, with bob's and carol's SuperNodes.

    Its node is bootstrapped on a memory chain of its own rather than copied from the session's
    template: every copy of a template shares one chain and reverts it to the template's
    snapshot, so a test of the module with a `node` of its own would rewind this node's chain
    under it.
    """
    folder = tmp_path_factory.mktemp("flower-cluster")
    node = bootstrap(NodeConfig.from_env(**_settings(folder / "node")))
    try:
        c = Cluster(node, folder)
        try:
            for label in SHARED_PROVIDERS:
                c.worker(label)
            yield c
        finally:
            c.close()
    finally:
        node.close()


@pytest.fixture
def shared_cluster(_module_cluster: Cluster) -> Iterator[Cluster]:
    """The module's cluster; a test must leave it as it found it, which is checked.

    Its tests see the chain, balances, assets and jobs that earlier tests left: they read ids
    from responses and compare balances before and after. A job a failed test left running is
    cancelled, so that it does not take the SuperNodes from the tests after it.
    """
    c = _module_cluster
    for worker in c.workers:
        assert worker.process is not None and worker.process.poll() is None, (
            f"{worker.account.address}'s SuperNode is gone: a test stopped a shared worker"
        )
    yield c
    jobs = c.node.jobs
    left = [j for j in jobs.list_jobs() if j.status in ACTIVE]
    for job in left:
        with contextlib.suppress(Conflict):  # it ended meanwhile
            jobs.cancel(job.job_id, by=job.builder)
    assert not left, f"the test left jobs running: {[j.job_id for j in left]}"


@contextlib.contextmanager
def running_superlink(folder: Path) -> Iterator[SuperLink]:
    """A SuperLink on free ports of 127.0.0.1 with its state in `folder`, started, then stopped
    (its ServerApp executor with it)."""
    link = SuperLink(
        folder, fleet_port=free_port(), control_port=free_port(), serverappio_port=free_port()
    )
    link.start()
    try:
        yield link
    finally:
        link.stop()
