"""CIDv1 (raw, sha2-256, base32): known vectors, round trips, and strict rejection."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cairn.core.cid import CID, CIDHasher, canonical_json, cid_of, cid_of_stream, is_cid
from cairn.core.errors import InvalidInput

# `ipfs add --cid-version 1 --raw-leaves` of an empty file and of "hello world\n"
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HELLO_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
DIGEST = hashlib.sha256(b"cairn").digest()


def by_hand(raw: bytes) -> str:
    """A multibase base32 string built with the standard library, not with cairn's encoder."""
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def test_empty_input_matches_ipfs() -> None:
    assert cid_of(b"") == EMPTY_CID
    assert CID.parse(EMPTY_CID).digest == hashlib.sha256(b"").digest()


def test_hello_world_matches_ipfs() -> None:
    assert cid_of(b"hello world\n") == HELLO_CID
    assert CID.parse(HELLO_CID).digest.hex() == (
        "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"
    )


@given(st.binary(max_size=256))
def test_cid_is_version_codec_multihash_in_base32(data: bytes) -> None:
    digest = hashlib.sha256(data).digest()
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + digest
    cid = CID.of_bytes(data)
    assert cid.to_bytes() == raw
    assert cid.multihash == bytes([0x12, 0x20]) + digest
    assert str(cid) == cid_of(data) == by_hand(raw)
    assert len(str(cid)) == 59


@given(st.binary(max_size=256))
def test_parse_inverts_str(data: bytes) -> None:
    cid = CID.of_bytes(data)
    assert CID.parse(str(cid)) == cid
    assert CID.parse(str(cid)).digest == hashlib.sha256(data).digest()
    assert is_cid(str(cid))


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_hashing_in_chunks_gives_the_same_cid(chunks: list[bytes]) -> None:
    hasher = CIDHasher()
    for chunk in chunks:
        hasher.update(chunk)
    assert hasher.cid() == CID.of_bytes(b"".join(chunks))
    assert hasher.size == sum(map(len, chunks))


def test_from_digest_and_constructor_check_their_parts() -> None:
    assert CID.from_digest(DIGEST) == CID(1, 0x55, DIGEST)
    assert CID.from_digest(bytearray(DIGEST)) == CID.from_digest(DIGEST)
    assert repr(CID.from_digest(DIGEST)) == f"CID('{CID.from_digest(DIGEST)}')"
    with pytest.raises(InvalidInput, match="32 bytes; got 31"):
        CID.from_digest(DIGEST[:31])
    with pytest.raises(InvalidInput, match="must be bytes"):
        CID.from_digest("00" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="version 0"):
        CID(0, 0x55, DIGEST)
    with pytest.raises(InvalidInput, match="codec 0x70"):
        CID(1, 0x70, DIGEST)


VALID = cid_of(b"cairn")
REJECTED = [
    pytest.param(None, "must be a string", id="not-a-string"),
    pytest.param(VALID.encode(), "must be a string", id="bytes"),
    pytest.param("", "empty CID", id="empty"),
    pytest.param("b" * 200, "200 characters", id="too-long"),
    pytest.param("B" + VALID[1:].upper(), "upper-case base32", id="multibase-B"),
    pytest.param("QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR", "CIDv0", id="cidv0"),
    pytest.param("z" + VALID[1:], "multibase prefix 'z'", id="base58-prefix"),
    pytest.param("f" + "01551220" + DIGEST.hex(), "multibase prefix 'f'", id="hex-prefix"),
    pytest.param(VALID[:20] + "Q" + VALID[21:], "upper-case 'Q' at position 20", id="upper"),
    pytest.param(VALID + "=====", "padding '=' at position 59", id="padding"),
    pytest.param(VALID[:30] + "1" + VALID[31:], "'1' at position 30 is not base32", id="digit-1"),
    pytest.param(VALID[:30] + " " + VALID[31:], "not base32", id="space"),
    pytest.param(VALID + "a", "cannot encode whole bytes", id="bad-length"),
    pytest.param(EMPTY_CID[:-1] + "v", "non-zero padding bits", id="trailing-bits"),
    pytest.param(by_hand(b"\x02\x55\x12\x20" + DIGEST), "version 2", id="version-2"),
    pytest.param(by_hand(b"\x01\x70\x12\x20" + DIGEST), "codec 0x70", id="dag-pb"),
    pytest.param(by_hand(b"\x01\x55\x13\x40" + DIGEST * 2), "hash function 0x13", id="sha512"),
    pytest.param(by_hand(b"\x01\x55\x12\x14" + DIGEST[:20]), "digest length 20", id="len-20"),
    pytest.param(by_hand(b"\x01\x55\x12\x20" + DIGEST[:31]), "31 bytes", id="short-digest"),
    pytest.param(by_hand(b"\x01\x55\x12\x20" + DIGEST + b"\x00"), "33 bytes", id="trailing"),
    pytest.param(by_hand(b"\x81\x00\x55\x12\x20" + DIGEST), "non-minimal varint", id="varint"),
    pytest.param(by_hand(b"\x01\x55\x12"), "truncated varint in the digest length", id="cut"),
    pytest.param(by_hand(b"\x01" + b"\xff" * 10), "longer than 9 bytes", id="huge-varint"),
]


@pytest.mark.parametrize(("text", "reason"), REJECTED)
def test_malformed_cids_are_rejected_saying_why(text: object, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        CID.parse(text)
    assert reason in caught.value.message
    assert not is_cid(text)


_CHARS = st.one_of(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz234567ABZ=0189 !/.-_"), st.characters()
)


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str]:
    """A valid CID string and a different string made from it by one random edit."""
    original = cid_of(draw(st.binary(max_size=64)))
    at = draw(st.integers(0, len(original) - 1))
    edit = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "swapcase"]))
    if edit == "replace":
        mutated = original[:at] + draw(_CHARS) + original[at + 1 :]
    elif edit == "insert":
        mutated = original[:at] + draw(_CHARS) + original[at:]
    elif edit == "delete":
        mutated = original[:at] + original[at + 1 :]
    elif edit == "truncate":
        mutated = original[:at]
    else:
        mutated = original[:at] + original[at:].swapcase()
    assume(mutated != original)
    return original, mutated


@given(mutations())
def test_a_mutated_cid_is_rejected_or_names_other_content(pair: tuple[str, str]) -> None:
    original, mutated = pair
    try:
        parsed = CID.parse(mutated)
    except InvalidInput:
        assert not is_cid(mutated)
        return
    # it parsed: then it is another canonical CID, never a second spelling of the original
    assert parsed.digest != CID.parse(original).digest
    assert str(parsed) == mutated


def test_canonical_json_is_one_byte_form_of_a_value() -> None:
    one = canonical_json({"é": {"b": 1.5, "a": None}, "stones": [3, 1, 2], "name": "cairn"})
    other = canonical_json({"name": "cairn", "stones": [3, 1, 2], "é": {"a": None, "b": 1.5}})
    assert one == other == '{"name":"cairn","stones":[3,1,2],"é":{"a":null,"b":1.5}}'.encode()


@pytest.mark.parametrize("value", [float("nan"), {"a": float("inf")}, {1, 2}, {"when": object()}])
def test_canonical_json_refuses_what_json_cannot_say(value: object) -> None:
    with pytest.raises(InvalidInput, match="not storable as canonical JSON"):
        canonical_json(value)


def test_the_cid_of_a_stream_is_that_of_its_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # over a megabyte: read in several pieces
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    with path.open("rb") as source:
        assert cid_of_stream(source) == cid_of(data)
    assert cid_of_stream(io.BytesIO(b"")) == cid_of(b"")
