"""Exact reduced dynamics of the copy tasks (DESIGN §4) against the full model.

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
