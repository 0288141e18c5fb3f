"""The float32 products with a packed operand (`attnsim._gemm_kernels`): OpenBLAS's kernel
called with OpenBLAS's blocking gives ``np.dot``'s bits, on drawn shapes and layouts and on
whole training runs; where it cannot, the kernels call ``np.dot``."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numba import njit

import attnsim as at
from attnsim import _gemm_kernels as G
from attnsim._blas import blas_core, one_blas_thread, openblas_version

FOUND = G._find()


@njit(cache=False)
def _numba_dot(X, Y, C):
    np.dot(X, Y, C)


@njit(cache=False)
def _packed(X, Y, C):
    M, K = X.shape
    Yp = np.empty(K * Y.shape[1], np.float32)
    G.pack_second(Y, Yp)
    G.gemm_packed(X, Yp, C, np.empty(G.scratch_size(M, K), np.float32))


def _operand(rng, rows, cols, transposed):
    """A float32 operand, C-ordered or as the transposed view of one (as W_hh.T, ∂G.T)."""
    if transposed:
        return rng.standard_normal((cols, rows)).astype(np.float32).T
    return rng.standard_normal((rows, cols)).astype(np.float32)


def test_the_kernel_is_found_and_trusted_here_or_never_used():
    """On this machine's OpenBLAS the path is on and its self-test passes; a wrong block
    size fails it (the test can fail). Without the kernel, no product takes the path."""
    if FOUND is None:
        assert G._params[G.ON] == 0 and not G.packs(128, 256, 1024)
        return
    kernel, (p, q, um, un) = FOUND
    assert G._params[G.ON] == 1 and G.packs(128, 256, 1024)
    assert G._self_test(kernel, (p, q, um, un))
    assert not G._self_test(kernel, (p, q + um, um, un))  # other blocks of the summed dimension: other bits
    assert not G.packs(128, 256, 1000 * um + 1) and not G.packs(4 * un + 1, 256, 1024)  # panels not filled
    assert not G.packs(un, 8, um)  # small products stay with np.dot (OpenBLAS's small-matrix kernels)


@given(
    m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 1400), seed=st.integers(0, 2**32 - 1),
    tx=st.booleans(), ty=st.booleans(),
)  # fmt: skip
def test_packed_products_equal_blas_bit_for_bit(m, n, k, seed, tx, ty):
    """C = X Y through the packed path equals Numba's np.dot (SciPy's BLAS on one thread, as
    in the kernels) and the NumPy-packed reference, every bit, for operands C-ordered or
    transposed views."""
    if FOUND is None:
        assert not G.packs(4 * m, k, 16 * n)
        return
    _, (p, q, um, un) = FOUND
    M, N = un * m, um * n
    assume(M * N * k > G._SMALLEST)
    rng = np.random.default_rng(seed)
    X, Y = _operand(rng, M, k, tx), _operand(rng, k, N, ty)
    assert G.packs(M, k, N)
    blas, packed = np.empty((M, N), np.float32), np.full((M, N), np.nan, np.float32)
    with one_blas_thread():
        _numba_dot(X, Y, blas)
    _packed(X, Y, packed)
    assert np.array_equal(packed, blas)
    assert np.array_equal(G._reference_gemm(FOUND[0], FOUND[1], np.ascontiguousarray(X), np.ascontiguousarray(Y)),
                          blas)  # fmt: skip


@pytest.fixture
def params():
    """`attnsim._gemm_kernels`' parameters, restored after the test."""
    before = list(G._params)
    yield G._params
    G._params[:] = before


def _run(cfg, task, kw):
    return at.train(cfg, task, seed=5, steps=4, log_every=1, **kw)


def _same(a, b) -> bool:
    return np.array_equal(a.history["loss"], b.history["loss"]) and all(
        np.array_equal(a.params[k], b.params[k]) for k in a.params)  # fmt: skip


