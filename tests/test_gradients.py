"""Rung 0's gradients where random configs do not reach (every architecture's gradients
against finite differences and its oracle: ``tests/test_architectures.py``), and the
``attnsim gradcheck`` table.

Tolerances (float64): finite differences use a five-point stencil with h = 1e-4; the
analytic gradient must agree to 1e-6 relative to the largest gradient entry. Kernel and
NumPy oracle must agree to 1e-12 (they compute the same sums in different orders).
"""

import numpy as np
import pytest

import attnsim as at
from attnsim import _reference as R
from attnsim.arch.free import _reference as F

from .strategies import rel_err, rounding_err

FD_RTOL = 1e-6
ORACLE_RTOL = 1e-12


def test_gradcheck_table_passes_for_every_model():
    from attnsim import _gradcheck

    rows = _gradcheck.run(trials=8, seed=3)
    params = {r["param"] for r in rows}
    assert params >= {"U", "W", "E", "S", "A", "b"}  # rung 0's tables and factors
    assert params >= {"P", "R", "WQ", "WK", "WV", "WO"}  # rung 1's
    assert all(r["ok"] for r in rows), _gradcheck.format_table(rows)
    assert max(r["fd_rel"] for r in rows) <= _gradcheck.FD_RTOL
    assert {r["config"].split(" ")[0] for r in rows} == set(at.models())


def test_gradient_that_cancels_to_zero():
    """The case CI's hypothesis run found: with W = 1, E = S = 0 and a constant input the
    gradient on E is an exact cancellation; one summation order gives 0, the other
    -1.1e-16. Both orders must agree to rounding of the terms, and with FD."""
    cfg = at.ModelConfig(
        vocab_in=2, vocab_out=3, src_len=3, tgt_len=2, heads=1, attention="positional", d_model=1, bias=False
    )
    params = {"W": np.ones((1, 3, 1)), "E": np.zeros((1, 1, 2)), "S": np.zeros((1, 2, 3))}
    x, y = np.zeros((1, 3), np.int64), np.zeros((1, 2), np.int64)
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    assert loss == pytest.approx(F.loss(cfg, params, x, y), rel=1e-12)
    fd = R.finite_difference_grad(lambda p: at.loss_and_grad(cfg, p, x, y)[0], params)
    assert rel_err(grads, fd) <= FD_RTOL
    _, ref = F.loss_and_grad(cfg, params, x, y)
    assert rounding_err(grads, ref) <= ORACLE_RTOL
    assert np.max(np.abs(grads["E"])) <= 1e-15
