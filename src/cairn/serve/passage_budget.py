"""The passages an app adds to a prompt, kept within a token budget.

The budget is what the passages may add to the prompt, counted by the app's own chat model
(`count`: its backend's `count_tokens`) on the very block the system message carries
(`passages_block`). Passages go in best first while they fit whole; the first that does not is
cut at the last word boundary that fits, marked with TRUNCATED, and nothing after it goes in:
the prompt grows by at most the budget however long the records are (whole records used to go
in, so three long passages could triple a call's cost). A cut passage still names its record; a
passage left out is not reported as used. Word boundaries are token boundaries for tokenizers
that split words before merging them (byte-level BPE, WordPiece, SentencePiece with its space
marker), so a cut never splits a token; text with no whitespace is cut between characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cairn.core.errors import InvalidInput

PASSAGES_INTRO = "Use these passages to answer when they are relevant; cite them as [n]:"
TRUNCATED = " …"  # ends a passage cut to fit the budget, so the model knows there was more
MIN_CUT_TOKENS = 8  # a cut passage keeps at least this many tokens, or is left out


@dataclass(frozen=True)
class Passage:
    """One passage retrieved for a question: where it is in the index, the record it came from,
    and its text as it goes into the prompt (cut to the budget when `truncated`)."""

    index: int  # its place in the retrieval index
    record: str | None  # the hash of the record it came from (None: the index does not say)
    text: str
    score: float  # its cosine similarity to the question
    truncated: bool = False


def passages_block(passages: Sequence[str]) -> str:
    """The numbered passages under their introduction, as the system message carries them."""
    numbered = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(passages, start=1))
    return f"{PASSAGES_INTRO}\n\n{numbered}"


def fit_passages(
    found: Sequence[Passage], budget: int, count: Callable[[str], int]
) -> list[Passage]:
    """The passages, best first, whose block (`passages_block`) is at most `budget` tokens by
    `count`; the first that does not fit whole is cut to fit (see the module), then no more."""
    if budget < 1:
        raise InvalidInput(f"the passages' token budget must be at least 1; got {budget}")
    kept: list[Passage] = []
    for passage in found:
        if count(passages_block([*(p.text for p in kept), passage.text])) <= budget:
            kept.append(passage)
            continue
        cut = _cut(passage, kept, budget, count)
        if cut is not None:
            kept.append(cut)
        break
    return kept


def _cut(
    passage: Passage, kept: list[Passage], budget: int, count: Callable[[str], int]
) -> Passage | None:
    """`passage` cut at the longest word boundary whose block fits `budget`, or None when too
    little of it fits to be worth a place (MIN_CUT_TOKENS)."""
    text = passage.text
    ends = [m.start() for m in re.finditer(r"(?<=\S)\s", text)] or list(range(1, len(text)))

    def fits(end: int) -> bool:
        block = passages_block([*(p.text for p in kept), text[:end] + TRUNCATED])
        return count(block) <= budget

    low, high = 0, len(ends)  # ends[:low] fit; ends[high:] do not (count grows with the text)
    while low < high:
        middle = (low + high) // 2
        if fits(ends[middle]):
            low = middle + 1
        else:
            high = middle
    if low == 0:
        return None
    piece = text[: ends[low - 1]]
    if count(piece) < MIN_CUT_TOKENS:
        return None
    return Passage(passage.index, passage.record, piece + TRUNCATED, passage.score, True)
