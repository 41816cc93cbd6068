"""cairn.core.aggregation: the weighted mean, and median, trimmed mean and Krum against honest
workers near a true vector plus Byzantine workers sending whatever they like."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core.aggregation import (
    AGGREGATORS,
    Aggregator,
    CoordinateMedian,
    Krum,
    Tensors,
    TrimmedMean,
    WeightedMean,
    make_aggregator,
)
from cairn.core.errors import InvalidInput

SHAPES = {"w": (2, 3), "b": (3,)}  # 9 coordinates over two parameters
DIM = sum(math.prod(s) for s in SHAPES.values())


def unflatten(vector: torch.Tensor) -> Tensors:
    """A state dict with SHAPES' layout from a flat (DIM,) vector."""
    out: Tensors = {}
    start = 0
    for name, shape in SHAPES.items():
        size = math.prod(shape)
        out[name] = vector[start : start + size].reshape(shape).clone()
        start += size
    return out


def flatten(update: Tensors) -> torch.Tensor:
    """The (DIM,) vector of a SHAPES-layout state dict, in float64."""
    return torch.cat([update[name].reshape(-1).to(torch.float64) for name in SHAPES])


@dataclass
class Round:
    """n updates of which the ones at `byzantine` positions are adversarial."""

    updates: list[Tensors]
    honest: list[int]
    byzantine: list[int]

    def honest_vectors(self) -> torch.Tensor:
        return torch.stack([flatten(self.updates[i]) for i in self.honest])  # (h, DIM)

    def honest_mean(self) -> torch.Tensor:
        return self.honest_vectors().mean(dim=0)  # (DIM,)

    def honest_diameter(self) -> float:
        return float(torch.cdist(self.honest_vectors(), self.honest_vectors()).max())


def make_round(seed: int, n_honest: int, bad_vectors: list[torch.Tensor]) -> Round:
    """Honest updates: a true vector plus N(0, 0.1^2) noise; Byzantine ones as given, at random
    positions among the honest ones."""
    gen = torch.Generator().manual_seed(seed)
    truth = torch.randn(DIM, generator=gen, dtype=torch.float64)  # (DIM,)
    honest = [
        truth + 0.1 * torch.randn(DIM, generator=gen, dtype=torch.float64) for _ in range(n_honest)
    ]
    n = n_honest + len(bad_vectors)
    order = torch.randperm(n, generator=gen).tolist()
    bad_at = sorted(order[: len(bad_vectors)])
    vectors: list[torch.Tensor] = []
    good, bad = iter(honest), iter(bad_vectors)
    for i in range(n):
        vectors.append(next(bad) if i in bad_at else next(good))
    return Round(
        updates=[unflatten(v) for v in vectors],
        honest=[i for i in range(n) if i not in bad_at],
        byzantine=bad_at,
    )


def huge(seed: int, f: int, scale: float) -> list[torch.Tensor]:
    """f Byzantine vectors of size ~scale, all pulling the same way, as colluders would."""
    gen = torch.Generator().manual_seed(seed + 1)
    direction = torch.sign(torch.randn(DIM, generator=gen, dtype=torch.float64))  # (DIM,)
    return [
        scale * direction + torch.randn(DIM, generator=gen, dtype=torch.float64) for _ in range(f)
    ]


def assert_within_honest_range(result: Tensors, r: Round) -> None:
    """Each coordinate of `result` lies between the smallest and largest honest value."""
    hv = r.honest_vectors()  # (h, DIM)
    x = flatten(result)  # (DIM,)
    slack = 1e-9 * (1 + hv.abs().max())
    assert bool((x >= hv.min(dim=0).values - slack).all())
    assert bool((x <= hv.max(dim=0).values + slack).all())


