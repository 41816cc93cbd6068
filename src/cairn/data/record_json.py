"""Reading one uploaded line as a JSON record: validation's stages 1 and 2 (size, then JSON).

A line is measured before it is parsed, so a huge line is never parsed; nesting deeper than
MAX_DEPTH is refused before a parser recurses into it; NaN, Infinity, numbers too large for a
float and unpaired surrogates are refused, since canonical JSON (what a record's hash is made
of) cannot hold them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cairn.core.cid import canonical_json
from cairn.core.errors import InvalidInput
from cairn.data.schema_errors import json_type

MAX_DEPTH = 100  # nesting levels of arrays and objects in one record
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class Refused:
    """Why a line is not a record."""

    code: str  # too_large, invalid_json or schema
    reason: str  # without the line number


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


def read_record(item: Any, limit: int) -> dict[str, Any] | Refused:
    """A line (text, bytes, or an already parsed object) as a record of at most `limit` bytes."""
    if isinstance(item, dict):
        try:
            size = len(canonical_json(item))
        except (InvalidInput, UnicodeEncodeError, RecursionError) as error:
            return Refused("invalid_json", f"the record is not JSON: {plain_error(error)}")
        if size > limit:
            return Refused("too_large", f"the record has {size} bytes; the most is {limit}")
        return item
    if not isinstance(item, str | bytes):
        return Refused("invalid_json", f"a line is text, not {type(item).__name__}")
    size = len(item)
    if isinstance(item, str) and not item.isascii():
        if size > limit:  # a character is at least one byte: no need to encode it all
            reason = f"the record has more than {limit} bytes ({size} characters)"
            return Refused("too_large", reason)
        try:
            size = len(item.encode("utf-8"))
        except UnicodeEncodeError:
            return Refused("invalid_json", "the line is not valid UTF-8 text")
    if size > limit:
        reason = f"the record has {size} bytes; the most is {limit}"
        return Refused("too_large", reason)
    if too_deep(item):
        reason = f"not valid JSON for a record: nested deeper than {MAX_DEPTH} levels"
        return Refused("invalid_json", reason)
    try:
        text = item  # bytes are decoded as json.loads decodes them
        if isinstance(text, bytes):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        value = _DECODER.decode(text)
    except UnicodeDecodeError:
        return Refused("invalid_json", "the line is not valid UTF-8 text")
    except (ValueError, RecursionError) as error:  # JSONDecodeError and the hooks' refusals
        return Refused("invalid_json", f"not valid JSON: {plain_error(error)}")
    if not isinstance(value, dict):
        reason = f"a record must be a JSON object; got {json_type(value)}"
        return Refused("schema", reason)
    if may_hold_surrogates(item):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            reason = "not valid JSON: a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
            return Refused("invalid_json", reason)
    return value


def too_deep(item: str | bytes) -> bool:
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


def may_hold_surrogates(item: str | bytes) -> bool:
    """Whether a line may decode to an unpaired surrogate, which no UTF-8 text can store: an
    escape \\uD800-\\uDFFF, or (bytes, which json decodes with "surrogatepass") a 0xED byte."""
    if isinstance(item, bytes):
        return b"\\u" in item or b"\xed" in item
    return "\\ud" in item or "\\uD" in item


def is_blank(item: Any) -> bool:
    """Whether a line is empty or only spaces: it holds no record, but keeps its number."""
    return isinstance(item, str | bytes) and (not item or item.isspace())


def plain_error(error: BaseException) -> str:
    """An exception's message without Python's class names."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    if isinstance(error, UnicodeError):
        return "text that is not valid UTF-8"
    if isinstance(error, InvalidInput):
        return error.message.removeprefix("not storable as canonical JSON: ")
    return str(error)
