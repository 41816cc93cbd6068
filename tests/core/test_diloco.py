"""cairn.core.diloco: the outer step against torch.optim.SGD, its edge cases, and DiLoCo end to end
on a least-squares problem split over four workers."""

from __future__ import annotations

import pytest
import torch

from cairn.core.aggregation import CoordinateMedian, Krum, Tensors, WeightedMean
from cairn.core.diloco import OuterState, outer_step, pseudo_gradient
from cairn.core.errors import InvalidInput


def params(seed: int, dtype: torch.dtype = torch.float32) -> Tensors:
    gen = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(3, 4, generator=gen).to(dtype),  # (3, 4)
        "b": torch.randn(4, generator=gen).to(dtype),  # (4,)
    }


def near(base: Tensors, seed: int, scale: float = 0.1) -> Tensors:
    """A worker's parameters after its inner steps: `base` plus a small random move."""
    gen = torch.Generator().manual_seed(seed)
    return {
        k: (v.float() + scale * torch.randn(v.shape, generator=gen)).to(v.dtype)
        for k, v in base.items()
    }


def copy(p: Tensors) -> Tensors:
    return {k: v.clone() for k, v in p.items()}


def assert_equal(a: Tensors, b: Tensors) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype
        assert torch.equal(a[k], b[k]), k


# --- the reference: torch's own SGD with the mean pseudo-gradient as the gradient --------------