def krum_bound(r: Round, f: int) -> float:
    """How far Krum's pick can be from the honest mean (see krum.py): (1 + sqrt((n-f-2)/(n-2f-1))) D."""
    n = len(r.updates)
    return (1 + math.sqrt((n - f - 2) / (n - 2 * f - 1))) * r.honest_diameter() * (1 + 1e-9)


def distance(a: Tensors, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(flatten(a) - b))


# --- the weighted mean ------------------------------------------------------------------------


def test_mean_matches_manual_weighted_mean() -> None:
    gen = torch.Generator().manual_seed(0)
    updates = [unflatten(torch.randn(DIM, generator=gen)) for _ in range(3)]
    weights = [10.0, 30.0, 60.0]
    result = WeightedMean().aggregate(updates, weights)
    for name in SHAPES:
        expected = 0.1 * updates[0][name] + 0.3 * updates[1][name] + 0.6 * updates[2][name]
        torch.testing.assert_close(result[name], expected)
        assert result[name].dtype == torch.float32


def test_mean_accepts_integer_sample_counts_and_zero_weights() -> None:
    updates = [unflatten(torch.full((DIM,), v)) for v in (1.0, 2.0, 100.0)]
    result = WeightedMean().aggregate(updates, [1, 3, 0])
    torch.testing.assert_close(flatten(result), torch.full((DIM,), 1.75, dtype=torch.float64))


