"""Review and quality: review tasks, gold questions, consensus decisions, reputation and holds.

A share of valid records waits in `review` until enough accounts have judged it; gold questions
(items with known answers) are mixed into every queue unmarked. Votes are combined with the
Dawid–Skene model (reputation-weighted majority below the policy's minimum of votes), and each
reviewer's reputation comes from gold accuracy and agreement with the decisions, counted in
groups of answers so that no single answer's effect shows whether its task was gold: a group
counts once it is full and none of its records is still under review, so that its gold answers
and its agreements show together, at a moment that other reviewers' votes set.

Over 400 lines because tasks, decisions and reputations are one loop (a decision changes
reputations, which weigh the next decision and hold accounts) under one lock, with the frozen
records it answers.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, update

from cairn.core.consensus import Decision, decide
from cairn.core.data_policy import DatasetSpec
from cairn.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from cairn.core.evm import checksum
from cairn.core.reputation import ReputationInput, below_floor, reputation
from cairn.data.datasets import Datasets
from cairn.data.models import GoldRow, RecordRow, ReviewTaskRow
from cairn.db.engine import Database

# Records that failed to reach a confident decision after this many times the requested votes
# are rejected for lack of consensus.
MAX_VOTES_FACTOR = 2
# A reviewer's answers count toward its reputation in groups of this many, in the order given,
# and a group only once none of its records is under review: a standing that moved right after
# an answer would say whether that task was gold, and one that moved when a group filled would
# say how many of it were gold (a gold answer is judged at once, a record's once decided). After
# a group counts, its change says how many of its tasks were gold, never which.
COUNTED_IN_GROUPS_OF = 5


def draws_gold(dataset_id: int, account: str, done: int, share: float) -> bool:
    """Whether a reviewer's task after `done` others on a dataset is a gold question: now and
    then, at `share`, at a rate the reviewer cannot time (a hash of dataset, account, count)."""
    seed = hashlib.sha256(f"{dataset_id}:{account.lower()}:{done}".encode()).digest()
    return random.Random(seed).random() < share


@dataclass(frozen=True)
class ReviewTask:
    """A task as a reviewer sees it; whether it is gold is not shown."""

    task_id: int
    dataset_id: int
    kind: str  # "approve" (approve or reject) or "label" (pick one of labels)
    labels: tuple[str, ...]
    record: dict[str, Any]  # the record under review: a JSON object of the dataset's shape


@dataclass(frozen=True)
class RecordDecision:
    """A record that review decided: accepted (perhaps relabelled) or rejected."""

    record_hash: str
    status: str
    label: str | None  # the label review settled on; None when rejected for lack of consensus
    confidence: float  # the decision's posterior, to 4 places


@dataclass(frozen=True)
class ReviewAnswer:
    """An answer recorded, and the records it (with the votes before it) decided."""

    task_id: int
    answer: str
    decided: tuple[RecordDecision, ...]


@dataclass(frozen=True)
class ReviewerStanding:
    """A reviewer's reputation on a dataset, with the evidence behind it."""

    account: str
    reputation: float  # to 4 places
    gold_correct: int
    gold_total: int
    agreed: int
    decided: int
    held: bool  # below the dataset's floor: no more tasks, and its records held

    @property
    def judged(self) -> int:
        """Answers that have been checked: gold questions and decided records together."""
        return self.gold_total + self.decided


@dataclass(frozen=True)
class JudgedVote:
    """A vote whose right answer is known: a gold answer, or the decision its record reached."""

    reviewer: str
    gold: bool
    right: bool


@dataclass(frozen=True)
class _Answer:
    """An answered task, as the counting reads it."""

    task_id: int
    reviewer: str
    record_id: int | None
    gold_id: int | None
    answer: str


