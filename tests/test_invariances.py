"""Invariances of rung 0, as named checks (tolerance 1e-12 unless stated); those every
architecture has (attention rows, ∂b, the zero output layer, permuted heads) are in
``tests/test_architectures.py``."""

import itertools

import numpy as np
import pytest
from hypothesis import given

import attnsim as at

from .strategies import cases, rounding_err


@given(cases(attention="both"))
def test_adding_a_constant_to_a_row_of_S_or_A_changes_nothing(case):
    cfg, params, x, y = case
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    shifted = {k: v.copy() for k, v in params.items()}
    shifted["S"][0, -1, :] += 2.5  # every position of row t gets the same logit shift
    shifted["A"][-1, 0, :] -= 1.75  # every word, hence every position, of row t
    loss2, grads2 = at.loss_and_grad(cfg, shifted, x, y)
    assert loss2 == pytest.approx(loss, rel=1e-12, abs=1e-14)
    assert rounding_err(grads2, grads) <= 1e-12


@given(cases(factored=False))
def test_adding_a_constant_to_a_column_of_U_changes_nothing(case):
    cfg, params, x, y = case
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    shifted = {k: v.copy() for k, v in params.items()}
    shifted["U"][0, :, 0] += 4.0  # word 0 votes for every output equally more
    loss2, grads2 = at.loss_and_grad(cfg, shifted, x, y)
    assert loss2 == pytest.approx(loss, rel=1e-11, abs=1e-13)
    assert rounding_err(grads2, grads) <= 1e-11


@given(cases(attention="uniform"))
def test_uniform_attention_equals_zero_logits_and_has_no_attention_gradient(case):
    cfg, params, x, y = case
    assert "S" not in params and "A" not in params  # nothing to learn
    both = at.config_from_dict({**cfg.to_dict(), "attention": "both"})
    with_logits = dict(params, S=np.zeros(both.param_shapes()["S"]), A=np.zeros(both.param_shapes()["A"]))
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    loss2, grads2 = at.loss_and_grad(both, with_logits, x, y)
    assert set(grads) == set(params)
    assert loss == pytest.approx(loss2, rel=1e-12, abs=1e-14)
    assert rounding_err(grads, {k: grads2[k] for k in grads}) <= 1e-12
    _, alpha = at.forward(cfg, params, x)
    assert np.all(alpha == 1.0 / cfg.src_len)


@given(cases(factored=False))
def test_every_column_of_the_table_gradient_sums_to_zero(case):
    """Σ_o δ = 0 over the vocabulary, so every column of ∂U does."""
    cfg, params, x, y = case
    _, grads = at.loss_and_grad(cfg, params, x, y)
    assert np.max(np.abs(grads["U"].sum(axis=1))) <= 1e-14


def _symmetric_copy_batch(V, L):
    """Every ordered choice of L of V words: closed under relabelling words and under
    permuting positions."""
    return np.array(list(itertools.permutations(range(V), L)))


def _descend(V, L, steps=60, lr=2.0):
    x = _symmetric_copy_batch(V, L)
    cfg = at.ModelConfig(V, V, L, L)
    params = at.init_params(cfg, 0, scale=0)
    for _ in range(steps):
        _, grads = at.loss_and_grad(cfg, params, x, x)
        params = {k: params[k] - lr * grads[k] for k in params}
    return params


def test_zero_init_stays_symmetric_on_copy():
    """Gradient descent from zero keeps U = u_d·I + u_o·(1 - I), S = s_d·I + s_o·(1 - I)
    and the bias at 0: the symmetry behind the reduced dynamics of docs/design.md §4.3."""
    params = _descend(5, 4)
    U, S = params["U"][0], params["S"][0]
    off_u, off_s = ~np.eye(5, dtype=bool), ~np.eye(4, dtype=bool)
    assert np.ptp(np.diag(U)) <= 1e-12 and np.ptp(U[off_u]) <= 1e-12
    assert np.ptp(np.diag(S)) <= 1e-12 and np.ptp(S[off_s]) <= 1e-12
    assert np.max(np.abs(params["b"])) <= 1e-14
    assert np.diag(U)[0] - U[0, 1] > 1.0 and np.diag(S)[0] - S[0, 1] > 0.1  # and it learns


def test_permutation_copy_origin_is_a_fixed_point():
    """V = L: every output word co-occurs once with every input word; from zero nothing moves."""
    params = _descend(4, 4)
    assert max(float(np.max(np.abs(v))) for v in params.values()) <= 1e-13


def test_attention_with_one_position_is_one_and_gets_no_gradient():
    cfg = at.ModelConfig(5, 4, 1, 3, attention="both", heads=2)
    params = at.init_params(cfg, 1, 1.0)
    x = np.array([[2], [4]])
    y = np.array([[0, 1, 3], [2, 2, 1]])
    _, grads = at.loss_and_grad(cfg, params, x, y)
    _, alpha = at.forward(cfg, params, x)
    assert np.all(alpha == 1.0)
    assert np.max(np.abs(grads["S"])) <= 1e-16 and np.max(np.abs(grads["A"])) <= 1e-16
