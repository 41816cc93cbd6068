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
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jsonschema import Draft202012Validator, SchemaError, ValidationError
from jsonschema.exceptions import best_match
from referencing.exceptions import Unresolvable

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
from cairn.store.base import canonical_json

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
SHOWN_CHARS = 40  # at most this much of an offending value is quoted back in a reason

MAX_DEPTH = 100  # nesting levels of arrays and objects in one record
_SPACES = re.compile(r"[ \t]{2,}|\t")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


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


def _show(value: Any) -> str:
    """A value quoted for a reason, cut to SHOWN_CHARS."""
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is too large")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


# One decoder for all lines (json.loads with hooks would build one per call): no NaN or
# Infinity, and no number too large for a float, since canonical JSON cannot hold them.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a JSON object",
    "array": "an array",
    "boolean": "true or false",
    "null": "null",
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    for kind, python in (("string", str), ("integer", int), ("number", float)):
        if isinstance(value, python):
            return _TYPE_NAMES[kind]
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else type(value).__name__


def _forbidden_field(error: ValidationError, schema: Any, record: Any) -> str | None:
    """The field a `false` subschema refused. jsonschema reports such an error at the parent
    object with the keyword ("properties") as the end of its schema path, so find it there."""
    try:
        keyword = error.schema_path[-1]
        subschemas = schema
        for part in error.schema_path:
            subschemas = subschemas[part]
        parent = record
        for part in error.absolute_path:
            parent = parent[part]
        for name in parent:
            if keyword == "properties" and subschemas.get(name) is False:
                return str(name)
            if keyword == "patternProperties" and any(
                sub is False and re.search(pattern, name) for pattern, sub in subschemas.items()
            ):
                return str(name)
    except (LookupError, TypeError, AttributeError, re.error):
        pass
    return None


