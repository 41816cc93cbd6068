"""Compile Cairn's Vyper contracts with the `vyper` package, cached by source hash.

A cache entry is keyed by the sha256 of the source and the compiler version, so an edited
contract or a new compiler is recompiled and an unchanged one never is. Builds are looked up in
this process, then in the caller's folder (the node passes its data folder), then in the user's
cache (`~/.cache/cairn/contracts`, shared by every node on the machine: compiling the five
contracts takes several seconds); a build is written to both folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import vyper

CONTRACT_NAMES = (
    "CairnToken",
    "AssetRegistry",
    "ContributionLedger",
    "RevenueDistributor",
    "JobEscrow",
    "LicenseToken",
    "DataBounty",
)


@dataclass(frozen=True)
class CompiledContract:
    """The ABI and creation bytecode of one contract, with the hash of the source it came from."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    source_hash: str


def contract_source(name: str) -> str:
    """The Vyper source of a bundled contract."""
    path = resources.files("cairn.chain") / "contracts" / f"{name}.vy"
    return path.read_text(encoding="utf-8")


_built: dict[str, CompiledContract] = {}  # this process's builds, by source key


def user_cache() -> Path:
    """The machine-wide build cache of this user."""
    return Path.home() / ".cache" / "cairn" / "contracts"


def compile_contract(name: str, cache_dir: Path | None = None) -> CompiledContract:
    """Compile contract `name`, reusing a cached build of the same source and compiler."""
    source = contract_source(name)
    key = hashlib.sha256(f"{vyper.__version__}\n{source}".encode()).hexdigest()
    file_name = f"{name}-{key[:16]}.json"
    folders = [f for f in (cache_dir, user_cache()) if f is not None]
    compiled = _built.get(key)
    stale = []  # folders without a readable build
    for folder in folders:
        found = _read(folder / file_name, name, key)
        if found is None:
            stale.append(folder)
        compiled = compiled or found
    if compiled is None:
        out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
        compiled = CompiledContract(name, out["abi"], out["bytecode"], key)
    _built[key] = compiled
    for folder in stale:
        with contextlib.suppress(OSError):  # a read-only home only loses the shared cache
            _write(folder / file_name, compiled)
    return compiled


def _read(path: Path, name: str, key: str) -> CompiledContract | None:
    try:
        data = json.loads(path.read_text())
        return CompiledContract(name, data["abi"], data["bytecode"], key)
    except (OSError, ValueError, KeyError, TypeError):  # missing or damaged: build again
        return None


def _write(path: Path, compiled: CompiledContract) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"abi": compiled.abi, "bytecode": compiled.bytecode})
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(payload)
    os.replace(tmp, path)
