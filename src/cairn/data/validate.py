"""Record validation: one verdict per contributed record, with a reason a person can act on.

Stages, in order, each as the dataset's `ValidationPolicy` says:

1. size: the raw line's UTF-8 bytes (checked before parsing, so a huge line is never parsed)
2. parse: one JSON object per line; blank lines are skipped but keep their line numbers
3. schema: the task's base schema, then the dataset's own JSON Schema (Draft 2020-12)
4. normalise text fields (NFC, line ends, runs of spaces, strip) and bound their length
5. empty or degenerate text
6. personal data: flagged, redacted or rejected
7. exact duplicates: the content hash against the dataset and earlier records of the upload
8. near duplicates: MinHash signatures of the text fields against the dataset's LSH index and
   earlier records of the upload

Only records that were kept count as "earlier records": a record rejected in the upload is
never named as what a later record duplicates, so every `duplicate_of` names a record that is
(or will be, once the upload is stored) in the dataset.

Stages 1-2 are `record_json.read_record`; schema errors are put in plain words by
`schema_errors.describe_error`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator, SchemaError
from jsonschema.exceptions import best_match
from referencing.exceptions import Unresolvable

from cairn.core.cid import canonical_json
from cairn.core.collector import collector_paused
from cairn.core.data_policy import TaskSpec, ValidationPolicy
from cairn.core.errors import InvalidInput
from cairn.data.dedup import (
    NUM_PERM,
    MinHasher,
    NearDuplicateIndex,
    UploadNearDuplicates,
    shingles,
    words,
)
from cairn.data.pii import KINDS, find_pii, redact
from cairn.data.record_json import Refused, is_blank, plain_error, read_record
from cairn.data.schema_errors import describe_error, json_type

CODES = (
    "ok",
    "invalid_json",
    "too_large",
    "schema",
    "empty",
    "degenerate",
    "pii",
    "duplicate",
    "near_duplicate",
)
# Fields whose short values are legitimate: "7" is a fine answer to a maths problem.
NOT_DEGENERATE = {"verifiable": ("answer",)}
_SPACES = re.compile(r"[ \t]{2,}|\t")


@dataclass(frozen=True)
class Verdict:
    """What became of one record of an upload."""

    line: int  # 1-based line number in the upload
    ok: bool
    code: str  # one of CODES
    reason: str | None  # "line N: ...", naming the field and what was expected; None when ok
    # The record as it would be stored (normalised, redacted; when refused for personal data,
    # redacted too, so that nothing passes it on); None if it did not parse.
    record: dict[str, Any] | None
    record_hash: str | None  # sha256 hex of canonical_json(record): the exact-duplicate key
    duplicate_of: str | None  # record_hash of the record it duplicates (exact or near)
    pii: tuple[str, ...] = ()  # kinds of personal data found (flagged, redacted or rejected)
    signature: np.ndarray | None = field(default=None, compare=False, repr=False)


def normalize_text(text: str) -> str:
    """Unicode NFC, \\r\\n and \\r to \\n, runs of spaces and tabs to one space, stripped."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\t" in text or "  " in text:
        text = _SPACES.sub(" ", text)
    return text.strip()


def is_degenerate(text: str) -> bool:
    """Fewer than two distinct characters (besides spaces), or one word said three times or more."""
    stripped = text.lstrip()
    if not stripped:
        return True
    others = stripped.replace(stripped[0], "")
    if not others or others.isspace():
        return True
    first, *rest = stripped.split(None, 2)
    if rest and len(set(words(first)) | set(words(rest[0]))) > 1:
        return False  # two different words already: most texts end here
    tokens = words(stripped)
    return len(tokens) >= 3 and len(set(tokens)) == 1


def record_hash(record: dict[str, Any]) -> str:
    """The content hash of a record: sha256 hex of its canonical JSON."""
    return hashlib.sha256(canonical_json(record)).hexdigest()


def _short(digest: str) -> str:
    return f"{digest[:12]}…"


@dataclass(frozen=True)
class _Passed:
    """A record that passed every stage up to the duplicate checks."""

    index: int  # position in the upload's lines
    record: dict[str, Any]
    record_hash: str
    pii: tuple[str, ...]
    text: str  # its text fields joined: what its signature is made of


