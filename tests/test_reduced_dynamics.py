"""Exact reduced dynamics of the copy tasks (docs/design.md §4.3) against the full model.

Tolerances, stated once:
* right-hand side and loss against the full model's gradient and loss: 1e-10 relative
  (the same quantity computed two ways);
* online SGD from the zero init against the reduced map with the same step: 2e-3 in gold
  mass (finite-batch noise; measured ~3e-5);
* against gradient flow (the η → 0 limit): the half-attention step within 5 %; the gold
  mass within 0.1 at lr 10 and 0.05 at lr 5 — the gap is the Euler discretization of
  taking steps of η, first order in η, and is shown, not hidden.
"""

import numpy as np
import pytest

import attnsim as at
from attnsim import theory


@pytest.mark.parametrize("V, L", [(60, 40), (40, 40), (7, 3), (5, 5)])
def test_rhs_and_loss_equal_the_full_model_projected(V, L):
    """At U = a·I, S = c·I every example has loss ℓ(a, c); projecting the full gradient
    on the diagonal-minus-off-diagonal directions gives the reduced right-hand side."""
    rng = np.random.default_rng(V + L)
    task = at.tasks.copy(V, L)
    cfg = at.ModelConfig.for_task(task)
    x, y, _ = task.sample(rng, 3)
    for a, c in rng.uniform([-4, -3], [9, 6], size=(5, 2)):
        params = {"U": a * np.eye(V)[None], "S": c * np.eye(L)[None], "b": np.zeros(V)}
        loss, g = at.loss_and_grad(cfg, params, x, y)
        assert loss == pytest.approx(theory.reduced_copy_loss(a, c, V, L), rel=1e-10)
        gU, gS = g["U"][0], g["S"][0]
        da = -(np.trace(gU) / V - (gU.sum() - np.trace(gU)) / (V * (V - 1)))
        dc = -(np.trace(gS) / L - (gS.sum() - np.trace(gS)) / (L * (L - 1)))
        want_a, want_c = theory.reduced_copy_rhs(a, c, V, L)
        assert da == pytest.approx(want_a, rel=1e-10, abs=1e-14)
        assert dc == pytest.approx(want_c, rel=1e-10, abs=1e-14)


def test_permutation_copy_origin_is_a_fixed_point_of_the_reduced_flow():
    r = theory.reduced_copy(40, 40, np.linspace(0, 1e4, 11))
    assert np.all(r["a"] == 0) and np.all(r["c"] == 0)
    assert np.allclose(r["gold_mass"], 1 / 40) and np.allclose(r["loss"], np.log(40))


def _sgd(lr, steps, seed=0):
    task = at.tasks.copy(60, 40)
    cfg = at.ModelConfig.for_task(task)
    return at.train(cfg, task, optimizer="sgd", lr=lr, steps=steps, batch=256, seed=seed, scale=0, log_every=10)


def _half(step, mass):
    return float(np.interp(0.5, mass, step))


def test_online_sgd_from_zero_follows_the_exact_reduced_dynamics():
    run = _sgd(10.0, 600)
    tau, mass, step = run.history["tau"], run.history["gold_mass"], run.history["step"]
    same_step = theory.reduced_copy(60, 40, tau, lr=10.0)
    flow = theory.reduced_copy(60, 40, tau)
    assert np.max(np.abs(mass - same_step["gold_mass"])) <= 2e-3
    assert _half(step, mass) == pytest.approx(_half(step, same_step["gold_mass"]), rel=0.01)
    assert _half(step, mass) == pytest.approx(_half(step, flow["gold_mass"]), rel=0.05)
    assert np.max(np.abs(mass - flow["gold_mass"])) <= 0.1
    assert run.history["gold_mass"][-1] > 0.95 and run.success


def test_the_gap_to_gradient_flow_is_first_order_in_the_step():
    gaps = {}
    for lr, steps in ((10.0, 600), (5.0, 1200)):
        run = _sgd(lr, steps)
        flow = theory.reduced_copy(60, 40, run.history["tau"])
        gaps[lr] = np.max(np.abs(run.history["gold_mass"] - flow["gold_mass"]))
    assert gaps[5.0] <= 0.05
    assert 1.6 <= gaps[10.0] / gaps[5.0] <= 2.4  # halving the step halves the gap


def test_reduced_copy_rejects_bad_input():
    with pytest.raises(ValueError, match="length 50 > vocab 40"):
        theory.reduced_copy(40, 50, [0, 1])
    with pytest.raises(ValueError, match="non-decreasing"):
        theory.reduced_copy(60, 40, [3, 1])
    with pytest.raises(ValueError, match="multiple of lr"):
        theory.reduced_copy(60, 40, [0, 15], lr=10)


@pytest.mark.parametrize("V, L, H", [(9, 5, 3), (6, 6, 2)])
def test_multi_head_rhs_equals_the_full_model_projected(V, L, H):
    rng = np.random.default_rng(V * L * H)
    task = at.tasks.copy(V, L)
    cfg = at.ModelConfig.for_task(task, heads=H)
    x, y, _ = task.sample(rng, 3)
    for _ in range(4):
        a, c = rng.uniform(-4, 8, H), rng.uniform(-3, 5, H)
        params = {"U": a[:, None, None] * np.eye(V), "S": c[:, None, None] * np.eye(L), "b": np.zeros(V)}
        loss, g = at.loss_and_grad(cfg, params, x, y)
        assert loss == pytest.approx(theory.reduced_copy_loss(a, c, V, L), rel=1e-10)
        da, dc = theory.copy_coordinates({"U": -g["U"], "S": -g["S"]})
        want_a, want_c = theory.reduced_copy_rhs(a, c, V, L)
        assert np.allclose(da, want_a, rtol=1e-10, atol=1e-14) and np.allclose(dc, want_c, rtol=1e-10, atol=1e-14)


def test_escape_from_the_saddle_under_gd_follows_the_reduced_dynamics_and_the_log_law():
    """copy(10, 10), online SGD lr 2, batch 512, from random inits of scale 1e-2 and 1e-4:
    the sign of the saddle projection gives the outcome; the reduced dynamics from the
    init's own (a, c) give the time to half attention within 3 %; and a 100× smaller init
    delays it by log(100)/λ, λ = 1/V² (within 5 %)."""
    V = 10
    task = at.tasks.copy(V, V)
    cfg = at.ModelConfig.for_task(task)
    half = {}
    for scale in (1e-2, 1e-4):
        for seed in (0, 1):  # seed 0 lies on the learning side, seed 1 on the other
            p = at.init_params(cfg, seed, scale)
            run = at.train(cfg, task, optimizer="sgd", lr=2.0, steps=800, batch=512, seed=seed, params=p, log_every=5)
            assert (theory.saddle_projection(cfg, p) > 0) == run.success == (seed == 0)
            if seed == 0:
                a0, c0 = theory.copy_coordinates(p)
                red = theory.reduced_copy(V, V, run.history["tau"], lr=2.0, a0=a0[0], c0=c0[0])
                sim_half = _half(run.history["tau"], run.history["gold_mass"])
                assert sim_half == pytest.approx(_half(run.history["tau"], red["gold_mass"]), rel=0.03)
                half[scale] = sim_half
    assert half[1e-4] - half[1e-2] == pytest.approx(np.log(100) * V**2, rel=0.05)
