"""int8 and int4 pseudo-gradients: every value back within half a step, the wire 4x and ~8x
smaller than float32, and error feedback that keeps the rounding from accumulating."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.errors import InvalidInput
from cairn.core.quantize import (
    BLOCK,
    LEVELS,
    Encoded,
    ErrorFeedback,
    decode,
    encode,
    payload_bytes,
)

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)
vectors = st.lists(finite, min_size=1, max_size=700)
blocks = st.sampled_from([2, 8, 64, BLOCK])
quantised = st.sampled_from(["int8", "int4"])


def step_of(values: torch.Tensor, encoding: str, block: int) -> torch.Tensor:
    """Each value's quantisation step: its block's largest magnitude over the levels."""
    n = values.numel()
    padded = torch.zeros(math.ceil(n / block) * block)
    padded[:n] = values.abs()
    steps = padded.view(-1, block).amax(dim=1) / LEVELS[encoding]
    return steps.repeat_interleave(block)[:n]


@given(vectors, quantised, blocks)
def test_every_value_comes_back_within_half_a_step(
    values: list[float], encoding: str, block: int
) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    back = decode(encode(x, encoding, block=block))  # type: ignore[arg-type]
    assert back.shape == x.shape and back.dtype == torch.float32
    bound = step_of(x, encoding, block) / 2 * (1 + 1e-5) + 1e-30
    assert bool(((back - x).abs() <= bound).all())
    # each block's largest magnitude is exact: the scale is built from it
    assert bool((back.abs().max() - x.abs().max()).abs() <= 1e-6 * x.abs().max() + 1e-30)


@given(vectors)
def test_float32_is_the_identity(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float32).reshape(-1, 1)
    assert torch.equal(decode(encode(x, "float32")), x)


def test_the_wire_is_four_and_nearly_eight_times_smaller() -> None:
    x = torch.randn(64, 1024)  # (64, 1024)
    dense = payload_bytes(encode(x, "float32"))
    assert dense == 4 * x.numel()
    assert dense / payload_bytes(encode(x, "int8")) == pytest.approx(4 / (1 + 4 / BLOCK))
    assert dense / payload_bytes(encode(x, "int4")) == pytest.approx(8 / (1 + 8 / BLOCK))
    assert dense / payload_bytes(encode(x, "int4")) > 7.7  # the scales cost the rest


def test_shapes_odd_lengths_and_zero_blocks_round_trip() -> None:
    x = torch.zeros(3, 5, 7)
    x[0, 0, 0] = -2.5
    for encoding in ("int8", "int4"):
        back = decode(encode(x, encoding, block=8))
        assert back.shape == (3, 5, 7) and back[0, 0, 0] == -2.5
        assert bool((back.reshape(-1)[8:] == 0).all())  # an all-zero block stays zero


@given(st.lists(st.lists(finite, min_size=40, max_size=40), min_size=1, max_size=12), quantised)
def test_error_feedback_keeps_the_total_within_half_a_step(
    rounds: list[list[float]], encoding: str
) -> None:
    feedback = ErrorFeedback(encoding, block=8)  # type: ignore[arg-type]
    true_total = torch.zeros(40, dtype=torch.float64)
    sent_total = torch.zeros(40, dtype=torch.float64)
    for values in rounds:
        delta = torch.tensor(values, dtype=torch.float32)
        sent = decode(feedback.encode({"w": delta})["w"])
        true_total += delta.double()
        sent_total += sent.double()
        residual = feedback.residual["w"].double()
        # what the node lacks is exactly the residual (up to float32 arithmetic) ...
        scale = 1e-5 * (true_total.abs().max() + delta.abs().max() + 1)
        assert bool(((true_total - sent_total - residual).abs() <= scale * len(rounds)).all())
        # ... and never more than half of this round's step (from what it owed: sent plus
        # residual), however many rounds went by
        step = step_of(sent.float() + residual.float(), encoding, 8).double()
        assert bool((residual.abs() <= step / 2 * (1 + 1e-4) + 1e-30).all())


def test_error_feedback_sends_a_small_steady_gradient_that_plain_rounding_drops() -> None:
    # one large value per block pins the scale; the small ones round to zero every round alone
    delta = torch.tensor([1.0] + [0.01] * 7)  # int4 step: 1/7, so 0.01 rounds to 0
    assert bool((decode(encode(delta, "int4", block=8))[1:] == 0).all())
    feedback = ErrorFeedback("int4", block=8)
    total = torch.zeros(8)
    for _ in range(100):
        total += decode(feedback.encode({"w": delta})["w"])
    assert total[1:] == pytest.approx(torch.full((7,), 1.0), abs=1 / 7)  # 100 x 0.01


def test_a_failed_round_leaves_the_residual_as_it_was() -> None:
    feedback = ErrorFeedback("int8", block=8)
    feedback.encode({"a": torch.tensor([1.0, 0.003] * 4), "b": torch.ones(8)})
    before = {k: v.clone() for k, v in feedback.residual.items()}
    with pytest.raises(InvalidInput, match="NaN or infinite"):
        feedback.encode({"a": torch.ones(8), "b": torch.tensor([math.nan] * 8)})
    assert all(torch.equal(before[k], feedback.residual[k]) for k in before)


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown encoding 'int2'"):
        encode(torch.ones(4), "int2")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="NaN or infinite"):
        encode(torch.tensor([1.0, math.inf]), "int8")
    with pytest.raises(InvalidInput, match="even number"):
        encode(torch.ones(4), "int4", block=3)
    good = encode(torch.arange(10.0), "int4", block=8)
    with pytest.raises(InvalidInput, match="values: expected 5"):  # a truncated message
        decode(Encoded("int4", good.shape, good.values[:4], good.scales, 8))
    with pytest.raises(InvalidInput, match="scales: expected 2"):
        decode(Encoded("int4", good.shape, good.values, good.scales[:1], 8))
    with pytest.raises(InvalidInput, match="finite and not negative"):
        decode(Encoded("int4", good.shape, good.values, -good.scales, 8))
    with pytest.raises(InvalidInput, match=r"values must lie in \[-127, 127\]"):
        decode(Encoded("int8", (2,), torch.tensor([-128, 0], dtype=torch.int8), torch.ones(1), 8))
    with pytest.raises(InvalidInput, match=r"values must lie in \[-7, 7\]"):
        decode(Encoded("int4", (2,), torch.tensor([0x00], dtype=torch.uint8), torch.ones(1), 8))