class Reviews:
    """Hand out review tasks, take answers, decide records, keep reputations."""

    def __init__(self, db: Database, datasets: Datasets) -> None:
        self.db = db
        self.datasets = datasets
        self._lock = threading.Lock()
        # Raises when an account may not review a dataset (a licensed dataset's owner admits
        # its reviewers: `ContentAccess.admit_reviewer`); None admits everyone.
        self.admit: Callable[[int, str], None] | None = None

    # -- gold questions ------------------------------------------------------------------

    def add_gold(self, dataset_id: int, owner: str, items: list[dict[str, Any]]) -> int:
        """Seed gold questions: each item is {"record": {...}, "answer": label}; owner only."""
        dataset = self.datasets.get(dataset_id)
        if dataset.owner.lower() != owner.lower():
            raise Forbidden(f"only the dataset's owner {dataset.owner} may add gold questions")
        labels = dataset.spec.review_labels
        if not items:
            raise InvalidInput("no gold items given")
        rows = []
        for n, item in enumerate(items, 1):
            if not isinstance(item, dict) or not isinstance(item.get("record"), dict):
                raise InvalidInput(f"gold item {n}: expected {{'record': {{...}}, 'answer': ...}}")
            if item.get("answer") not in labels:
                raise InvalidInput(
                    f"gold item {n}: answer must be one of {', '.join(labels)}; got {item.get('answer')!r}"
                )
            rows.append(
                GoldRow(
                    dataset_id=dataset_id,
                    content=item["record"],
                    answer=item["answer"],
                    created_at=int(time.time()),
                )
            )
        with self.db.session() as session:
            session.add_all(rows)
        return len(rows)

    # -- tasks ---------------------------------------------------------------------------

    def next_task(self, dataset_id: int, reviewer: str) -> ReviewTask | None:
        """The reviewer's open task, or a new one (gold mixed in), or None when there is no work."""
        account = checksum(reviewer)
        spec = self.datasets.spec(dataset_id)
        listed = account.lower() in {r.lower() for r in spec.review.reviewers}
        if self.admit is not None and not listed:
            self.admit(dataset_id, account)
        with self._lock:
            if account.lower() in {a.lower() for a in self.held_accounts(dataset_id)}:
                raise Forbidden(
                    f"{account}'s reputation on dataset {dataset_id} is below the floor "
                    f"({spec.review.reputation_floor}); it receives no more review tasks"
                )
            with self.db.session() as session:
                task = session.scalars(
                    select(ReviewTaskRow).where(
                        ReviewTaskRow.dataset_id == dataset_id,
                        ReviewTaskRow.reviewer == account,
                        ReviewTaskRow.answered_at.is_(None),
                    )
                ).first()
                if task is None:
                    task = self._new_task(session, dataset_id, account, spec)
                    if task is None:
                        return None
                return self._show(session, task, spec)

    def _new_task(
        self, session: Any, dataset_id: int, account: str, spec: DatasetSpec
    ) -> ReviewTaskRow | None:
        if not self._others_under_review(session, dataset_id, account):
            # Gold is mixed into real work only: the dataset's public counts say when no record
            # (but the reviewer's own) is under review, and a task then could only be gold.
            return None
        done = session.scalar(
            select(func.count())
            .select_from(ReviewTaskRow)
            .where(ReviewTaskRow.dataset_id == dataset_id, ReviewTaskRow.reviewer == account)
        )
        want_gold = draws_gold(dataset_id, account, done, spec.review.gold_share)
        gold = self._unanswered_gold(session, dataset_id, account) if want_gold else None
        record_id = (
            None
            if gold is not None
            else self._record_needing_votes(session, dataset_id, account, spec)
        )
        if record_id is None and gold is None:
            gold = self._unanswered_gold(session, dataset_id, account)
            if gold is None:
                return None
        task = ReviewTaskRow(
            dataset_id=dataset_id,
            record_id=record_id,
            gold_id=gold,
            reviewer=account,
            created_at=int(time.time()),
        )
        session.add(task)
        session.flush()
        return task

    def _unanswered_gold(self, session: Any, dataset_id: int, account: str) -> int | None:
        seen = select(ReviewTaskRow.gold_id).where(
            ReviewTaskRow.reviewer == account, ReviewTaskRow.gold_id.is_not(None)
        )
        return session.scalar(
            select(GoldRow.id)
            .where(GoldRow.dataset_id == dataset_id, GoldRow.id.not_in(seen))
            .order_by(GoldRow.id)
            .limit(1)
        )

    def waiting(self, dataset_id: int, reviewer: str) -> int:
        """How many tasks the reviewer could take now (gold included, unmarked); assigns none."""
        account = checksum(reviewer)
        spec = self.datasets.spec(dataset_id)
        with self.db.session() as session:
            open_tasks = session.scalar(
                select(func.count())
                .select_from(ReviewTaskRow)
                .where(
                    ReviewTaskRow.dataset_id == dataset_id,
                    ReviewTaskRow.reviewer == account,
                    ReviewTaskRow.answered_at.is_(None),
                )
            )
            needing = self._needing_votes(dataset_id, account, spec).subquery()
            records = session.scalar(select(func.count()).select_from(needing))
            seen = select(ReviewTaskRow.gold_id).where(
                ReviewTaskRow.reviewer == account, ReviewTaskRow.gold_id.is_not(None)
            )
            gold = session.scalar(
                select(func.count())
                .select_from(GoldRow)
                .where(GoldRow.dataset_id == dataset_id, GoldRow.id.not_in(seen))
            )
            if not self._others_under_review(session, dataset_id, account):
                gold = 0  # none is handed out then (`_new_task`)
        return int(open_tasks or 0) + int(records or 0) + int(gold or 0)

    @staticmethod
    def _others_under_review(session: Any, dataset_id: int, account: str) -> bool:
        """Whether any record under review in the dataset is another account's."""
        found = session.scalar(
            select(RecordRow.id)
            .where(
                RecordRow.dataset_id == dataset_id,
                RecordRow.status == "review",
                RecordRow.contributor != account,
            )
            .limit(1)
        )
        return found is not None

    def _needing_votes(self, dataset_id: int, account: str, spec: DatasetSpec) -> Select[int]:
        """Records under review that `account` may vote on, fewest votes first."""
        mine = select(ReviewTaskRow.record_id).where(
            ReviewTaskRow.reviewer == account, ReviewTaskRow.record_id.is_not(None)
        )
        tasks = (
            select(ReviewTaskRow.record_id, func.count().label("n"))
            .where(ReviewTaskRow.dataset_id == dataset_id, ReviewTaskRow.record_id.is_not(None))
            .group_by(ReviewTaskRow.record_id)
            .subquery()
        )
        cap = spec.review.votes_per_record * MAX_VOTES_FACTOR
        return (
            select(RecordRow.id)
            .outerjoin(tasks, tasks.c.record_id == RecordRow.id)
            .where(
                RecordRow.dataset_id == dataset_id,
                RecordRow.status == "review",
                RecordRow.contributor != account,  # nobody reviews their own records
                RecordRow.id.not_in(mine),
                func.coalesce(tasks.c.n, 0) < cap,
            )
            .order_by(func.coalesce(tasks.c.n, 0), RecordRow.id)
        )

    def _record_needing_votes(
        self, session: Any, dataset_id: int, account: str, spec: DatasetSpec
    ) -> int | None:
        return session.scalar(self._needing_votes(dataset_id, account, spec).limit(1))

    def _show(self, session: Any, task: ReviewTaskRow, spec: DatasetSpec) -> ReviewTask:
        if task.gold_id is not None:
            content = session.get(GoldRow, task.gold_id).content
        else:
            content = session.get(RecordRow, task.record_id).content
        kind = "label" if spec.task.type == "classification" else "approve"
        return ReviewTask(task.id, task.dataset_id, kind, tuple(spec.review_labels), dict(content))

    # -- answers and decisions -----------------------------------------------------------

    def submit(self, task_id: int, reviewer: str, answer: str) -> ReviewAnswer:
        """Record the reviewer's answer and re-decide the dataset's records under review."""
        account = checksum(reviewer)
        with self._lock:
            with self.db.session() as session:
                task = session.get(ReviewTaskRow, task_id)
                if task is None:
                    raise NotFound(f"no review task {task_id}")
                if task.reviewer != account:
                    raise Forbidden(f"task {task_id} was given to {task.reviewer}, not {account}")
                if task.answered_at is not None:
                    raise Conflict(f"task {task_id} was already answered")
                spec = self.datasets.spec(task.dataset_id)
                if answer not in spec.review_labels:
                    raise InvalidInput(
                        f"answer must be one of {', '.join(spec.review_labels)}; got {answer!r}"
                    )
                task.answer = answer
                task.answered_at = int(time.time())
                dataset_id = task.dataset_id
            decided = self._decide(dataset_id, spec)
        return ReviewAnswer(task_id, answer, tuple(decided))

    def votes(self, dataset_id: int) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
        """The votes the consensus weighs, as (item, reviewer, label), and the gold answers: every
        vote on a record, and a gold answer once its group is full (before that, the way it moved
        the reviewer's estimated reliability could show in the next decisions). The consensus
        does not wait for the group's records: their decisions wait for that very estimate."""
        with self.db.session() as session:
            answers = self._answers(session, dataset_id)
            counted = {a.task_id for a in _counted(answers, waiting=set())}
            gold = dict(
                session.execute(
                    select(GoldRow.id, GoldRow.answer).where(GoldRow.dataset_id == dataset_id)
                ).all()
            )
        votes = [
            (f"g{a.gold_id}" if a.gold_id is not None else f"r{a.record_id}", a.reviewer, a.answer)
            for a in answers
            if a.gold_id is None or a.task_id in counted
        ]
        return votes, {f"g{k}": v for k, v in gold.items()}

    @staticmethod
    def _answers(session: Any, dataset_id: int) -> list[_Answer]:
        """The dataset's answered tasks in the order answered (a reviewer has one open task)."""
        rows = session.execute(
            select(
                ReviewTaskRow.id,
                ReviewTaskRow.reviewer,
                ReviewTaskRow.record_id,
                ReviewTaskRow.gold_id,
                ReviewTaskRow.answer,
            )
            .where(ReviewTaskRow.dataset_id == dataset_id, ReviewTaskRow.answer.is_not(None))
            .order_by(ReviewTaskRow.id)
        ).all()
        return [_Answer(t, r, rec, g, str(a)) for t, r, rec, g, a in rows]

    @staticmethod
    def _in_review(session: Any, dataset_id: int) -> set[int]:
        """The dataset's records still waiting for a decision."""
        return set(
            session.scalars(
                select(RecordRow.id).where(
                    RecordRow.dataset_id == dataset_id, RecordRow.status == "review"
                )
            ).all()
        )

    def _decide(self, dataset_id: int, spec: DatasetSpec) -> list[RecordDecision]:
        votes, gold = self.votes(dataset_id)
        if not votes:
            return []
        reps = self.reputations(dataset_id)
        decisions = decide(
            votes,
            spec.review_labels,
            gold=gold,
            reputation={a: r for a, (r, _) in reps.items()},
            min_votes=spec.review.min_votes,
        )
        counts: dict[str, int] = defaultdict(int)
        for item, _, _ in votes:
            counts[item] += 1
        decided: list[RecordDecision] = []
        now = int(time.time())
        with self.db.session() as session:
            pending = session.scalars(
                select(RecordRow).where(
                    RecordRow.dataset_id == dataset_id, RecordRow.status == "review"
                )
            ).all()
            for record in pending:
                decision = decisions.get(f"r{record.id}")
                n = counts.get(f"r{record.id}", 0)
                if decision is None or n < spec.review.votes_per_record:
                    continue
                outcome = self._apply(record, decision, spec, n)
                if outcome is None:
                    continue
                record.decided_at = now
                decided.append(
                    RecordDecision(
                        record.record_hash,
                        record.status,
                        record.decision,
                        round(decision.confidence, 4),
                    )
                )
        self._hold_low_reputation(dataset_id, spec)
        return decided

    def _apply(
        self, record: RecordRow, decision: Decision, spec: DatasetSpec, votes: int
    ) -> str | None:
        threshold = spec.review.accept_threshold
        if decision.confidence < threshold:
            if votes < spec.review.votes_per_record * MAX_VOTES_FACTOR:
                return None  # ask more reviewers
            record.status = "rejected"
            record.reason = f"no consensus after {votes} reviews (best {decision.label} at {decision.confidence:.2f})"
            return record.status
        record.decision = decision.label
        if spec.task.type == "classification":
            agreed = record.content.get("label") == decision.label
            record.content = {**record.content, "label": decision.label}
            record.quality = decision.confidence if agreed else decision.confidence / 2
            record.status = "accepted"
            if not agreed:
                record.reason = f"relabelled by review to {decision.label!r}"
        elif decision.label == "approve":
            record.status = "accepted"
            record.quality = decision.confidence
        else:
            record.status = "rejected"
            record.reason = f"rejected by review (confidence {decision.confidence:.2f})"
        return record.status

    # -- reputation ----------------------------------------------------------------------

    def judged_votes(self, dataset_id: int) -> list[JudgedVote]:
        """Every counted vote that can be judged: on a gold item, or on a decided record."""
        with self.db.session() as session:
            gold = dict(
                session.execute(
                    select(GoldRow.id, GoldRow.answer).where(GoldRow.dataset_id == dataset_id)
                ).all()
            )
            decided = dict(
                session.execute(
                    select(RecordRow.id, RecordRow.decision).where(
                        RecordRow.dataset_id == dataset_id, RecordRow.decision.is_not(None)
                    )
                ).all()
            )
            answers = self._answers(session, dataset_id)
            in_review = self._in_review(session, dataset_id)
        judged = []
        for a in _counted(answers, waiting=in_review):
            if a.gold_id is not None:
                judged.append(JudgedVote(a.reviewer, True, a.answer == gold.get(a.gold_id)))
            elif a.record_id in decided:
                judged.append(JudgedVote(a.reviewer, False, a.answer == decided[a.record_id]))
        return judged

    def uncounted(self, dataset_id: int, account: str) -> int:
        """How many of the account's answers wait for their group to fill, or for the records in
        it to be decided, before they count."""
        reviewer = checksum(account)
        with self.db.session() as session:
            answers = [a for a in self._answers(session, dataset_id) if a.reviewer == reviewer]
            counted = _counted(answers, waiting=self._in_review(session, dataset_id))
        return len(answers) - len(counted)

    def reputations(self, dataset_id: int) -> dict[str, tuple[float, ReputationInput]]:
        """Each reviewer's reputation on the dataset, with the evidence behind it."""
        tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for vote in self.judged_votes(dataset_id):
            t = tally[vote.reviewer]
            offset = 0 if vote.gold else 2
            t[offset] += int(vote.right)
            t[offset + 1] += 1
        out = {}
        for reviewer, (gc, gt, ag, dc) in tally.items():
            evidence = ReputationInput(gold_correct=gc, gold_total=gt, agreed=ag, decided=dc)
            out[reviewer] = (reputation(evidence), evidence)
        return out

    def standings(self, dataset_id: int) -> list[ReviewerStanding]:
        """Every reviewer's reputation on the dataset, with its evidence, by account."""
        self.datasets.get(dataset_id)
        held = self.held_accounts(dataset_id)
        return [
            _standing(account, score, evidence, account in held)
            for account, (score, evidence) in sorted(self.reputations(dataset_id).items())
        ]

    def standing(self, dataset_id: int, account: str) -> ReviewerStanding:
        """One account's standing on the dataset: a newcomer's prior when nothing is judged yet."""
        address = checksum(account)
        reps = {a.lower(): r for a, r in self.reputations(dataset_id).items()}
        found = reps.get(address.lower())
        score, evidence = found if found else (None, ReputationInput(0, 0, 0, 0))
        held = address.lower() in {a.lower() for a in self.held_accounts(dataset_id)}
        return _standing(address, reputation(evidence) if score is None else score, evidence, held)

    def held_accounts(self, dataset_id: int) -> set[str]:
        """Accounts whose reputation on the dataset is below the policy's floor."""
        spec = self.datasets.spec(dataset_id)
        return {
            reviewer
            for reviewer, (_, evidence) in self.reputations(dataset_id).items()
            if below_floor(
                evidence, spec.review.reputation_floor, min_gold=spec.review.min_gold_for_reputation
            )
        }

    def _hold_low_reputation(self, dataset_id: int, spec: DatasetSpec) -> None:
        held = self.held_accounts(dataset_id)
        if not held:
            return
        with self.db.session() as session:
            session.execute(
                update(RecordRow)
                .where(
                    RecordRow.dataset_id == dataset_id,
                    RecordRow.contributor.in_(held),
                    RecordRow.status.in_(("review", "accepted")),
                )
                .values(status="held", reason="contributor's reputation is below the floor")
            )


def _counted(answers: Sequence[_Answer], *, waiting: set[int]) -> list[_Answer]:
    """The answers (in the order answered) that count: each reviewer's, in whole groups of
    `COUNTED_IN_GROUPS_OF`, each group once none of its records is `waiting` for a decision."""
    by_reviewer: dict[str, list[_Answer]] = defaultdict(list)
    for answer in answers:
        by_reviewer[answer.reviewer].append(answer)
    counted: list[_Answer] = []
    for mine in by_reviewer.values():
        for start in range(0, len(mine) - COUNTED_IN_GROUPS_OF + 1, COUNTED_IN_GROUPS_OF):
            group = mine[start : start + COUNTED_IN_GROUPS_OF]
            if not any(a.record_id in waiting for a in group):
                counted += group
    return counted


def _standing(
    account: str, score: float, evidence: ReputationInput, held: bool
) -> ReviewerStanding:
    return ReviewerStanding(
        account=account,
        reputation=round(score, 4),
        gold_correct=evidence.gold_correct,
        gold_total=evidence.gold_total,
        agreed=evidence.agreed,
        decided=evidence.decided,
        held=held,
    )
