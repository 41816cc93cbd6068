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
