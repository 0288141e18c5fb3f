"""Stage-1 and stage-2 rates of docs/design.md §4.1–4.2 against gradients of the model itself.

Where the theory says a rate is exact (zero init, uniform attention, first order in τ),
the model's population gradient must equal it. The population gradient is computed
exactly by enumerating every sequence of a small built-in task (uniform over the
enumeration) or by taking the full batch of a `from_arrays` data set.

Tolerances: 1e-12 relative for stage 1 (an identity at U = 0); 1e-6 relative for
stage 2, whose statement holds to first order in τ (the odd part of the gradient at
U = ±τG, τ = 1e-3, leaves an O(τ²) relative remainder).
"""

import itertools

import numpy as np
import pytest
from hypothesis import given

import attnsim as at
from attnsim import theory

from .strategies import data_tasks

TAU = 1e-3


def _enumerate(task):
    """Every input of a copy-like task, each equally likely, with its target."""
    L = task.src_len
    if task.spec().get("replace"):
        xs = list(itertools.product(range(task.vocab_in), repeat=L))
    else:
        xs = list(itertools.permutations(range(task.vocab_in), L))
    x = np.array(xs, dtype=np.int64)
    return x, x[:, task.order]


def model_grads(task, x, y, U, weights=None, attention="positional", heads=1, S=None, b=None):
    """Gradients of the model at U (every head), S and b (zero when not given) on the
    sequences (x, y): their mean, or with ``weights`` their probability-weighted sum."""
    cfg = at.ModelConfig(task.vocab_in, task.vocab_out, task.src_len, task.tgt_len, heads=heads, attention=attention)
    params = at.init_params(cfg, 0, 0.0)
    params["U"][:] = U
    if S is not None:
        params["S"][:] = S
    if b is not None:
        params["b"][:] = b
    if weights is None:
        return at.loss_and_grad(cfg, params, x, y)[1]
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for xi, yi, wi in zip(x, y, weights, strict=True):
        for k, g in at.loss_and_grad(cfg, params, xi[None], yi[None])[1].items():
            total[k] += wi * g
    return total


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


BUILTIN = [
    at.tasks.copy(4, 3),
    at.tasks.copy(3, 3),
    at.tasks.copy(3, 2, replace=True),
    at.tasks.reorder(5, 3, "reverse"),
    at.tasks.reorder(4, 4, "rotate:1", replace=True),
]


@pytest.mark.parametrize("task", BUILTIN, ids=repr)
def test_stage1_rate_is_minus_the_population_gradient_at_zero(task):
    x, y = _enumerate(task)
    G = theory.stage1_rate(task)
    g = model_grads(task, x, y, np.zeros_like(G))
    assert G.shape == (task.vocab_out, task.vocab_in)
    assert np.max(np.abs(-g["U"][0] - G)) <= 1e-12 * max(np.max(np.abs(G)), 1.0)


@pytest.mark.parametrize("task", [t for t in BUILTIN if t.vocab_in != t.src_len or t.spec().get("replace")], ids=repr)
def test_stage2_rate_is_the_first_order_attention_gradient(task):
    x, y = _enumerate(task)
    G = theory.stage1_rate(task)
    M = theory.stage2_rate(task)
    T, L = task.tgt_len, task.src_len
    plus = model_grads(task, x, y, TAU * G)["S"][0]
    minus = model_grads(task, x, y, -TAU * G)["S"][0]
    slope = -(plus - minus) / (2 * TAU) * (T * L)  # −∂S/∂τ at τ = 0, times T·L
    assert M.shape == (T, L)
    assert _rel(slope, M) <= 1e-6
    assert np.allclose(M.sum(axis=1), 0, atol=1e-15)  # a shift of a row of S changes nothing


def test_permutation_copy_has_no_stage1_or_stage2_signal():
    task = at.tasks.copy(40, 40)
    assert np.max(np.abs(theory.stage1_rate(task))) <= 1e-15
    assert np.max(np.abs(theory.stage2_rate(at.tasks.copy(6, 6)))) <= 1e-15
    easy = theory.stage2_rate(at.tasks.copy(8, 6))  # 6 out of 8: the gold position leads
    assert np.all(np.argmax(easy, axis=1) == np.arange(6))


@given(data_tasks())
def test_rates_on_random_data_equal_full_batch_gradients(task):
    T, L, Vin, Vout = task.tgt_len, task.src_len, task.vocab_in, task.vocab_out
    G = theory.stage1_rate(task)
    g0 = model_grads(task, task.x, task.y, np.zeros((Vout, Vin)))
    assert np.max(np.abs(-g0["U"][0] - G)) <= 1e-12 * max(np.max(np.abs(G)), 1.0)
    M = theory.stage2_rate(task)
    plus = model_grads(task, task.x, task.y, TAU * G)["S"][0]
    minus = model_grads(task, task.x, task.y, -TAU * G)["S"][0]
    slope = -(plus - minus) / (2 * TAU) * (T * L)
    scale = max(np.max(np.abs(M)), np.max(np.abs(G)))  # M averages entries of Ḡ
    assert np.max(np.abs(slope - M)) <= 1e-6 * scale