@pytest.mark.parametrize("name", AGGREGATORS)
def test_identical_updates_aggregate_to_that_update(name: str) -> None:
    one = unflatten(torch.linspace(-1, 1, DIM))
    result = make_aggregator(name).aggregate([one] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    for key in SHAPES:
        torch.testing.assert_close(result[key], one[key])


@pytest.mark.parametrize("name", AGGREGATORS)
def test_inputs_are_not_mutated_and_results_are_new_tensors(name: str) -> None:
    gen = torch.Generator().manual_seed(1)
    updates = [unflatten(torch.randn(DIM, generator=gen)) for _ in range(5)]
    before = [{k: v.clone() for k, v in u.items()} for u in updates]
    result = make_aggregator(name).aggregate(updates, [1.0] * 5)
    for u, b in zip(updates, before, strict=True):
        for key in SHAPES:
            assert torch.equal(u[key], b[key])
    for key in SHAPES:
        result[key].add_(1.0)  # writing to the result touches no input
    for u, b in zip(updates, before, strict=True):
        for key in SHAPES:
            assert torch.equal(u[key], b[key])


@pytest.mark.parametrize("name", AGGREGATORS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_result_keeps_the_input_dtype(name: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    updates = [
        {k: v.to(dtype) for k, v in unflatten(torch.randn(DIM, generator=gen)).items()}
        for _ in range(5)
    ]
    result = make_aggregator(name).aggregate(updates, [1.0] * 5)
    assert {k: v.dtype for k, v in result.items()} == {"w": dtype, "b": dtype}
    assert {k: v.shape for k, v in result.items()} == {k: torch.Size(s) for k, s in SHAPES.items()}


def test_mixed_dtypes_promote() -> None:
    a = {"w": torch.ones(2, dtype=torch.bfloat16)}
    b = {"w": torch.full((2,), 3.0, dtype=torch.float64)}
    result = WeightedMean().aggregate([a, b], [1.0, 1.0])
    assert result["w"].dtype == torch.float64
    torch.testing.assert_close(result["w"], torch.full((2,), 2.0, dtype=torch.float64))


def test_bfloat16_is_summed_in_float32() -> None:
    # 256 + 1 is not representable in bfloat16; summing there would lose the small updates
    updates = [{"w": torch.tensor([256.0], dtype=torch.bfloat16)}] + [
        {"w": torch.tensor([1.0], dtype=torch.bfloat16)} for _ in range(255)
    ]
    result = WeightedMean().aggregate(updates, [1.0] * 256)
    assert float(result["w"]) == pytest.approx((256 + 255) / 256, rel=1e-2)


# --- median and trimmed mean: hand-checked figures --------------------------------------------


def test_median_of_odd_and_even_counts() -> None:
    def scalar(v: float) -> Tensors:
        return {"x": torch.tensor([float(v)])}

    median = CoordinateMedian()
    assert float(median.aggregate([scalar(v) for v in (1, 5, 2)], [1, 1, 1])["x"]) == 2.0
    # even n: the mean of the two middle values, whatever the order
    assert float(median.aggregate([scalar(v) for v in (100, 2, 3, 1)], [1] * 4)["x"]) == 2.5


def test_median_ignores_weights() -> None:
    updates = [{"x": torch.tensor([v])} for v in (1.0, 2.0, 1000.0)]
    assert float(CoordinateMedian().aggregate(updates, [1, 1, 1e9])["x"]) == 2.0


def test_median_is_coordinate_wise() -> None:
    updates = [{"x": torch.tensor(v)} for v in ([1.0, 30.0], [2.0, 10.0], [3.0, 20.0])]
    assert CoordinateMedian().aggregate(updates, [1] * 3)["x"].tolist() == [2.0, 20.0]


def test_trimmed_mean_drops_k_at_each_end() -> None:
    updates = [{"x": torch.tensor([v])} for v in (100.0, 1.0, -50.0, 2.0, 3.0)]
    # n = 5, trim_ratio 0.2: k = 1; drop -50 and 100, mean of 1, 2, 3
    assert float(TrimmedMean(0.2).aggregate(updates, [1] * 5)["x"]) == 2.0
    # trim_ratio 0.19: k = floor(0.95) = 0, the plain mean
    assert float(TrimmedMean(0.19).aggregate(updates, [1] * 5)["x"]) == pytest.approx(56 / 5)
    assert TrimmedMean(0.2).trimmed(5) == 1 and TrimmedMean(0.19).trimmed(5) == 0


def test_trimmed_mean_ignores_weights() -> None:
    updates = [{"x": torch.tensor([v])} for v in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert float(TrimmedMean(0.2).aggregate(updates, [1, 1, 1, 1e9, 1])["x"]) == 2.0


# --- Krum: hand-checked figures ---------------------------------------------------------------


def test_krum_picks_the_update_nearest_its_neighbours() -> None:
    # n = 5, f = 1: each score sums the n - f - 2 = 2 nearest squared distances
    values = [0.0, 1.0, 3.0, 10.0, -100.0]
    updates = [{"x": torch.tensor([v])} for v in values]
    # scores: 0 -> 1 + 9 = 10; 1 -> 1 + 4 = 5; 3 -> 4 + 9 = 13; 10 -> 49 + 81; -100 -> huge
    assert Krum(byzantine=1).select(updates) == [1]
    assert float(Krum(byzantine=1).aggregate(updates, [1] * 5)["x"]) == 1.0
    assert Krum(byzantine=1, multi_krum=3).select(updates) == [1, 0, 2]
    multi = Krum(byzantine=1, multi_krum=3).aggregate(updates, [1] * 5)
    assert float(multi["x"]) == pytest.approx(4.0 / 3)


def test_krum_distance_spans_every_parameter() -> None:
    # per parameter, worker 2 looks central in "a" only; over the whole vector worker 1 wins
    updates = [
        {"a": torch.tensor([0.0]), "b": torch.tensor([0.0])},
        {"a": torch.tensor([1.0]), "b": torch.tensor([0.0])},
        {"a": torch.tensor([1.0]), "b": torch.tensor([9.0])},
        {"a": torch.tensor([2.0]), "b": torch.tensor([0.0])},
        {"a": torch.tensor([50.0]), "b": torch.tensor([0.0])},
    ]
    assert Krum(byzantine=1).select(updates) == [1]


def test_krum_ties_go_to_the_lower_index() -> None:
    updates = [{"x": torch.tensor([0.0])} for _ in range(5)]
    assert Krum(byzantine=1, multi_krum=2).select(updates) == [0, 1]


def test_krum_selects_an_honest_update_and_multi_krum_averages_only_honest_ones() -> None:
    f = 3
    r = make_round(7, n_honest=8, bad_vectors=huge(7, f, scale=1e6))  # n = 11 >= 2f + 3 = 9
    picked = Krum(byzantine=f).select(r.updates)
    assert picked[0] in r.honest
    krum = Krum(byzantine=f).aggregate(r.updates, [1.0] * 11)
    assert torch.equal(flatten(krum), flatten(r.updates[picked[0]]))

    # multi_krum = n - f: exactly the honest updates, so the honest mean
    multi = Krum(byzantine=f, multi_krum=8)
    assert sorted(multi.select(r.updates)) == r.honest
    torch.testing.assert_close(flatten(multi.aggregate(r.updates, [1.0] * 11)), r.honest_mean())


def test_krum_survives_float32_updates_whose_squares_overflow() -> None:
    honest = [{"x": torch.tensor([1.0, 2.0]) + 0.01 * i} for i in range(4)]
    bad = {"x": torch.tensor([3e38, -3e38])}  # near float32's max; squares overflow float32
    picked = Krum(byzantine=1).select([*honest, bad])
    assert picked[0] in range(4)


# --- robustness: arbitrary Byzantine updates --------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_honest=st.integers(1, 8),
    f=st.integers(0, 7),
    scale=st.floats(1e4, 1e12),
)
def test_median_stays_in_the_honest_range_while_the_mean_is_pulled_away(
    seed: int, n_honest: int, f: int, scale: float
) -> None:
    f = min(f, n_honest - 1)  # f < n / 2
    r = make_round(seed, n_honest, huge(seed, f, scale))
    n = len(r.updates)
    assert_within_honest_range(CoordinateMedian().aggregate(r.updates, [1.0] * n), r)
    if f > 0:
        pulled = distance(WeightedMean().aggregate(r.updates, [1.0] * n), r.honest_mean())
        assert pulled > f / n * scale  # roughly (f / n) * scale * sqrt(DIM)
        assert pulled > 100 * r.honest_diameter()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_honest=st.integers(1, 8),
    f=st.integers(0, 7),
    extra=st.integers(0, 3),
    scale=st.floats(1e4, 1e12),
)
def test_trimmed_mean_stays_in_the_honest_range_while_the_mean_is_pulled_away(
    seed: int, n_honest: int, f: int, extra: int, scale: float
) -> None:
    f = min(f, n_honest - 1)
    n = n_honest + f
    k = min(f + extra, (n - 1) // 2)  # trim at least f at each end, keep at least one
    trim_ratio = (k + 0.25) / n  # floor(trim_ratio * n) == k
    aggregator = TrimmedMean(trim_ratio)
    assert aggregator.trimmed(n) == k
    r = make_round(seed, n_honest, huge(seed, f, scale))
    assert_within_honest_range(aggregator.aggregate(r.updates, [1.0] * n), r)
    if f > 0:
        pulled = distance(WeightedMean().aggregate(r.updates, [1.0] * n), r.honest_mean())
        assert pulled > 100 * r.honest_diameter()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    f=st.integers(0, 3),
    extra=st.integers(0, 4),
    m=st.integers(1, 20),
    scale=st.floats(1e4, 1e12),
)
def test_krum_stays_near_the_honest_mean_and_picks_honest_updates(
    seed: int, f: int, extra: int, m: int, scale: float
) -> None:
    n = 2 * f + 3 + extra
    m = min(m, n - f)
    r = make_round(seed, n - f, huge(seed, f, scale))
    assert set(Krum(byzantine=f, multi_krum=m).select(r.updates)) <= set(r.honest)
    result = Krum(byzantine=f, multi_krum=m).aggregate(r.updates, [1.0] * n)
    assert distance(result, r.honest_mean()) <= krum_bound(r, f)
    if f > 0:
        pulled = distance(WeightedMean().aggregate(r.updates, [1.0] * n), r.honest_mean())
        assert pulled > 100 * krum_bound(r, f)


# Byzantine vectors chosen by hypothesis itself: any placement, near or far, colluding or not.
bad_coordinate = st.floats(-1e15, 1e15, allow_nan=False, allow_infinity=False)
bad_vector = st.lists(bad_coordinate, min_size=DIM, max_size=DIM).map(
    lambda xs: torch.tensor(xs, dtype=torch.float64)
)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), n_honest=st.integers(2, 6), bad=st.lists(bad_vector, max_size=5)
)
def test_robust_aggregators_bound_any_byzantine_minority(
    seed: int, n_honest: int, bad: list[torch.Tensor]
) -> None:
    f = len(bad)
    r = make_round(seed, n_honest, bad)
    n = len(r.updates)
    ones = [1.0] * n
    if f < n_honest:  # median: f < n / 2
        assert_within_honest_range(CoordinateMedian().aggregate(r.updates, ones), r)
        k = (n - 1) // 2
        if f <= k:
            assert_within_honest_range(TrimmedMean((k + 0.25) / n).aggregate(r.updates, ones), r)
    if n >= 2 * f + 3:
        for m in (1, n - f):
            result = Krum(byzantine=f, multi_krum=m).aggregate(r.updates, ones)
            assert distance(result, r.honest_mean()) <= krum_bound(r, f)


