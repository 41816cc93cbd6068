"""The import graph of src/cairn: no cycles, and every arrow one that the layers allow.

The graph is read from the source with `ast` (nothing is imported, so this runs in a second)
and counts every import: at module level, inside functions, under `if TYPE_CHECKING:`, and
`importlib.import_module("cairn...")`. Each couples two modules whether or not it runs at
import time, so hiding one in a function or behind TYPE_CHECKING does not break a cycle.
`from x import y` is an edge to module `x.y` when there is one, else to `x`; when `x.y` is a
submodule it is an edge to the package `x` too, since the import runs the package's `__init__`
first. A package's `__init__` re-exports are edges from the package.

The layers are those of docs/ARCHITECTURE.md ("Layers"). What the code does not follow yet is
listed in KNOWN_CYCLES and KNOWN_BREACHES, one commented entry each: the lists can only
shrink, since an entry that no longer occurs fails the test until it is removed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "cairn"

# -- the layers ----------------------------------------------------------------------------
# "cli, api, web ──▶ domains ──▶ adapters (chain, store, db) ──▶ core" and "provider (cairn
# worker) ──▶ node API client + train"; the composition (the node, its configuration, the
# demos) wires everything and may import anything.
LAYERS: dict[str, str] = {
    "cairn": "core",  # the package root itself (its version), not what lies under it
    "cairn.core": "core",
    "cairn.chain": "adapter",
    "cairn.store": "adapter",
    "cairn.db": "adapter",
    "cairn.identity": "adapter",  # key files, signers, sign-in sessions: used by domains
    "cairn.folder_lock": "adapter",  # a data folder's lock file
    "cairn.data": "domain",
    "cairn.compute": "domain",
    "cairn.train": "domain",
    "cairn.serve": "domain",
    "cairn.economy": "domain",
    "cairn.market": "domain",
    "cairn.verify": "domain",
    "cairn.assets": "domain",  # the market's listings live here for now (see ARCHITECTURE)
    "cairn.api": "face",
    "cairn.web": "face",
    "cairn.cli": "face",
    "cairn.provider": "provider",
    "cairn.node": "composition",
    "cairn.config": "composition",  # "nothing else reads configuration"
    "cairn.demo": "composition",
    "cairn.demo_community": "composition",
    "cairn.scheduler": "composition",  # what a node does on its own, from the services it wires
    # Every domain owns its tables; the schema that migrations see gathers them all, so it
    # sits above the domains even though it lives in the db package.
    "cairn.db.models": "composition",
    "cairn.db.migrations": "composition",
}
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "adapter": frozenset({"adapter", "core"}),
    "domain": frozenset({"domain", "adapter", "core"}),
    "face": frozenset({"face", "domain", "adapter", "core"}),
    "provider": frozenset({"provider", "core"}),
    "composition": frozenset({"composition", "provider", "face", "domain", "adapter", "core"}),
}
# Faces "depend on façades through dependencies, never on the node object, the chain or
# the store".
FACES_NEVER = ("cairn.node", "cairn.chain", "cairn.store")
# Arrows from one package to modules outside the layers it may import.
ALSO_MAY_IMPORT: dict[str, tuple[str, ...]] = {
    # The CLI is the program's entry point: it reads the command line into a NodeConfig and
    # starts a node (`cairn node start`), the demo (`cairn demo`) or a worker (`cairn worker`).
    "cairn.cli": (
        "cairn.config",
        "cairn.node",
        "cairn.demo",
        "cairn.demo_community",
        "cairn.provider",
    ),
    # The provider talks to a node only through its public API (its own client, `node_api`),
    # and trains. With the node it shares the protocol of a round (the task, the signed work
    # report, the job token's header) and the way Flower's programs are started; and it takes
    # a free port for its SuperNode from anvil's helper (a socket call: nothing of the chain).
    "cairn.provider": (
        "cairn.train",
        "cairn.compute.records",
        "cairn.compute.reports",
        "cairn.compute.blobs",
        "cairn.compute.flower_processes",
        "cairn.chain.anvil",
        "cairn.folder_lock",  # one worker per work folder, as one node per data folder
    ),
    # The CLI's node API client builds on the provider's, never the other way round.
    "cairn.api.client": ("cairn.provider.node_api",),
}

# -- what the code does not follow yet -----------------------------------------------------
# Each cycle is the set of modules of one strongly connected component of the graph.
KNOWN_CYCLES: list[frozenset[str]] = []
# (importer, imported) for each import that crosses the layers the wrong way.
KNOWN_BREACHES: set[tuple[str, str]] = set()

Graph = dict[str, dict[str, int]]  # importer -> {imported: line of its first import}


# -- reading the graph ---------------------------------------------------------------------


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `src`, by dotted name (a package by its `__init__`)."""
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(src: Path, package: str) -> Graph:
    """Every import of `package`'s modules by one another, wherever in a module it is made."""
    files = module_files(src, package)

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {}
    for module, path in files.items():
        edges = graph.setdefault(module, {})
        is_package = path.name == "__init__.py"
        for names, line in _imports(ast.parse(path.read_text(), str(path)), module, is_package):
            if not any(n == package or n.startswith(package + ".") for n in names):
                continue
            # the first name that is a module, else the nearest module above the last
            found = next((n for n in names if n in files), None) or resolve(names[-1])
            targets = [found]
            if found == names[0] and len(names) > 1 and names[1] in files:
                targets.append(names[1])  # `from package import submodule` runs package/__init__
            for target in targets:
                if target is not None and target != module:
                    edges.setdefault(target, line)
    return graph