def test_cooccurrence_unpacks_as_n_and_C_with_standard_errors():
    n, C = theory.cooccurrence(at.tasks.copy(6, 4))
    # t = l: P(x_l = o = i) = 1/6 on the diagonal, 4 such pairs; t != l: 1/30 off it, 12 pairs
    assert np.allclose(n, 4 / 6)
    assert np.allclose(C, (4 / 6) * np.eye(6) + (12 / 30) * (1 - np.eye(6)), rtol=0, atol=1e-15)
    co = theory.cooccurrence(at.tasks.copy(6, 4))
    assert co.exact and np.all(co.C_se == 0)
    assert np.isclose(co.C.sum(), 16.0)  # T·L pairs per sequence
    data = theory.cooccurrence(at.tasks.from_arrays(np.array([[0, 1], [1, 1]]), np.array([[1], [0]])))
    assert not data.exact and data.samples == 2
    assert np.allclose(data.n, [0.5, 1.5]) and np.all(np.isfinite(data.C_se))


def _weighted_population(task):
    """Every (x, y) of a small translate or keyword task with its probability."""
    L, V = task.src_len, task.vocab_in
    rows = []
    if task.name == "translate":
        for x in itertools.product(range(V), repeat=L):
            px = np.prod(task.p[list(x)])
            aligned = task.mapping[np.asarray(x)[task.order]]
            for y in itertools.product(range(task.vocab_out), repeat=task.tgt_len):
                py = np.prod(
                    [
                        (1 - task.noise) * (yt == at_) + task.noise / task.vocab_out
                        for yt, at_ in zip(y, aligned, strict=True)
                    ]
                )
                rows.append((x, y, px * py))
    else:  # keyword: label 0 fills with non-keywords; label 1 puts one keyword at a uniform position
        k = task.keywords
        for x in itertools.product(range(V), repeat=L):
            n_kw = sum(w < k for w in x)
            p0 = 0.5 * (n_kw == 0) / (V - k) ** L
            kw = [w for w in x if w < k]
            p1 = 0.5 * (n_kw == 1) * (task.keyword_p[kw[0]] if kw else 0.0) / (L * (V - k) ** (L - 1))
            rows += [(x, (0,), p0), (x, (1,), p1)]
    rows = [r for r in rows if r[2] > 0]
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    w = np.array([r[2] for r in rows])
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    return x, y, w


@pytest.mark.parametrize(
    "task",
    [at.tasks.translate(3, 3, 2, zipf=1.0, noise=0.2, order="reverse"), at.tasks.translate(4, 2, 2, zipf=0.5)],
    ids=repr,
)
def test_translate_rates_equal_exact_population_gradients(task):
    x, y, w = _weighted_population(task)
    G = theory.stage1_rate(task)
    g0 = model_grads(task, x, y, np.zeros_like(G), w, "positional")
    assert np.max(np.abs(-g0["U"][0] - G)) <= 1e-12 * max(np.max(np.abs(G)), 1.0)
    assert np.allclose(-g0["b"], theory.bias_rate(task), rtol=0, atol=1e-14)
    M = theory.stage2_rate(task)
    T, L = task.tgt_len, task.src_len
    plus = model_grads(task, x, y, TAU * G, w, "positional")["S"][0]
    minus = model_grads(task, x, y, -TAU * G, w, "positional")["S"][0]
    assert _rel(-(plus - minus) / (2 * TAU) * (T * L), M) <= 1e-6


@pytest.mark.parametrize(
    "task", [at.tasks.keyword(4, 3, keywords=1), at.tasks.keyword(5, 3, keywords=2, zipf=1.5)], ids=repr
)
def test_keyword_rates_equal_exact_population_gradients(task):
    """Stage 1 and the positional M exactly; the content rate N (Monte Carlo for a
    generative task) within 5 standard errors of the exact population slope."""
    x, y, w = _weighted_population(task)
    G = theory.stage1_rate(task)
    g0 = model_grads(task, x, y, np.zeros_like(G), w, "both")
    assert np.max(np.abs(-g0["U"][0] - G)) <= 1e-12 * max(np.max(np.abs(G)), 1.0)
    plus = model_grads(task, x, y, TAU * G, w, "both")
    minus = model_grads(task, x, y, -TAU * G, w, "both")
    L = task.src_len
    slope_S = -(plus["S"][0] - minus["S"][0]) / (2 * TAU) * L
    assert np.max(np.abs(slope_S - theory.stage2_rate(task))) <= 1e-6 * np.max(np.abs(G))  # both ~0: no position leads
    slope_A = -(plus["A"][0] - minus["A"][0]) / (2 * TAU) * L
    N, se = theory.stage2_content_rate(task, samples=200_000, return_se=True)
    assert np.all(np.abs(slope_A - N) <= 5 * se + 1e-12)
    assert np.argmax(slope_A[0]) == 0  # the (most frequent) keyword is the word attention goes to
    if task.keywords > 1:  # a frequent keyword is attended faster than a rare one
        assert slope_A[0, 0] > slope_A[0, 1] > np.max(slope_A[0, task.keywords :])
