"""The replay sample: drawn from the published reports, the same for everyone, flagged first."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.errors import InvalidInput
from cairn.verify.sampling import choose_rounds, sample_seed

LEAVES = [f"0x{i:064x}" for i in range(12)]
ROUNDS = {f"0xW{i}": list(range(1, 11)) for i in range(4)}


def test_the_seed_is_every_reports_leaf_and_the_job() -> None:
    seed = sample_seed("job", LEAVES)
    assert sample_seed("job", list(reversed(LEAVES))) == seed  # order does not matter
    assert sample_seed("job", [x.upper().replace("0X", "0x") for x in LEAVES]) == seed
    assert sample_seed("job", [*LEAVES[:-1], "0x" + "f" * 64]) != seed  # one report moves it
    assert sample_seed("other", LEAVES) != seed


@given(st.binary(min_size=32, max_size=32), st.integers(0, 3))
@settings(max_examples=50)
def test_every_worker_gets_its_rounds_and_any_validator_draws_the_same(
    seed: bytes, per_worker: int
) -> None:
    chosen = choose_rounds(seed, ROUNDS, per_worker=per_worker)
    assert chosen == choose_rounds(seed, ROUNDS, per_worker=per_worker)
    for worker, rounds in ROUNDS.items():
        mine = [r for w, r in chosen if w == worker]
        assert len(mine) == len(set(mine)) == per_worker
        assert set(mine) <= set(rounds)


def test_the_draw_spreads_over_the_rounds() -> None:
    seen = {r for i in range(200) for _, r in choose_rounds(bytes([i]) * 32, ROUNDS)}
    assert seen == set(range(1, 11))


def test_flagged_rounds_come_first_capped_and_only_accepted_ones() -> None:
    flagged = [("0xW1", r) for r in (2, 5, 9)] + [("0xW2", 4), ("0xW2", 99), ("nobody", 1)]
    chosen = choose_rounds(b"s" * 32, ROUNDS, flagged=flagged)
    w1 = [r for w, r in chosen if w == "0xW1"]
    assert len(w1) == 3 and set(w1[:2]) <= {2, 5, 9} and w1[2] not in w1[:2]
    w2 = [r for w, r in chosen if w == "0xW2"]
    assert w2[0] == 4 and len(w2) == 2  # round 99 was not its: not drawn
    assert all(w in ROUNDS for w, _ in chosen)


def test_a_worker_with_fewer_rounds_than_asked_gets_them_all() -> None:
    assert choose_rounds(b"x" * 32, {"a": [3]}, per_worker=2) == [("a", 3)]
    assert choose_rounds(b"x" * 32, {"a": []}) == []


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(InvalidInput, match="0 or more"):
        choose_rounds(b"x" * 32, ROUNDS, per_worker=-1)