def describe_error(error: ValidationError, schema: Any = None, record: Any = None) -> str:
    """A JSON Schema error in plain words: "field 'label' must be one of a, b; got 'c'".

    `schema` and `record` (the root schema and instance) let a `false` subschema's error name
    its field.
    """
    path = [str(part) for part in error.absolute_path]
    where = f"field '{'.'.join(path)}'" if path else "the record"
    keyword, expected, value = error.validator, error.validator_value, error.instance

    def child(name: str) -> str:
        return f"field '{'.'.join([*path, name])}'"

    if keyword == "required":
        missing = [name for name in expected if name not in value]
        return f"{child(missing[0])} is required" if missing else f"{where} lacks a required field"
    if keyword == "dependentRequired":
        for name, needed in expected.items():
            lacking = [n for n in needed if n not in value] if name in value else []
            if lacking:
                return f"{child(lacking[0])} is required when '{name}' is present"
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(value, dict):
        owner = error.schema if isinstance(error.schema, dict) else {}
        known = owner.get("properties", {})
        patterns = list(owner.get("patternProperties", {}))
        extra = [k for k in value if k not in known and not any(re.search(p, k) for p in patterns)]
        if extra:
            return f"{child(extra[0])} is not allowed by the dataset's schema"
    if keyword is None or error.schema is False:
        name = _forbidden_field(error, schema, record)
        return f"{child(name) if name else where} is not allowed by the dataset's schema"
    if keyword == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        subject = "the record" if not path else where
        return f"{subject} must be {wanted}; got {_json_type(value)}"
    if keyword == "enum":
        options = ", ".join(o if isinstance(o, str) else json.dumps(o) for o in expected)
        return f"{where} must be one of {options}; got {_show(value)}"
    if keyword == "const":
        return f"{where} must be {_show(expected)}; got {_show(value)}"
    bounds = {
        "maxLength": ("have at most {} characters", len),
        "minLength": ("have at least {} characters", len),
        "maxItems": ("have at most {} items", len),
        "minItems": ("have at least {} items", len),
        "maxProperties": ("have at most {} fields", len),
        "minProperties": ("have at least {} fields", len),
        "maximum": ("be at most {}", None),
        "minimum": ("be at least {}", None),
        "exclusiveMaximum": ("be less than {}", None),
        "exclusiveMinimum": ("be greater than {}", None),
        "multipleOf": ("be a multiple of {}", None),
    }
    if keyword in bounds:
        phrase, measure = bounds[keyword]
        got = (
            measure(value)
            if measure is not None and isinstance(value, str | list | dict)
            else value
        )
        return f"{where} must {phrase.format(expected)}; got {_show(got)}"
    if keyword == "pattern":
        return f"{where} must match the pattern {expected}"
    if keyword == "format":
        return f"{where} must be a valid {expected}"
    if keyword == "uniqueItems":
        return f"{where} must not repeat items"
    if keyword in ("anyOf", "oneOf"):
        return f"{where} matches {'none' if keyword == 'anyOf' else 'not exactly one'} of the forms the dataset's schema allows"
    return f"{where} breaks the dataset schema's '{keyword}' rule"


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
                raise InvalidInput(f"a record schema is a JSON object, not {_json_type(schema)}")
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
        count = sum(1 for item in items if not _is_blank(item))
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
            if _is_blank(item):
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
        parsed = self._parse(line, item)
        if isinstance(parsed, Verdict):
            return parsed
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
            reason = f"the record cannot be stored as JSON text: {_plain(error)}"
            return Verdict(
                line, False, "invalid_json", f"line {line}: {reason}", None, None, None, found
            )
        text = "\n".join(record[name] for name in self._text_fields)
        return _Passed(index, record, digest, found, text)

    def _parse(self, line: int, item: Any) -> dict[str, Any] | Verdict:
        """Stages 1-2: the raw line's size, then its JSON."""
        limit = self.policy.max_record_bytes
        if isinstance(item, dict):
            try:
                size = len(canonical_json(item))
            except (InvalidInput, UnicodeEncodeError, RecursionError) as error:
                return self._fail(
                    line, "invalid_json", f"the record is not JSON: {_plain(error)}", None
                )
            if size > limit:
                return self._fail(
                    line, "too_large", f"the record has {size} bytes; the most is {limit}", None
                )
            return item
        if not isinstance(item, str | bytes):
            return self._fail(
                line, "invalid_json", f"a line is text, not {type(item).__name__}", None
            )
        size = len(item)
        if isinstance(item, str) and not item.isascii():
            if size > limit:  # a character is at least one byte: no need to encode it all
                reason = f"the record has more than {limit} bytes ({size} characters)"
                return self._fail(line, "too_large", reason, None)
            try:
                size = len(item.encode("utf-8"))
            except UnicodeEncodeError:
                return self._fail(line, "invalid_json", "the line is not valid UTF-8 text", None)
        if size > limit:
            reason = f"the record has {size} bytes; the most is {limit}"
            return self._fail(line, "too_large", reason, None)
        if _too_deep(item):
            reason = f"not valid JSON for a record: nested deeper than {MAX_DEPTH} levels"
            return self._fail(line, "invalid_json", reason, None)
        try:
            text = item  # bytes are decoded as json.loads decodes them
            if isinstance(text, bytes):
                text = text.decode(json.detect_encoding(text), "surrogatepass")
            value = _DECODER.decode(text)
        except UnicodeDecodeError:
            return self._fail(line, "invalid_json", "the line is not valid UTF-8 text", None)
        except (ValueError, RecursionError) as error:  # JSONDecodeError and the hooks' refusals
            return self._fail(line, "invalid_json", f"not valid JSON: {_plain(error)}", None)
        if not isinstance(value, dict):
            reason = f"a record must be a JSON object; got {_json_type(value)}"
            return self._fail(line, "schema", reason, None)
        if _may_hold_surrogates(item):
            try:
                json.dumps(value, ensure_ascii=False).encode("utf-8")
            except (UnicodeEncodeError, RecursionError):
                reason = (
                    "not valid JSON: a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
                )
                return self._fail(line, "invalid_json", reason, None)
        return value

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


def _too_deep(item: str | bytes) -> bool:
    """Whether a line nests arrays and objects deeper than MAX_DEPTH. Parsers recurse once per
    level, and a process may have raised Python's recursion limit (vyper sets it to 100,000)
    far past what the C stack holds, so deep nesting is refused before it is parsed."""
    if isinstance(item, bytes):
        if item.count(b"[") + item.count(b"{") <= MAX_DEPTH:
            return False  # the common case: too few brackets to nest that deep
        text = item.decode("utf-8", "replace")
    elif item.count("[") + item.count("{") <= MAX_DEPTH:
        return False
    else:
        text = item
    depth = 0
    for char in _JSON_STRING.sub("", text):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _may_hold_surrogates(item: str | bytes) -> bool:
    """Whether a line may decode to an unpaired surrogate, which no UTF-8 text can store: an
    escape \\uD800-\\uDFFF, or (bytes, which json decodes with "surrogatepass") a 0xED byte."""
    if isinstance(item, bytes):
        return b"\\u" in item or b"\xed" in item
    return "\\ud" in item or "\\uD" in item


def _is_blank(item: Any) -> bool:
    return isinstance(item, str | bytes) and (not item or item.isspace())


def _plain(error: BaseException) -> str:
    """An exception's message without Python's class names."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, UnicodeError):
        return "text that is not valid UTF-8"
    if isinstance(error, InvalidInput):
        return error.message.removeprefix("not storable as canonical JSON: ")
    return str(error)
