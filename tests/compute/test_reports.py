"""Work reports: signatures, digests, leaves and work shares."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from cairn.compute.reports import (
    REPLAY_FIELDS,
    WorkReport,
    check_round_inputs,
    json_digest,
    params_digest,
    published_report,
    report_from_json,
    report_leaf,
    sign_report,
    state_digest,
    verify_report,
    work_shares,
)
from cairn.core.errors import InvalidInput
from tests.signatures import published_signer

PROVIDER = Account.create()


def report(**changes: object) -> WorkReport:
    base = WorkReport(
        job_id="0x" + "ab" * 32,
        round=3,
        account=PROVIDER.address,
        node_id=17,
        shard=1,
        steps=50,
        samples=400,
        loss=1.25,
        params_digest=params_digest({"w": torch.ones(2, 3)}),
        compute_seconds=4.5,
    )
    return dataclasses.replace(base, **changes)


def test_a_signed_report_verifies_and_any_change_breaks_it() -> None:
    signed = report()
    signature = sign_report(signed, PROVIDER)
    verify_report(signed, signature)
    for change in ({"samples": 401}, {"round": 4}, {"job_id": "0x" + "cd" * 32}, {"loss": 1.0}):
        with pytest.raises(InvalidInput, match="signed by"):
            verify_report(report(**change), signature)


def test_a_provider_cannot_sign_for_another_account() -> None:
    with pytest.raises(InvalidInput, match="but the key is"):
        sign_report(report(account=Account.create().address), PROVIDER)


def test_malformed_signature_is_refused() -> None:
    with pytest.raises(InvalidInput, match="malformed"):
        verify_report(report(), "0x1234")


def test_digest_covers_names_shapes_dtypes_and_values() -> None:
    w = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    base = params_digest({"w": w})
    assert base == params_digest({"w": w.clone()})
    assert base != params_digest({"v": w})
    assert base != params_digest({"w": w.reshape(3, 2)})
    assert base != params_digest({"w": w.double()})
    bumped = w.clone()
    bumped[1, 2] += 1e-6
    assert base != params_digest({"w": bumped})


def test_leaf_depends_on_report_and_signature() -> None:
    signed = report()
    signature = sign_report(signed, PROVIDER)
    leaf = report_leaf(signed, signature)
    assert leaf.startswith("0x") and len(leaf) == 66
    assert leaf != report_leaf(report(samples=1), signature)
    assert report_from_json(dataclasses.asdict(signed)) == signed


def test_report_from_json_refuses_unknown_fields() -> None:
    with pytest.raises(InvalidInput, match="work report"):
        report_from_json({**dataclasses.asdict(report()), "bonus": 1})


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 10**6)), max_size=30))
def test_work_shares_sum_every_report(entries: list[tuple[str, int]]) -> None:
    accounts = {"a": "0xA", "b": "0xB", "c": "0xC"}
    reports = [report(account=accounts[who], samples=n) for who, n in entries]
    shares = work_shares(reports)
    assert sum(shares.values()) == sum(n for _, n in entries)
    for who, address in accounts.items():
        assert shares.get(address, 0) == sum(n for w, n in entries if w == who)


INPUTS = {
    "start_digest": params_digest({"w": torch.zeros(2, 3)}),
    "seed": 12345,
    "train_cid": "bafkreitrain",
    "shards": 2,
    "hparams_digest": json_digest({"learning_rate": 0.003, "batch_size": 4}),
    "start_step": 100,
    "total_steps": 250,
    "optimizer_digest": "",
}


def test_a_v1_report_signs_the_bytes_it_always_signed() -> None:
    old = report()
    assert not old.replayable
    body = old.canonical().decode()
    assert '"schema":"cairn.work-report/v1"' in body
    assert not any(f'"{name}"' in body for name in REPLAY_FIELDS)  # signed before v2: verifies


def test_a_replayable_report_signs_every_input_of_its_round() -> None:
    signed = report(**INPUTS)
    assert signed.replayable and '"schema":"cairn.work-report/v2"' in signed.canonical().decode()
    signature = sign_report(signed, PROVIDER)
    verify_report(signed, signature)
    assert report_from_json({"schema": "x", **dataclasses.asdict(signed)}) == signed
    for name in REPLAY_FIELDS:  # each input is signed: changing it breaks the signature
        changed = {"seed": 1, "shards": 3, "start_step": 0, "total_steps": 1}.get(name, "other")
        with pytest.raises(InvalidInput, match="signed by"):
            verify_report(report(**{**INPUTS, name: changed}), signature)
        with pytest.raises(InvalidInput, match=f"lack {name}"):  # all inputs or none
            report(**{**INPUTS, name: None})


def test_the_coordinator_refuses_a_report_naming_other_inputs_than_it_sent() -> None:
    sent = {k: v for k, v in INPUTS.items() if k != "optimizer_digest"}
    check_round_inputs(report(**INPUTS), sent)
    with pytest.raises(InvalidInput, match="cannot be replayed"):
        check_round_inputs(report(), sent)
    for name, other in [("start_digest", "00"), ("seed", 1), ("train_cid", "bafkother")]:
        with pytest.raises(InvalidInput, match=f"report's {name} is not"):
            check_round_inputs(report(**{**INPUTS, name: other}), sent)


def test_an_optimizer_states_digest_is_stable_and_sees_every_value() -> None:
    def state(value: float) -> dict[str, object]:
        return {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.full((2, 2), value)}},
            "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "params": [0]}],
        }

    assert state_digest(None) == ""
    assert state_digest(state(0.5)) == state_digest(state(0.5))
    assert state_digest(state(0.5)) != state_digest(state(0.25))
    assert state_digest(state(0.5)) != state_digest({**state(0.5), "param_groups": []})


@pytest.mark.parametrize("inputs", [{}, INPUTS], ids=["v1", "v2"])
def test_a_published_report_is_checked_by_any_wallet_library(inputs: dict[str, object]) -> None:
    signed = report(**inputs)
    signature = sign_report(signed, PROVIDER)
    published = json.loads(json.dumps(published_report(signed, signature)))  # a job's event
    assert published["signed"] == signed.canonical().decode()
    assert published_signer(published) == published["report"]["account"] == PROVIDER.address
    assert report_from_json({**published["report"], "signed": "", "leaf": ""}) == signed