class RecordValidator:
    """Judges the records of uploads to one dataset."""

    def __init__(
        self,
        task: TaskSpec,
        schema: dict[str, Any] | None,
        policy: ValidationPolicy,
        *,
        known_hashes: Callable[[Collection[str]], set[str]],
        near_index: NearDuplicateIndex | None,
    ) -> None:
        self.task = task
        self.policy = policy
        self._known_hashes = known_hashes
        self._near_index = near_index
        self._base = Draft202012Validator(task.base_schema())
        self._schema: Draft202012Validator | None = None
        if schema is not None:
            if not isinstance(schema, dict):
                raise InvalidInput(f"a record schema is a JSON object, not {json_type(schema)}")
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as error:
                at = "/".join(str(p) for p in error.absolute_path) or "the top"
                raise InvalidInput(
                    f"the dataset's record schema is not valid JSON Schema (Draft 2020-12) at {at}: {error.message}"
                ) from error
            self._schema = Draft202012Validator(
                schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
        if near_index is not None and near_index.threshold != policy.near_dup_threshold:
            raise InvalidInput(
                f"the near-duplicate index was built for Jaccard {near_index.threshold}, "
                f"but the dataset's policy says {policy.near_dup_threshold}"
            )
        self._hasher = MinHasher(near_index.num_perm if near_index is not None else NUM_PERM)
        self._text_fields = task.text_fields
        exempt = NOT_DEGENERATE.get(task.type, ())
        self._checked_for_degenerate = tuple(f for f in task.text_fields if f not in exempt)
        self._required = task.required_fields
        self._labels = frozenset(task.labels) if task.type == "classification" else None
        self._pii_kinds = tuple(k for k in KINDS if k in policy.pii_kinds)

    # -- the upload ------------------------------------------------------------------------

    def validate(self, lines: Iterable[str | bytes | dict[str, Any]]) -> list[Verdict]:
        """One verdict per record (blank lines get none), in line order.

        Raises InvalidInput if the upload has no records or more than the policy allows.
        Does not change the near-duplicate index: the caller adds accepted records once stored.
        """
        items = list(lines)
        count = sum(1 for item in items if not is_blank(item))
        if count == 0:
            raise InvalidInput("the upload holds no records")
        limit = self.policy.max_records_per_upload
        if count > limit:
            raise InvalidInput(
                f"the upload holds {count} records; this dataset takes at most {limit} per upload"
            )
        # Judging allocates many small objects that all live until the end; the cyclic garbage
        # collector would walk them again and again for nothing (about a tenth of the time).
        with collector_paused():
            return self._validate(items)

    def _validate(self, items: list[Any]) -> list[Verdict]:
        verdicts: dict[int, Verdict] = {}
        passed: list[_Passed] = []
        for index, item in enumerate(items):
            if is_blank(item):
                continue
            outcome = self._judge(index, item)
            if isinstance(outcome, Verdict):
                verdicts[index] = outcome
            else:
                passed.append(outcome)
        self._judge_duplicates(passed, verdicts)
        return [verdicts[i] for i in sorted(verdicts)]

    # -- one record, up to the duplicate checks --------------------------------------------

    def _judge(self, index: int, item: Any) -> Verdict | _Passed:
        """Stages 1-6 for one record: a failed verdict, or what the duplicate checks need."""
        policy = self.policy
        line = index + 1
        parsed = read_record(item, policy.max_record_bytes)
        if isinstance(parsed, Refused):
            return self._fail(line, parsed.code, parsed.reason, None)
        if not self._base_ok(parsed):
            error = best_match(self._base.iter_errors(parsed))
            if error is not None:
                return self._fail(line, "schema", describe_error(error), parsed)
        if self._schema is not None:
            try:
                error = best_match(self._schema.iter_errors(parsed))
            except Unresolvable as exc:
                raise InvalidInput(
                    f"the dataset's record schema refers to something it cannot resolve: {exc}"
                ) from exc
            except RecursionError:
                return self._fail(line, "schema", "the record is nested too deeply", parsed)
            if error is not None:
                reason = describe_error(error, self._schema.schema, parsed)
                return self._fail(line, "schema", reason, parsed)
        record = dict(parsed)
        for name in self._text_fields:
            text = record[name]
            if policy.normalize:
                text = record[name] = normalize_text(text)
            if len(text) > policy.max_field_chars:
                reason = f"field '{name}' has {len(text)} characters; the most is {policy.max_field_chars}"
                return self._fail(line, "too_large", reason, record)
            if len(text) < policy.min_chars:
                if policy.min_chars == 1:
                    reason = f"field '{name}' must not be empty"
                else:
                    reason = f"field '{name}' must have at least {policy.min_chars} characters; got {len(text)}"
                return self._fail(line, "empty", reason, record)
        if policy.reject_degenerate:
            for name in self._checked_for_degenerate:
                text = record[name]
                if text and is_degenerate(text):
                    reason = f"field '{name}' is degenerate (one character or one word repeated); write real text"
                    return self._fail(line, "degenerate", reason, record)
        found: tuple[str, ...] = ()
        if self._pii_kinds:
            outcome = self._personal_data(line, record)
            if isinstance(outcome, Verdict):
                return outcome
            found = outcome
        try:
            digest = record_hash(record)
        except (InvalidInput, UnicodeEncodeError, RecursionError) as error:
            reason = f"the record cannot be stored as JSON text: {plain_error(error)}"
            return Verdict(
                line, False, "invalid_json", f"line {line}: {reason}", None, None, None, found
            )
        text = "\n".join(record[name] for name in self._text_fields)
        return _Passed(index, record, digest, found, text)

    def _base_ok(self, record: dict[str, Any]) -> bool:
        """The task's base schema, checked directly (it is small and this is the hot path)."""
        for name in self._required:
            if not isinstance(record.get(name), str):
                return False
        return self._labels is None or record["label"] in self._labels

    def _personal_data(self, line: int, record: dict[str, Any]) -> tuple[str, ...] | Verdict:
        """Stage 6: the kinds found; text fields redacted in place when the policy says so."""
        kinds: set[str] = set()
        fields: list[str] = []
        for name in self._text_fields:
            matches = find_pii(record[name], self._pii_kinds)
            if matches:
                kinds.update(m.kind for m in matches)
                fields.append(name)
                if self.policy.pii_action != "flag":
                    record[name] = redact(record[name], matches)
        found = tuple(k for k in KINDS if k in kinds)
        if fields and self.policy.pii_action == "reject":
            names = ", ".join(f"'{n}'" for n in fields)
            subject = f"field {names} contains" if len(fields) == 1 else f"fields {names} contain"
            reason = (
                f"{subject} personal data ({', '.join(found)}); "
                "this dataset does not accept it: remove it and upload the record again"
            )
            return Verdict(line, False, "pii", f"line {line}: {reason}", record, None, None, found)
        return found

    # -- duplicates, over the whole upload -------------------------------------------------

    def _judge_duplicates(self, passed: list[_Passed], verdicts: dict[int, Verdict]) -> None:
        """Stages 7-8 for every record that passed 1-6, in line order."""
        policy = self.policy
        known: set[str] = set()
        if policy.exact_dedup and passed:
            known = set(self._known_hashes(list(dict.fromkeys(p.record_hash for p in passed))))
        fresh: list[_Passed] = []
        for item in passed:
            if item.record_hash in known:
                reason = (
                    f"exact duplicate of record {_short(item.record_hash)} already in the dataset"
                )
                verdicts[item.index] = self._duplicate(
                    item, "duplicate", reason, item.record_hash, None
                )
            else:
                fresh.append(item)
        index = self._near_index
        sigs: np.ndarray | None = None
        if fresh and (policy.near_dedup or index is not None):
            words_per_shingle = policy.shingle_words
            sigs = self._hasher.signatures([shingles(p.text, words_per_shingle) for p in fresh])
        in_dataset: list[tuple[str, float] | None] = [None] * len(fresh)
        in_upload: UploadNearDuplicates | None = None
        if sigs is not None and policy.near_dedup:
            if index is not None and len(index):
                in_dataset = index.best_matches(sigs)
            in_upload = UploadNearDuplicates(sigs, policy.near_dup_threshold)
        kept: dict[str, int] = {}  # record_hash -> position in `fresh` of a record kept
        for position, item in enumerate(fresh):
            sig = None if sigs is None else sigs[position]
            earlier = kept.get(item.record_hash) if policy.exact_dedup else None
            if earlier is not None:
                first = fresh[earlier]
                reason = (
                    f"exact duplicate of record {_short(first.record_hash)} "
                    f"(line {first.index + 1} of this upload)"
                )
                verdicts[item.index] = self._duplicate(
                    item, "duplicate", reason, first.record_hash, sig
                )
                continue
            match = in_dataset[position]
            near = None if in_upload is None else in_upload.best_earlier(position)
            if near is not None and (match is None or near[1] > match[1]):
                other = fresh[near[0]]
                reason = (
                    f"near-duplicate (Jaccard ≈ {near[1]:.2f}) of record {_short(other.record_hash)} "
                    f"(line {other.index + 1} of this upload)"
                )
                verdicts[item.index] = self._duplicate(
                    item, "near_duplicate", reason, other.record_hash, sig
                )
                continue
            if match is not None:
                reason = f"near-duplicate (Jaccard ≈ {match[1]:.2f}) of record {_short(match[0])} already in the dataset"
                verdicts[item.index] = self._duplicate(
                    item, "near_duplicate", reason, match[0], sig
                )
                continue
            kept[item.record_hash] = position
            if in_upload is not None:
                in_upload.keep(position)
            verdicts[item.index] = Verdict(
                item.index + 1, True, "ok", None, item.record, item.record_hash, None, item.pii, sig
            )

    # -- verdicts --------------------------------------------------------------------------

    @staticmethod
    def _fail(line: int, code: str, reason: str, record: dict[str, Any] | None) -> Verdict:
        return Verdict(line, False, code, f"line {line}: {reason}", record, None, None)

    @staticmethod
    def _duplicate(
        item: _Passed, code: str, reason: str, of: str, sig: np.ndarray | None
    ) -> Verdict:
        line = item.index + 1
        reason = f"line {line}: {reason}"
        return Verdict(line, False, code, reason, item.record, item.record_hash, of, item.pii, sig)
