"""Metrics of docs/design.md §3.4–3.5 against direct computations and known values."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given

import attnsim as at
from attnsim import metrics

from .strategies import cases


@given(cases(value_bound=2.0))
def test_ktiw_probe_is_the_log_odds_of_the_right_word_when_attending_to_one_position(case):
    cfg, params, x, y = case
    beta = metrics.ktiw_probe(cfg, params, x, y)
    U = params["U"] if cfg.d_model is None else params["W"] @ params["E"]
    z = U.mean(axis=0) + (params["b"][:, None] if cfg.bias else 0.0)  # (Vout, Vin): logits per input word
    p = np.exp(z - z.max(0)) / np.exp(z - z.max(0)).sum(0)
    want = np.log(p) - np.log1p(-p)
    assert np.allclose(beta, want[y[:, :, None], x[:, None, :]], rtol=1e-9, atol=1e-9)


def test_ktiw_accuracy_and_the_kernel_agree():
    task = at.tasks.copy(10, 6)
    cfg = at.ModelConfig.for_task(task)
    run = at.train(cfg, task, steps=60, batch=32, log_every=60)
    from attnsim._model import STREAM_DATA, seed_sequence
    from attnsim._train import chunk_steps

    x, y, g = task.sample(np.random.default_rng(seed_sequence(0, STREAM_DATA)), chunk_steps(task, 32) * 32)
    last = slice(60 * 32, 61 * 32)  # the batch of the final measurement
    beta = metrics.ktiw_probe(cfg, run.params, x[last], y[last])
    assert metrics.ktiw_accuracy(beta, g[last]) == pytest.approx(run.history["ktiw_acc"][-1], abs=1e-12)


def test_agreement_top_match():
    u = np.array([[0.0, 3.0, 1.0, 0.5]])
    v = np.array([[0.0, 1.0, 5.0, 0.2]])
    assert metrics.agreement(u, v, top=0.0) == 0.0  # argmax u = 1, argmax v = 2
    assert metrics.agreement(u, v, top=0.5) == 1.0  # position 1 is second in v: within the top 2 of 4
    assert metrics.agreement(u, u) == 1.0
    mask = np.array([[True, True, False, True]])  # without position 2, v ranks position 1 first
    assert metrics.agreement(u, v, top=0.0, mask=mask) == 1.0
    with pytest.raises(ValueError, match="same shape"):
        metrics.agreement(u, v[:, :3])


def test_top_five_percent_is_at_least_one_position():
    from attnsim.metrics import _top_k

    assert [_top_k(L, 0.05) for L in (1, 10, 29, 30, 40, 100)] == [1, 1, 1, 2, 2, 5]


def test_kendall_tau_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 5, size=(50, 9)).astype(float)
    v = u + rng.integers(0, 3, size=(50, 9))
    want = np.mean([scipy.stats.kendalltau(a, b).statistic for a, b in zip(u, v, strict=True)])
    assert metrics.kendall_tau(u, v) == pytest.approx(want, rel=1e-12)
    assert metrics.kendall_tau(u, u) == pytest.approx(1.0)
    assert metrics.kendall_tau(u, -u) == pytest.approx(-1.0)


def test_shuffled_baseline_is_chance():
    rng = np.random.default_rng(1)
    u = rng.standard_normal((6000, 20))
    base = metrics.shuffled_baseline(u, u, seed=2)
    assert base["agreement"] == pytest.approx(1 / 20, abs=0.01)  # top 1 of 20 by chance
    assert abs(base["kendall"]) < 0.01


def test_saliency_sums_to_the_attention_gradient():
    """Σ_b Δ[b, t, l] = −B·T·Σ_h ∂loss/∂S[h, t, l]; and for content logits the same
    summed over the positions holding each word."""
    rng = np.random.default_rng(3)
    cfg = at.ModelConfig(9, 7, 6, 5, heads=2, attention="both")
    params = at.init_params(cfg, 4, 0.8)
    x = rng.integers(0, 9, size=(11, 6))
    y = rng.integers(0, 7, size=(11, 5))
    delta = metrics.saliency(cfg, params, x, y)
    _, grads = at.loss_and_grad(cfg, params, x, y)
    B, T = y.shape
    assert np.allclose(delta.sum(axis=0), -B * T * grads["S"].sum(axis=0), atol=1e-12)
    per_word = np.zeros((T, 9))
    for b in range(B):
        for l in range(6):
            per_word[:, x[b, l]] += delta[b, :, l]
    assert np.allclose(per_word, -B * T * grads["A"].sum(axis=0), atol=1e-12)


def test_success_and_time_to_learn():
    h = {
        "step": np.array([0, 10, 20, 30]),
        "acc": np.array([0.1, 0.96, 0.99, 0.97]),
        "attn_acc": np.array([0.0, 0.5, 0.97, 0.96]),
    }
    assert metrics.success(h) and metrics.time_to_learn(h) == 20
    h["attn_acc"][-1] = 0.0  # copying by elimination: right words, attention elsewhere
    assert not metrics.success(h)
    h_no_gold = {"step": np.array([0, 5]), "acc": np.array([0.5, 0.99]), "attn_acc": np.array([np.nan, np.nan])}
    assert metrics.success(h_no_gold) and metrics.time_to_learn(h_no_gold) == 5
