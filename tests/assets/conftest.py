"""The economy tests' world (a dataset with two contributors, a base model, a model trained from
both with its job's providers, a paying account) serves the assets' read models too."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.node import Node
from tests.economy.conftest import World, build_world


@pytest.fixture
def world(node: Node, tmp_path: Path) -> World:
    return build_world(node, tmp_path)
