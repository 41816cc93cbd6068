"""A provider's worker: staking through the node's relay, and fetching blobs by CID."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cairn.api.client import NodeClient
from cairn.assets.content import Scope
from cairn.core.cid import cid_of
from cairn.core.errors import InvalidInput, NotFound, Unavailable
from cairn.node import Node
from cairn.provider.blobs import BlobCache
from cairn.provider.worker import Worker
from cairn.store.local import LocalBlobStore
from cairn.train.weights import store_folder
from tests.conftest import LiveServer
from tests.data.conftest import dev

TOKEN = 10**18

JOB = "0x" + "12" * 32  # the job whose blobs the worker fetches


def test_a_worker_stakes_once_and_tops_up(live: LiveServer, node: Node, tmp_path: Path) -> None:
    bob = dev(node, "bob")
    worker = Worker(NodeClient(live.url), bob, tmp_path / "w", stake=5 * TOKEN)
    before = node.chain.token.balance_of(bob.address)
    record = worker.ensure_staked()
    assert record["active"] and record["stake"] == str(5 * TOKEN)
    assert node.chain.token.balance_of(bob.address) == before - 5 * TOKEN
    assert worker.ensure_staked()["stake"] == str(5 * TOKEN)  # already staked: nothing sent
    assert node.chain.token.balance_of(bob.address) == before - 5 * TOKEN
    more = Worker(NodeClient(live.url), bob, tmp_path / "w", stake=8 * TOKEN).ensure_staked()
    assert more["stake"] == str(8 * TOKEN)
    assert node.chain.token.balance_of(bob.address) == before - 8 * TOKEN


def test_a_stake_below_the_node_minimum_is_refused(
    live: LiveServer, node: Node, tmp_path: Path
) -> None:
    node.chain.escrow.set_min_stake(node.operator, 3 * TOKEN)
    worker = Worker(NodeClient(live.url), dev(node, "bob"), tmp_path / "w", stake=TOKEN)
    with pytest.raises(InvalidInput, match="at least"):
        worker.ensure_staked()
    assert not node.chain.escrow.provider(dev(node, "bob").address).active


def test_a_worker_needs_a_running_superlink(live: LiveServer, node: Node, tmp_path: Path) -> None:
    worker = Worker(NodeClient(live.url), dev(node, "bob"), tmp_path / "w")
    with pytest.raises(Unavailable, match="runs no Flower SuperLink"):
        worker.start()
    assert not worker.key_file.exists()


def test_blobs_are_fetched_verified_and_cached(
    live: LiveServer, node: Node, tmp_path: Path
) -> None:
    data = b'{"prompt": "a", "response": "b"}\n'
    cid = node.store.put(data)
    node.assets.refs.add(cid, Scope.JOB, JOB, account=dev(node, "alice").address)
    with pytest.raises(NotFound):  # a job's training set is its workers' only
        BlobCache(live.url, tmp_path / "no-token").read(cid)
    cache = BlobCache(live.url, tmp_path / "cache", node.assets.refs.job_token(JOB))
    assert cache.records(cid) == [{"prompt": "a", "response": "b"}]
    assert (tmp_path / "cache" / cid).read_bytes() == data
    with pytest.raises(NotFound):
        cache.read(cid_of(b"never stored"))
    with pytest.raises(InvalidInput):
        cache.read("not-a-cid")


def test_a_node_sending_other_bytes_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = cid_of(b"the real bytes")
    lying = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=b"x")))
    monkeypatch.setattr(httpx, "get", lambda url, **_: lying.get(url))
    with pytest.raises(InvalidInput, match="not " + wanted):
        BlobCache("http://node.invalid", tmp_path).read(wanted)
    assert not (tmp_path / wanted).exists()


def test_a_model_folder_is_assembled_from_its_manifest(
    live: LiveServer, node: Node, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    manifest = store_folder(node.store, folder)
    node.assets.refs.add_folder(manifest, Scope.JOB, JOB)
    token = node.assets.refs.job_token(JOB)
    out = BlobCache(live.url, tmp_path / "cache", token).model_folder(manifest)
    assert (out / "config.json").read_text() == (folder / "config.json").read_text()
    assert (out / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 100
    with pytest.raises(InvalidInput, match="not a Cairn model manifest"):
        not_a_manifest = node.store.put_json({"x": 1})
        node.assets.refs.add(not_a_manifest, Scope.JOB, JOB)
        BlobCache(live.url, tmp_path / "cache2", token).model_folder(not_a_manifest)


def test_a_worker_beside_its_node_links_blobs_from_the_node_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path / "node-blobs")
    weights = store.put(b"\x01\x02" * 5000)
    fetched: list[str] = []
    served = httpx.Client(
        transport=httpx.MockTransport(
            lambda request: httpx.Response(200, content=b"\x01\x02" * 5000)
        )
    )

    def get(url: str, **_: object) -> httpx.Response:
        fetched.append(url)
        return served.get(url)

    monkeypatch.setattr(httpx, "get", get)
    cache = BlobCache("http://node.invalid", tmp_path / "cache", source=store.root)
    path = cache.path(weights)
    assert path.samefile(store.path_of(weights)) and fetched == []  # one copy, no download
    # a file in the source that is not what its name says is never linked: fetched instead
    damaged = store.path_of(weights)
    other = BlobCache("http://node.invalid", tmp_path / "cache2", source=store.root)
    damaged.chmod(0o644)
    damaged.write_bytes(b"\x00" * 10)
    assert other.read(weights) == b"\x01\x02" * 5000 and len(fetched) == 1
    assert not other.path(weights).samefile(damaged)
    assert not [p for p in (tmp_path / "cache2").iterdir() if p.name.startswith(".")]
