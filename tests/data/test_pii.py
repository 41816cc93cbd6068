"""cairn.data.pii: emails, phone numbers, cards passing Luhn and IP addresses, found and redacted."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.data.pii import KINDS, PiiMatch, find_pii, luhn_ok, redact


def found(text: str, kinds: tuple[str, ...] = KINDS) -> list[tuple[str, str]]:
    """(kind, matched text) for each match."""
    return [(m.kind, text[m.start : m.end]) for m in find_pii(text, kinds)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to jane.roe+news@example.co.uk.", "email", "jane.roe+news@example.co.uk"),
        ("mail ADMIN@Mail-Server.example.org today", "email", "ADMIN@Mail-Server.example.org"),
        ("call +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
        ("call +1 (555) 123-4567 now", "phone", "+1 (555) 123-4567"),
        ("call +14155552671 now", "phone", "+14155552671"),
        ("call (555) 123-4567 now", "phone", "(555) 123-4567"),
        ("call 555-123-4567 now", "phone", "555-123-4567"),
        ("call 555.123.4567 now", "phone", "555.123.4567"),
        ("call 020 7946 0958 now", "phone", "020 7946 0958"),
        ("call 06 12 34 56 78 now", "phone", "06 12 34 56 78"),
        ("call 555-1234 now", "phone", "555-1234"),
        ("pay with 4111 1111 1111 1111 please", "card", "4111 1111 1111 1111"),
        ("pay with 4111-1111-1111-1111 please", "card", "4111-1111-1111-1111"),
        ("pay with 4111111111111111 please", "card", "4111111111111111"),
        ("amex 378282246310005.", "card", "378282246310005"),
        ("from 192.168.1.1 today", "ip", "192.168.1.1"),
        ("from 255.255.255.255.", "ip", "255.255.255.255"),
        ("from 192.168.10.100 today", "ip", "192.168.10.100"),
        (
            "v6 2001:0db8:85a3:0000:0000:8a2e:0370:7334 here",
            "ip",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        ),
        ("v6 2001:db8::1, compressed", "ip", "2001:db8::1"),
        ("link-local fe80::1ff:fe23:4567:890a here", "ip", "fe80::1ff:fe23:4567:890a"),
        ("mapped ::ffff:192.0.2.1 here", "ip", "::ffff:192.0.2.1"),
    ],
)
def test_each_kind_is_found(text: str, kind: str, value: str) -> None:
    assert found(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # 16 digits failing Luhn
        "4111-1111-1111-1121",
        "1234567812345678",
        "4111 1111 1111 111",  # 15 digits failing Luhn
    ],
)
def test_numbers_failing_luhn_are_not_cards(text: str) -> None:
    assert not luhn_ok(text.replace(" ", "").replace("-", ""))
    assert found(f"number {text} here") == []


@pytest.mark.parametrize(
    "text",
    [
        "In 2024 we grew",
        "it costs $1,299.99",
        "priced 1 299 999 or 1.299.999",
        "Python 3.11.7 and 10.15.7",
        "on 2024-01-15 or 15.01.2024",
        "from 1999-2004",
        "the years 2019 2020 2021",
        "at 12:30:45",
        "pi is 3.14159265",
        "1234.5678 metres",
        "ISBN 978-3-16-148410-0",
        "order #12345678",
        "1234567",
        "12345678901",
    ],
)
def test_years_prices_versions_and_plain_numbers_are_not_phones(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize("text", ["999.1.1.1", "10.0.0.256", "1.2.3", "01.02.03.04"])
def test_impossible_ipv4_is_not_an_ip(text: str) -> None:
    assert found(f"host {text} here", ("ip",)) == []


@pytest.mark.parametrize("text", ["std::vector", "a::b", "::1", "::", "12:30", "00:1A:2B:3C:4D:5E"])
def test_code_times_and_macs_are_not_ipv6(text: str) -> None:
    assert found(f"see {text} here") == []


def test_only_the_kinds_asked_for_are_returned() -> None:
    text = "jane@example.org, 192.168.1.1, +44 20 7946 0958"
    assert found(text, ("ip",)) == [("ip", "192.168.1.1")]
    assert found(text, ()) == []


def test_an_address_is_never_taken_for_a_phone_even_when_only_phones_are_wanted() -> None:
    assert found("from 192.168.10.100", ("phone",)) == []


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown kinds of personal data: passport"):
        find_pii("x", ["email", "passport"])


def test_redact_replaces_every_span_with_its_placeholder() -> None:
    text = (
        "Mail jane@example.org or call +1 (555) 123-4567; card 4111 1111 1111 1111 from 10.0.0.1."
    )
    assert (
        redact(text, find_pii(text, KINDS))
        == "Mail [EMAIL] or call [PHONE]; card [CARD] from [IP]."
    )


def test_redact_skips_overlapping_matches_and_keeps_text_without_matches() -> None:
    assert redact("abcdef", []) == "abcdef"
    overlapping = [PiiMatch("email", 0, 4), PiiMatch("phone", 2, 6)]
    assert redact("abcdefgh", overlapping) == "[EMAIL]efgh"


def test_luhn_known_values() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert not luhn_ok("")
    assert not luhn_ok("4111 1111")
    assert not luhn_ok("٤١١١")  # Arabic-Indic digits are not card digits


def reference_luhn(digits: str) -> bool:
    """Luhn as usually written: double every second digit from the right, sum digit sums."""
    total = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        total += sum(divmod(d * 2, 10)) if i % 2 else d
    return total % 10 == 0


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_luhn_agrees_with_a_reference(digits: str) -> None:
    assert luhn_ok(digits) == reference_luhn(digits)


PII_ALPHABET = st.sampled_from([*"0123456789 -.+()@:/,abcdefxyz", "com", "::", "ffff"])


@settings(max_examples=300)
@given(st.one_of(st.text(), st.lists(PII_ALPHABET, max_size=60).map("".join)))
def test_find_pii_never_raises_and_spans_lie_within_the_text(text: str) -> None:
    matches = find_pii(text, KINDS)
    last_end = 0
    for match in matches:
        assert match.kind in KINDS
        assert last_end <= match.start < match.end <= len(text)
        last_end = match.end
    redacted = redact(text, matches)
    assert len(matches) == 0 or redacted != text


@pytest.mark.parametrize(
    "text",
    [
        "1 " * 5_000,
        "1-" * 5_000,
        "a:" * 5_000,
        "@a." * 5_000,
        "+1" * 5_000,
        "9" * 10_000,
        "a" * 10_000 + "@",
    ],
)
def test_long_adversarial_texts_are_scanned_quickly(text: str) -> None:
    started = time.perf_counter()
    find_pii(text, KINDS)
    assert time.perf_counter() - started < 1.0
