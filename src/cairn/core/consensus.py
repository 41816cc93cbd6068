"""Combining reviewers' labels: Dawid–Skene EM, reputation-weighted majority, and the rule between.

Dawid & Skene (1979) model each reviewer r by a confusion matrix pi[r, k, l] = P(r says l | the
true label is k) and the dataset by class priors p[k]. EM alternates:

- E-step: for each item, P(true = k | votes) ∝ p[k] · Π_r pi[r, k, l_r], in log space;
  gold items (known answers seeded by the owner) are clamped to their label;
- M-step: pi and p are re-estimated from those posteriors, with Dirichlet smoothing so that no
  probability is ever 0 and one vote can never veto an item.

Votes are held as three index arrays of length V rather than a dense items × reviewers × labels
tensor, so memory grows with the votes cast, not with every reviewer times every item.

A reviewer who votes twice on one item is counted once, with the later vote (the vote list's
order is the order votes were cast). Everything else is independent of the order of `votes`:
items and reviewers are indexed in sorted order, so the same votes give the same floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cairn.core.errors import InvalidInput

Vote = tuple[str, str, str]  # (item_id, reviewer, label)
Method = Literal["dawid_skene", "weighted_majority", "gold"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Decision:
    """The combined verdict on one item: its label, how sure we are, and how it was reached."""

    item: str
    label: str
    confidence: float  # posterior of `label`; for weighted majority, its share of the weight
    method: Method
    votes: int  # distinct reviewers counted for this item
    posterior: dict[str, float]  # label -> probability, summing to 1


@dataclass(frozen=True)
class ConsensusResult:
    """Dawid–Skene's decisions and the model it learned along the way."""

    decisions: dict[str, Decision]
    confusion: dict[str, np.ndarray]  # reviewer -> (K, K): rows true label, cols given label
    class_priors: dict[str, float]
    iterations: int


@dataclass(frozen=True)
class _Ballot:
    """Votes as index arrays: items and reviewers in sorted order, one vote per (item, reviewer)."""

    items: list[str]
    reviewers: list[str]
    item: IntArray  # (V,)
    reviewer: IntArray  # (V,)
    label: IntArray  # (V,)


def _check_labels(labels: Sequence[str]) -> dict[str, int]:
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise InvalidInput(
            f"consensus: labels must be at least two distinct labels; got {list(labels)!r}"
        )
    return {label: k for k, label in enumerate(labels)}


def _ballot(votes: Sequence[Vote], index: Mapping[str, int]) -> _Ballot:
    """Check every vote's label and keep each reviewer's last vote per item."""
    last: dict[tuple[str, str], int] = {}
    for n, (item, reviewer, label) in enumerate(votes):
        if label not in index:
            raise InvalidInput(
                f"vote {n} (item {item!r}, reviewer {reviewer!r}): label must be one of "
                f"{', '.join(index)}; got {label!r}"
            )
        last[(item, reviewer)] = index[label]  # a later vote replaces an earlier one
    items = sorted({item for item, _ in last})
    reviewers = sorted({reviewer for _, reviewer in last})
    item_ix = {item: i for i, item in enumerate(items)}
    reviewer_ix = {reviewer: r for r, reviewer in enumerate(reviewers)}
    keys = sorted(last)
    return _Ballot(
        items=items,
        reviewers=reviewers,
        item=np.array([item_ix[i] for i, _ in keys], dtype=np.intp),
        reviewer=np.array([reviewer_ix[r] for _, r in keys], dtype=np.intp),
        label=np.array([last[key] for key in keys], dtype=np.intp),
    )


def _gold_labels(
    gold: Mapping[str, str] | None, ballot: _Ballot, index: Mapping[str, int]
) -> IntArray:
    """(I,) the known label of each voted item, -1 where the item is not a gold question."""
    known = np.full(len(ballot.items), -1, dtype=np.intp)
    item_ix = {item: i for i, item in enumerate(ballot.items)}
    for item, label in sorted((gold or {}).items()):
        if label not in index:
            raise InvalidInput(
                f"gold item {item!r}: label must be one of {', '.join(index)}; got {label!r}"
            )
        if item in item_ix:
            known[item_ix[item]] = index[label]
    return known


