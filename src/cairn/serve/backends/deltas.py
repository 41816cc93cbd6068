"""Streamed text deltas: incremental detokenisation, and stop strings that never leak.

Both are pure bookkeeping over strings and token ids, shared by every backend that produces
tokens itself (transformers, llama.cpp) or relays text (an upstream server).

- `IncrementalDecoder` turns one token id at a time into text. A byte-level tokenizer can split
  one character over several tokens; decoding each token alone would emit broken halves. So it
  decodes a short window of recent tokens twice, with and without the newest ones, and emits
  the difference only once the window's text no longer ends in U+FFFD (an incomplete character).
  Decoding from a window start rather than token by token also keeps the spaces that
  SentencePiece tokenizers attach to the beginning of a word.
- `StopStrings` cuts the text before the earliest stop string and, while streaming, holds back
  any tail that could still grow into one, so no prefix of a stop string is ever sent early.
- `token_deltas` runs both over a stream of sampled tokens and keeps a generation's counts and
  finish reason: an end token finishes with "stop", a stop string with "stop", max_tokens with
  "length". Every token sampled counts, the end token and the one completing a stop string too.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence

from cairn.serve.backends.base import Generation, SamplingParams

REPLACEMENT = "\ufffd"  # what a decoder writes for bytes that are not (yet) a whole character


class IncrementalDecoder:
    """Token ids in, text deltas out; a multi-byte character is never split between deltas."""

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self.decode = decode  # ids -> text, special tokens skipped
        self.tokens: list[int] = []
        self.prefix_offset = 0  # window start: where the decode that gives context begins
        self.read_offset = 0  # tokens before this have been emitted as text

    def add(self, token: int) -> str:
        """The text that `token` completes; "" while a character is still incomplete."""
        self.tokens.append(token)
        prefix = self.decode(self.tokens[self.prefix_offset : self.read_offset])
        text = self.decode(self.tokens[self.prefix_offset :])
        if len(text) > len(prefix) and not text.endswith(REPLACEMENT):
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.tokens)
            return text[len(prefix) :]
        return ""

    def flush(self) -> str:
        """Whatever is left once generation ends, even an incomplete character (as U+FFFD)."""
        prefix = self.decode(self.tokens[self.prefix_offset : self.read_offset])
        text = self.decode(self.tokens[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.tokens)
        return text[len(prefix) :]


class StopStrings:
    """Feed text as it is produced; get back only what can safely be sent."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = ""  # produced but not yet released: it may be the start of a stop string
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of `held + text` that is safe to send; sets `stopped` at a stop string."""
        if self.stopped:
            return ""
        pending = self.held + text
        cut = earliest_stop(pending, self.stops)
        if cut is not None:
            self.held = ""
            self.stopped = True
            return pending[:cut]
        keep = _partial_stop_length(pending, self.stops)
        self.held = pending[len(pending) - keep :] if keep else ""
        return pending[: len(pending) - keep]

    def flush(self) -> str:
        """The held tail, once no more text will come (it cannot complete a stop string now)."""
        held, self.held = self.held, ""
        return "" if self.stopped else held


def earliest_stop(text: str, stops: Sequence[str]) -> int | None:
    """Where the first occurrence of any stop string in `text` begins, or None."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


def _partial_stop_length(text: str, stops: Sequence[str]) -> int:
    """The length of the longest tail of `text` that is a proper prefix of some stop string."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


def token_deltas(
    generation: Generation,
    tokens: Iterator[int],  # sampled tokens; ends early only when the generation is closed
    ends: set[int],  # end-of-sequence tokens
    decode: Callable[[Sequence[int]], str],
    params: SamplingParams,
) -> Generator[str, None, None]:
    """The text of `tokens` as deltas, cut at stop strings; updates `generation`'s counts."""
    decoder, stops = IncrementalDecoder(decode), StopStrings(params.stop)
    for token in tokens:
        generation.completion_tokens += 1
        if token in ends:
            generation.finish_reason = "stop"
            break
        text = stops.feed(decoder.add(token))
        if text:
            yield text
        if stops.stopped:
            generation.finish_reason = "stop"
            return
        if generation.completion_tokens >= params.max_tokens:
            generation.finish_reason = "length"
            break
    else:
        return  # closed: nothing more to say
    tail = stops.feed(decoder.flush())  # the last token may complete a character and a stop
    if stops.stopped:
        generation.finish_reason = "stop"
    tail += stops.flush()
    if tail:
        yield tail
