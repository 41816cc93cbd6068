"""The built-in GRPO rewards: a fixed, safe set chosen by name in a recipe, never user code.

Each reward maps one completion (and the record's reference answer) to a number:

- `answer_format`: 1.0 when the completion is `<think>…</think><answer>…</answer>` and nothing
  else (whitespace around and between the two blocks allowed), else 0.0;
- `exact_answer`: 1.0 when the answer (the text inside the last `<answer>…</answer>`, or the whole
  completion when there is none) equals the reference after strip, casefold and collapsing runs
  of whitespace, else 0.0;
- `numeric_answer`: 1.0 when answer and reference both parse as numbers (`1,234`, `-3/4`,
  `2.5e-3`) and |a - b| <= tolerance, else 0.0. The tolerance is absolute, as the recipe
  documents it, and the comparison exact (fractions, not floats), so 1000001 is not 1000000
  and 20-digit integers compare digit for digit;
- `length_penalty`: -scale * max(0, tokens - target) / target, as documented in
  `cairn.core.recipe.LengthPenaltyReward`: 0 up to `target` tokens, negative beyond.

`score` sums them by weight; `reward_function` wraps that in the signature trl's GRPOTrainer
calls. Pure: no I/O, and no input string makes any of these raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from cairn.core.errors import InvalidInput
from cairn.core.recipe import BUILTIN_REWARDS

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# no tag may appear inside a block, so "<think>a</think><answer>b</answer><answer>c</answer>"
# is not well formed
_BLOCK = r"(?:(?!</?think>|</?answer>).)*"
_FORMAT = re.compile(rf"\s*<think>{_BLOCK}</think>\s*<answer>{_BLOCK}</answer>\s*", re.DOTALL)
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?")
_FRACTION = re.compile(r"([+-]?\d+)\s*/\s*(\d+)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_MAX_NUMBER_CHARS = 400  # a longer "number" is not an answer
_MAX_EXPONENT = 400  # nor is 1e999999999, whose exact value would take minutes to build


def extract_answer(completion: str) -> str:
    """The text inside the last `<answer>…</answer>`, or the whole completion without tags."""
    found = _ANSWER.findall(completion)
    return found[-1] if found else completion


def normalize_answer(text: str) -> str:
    """`text` stripped, casefolded, with every run of whitespace one space."""
    return " ".join(text.casefold().split())


def parse_number(text: str) -> Fraction | None:
    """`text` as an exact number (commas as thousands separators, `a/b`, `1e-3`), else None."""
    text = text.strip().removesuffix(".")
    if not text or len(text) > _MAX_NUMBER_CHARS:
        return None
    text = _THOUSANDS.sub("", text)
    if match := _DECIMAL.fullmatch(text):
        if abs(int(match.group(1) or 0)) > _MAX_EXPONENT:  # 1e999999999 would take forever
            return None
        return Fraction(text)
    if match := _FRACTION.fullmatch(text):
        numerator, denominator = int(match.group(1)), int(match.group(2))
        return Fraction(numerator, denominator) if denominator else None
    return None


def answer_format(completion: str) -> float:
    """1.0 for `<think>…</think><answer>…</answer>` up to surrounding whitespace, else 0.0."""
    return 1.0 if _FORMAT.fullmatch(completion) else 0.0


def exact_answer(completion: str, answer: str) -> float:
    """1.0 when the completion's answer equals `answer` up to case and whitespace, else 0.0."""
    return 1.0 if normalize_answer(extract_answer(completion)) == normalize_answer(answer) else 0.0


def numeric_answer(completion: str, answer: str, tolerance: float = 1e-6) -> float:
    """1.0 when both parse as numbers a, b with |a - b| <= tolerance, else 0.0 (exact arithmetic)."""
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInput(f"numeric_answer: tolerance must be a number >= 0; got {tolerance!r}")
    a = parse_number(extract_answer(completion))
    b = parse_number(answer)
    if a is None or b is None:
        return 0.0
    # the tolerance as written (1e-6 is exactly 1/10^6, not the float nearest it)
    return 1.0 if abs(a - b) <= Fraction(repr(float(tolerance))) else 0.0


