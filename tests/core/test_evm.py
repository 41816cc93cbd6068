"""cairn.core.evm: addresses and 32-byte words as the contracts take them, or a clear refusal."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address

from cairn.core.errors import InvalidInput
from cairn.core.evm import checksum, to_bytes32

ADDRESS = "0x" + "ab" * 20


@pytest.mark.parametrize("spelling", [ADDRESS, ADDRESS.upper().replace("0X", "0x"), ADDRESS[2:]])
def test_checksum_gives_the_eip55_form_of_any_spelling(spelling: str) -> None:
    assert checksum(spelling) == to_checksum_address(ADDRESS)


@pytest.mark.parametrize("bad", ["0x123", "0x" + "zz" * 20, "", 17, None])
def test_checksum_refuses_what_is_not_an_address(bad: object) -> None:
    with pytest.raises(InvalidInput, match="not an Ethereum address"):
        checksum(bad)  # type: ignore[arg-type]


def test_to_bytes32_takes_hex_or_bytes() -> None:
    assert to_bytes32("0x" + "01" * 32) == b"\x01" * 32
    assert to_bytes32(b"\x02" * 32) == b"\x02" * 32


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("0x1234", "expected 32 bytes, got 2"),
        (b"\x00" * 33, "expected 32 bytes, got 33"),
        ("0xzz", "not 32 bytes of hex"),
    ],
)
def test_to_bytes32_refuses_any_other_length_or_non_hex(bad: str | bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        to_bytes32(bad)


def test_a_mixed_case_address_with_a_wrong_checksum_is_refused() -> None:
    good = "0x690D6F99A7e7A5C81ECD960428880A0BE6AB4249"
    assert checksum(good) == good
    assert checksum(good.lower()) == good and checksum("0x" + good[2:].upper()) == good
    with pytest.raises(InvalidInput, match="checksum"):
        checksum("0x690d6F99A7e7A5C81ECD960428880A0BE6AB4249")  # one letter's case flipped