def _m_step(
    b: _Ballot, post: FloatArray, n_labels: int, smoothing: float
) -> tuple[FloatArray, FloatArray]:
    """Confusion matrices (R, K, K) and log priors (K,) from posteriors (I, K), both in log space."""
    n_rev, k = len(b.reviewers), n_labels
    cell = b.reviewer * k + b.label  # (V,) flat (reviewer, given label)
    flat = np.stack(
        [np.bincount(cell, weights=post[b.item, t], minlength=n_rev * k) for t in range(k)]
    )  # (K_true, R*K_given)
    counts = flat.reshape(k, n_rev, k).transpose(1, 0, 2) + smoothing  # (R, K, K)
    log_pi = np.log(counts / counts.sum(axis=2, keepdims=True))
    prior = post.sum(axis=0) + smoothing  # (K,)
    return log_pi, np.log(prior / prior.sum())


def _vote_evidence(b: _Ballot, log_pi: FloatArray, n_items: int) -> FloatArray:
    """(I, K): Σ over an item's votes of log P(vote | true = k)."""
    per_vote = log_pi[b.reviewer, :, b.label]  # (V, K)
    return np.stack(
        [
            np.bincount(b.item, weights=per_vote[:, t], minlength=n_items)
            for t in range(per_vote.shape[1])
        ],
        axis=1,
    )


def _e_step(
    b: _Ballot, log_pi: FloatArray, log_prior: FloatArray, known: IntArray
) -> tuple[FloatArray, float]:
    """Posteriors (I, K) with gold clamped, and the log-likelihood of the votes (gold observed)."""
    joint = log_prior + _vote_evidence(b, log_pi, len(b.items))  # (I, K)
    top = joint.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))  # (I,)
    post = np.exp(joint - log_norm[:, None])
    is_gold = known >= 0
    gold_rows = np.flatnonzero(is_gold)
    post[is_gold] = 0.0
    post[gold_rows, known[is_gold]] = 1.0
    loglik = float(log_norm[~is_gold].sum() + joint[gold_rows, known[is_gold]].sum())
    return post, loglik


def _run_em(
    b: _Ballot,
    log_pi: FloatArray,
    log_prior: FloatArray,
    known: IntArray,
    max_iter: int,
    tol: float,
    smoothing: float,
) -> tuple[FloatArray, FloatArray, FloatArray, float, int]:
    """EM from given parameters until posteriors move less than `tol`; returns the MAP score."""
    k = log_prior.shape[0]
    post, loglik = _e_step(b, log_pi, log_prior, known)
    iterations, moved = 0, np.inf
    while iterations < max_iter and moved >= tol:
        log_pi, log_prior = _m_step(b, post, k, smoothing)
        new_post, loglik = _e_step(b, log_pi, log_prior, known)
        moved = float(np.abs(new_post - post).max())
        post, iterations = new_post, iterations + 1
    # the smoothing is a symmetric Dirichlet(1 + smoothing) prior: count it when comparing starts
    score = loglik + smoothing * (float(log_pi.sum()) + float(log_prior.sum()))
    return post, log_pi, log_prior, score, iterations


def _majority_start(b: _Ballot, k: int, known: IntArray) -> FloatArray:
    """(I, K) each item's share of (unweighted) votes per label, gold clamped."""
    post = np.zeros((len(b.items), k))
    np.add.at(post, (b.item, b.label), 1.0)
    post /= post.sum(axis=1, keepdims=True)
    is_gold = known >= 0
    post[is_gold] = 0.0
    post[np.flatnonzero(is_gold), known[is_gold]] = 1.0
    return post


