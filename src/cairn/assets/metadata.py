"""An asset's metadata document: what its CID in AssetRegistry points at."""

from __future__ import annotations

import unicodedata
from typing import Any

from cairn.core.errors import InvalidInput
from cairn.core.policy import AssetKind, RevenueSplit

METADATA_SCHEMA = "cairn.asset/v1"
MAX_PARENTS = 16
# Characters that reorder the text around them (U+202E makes "gpj.exe" read "exe.jpg"): an
# asset's name or description must show what it says.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def validate_licence(licence: str) -> str:
    """A licence identifier (SPDX-style, e.g. `CC-BY-4.0`): 1-64 printable ASCII characters."""
    text = licence.strip() if isinstance(licence, str) else ""
    if not text or len(text) > 64 or not text.isascii() or not text.isprintable():
        raise InvalidInput(
            f"licence must be 1-64 printable ASCII characters such as CC-BY-4.0; got {licence!r}"
        )
    return text


def validate_text(value: str, field: str, *, lines: bool = False) -> str:
    """`value` unless it holds a control character or a bidirectional override; `lines`
    lets line breaks and tabs through (a description), never in a one-line `field`."""
    for index, char in enumerate(value):
        if lines and char in "\n\r\t":
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or char in BIDI_CONTROLS:
            kind = {"Cc": "control character", "Zl": "line break", "Zp": "line break"}.get(
                category, "bidirectional control"
            )
            known = unicodedata.name(char, "")
            raise InvalidInput(
                f"{field} must not contain {kind} U+{ord(char):04X}"
                f"{f' ({known})' if known else ''} at position {index}"
            )
    return value


def validate_parents(parents: list[int], total_assets: int | None = None) -> list[int]:
    """Lineage parents: at most 16 distinct positive ids (of assets that exist, if known)."""
    if len(parents) > MAX_PARENTS:
        raise InvalidInput(f"an asset may have at most {MAX_PARENTS} parents")
    if len(set(parents)) != len(parents):
        raise InvalidInput("parents must not repeat")
    for parent in parents:
        if isinstance(parent, bool) or not isinstance(parent, int) or parent < 1:
            raise InvalidInput(f"parent {parent!r} is not an asset id")
        if total_assets is not None and parent > total_assets:
            raise InvalidInput(f"parent {parent!r} is not a registered asset id")
    return list(parents)


def asset_metadata(
    *,
    kind: AssetKind,
    name: str,
    licence: str,
    description: str,
    parents: list[int],
    split: RevenueSplit,
    created_by: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata document of a new asset, checked field by field."""
    clean_name = name.strip() if isinstance(name, str) else ""
    if not clean_name or len(clean_name) > 200:
        raise InvalidInput("name must be 1-200 characters")
    return {
        "schema": METADATA_SCHEMA,
        "kind": kind.label,
        "name": validate_text(clean_name, "name"),
        "description": validate_text(description, "description", lines=True),
        "licence": validate_licence(licence),
        "parents": list(parents),
        "split": split.as_dict(),
        "created_by": created_by,
        "extra": extra or {},
    }
