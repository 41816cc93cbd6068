"""Commitments to a served model's hidden states, and their check (in the spirit of TOPLOC).

While a causal LM generates, the state that produced each new token (the last hidden layer's
output at that position, the input of the output head) is recorded. Every CHUNK generated
tokens, the TOP_K largest values of that chunk's states (by magnitude, over all positions and
dimensions) are kept with their places: 32 x (4-byte place, 4-byte float32) = 256 bytes per
32 tokens, a few hundred bytes for a typical answer. The gateway signs the encoding in the
usage receipt (`cairn.economy.receipts`).

A validator holding the advertised model and the transcript (prompt and completion token ids)
reads the whole transcript in one forward pass, which gives the same states (up to float
rounding: the generation read them one token at a time), and compares: at the committed places
the recomputed values must match to TOLERANCE (the median relative error of a chunk) and the
recomputed chunk's own top places must be mostly the committed ones (MIN_OVERLAP). Another
checkpoint, the base model instead of its fine-tune, a quantised copy or a different prompt
moves these values far more than rounding does (bench/verify.py measures it); float32
generation against a float32 replay differs by about 1e-6 (tests/verify/test_inference.py).
"""

from __future__ import annotations

import base64
import math
import struct
import threading
from dataclasses import dataclass

import torch

CHUNK = 32  # generated tokens per committed chunk
TOP_K = 32  # values kept per chunk
VERSION = 1
# A chunk passes when the median relative error of its committed values is at most TOLERANCE
# and at least MIN_OVERLAP of the recomputed chunk's own TOP_K places are committed ones.
TOLERANCE = 1e-4
MIN_OVERLAP = 0.75
_ENTRY = struct.Struct("<If")  # a flat place in the chunk (position * width + dimension), a value
_HEAD = struct.Struct("<BI")  # version, hidden width
_CHUNK_HEAD = struct.Struct("<BB")  # positions in the chunk, entries kept


@dataclass(frozen=True)
class Chunk:
    """One chunk's committed values: `positions` generated tokens, their top places."""

    positions: int
    places: tuple[int, ...]  # position * width + dimension, within the chunk
    values: tuple[float, ...]  # float32


@dataclass(frozen=True)
class Commitment:
    """The committed top values of every chunk of a generation's hidden states."""

    width: int  # the hidden size
    chunks: tuple[Chunk, ...]

    @property
    def tokens(self) -> int:
        """How many generated tokens it covers."""
        return sum(c.positions for c in self.chunks)

    def encode(self) -> str:
        """The compact form a receipt signs: base64 (URL-safe, unpadded) of `encode_bytes`."""
        return base64.urlsafe_b64encode(self.encode_bytes()).rstrip(b"=").decode()

    def encode_bytes(self) -> bytes:
        """The packed form: version and width, then each chunk's head and (place, value)s."""
        out = bytearray(_HEAD.pack(VERSION, self.width))
        for chunk in self.chunks:
            out += _CHUNK_HEAD.pack(chunk.positions, len(chunk.places))
            for place, value in zip(chunk.places, chunk.values, strict=True):
                out += _ENTRY.pack(place, value)
        return bytes(out)

    @classmethod
    def decode(cls, text: str) -> Commitment:
        """The commitment `encode` wrote; ValueError for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"a commitment is base64: {exc}") from None
        if len(raw) < _HEAD.size:
            raise ValueError("a commitment starts with its version and width")
        version, width = _HEAD.unpack_from(raw)
        if version != VERSION or width < 1:
            raise ValueError(f"unknown commitment version {version} or width {width}")
        chunks, at = [], _HEAD.size
        while at < len(raw):
            if at + _CHUNK_HEAD.size > len(raw):
                raise ValueError("a commitment's chunk is cut short")
            positions, count = _CHUNK_HEAD.unpack_from(raw, at)
            at += _CHUNK_HEAD.size
            end = at + count * _ENTRY.size
            if not 0 < positions <= CHUNK or not 0 < count <= TOP_K or end > len(raw):
                raise ValueError("a commitment's chunk is malformed")
            entries = [_ENTRY.unpack_from(raw, at + i * _ENTRY.size) for i in range(count)]
            places = tuple(p for p, _ in entries)
            if any(p >= positions * width for p in places) or len(set(places)) != count:
                raise ValueError("a commitment's chunk names a place outside it, or one twice")
            chunks.append(Chunk(positions, places, tuple(v for _, v in entries)))
            at = end
        return cls(width, tuple(chunks))


def chunk_of(states: torch.Tensor) -> Chunk:
    """The committed values of one chunk's states, (positions, width)."""
    flat = states.detach().float().flatten()
    k = min(TOP_K, flat.numel())
    places = flat.abs().topk(k).indices.sort().values
    return Chunk(
        int(states.shape[0]), tuple(int(p) for p in places), tuple(float(v) for v in flat[places])
    )


