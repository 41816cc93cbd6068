"""Cheap screens of one round's updates, before any replay: which workers look like cheaters.

A worker's update is its pseudo-gradient's opposite, `returned - start` over every trainable
parameter, flattened in name order (`update_vector`). Honest workers start from the same global
weights and train the same number of steps on different shards, so their updates have norms of
the same order, point broadly the same way, differ from each other, and differ from their own
update of the round before. The screens flag what breaks that:

- `zero`: an update of (nearly) no length: a worker that returned the weights it was sent;
- `duplicate`: two updates that are (nearly) the same: one copied the other (both are flagged;
  a replay tells which one did the work);
- `stale`: an update (nearly) the same as the same worker's last one: a replayed old round;
- `norm`: an update far longer or shorter than the others' median: scaled, lazy or noisy;
- `direction`: an update pointing away from the mean of the others: a sign-flipped poison.

The last two need three workers or more: of two that disagree, either could be the odd one.

A flag is a suspicion, not a verdict: it only sends the worker-round to replay (`cairn.verify.
replay`), whose comparison is the evidence. The thresholds are therefore set to catch, not to
spare: a flagged honest worker costs one replay, never its pay.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import median

import torch

from cairn.core.errors import InvalidInput

ZERO_SHARE = 1e-3  # an update shorter than this share of the median length is no work
SAME_COSINE = 0.995  # cosine at or above which two updates are one copied (or re-sent)
NORM_RATIO = 4.0  # an update this many times longer or shorter than the median is suspect
FLIPPED_COSINE = 0.0  # cosine with the others' mean below which an update points away

KINDS = ("zero", "duplicate", "stale", "norm", "direction")
SKETCH_SIZE = 1 << 20  # entries of each update a coordinator compares (all of a small model)


@dataclass(frozen=True)
class Flag:
    """One suspicion about one worker's update in one round."""

    worker: str
    kind: str  # one of KINDS
    detail: str
    value: float  # the measure that tripped it: a share, a cosine or a ratio


def update_vector(
    start: Mapping[str, torch.Tensor],
    returned: Mapping[str, torch.Tensor],
    size: int | None = None,
) -> torch.Tensor:
    """`returned - start` over every parameter, in name order, as one float64 vector; with
    `size`, a sketch of about that many entries: every k-th entry of each parameter, the same
    entries for every worker, so norms' ratios and cosines stay close to the whole vector's."""
    if set(start) != set(returned):
        raise InvalidInput("the update does not have the round's parameter names")
    total = sum(t.numel() for t in start.values())
    stride = max(1, math.ceil(total / size)) if size else 1
    parts = []
    for name in sorted(start):
        a, b = start[name], returned[name]
        if a.shape != b.shape:
            raise InvalidInput(f"parameter {name!r}: shape {tuple(b.shape)}, not {tuple(a.shape)}")
        parts.append(
            b.detach().flatten()[::stride].double() - a.detach().flatten()[::stride].double()
        )
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two vectors; 0 when either has no length."""
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(torch.dot(a, b)) / (na * nb)


def screen_round(
    updates: Mapping[str, torch.Tensor],
    previous: Mapping[str, torch.Tensor] | None = None,
) -> list[Flag]:
    """The flags of one round: `updates` maps each worker to its `update_vector`, `previous`
    each worker to its update of the round before (where it had one)."""
    previous = previous or {}
    workers = sorted(updates)
    for worker in workers:
        if not bool(torch.isfinite(updates[worker]).all()):
            raise InvalidInput(f"the update of {worker} is not finite")
    norms = {w: float(updates[w].norm()) for w in workers}
    flags: list[Flag] = []
    typical = median(norms.values()) if norms else 0.0
    for w in workers:
        if norms[w] <= ZERO_SHARE * typical or norms[w] == 0.0:
            share = norms[w] / typical if typical else 0.0
            flags.append(Flag(w, "zero", "the update has (nearly) no length", share))
    for i, a in enumerate(workers):
        for b in workers[i + 1 :]:
            c = cosine(updates[a], updates[b])
            if c >= SAME_COSINE and norms[a] > 0.0:
                flags.append(Flag(a, "duplicate", f"the same update as {b}", c))
                flags.append(Flag(b, "duplicate", f"the same update as {a}", c))
    for w in workers:
        if w in previous:
            c = cosine(updates[w], previous[w])
            if c >= SAME_COSINE:
                flags.append(Flag(w, "stale", "the same update as its last round's", c))
    if len(workers) < 3:  # against one other worker, either of the two could be the odd one
        return flags
    for w in workers:
        others = median(norms[o] for o in workers if o != w)
        if others > 0.0 and norms[w] > 0.0:
            ratio = norms[w] / others
            if ratio >= NORM_RATIO or ratio <= 1.0 / NORM_RATIO:
                flags.append(Flag(w, "norm", f"{ratio:.3g} times the others' median", ratio))
    for w in workers:
        mean = torch.stack([updates[o] for o in workers if o != w]).mean(dim=0)
        c = cosine(updates[w], mean)
        if norms[w] > 0.0 and float(mean.norm()) > 0.0 and c < FLIPPED_COSINE:
            flags.append(Flag(w, "direction", "points away from the others' mean", c))
    return flags


def suspects(flags: list[Flag]) -> set[str]:
    """The workers any flag names."""
    return {f.worker for f in flags}


class RoundScreens:
    """A coordinator's screens over a job's rounds: it keeps each worker's last update sketch
    (`SKETCH_SIZE` entries, not the weights) to tell a stale update."""

    def __init__(self, sketch_size: int = SKETCH_SIZE) -> None:
        self.sketch_size = sketch_size
        self.sketches: dict[int, tuple[int, torch.Tensor]] = {}  # node -> (round, its update)

    def screen(
        self,
        round_: int,
        start: Mapping[str, torch.Tensor],
        returned: Mapping[int, tuple[str, Mapping[str, torch.Tensor]]],
    ) -> list[dict[str, object]]:
        """The flags on round `round_`'s updates, as JSON: `returned` maps each Flower node to
        its provider's account and the weights it returned, `start` is the round's global."""
        sketches = {n: update_vector(start, w, self.sketch_size) for n, (_, w) in returned.items()}
        previous = {
            str(n): sketch
            for n, (last, sketch) in self.sketches.items()
            if last == round_ - 1 and n in sketches
        }
        flags = screen_round({str(n): s for n, s in sketches.items()}, previous)
        self.sketches = {n: (round_, s) for n, s in sketches.items()}
        return [
            {
                "node_id": int(f.worker),
                "account": returned[int(f.worker)][0],
                "kind": f.kind,
                "detail": f.detail,
                "value": round(f.value, 6),
            }
            for f in flags
        ]
