"""Personal data in free text: emails, phone numbers, payment cards and IP addresses.

Pure functions. `find_pii` looks for every kind, settles overlaps (an email beats a card, a card
an IP address, an IP address a phone number, and a longer match a shorter one at the same
place), then keeps the kinds asked for. So "192.168.10.100" is an IP address even when only
phones are looked for, never a phone number.

Each pattern is loose on purpose and each candidate is then checked in Python: a card must
pass Luhn, an IPv4 octet must be at most 255, an IPv6 address must parse, and a phone number
must not look like a year, a date, a price, a version or a plain number.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

KINDS = ("email", "card", "ip", "phone")  # also the order in which overlaps are settled
PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "ip": "[IP]"}


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data: its kind and its span `text[start:end]`."""

    kind: str
    start: int
    end: int


_EMAIL = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,63}(?![\w\-])")
# 13-19 digits, each optionally followed by one space or dash; Luhn decides.
_CARD = re.compile(r"(?<![\w+\-.])(?:\d[ \-]?){12,18}\d(?!\w|[\-.]\d)")
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)"
)
# Hex groups and colons, possibly ending in a dotted quad; ipaddress decides.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|::)[0-9A-Fa-f:]{1,38}(?:\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\d)"
)
# International (+CC ...), national with an area code in brackets, or grouped digits.
_PHONE = re.compile(
    r"(?<![\w+.\-/])"
    r"(?:\+\d{1,3}(?:[ .\-]?\(\d{1,4}\))?[ .\-]?\d{1,12}(?:[ .\-]\d{1,8}){0,5}"
    r"|\(\d{2,5}\)[ .\-]?\d{2,8}(?:[ .\-]\d{2,8}){0,3}"
    r"|\d{2,5}(?:[ .\-]\d{2,8}){1,4})"
    r"(?!\w|[.\-/,]\d)"
)
_GROUP_SPLIT = re.compile(r"[ .\-]")
_DATE = re.compile(r"\d{4}([ .\-])\d{1,2}\1\d{1,2}|\d{1,2}([ .\-])\d{1,2}\2\d{2,4}")
_YEAR = re.compile(r"(?:1[89]|20)\d\d")


def luhn_ok(digits: str) -> bool:
    """Whether a string of decimal digits passes the Luhn checksum (False if it is not digits)."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_card(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _is_ipv6(candidate: str) -> bool:
    if sum(1 for group in candidate.split(":") if group) < 2 or not _HAS_DIGIT.search(candidate):
        return False  # "::1" is nobody's address, and "a::b" is C++ more often than an address
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _is_phone(candidate: str) -> bool:
    digits = sum(char.isdigit() for char in candidate)
    if not 7 <= digits <= 15:
        return False
    if candidate[0] == "+":
        return True
    if digits > 12:
        return False  # national numbers are at most 12 digits; longer ones are ids or amounts
    if candidate[0] == "(":
        return True
    groups = _GROUP_SPLIT.split(candidate)
    separators = set(_GROUP_SPLIT.findall(candidate))
    if len(groups) == 2:
        # Two groups are a local number only as 555-1234; else a range, decimal or pair of numbers.
        return len(groups[0]) == 3 and len(groups[1]) == 4 and separators == {"-"}
    if _DATE.fullmatch(candidate):
        return False
    if len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]) and len(separators) == 1:
        return separators != {" "} and separators != {"."}  # 1 299 999 and 1.299.999 are amounts
    return not all(_YEAR.fullmatch(g) for g in groups)


# Cheap scans that rule a kind out for most texts: a phone number or card needs a run of at
# least seven digits, spaces, dashes, dots or brackets; an IPv4 address a digit-dot-digit; an
# IPv6 address two colons or a colon between hex digits.
_DIGIT_RUN = re.compile(r"\d[\d \-.()]{5,}\d")
_DOTTED = re.compile(r"\d\.\d")
_COLONS = re.compile(r"::|[0-9A-Fa-f]:[0-9A-Fa-f]")

# (kind, pattern, check on the matched text, scan that must find something first)
_FINDERS = (
    ("email", _EMAIL, None, re.compile("@")),
    ("card", _CARD, _is_card, _DIGIT_RUN),
    ("ip", _IPV4, None, _DOTTED),
    ("ip", _IPV6, _is_ipv6, _COLONS),
    ("phone", _PHONE, _is_phone, _DIGIT_RUN),
)
_PRIORITY = {kind: rank for rank, kind in enumerate(KINDS)}
_HAS_DIGIT = re.compile(r"\d")


def find_pii(text: str, kinds: Iterable[str]) -> list[PiiMatch]:
    """Personal data of the given kinds in `text`: non-overlapping matches in text order."""
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds of personal data: {', '.join(sorted(unknown))}")
    if not wanted or (_HAS_DIGIT.search(text) is None and "@" not in text):
        return []  # every kind but email needs a digit
    found: list[tuple[int, int, int, str]] = []  # (start, -length, priority, kind)
    possible: dict[re.Pattern[str], bool] = {}
    for kind, pattern, check, scan in _FINDERS:
        if scan not in possible:
            possible[scan] = scan.search(text) is not None
        if not possible[scan]:
            continue
        for match in pattern.finditer(text):
            if check is None or check(match.group()):
                start, end = match.span()
                found.append((start, start - end, _PRIORITY[kind], kind))
    found.sort()
    matches: list[PiiMatch] = []
    taken_until = 0
    # Overlaps: the earlier match wins, then the longer, then the kind named first in KINDS.
    for start, negative_length, _, kind in found:
        if start < taken_until:
            continue
        end = start - negative_length
        taken_until = end
        if kind in wanted:
            matches.append(PiiMatch(kind, start, end))
    return matches


def redact(text: str, matches: list[PiiMatch]) -> str:
    """`text` with each match replaced by its kind's placeholder ("[EMAIL]", "[PHONE]", ...)."""
    parts: list[str] = []
    position = 0
    for match in sorted(matches, key=lambda m: (m.start, -m.end)):
        if match.start < position:
            continue  # overlaps one already replaced
        parts.append(text[position : match.start])
        parts.append(PLACEHOLDERS[match.kind])
        position = match.end
    parts.append(text[position:])
    return "".join(parts)
