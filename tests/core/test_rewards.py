"""cairn.core.rewards: each built-in reward both ways, the weighted sum against a recipe's rewards,
trl's calling convention, and properties over arbitrary strings."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.errors import InvalidInput
from cairn.core.recipe import GrpoHyperparameters
from cairn.core.rewards import (
    answer_format,
    exact_answer,
    extract_answer,
    length_penalty,
    numeric_answer,
    parse_number,
    reward_function,
    score,
)

# --- answer_format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion",
    [
        "<think>2 and 2</think><answer>4</answer>",
        "  \n<think>x</think>\n<answer>4</answer>\n ",
        "<think></think><answer></answer>",
        "<think>line one\nline two</think><answer>a\nb</answer>",
    ],
)
def test_answer_format_accepts_think_then_answer(completion: str) -> None:
    assert answer_format(completion) == 1.0


@pytest.mark.parametrize(
    "completion",
    [
        "4",
        "<answer>4</answer>",
        "<think>x</think>",
        "<answer>4</answer><think>x</think>",
        "so <think>x</think><answer>4</answer>",
        "<think>x</think><answer>4</answer> done",
        "<think>x</think><answer>4</answer><answer>5</answer>",
        "<think>a<think>b</think><answer>4</answer>",
        "<think>x</think><answer>4",
    ],
)
def test_answer_format_rejects_anything_else(completion: str) -> None:
    assert answer_format(completion) == 0.0


# --- exact_answer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("<think>…</think><answer> Paris </answer>", "paris"),
        ("PARIS", "paris"),
        ("new   york\n city", "New York City"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),  # the last answer counts
    ],
)
def test_exact_answer_matches_up_to_case_and_whitespace(completion: str, answer: str) -> None:
    assert exact_answer(completion, answer) == 1.0


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("<answer>Lyon</answer>", "Paris"),
        ("the answer is Paris", "Paris"),
        ("<answer>4.0</answer>", "4"),  # exact means exact text; numeric_answer is for numbers
    ],
)
def test_exact_answer_rejects_other_text(completion: str, answer: str) -> None:
    assert exact_answer(completion, answer) == 0.0


def test_extract_answer_falls_back_to_the_whole_completion() -> None:
    assert extract_answer("no tags here") == "no tags here"
    assert extract_answer("<think>t</think><answer>x</answer>") == "x"


# --- numeric_answer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("<answer>1,234</answer>", "1234"),
        ("1,234,567.5", "1234567.5"),
        ("<answer>3/4</answer>", "0.75"),
        ("-3 / 4", "-0.75"),
        ("1e3", "1000"),
        ("2.5E-3", "0.0025"),
        ("+7", "7"),
        ("7.", "7"),
        (".5", "0.5"),
        ("4.0", "4"),
    ],
)
def test_numeric_answer_parses_the_usual_spellings(completion: str, answer: str) -> None:
    assert numeric_answer(completion, answer) == 1.0


@pytest.mark.parametrize(
    ("completion", "answer"),
    [
        ("5", "4"),
        ("four", "4"),
        ("1/0", "0"),
        ("inf", "inf"),
        ("nan", "nan"),
        ("1e999999999", "1e999999999"),
        ("12,34", "1234"),  # not a thousands separator
        ("", "0"),
        ("4", ""),
    ],
)
def test_numeric_answer_rejects_wrong_or_unparsable_numbers(completion: str, answer: str) -> None:
    assert numeric_answer(completion, answer) == 0.0


def test_numeric_tolerance_is_absolute_as_the_recipe_documents() -> None:
    assert numeric_answer("0.10", "0.1005", tolerance=1e-3) == 1.0
    assert numeric_answer("0.10", "0.102", tolerance=1e-3) == 0.0
    assert numeric_answer("10001", "10000", tolerance=1e-3) == 0.0
    assert numeric_answer("10001", "10000", tolerance=1) == 1.0
    assert numeric_answer("3", "3", tolerance=0.0) == 1.0
    # exactly at the limit counts: 0.1 + 1e-6 is not rounded away in binary
    assert numeric_answer("0.100001", "0.1", tolerance=1e-6) == 1.0
    with pytest.raises(InvalidInput, match="tolerance"):
        numeric_answer("1", "1", tolerance=-1.0)


def test_numbers_compare_exactly_not_as_floats() -> None:
    assert numeric_answer("1000001", "1000000") == 0.0
    assert numeric_answer("12345678901234567891", "12345678901234567890", tolerance=0) == 0.0
    assert numeric_answer("1e400", "1e400") == 1.0
    assert parse_number("1e401") is None  # too large an exponent to build exactly


# --- length_penalty ----------------------------------------------------------------------------


def test_length_penalty_is_the_formula_in_the_recipe() -> None:
    # -scale * max(0, tokens - target) / target
    assert length_penalty(10, target=64) == 0.0
    assert length_penalty(64, target=64) == 0.0
    assert length_penalty(96, target=64, scale=1.0) == -0.5
    assert length_penalty(128, target=64, scale=2.0) == -2.0
    with pytest.raises(InvalidInput, match="target"):
        length_penalty(10, target=0)


# --- score and reward_function ----------------------------------------------------------------


def test_score_sums_a_recipes_rewards_by_weight() -> None:
    hp = GrpoHyperparameters(
        max_completion_length=128,
        rewards=[
            {"name": "exact_answer", "weight": 2.0},
            {"name": "answer_format", "weight": 0.5},
            {"name": "length_penalty", "params": {"target": 4, "scale": 1.0}},
        ],
    )
    completions = [
        "<think>2+2</think><answer>4</answer>",  # right, well formed, short
        "4",  # right, no format
        "<think>x</think><answer>5</answer>",  # wrong, well formed
    ]
    assert score(completions, ["4"] * 3, hp.rewards, token_counts=[4, 1, 12]) == [
        2.5,
        2.0,
        0.5 - 2.0,  # 12 tokens, target 4: -(12 - 4) / 4
    ]


def test_score_counts_words_when_no_token_counts_are_given() -> None:
    spec = {"name": "length_penalty", "weight": 1.0, "params": {"target": 2, "scale": 1.0}}
    assert score(["a b c d"], [""], [spec]) == [-1.0]


def test_score_uses_the_numeric_tolerance_from_params() -> None:
    loose = {"name": "numeric_answer", "weight": 1.0, "params": {"tolerance": 0.5}}
    strict = {"name": "numeric_answer", "weight": 1.0, "params": {"tolerance": 0.0}}
    assert score(["3.4"], ["3"], [loose]) == [1.0]
    assert score(["3.4"], ["3"], [strict]) == [0.0]


def test_score_refuses_unknown_rewards_and_mismatched_lengths() -> None:
    with pytest.raises(InvalidInput, match="unknown reward 'python_code'"):
        score(["x"], ["x"], [{"name": "python_code"}])
    with pytest.raises(InvalidInput, match="at least one reward"):
        score(["x"], ["x"], [])
    with pytest.raises(InvalidInput, match="2 completions but 1 reference"):
        score(["x", "y"], ["x"], [{"name": "exact_answer"}])
    with pytest.raises(InvalidInput, match="1 completions but 2 token counts"):
        score(["x"], ["x"], [{"name": "exact_answer"}], token_counts=[1, 2])


def test_reward_function_takes_trls_arguments() -> None:
    fn = reward_function(GrpoHyperparameters().rewards)  # exact_answer + answer_format
    prompts = ["2+2?", "3+3?"]
    completions = ["<think>t</think><answer>4</answer>", "7"]
    assert fn(prompts, completions, answer=["4", "6"]) == [2.0, 0.0]
    # conversational completions: a list of messages, the last one scored
    chats = [[{"role": "assistant", "content": c}] for c in completions]
    assert fn(prompts, chats, answer=["4", "6"]) == [2.0, 0.0]


def test_reward_function_counts_completion_ids_as_tokens() -> None:
    fn = reward_function([{"name": "length_penalty", "params": {"target": 2}}])
    assert fn(["p"], ["a"], answer=["x"], completion_ids=[[1, 2, 3, 4]]) == [-1.0]


def test_reward_function_needs_the_answer_column() -> None:
    fn = reward_function([{"name": "exact_answer"}])
    with pytest.raises(InvalidInput, match="'answer' column"):
        fn(["p"], ["a"])


# --- properties --------------------------------------------------------------------------------

TAGGY = st.text(
    alphabet=st.sampled_from(list("<>/thinkanswer 0123456789.,e-+\n")) | st.characters(),
    max_size=80,
)
ALL = [
    {"name": "exact_answer", "weight": 1.0},
    {"name": "numeric_answer", "weight": 1.0},
    {"name": "answer_format", "weight": 1.0},
    {"name": "length_penalty", "weight": 1.0, "params": {"target": 8, "scale": 1.0}},
]


@given(completion=TAGGY, answer=TAGGY)
def test_no_string_makes_a_reward_raise_and_each_stays_in_bounds(
    completion: str, answer: str
) -> None:
    assert answer_format(completion) in (0.0, 1.0)
    assert exact_answer(completion, answer) in (0.0, 1.0)
    assert numeric_answer(completion, answer) in (0.0, 1.0)
    (total,) = score([completion], [answer], ALL)
    assert math.isfinite(total)
    words = len(completion.split())
    assert total <= 3.0
    assert total >= -max(0, words - 8) / 8


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_integers_agree_with_themselves_however_written(n: int) -> None:
    assert exact_answer(f"<answer>{n}</answer>", str(n)) == 1.0
    assert numeric_answer(f"<answer>{n:,}</answer>", str(n)) == 1.0
    assert numeric_answer(f"{n}.0", str(n)) == 1.0
    assert numeric_answer(str(n + 1), str(n)) == 0.0


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_matches_its_own_repr(x: float) -> None:
    parsed = parse_number(repr(x))
    assert parsed is not None and float(parsed) == x
    assert numeric_answer(repr(x), repr(x), tolerance=0.0) == 1.0


@given(st.integers(min_value=-10_000, max_value=10_000), st.integers(min_value=1, max_value=10_000))
def test_fractions_equal_their_decimal_value(p: int, q: int) -> None:
    decimal = f"{float(Fraction(p, q)):.12f}"
    assert numeric_answer(f"{p}/{q}", decimal) == 1.0


@given(st.text(alphabet="0123456789.,/eE+- \n", max_size=12))
def test_an_exact_match_of_a_number_is_a_numeric_match(text: str) -> None:
    if parse_number(text) is not None:
        spaced = f"<answer>  {text.upper()} </answer>"
        assert exact_answer(spaced, text) == 1.0
        assert numeric_answer(spaced, text, tolerance=0.0) == 1.0