@pytest.mark.parametrize("kind", ["lstm", "gru2", "clf"])
def test_training_is_bit_for_bit_the_same_with_the_packed_path(kind, params):
    """Whole runs (forward, backward through time, Adam) with the recurrent products packed
    and through np.dot: the same parameters and losses, every bit (d 64, batch 128). That
    the packed path is taken shows in a third run whose blocks are wrong on purpose."""
    if kind == "clf":
        task = at.tasks.keyword(20, 12, keywords=4)
        cfg = at.ClassifierConfig.for_task(task, embed=16, hidden=64, intermediate=16, dtype="float32")
        kw = dict(batch=128, lr=3e-3)
    else:
        task = at.tasks.copy(12, 10)
        cfg = at.RNNConfig.for_task(task, cell=kind.rstrip("2"), heads=2 if kind == "gru2" else 1, hidden=64,
                                    dtype="float32")  # fmt: skip
        kw = dict(batch=128, lr=1e-3, optimizer="adam")
    on = params[G.ON]
    assert on == (FOUND is not None)
    packed = _run(cfg, task, kw)
    params[G.ON] = 0
    assert _same(packed, _run(cfg, task, kw))
    if on:
        params[G.ON], params[G.Q] = 1, 16  # blocks of 16 for the summed dimension: other bits
        assert not _same(packed, _run(cfg, task, kw))


def test_only_a_checked_openblas_and_kernel_are_trusted(monkeypatch):
    """The block sizes come from OpenBLAS's internal table, so `_find` trusts only the release
    and kernel it was checked on; another release or kernel name gives np.dot (None). Where
    they are the checked ones, the path is found: it cannot turn itself off unnoticed."""
    checked = openblas_version() in G.CHECKED_OPENBLAS and blas_core().upper() in G.CHECKED_CORES
    assert (FOUND is not None) == checked
    monkeypatch.setattr(G, "CHECKED_OPENBLAS", ("0.0.0",))
    assert G._find() is None
    monkeypatch.setattr(G, "CHECKED_OPENBLAS", (openblas_version(),))
    monkeypatch.setattr(G, "CHECKED_CORES", ("NOSUCHCORE",))
    assert G._find() is None


def test_the_packed_product_refuses_what_it_cannot_compute():
    """The kernel reads raw addresses, so `gemm_packed` and `pack_second` check every operand:
    a short, strided, reversed, 2-D or non-float32 buffer, a C that is not C-ordered or has
    other rows, columns that do not fill the panels: each raises instead of reading or
    writing past memory or giving garbage. The right operands give the right product."""
    if FOUND is None:
        return
    _, (p, q, um, un) = FOUND
    M, K, N = 8 * un, 300, 64 * um
    X, Y = np.ones((M, K), np.float32), np.ones((K, N), np.float32)
    Yp, C = np.empty(K * N, np.float32), np.empty((M, N), np.float32)
    S = G.scratch_size(M, K)
    G.pack_second(Y, Yp)
    G.gemm_packed(X, Yp, C, np.empty(S, np.float32))
    assert np.all(C == K)
    bad_buffers = [np.empty(S - 1, np.float32), np.empty(2 * S, np.float32)[::2], np.empty(S, np.float32)[::-1],
                   np.empty((S, 2), np.float32), np.empty(S, np.float64), np.empty(S, np.int32)]  # fmt: skip
    for scratch in bad_buffers:
        with pytest.raises(ValueError, match="Yp and scratch must be 1-D"):
            G.gemm_packed(X, Yp, C, scratch)
    with pytest.raises(ValueError, match="Yp and scratch must be 1-D"):
        G.gemm_packed(X, Yp[: K * N - 1], C, np.empty(S, np.float32))
    for bad_c in [np.empty((N, M), np.float32).T, np.empty((M, N + um), np.float32)[:, :N],
                  np.empty((M, N), np.int32), np.empty((M + un, N), np.float32)]:  # fmt: skip
        with pytest.raises(ValueError, match="C must be a C-ordered float32"):
            G.gemm_packed(X, Yp, bad_c, np.empty(S, np.float32))
    with pytest.raises(ValueError, match="does not take"):
        G.gemm_packed(X.astype(np.float64), Yp, C, np.empty(S, np.float32))
    with pytest.raises(ValueError, match="panels"):
        G.pack_second(np.ones((K, N + 1), np.float32), np.empty(K * (N + 1), np.float32))
    for out in [np.empty(K * N - 1, np.float32), np.empty((K, N), np.float32), np.empty(K * N, np.float64)]:
        with pytest.raises(ValueError, match="out must be a 1-D"):
            G.pack_second(Y, out)
    assert np.all(C == K)  # nothing above wrote into C
