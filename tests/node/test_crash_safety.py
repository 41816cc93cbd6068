"""One node per data folder, a chain behind the index refused, deposits credited once kept."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from cairn.chain.anvil import AnvilProcess
from cairn.core.errors import ConfigError
from cairn.node import DEV_TOKENS, TOKEN, Node


def dev(node: Node, label: str) -> LocalAccount:
    return node.signers.get(node.keystore.find_by_label(label).address)


def test_a_second_node_on_a_data_folder_in_use_is_refused(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    folder = tmp_path / "n"
    first = make_node(folder)
    with pytest.raises(ConfigError) as caught:
        make_node(folder, chain=None)
    assert caught.value.message.startswith(f"data folder {folder} is in use by another Cairn node")
    assert f"(PID {os.getpid()})" in caught.value.message
    assert (folder / "node.lock").read_text().strip() == str(os.getpid())
    first.close()  # the folder is free again
    again = make_node(folder, chain=None)
    assert again.backend.kind == "memory"


def test_a_node_that_fails_to_start_leaves_the_folder_free(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    make_node(tmp_path / "n").close()
    with pytest.raises(ConfigError, match="was created with --chain memory"):
        make_node(tmp_path / "n", chain="anvil")
    assert make_node(tmp_path / "n", chain=None).backend.kind == "memory"


def mine(url: str, blocks: int) -> None:
    for _ in range(blocks):
        httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []})


@pytest.mark.process
@pytest.mark.slow
def test_a_chain_behind_the_index_is_refused_at_start(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    data_dir = tmp_path / "n"
    state = data_dir / "chain" / "anvil-state.json"
    first = make_node(data_dir, chain="anvil")
    alice = dev(first, "alice")
    kept = first.assets.register(alice, kind="dataset", name="Kept", licence="MIT")
    first.close()
    saved = state.read_bytes()

    second = make_node(data_dir, chain=None)
    lost = second.assets.register(alice, kind="dataset", name="Rolled back", licence="MIT")
    assert lost.asset_id == kept.asset_id + 1
    head = second.client.block_number()
    second.close()
    matching = state.read_bytes()

    state.write_bytes(saved)  # the chain goes back to before `lost`; the index does not
    with pytest.raises(ConfigError) as caught:
        make_node(data_dir, chain=None)
    message = caught.value.message
    assert message.startswith(f"the anvil chain saved in {state} does not have what")
    assert f"cursor is at block {head} (0x" in message
    assert f"but the chain ends at block {head - 1}." in message  # `lost` was the newest block
    assert "move the index aside" in message

    # A chain that went on without the index has other blocks at those numbers.
    fork = AnvilProcess(state)
    fork.start()
    mine(fork.url, 3)
    fork.stop()
    with pytest.raises(ConfigError, match=f"cursor is at block {head} .*has another block there"):
        make_node(data_dir, chain=None)

    # With the chain state that belongs to the index, the node starts and serves both assets.
    state.write_bytes(matching)
    third = make_node(data_dir, chain=None)
    assert [a.name for a in third.assets.list(owner=alice.address)] == ["Rolled back", "Kept"]
    assert third.chain.registry.owner_of(lost.asset_id) == alice.address


def saved_at(state: Path) -> int | None:
    return state.stat().st_mtime_ns if state.exists() else None


def wait_for_a_save(state: Path) -> None:
    """Return just after anvil rewrote its state file: its next save is a second away."""
    before = saved_at(state)
    deadline = time.monotonic() + 5
    while saved_at(state) == before:
        assert time.monotonic() < deadline, "anvil did not save its state within 5 s"
        time.sleep(0.01)


@pytest.mark.process
@pytest.mark.slow
def test_a_credited_deposit_survives_kill_9_of_node_and_anvil(
    make_node: Callable[..., Node], tmp_path: Path
) -> None:
    data_dir = tmp_path / "n"
    node = make_node(data_dir, chain="anvil")
    carol = dev(node, "carol")
    process = node.backend.process  # type: ignore[attr-defined]
    wait_for_a_save(process.state_file)
    node.chain.token.transfer(carol, node.economy.treasury, 100 * TOKEN)
    credited = node.economy.balances.get(carol.address)  # what POST /prepaid/deposits answers
    assert credited.deposited == 100 * TOKEN
    os.kill(process.pid, signal.SIGKILL)  # anvil dies with only what it saved...
    node.close()  # ...and the node, which keeps nothing but its index, is gone too

    again = make_node(data_dir, chain=None)
    assert again.chain.token.balance_of(carol.address) == DEV_TOKENS - 100 * TOKEN
    assert again.economy.balances.get(carol.address).deposited == 100 * TOKEN