@pytest.mark.parametrize(
    ("nesterov", "lr", "momentum"),
    [
        (True, 0.7, 0.9),  # the DiLoCo paper's outer optimizer
        (False, 0.7, 0.9),
        (True, 0.3, 0.5),
        (False, 0.3, 0.5),
        (False, 1.0, 0.0),  # torch.optim.SGD refuses Nesterov without momentum
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outer_step_is_torch_sgd_on_the_mean_pseudo_gradient(
    nesterov: bool, lr: float, momentum: float, dtype: torch.dtype
) -> None:
    global_params = params(0, dtype)
    reference = {k: torch.nn.Parameter(v.clone()) for k, v in global_params.items()}
    sgd = torch.optim.SGD(reference.values(), lr=lr, momentum=momentum, nesterov=nesterov)
    weights = [100.0, 250.0, 50.0]
    state = OuterState()

    for step in range(6):
        workers = [near(global_params, seed=10 * step + i) for i in range(3)]
        for k, p in reference.items():  # the weighted mean of global - worker, by hand
            deltas = torch.stack([global_params[k] - x[k] for x in workers])  # (3, *shape)
            scale = torch.tensor(weights, dtype=dtype) / sum(weights)  # (3,)
            p.grad = torch.tensordot(scale, deltas, dims=1)  # (*shape)
        sgd.step()
        global_params, state = outer_step(
            global_params, workers, weights, state, lr=lr, momentum=momentum, nesterov=nesterov
        )
        for k, p in reference.items():
            assert global_params[k].dtype == dtype
            torch.testing.assert_close(global_params[k], p.detach())

    assert state.step == 6
    assert state.momentum is not None
    if momentum > 0:  # torch keeps no buffer without momentum
        for k, p in reference.items():
            torch.testing.assert_close(state.momentum[k], sgd.state[p]["momentum_buffer"])


def test_nesterov_looks_ahead() -> None:
    g = {"x": torch.tensor([0.0])}
    w = [{"x": torch.tensor([-1.0])}]  # pseudo-gradient 1
    first, state = outer_step(g, w, [1.0], OuterState(), lr=1.0, momentum=0.5)
    assert float(first["x"]) == -1.5  # update = d + m * buf = 1 + 0.5 * 1
    plain, _ = outer_step(g, w, [1.0], OuterState(), lr=1.0, momentum=0.5, nesterov=False)
    assert float(plain["x"]) == -1.0  # update = buf = d
    second, state = outer_step(first, [{"x": first["x"] - 1}], [1.0], state, lr=1.0, momentum=0.5)
    # buf = 0.5 * 1 + 1 = 1.5; update = 1 + 0.5 * 1.5 = 1.75
    assert float(second["x"]) == -1.5 - 1.75
    assert state.momentum is not None and float(state.momentum["x"]) == 1.5 and state.step == 2


# --- edge cases -------------------------------------------------------------------------------


def test_plain_step_with_one_worker_lands_on_the_worker() -> None:
    g = params(1)
    worker = near(g, seed=2, scale=1.0)
    new, state = outer_step(g, [worker], [7.0], OuterState(), lr=1.0, momentum=0.0)
    for k in g:
        torch.testing.assert_close(new[k], worker[k])
    assert state.step == 1


def test_identical_workers_step_like_one() -> None:
    g = params(3)
    worker = near(g, seed=4)
    alone, _ = outer_step(g, [worker], [1.0], OuterState())
    together, _ = outer_step(
        g, [copy(worker) for _ in range(4)], [1.0, 5.0, 2.0, 9.0], OuterState()
    )
    for k in g:
        torch.testing.assert_close(together[k], alone[k])


def test_workers_that_did_not_move_leave_the_parameters_alone() -> None:
    g = params(5)
    new, state = outer_step(g, [copy(g), copy(g)], [1.0, 1.0], OuterState())
    assert_equal(new, g)
    assert state.momentum is not None
    assert all(bool((m == 0).all()) for m in state.momentum.values())


def test_inputs_are_never_mutated_and_outputs_share_no_memory() -> None:
    g = params(6)
    workers = [near(g, seed=s) for s in (7, 8)]
    _, state = outer_step(g, workers, [1.0, 1.0], OuterState())
    g2 = near(g, seed=9)
    saved = (copy(g2), [copy(w) for w in workers], copy(state.momentum or {}), state.step)

    new, new_state = outer_step(g2, workers, [1.0, 3.0], state)
    assert_equal(g2, saved[0])
    for w, w_saved in zip(workers, saved[1], strict=True):
        assert_equal(w, w_saved)
    assert state.momentum is not None
    assert_equal(state.momentum, saved[2])
    assert state.step == saved[3]

    assert new_state.momentum is not None
    for out in (new, new_state.momentum):
        for t in out.values():
            t.add_(1.0)  # writing to an output touches no input
    assert_equal(g2, saved[0])
    assert_equal(state.momentum, saved[2])
    for w, w_saved in zip(workers, saved[1], strict=True):
        assert_equal(w, w_saved)


def test_bfloat16_in_bfloat16_out_with_a_float32_momentum() -> None:
    g = params(10, torch.bfloat16)
    workers = [near(g, seed=s) for s in (11, 12, 13)]
    new, state = outer_step(g, workers, [1.0, 1.0, 1.0], OuterState())
    assert {k: v.dtype for k, v in new.items()} == {"w": torch.bfloat16, "b": torch.bfloat16}
    assert state.momentum is not None
    assert {k: v.dtype for k, v in state.momentum.items()} == {
        "w": torch.float32,
        "b": torch.float32,
    }
    # the same step done in float32 and rounded once at the end
    as32 = {k: v.float() for k, v in g.items()}
    ref, _ = outer_step(
        as32, [{k: v.float() for k, v in w.items()} for w in workers], [1.0] * 3, OuterState()
    )
    for k in g:
        assert torch.equal(new[k], ref[k].to(torch.bfloat16))


def test_each_parameter_keeps_its_own_dtype() -> None:
    g = {"w": torch.ones(2, dtype=torch.bfloat16), "b": torch.ones(2, dtype=torch.float64)}
    w = {"w": torch.zeros(2, dtype=torch.bfloat16), "b": torch.zeros(2, dtype=torch.float64)}
    new, state = outer_step(g, [w], [1.0], OuterState())
    assert (new["w"].dtype, new["b"].dtype) == (torch.bfloat16, torch.float64)
    assert state.momentum is not None
    assert (state.momentum["w"].dtype, state.momentum["b"].dtype) == (torch.float32, torch.float64)


def test_trainable_parameters_are_read_without_building_a_graph() -> None:
    g: Tensors = {k: torch.nn.Parameter(v) for k, v in params(14).items()}
    new, state = outer_step(g, [near(params(14), seed=15)], [1.0], OuterState())
    assert not any(t.requires_grad for t in new.values())
    assert state.momentum is not None and not any(t.requires_grad for t in state.momentum.values())


def test_pseudo_gradient_is_global_minus_worker_in_float32() -> None:
    g = params(16, torch.bfloat16)
    w = near(g, seed=17)
    delta = pseudo_gradient(g, w)
    for k in g:
        assert delta[k].dtype == torch.float32
        assert torch.equal(delta[k], g[k].float() - w[k].float())
    assert (
        pseudo_gradient(params(18, torch.float64), params(19, torch.float64))["w"].dtype
        == torch.float64
    )


def test_a_robust_aggregator_shrugs_off_poisoned_workers() -> None:
    g = params(20)
    honest = [near(g, seed=s, scale=0.01) for s in range(21, 26)]
    poisoned = [{k: v + 1e6 for k, v in g.items()} for _ in range(2)]
    workers = [honest[0], poisoned[0], honest[1], honest[2], poisoned[1], honest[3], honest[4]]
    clean, _ = outer_step(g, honest, [1.0] * 5, OuterState())

    for aggregator in (CoordinateMedian(), Krum(byzantine=2)):
        robust, _ = outer_step(g, workers, [1.0] * 7, OuterState(), aggregator=aggregator)
        for k in g:  # within a few honest steps' size of the clean step
            assert float((robust[k] - clean[k]).abs().max()) < 0.1
    mean, _ = outer_step(g, workers, [1.0] * 7, OuterState(), aggregator=WeightedMean())
    assert float((mean["w"] - clean["w"]).abs().max()) > 1e5


# --- bad input --------------------------------------------------------------------------------


def run(**changes: object) -> None:
    g = params(30)
    kwargs: dict[str, object] = {
        "global_params": g,
        "worker_params": [near(g, seed=31), near(g, seed=32)],
        "weights": [1.0, 1.0],
        "state": OuterState(),
    }
    kwargs.update(changes)
    outer_step(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": -0.1}, "diloco: lr must be a finite number >= 0; got -0.1"),
        ({"lr": float("nan")}, "diloco: lr must be a finite number >= 0; got nan"),
        ({"momentum": 1.0}, "diloco: momentum must be in [0, 1); got 1.0"),
        ({"momentum": -0.5}, "diloco: momentum must be in [0, 1); got -0.5"),
        ({"worker_params": []}, "aggregation: no updates to aggregate"),
        (
            {"worker_params": [params(30), {"w": torch.zeros(3, 4)}]},
            "worker 1: missing parameters ['b']; unexpected parameters []",
        ),
        (
            {"worker_params": [{"w": torch.zeros(4, 3), "b": torch.zeros(4)}]},
            "worker 0: parameter 'w' has shape (4, 3), expected (3, 4)",
        ),
        (
            {
                "worker_params": [
                    params(30),
                    {"w": torch.zeros(3, 4), "b": torch.full((4,), float("nan"))},
                ]
            },
            "worker 1: parameter 'b' has non-finite values (NaN or inf)",
        ),
        (
            {"global_params": {"w": torch.full((3, 4), float("inf")), "b": torch.zeros(4)}},
            "global parameters: parameter 'w' has non-finite values (NaN or inf)",
        ),
        (
            {"state": OuterState(momentum={"w": torch.zeros(3, 4), "b": torch.zeros(5)}, step=3)},
            "outer state momentum: parameter 'b' has shape (5,), expected (4,)",
        ),
        ({"weights": [1.0]}, "aggregation: got 2 updates but 1 weights"),
        ({"weights": [0.0, 0.0]}, "aggregation: weights sum to 0; at least one must be positive"),
        (
            {"aggregator": Krum(byzantine=1)},
            "krum: 2 updates cannot tolerate 1 Byzantine workers; need at least 2f + 3 = 5",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        run(**changes)
    assert str(err.value) == message


def test_pseudo_gradient_refuses_a_mismatched_worker() -> None:
    with pytest.raises(InvalidInput) as err:
        pseudo_gradient(params(33), {"w": torch.zeros(3, 4), "x": torch.zeros(4)})
    assert str(err.value) == "worker: missing parameters ['b']; unexpected parameters ['x']"


# --- end to end: DiLoCo on least squares ------------------------------------------------------


def test_diloco_converges_to_the_least_squares_optimum() -> None:
    """Four workers, each with its own shard, H plain SGD steps each round, 30 rounds."""
    gen = torch.Generator().manual_seed(40)
    n, d, workers, h, rounds = 400, 8, 4, 20, 30
    features = torch.randn(n, d, generator=gen, dtype=torch.float64)  # (N, d)
    truth = torch.randn(d, generator=gen, dtype=torch.float64)  # (d,)
    targets = (
        features @ truth + 1.5 + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64)
    )  # (N,)
    shards = list(
        zip(features.chunk(workers), targets.chunk(workers), strict=True)
    )  # 4 x ((N/4, d), (N/4,))

    def loss(p: Tensors, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((x @ p["w"] + p["b"] - y) ** 2).mean()

    def inner(p: Tensors, x: torch.Tensor, y: torch.Tensor) -> Tensors:
        """H steps of plain SGD on one shard, from the global parameters."""
        local = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        for _ in range(h):
            grads = torch.autograd.grad(loss(local, x, y), list(local.values()))
            with torch.no_grad():
                for v, grad in zip(local.values(), grads, strict=True):
                    v -= 0.05 * grad
        return {k: v.detach() for k, v in local.items()}

    # the optimum, by least squares on all the data with a bias column
    design = torch.cat([features, torch.ones(n, 1, dtype=torch.float64)], dim=1)  # (N, d + 1)
    solution = torch.linalg.lstsq(design, targets.unsqueeze(1)).solution.squeeze(1)  # (d + 1,)
    optimum = {"w": solution[:d], "b": solution[d]}
    best = float(loss(optimum, features, targets))

    global_params: Tensors = {
        "w": torch.zeros(d, dtype=torch.float64),
        "b": torch.zeros((), dtype=torch.float64),
    }
    state = OuterState()
    start = float(loss(global_params, features, targets))
    for r in range(rounds):
        replies = [inner(global_params, x, y) for x, y in shards]
        global_params, state = outer_step(
            global_params, replies, [len(y) for _, y in shards], state
        )
        if r % 5 == 4:
            print(f"round {r + 1}: loss {float(loss(global_params, features, targets)):.6f}")
    final = float(loss(global_params, features, targets))
    print(f"start loss {start:.4f}, DiLoCo {final:.6f}, least-squares optimum {best:.6f}")

    assert state.step == rounds
    assert final < 1.01 * best
    assert float((global_params["w"] - optimum["w"]).abs().max()) < 0.02
    assert abs(float(global_params["b"] - optimum["b"])) < 0.02


def test_outer_state_round_trips_through_a_checkpoint() -> None:
    from cairn.core.diloco import state_from_bytes, state_to_bytes

    fresh = state_from_bytes(state_to_bytes(OuterState()))
    assert fresh.momentum is None and fresh.step == 0
    state = OuterState(momentum={"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}, step=7)
    back = state_from_bytes(state_to_bytes(state))
    assert back.step == 7 and back.momentum is not None
    assert all(torch.equal(back.momentum[k], state.momentum[k]) for k in ("w", "b"))
    with pytest.raises(InvalidInput, match="not a DiLoCo outer-state checkpoint"):
        state_from_bytes(b"garbage")