def _imports(
    tree: ast.Module, module: str, is_package: bool
) -> Iterator[tuple[tuple[str, ...], int]]:
    """(names, line) of every import in a module: `from x import y` names `x.y`, then `x`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield (alias.name,), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, up level - 1
                anchor = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                yield (f"{base}.{alias.name}", base), node.lineno
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield (first.value,), node.lineno


def _is_import_module(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id == "import_module"


# -- cycles --------------------------------------------------------------------------------


def cycles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe_cycle(graph: Graph, component: frozenset[str]) -> str:
    """A cycle as its imports, one a line, each with where it is made."""
    lines = [f"cycle of {len(component)} modules: {', '.join(sorted(component))}"]
    for importer in sorted(component):
        for imported, line in sorted(graph[importer].items()):
            if imported in component:
                lines.append(f"    {importer} -> {imported}  ({_where(importer, line)})")
    return "\n".join(lines)


# -- layers --------------------------------------------------------------------------------


def layer_of(module: str) -> str | None:
    """The layer of a module: that of its longest listed prefix (the bare root only itself)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix == PACKAGE and module != PACKAGE:
            return None
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def breach(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported` (None when it may)."""
    source, target = layer_of(importer), layer_of(imported)
    if source is None or target is None:
        return None  # reported by test_every_module_has_a_layer
    for package, also in ALSO_MAY_IMPORT.items():
        if _under(importer, package) and any(_under(imported, a) for a in also):
            return None
    if target not in MAY_IMPORT[source]:
        allowed = sorted(MAY_IMPORT[source])
        allowed += [a for p, also in ALSO_MAY_IMPORT.items() if _under(importer, p) for a in also]
        article = "an" if target[0] in "aeiou" else "a"
        return f"a {source} imports {article} {target} (it may import: {', '.join(allowed)})"
    never = next((n for n in FACES_NEVER if source == "face" and _under(imported, n)), None)
    if never is not None:
        return f"a face imports {never} (faces use the domains' façades through dependencies)"
    return None


def breaches(graph: Graph) -> dict[tuple[str, str], str]:
    """Every import that crosses the layers the wrong way, with the reason."""
    return {
        (importer, imported): reason
        for importer, edges in graph.items()
        for imported in edges
        if (reason := breach(importer, imported)) is not None
    }


def _where(module: str, line: int) -> str:
    path = module_files(SRC, PACKAGE)[module]
    return f"{path.relative_to(SRC.parent)}:{line}"


# -- the tests on src/cairn ----------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(SRC, PACKAGE)


def test_every_module_has_a_layer(graph: Graph) -> None:
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    assert not unplaced, (
        f"modules in no layer: {', '.join(unplaced)}; place their package in LAYERS "
        "(tests/test_layers.py) as docs/ARCHITECTURE.md places it"
    )


def test_no_import_cycles_but_the_known(graph: Graph) -> None:
    found = cycles(graph)
    new = [c for c in found if c not in KNOWN_CYCLES]
    gone = [c for c in KNOWN_CYCLES if c not in found]
    problems = [describe_cycle(graph, c) for c in new]
    problems += [
        f"KNOWN_CYCLES lists {', '.join(sorted(c))}, which is no longer a cycle: remove it"
        for c in gone
    ]
    assert not problems, "import cycles:\n" + "\n".join(problems)


def test_imports_follow_the_layers(graph: Graph) -> None:
    found = breaches(graph)
    problems = [
        f"{importer} imports {imported} ({_where(importer, graph[importer][imported])}): {why}"
        for (importer, imported), why in sorted(found.items())
        if (importer, imported) not in KNOWN_BREACHES
    ]
    problems += [
        f"KNOWN_BREACHES lists {importer} -> {imported}, which no longer occurs: remove it"
        for importer, imported in sorted(KNOWN_BREACHES - found.keys())
    ]
    assert not problems, "imports across the layers:\n" + "\n".join(problems)


# -- the tests of the checks themselves ----------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_graph_counts_every_kind_of_import(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "cairn/__init__.py": "",
            "cairn/a/__init__.py": "from cairn.a.x import X\n",  # a re-export
            "cairn/a/x.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from cairn.b import y\n"
                "def f():\n"
                "    from cairn.b.z import Z\n"
                "    import importlib\n"
                "    importlib.import_module('cairn.c')\n"
            ),
            "cairn/a/w.py": "from . import x\nfrom ..b import NAME\nimport cairn.b.z.nothing\n",
            "cairn/b/__init__.py": "NAME = 1\n",
            "cairn/b/y.py": "",
            "cairn/b/z.py": "import os\nfrom cairn.b import NAME\n",
            "cairn/c.py": "from cairn import b\n",
        },
    )
    graph = {m: sorted(edges) for m, edges in import_graph(tmp_path, "cairn").items()}
    assert graph == {
        "cairn": [],
        "cairn.a": ["cairn.a.x"],
        "cairn.a.w": ["cairn.a", "cairn.a.x", "cairn.b", "cairn.b.z"],
        # cairn.b and cairn.b.y under TYPE_CHECKING, cairn.b.z and cairn.c in a function
        "cairn.a.x": ["cairn.b", "cairn.b.y", "cairn.b.z", "cairn.c"],
        "cairn.b": [],
        "cairn.b.y": [],
        "cairn.b.z": ["cairn.b"],
        "cairn.c": ["cairn", "cairn.b"],
    }


def test_importing_a_submodule_from_its_package_runs_the_package(tmp_path: Path) -> None:
    # `from cairn.recipe import steps` runs cairn/recipe/__init__.py before steps.py, so a
    # cycle through the package's `__init__` is a cycle even though no line names it.
    _write(
        tmp_path,
        {
            "cairn/__init__.py": "",
            "cairn/recipe/__init__.py": "from cairn.form import FIELDS\n",
            "cairn/recipe/steps.py": "STEPS = ()\n",
            "cairn/form.py": "from cairn.recipe import steps\nFIELDS = steps.STEPS\n",
            "cairn/job.py": "from cairn.recipe.steps import STEPS\nfrom cairn.recipe import NAME\n",
        },
    )
    graph = import_graph(tmp_path, "cairn")
    assert sorted(graph["cairn.form"]) == ["cairn.recipe", "cairn.recipe.steps"]
    assert sorted(graph["cairn.job"]) == ["cairn.recipe", "cairn.recipe.steps"]
    assert cycles(graph) == [frozenset({"cairn.form", "cairn.recipe"})]


def test_cycles_are_the_components_of_more_than_one_module() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": ["e"], "e": ["d"], "f": ["a"]}
    assert sorted(map(sorted, cycles(graph))) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": ["b"], "b": ["c"], "c": []}) == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("cairn.serve.gateway", "cairn.api.deps"),  # a domain importing a face
        ("cairn.core.merkle", "cairn.economy.epochs"),  # core importing a domain
        ("cairn.core.cid", "cairn.store.base"),  # core importing an adapter
        ("cairn.chain.client", "cairn.data.service"),  # an adapter importing a domain
        ("cairn.economy.epochs", "cairn.node"),  # a domain importing the composition
        ("cairn.web.market", "cairn.chain.client"),  # a face importing the chain
        ("cairn.api.routers.blobs", "cairn.store.base"),  # a face importing the store
        ("cairn.db.engine", "cairn.db.models"),  # the db adapter importing the schema
        ("cairn.provider.worker", "cairn.compute.jobs"),  # the provider importing a domain
        ("cairn.compute.worker", "cairn.provider.worker"),  # a domain importing the provider
        ("cairn.api.routers.compute", "cairn.provider.worker"),  # a face but the CLI, too
        ("cairn.provider.worker", "cairn.api.client"),  # the provider importing a face
        ("cairn.provider.worker", "cairn.chain.contracts"),  # ... or the chain
    ],
)
def test_an_import_against_the_layers_is_a_breach(importer: str, imported: str) -> None:
    assert breach(importer, imported) is not None


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("cairn.core.settlement", "cairn.core.merkle"),
        ("cairn.chain.client", "cairn.core.errors"),
        ("cairn.serve.gateway", "cairn.economy.metering"),  # domains use one another
        ("cairn.economy.epochs", "cairn.chain.contracts"),
        ("cairn.api.routers.blobs", "cairn.assets.content"),
        ("cairn.api.app", "cairn.web"),  # faces use one another
        ("cairn.cli.node", "cairn.node"),  # the entry point starts a node
        ("cairn.cli.compute", "cairn.provider.worker"),  # ... and a worker
        ("cairn.provider.worker", "cairn.provider.node_api"),  # the provider uses the node's API
        ("cairn.provider.clientapp", "cairn.train.inner"),  # ... trains
        ("cairn.provider.clientapp", "cairn.compute.reports"),  # ... and signs its work reports
        ("cairn.api.client", "cairn.provider.node_api"),  # the CLI client builds on it
        ("cairn.node", "cairn.api.app"),  # the composition wires everything
        ("cairn.db.models", "cairn.economy.models"),  # the schema gathers every domain's tables
        ("cairn.web.apps", "cairn"),  # the package root (its version)
    ],
)
def test_an_import_down_the_layers_is_no_breach(importer: str, imported: str) -> None:
    assert breach(importer, imported) is None


def test_a_package_outside_the_layers_has_none() -> None:
    assert layer_of("cairn.verifier.replay") is None
    assert layer_of("cairn") == "core"
    assert layer_of("cairn.db.migrations.env") == "composition"
