"""Contracts compile with the vyper package on first use and are cached by source hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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

    monkeypatch.setattr(compiler.vyper, "compile_code", no_compiler)
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

    monkeypatch.setattr(compiler.vyper, "compile_code", no_compiler)
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
