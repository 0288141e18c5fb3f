"""The dot-product head's reduced dynamics (docs/design.md §7.6) against the full model.

Tolerances, stated once:
* the reduced right-hand side against the full model's factor gradients at aligned,
  balanced parameters: 1e-10 relative (the same quantity computed two ways);
* online SGD from an aligned init against the reduced map with the same step: 1e-3 in gold
  mass at batch 1024 (measured 5.7e-4 and 6.0e-4 on two seeds), the gap being the finite
  batch's bias: halving the batch doubles it (ratio within [1.6, 2.4]); against gradient
  flow, the τ of half attention within 5 %;
* from a small *random* init no reduced form is exact (the factors are not aligned). What
  the chain picture predicts for stage 1 — KTIW within a time ∝ 1/s, U being a product of
  three factors — is checked as a log-log slope over s = 0.1…0.05, between −1.3 and −0.7
  (measured −0.98); attention waits longer in proportion as s shrinks (its slope is steeper,
  measured −1.3, by at least 0.15), though not as steeply as the aligned family's 1/s²
  (docs/design.md §7.6 says so). Rung 0 from the same scales attends at the same τ.
"""

import math

import numpy as np
import pytest

import attnsim as at
from attnsim import theory

V, L, D = 12, 8, 16


def _cfg(dim=D, **kw):
    return at.DotConfig.for_task(at.tasks.copy(V, L), dim=dim, **kw)


@pytest.mark.parametrize("w, u", [(0.3, 0.4), (1.1, 0.7), (0.05, 1.6), (1.5, 1.2)])
def test_rhs_equals_the_full_models_factor_gradient(w, u):
    """At the aligned, balanced parameters the full gradient of each factor lies along the
    factor's own direction [I 0] (up to the shifts that change nothing), with the reduced
    rates: dw/dτ = −w² ∂ℓ/∂a/(V−1) for E, WV, WO and du/dτ = −(u³/√k) ∂ℓ/∂c/(L−1) for R,
    WQ, WK, P. The loss is rung 0's ℓ(a = w³, c = u⁴/√k)."""
    cfg = _cfg()
    task = at.tasks.copy(V, L)
    x, y, _ = task.sample(np.random.default_rng(1), 5)
    params = theory.dot_aligned_params(cfg, w, u)
    loss, g = at.loss_and_grad(cfg, params, x, y)
    a, c = w**3, u**4 / math.sqrt(D)
    assert loss == pytest.approx(theory.reduced_copy_loss(a, c, V, L), rel=1e-10)
    da, dc = theory.reduced_copy_rhs(a, c, V, L)
    want = {"w": w * w * da, "u": u**3 * dc / math.sqrt(D)}

    def coordinate(G, n):  # the coefficient of [I 0] in G (n × ·), the shifts 1·[1ᵀ 0] removed
        block = G[0][:n, :n]
        return -(np.trace(block) / n - (block.sum() - np.trace(block)) / (n * (n - 1)))

    for name, n, kind in (("E", V, "w"), ("WO", V, "w"), ("WV", V, "w"), ("R", L, "u"), ("P", L, "u"),
                          ("WQ", L, "u"), ("WK", L, "u")):  # fmt: skip
        got = coordinate(g[name], n)
        assert got == pytest.approx(want[kind], rel=1e-10, abs=1e-14), name


def test_online_sgd_from_an_aligned_init_follows_the_reduced_map():
    cfg = _cfg()
    task = at.tasks.copy(V, L)
    gaps = {}
    for batch in (512, 1024):
        start = theory.dot_aligned_params(cfg, 0.3, 0.3)
        run = at.train(cfg, task, optimizer="sgd", lr=0.5, steps=3000, batch=batch, params=start, log_every=10)
        tau, mass = run.history["tau"], run.history["gold_mass"]
        same_step = theory.reduced_copy_dot(V, L, tau, key_dim=D, lr=0.5, w0=0.3, u0=0.3)
        gaps[batch] = np.max(np.abs(mass - same_step["gold_mass"]))
    assert gaps[1024] <= 1e-3
    assert 1.6 <= gaps[512] / gaps[1024] <= 2.4  # the finite batch's bias, order 1/B
    flow = theory.reduced_copy_dot(V, L, tau, key_dim=D, w0=0.3, u0=0.3)
    # gradient flow: the steep rise comes within a few steps (the Euler gap of steps of 0.5 is
    # 0.1 in gold mass there, first order in the step)
    assert _first(run.history, "gold_mass") == pytest.approx(_first(flow, "gold_mass"), rel=0.05)
    assert mass[-1] > 0.6 and run.history["attn_acc"][-1] == 1.0


def test_from_a_small_init_ktiw_waits_like_one_over_s_and_attention_longer():
    """The tables are products of factors: from an init of scale s the table U (three
    factors) escapes zero after τ ∝ 1/s, and attention comes later in proportion as s
    shrinks: the two stages separate. Rung 0 from the same init scales attends at the same τ."""
    task = at.tasks.copy(V, L)
    cfg = _cfg()
    scales = (0.1, 0.07, 0.05)
    t_ktiw, t_attend = [], []
    for s in scales:
        runs = at.train_many(cfg, task, seeds=range(3), optimizer="sgd", lr=1.0, steps=int(40 / s**2), batch=256,
                             scale=s, log_every=5)  # fmt: skip
        t_ktiw.append(np.mean([_first(r.history, "ktiw_acc") for r in runs]))
        t_attend.append(np.mean([_first(r.history, "gold_mass") for r in runs]))
    logs = np.log(scales)
    slope_ktiw = np.polyfit(logs, np.log(t_ktiw), 1)[0]
    slope_attend = np.polyfit(logs, np.log(t_attend), 1)[0]
    assert -1.3 <= slope_ktiw <= -0.7
    assert slope_attend <= slope_ktiw - 0.15
    assert t_attend[-1] / t_ktiw[-1] > t_attend[0] / t_ktiw[0]  # the stages separate
    free = at.ModelConfig.for_task(task)
    t_free = [
        _first(at.train(free, task, optimizer="sgd", lr=1.0, steps=3000, batch=256, scale=s, log_every=5).history,
               "gold_mass")
        for s in scales
    ]  # fmt: skip
    assert max(t_free) <= 1.1 * min(t_free)


def _first(history, key, level=0.5):
    hit = np.flatnonzero(np.asarray(history[key]) >= level)
    return float(history["tau"][hit[0]]) if hit.size else math.inf


def test_aligned_params_refuse_what_the_reduction_does_not_cover():
    with pytest.raises(ValueError, match="positional attention, word values and no context"):
        theory.dot_aligned_params(_cfg(attention="both"))
    with pytest.raises(ValueError, match="dim >= vocab"):
        theory.dot_aligned_params(_cfg(dim=8))
    with pytest.raises(ValueError, match="needs a DotConfig"):
        theory.dot_aligned_params(at.ModelConfig(V, V, L, L))
    with pytest.raises(ValueError, match="key_dim must be a positive integer"):
        theory.reduced_copy_dot(V, L, [0, 1], key_dim=0)
