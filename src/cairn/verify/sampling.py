"""Which worker-rounds of a job are replayed: chosen after the reports are in, by anyone alike.

Replaying a round costs what training it did, so a job replays a sample: of every provider, up
to `flagged_per_worker` of the rounds a screen flagged (`cairn.verify.screens`), and
`per_worker` rounds chosen at random from the rounds it was paid for. A provider that cheats in
every round is then caught for certain, and one that cheats in a share s of its R rounds with
chance at least s; with nothing flagged the replay costs `per_worker / R` of the job's training
(0.10 at one round in ten), and each flagged provider adds at most `flagged_per_worker / R`.

The draw must be unpredictable to a provider while it trains, or it would cheat only in the
rounds it knows are safe, and the same for every validator, or nobody could check the node's
choice. Its seed is therefore the SHA-256 of the job id and every accepted report's leaf (which
signs the weights each worker returned): it exists only once the last report is in, and anyone
with the published reports derives the same sample.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence

from cairn.core.errors import InvalidInput

PER_WORKER = 1  # rounds of each provider replayed at random, besides the flagged ones
FLAGGED_PER_WORKER = 2  # flagged rounds of one provider replayed at most (one failure suffices)


def sample_seed(job_id: str, leaves: Iterable[str]) -> bytes:
    """The draw's seed: SHA-256 over the job id and the accepted reports' leaves, sorted."""
    h = hashlib.sha256(f"cairn.verify-sample/v1|{job_id}".encode())
    for leaf in sorted(leaf.lower() for leaf in leaves):
        h.update(b"|" + leaf.encode())
    return h.digest()


def choose_rounds(
    seed: bytes,
    rounds: Mapping[str, Sequence[int]],
    *,
    per_worker: int = PER_WORKER,
    flagged: Iterable[tuple[str, int]] = (),
    flagged_per_worker: int = FLAGGED_PER_WORKER,
) -> list[tuple[str, int]]:
    """The (worker, round) pairs to replay, in worker order, each worker's flagged rounds first:
    up to `flagged_per_worker` of the rounds a screen flagged, then `per_worker` more drawn
    from the rest of `rounds` (each worker's accepted rounds), all with `seed`.

    A verifier replays a worker's pairs in this order and may stop at its first failure: one
    failed replay is evidence enough.
    """
    if per_worker < 0 or flagged_per_worker < 0:
        raise InvalidInput("per_worker and flagged_per_worker must be 0 or more")
    rng = random.Random(seed)
    suspect: dict[str, set[int]] = {}
    for worker, round_ in flagged:
        if round_ in rounds.get(worker, ()):
            suspect.setdefault(worker, set()).add(round_)
    chosen: list[tuple[str, int]] = []
    for worker in sorted(rounds):
        marked = sorted(suspect.get(worker, ()))
        first = rng.sample(marked, min(flagged_per_worker, len(marked)))
        left = sorted(set(rounds[worker]) - set(first))
        more = rng.sample(left, min(per_worker, len(left)))
        chosen += [(worker, r) for r in [*first, *more]]
    return chosen
