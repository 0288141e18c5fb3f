"""The engine's kernels against their plain-NumPy oracles (``attnsim._reference.REGISTRY``),
and rung 0's kernels at shapes random small configs do not reach. (Every architecture's
own kernels against its oracle: ``tests/test_architectures.py``.)

Tolerance: 1e-12 relative to the largest entry of a case (the kernels and the oracle
sum the same terms in different orders).
"""

import numpy as np
import pytest

import attnsim as at
from attnsim import _kernels as K
from attnsim import _reference as R
from attnsim.arch import _table_kernels as T
from attnsim.arch.free import _kernels as FK
from attnsim.arch.free import _reference as F
from attnsim.arch.free._kernels import layout

from .strategies import rounding_err

TOL = {"gemm_acc": 1e-12, "gemm_acc_nt": 1e-12, "gemm_acc_tn": 1e-12}


@pytest.mark.parametrize("name", sorted(R.REGISTRY))
def test_kernel_matches_oracle(name):
    worst = 0.0
    for seed in range(40):
        pairs = R.REGISTRY[name](np.random.default_rng(seed))
        if name == "partial_shuffle":  # integer results: identical
            ((got, want),) = pairs
            assert np.array_equal(got, want)
            continue
        if name == "exp_shifted":  # elementwise relative error of the exponential
            ((got, want),) = pairs
            worst = max(worst, float(np.max(np.abs(got - want) / want)))
            continue
        got = {i: np.atleast_1d(np.asarray(g, np.float64)) for i, (g, _) in enumerate(pairs)}
        want = {i: np.atleast_1d(np.asarray(w, np.float64)) for i, (_, w) in enumerate(pairs)}
        both_nan = {i: np.isnan(got[i]) & np.isnan(want[i]) for i in got}
        for i in got:
            assert not np.any(np.isnan(got[i]) != np.isnan(want[i])), f"{name}: NaN pattern differs"
            got[i] = np.where(both_nan[i], 0.0, got[i])
            want[i] = np.where(both_nan[i], 0.0, want[i])
        worst = max(worst, rounding_err(got, want))
    if name == "partial_shuffle":
        return
    if name == "exp_shifted":
        assert worst <= 4e-16  # within 2 ulp of numpy's exp
    else:
        assert worst <= TOL[name]


# Shapes that reach what random small configs do not: the example-major layout (a
# vocabulary of 24 or more), several groups per batch with a partial last group, and
# the word-major layout with several groups.
LARGE = [
    dict(vocab_in=40, vocab_out=40, src_len=30, tgt_len=30, heads=2, attention="positional", B=40),
    dict(vocab_in=10, vocab_out=10, src_len=30, tgt_len=30, heads=1, attention="both", B=70),
    dict(vocab_in=12, vocab_out=10, src_len=30, tgt_len=31, heads=3, attention="uniform", B=61),
    dict(vocab_in=30, vocab_out=26, src_len=9, tgt_len=12, heads=2, attention="content", B=5),
    dict(vocab_in=35, vocab_out=30, src_len=17, tgt_len=13, heads=1, attention="positional", d_model=5, B=45),
]


@pytest.mark.parametrize("spec", LARGE, ids=lambda s: f"V{s['vocab_out']}-L{s['src_len']}-{s['attention']}-B{s['B']}")
def test_large_shapes_match_oracle(spec):
    spec = dict(spec)
    B = spec.pop("B")
    cfg = at.ModelConfig(**spec)
    rng = np.random.default_rng(7)
    params = F.random_params(cfg, rng, scale=0.7)
    x, y, _ = R.random_batch(cfg, rng, B)
    G, word_major = T._plan(layout(cfg), B, False)
    if cfg.has_A:  # attention differs per example: one example per group
        assert G == 1
    else:
        assert word_major == (cfg.vocab_out < T.WORD_MAJOR_BELOW)
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    want_loss, want = F.loss_and_grad(cfg, params, x, y)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert rounding_err(grads, want) <= 1e-12
    z, alpha = at.forward(cfg, params, x)
    z_ref, alpha_ref = F.forward(cfg, params, x)
    assert np.max(np.abs(z - z_ref)) <= 1e-12 * np.max(np.abs(z_ref))
    assert np.max(np.abs(alpha - alpha_ref)) <= 1e-14


def test_large_shapes_cover_both_layouts_and_several_groups():
    plans = []
    for spec in LARGE:
        spec = dict(spec)
        B = spec.pop("B")
        G, wm = T._plan(layout(at.ModelConfig(**spec)), B, False)
        plans.append((B > G, bool(wm)))
    assert (True, True) in plans and (True, False) in plans


def test_exp_handles_the_ends_of_its_range():
    src = np.array([0.0, -1e-300, -708.0, -745.0, -1e6, -np.inf, np.nan])
    out = np.zeros_like(src)
    K.exp_shifted(src, 0.0, out)
    assert out[0] == 1.0 and out[1] == 1.0
    assert out[2] == pytest.approx(np.exp(-708.0), rel=4e-16)
    assert 0 <= out[3] <= 4e-308 and 0 <= out[4] <= 4e-308 and 0 <= out[5] <= 4e-308  # clamped: zero next to 1
    assert np.isnan(out[6])


def test_nonfinite_parameters_give_a_nonfinite_loss():
    """The kernel propagates a NaN to the loss (how the step loop sees a divergence);
    the public functions refuse non-finite parameters before calling it."""
    cfg = at.ModelConfig(5, 5, 4, 4, attention="both")
    params = at.init_params(cfg, 0, 0.5)
    x = np.arange(4)[None] % 5
    names = list(cfg.param_shapes())
    for name in ("U", "S", "A", "b"):
        theta = np.concatenate([params[k].ravel() for k in names])
        theta[sum(params[k].size for k in names[: names.index(name)])] = np.nan  # the group's first entry
        loss = FK.loss_grad(x, x, theta, layout(cfg), np.zeros_like(theta))
        assert not np.isfinite(loss), name
        bad = {k: v.copy() for k, v in params.items()}
        bad[name].flat[0] = np.inf
        with pytest.raises(ValueError, match=rf"params\['{name}'\] holds 1 non-finite value"):
            at.loss_and_grad(cfg, bad, x, x)
