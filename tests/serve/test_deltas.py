"""cairn.serve.backends.deltas: characters split over byte tokens are never split in the stream,
stop strings cut the text and never leak while streaming, and token_deltas keeps the counts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from cairn.serve.backends import Generation, SamplingParams
from cairn.serve.backends.deltas import (
    IncrementalDecoder,
    StopStrings,
    earliest_stop,
    token_deltas,
)

TEXT = "héllo wörld: ✓ naïve 🙂 done"


def byte_tokenizer() -> Tokenizer:
    """One token per UTF-8 byte (byte-level BPE with no merges), as GPT-2 writes bytes."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def test_a_character_split_over_byte_tokens_comes_out_whole() -> None:
    tokenizer = byte_tokenizer()
    ids = tokenizer.encode(TEXT).ids
    assert len(ids) == len(TEXT.encode())  # one token per byte: "🙂" is four tokens
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # decoding alone would break it

    decoder = IncrementalDecoder(lambda tokens: tokenizer.decode(list(tokens)))
    deltas = [decoder.add(i) for i in ids]

    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) + decoder.flush() == TEXT
    assert "" in deltas  # held back while a character was incomplete


def test_flush_gives_an_incomplete_last_character_as_a_replacement() -> None:
    tokenizer = byte_tokenizer()
    ids = tokenizer.encode("ok 🙂").ids[:-1]  # the emoji's last byte never came
    decoder = IncrementalDecoder(lambda tokens: tokenizer.decode(list(tokens)))

    streamed = "".join(decoder.add(i) for i in ids)

    assert streamed == "ok "
    assert decoder.flush().startswith("\ufffd")


def stream(stops: Sequence[str], pieces: Sequence[str]) -> tuple[list[str], bool]:
    cutter = StopStrings(stops)
    out = [cutter.feed(p) for p in pieces]
    if not cutter.stopped:
        out.append(cutter.flush())
    return [o for o in out if o], cutter.stopped


@pytest.mark.parametrize(
    ("stops", "pieces", "sent", "stopped"),
    [
        (["END"], ["ab", "cE", "N", "Dxyz"], ["ab", "c"], True),  # spans three pieces
        (["END"], ["abE", "Nx", "y"], ["ab", "ENx", "y"], False),  # a false start is released
        (["END"], ["ab", "E"], ["ab", "E"], False),  # held, then released at the end
        (["xyz", "b"], ["aaxy", "zb"], ["aa"], True),  # the earliest stop wins
        (["\n\n"], ["one\n", "\ntwo"], ["one"], True),
        ([], ["a", "b"], ["a", "b"], False),
    ],
)
def test_stop_strings_cut_the_text_and_never_leak(
    stops: list[str], pieces: list[str], sent: list[str], stopped: bool
) -> None:
    assert stream(stops, pieces) == (sent, stopped)
    for stop in stops:
        assert stop not in "".join(sent)


def test_earliest_stop_is_the_first_position_of_any_stop() -> None:
    assert earliest_stop("abcdef", ["de", "bc", "zz"]) == 1
    assert earliest_stop("abcdef", ["zz"]) is None


class Counted(Generation):
    def __init__(self) -> None:
        self.prompt_tokens = 3
        self.completion_tokens = 0
        self.finish_reason = None

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def close(self) -> None:
        pass


def chars(text: str) -> Iterator[int]:
    yield from (ord(c) for c in text)


def decode(tokens: Sequence[int]) -> str:
    return "".join(chr(t) for t in tokens)


@pytest.mark.parametrize(
    ("tokens", "ends", "params", "text", "count", "finish"),
    [
        ("hello\x00more", {0}, SamplingParams(max_tokens=50), "hello", 6, "stop"),
        ("hello world", set(), SamplingParams(max_tokens=4), "hell", 4, "length"),
        ("hello world", set(), SamplingParams(max_tokens=50, stop=("o w",)), "hell", 7, "stop"),
        ("ab", set(), SamplingParams(max_tokens=50), "ab", 2, None),  # the stream was closed
    ],
)
def test_token_deltas_keep_the_counts_and_the_finish_reason(
    tokens: str, ends: set[int], params: SamplingParams, text: str, count: int, finish: str | None
) -> None:
    generation = Counted()
    out = "".join(token_deltas(generation, chars(tokens), ends, decode, params))
    assert (out, generation.completion_tokens, generation.finish_reason) == (text, count, finish)
