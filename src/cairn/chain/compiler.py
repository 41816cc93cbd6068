"""Compile Cairn's Vyper contracts with the `vyper` package, cached by source hash.

The cache lives in a folder of the caller's choice (the node passes its data folder); a cache
entry is keyed by the sha256 of the source and the compiler version, so an edited contract or a
new compiler is recompiled and an unchanged one never is.
"""

from __future__ import annotations

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


def compile_contract(name: str, cache_dir: Path | None = None) -> CompiledContract:
    """Compile contract `name`, reusing a cached build of the same source and compiler."""
    source = contract_source(name)
    key = hashlib.sha256(f"{vyper.__version__}\n{source}".encode()).hexdigest()
    if cache_dir is not None:
        cached = cache_dir / f"{name}-{key[:16]}.json"
        if cached.exists():
            data = json.loads(cached.read_text())
            return CompiledContract(name, data["abi"], data["bytecode"], key)
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    compiled = CompiledContract(name, out["abi"], out["bytecode"], key)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"abi": compiled.abi, "bytecode": compiled.bytecode})
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(payload)
        os.replace(tmp, cached)
    return compiled
