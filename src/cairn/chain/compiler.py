"""Compile Cairn's Vyper contracts with the `vyper` package, cached by source hash.

A cache entry is keyed by the sha256 of the compiler version, the contract's source and the
source of every module it imports from the contracts folder (found by following its `import`
lines, as the compiler does), so an edited contract, an edited module or a new compiler is
recompiled and an unchanged one never is. Builds are looked up in this process, then in the
caller's folder (the node passes its data folder), then in the user's cache
(`~/.cache/cairn/contracts`, shared by every node on the machine: compiling the contracts takes
several seconds); a build is written to both folders.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

VYPER_VERSION = metadata.version("vyper")  # without importing vyper: it loads only to compile

CONTRACT_NAMES = (
    "CairnToken",
    "AssetRegistry",
    "ContributionLedger",
    "RevenueDistributor",
    "JobEscrow",
    "LicenseToken",
    "DataBounty",
    "PrepaidVault",
)


@dataclass(frozen=True)
class CompiledContract:
    """The ABI and creation bytecode of one contract, with the hash of the source it came from."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    source_hash: str


def contracts_dir() -> Path:
    """The folder of the bundled contracts and the modules they import."""
    return Path(str(resources.files("cairn.chain") / "contracts"))


def contract_source(name: str) -> str:
    """The Vyper source of a bundled contract."""
    return (contracts_dir() / f"{name}.vy").read_text(encoding="utf-8")


# `import a.b [as c]` or `from .a import b [as c], d` (parenthesised lists are joined first)
_IMPORT = re.compile(
    r"^(?:from\s+([\w.]+)\s+)?import\s+([\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*)",
    re.M,
)


def imported_modules(source: str, path: Path, folder: Path) -> dict[str, str]:
    """The source of every module that `source` (the file at `path`) imports from `folder`.

    Direct and indirect imports, keyed by path relative to `folder`. Imports that are not files
    there (`ethereum.ercs`, the compiler's own interfaces) are left out: the compiler's version
    covers them.
    """
    found: dict[str, str] = {}
    pending = [(source, path)]
    while pending:
        text, importer = pending.pop()
        for target in _import_targets(text, importer, folder):
            relative = target.relative_to(folder).as_posix()
            if relative not in found:
                found[relative] = target.read_text(encoding="utf-8")
                pending.append((found[relative], target))
    return found


def _import_targets(source: str, importer: Path, folder: Path) -> list[Path]:
    """The files in `folder` that the import lines of `source` (the file `importer`) name."""
    joined = re.sub(r"\(([^)]*)\)", lambda m: m.group(1).replace("\n", " "), source)
    targets = []
    for package, names in _IMPORT.findall(joined):
        if package.startswith("."):  # relative to the importing file's folder
            dots = len(package) - len(package.lstrip("."))
            base = importer.parents[dots - 1].joinpath(*filter(None, package[dots:].split(".")))
        else:
            base = folder.joinpath(*filter(None, package.split(".")))
        for name in names.split(","):
            parts = name.split()[0].split(".")
            for suffix in (".vy", ".vyi"):
                candidate = base.joinpath(*parts[:-1], parts[-1] + suffix)
                if candidate.is_file() and candidate.resolve().is_relative_to(folder.resolve()):
                    targets.append(candidate)
    return targets


_built: dict[str, CompiledContract] = {}  # this process's builds, by source key


def user_cache() -> Path:
    """The machine-wide build cache of this user."""
    return Path.home() / ".cache" / "cairn" / "contracts"


def compile_contract(name: str, cache_dir: Path | None = None) -> CompiledContract:
    """Compile contract `name`, reusing a cached build of the same sources and compiler."""
    source, sources = contract_source(name), contracts_dir()
    path = sources / f"{name}.vy"
    key = _source_key(source, imported_modules(source, path, sources))
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
        import vyper  # a fifth of a second, paid only when no build is cached
        from vyper.compiler.input_bundle import FilesystemInputBundle

        out = vyper.compile_code(
            source,
            contract_path=Path(f"{name}.vy"),  # relative, so a build does not name the folder
            resolved_path=path,
            input_bundle=FilesystemInputBundle([sources]),
            output_formats=["abi", "bytecode"],
        )
        compiled = CompiledContract(name, out["abi"], out["bytecode"], key)
    _built[key] = compiled
    for folder in stale:
        with contextlib.suppress(OSError):  # a read-only home only loses the shared cache
            _write(folder / file_name, compiled)
    return compiled


def _source_key(source: str, modules: dict[str, str]) -> str:
    """The sha256 of the compiler version, a contract's source and its modules' sources."""
    digest = hashlib.sha256(f"{VYPER_VERSION}\n{source}".encode())
    for relative, text in sorted(modules.items()):
        digest.update(f"\0{relative}\0{text}".encode())
    return digest.hexdigest()


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