def dawid_skene(
    votes: Sequence[Vote],
    labels: Sequence[str],
    *,
    gold: Mapping[str, str] | None = None,
    max_iter: int = 200,
    tol: float = 1e-7,
    smoothing: float = 0.01,
) -> ConsensusResult:
    """Estimate each item's true label, each reviewer's confusion matrix and the class priors.

    EM starts from the majority vote. When there are gold items it also starts from confusion
    matrices measured on the gold answers alone, and keeps whichever run explains the votes
    better: if adversaries are the majority, the majority start converges to the mirror-image
    solution (adversaries look honest), and only the gold start finds the truth.
    """
    index = _check_labels(labels)
    if max_iter < 1 or tol <= 0 or smoothing <= 0:
        raise InvalidInput("dawid_skene: max_iter must be >= 1, and tol and smoothing > 0")
    k = len(labels)
    b = _ballot(votes, index)
    known = _gold_labels(gold, b, index)
    if not b.items:
        return ConsensusResult({}, {}, {label: 1.0 / k for label in labels}, 0)

    starts = [_m_step(b, _majority_start(b, k, known), k, smoothing)]
    if (known >= 0).any():
        from_gold = np.zeros((len(b.items), k))
        from_gold[np.flatnonzero(known >= 0), known[known >= 0]] = 1.0
        log_pi, _ = _m_step(b, from_gold, k, smoothing)
        starts.append((log_pi, np.full(k, -np.log(k))))  # gold is seeded, not drawn: flat prior
    runs = [_run_em(b, pi, prior, known, max_iter, tol, smoothing) for pi, prior in starts]
    post, log_pi, log_prior, _, iterations = max(runs, key=lambda run: run[3])  # first on ties

    decisions: dict[str, Decision] = {}
    counts = np.bincount(b.item, minlength=len(b.items))
    for i, item in enumerate(b.items):
        best = int(post[i].argmax())  # ties go to the label listed first
        decisions[item] = Decision(
            item=item,
            label=labels[best],
            confidence=float(post[i, best]),
            method="gold" if known[i] >= 0 else "dawid_skene",
            votes=int(counts[i]),
            posterior={label: float(post[i, t]) for t, label in enumerate(labels)},
        )
    return ConsensusResult(
        decisions=decisions,
        confusion={reviewer: np.exp(log_pi[r]) for r, reviewer in enumerate(b.reviewers)},
        class_priors={label: float(p) for label, p in zip(labels, np.exp(log_prior), strict=True)},
        iterations=iterations,
    )


def weighted_majority(
    votes: Sequence[Vote],
    labels: Sequence[str],
    weights: Mapping[str, float],
    *,
    default_weight: float = 0.5,
) -> dict[str, Decision]:
    """Each item's label by summed reviewer weight; reviewers missing from `weights` get the default.

    The posterior is each label's share of the weight cast on the item (uniform if it is all 0),
    not a calibrated probability: one vote alone gives confidence 1.
    """
    index = _check_labels(labels)
    for reviewer, w in [*weights.items(), ("(default)", default_weight)]:
        if not np.isfinite(w) or w < 0:
            raise InvalidInput(f"weighted_majority: weight of {reviewer!r} must be >= 0; got {w!r}")
    b = _ballot(votes, index)
    k = len(labels)
    w_rev = np.array([float(weights.get(r, default_weight)) for r in b.reviewers])  # (R,)
    tally = np.zeros((len(b.items), k))  # (I, K)
    np.add.at(tally, (b.item, b.label), w_rev[b.reviewer])
    total = tally.sum(axis=1, keepdims=True)
    share = np.divide(tally, total, out=np.full_like(tally, 1.0 / k), where=total > 0)
    counts = np.bincount(b.item, minlength=len(b.items))
    decisions: dict[str, Decision] = {}
    for i, item in enumerate(b.items):
        best = int(share[i].argmax())
        decisions[item] = Decision(
            item=item,
            label=labels[best],
            confidence=float(share[i, best]),
            method="weighted_majority",
            votes=int(counts[i]),
            posterior={label: float(share[i, t]) for t, label in enumerate(labels)},
        )
    return decisions


def decide(
    votes: Sequence[Vote],
    labels: Sequence[str],
    *,
    gold: Mapping[str, str] | None = None,
    reputation: Mapping[str, float] | None = None,
    min_votes: int = 3,
) -> dict[str, Decision]:
    """The review policy's rule: Dawid–Skene from `min_votes` votes, weighted majority below.

    EM runs over all votes, gold items and thinly voted items included, so every reviewer's
    confusion matrix is learned from everything they answered. Gold items come back with their
    known label, confidence 1 and method "gold".
    """
    if min_votes < 1:
        raise InvalidInput(f"decide: min_votes must be >= 1; got {min_votes}")
    index = _check_labels(labels)
    gold = dict(gold or {})
    b = _ballot(votes, index)
    _gold_labels(gold, b, index)  # refuses a gold label outside `labels`
    counts = dict(zip(b.items, np.bincount(b.item, minlength=len(b.items)).tolist(), strict=True))
    decisions = weighted_majority(votes, labels, reputation or {})
    if any(n >= min_votes and item not in gold for item, n in counts.items()):
        modelled = dawid_skene(votes, labels, gold=gold).decisions
        decisions.update({i: d for i, d in modelled.items() if counts[i] >= min_votes})
    for item in decisions.keys() & gold.keys():
        decisions[item] = Decision(
            item=item,
            label=gold[item],
            confidence=1.0,
            method="gold",
            votes=counts[item],
            posterior={label: float(label == gold[item]) for label in labels},
        )
    return dict(sorted(decisions.items()))
