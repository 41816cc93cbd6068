"""Screens of one round's updates: each cheat trips its screen, honest-looking rounds trip none."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.errors import InvalidInput
from cairn.verify.screens import KINDS, cosine, screen_round, suspects, update_vector

DIM = 256


def honest_round(seed: int, workers: int = 4, spread: float = 0.5) -> dict[str, torch.Tensor]:
    """Updates sharing a direction (the common gradient) with each worker's own part."""
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(DIM, generator=g, dtype=torch.float64)
    return {
        f"w{i}": common + spread * torch.randn(DIM, generator=g, dtype=torch.float64)
        for i in range(workers)
    }


def kinds_of(flags: list, worker: str) -> set[str]:  # type: ignore[type-arg]
    return {f.kind for f in flags if f.worker == worker}


@given(st.integers(0, 10_000), st.floats(0.2, 1.5), st.integers(2, 8))
@settings(max_examples=60, deadline=None)
def test_an_honest_looking_round_is_not_flagged(seed: int, spread: float, workers: int) -> None:
    updates = honest_round(seed, workers, spread)
    previous = {w: u.flip(0) for w, u in honest_round(seed + 1, workers, spread).items()}
    assert screen_round(updates, previous) == []


@given(st.integers(0, 10_000), st.floats(1e-6, 1e6))
@settings(max_examples=40, deadline=None)
def test_screens_do_not_depend_on_the_scale_of_the_updates(seed: int, scale: float) -> None:
    updates = honest_round(seed)
    updates["w1"] = -updates["w1"]
    updates["w2"] = updates["w0"].clone()
    flags = screen_round(updates)
    scaled = screen_round({w: scale * u for w, u in updates.items()})
    assert [(f.worker, f.kind) for f in flags] == [(f.worker, f.kind) for f in scaled]


@pytest.mark.parametrize(
    ("cheat", "kind"),
    [
        (lambda u: torch.zeros_like(u["w1"]), "zero"),
        (lambda u: 1e-5 * u["w1"], "zero"),
        (lambda u: u["w0"].clone(), "duplicate"),
        (lambda u: u["w0"] + 1e-4 * u["w2"], "duplicate"),  # a copy with a little noise
        (lambda u: 10 * u["w1"], "norm"),
        (lambda u: 0.1 * u["w1"], "norm"),
        (lambda u: -u["w1"], "direction"),
    ],
)
def test_each_cheat_trips_its_screen(cheat, kind: str) -> None:  # type: ignore[no-untyped-def]
    updates = honest_round(3)
    updates["w1"] = cheat(updates)
    flags = screen_round(updates)
    assert kind in kinds_of(flags, "w1")
    assert all(f.kind in KINDS for f in flags)
    if kind == "duplicate":
        assert suspects(flags) == {"w0", "w1"}  # who copied whom is the replay's to tell
    else:
        assert suspects(flags) == {"w1"}


def test_an_update_sent_again_is_stale() -> None:
    updates = honest_round(5)
    g = torch.Generator().manual_seed(4)  # last round: the same common direction, other parts
    last = {
        w: u + 0.5 * torch.randn(DIM, generator=g, dtype=torch.float64) for w, u in updates.items()
    }
    updates["w2"] = last["w2"].clone()
    assert kinds_of(screen_round(updates, last), "w2") == {"stale"}
    assert screen_round(updates, {w: u for w, u in last.items() if w != "w2"}) == []


def test_update_vector_is_returned_minus_start_in_name_order() -> None:
    start = {"b": torch.tensor([1.0, 2.0]), "a": torch.tensor([[0.5]])}
    returned = {"b": torch.tensor([2.0, 0.0]), "a": torch.tensor([[1.0]])}
    assert update_vector(start, returned).tolist() == [0.5, 1.0, -2.0]
    with pytest.raises(InvalidInput, match="names"):
        update_vector(start, {"a": returned["a"]})
    with pytest.raises(InvalidInput, match="shape"):
        update_vector(start, {"a": torch.zeros(2), "b": returned["b"]})


def test_a_non_finite_update_is_refused() -> None:
    updates = honest_round(6)
    updates["w3"][0] = float("nan")
    with pytest.raises(InvalidInput, match="w3 is not finite"):
        screen_round(updates)


def test_a_sketch_keeps_norm_ratios_and_cosines() -> None:
    g = torch.Generator().manual_seed(9)
    start = {"a": torch.randn(300, 70, generator=g), "b": torch.randn(5_000, generator=g)}
    ends = [{k: v + torch.randn(v.shape, generator=g) * (i + 1) for k, v in start.items()}
            for i in range(2)]  # fmt: skip
    whole = [update_vector(start, e) for e in ends]
    sketch = [update_vector(start, e, size=2_000) for e in ends]
    assert 2_000 <= sketch[0].numel() < 2_100 and whole[0].numel() == 26_000
    ratio = float(whole[1].norm() / whole[0].norm())
    assert float(sketch[1].norm() / sketch[0].norm()) == pytest.approx(ratio, rel=0.05)
    same = {k: v + 3 * (ends[0][k] - v) for k, v in start.items()}  # the first update, scaled
    assert cosine(update_vector(start, same, 2_000), sketch[0]) == pytest.approx(1.0)
    assert update_vector(start, ends[0], size=10**9).equal(whole[0])


def test_a_coordinators_screens_tell_a_stale_update_only_from_the_round_before() -> None:
    from cairn.verify.screens import RoundScreens

    g = torch.Generator().manual_seed(11)
    start = {"w": torch.zeros(64)}
    common = torch.randn(64, generator=g)

    def returned(i: int) -> dict[str, torch.Tensor]:
        return {"w": common + 0.7 * torch.randn(64, generator=g)}

    screens = RoundScreens()
    first = {n: (f"0xA{n}", returned(n)) for n in (1, 2, 3)}
    assert screens.screen(1, start, first) == []
    again = {1: first[1], 2: ("0xA2", returned(2)), 3: ("0xA3", returned(3))}
    assert screens.screen(2, start, again) == [
        {"node_id": 1, "account": "0xA1", "kind": "stale",
         "detail": "the same update as its last round's", "value": 1.0}
    ]  # fmt: skip
    later = RoundScreens()
    later.screen(1, start, first)
    assert later.screen(3, start, first) == []  # round 2 missed: nothing to compare with
