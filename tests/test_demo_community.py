"""`cairn node start --demo` on a folder already seeded reconnects Erin's and Frank's provider
workers and tells nothing again; a seeding that was interrupted is not told over its remains.
(The first start's seeding is walked in the browser tests, on the node they start.)"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from cairn.demo_community import MARKER, DemoCommunity, demo_accounts
from cairn.node import Node
from tests.conftest import LiveServer

pytestmark = [pytest.mark.process, pytest.mark.slow]  # a SuperLink and two workers


def test_a_seeded_folder_gets_its_providers_back_and_no_second_story(
    make_node: Callable[..., Node],
) -> None:
    node = make_node(dev_accounts=demo_accounts())
    (node.data_dir / MARKER).write_text(json.dumps({"status": "seeded", "facts": {}}))
    node.start_compute()
    assets_before = len(node.assets.list(limit=100))
    with LiveServer(node):
        community = DemoCommunity(node)
        community.start()
        community.wait(timeout=120)
        try:
            assert len(community.workers) == 2
            assert all(
                w.process is not None and w.process.poll() is None for w in community.workers
            )
            for name in ("erin", "frank"):
                address = node.keystore.find_by_label(name).address
                assert node.chain.escrow.provider(address).active
        finally:
            community.stop()
    assert community.workers == [] and len(node.assets.list(limit=100)) == assets_before
    assert node.demo_status is None


def test_an_interrupted_seeding_is_not_told_again(make_node: Callable[..., Node]) -> None:
    node = make_node(dev_accounts=demo_accounts())
    (node.data_dir / MARKER).write_text(json.dumps({"status": "seeding", "started_at": 1}))
    with LiveServer(node):
        community = DemoCommunity(node)
        community.start()
        community.wait(timeout=60)
    assert community.workers == [] and community.state() == {"status": "seeding", "started_at": 1}
    assert node.data.datasets.list() == []
