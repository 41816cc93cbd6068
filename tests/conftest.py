"""Fixtures shared across the suite: nodes on a real chain, and a real HTTP server; the tiers.

The suite runs in three tiers (`--tier`, the Makefile's `check`, `test-node` and `test-e2e`):

- check: every test that needs no node, no chain and no process; a test of this tier that
  opens a node, starts an EVM or a process fails and says which marker it lacks;
- node: in-process tests on nodes copied from one bootstrapped template per session, and on
  the in-process chain; starting a process fails here too;
- e2e: the tests that start processes (`process`: anvil, node and worker processes, Flower,
  PostgreSQL, moto, Node.js) and drive Chromium (`browser`).

Markers come from the fixtures a test uses (`node`, `chain`) or from its module (`process`,
`browser`, `model`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from cairn.api.server import BackgroundServer
from cairn.chain.anvil import free_port
from cairn.chain.memory import MemoryBackend
from cairn.config import NodeConfig
from cairn.node import Node, bootstrap

pytest_plugins = ["tests.demo_node"]  # the demo community, seeded once per run

os.environ.setdefault("OMP_NUM_THREADS", "1")
# eth-hash picks pycryptodome's keccak when both are installed; safe-pysha3's (which comes with
# eth-tester[py-evm] on CPython) is about 10x faster a call, and the in-process chain, web3 and
# eth-account hash on every trie node, address and transaction. Nothing hashes before this line
# (eth-hash settles on its backend at the first hash), and the processes the tests start inherit it.
if importlib.util.find_spec("sha3") is not None:
    os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
# The CLI's console takes its width when first imported: wide, so that no test depends on where
# a long temporary path (longer under xdist) would wrap.
os.environ["COLUMNS"] = "250"
# Tests must not pick up a developer's own settings.
for _name in [n for n in os.environ if n.startswith("CAIRN_")]:
    del os.environ[_name]


# Hypothesis: `dev` (a quick loop) unless HYPOTHESIS_PROFILE says `ci` (make test, CI), which
# tries more examples; neither has a deadline, since the machines running the suite are shared.
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

TIERS = ("check", "node", "e2e")
NODE_FIXTURES = {"templates", "make_node"}  # every node of the suite comes from these
CHAIN_FIXTURES = {"w3", "compiled"}  # tests/chain's in-process EVM
DEMO_FIXTURES = {"demo_story", "demo_node"}  # tests/demo_node.py's session-wide demo community
STREAMS = ("a", "b")


def stream_of(item: pytest.Item) -> str:
    """The half of the suite a test runs in when the e2e tier runs as two sessions at once.

    The tests on the demo community stay in one session, in their order (the README's commands
    first, then the flows that follow one another) and seeding it once; the CLI's and the node
    processes' tests (tests/cli, tests/node), which mostly wait on their processes, keep them
    company; the training jobs on Flower and the rest make the other. With only the CLI's beside
    the demo the two took 313 s and 388 s.
    """
    if DEMO_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "a"
    return "a" if item.path.parent.name in ("cli", "node") else "b"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--tier", choices=TIERS, help="run one tier of the suite: check, node or e2e")
    parser.addoption(
        "--stream",
        choices=STREAMS,
        help="run one of the suite's two halves (make test-e2e runs both at once): a, the tests "
        "on the shared demo community and the CLI's, or b, all the others",
    )


def tier_of(item: pytest.Item) -> str:
    """The tier a test belongs to, from its markers (after `pytest_collection_modifyitems`)."""
    if item.get_closest_marker("process") or item.get_closest_marker("browser"):
        return "e2e"
    if item.get_closest_marker("node") or item.get_closest_marker("chain"):
        return "node"
    return "check"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by the fixtures it uses; with --tier, keep only that tier's tests."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & NODE_FIXTURES:
            item.add_marker(pytest.mark.node)
        if fixtures & CHAIN_FIXTURES:
            item.add_marker(pytest.mark.chain)
    tier = config.getoption("--tier")
    if tier is None:
        if config.getoption("--stream"):
            raise pytest.UsageError("--stream splits a tier: give --tier too")
        return
    stream = config.getoption("--stream")

    def kept(item: pytest.Item) -> bool:
        return tier_of(item) == tier and stream in (None, stream_of(item))

    keep = [item for item in items if kept(item)]
    dropped = [item for item in items if not kept(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


class TierBreach(Exception):
    """A test did something its tier does not allow: it lacks a marker."""


_running: list[str] = ["(collection)"]  # the test being set up, run or torn down


def pytest_runtest_setup(item: pytest.Item) -> None:
    _running[0] = item.nodeid


@pytest.fixture(scope="session", autouse=True)
def _tier_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """In the check and node tiers, refuse what those tiers promise not to do, for the whole
    session: module and session fixtures of a test are held to its tier too."""
    tier = request.config.getoption("--tier")
    if tier not in ("check", "node"):
        yield
        return

    def refuse(what: str, marker: str) -> Callable[..., None]:
        def refused(*_args: object, **_kwargs: object) -> None:
            raise TierBreach(f"{_running[0]} {what}: mark it `{marker}` (tier {tier} does not)")

        return refused

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", refuse("starts a process", "process"))
        if tier == "check":
            import eth_tester

            patch.setattr(Node, "__init__", refuse("opens a node", "node"))
            patch.setattr(eth_tester.EthereumTester, "__init__", refuse("starts an EVM", "chain"))
        yield


# Settings that change only how a node is wired, not what bootstrapping it makes: a node with
# no others can start from a copy of the session's template instead of being bootstrapped.
WIRING_ONLY = {
    "port",
    "fleet_port",
    "host",
    "node_url",
    "epoch_seconds",
    "model_memory_mb",
    "upload_quota_mb",
    "uploads_per_hour",
    "upload_chunk_mb",
    "free_calls_per_minute",
    "secure_cookies",
    "public_domains",
    "control_port",
    "serverappio_port",
}


@dataclass
class Template:
    """A node bootstrapped once per session on the memory chain, closed, its chain snapshot."""

    folder: Path
    backend: MemoryBackend
    snapshot: int

    def node(self, folder: Path, config: NodeConfig) -> Node:
        """A node on a copy of the template's folder and its chain as bootstrapping left it."""
        self.backend.tester.revert_to_snapshot(self.snapshot)
        shutil.copytree(self.folder, folder)
        return Node(config, backend=self.backend)


