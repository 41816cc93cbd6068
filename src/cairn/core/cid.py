"""Content ids: CIDv1, raw codec, sha2-256, written in lower-case base32 multibase.

This is the one CID form Cairn speaks, byte for byte what `ipfs add --cid-version 1
--raw-leaves` prints for a single-block file, so any IPFS tool can check our ids:

    "b" + base32(varint(1) ‖ varint(0x55 raw) ‖ varint(0x12 sha2-256) ‖ varint(32) ‖ digest)

Parsing is strict: every CID has exactly one accepted spelling, so two different strings never
name the same bytes (no upper case, no padding, minimal varints, zero trailing bits).
Pure functions only (`cid_of_stream` reads the file it is handed); the encodings are written
out here so there is nothing to install. `canonical_json` gives a JSON value its one CID.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn.core.errors import InvalidInput

CID_VERSION = 1
RAW_CODEC = 0x55  # multicodec "raw": the bytes are the content, no IPLD wrapping
SHA2_256 = 0x12  # multihash code for sha2-256
DIGEST_SIZE = 32
MULTIBASE_BASE32 = "b"  # multibase prefix: RFC 4648 base32, lower case, no padding

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_ALPHABET_INDEX = {char: value for value, char in enumerate(_ALPHABET)}
_MAX_VARINT_BYTES = 9  # the multiformats unsigned-varint spec caps varints at 9 bytes (63 bits)
_MAX_TEXT = 128  # a Cairn CID is 59 characters; anything far longer is rejected before decoding
_CID_TEXT_LENGTH = 59

# turns a reason into the InvalidInput to raise, naming the text being parsed
_Reject = Callable[[str], InvalidInput]


@dataclass(frozen=True, slots=True)
class CID:
    """A CIDv1 naming raw bytes by their sha2-256 digest."""

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version != CID_VERSION:
            raise InvalidInput(f"unsupported CID version {self.version}; expected 1")
        if self.codec != RAW_CODEC:
            raise InvalidInput(f"unsupported codec 0x{self.codec:x}; expected raw (0x55)")
        if not isinstance(self.digest, bytes):
            raise InvalidInput(f"a digest must be bytes; got {type(self.digest).__name__}")
        if len(self.digest) != DIGEST_SIZE:
            raise InvalidInput(f"a sha2-256 digest is 32 bytes; got {len(self.digest)}")

    @classmethod
    def of_bytes(cls, data: bytes | bytearray | memoryview) -> CID:
        """The CID of `data`."""
        return cls.from_digest(hashlib.sha256(data).digest())

    @classmethod
    def from_digest(cls, digest: bytes | bytearray | memoryview) -> CID:
        """The CID for a sha2-256 `digest` computed elsewhere (for example while streaming)."""
        if isinstance(digest, bytearray | memoryview):
            digest = bytes(digest)
        return cls(CID_VERSION, RAW_CODEC, digest)

    @classmethod
    def parse(cls, text: object) -> CID:
        """Parse the canonical string form; anything else raises `InvalidInput` saying why."""
        if not isinstance(text, str):
            raise InvalidInput(f"a CID must be a string; got {type(text).__name__}")
        if not text:
            raise InvalidInput("empty CID")

        def bad(reason: str) -> InvalidInput:
            shown = text if len(text) <= 80 else text[:77] + "..."
            return InvalidInput(f"invalid CID {shown!r}: {reason}")

        if len(text) > _MAX_TEXT:
            raise bad(f"{len(text)} characters; a CID is {_CID_TEXT_LENGTH}")
        prefix, body = text[0], text[1:]
        if prefix == "B":
            raise bad("upper-case base32 (multibase 'B') is not accepted; use the lower-case form")
        if text.startswith("Qm"):
            raise bad("CIDv0 (base58 'Qm...') is not supported; use CIDv1 ('bafk...')")
        if prefix != MULTIBASE_BASE32:
            raise bad(f"multibase prefix {prefix!r} is not supported; expected 'b' (base32)")
        for position, char in enumerate(body, start=1):
            if char in _ALPHABET_INDEX:
                continue
            if char == "=":
                raise bad(f"padding '=' at position {position}; CIDs are written without padding")
            if char.lower() in _ALPHABET_INDEX:
                raise bad(f"upper-case {char!r} at position {position}; CIDs are lower case")
            raise bad(f"{char!r} at position {position} is not base32 (a-z, 2-7)")

        raw = _base32_decode(body, bad)
        version, offset = _read_varint(raw, 0, "version", bad)
        if version != CID_VERSION:
            raise bad(f"unsupported CID version {version}; expected 1")
        codec, offset = _read_varint(raw, offset, "codec", bad)
        if codec != RAW_CODEC:
            raise bad(f"unsupported codec 0x{codec:x}; expected raw (0x55)")
        hash_code, offset = _read_varint(raw, offset, "hash function", bad)
        if hash_code != SHA2_256:
            raise bad(f"unsupported hash function 0x{hash_code:x}; expected sha2-256 (0x12)")
        length, offset = _read_varint(raw, offset, "digest length", bad)
        if length != DIGEST_SIZE:
            raise bad(f"digest length {length}; sha2-256 digests are 32 bytes")
        digest = raw[offset:]
        if len(digest) != DIGEST_SIZE:
            raise bad(f"digest has {len(digest)} bytes; expected 32")
        return cls(version, codec, digest)

    @property
    def multihash(self) -> bytes:
        """The multihash: hash code, digest length, digest."""
        return _varint(SHA2_256) + _varint(DIGEST_SIZE) + self.digest

    def to_bytes(self) -> bytes:
        """The binary CID (what base32 encodes)."""
        return _varint(self.version) + _varint(self.codec) + self.multihash

    def __str__(self) -> str:
        return MULTIBASE_BASE32 + _base32_encode(self.to_bytes())

    def __repr__(self) -> str:
        return f"CID({str(self)!r})"


class CIDHasher:
    """Incremental hashing for streams: feed chunks with `update`, then read `cid()`."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next chunk of content."""
        self._sha.update(chunk)
        self.size += len(chunk)

    def cid(self) -> CID:
        """The CID of everything fed so far."""
        return CID.from_digest(self._sha.digest())