def length_penalty(tokens: int, target: int = 64, scale: float = 1.0) -> float:
    """-scale * max(0, tokens - target) / target: 0 up to `target` tokens, negative beyond."""
    if target < 1:
        raise InvalidInput(f"length_penalty: target must be at least 1; got {target}")
    return -scale * max(0, tokens - target) / target


def count_tokens(completion: str) -> int:
    """Whitespace-separated words: the token count `score` uses when none is given."""
    return len(completion.split())


def _param(params: Any, name: str, default: Any) -> Any:
    if params is None:
        return default
    if isinstance(params, Mapping):
        return params.get(name, default)
    return getattr(params, name, default)


def _field(spec: Any, name: str, default: Any = None) -> Any:
    return spec.get(name, default) if isinstance(spec, Mapping) else getattr(spec, name, default)


def check_specs(specs: Sequence[Any]) -> None:
    """Raise `InvalidInput` unless every spec names a built-in reward with a finite weight."""
    if not specs:
        raise InvalidInput("rewards: at least one reward is needed")
    for i, spec in enumerate(specs):
        name = _field(spec, "name")
        if name not in BUILTIN_REWARDS:
            raise InvalidInput(
                f"rewards[{i}]: unknown reward {name!r}; expected one of "
                f"{', '.join(BUILTIN_REWARDS)}"
            )
        weight = _field(spec, "weight", 1.0)
        if not isinstance(weight, int | float) or not math.isfinite(weight):
            raise InvalidInput(f"rewards[{i}]: weight must be a finite number; got {weight!r}")


def reward_of(spec: Any, completion: str, answer: str, tokens: int) -> float:
    """One spec's unweighted reward for one completion."""
    name = _field(spec, "name")
    params = _field(spec, "params")
    if name == "answer_format":
        return answer_format(completion)
    if name == "exact_answer":
        return exact_answer(completion, answer)
    if name == "numeric_answer":
        return numeric_answer(completion, answer, float(_param(params, "tolerance", 1e-6)))
    if name == "length_penalty":
        target = int(_param(params, "target", 64))
        return length_penalty(tokens, target, float(_param(params, "scale", 1.0)))
    raise InvalidInput(f"unknown reward {name!r}; expected one of {', '.join(BUILTIN_REWARDS)}")


def score(
    completions: Sequence[str],
    answers: Sequence[str],
    rewards: Sequence[Any],
    token_counts: Sequence[int] | None = None,
) -> list[float]:
    """The weighted sum of `rewards` for each completion against its answer.

    A reward spec is anything with `name`, `weight` and `params` (a recipe's `Reward`, or a
    mapping). `token_counts` are the completions' lengths in tokens, for `length_penalty`;
    without them a completion's whitespace-separated words are counted.
    """
    check_specs(rewards)
    if len(answers) != len(completions):
        raise InvalidInput(
            f"rewards: {len(completions)} completions but {len(answers)} reference answers"
        )
    if token_counts is not None and len(token_counts) != len(completions):
        raise InvalidInput(
            f"rewards: {len(completions)} completions but {len(token_counts)} token counts"
        )
    totals = []
    for i, (completion, answer) in enumerate(zip(completions, answers, strict=True)):
        tokens = token_counts[i] if token_counts is not None else count_tokens(completion)
        totals.append(
            sum(
                float(_field(spec, "weight", 1.0)) * reward_of(spec, completion, answer, tokens)
                for spec in rewards
            )
        )
    return totals


def _text(completion: Any) -> str:
    # trl passes conversational completions as a list of messages: score the last one's content
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content", ""))
    return str(completion)


def reward_function(specs: Sequence[Any]) -> Callable[..., list[float]]:
    """`score` in the signature trl's GRPOTrainer calls: `(prompts, completions, **kwargs)`.

    The reference answers come from the dataset's `answer` column (trl passes each column as a
    keyword); token counts from `completion_ids` when trl passes them.
    """
    check_specs(specs)
    specs = list(specs)

    def cairn_rewards(prompts: Any, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        answers = kwargs.get("answer")
        if answers is None:
            raise InvalidInput("rewards: the dataset needs an 'answer' column")
        ids = kwargs.get("completion_ids")
        counts = [len(c) for c in ids] if ids is not None else None
        return score([_text(c) for c in completions], [str(a) for a in answers], specs, counts)

    cairn_rewards.__name__ = "cairn_rewards"  # trl logs rewards under the function's name
    return cairn_rewards