class Templates:
    """The session's templates, one per set of dev accounts, bootstrapped on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[tuple[str, ...], Template] = {}

    def get(self, dev_accounts: tuple[str, ...]) -> Template:
        if dev_accounts not in self._made:
            folder = self.root / f"template-{len(self._made)}"
            node = bootstrap(NodeConfig.from_env(**_settings(folder, dev_accounts=dev_accounts)))
            backend = node.backend
            assert isinstance(backend, MemoryBackend)
            snapshot = backend.tester.take_snapshot()
            node.close()  # the memory chain stays: closing it is a no-op
            self._made[dev_accounts] = Template(folder, backend, snapshot)
        return self._made[dev_accounts]


def _settings(data_dir: Path, **settings: object) -> dict[str, object]:
    settings.setdefault("chain", "memory")
    settings.setdefault("dev", True)
    settings.setdefault("port", free_port())
    settings.setdefault("fleet_port", free_port())
    return {"data_dir": data_dir, **settings}


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def make_node(tmp_path: Path, templates: Templates) -> Iterator[Callable[..., Node]]:
    """Open nodes on folders under tmp_path (memory chain and dev accounts unless told).

    The first node of a test with no folder of its own and only wiring settings is a copy of
    the session's bootstrapped template (milliseconds); any other is bootstrapped as
    `cairn node start` does, on a chain of its own.
    """
    nodes: list[Node] = []

    def make(data_dir: Path | None = None, **settings: object) -> Node:
        from_template = (
            data_dir is None and not nodes and set(settings) <= WIRING_ONLY | {"dev_accounts"}
        )
        config = NodeConfig.from_env(**_settings(data_dir or tmp_path / "node", **settings))
        if from_template:
            node = templates.get(config.dev_accounts).node(config.data_dir, config)
        else:
            node = bootstrap(config)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


@pytest.fixture
def node(make_node: Callable[..., Node]) -> Node:
    """A dev node on the in-process chain."""
    return make_node()


LiveServer = BackgroundServer  # the name the tests use


@pytest.fixture
def live(node: Node) -> Iterator[LiveServer]:
    """The dev node's API on a real HTTP server."""
    server = LiveServer(node).start()
    yield server
    server.stop()
