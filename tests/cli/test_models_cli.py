"""`cairn model register` with weights larger than one request: sent in chunks, with a progress
bar over the folder's bytes, and downloaded back byte for byte."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from cairn.core.cid import cid_of
from cairn.node import Node
from tests.cli.conftest import InProcess
from tests.conftest import LiveServer

MiB = 2**20


def test_a_model_over_one_chunk_registers_with_a_progress_bar(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    weights = random.Random(7).randbytes(3 * MiB + 5)  # over the 1 MiB chunk: four chunks
    (folder / "model.safetensors").write_bytes(weights)
    total = 3 * MiB + 5 + (folder / "config.json").stat().st_size
    with LiveServer(make_node(upload_chunk_mb=1)) as live:
        cairn = InProcess(live, CAIRN_UPLOAD_CHUNK_MB="1")
        registered = cairn(
            "model", "register", str(folder), "--name", "big", "--licence", "MIT", "--from", "alice"
        ).text
        assert "Uploading model" in registered and "100%" in registered, registered
        assert f"{total / MiB:.1f}/{total / MiB:.1f} MiB" in registered, registered
        found = re.search(r"Registered model (\d+)", registered)
        assert found, registered
        out = tmp_path / "back"
        cairn("model", "download", found.group(1), "--out", str(out), "--as", "alice")
        staged = live.node.data_dir / "uploads"
        # the weights went in chunks (the small config.json in one request)
        assert [json.loads(p.read_text())["cid"] for p in staged.glob("*.json")] == [
            cid_of(weights)
        ]
    assert (out / "model.safetensors").read_bytes() == weights
