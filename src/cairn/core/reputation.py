"""An account's reputation on one dataset, from its gold answers and its agreement with decisions.

    reputation = (G·gold_correct + agreed + s·m) / (G·gold_total + decided + s)

This is the mean of a Beta posterior whose prior has mean m (`prior_mean`) and strength s
(`prior_strength`, in pseudo-answers), where each gold answer counts G = GOLD_WEIGHT times as much
as an agreement with a final decision: a gold answer is checked against a known truth, while an
agreement is checked against a decision the account itself helped make. A new account starts at m,
and a handful of answers can move it only part of the way.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.core.errors import InvalidInput

GOLD_WEIGHT = 3.0  # one gold answer is worth this many agreements with a decision


@dataclass(frozen=True)
class ReputationInput:
    """An account's record on one dataset."""

    gold_correct: int  # gold questions answered correctly
    gold_total: int  # gold questions answered
    agreed: int  # votes that matched the final decision
    decided: int  # votes on items that have been decided

    def __post_init__(self) -> None:
        for name in ("gold_correct", "gold_total", "agreed", "decided"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(
                    f"reputation: {name} must be a non-negative integer; got {value!r}"
                )
        if self.gold_correct > self.gold_total:
            raise InvalidInput(
                f"reputation: gold_correct ({self.gold_correct}) exceeds gold_total ({self.gold_total})"
            )
        if self.agreed > self.decided:
            raise InvalidInput(
                f"reputation: agreed ({self.agreed}) exceeds decided ({self.decided})"
            )


def reputation(
    r: ReputationInput, *, prior_strength: float = 2.0, prior_mean: float = 0.7
) -> float:
    """The account's reputation in [0, 1]: a Beta-smoothed blend of gold accuracy and agreement."""
    if not prior_strength > 0:
        raise InvalidInput(f"reputation: prior_strength must be > 0; got {prior_strength!r}")
    if not 0.0 <= prior_mean <= 1.0:
        raise InvalidInput(f"reputation: prior_mean must be within [0, 1]; got {prior_mean!r}")
    hits = GOLD_WEIGHT * r.gold_correct + r.agreed + prior_strength * prior_mean
    trials = GOLD_WEIGHT * r.gold_total + r.decided + prior_strength
    return min(1.0, max(0.0, hits / trials))


def below_floor(r: ReputationInput, floor: float, *, min_gold: int) -> bool:
    """True once there is enough evidence (min_gold gold answers, or 2·min_gold decided votes)
    and the reputation is under `floor`: such an account gets no tasks and its records are held."""
    if min_gold < 1:
        raise InvalidInput(f"below_floor: min_gold must be >= 1; got {min_gold}")
    enough = r.gold_total >= min_gold or r.decided >= 2 * min_gold
    return enough and reputation(r) < floor
