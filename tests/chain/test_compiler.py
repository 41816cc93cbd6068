"""Contracts compile with the vyper package on first use and are cached by source hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import vyper
from vyper.compiler.input_bundle import FileInput, FilesystemInputBundle
from vyper.compiler.phases import CompilerData

from cairn.chain import compiler
from cairn.chain.compiler import CONTRACT_NAMES, compile_contract


def test_a_compiled_contract_is_cached_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = compile_contract("CairnToken", tmp_path)
    cached = list(tmp_path.glob("CairnToken-*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["bytecode"] == first.bytecode

    def no_compiler(*_: object, **__: object) -> None:
        raise AssertionError("recompiled although the source did not change")

    monkeypatch.setattr(vyper, "compile_code", no_compiler)
    again = compile_contract("CairnToken", tmp_path)
    assert again == first


@pytest.fixture(autouse=True)
def own_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets an empty user cache and an empty in-process memo."""
    folder = tmp_path / "user-cache"
    monkeypatch.setattr(compiler, "user_cache", lambda: folder)
    monkeypatch.setattr(compiler, "_built", {})
    return folder


def test_a_build_is_shared_by_every_data_folder_of_the_user(
    tmp_path: Path, own_user_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = compile_contract("CairnToken", tmp_path / "node-a")
    assert list(own_user_cache.glob("CairnToken-*.json"))
    monkeypatch.setattr(compiler, "_built", {})  # another process

    def no_compiler(*_: object, **__: object) -> None:
        raise AssertionError("recompiled although the user cache has the build")

    monkeypatch.setattr(vyper, "compile_code", no_compiler)
    assert compile_contract("CairnToken", tmp_path / "node-b") == first
    assert list((tmp_path / "node-b").glob("CairnToken-*.json"))  # copied to the data folder


def test_a_damaged_cache_entry_is_rebuilt(tmp_path: Path, own_user_cache: Path) -> None:
    first = compile_contract("CairnToken", tmp_path)
    for path in [*tmp_path.glob("CairnToken-*.json"), *own_user_cache.glob("CairnToken-*.json")]:
        path.write_text("{not json")
    compiler._built.clear()
    assert compile_contract("CairnToken", tmp_path) == first


def test_an_edited_source_is_recompiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = compile_contract("CairnToken", tmp_path)
    edited = compiler.contract_source("CairnToken") + "\n# an edit\n"
    monkeypatch.setattr(compiler, "contract_source", lambda name: edited)
    changed = compile_contract("CairnToken", tmp_path)
    assert changed.source_hash != original.source_hash
    assert len(list(tmp_path.glob("CairnToken-*.json"))) == 2


def test_every_contract_keeps_the_pinned_pragma() -> None:
    for name in CONTRACT_NAMES:
        assert compiler.contract_source(name).startswith("# pragma version ~=0.4.0")


def test_a_damaged_entry_is_replaced(tmp_path: Path, own_user_cache: Path) -> None:
    first = compile_contract("CairnToken", tmp_path)
    [entry] = list(tmp_path.glob("CairnToken-*.json"))
    entry.write_text("{not json")
    compile_contract("CairnToken", tmp_path)
    assert json.loads(entry.read_text())["bytecode"] == first.bytecode


# ---------------------------------------------------------------------------- modules


def test_every_module_keeps_the_pinned_pragma_and_belongs_to_a_contract() -> None:
    folder = compiler.contracts_dir()
    imported: set[str] = set()
    for name in CONTRACT_NAMES:
        source = compiler.contract_source(name)
        imported |= set(compiler.imported_modules(source, folder / f"{name}.vy", folder))
    modules = {p.name for p in folder.glob("*.vy")} - {f"{name}.vy" for name in CONTRACT_NAMES}
    assert modules == imported  # no module that no contract imports
    for module in modules:
        assert (folder / module).read_text().startswith("# pragma version ~=0.4.0")


def test_the_cache_key_covers_every_file_the_compiler_reads() -> None:
    # vyper's own import resolution, against the modules the cache key is made of
    folder = compiler.contracts_dir().resolve()
    for name in CONTRACT_NAMES:
        path = folder / f"{name}.vy"
        source = compiler.contract_source(name)
        data = CompilerData(
            FileInput(source_id=-1, contents=source, path=path, resolved_path=path),
            FilesystemInputBundle([folder]),
        )
        read = {
            Path(f.resolved_path).resolve().relative_to(folder).as_posix()
            for f in data.resolved_imports.compiler_inputs
            if Path(f.resolved_path).resolve().is_relative_to(folder)
        }
        assert set(compiler.imported_modules(source, path, folder)) == read, name
        if name == "JobEscrow":
            assert len(read) == 7  # its modules, none of them left out


def test_imports_are_followed_in_every_form(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    files = {
        "Main.vy": "from . import a\nimport b as bee\nfrom .sub import (\n    c,\n    d,\n)\n"
        "from ethereum.ercs import IERC20\n",
        "a.vy": "from . import e\n",  # imported only through `a`
        "b.vy": "",
        "e.vy": "",
        "sub/c.vy": "from .. import b\n",  # up one folder, already found
        "sub/d.vyi": "",  # an interface file
        "unused.vy": "",
    }
    for relative, text in files.items():
        (tmp_path / relative).write_text(text)
    found = compiler.imported_modules(files["Main.vy"], tmp_path / "Main.vy", tmp_path)
    assert sorted(found) == ["a.vy", "b.vy", "e.vy", "sub/c.vy", "sub/d.vyi"]
    assert found["a.vy"] == files["a.vy"]


def _copy_of_the_contracts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the bundled contracts folder that the compiler reads instead."""
    folder = tmp_path / "contracts"
    shutil.copytree(compiler.contracts_dir(), folder)
    monkeypatch.setattr(compiler, "contracts_dir", lambda: folder)
    return folder


def test_an_edited_module_recompiles_the_contract_that_imports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a contract and its module, compiled for real: the edit reaches the bytecode
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "Tiny.vy").write_text(
        "# pragma version ~=0.4.0\nfrom . import tiny_part\n\n@external\n@pure\n"
        "def answer() -> uint256:\n    return tiny_part.ANSWER\n"
    )
    (folder / "tiny_part.vy").write_text(
        "# pragma version ~=0.4.0\nANSWER: constant(uint256) = 41\n"
    )
    monkeypatch.setattr(compiler, "contracts_dir", lambda: folder)
    first = compile_contract("Tiny", tmp_path / "build")
    assert compile_contract("Tiny", tmp_path / "build") == first  # unchanged: the cached build
    (folder / "tiny_part.vy").write_text(
        "# pragma version ~=0.4.0\nANSWER: constant(uint256) = 42\n"
    )
    edited = compile_contract("Tiny", tmp_path / "build")
    assert edited.source_hash != first.source_hash and edited.bytecode != first.bytecode
    assert len(list((tmp_path / "build").glob("Tiny-*.json"))) == 2


def test_editing_an_escrow_module_recompiles_job_escrow_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _copy_of_the_contracts(tmp_path, monkeypatch)
    compiled: list[str] = []

    def counting_compiler(source: str, **kwargs: object) -> dict[str, object]:
        compiled.append(str(kwargs["contract_path"]))
        return {"abi": [], "bytecode": f"0x{len(compiled):02x}"}

    monkeypatch.setattr(vyper, "compile_code", counting_compiler)
    for name in ("JobEscrow", "CairnToken"):
        compile_contract(name, tmp_path / "build")
    assert compiled == ["JobEscrow.vy", "CairnToken.vy"]
    for module in sorted(folder.glob("escrow_*.vy")):
        before = compile_contract("JobEscrow", tmp_path / "build")
        with module.open("a") as fh:
            fh.write("\n# an edit\n")
        assert compile_contract("JobEscrow", tmp_path / "build").source_hash != before.source_hash
        assert compile_contract("CairnToken", tmp_path / "build").bytecode == "0x02"
    assert compiled.count("JobEscrow.vy") == 1 + len(list(folder.glob("escrow_*.vy"))) > 4
    assert compiled.count("CairnToken.vy") == 1
