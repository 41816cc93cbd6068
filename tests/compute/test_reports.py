"""Work reports: signatures, digests, leaves and work shares."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from cairn.compute.reports import (
    WorkReport,
    params_digest,
    report_from_json,
    report_leaf,
    sign_report,
    verify_report,
    work_shares,
)
from cairn.core.errors import InvalidInput

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
