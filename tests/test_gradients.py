"""Every hand-derived gradient against finite differences and against the oracle.

Tolerances (float64): finite differences use a five-point stencil with h = 1e-4
(truncation ~h^4, rounding ~1e-16/h); the analytic gradient must agree to 1e-6 relative
to the largest gradient entry. Kernel and NumPy oracle must agree to 1e-12 (they
compute the same sums in different orders).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import attnsim as at
from attnsim import _reference as R

from .strategies import cases, rel_err, rounding_err

FD_RTOL = 1e-6
ORACLE_RTOL = 1e-12


def _fd(cfg, params, x, y):
    return R.finite_difference_grad(lambda p: at.loss_and_grad(cfg, p, x, y)[0], params)


def _check(case):
    cfg, params, x, y = case
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    # keys, shapes, dtypes
    assert list(grads) == list(cfg.param_shapes())
    for k, shape in cfg.param_shapes().items():
        assert grads[k].shape == shape and grads[k].dtype == np.float64
    # the loss returned with the gradient is the forward-only loss
    assert loss == pytest.approx(R.loss(cfg, params, x, y), rel=1e-12, abs=1e-14)
    fd = _fd(cfg, params, x, y)
    assert rel_err(grads, fd) <= FD_RTOL
    _, ref = R.loss_and_grad(cfg, params, x, y)
    assert rounding_err(grads, ref) <= ORACLE_RTOL


@pytest.mark.parametrize("attention", ["positional", "content", "both", "uniform"])
@given(data=st.data())
def test_table(attention, data):
    """One property per attention mode, each with its own example budget."""
    _check(data.draw(cases(attention=attention, factored=False)))


@given(cases(factored=True))
def test_factored_any_attention(case):
    _check(case)


@given(cases(max_batch=3))
def test_weight_decay_gradient(case):
    cfg, params, x, y = case
    wd = 0.37
    loss, grads = at.loss_and_grad(cfg, params, x, y, weight_decay=wd)
    fd = R.finite_difference_grad(lambda p: at.loss_and_grad(cfg, p, x, y, weight_decay=wd)[0], params)
    assert rel_err(grads, fd) <= FD_RTOL
    want_loss, want = R.loss_and_grad(cfg, params, x, y, weight_decay=wd)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert rounding_err(grads, want) <= ORACLE_RTOL


def test_gradcheck_table_passes():
    from attnsim import _gradcheck

    rows = _gradcheck.run(trials=8, seed=3)
    assert {r["param"] for r in rows} >= {"U", "W", "E", "S", "A", "b"}
    assert all(r["ok"] for r in rows), _gradcheck.format_table(rows)
    assert max(r["fd_rel"] for r in rows) <= _gradcheck.FD_RTOL


def test_gradient_that_cancels_to_zero():
    """The case CI's hypothesis run found: with W = 1, E = S = 0 and a constant input the
    gradient on E is an exact cancellation; one summation order gives 0, the other
    -1.1e-16. Both orders must agree to rounding of the terms, and with FD."""
    cfg = at.ModelConfig(
        vocab_in=2, vocab_out=3, src_len=3, tgt_len=2, heads=1, attention="positional", d_model=1, bias=False
    )
    params = {"W": np.ones((1, 3, 1)), "E": np.zeros((1, 1, 2)), "S": np.zeros((1, 2, 3))}
    x, y = np.zeros((1, 3), np.int64), np.zeros((1, 2), np.int64)
    _check((cfg, params, x, y))
    _, grads = at.loss_and_grad(cfg, params, x, y)
    assert np.max(np.abs(grads["E"])) <= 1e-15
