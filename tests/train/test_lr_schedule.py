"""cairn.train.inner.learning_rate_at: linear warmup then a constant rate (every recipe's, as
before) or a cosine over the rest of the job down to MIN_LR_RATIO of the peak, as the DiLoCo
paper trains its baseline and its inner steps. inner_train and bench/diloco.py step on it."""

from __future__ import annotations

import math

import pytest

from cairn.train.inner import MIN_LR_RATIO, learning_rate_at

PEAK = 1e-3


def test_constant_warms_up_linearly_then_holds_the_peak() -> None:
    # 100 steps at ratio 0.03: 3 warmup steps at 1/3, 2/3, 3/3 of the peak, as inner_train did
    rates = [learning_rate_at(s, 100, PEAK, 0.03) for s in range(100)]
    assert rates[:3] == [PEAK * 1 / 3, PEAK * 2 / 3, PEAK * 1.0]
    assert rates[3:] == [PEAK] * 97
    assert learning_rate_at(500, 100, PEAK, 0.03) == PEAK  # past the job: still the peak
    assert learning_rate_at(0, 10, PEAK, 0.0) == PEAK  # no warmup: the peak from the start


def test_cosine_falls_from_the_peak_after_warmup_to_the_min_ratio_at_the_last_step() -> None:
    total, warmup = 100, 3  # ceil(0.03 * 100): the cosine runs over the 97 steps after it
    rate = [learning_rate_at(s, total, PEAK, 0.03, "cosine") for s in range(total)]

    def cosine(progress: float) -> float:
        return PEAK * (MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress)))

    assert rate[:warmup] == [learning_rate_at(s, total, PEAK, 0.03) for s in range(warmup)]
    assert rate[warmup - 1] == pytest.approx(cosine(0.0))  # the peak, where warmup ends
    for step in (warmup, 20, 50, 80, total - 1):
        assert rate[step] == pytest.approx(cosine((step + 1 - warmup) / (total - warmup)))
    assert rate[total - 1] == pytest.approx(MIN_LR_RATIO * PEAK)  # the job's last step
    assert all(a >= b for a, b in zip(rate[warmup:], rate[warmup + 1 :], strict=False))
    assert learning_rate_at(50 + warmup - 1, total, PEAK, 0.03, "cosine") > 0.5 * PEAK
    assert learning_rate_at(500, total, PEAK, 0.03, "cosine") == pytest.approx(0.1 * PEAK)


def test_cosine_takes_its_floor_and_counts_steps_across_rounds() -> None:
    # rounds of H=10 in a 40-step job: round 3's first step is the job's step 20
    assert learning_rate_at(20, 40, PEAK, 0.0, "cosine", min_ratio=0.0) == pytest.approx(
        PEAK * 0.5 * (1 + math.cos(math.pi * 21 / 40))
    )
    assert learning_rate_at(39, 40, PEAK, 0.0, "cosine", min_ratio=0.0) == pytest.approx(0.0)
