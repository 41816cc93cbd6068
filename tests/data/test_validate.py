"""cairn.data.validate: one verdict per record, every stage both ways, reasons a person can act on."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Collection
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cairn.core.cid import canonical_json
from cairn.core.data_policy import TaskSpec, ValidationPolicy
from cairn.core.errors import InvalidInput
from cairn.data.dedup import NUM_PERM, MinHasher, NearDuplicateIndex, shingles
from cairn.data.validate import (
    CODES,
    RecordValidator,
    Verdict,
    is_degenerate,
    normalize_text,
    record_hash,
)

INSTRUCTION = TaskSpec(type="instruction")
CLASSIFICATION = TaskSpec(type="classification", labels=["positive", "negative"])
VERIFIABLE = TaskSpec(type="verifiable")


class Known:
    """A dataset's content hashes, answering as the caller's database would, and counting calls."""

    def __init__(self, hashes: Collection[str] = ()) -> None:
        self.hashes = set(hashes)
        self.calls: list[list[str]] = []

    def __call__(self, hashes: Collection[str]) -> set[str]:
        self.calls.append(list(hashes))
        return {h for h in hashes if h in self.hashes}


def validator(
    task: TaskSpec = INSTRUCTION,
    schema: dict[str, Any] | None = None,
    known: Known | None = None,
    index: NearDuplicateIndex | None = None,
    **policy: Any,
) -> RecordValidator:
    """A validator with the given policy knobs."""
    return RecordValidator(
        task,
        schema,
        ValidationPolicy(**policy),
        known_hashes=known if known is not None else Known(),
        near_index=index,
    )


def line(**fields: Any) -> str:
    """One JSONL line."""
    return json.dumps(fields)


def prose(seed: int, n: int = 60) -> str:
    """n random letter-only words: text with no personal data and no accidental duplicates."""
    rng = random.Random(seed)
    return " ".join(
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))
        for _ in range(n)
    )


def edited(text: str, seed: int, changes: int = 1) -> str:
    """text with `changes` words replaced (one change in 60 words: Jaccard about 0.9)."""
    rng = random.Random(seed)
    tokens = text.split()
    for position in rng.sample(range(len(tokens)), changes):
        tokens[position] = "zz" + tokens[position]
    return " ".join(tokens)


def pair(seed: int) -> dict[str, str]:
    """An instruction record."""
    return {"prompt": prose(seed, 12), "response": prose(seed + 10_000, 50)}


def only(verdicts: list[Verdict]) -> Verdict:
    """The single verdict of a one-record upload."""
    assert len(verdicts) == 1
    return verdicts[0]


# -- ok, and what an accepted verdict holds ----------------------------------------------------


def test_a_valid_record_passes_normalised_with_its_hash_and_signature() -> None:
    raw = {"prompt": "  Cafe\u0301\r\nplease\t\tnow  ", "response": "It   is\r\nthere."}
    verdict = only(validator().validate([json.dumps(raw)]))
    assert verdict.ok and verdict.code == "ok" and verdict.reason is None
    assert verdict.record == {"prompt": "Café\nplease now", "response": "It is\nthere."}
    assert verdict.record_hash == hashlib.sha256(canonical_json(verdict.record)).hexdigest()
    assert verdict.duplicate_of is None and verdict.pii == ()
    assert verdict.signature is not None and verdict.signature.shape == (NUM_PERM,)
    expected = MinHasher().signatures([shingles("Café\nplease now\nIt is\nthere.", 3)])[0]
    assert np.array_equal(verdict.signature, expected)


def test_normalisation_can_be_turned_off() -> None:
    raw = {"prompt": " a  b ", "response": "c\r\nd"}
    verdict = only(validator(normalize=False).validate([json.dumps(raw)]))
    assert verdict.ok and verdict.record == raw


def test_bytes_and_dict_lines_are_accepted_and_dicts_are_not_changed() -> None:
    record = {"prompt": " why? ", "response": "because"}
    verdicts = validator().validate([json.dumps(pair(1)).encode(), record])
    assert [v.code for v in verdicts] == ["ok", "ok"]
    assert verdicts[1].record == {"prompt": "why?", "response": "because"}
    assert record["prompt"] == " why? "


def test_blank_lines_are_skipped_but_keep_their_numbers() -> None:
    verdicts = validator().validate(["", line(**pair(1)), "   ", b"\n", line(prompt="x")])
    assert [v.line for v in verdicts] == [2, 5]
    assert verdicts[1].reason == "line 5: field 'response' is required"


def test_an_upload_without_records_is_refused() -> None:
    with pytest.raises(InvalidInput, match="the upload holds no records"):
        validator().validate(["", "  "])
    with pytest.raises(InvalidInput, match="no records"):
        validator().validate([])


def test_an_upload_over_the_limit_is_refused() -> None:
    lines = [line(**pair(i)) for i in range(4)]
    assert len(validator(max_records_per_upload=4).validate(lines)) == 4
    with pytest.raises(
        InvalidInput, match="the upload holds 5 records; this dataset takes at most 4"
    ):
        validator(max_records_per_upload=4).validate([*lines, line(**pair(9))])


# -- invalid_json and too_large --------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"prompt": "a", "response": NaN}',
        '{"prompt": "a", "response": "b", "n": 1e999}',
        b'{"prompt": "\xff\xfe", "response": "b"}',
        '{"prompt": "why \\ud800 so", "response": "b"}',  # an unpaired surrogate
        b'{"prompt": "why \xed\xa0\x80 so", "response": "b"}',  # one encoded in the bytes
    ],
)
def test_lines_that_are_not_json_records(raw: str | bytes) -> None:
    verdict = only(validator().validate([raw]))
    assert not verdict.ok and verdict.code == "invalid_json"
    assert verdict.reason is not None and verdict.reason.startswith("line 1: ")
    assert verdict.record is None and verdict.record_hash is None


def test_deeply_nested_records_are_refused_before_parsing() -> None:
    def nested(depth: int) -> str:
        return '{"prompt": "a b", "response": "c d", "x": ' + "[" * depth + "]" * depth + "}"

    check = validator(max_record_bytes=200_000)
    assert only(check.validate([nested(99)])).ok
    verdict = only(check.validate([nested(50_000).encode()]))
    assert verdict.code == "invalid_json"
    assert verdict.reason == "line 1: not valid JSON for a record: nested deeper than 100 levels"
    brackets_in_strings = json.dumps({"prompt": "[" * 500, "response": "{" * 500 + " x"})
    assert only(validator(reject_degenerate=False).validate([brackets_in_strings])).ok


def test_invalid_json_reason() -> None:
    verdict = only(validator().validate(['{"prompt": }']))
    assert verdict.reason == "line 1: not valid JSON: Expecting value: line 1 column 12 (char 11)"


def test_a_line_over_the_byte_limit_is_too_large() -> None:
    record = {"prompt": "a b c", "response": "déjà vu, naïve café " * 3}  # é is 2 bytes in UTF-8
    size = len(json.dumps(record, ensure_ascii=False).encode())
    just_fits = validator(max_record_bytes=size)
    assert only(just_fits.validate([json.dumps(record, ensure_ascii=False)])).ok
    verdict = only(
        validator(max_record_bytes=size - 1).validate([json.dumps(record, ensure_ascii=False)])
    )
    assert verdict.code == "too_large"
    assert verdict.reason == f"line 1: the record has {size} bytes; the most is {size - 1}"
    huge = only(validator(max_record_bytes=64).validate(["é" * 100]))
    assert huge.reason == "line 1: the record has more than 64 bytes (100 characters)"


def test_a_text_field_over_the_character_limit_is_too_large() -> None:
    ok = only(validator(max_field_chars=10).validate([line(prompt="0123456789", response="abc")]))
    assert ok.ok
    verdict = only(
        validator(max_field_chars=10).validate([line(prompt="a", response="abcdefghijk")])
    )
    assert verdict.code == "too_large"
    assert verdict.reason == "line 1: field 'response' has 11 characters; the most is 10"


# -- schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"prompt": "a"}', "line 1: field 'response' is required"),
        (
            '{"prompt": "a", "response": 3}',
            "line 1: field 'response' must be a string; got an integer",
        ),
        ("[1, 2]", "line 1: a record must be a JSON object; got an array"),
        ('"text"', "line 1: a record must be a JSON object; got a string"),
    ],
)
def test_records_breaking_the_task_schema(raw: str, reason: str) -> None:
    verdict = only(validator().validate([raw]))
    assert (verdict.ok, verdict.code, verdict.reason) == (False, "schema", reason)


def test_classification_labels_are_enforced() -> None:
    lines = [
        line(text="great film", label="positive"),
        line(text="dull film", label="negative"),
        line(text="odd film", label="happy"),
    ]
    verdicts = validator(CLASSIFICATION).validate(lines)
    assert [v.code for v in verdicts] == ["ok", "ok", "schema"]
    assert (
        verdicts[2].reason == "line 3: field 'label' must be one of positive, negative; got 'happy'"
    )


def test_the_datasets_own_schema_applies_after_the_tasks() -> None:
    schema = {
        "type": "object",
        "required": ["source"],
        "properties": {
            "prompt": {"maxLength": 20},
            "source": {"type": "string", "enum": ["web", "book"]},
            "secret": False,
            "meta": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}},
        },
    }
    check = validator(schema=schema)
    cases = [
        ({"prompt": "short", "response": "fine", "source": "web"}, None),
        ({"prompt": "short", "response": "fine"}, "line 1: field 'source' is required"),
        (
            {"prompt": "x" * 21, "response": "fine", "source": "web"},
            "line 1: field 'prompt' must have at most 20 characters; got 21",
        ),
        (
            {"prompt": "a", "response": "b", "source": "tv"},
            "line 1: field 'source' must be one of web, book; got 'tv'",
        ),
        (
            {"prompt": "a", "response": "b", "source": "web", "secret": 1},
            "line 1: field 'secret' is not allowed by the dataset's schema",
        ),
        (
            {"prompt": "a", "response": "b", "source": "web", "meta": {"n": 0}},
            "line 1: field 'meta.n' must be at least 1; got 0",
        ),
        # The task's schema is checked first.
        ({"prompt": "x" * 21}, "line 1: field 'response' is required"),
    ]
    for record, reason in cases:
        verdict = only(check.validate([json.dumps(record)]))
        assert verdict.reason == reason
        assert verdict.code == ("ok" if reason is None else "schema")


def test_an_invalid_dataset_schema_is_refused_at_construction() -> None:
    with pytest.raises(
        InvalidInput, match=r"not valid JSON Schema \(Draft 2020-12\) at properties/prompt"
    ):
        validator(schema={"properties": {"prompt": {"maxLength": -1}}})
    with pytest.raises(InvalidInput, match="a record schema is a JSON object, not an array"):
        validator(schema=[])  # type: ignore[arg-type]


def test_a_schema_that_cannot_resolve_its_references_is_invalid_input() -> None:
    check = validator(schema={"$ref": "https://example.org/elsewhere.json"})
    with pytest.raises(InvalidInput, match="cannot resolve"):
        check.validate([line(**pair(1))])


# -- empty and degenerate --------------------------------------------------------------------


def test_empty_text_fields() -> None:
    verdicts = validator().validate(
        [
            line(prompt="hi", response=""),
            line(prompt="hi", response=" \t\r\n "),
            line(prompt="hi", response="ok"),
        ]
    )
    assert [v.code for v in verdicts] == ["empty", "empty", "ok"]
    assert verdicts[0].reason == "line 1: field 'response' must not be empty"
    verdict = only(validator(min_chars=5).validate([line(prompt="hello", response="hey")]))
    assert verdict.reason == "line 1: field 'response' must have at least 5 characters; got 3"


@pytest.mark.parametrize("text", ["aaaaaaa", "!", "x x x x", "spam spam spam", "Ha, ha! HA..."])
def test_degenerate_text_is_rejected(text: str) -> None:
    assert is_degenerate(text)
    verdict = only(validator().validate([line(prompt="Tell me something", response=text)]))
    assert verdict.code == "degenerate"
    assert verdict.reason == (
        "line 1: field 'response' is degenerate (one character or one word repeated); write real text"
    )
    assert only(
        validator(reject_degenerate=False).validate([line(prompt="Tell me", response=text)])
    ).ok


@pytest.mark.parametrize("text", ["42", "yes", "no no", "ab", "spam spam eggs", "x" * 70 + " y"])
def test_short_or_varied_text_is_not_degenerate(text: str) -> None:
    assert not is_degenerate(text)


@pytest.mark.parametrize("answer", ["7", "11", "0", "42", "yes"])
def test_short_verifiable_answers_are_not_degenerate(answer: str) -> None:
    verdict = only(validator(VERIFIABLE).validate([line(prompt="What is 3 + 4?", answer=answer)]))
    assert verdict.ok


def test_a_verifiable_prompt_is_still_checked_for_degenerate_text() -> None:
    verdict = only(validator(VERIFIABLE).validate([line(prompt="?", answer="7")]))
    assert verdict.code == "degenerate"
    assert verdict.reason is not None and "field 'prompt'" in verdict.reason


def test_classification_short_texts_and_labels() -> None:
    verdicts = validator(CLASSIFICATION).validate(
        [line(text="yes", label="positive"), line(text="ok", label="negative")]
    )
    assert [v.code for v in verdicts] == ["ok", "ok"]


# -- personal data ---------------------------------------------------------------------------

WITH_PII = "Write to jane.roe@example.org or call +1 (555) 123-4567 about card 4111 1111 1111 1111."


def test_personal_data_is_redacted_by_default_and_hashed_after_redaction() -> None:
    verdict = only(validator().validate([line(prompt="Contact?", response=WITH_PII)]))
    assert verdict.ok and verdict.pii == ("email", "card", "phone")
    assert verdict.record is not None
    assert verdict.record["response"] == "Write to [EMAIL] or call [PHONE] about card [CARD]."
    assert verdict.record_hash == record_hash(verdict.record)


def test_personal_data_can_be_only_flagged() -> None:
    verdict = only(
        validator(pii_action="flag").validate([line(prompt="from 10.1.2.3", response="ok then")])
    )
    assert verdict.ok and verdict.pii == ("ip",)
    assert verdict.record == {"prompt": "from 10.1.2.3", "response": "ok then"}


def test_rejected_personal_data_is_named_but_never_echoed() -> None:
    verdict = only(
        validator(pii_action="reject").validate([line(prompt="Contact?", response=WITH_PII)])
    )
    assert (verdict.ok, verdict.code, verdict.pii) == (False, "pii", ("email", "card", "phone"))
    assert verdict.reason == (
        "line 1: field 'response' contains personal data (email, card, phone); "
        "this dataset does not accept it: remove it and upload the record again"
    )
    for secret in ("jane", "example.org", "555", "4111"):
        assert secret not in verdict.reason
        assert secret not in json.dumps(verdict.record)
    both = only(
        validator(pii_action="reject").validate([line(prompt="10.1.2.3", response=WITH_PII)])
    )
    assert (
        both.reason is not None
        and "fields 'prompt', 'response' contain personal data" in both.reason
    )


def test_only_the_policys_kinds_of_personal_data_count() -> None:
    check = validator(pii_action="reject", pii_kinds=["ip"])
    assert only(check.validate([line(prompt="Contact?", response="mail jane@example.org")])).ok
    assert only(check.validate([line(prompt="Contact?", response="host 10.0.0.1")])).code == "pii"
    assert only(validator(pii_kinds=[]).validate([line(prompt="a b", response=WITH_PII)])).pii == ()


# -- exact duplicates ------------------------------------------------------------------------


def test_exact_duplicates_within_an_upload_name_the_first_record() -> None:
    first = pair(1)
    verdicts = validator().validate([line(**first), line(**pair(2)), json.dumps(first)])
    assert [v.code for v in verdicts] == ["ok", "ok", "duplicate"]
    digest = verdicts[0].record_hash
    assert digest is not None and verdicts[2].duplicate_of == digest
    assert (
        verdicts[2].reason
        == f"line 3: exact duplicate of record {digest[:12]}… (line 1 of this upload)"
    )


def test_duplicates_after_normalisation_are_exact_duplicates() -> None:
    verdicts = validator().validate(
        [line(prompt="a  b", response="c d"), line(prompt=" a b", response="c\td ")]
    )
    assert [v.code for v in verdicts] == ["ok", "duplicate"]


def test_exact_duplicates_of_the_dataset_are_found_in_one_query() -> None:
    stored = only(validator().validate([line(**pair(1))]))
    assert stored.record_hash is not None
    known = Known({stored.record_hash})
    verdicts = validator(known=known).validate([line(**pair(1)), line(**pair(2))])
    assert [v.code for v in verdicts] == ["duplicate", "ok"]
    assert verdicts[0].duplicate_of == stored.record_hash
    assert (
        verdicts[0].reason
        == f"line 1: exact duplicate of record {stored.record_hash[:12]}… already in the dataset"
    )
    assert len(known.calls) == 1
    assert set(known.calls[0]) == {stored.record_hash, verdicts[1].record_hash}


def test_exact_dedup_can_be_turned_off() -> None:
    verdicts = validator(exact_dedup=False, near_dedup=False).validate([line(**pair(1))] * 2)
    assert [v.code for v in verdicts] == ["ok", "ok"]


# -- near duplicates -------------------------------------------------------------------------


def index_of(*records: dict[str, str]) -> tuple[NearDuplicateIndex, list[str]]:
    """A dataset index holding these records, keyed by record hash as the caller keys it."""
    index = NearDuplicateIndex()
    keys = []
    for verdict in validator().validate([json.dumps(r) for r in records]):
        assert verdict.ok and verdict.record_hash is not None and verdict.signature is not None
        index.add(verdict.record_hash, verdict.signature)
        keys.append(verdict.record_hash)
    return index, keys


def test_near_duplicates_of_the_dataset_name_the_record() -> None:
    stored = pair(1)
    index, keys = index_of(stored, pair(2))
    copy = {"prompt": stored["prompt"], "response": edited(stored["response"], 5)}
    verdicts = validator(index=index).validate([json.dumps(copy), line(**pair(3))])
    assert [v.code for v in verdicts] == ["near_duplicate", "ok"]
    near = verdicts[0]
    assert near.duplicate_of == keys[0]
    assert near.reason is not None
    assert near.reason.startswith("line 1: near-duplicate (Jaccard ≈ 0.")
    assert near.reason.endswith(f") of record {keys[0][:12]}… already in the dataset")
    assert len(index) == 2  # validating does not change the index


def test_near_duplicates_within_an_upload_name_the_earlier_line() -> None:
    first = pair(1)
    copy = {"prompt": first["prompt"], "response": edited(first["response"], 6)}
    verdicts = validator().validate([line(**first), line(**pair(2)), json.dumps(copy)])
    assert [v.code for v in verdicts] == ["ok", "ok", "near_duplicate"]
    first_hash = verdicts[0].record_hash
    assert first_hash is not None and verdicts[2].duplicate_of == first_hash
    assert verdicts[2].reason is not None
    assert verdicts[2].reason.endswith(f"of record {first_hash[:12]}… (line 1 of this upload)")


def test_a_rejected_record_is_never_named_as_what_a_later_one_duplicates() -> None:
    stored = pair(1)
    index, keys = index_of(stored)
    copy = json.dumps({"prompt": stored["prompt"], "response": edited(stored["response"], 7)})
    verdicts = validator(index=index).validate([copy, copy])
    assert [v.code for v in verdicts] == ["near_duplicate", "near_duplicate"]
    assert verdicts[0].duplicate_of == verdicts[1].duplicate_of == keys[0]


def test_records_far_apart_are_not_near_duplicates() -> None:
    base = pair(1)
    far = {"prompt": base["prompt"], "response": edited(base["response"], 8, changes=10)}
    assert [v.code for v in validator().validate([line(**base), json.dumps(far)])] == ["ok", "ok"]


def test_near_dedup_can_be_turned_off() -> None:
    base = pair(1)
    copy = {"prompt": base["prompt"], "response": edited(base["response"], 9)}
    verdicts = validator(near_dedup=False).validate([line(**base), json.dumps(copy)])
    assert [v.code for v in verdicts] == ["ok", "ok"]


def test_the_index_must_match_the_policys_threshold() -> None:
    with pytest.raises(
        InvalidInput, match=r"built for Jaccard 0\.9, but the dataset's policy says 0\.8"
    ):
        validator(index=NearDuplicateIndex(threshold=0.9))


def test_every_code_is_reachable_and_every_reason_starts_with_its_line() -> None:
    stored = pair(1)
    index, _ = index_of(stored)
    known = Known({record_hash(pair(2))})
    lines = [
        line(**pair(3)),
        "{",
        line(prompt="a", response="b" * 500),
        line(prompt="a"),
        line(prompt="a", response=""),
        line(prompt="a", response="zzzz"),
        line(prompt="Contact?", response="me@example.org"),
        line(**pair(2)),
        json.dumps({"prompt": stored["prompt"], "response": edited(stored["response"], 1)}),
    ]
    verdicts = validator(
        known=known, index=index, max_field_chars=400, pii_action="reject"
    ).validate(lines)
    assert [v.code for v in verdicts] == list(CODES)
    for verdict in verdicts[1:]:
        assert verdict.reason is not None and verdict.reason.startswith(f"line {verdict.line}: ")


# -- properties ------------------------------------------------------------------------------


@given(st.text())
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "aaa", "x x x", "a@b.co", "+1 555 123 4567", "\ud800", "caf\u0065\u0301"]
    ),
)
VALUES = st.one_of(
    TEXTS, st.integers(), st.floats(), st.none(), st.lists(st.integers(), max_size=2)
)
RECORDS = st.dictionaries(
    st.sampled_from(["prompt", "response", "text", "label", "answer", "extra"]), VALUES, max_size=5
)
LINES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=40),
    RECORDS.map(lambda r: json.dumps(r)),
    RECORDS,
    st.sampled_from(["[]", "{}", "null", '{"prompt": 1e400}', "[" * 3_000]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(LINES, max_size=8), st.sampled_from([INSTRUCTION, CLASSIFICATION, VERIFIABLE]))
def test_validate_never_raises_anything_but_invalid_input(lines: list[Any], task: TaskSpec) -> None:
    schema = {"properties": {"extra": {"type": "integer", "maximum": 5}}}
    try:
        verdicts = validator(
            task, schema=schema, pii_action="reject", max_record_bytes=2_000
        ).validate(lines)
    except InvalidInput:
        return
    assert [v.line for v in verdicts] == sorted(v.line for v in verdicts)
    for verdict in verdicts:
        assert verdict.code in CODES
        assert verdict.ok == (verdict.code == "ok")
        assert verdict.ok or (verdict.reason or "").startswith(f"line {verdict.line}: ")


@settings(max_examples=200, deadline=None)
@given(RECORDS, st.sampled_from([INSTRUCTION, CLASSIFICATION, VERIFIABLE]))
def test_the_fast_base_schema_check_agrees_with_jsonschema(
    record: dict[str, Any], task: TaskSpec
) -> None:
    verdict = only(validator(task, max_record_bytes=4_096).validate([record]))
    if verdict.code == "invalid_json":
        return
    assert (verdict.code == "schema") == (
        not Draft202012Validator(task.base_schema()).is_valid(record)
    )
