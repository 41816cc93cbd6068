"""JSON Schema errors in plain words: "field 'label' must be one of a, b; got 'c'".

jsonschema reports an error by keyword, path and instance; a contributor needs the field, what
it must be and what it was. One function per kind of error would scatter one table of phrases,
so the phrases stay together here, in `describe_error`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import ValidationError

SHOWN_CHARS = 40  # at most this much of an offending value is quoted back in a reason


def show_value(value: Any) -> str:
    """A value quoted for a reason, cut to SHOWN_CHARS."""
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "object": "a JSON object",
    "array": "an array",
    "boolean": "true or false",
    "null": "null",
}


def json_type(value: Any) -> str:
    """The JSON type of a parsed value, in words ("a string", "true or false")."""
    if isinstance(value, bool):
        return "true or false"
    for kind, python in (("string", str), ("integer", int), ("number", float)):
        if isinstance(value, python):
            return TYPE_NAMES[kind]
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
        wanted = " or ".join(TYPE_NAMES.get(n, n) for n in names)
        subject = "the record" if not path else where
        return f"{subject} must be {wanted}; got {json_type(value)}"
    if keyword == "enum":
        options = ", ".join(o if isinstance(o, str) else json.dumps(o) for o in expected)
        return f"{where} must be one of {options}; got {show_value(value)}"
    if keyword == "const":
        return f"{where} must be {show_value(expected)}; got {show_value(value)}"
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
        return f"{where} must {phrase.format(expected)}; got {show_value(got)}"
    if keyword == "pattern":
        return f"{where} must match the pattern {expected}"
    if keyword == "format":
        return f"{where} must be a valid {expected}"
    if keyword == "uniqueItems":
        return f"{where} must not repeat items"
    if keyword in ("anyOf", "oneOf"):
        return f"{where} matches {'none' if keyword == 'anyOf' else 'not exactly one'} of the forms the dataset's schema allows"
    return f"{where} breaks the dataset schema's '{keyword}' rule"
