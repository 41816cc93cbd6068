"""bench/grpo.py's problems: a seeded split into disjoint training and held-out sums with the
right answers, and worked responses that every built-in reward scores full marks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cairn.core.rewards import answer_format, exact_answer, numeric_answer

BENCH = Path(__file__).resolve().parents[2] / "bench" / "grpo.py"


def load_bench() -> ModuleType:
    """bench/grpo.py as a module: bench/ is a folder of scripts, not a package."""
    spec = importlib.util.spec_from_file_location("bench_grpo", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def test_the_split_covers_every_pair_once_with_no_held_out_sum_in_training() -> None:
    train, held_out = bench.split_problems(20, 100, seed=0)

    assert len(held_out) == 100
    assert not {(p.a, p.b) for p in train} & {(p.a, p.b) for p in held_out}
    assert sorted((p.a, p.b) for p in train + held_out) == [
        (a, b) for a in range(21) for b in range(21)
    ]


def test_the_seed_decides_the_split() -> None:
    assert bench.split_problems(20, 100, seed=3) == bench.split_problems(20, 100, seed=3)
    assert bench.split_problems(20, 100, seed=3) != bench.split_problems(20, 100, seed=4)


def test_every_answer_is_the_sum() -> None:
    train, held_out = bench.split_problems(99, 50, seed=1)
    for problem in train + held_out:
        a, b = (int(x) for x in problem.prompt.split("+"))
        assert (a, b) == (problem.a, problem.b)
        assert int(problem.answer) == a + b


@pytest.mark.parametrize("held_out", [0, 441])
def test_a_split_that_leaves_either_side_empty_is_refused(held_out: int) -> None:
    with pytest.raises(ValueError, match="held_out must be between 1 and 440"):
        bench.split_problems(20, held_out, seed=0)


def test_the_worked_response_is_in_the_answer_format_with_the_right_answer() -> None:
    problem = bench.Problem(47, 38)

    response = bench.format_response(problem)

    assert response == "<think>47+38</think><answer>85</answer>"
    assert answer_format(response) == 1.0
    assert numeric_answer(response, problem.answer) == 1.0
    assert exact_answer(response, problem.answer) == 1.0
    assert numeric_answer(bench.format_response(bench.Problem(47, 39)), problem.answer) == 0.0


def test_records_carry_the_fields_each_method_reads() -> None:
    problems = [bench.Problem(1, 2), bench.Problem(30, 4)]

    assert bench.sft_records(problems) == [
        {"prompt": "1+2", "response": "<think>1+2</think><answer>3</answer>"},
        {"prompt": "30+4", "response": "<think>30+4</think><answer>34</answer>"},
    ]
    assert bench.grpo_records(problems) == [
        {"prompt": "1+2", "answer": "3"},
        {"prompt": "30+4", "answer": "34"},
    ]
