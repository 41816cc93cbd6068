"""`cairn worker stake|unbond|withdraw`: a provider sees its stake, unbonds it, and takes it back
once the unbonding period has passed and no job locks it; every refusal says what to do."""

from __future__ import annotations

from datetime import UTC, datetime

from cairn.core.cid import cid_of
from tests.api.test_api import dev_account
from tests.cli.conftest import InProcess
from tests.conftest import LiveServer

TOKEN = 10**18


def when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_a_provider_unbonds_and_withdraws_its_stake(cairn: InProcess, live: LiveServer) -> None:
    node = live.node
    escrow, token = node.chain.escrow, node.chain.token
    bob, alice = dev_account(node, "bob"), dev_account(node, "alice")
    balance = token.balance_of(bob.address)

    shown = cairn("worker", "stake", "--account", "bob").text
    assert "status │ none" in shown and "it has no stake in JobEscrow" in shown
    refused = cairn("worker", "unbond", "--account", "bob", ok=False).text
    assert "bob cannot unbond: it has no stake in JobEscrow" in refused

    escrow.register_provider(bob, token, 10 * TOKEN, "supernode@test")  # `cairn worker start`
    shown = cairn("worker", "stake", "--account", "bob").text
    assert "stake │ 10 CAIRN" in shown and "status │ active" in shown
    assert "unbonding period │ 1 day" in shown
    refused = cairn("worker", "withdraw", "--account", "bob", ok=False).text
    assert (
        "bob cannot withdraw yet: its stake is active: `cairn worker unbond --account bob` "
        "stops new jobs and starts 1 day of unbonding"
    ) in refused

    # a job bob took part in locks the stake until it ends
    model = node.assets.register(alice, kind="model", name="m", licence="MIT")
    job = "0x" + "ab" * 32
    deadline = node.client.block_time() + 3600
    escrow.create_job(alice, token, job, TOKEN, model.asset_id, cid_of(b"recipe"), deadline)
    escrow.enlist(node.operator, job, bob.address)

    unbonding = cairn("worker", "unbond", "--account", "bob").text
    until = escrow.provider(bob.address).withdraw_after
    assert until >= node.client.block_time() + 86_400 - 5
    assert "bob is unbonding" in unbonding and f"withdraw after │ {when(until)}" in unbonding
    refused = cairn("worker", "withdraw", "--account", "bob", ok=False).text
    assert f"unbonding until {when(until)}: withdraw after that" in refused
    refused = cairn("worker", "unbond", "--account", "bob", ok=False).text
    assert f"bob cannot unbond: unbonding until {when(until)}" in refused

    node.backend.tester.time_travel(until + 1)  # type: ignore[attr-defined]
    refused = cairn("worker", "withdraw", "--account", "bob", ok=False).text
    assert "1 open job(s) still lock its stake: withdraw once they finish" in refused
    escrow.cancel_job(alice, job)
    escrow.release(alice, job, bob.address)

    assert "status │ withdrawable" in cairn("worker", "stake", "--account", "bob").text
    withdrawn = cairn("worker", "withdraw", "--account", "bob").text
    assert "bob withdrew its stake" in withdrawn and "withdrawn │ 10 CAIRN" in withdrawn
    assert token.balance_of(bob.address) == balance
    assert "status │ none" in cairn("worker", "stake", "--account", "bob").text