# --- make_aggregator and bad input ------------------------------------------------------------


def test_make_aggregator_builds_each_strategy_with_its_options() -> None:
    assert isinstance(make_aggregator("mean"), WeightedMean)
    assert isinstance(make_aggregator("median"), CoordinateMedian)
    trimmed = make_aggregator("trimmed_mean", trim_ratio=0.3)
    assert isinstance(trimmed, TrimmedMean) and trimmed.trim_ratio == 0.3
    krum = make_aggregator("krum", byzantine=2, multi_krum=3)
    assert isinstance(krum, Krum) and (krum.byzantine, krum.multi_krum) == (2, 3)
    assert AGGREGATORS == ("mean", "median", "trimmed_mean", "krum")
    for name in AGGREGATORS:
        aggregator: Aggregator = make_aggregator(name)
        assert aggregator.name == name


def test_unknown_aggregator_lists_the_choices() -> None:
    with pytest.raises(InvalidInput) as err:
        make_aggregator("fedprox")
    assert str(err.value) == (
        "aggregation: unknown aggregator 'fedprox'; "
        "choose one of ['mean', 'median', 'trimmed_mean', 'krum']"
    )


def good(v: float = 1.0) -> Tensors:
    return {"w": torch.full((2, 3), v), "b": torch.full((3,), v)}