def cid_of(data: bytes | bytearray | memoryview) -> str:
    """The CID string of `data`."""
    return str(CID.of_bytes(data))


def cid_of_stream(source: io.BufferedIOBase) -> str:
    """The CID string of what a binary file reads to its end (never all of it in memory)."""
    return str(CID.from_digest(hashlib.file_digest(source, "sha256").digest()))


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, no spaces, UTF-8, no NaN or infinity.

    Equal values always have the same bytes, hence the same CID and the same hash.
    """
    try:
        text = json.dumps(
            obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"not storable as canonical JSON: {error}") from error
    return text.encode("utf-8")


def is_cid(text: object) -> bool:
    """Whether `text` is a CID string in the canonical form `CID.parse` accepts."""
    try:
        CID.parse(text)
    except InvalidInput:
        return False
    return True


def _varint(value: int) -> bytes:
    # unsigned LEB128, as multiformats' unsigned-varint: 7 bits a byte, high bit = more follows
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(raw: bytes, offset: int, field: str, bad: _Reject) -> tuple[int, int]:
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if offset + index >= len(raw):
            raise bad(f"truncated varint in the {field}")
        byte = raw[offset + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            # a final zero byte after others means the same number had a shorter spelling
            if byte == 0 and index > 0:
                raise bad(f"non-minimal varint in the {field}")
            return value, offset + index + 1
    raise bad(f"varint in the {field} is longer than {_MAX_VARINT_BYTES} bytes")


def _base32_encode(data: bytes) -> str:
    out = []
    buffer = bits = 0
    for byte in data:
        buffer = (buffer << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append(_ALPHABET[(buffer >> bits) & 0x1F])
        buffer &= (1 << bits) - 1
    if bits:
        out.append(_ALPHABET[(buffer << (5 - bits)) & 0x1F])
    return "".join(out)


def _base32_decode(body: str, bad: _Reject) -> bytes:
    # `body` holds only alphabet characters (checked by the caller)
    out = bytearray()
    buffer = bits = 0
    for char in body:
        buffer = (buffer << 5) | _ALPHABET_INDEX[char]
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((buffer >> bits) & 0xFF)
            buffer &= (1 << bits) - 1
    if bits >= 5:
        raise bad(f"{len(body)} base32 characters cannot encode whole bytes")
    if buffer:
        raise bad("non-zero padding bits in the last base32 character")
    return bytes(out)