def commit(states: torch.Tensor) -> Commitment:
    """The commitment to a whole generation's states, (tokens, width)."""
    chunks = tuple(chunk_of(states[i : i + CHUNK]) for i in range(0, states.shape[0], CHUNK))
    return Commitment(int(states.shape[1]), chunks)


class Committer:
    """A generation's states as they come, one row per sampled token, committed at the end.

    Chunks are committed as soon as no cut can fall inside them: the reader of a generation may
    stop up to `lag` tokens behind the last one sampled (a stop string, a client gone), and the
    commitment covers exactly the tokens read. Until then a chunk's rows are kept.
    """

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.width: int | None = None
        self._rows: list[torch.Tensor] = []
        self._chunks: list[Chunk] = []
        self._start = 0  # the token the first kept row belongs to
        self._lock = threading.Lock()  # rows come on the engine's thread, the commit on another

    def add(self, rows: torch.Tensor) -> None:
        """The states of the next tokens, (n, width), float32 on the CPU."""
        with self._lock:
            self.width = int(rows.shape[1])
            self._rows.extend(rows)
            while len(self._rows) >= CHUNK + self.lag:
                self._chunks.append(chunk_of(torch.stack(self._rows[:CHUNK])))
                del self._rows[:CHUNK]
                self._start += CHUNK

    def commit(self, tokens: int) -> Commitment | None:
        """The commitment to the first `tokens` tokens; None when there are none."""
        with self._lock:
            if tokens == 0 or self.width is None:
                return None
            kept = tokens - self._start
            if kept < 0 or kept > len(self._rows):
                raise ValueError(
                    f"states of tokens {self._start} to {self._start + len(self._rows)} are kept; "
                    f"the commitment needs the first {tokens}"
                )
            rest = self._rows[:kept]
            tail = [chunk_of(torch.stack(rest[i : i + CHUNK])) for i in range(0, kept, CHUNK)]
            return Commitment(self.width, (*self._chunks, *tail))


@dataclass(frozen=True)
class Transcript:
    """What a validator replays: the token ids read and generated, and the commitment."""

    prompt: tuple[int, ...]
    completion: tuple[int, ...]
    commitment: Commitment


@dataclass(frozen=True)
class InferenceVerdict:
    """A commitment checked against states recomputed from the transcript."""

    ok: bool
    tokens: int  # the tokens the commitment covers
    relative: float  # the worst chunk's median relative error (inf when the shapes differ)
    overlap: float  # the least share of a recomputed chunk's top places that were committed
    chunk: int | None  # the first chunk that failed
    reason: str


def check(commitment: Commitment, states: torch.Tensor) -> InferenceVerdict:
    """Compare `commitment` with `states` (tokens, width) recomputed from the transcript."""
    tokens = commitment.tokens
    if states.shape[0] != tokens or states.shape[1] != commitment.width:
        shape = f"{states.shape[0]} tokens of width {states.shape[1]}"
        reason = f"the commitment covers {tokens} tokens of width {commitment.width}, not {shape}"
        return InferenceVerdict(False, tokens, math.inf, 0.0, 0, reason)
    worst, least, failed, at = 0.0, 1.0, None, 0
    for n, chunk in enumerate(commitment.chunks):
        flat = states[at : at + chunk.positions].detach().float().flatten()
        at += chunk.positions
        places = torch.tensor(chunk.places, dtype=torch.long)
        committed = torch.tensor(chunk.values, dtype=torch.float32)
        error = (flat[places] - committed).abs() / committed.abs().clamp_min(1e-6)
        relative = float(error.median()) if error.isfinite().all() else math.inf
        own = set(flat.abs().topk(len(chunk.places)).indices.tolist())
        overlap = len(own & set(chunk.places)) / len(chunk.places)
        worst, least = max(worst, relative), min(least, overlap)
        if failed is None and not (relative <= TOLERANCE and overlap >= MIN_OVERLAP):
            failed = n
    if failed is None:
        return InferenceVerdict(True, tokens, worst, least, None, "the hidden states match")
    reason = (
        f"chunk {failed}: the recomputed hidden states differ (median relative error up to "
        f"{worst:.2e}, tolerance {TOLERANCE:g}; top places shared at least {least:.0%})"
    )
    return InferenceVerdict(False, tokens, worst, least, failed, reason)