@pytest.mark.parametrize("name", AGGREGATORS)
@pytest.mark.parametrize(
    ("updates", "weights", "message"),
    [
        ([], [], "aggregation: no updates to aggregate"),
        (
            [good(), good(), {"w": torch.ones(2, 3), "c": torch.ones(3)}],
            [1, 1, 1],
            "worker 2: missing parameters ['b']; unexpected parameters ['c']",
        ),
        (
            [good(), {"w": torch.ones(3, 2), "b": torch.ones(3)}, good()],
            [1, 1, 1],
            "worker 1: parameter 'w' has shape (3, 2), expected (2, 3)",
        ),
        (
            [good(), good(), {"w": torch.ones(2, 3), "b": torch.tensor([1.0, float("nan"), 1.0])}],
            [1, 1, 1],
            "worker 2: parameter 'b' has non-finite values (NaN or inf)",
        ),
        (
            [{"w": torch.full((2, 3), float("inf")), "b": torch.ones(3)}, good(), good()],
            [1, 1, 1],
            "worker 0: parameter 'w' has non-finite values (NaN or inf)",
        ),
        (
            [good(), {"w": torch.ones(2, 3, dtype=torch.int64), "b": torch.ones(3)}, good()],
            [1, 1, 1],
            "worker 1: parameter 'w' has dtype torch.int64; only floating-point parameters can be aggregated",
        ),
        (
            [good(), {"w": [1.0] * 6, "b": torch.ones(3)}, good()],
            [1, 1, 1],
            "worker 1: parameter 'w' must be a torch.Tensor; got list",
        ),
        ([good(), good(), good()], [1, 1], "aggregation: got 3 updates but 2 weights"),
        (
            [good(), good(), good()],
            [1, -1, 1],
            "aggregation: worker 1 has weight -1; weights must be finite and >= 0",
        ),
        (
            [good(), good(), good()],
            [1, float("nan"), 1],
            "aggregation: worker 1 has weight nan; weights must be finite and >= 0",
        ),
        (
            [good(), good(), good()],
            [1, 1, float("inf")],
            "aggregation: worker 2 has weight inf; weights must be finite and >= 0",
        ),
        (
            [good(), good(), good()],
            [True, 1, 1],
            "aggregation: worker 0 has weight True; weights must be finite and >= 0",
        ),
        (
            [good(), good(), good()],
            [0, 0, 0],
            "aggregation: weights sum to 0; at least one must be positive",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(
    name: str, updates: list[Tensors], weights: list[float], message: str
) -> None:
    # Krum is built to accept 3 updates here (f = 0), so the input check is what fails
    aggregator = Krum(byzantine=0) if name == "krum" else make_aggregator(name)
    with pytest.raises(InvalidInput) as err:
        aggregator.aggregate(updates, weights)
    assert str(err.value) == message


def test_krum_needs_2f_plus_3_updates() -> None:
    updates = [good(float(i)) for i in range(6)]
    with pytest.raises(InvalidInput) as err:
        Krum(byzantine=2).aggregate(updates, [1.0] * 6)
    assert str(err.value) == (
        "krum: 6 updates cannot tolerate 2 Byzantine workers; need at least 2f + 3 = 7"
    )
    with pytest.raises(InvalidInput):
        Krum(byzantine=2).select(updates)
    assert len(Krum(byzantine=2).aggregate([*updates, good()], [1.0] * 7)) == 2  # n = 7 is enough


def test_multi_krum_cannot_average_more_than_n_minus_f() -> None:
    updates = [good(float(i)) for i in range(5)]
    with pytest.raises(InvalidInput) as err:
        Krum(byzantine=1, multi_krum=5).aggregate(updates, [1.0] * 5)
    assert str(err.value) == (
        "krum: multi_krum = 5 exceeds n - f = 4; a Byzantine update would be averaged in"
    )
    Krum(byzantine=1, multi_krum=4).aggregate(updates, [1.0] * 5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrimmedMean(0.5), "trimmed_mean: trim_ratio must be in [0, 0.5); got 0.5"),
        (lambda: TrimmedMean(-0.1), "trimmed_mean: trim_ratio must be in [0, 0.5); got -0.1"),
        (lambda: Krum(byzantine=-1), "krum: byzantine must be an integer >= 0; got -1"),
        (lambda: Krum(byzantine=1.5), "krum: byzantine must be an integer >= 0; got 1.5"),  # type: ignore[arg-type]
        (lambda: Krum(multi_krum=0), "krum: multi_krum must be an integer >= 1; got 0"),
        (
            lambda: make_aggregator("trimmed_mean", trim_ratio=0.7),
            "trimmed_mean: trim_ratio must be in [0, 0.5); got 0.7",
        ),
    ],
)
def test_bad_options_are_refused(build: object, message: str) -> None:
    assert callable(build)
    with pytest.raises(InvalidInput) as err:
        build()
    assert str(err.value) == message
