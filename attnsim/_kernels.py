"""Numba kernels: the forward and hand-derived backward of docs/design.md §1.1–1.2, and the step loop.

Every compiled function of attnsim lives in this file (Numba's cache does not notice a
changed callee in another file). Kernels take arrays and scalars only, write into
outputs passed by the caller, and never validate: the public layer (`_model.py`,
`_train.py`) checks and casts first. The plain-NumPy oracle of every public kernel is
in `_reference.py`, and `_reference.REGISTRY` pairs them for the tests.

Conventions
-----------
* ``theta`` is the flat parameter vector; ``lay`` (int64) holds sizes, flags and
  offsets (positions ``LAY_*`` of `_config`). Absent groups have offset -1.
* Examples are processed in groups (`_plan`). Inside a group, per-example arrays are
  matrices with one row per target step or source position and one column per
  (example j, word o) pair, ``c = o*nG + j`` ("word-major", when the vocabulary is
  small: loops over words are short, loops over examples are long) or
  ``c = j*Vout + o`` ("example-major", otherwise). Either way the three products of
  the model are long-row matrix products, and the softmax over words is vectorized
  along whichever index is contiguous.
* Hot loops index arrays directly (``X[h, t, l]``) and never take a view (``X[h]``)
  inside a loop over examples or rows; Numba reference-counts views. Calls between
  compiled functions are real calls (not inlined), so per-row helpers are avoided.
* Arithmetic is in the dtype of ``theta`` (float64 or float32); loss, metrics and the
  exponentials are accumulated in float64.
* ``fastmath={"contract"}``: multiply-adds may fuse into FMA instructions (twice the
  throughput) and nothing is reassociated, so every sum runs in the order written,
  except in ``_gemm_acc_nt`` (dot products, vectorized with ``reassoc``). The order of
  every operation is fixed when a kernel compiles: a rerun gives the same bits.
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit, prange

from ._config import (
    LAY_D,
    LAY_H,
    LAY_HAS_A,
    LAY_HAS_B,
    LAY_HAS_S,
    LAY_L,
    LAY_OFF_A,
    LAY_OFF_B,
    LAY_OFF_E,
    LAY_OFF_S,
    LAY_OFF_U,
    LAY_OFF_W,
    LAY_T,
    LAY_VIN,
    LAY_VOUT,
)

CACHE = os.environ.get("ATTNSIM_NUMBA_CACHE", "1") != "0"
FASTMATH = {"contract"}
FASTMATH_REDUCE = {"contract", "reassoc"}  # `_gemm_acc_nt` only

# A run diverges when its logged cross-entropy exceeds this many times its value at the
# first logged step (at least 1 nat), or becomes non-finite (see `_train_steps`).
DIVERGE_FACTOR = 100.0

# Optimizer codes understood by train_runs.
OPT_SGD = 0  # plain gradient step (used for both "gd" and "sgd")
OPT_ADAM = 1

# Columns of a metrics row written by `_core` (then per head: attention accuracy,
# gold mass).
MET_LOSS, MET_ACC, MET_KTIW, MET_HEADS = 0, 1, 2, 3

# Grouping (see `_plan`).
GROUP_ELEMS = 16384  # about this many (word, position) entries per group
WORD_MAJOR_BELOW = 24  # vocabularies smaller than this use the word-major layout

# exp(x) = 2**k * exp(r), x = k*ln2 + r, |r| <= ln2/2 (Cody & Waite range reduction).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_EXP_MIN = -708.0  # exp(-708) is still a normal double
_EXP_C12 = 1.0 / 479001600.0  # 1/12!
_EXP_COEFS = (
    1.0 / 39916800.0,
    1.0 / 3628800.0,
    1.0 / 362880.0,
    1.0 / 40320.0,
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
)


def n_metrics(heads: int) -> int:
    """Length of one metrics row for a model with ``heads`` heads."""
    return MET_HEADS + 2 * heads


# =============================================================================
# elementwise helpers
# =============================================================================
# Inner loops index with unsigned integers (``_u(o) * uG + j``). A signed index that
# the compiler cannot prove non-negative gets Numba's negative-index wraparound, a
# select per element, and LLVM then turns the vector loads and stores of the loop
# into gathers and scatters (four times slower on these loops).
_u = np.uint64


@njit(fastmath=FASTMATH, cache=CACHE)
def _exp_inplace(e, k, k_bits, n):
    """``e[i] = exp(e[i])`` for ``i < n``, for ``e <= 0`` (softmax arguments).

    ``k_bits`` is an int64 view of the scratch ``k``. A vectorizable exp: Cody-Waite
    reduction ``x = k ln2 + r``, ``|r| <= 0.347``, a degree-12 Taylor polynomial in r
    (truncation below 2e-16), times ``2**k`` built from its bits. Arguments below -708
    are clamped (the result, ~3e-308, is zero next to the row maximum, which is 1);
    NaN propagates. Three loops, each of one kind of arithmetic, so each vectorizes.
    """
    for i in range(n):
        x = e[i]
        if x < _EXP_MIN:
            x = _EXP_MIN
        t = x * _INV_LN2 + _ROUND
        kf = t - _ROUND
        r = (x - kf * _LN2_HI) - kf * _LN2_LO
        p = _EXP_C12
        for c in _EXP_COEFS:  # Horner, unrolled by LLVM
            p = p * r + c
        e[i] = p
        k[i] = t
    for i in range(n):  # the low 32 bits of t hold k (two's complement): make 2**k
        k_bits[i] = (((k_bits[i] << 32) >> 32) + 1023) << 52
    for i in range(n):
        e[i] *= k[i]


@njit(fastmath=FASTMATH, cache=CACHE)
def _softmax_rows(e, k, k_bits, R, n):
    """Softmax in place of each of the ``R`` rows ``e[r*n : (r+1)*n]`` (short rows:
    attention, KTIW probe), with one call of the exponential for all of them."""
    un = _u(n)
    for r in range(R):
        er = _u(r) * un
        m = e[er]
        for i in range(1, n):
            m = e[er + _u(i)] if e[er + _u(i)] > m else m
        for i in range(un):
            e[er + i] = e[er + i] - m
    _exp_inplace(e, k, k_bits, R * n)
    for r in range(R):
        er = _u(r) * un
        s = 0.0
        for i in range(un):
            s += e[er + i]
        for i in range(un):
            e[er + i] = e[er + i] / s


# =============================================================================
# small dense products on (slab, row, column) arrays
# =============================================================================
@njit(fastmath=FASTMATH, cache=CACHE)
def _gemm_acc(A, ia, B, ib, C, ic, M, K, N):
    """``C[ic, :M, :N] += A[ia, :M, :K] @ B[ib, :K, :N]`` (C-contiguous 3-D arrays).

    Register-blocked 4 rows × 4 terms, inner loop over columns vectorized. Every entry
    ``C[ic, m, n]`` receives its terms in order k = 0, 1, ..., K-1, exactly as the
    plain triple loop, so the result does not depend on the blocking. (The
    micro-kernel is written out: Numba does not inline calls between compiled
    functions.)
    """
    M4 = M - M % 4
    K4 = K - K % 4
    for m in range(0, M4, 4):
        for k in range(0, K4, 4):
            a00, a01, a02, a03 = A[ia, m, k], A[ia, m, k + 1], A[ia, m, k + 2], A[ia, m, k + 3]
            a10, a11, a12, a13 = A[ia, m + 1, k], A[ia, m + 1, k + 1], A[ia, m + 1, k + 2], A[ia, m + 1, k + 3]
            a20, a21, a22, a23 = A[ia, m + 2, k], A[ia, m + 2, k + 1], A[ia, m + 2, k + 2], A[ia, m + 2, k + 3]
            a30, a31, a32, a33 = A[ia, m + 3, k], A[ia, m + 3, k + 1], A[ia, m + 3, k + 2], A[ia, m + 3, k + 3]
            for n in range(N):
                v0 = B[ib, k, n]
                v1 = B[ib, k + 1, n]
                v2 = B[ib, k + 2, n]
                v3 = B[ib, k + 3, n]
                C[ic, m, n] = C[ic, m, n] + a00 * v0 + a01 * v1 + a02 * v2 + a03 * v3
                C[ic, m + 1, n] = C[ic, m + 1, n] + a10 * v0 + a11 * v1 + a12 * v2 + a13 * v3
                C[ic, m + 2, n] = C[ic, m + 2, n] + a20 * v0 + a21 * v1 + a22 * v2 + a23 * v3
                C[ic, m + 3, n] = C[ic, m + 3, n] + a30 * v0 + a31 * v1 + a32 * v2 + a33 * v3
        for k in range(K4, K):
            a0, a1, a2, a3 = A[ia, m, k], A[ia, m + 1, k], A[ia, m + 2, k], A[ia, m + 3, k]
            for n in range(N):
                v = B[ib, k, n]
                C[ic, m, n] = C[ic, m, n] + a0 * v
                C[ic, m + 1, n] = C[ic, m + 1, n] + a1 * v
                C[ic, m + 2, n] = C[ic, m + 2, n] + a2 * v
                C[ic, m + 3, n] = C[ic, m + 3, n] + a3 * v
    for m in range(M4, M):
        for k in range(0, K4, 4):
            a0, a1, a2, a3 = A[ia, m, k], A[ia, m, k + 1], A[ia, m, k + 2], A[ia, m, k + 3]
            for n in range(N):
                C[ic, m, n] = (
                    C[ic, m, n] + a0 * B[ib, k, n] + a1 * B[ib, k + 1, n] + a2 * B[ib, k + 2, n] + a3 * B[ib, k + 3, n]
                )
        for k in range(K4, K):
            a = A[ia, m, k]
            for n in range(N):
                C[ic, m, n] = C[ic, m, n] + a * B[ib, k, n]


@njit(fastmath=FASTMATH_REDUCE, cache=CACHE)
def _gemm_acc_nt(A, ia, B, ib, C, ic, M, K, N):
    """``C[ic, :M, :N] += A[ia, :M, :K] @ B[ib, :N, :K].T``: dot products along rows.

    4×4 blocks of dot products; the edges one dot product at a time. The one kernel
    compiled with ``reassoc``: LLVM splits each dot product into vector lanes. The
    split is fixed when the kernel compiles, so reruns give the same bits; the sum
    differs from the sequential one by rounding only.
    """
    M4 = M - M % 4
    N4 = N - N % 4
    for m in range(0, M4, 4):
        for n in range(0, N4, 4):
            c00 = c01 = c02 = c03 = 0.0
            c10 = c11 = c12 = c13 = 0.0
            c20 = c21 = c22 = c23 = 0.0
            c30 = c31 = c32 = c33 = 0.0
            for k in range(K):
                a0 = A[ia, m, k]
                a1 = A[ia, m + 1, k]
                a2 = A[ia, m + 2, k]
                a3 = A[ia, m + 3, k]
                b0 = B[ib, n, k]
                b1 = B[ib, n + 1, k]
                b2 = B[ib, n + 2, k]
                b3 = B[ib, n + 3, k]
                c00 += a0 * b0
                c01 += a0 * b1
                c02 += a0 * b2
                c03 += a0 * b3
                c10 += a1 * b0
                c11 += a1 * b1
                c12 += a1 * b2
                c13 += a1 * b3
                c20 += a2 * b0
                c21 += a2 * b1
                c22 += a2 * b2
                c23 += a2 * b3
                c30 += a3 * b0
                c31 += a3 * b1
                c32 += a3 * b2
                c33 += a3 * b3
            C[ic, m, n] += c00
            C[ic, m, n + 1] += c01
            C[ic, m, n + 2] += c02
            C[ic, m, n + 3] += c03
            C[ic, m + 1, n] += c10
            C[ic, m + 1, n + 1] += c11
            C[ic, m + 1, n + 2] += c12
            C[ic, m + 1, n + 3] += c13
            C[ic, m + 2, n] += c20
            C[ic, m + 2, n + 1] += c21
            C[ic, m + 2, n + 2] += c22
            C[ic, m + 2, n + 3] += c23
            C[ic, m + 3, n] += c30
            C[ic, m + 3, n + 1] += c31
            C[ic, m + 3, n + 2] += c32
            C[ic, m + 3, n + 3] += c33
    for m in range(M):
        n_lo = N4 if m < M4 else 0  # the edges: last columns of blocked rows, all of the rest
        for n in range(n_lo, N):
            p = 0.0
            for k in range(K):
                p += A[ia, m, k] * B[ib, n, k]
            C[ic, m, n] += p


@njit(fastmath=FASTMATH, cache=CACHE)
def _transpose(src, i, dst, j):
    """``dst[j] = src[i].T``."""
    for r in range(src.shape[1]):
        for c in range(src.shape[2]):
            dst[j, c, r] = src[i, r, c]


# =============================================================================
# parameters, grouping and workspace
# =============================================================================
@njit(cache=CACHE)
def _view3(theta, off, a, b, c):
    """``theta[off:off+a*b*c]`` as an (a, b, c) array; a 1×1×1 dummy if absent."""
    if off < 0:
        return np.zeros((1, 1, 1), theta.dtype)
    return theta[off : off + a * b * c].reshape((a, b, c))


@njit(cache=CACHE)
def _view1(theta, off, n):
    if off < 0:
        return np.zeros(1, theta.dtype)
    return theta[off : off + n]


@njit(cache=CACHE)
def _plan(lay, B):
    """(examples per group G, word-major layout?) for batches of B examples.

    Content attention differs per example, so its groups hold one example. Otherwise
    a group holds about GROUP_ELEMS (word, position) entries, so that its arrays stay
    in the L2 cache.
    """
    if lay[LAY_HAS_A] == 1:
        return 1, False
    per = lay[LAY_VOUT] * max(lay[LAY_L], lay[LAY_T])
    G = max(1, min(B, GROUP_ELEMS // per))
    return G, lay[LAY_VOUT] < WORD_MAJOR_BELOW


@njit(cache=CACHE)
def _alloc_ws(lay, theta, B):
    """Workspace of `_core` for batches of B examples, allocated once outside any step loop."""
    H, Vin, Vout, L, T, d = lay[LAY_H], lay[LAY_VIN], lay[LAY_VOUT], lay[LAY_L], lay[LAY_T], lay[LAY_D]
    dt = theta.dtype
    G, _ = _plan(lay, B)
    GV = G * Vout
    n = max(GV * T, T * L, Vin, Vout)
    dd = max(d, 1)
    e = np.zeros(n, np.float64)
    k = np.zeros(n, np.float64)
    return (
        np.zeros((H, Vout, Vin), dt),  # 0 Ubuf: U = W @ E when factored
        np.zeros((H, Vin, Vout), dt),  # 1 Ut[h, i, :] = U[h, :, i]
        np.zeros((H, Vin, Vout), dt),  # 2 dUt[h, i, :] = dU[h, :, i]
        np.zeros((H, T, L), dt),  # 3 alpha
        np.zeros((H, T, L), dt),  # 4 alphaS = alpha / H
        np.zeros((H, L, T), dt),  # 5 alphaST = alphaS.T
        np.zeros((H, L, GV), dt),  # 6 UX[h, l, c(j, o)] = U[h, o, x[b0+j, l]]
        np.zeros((1, T, GV), dt),  # 7 z[0, t, c(j, o)]: logits
        np.zeros((1, T, GV), dt),  # 8 delta, same layout
        np.zeros((1, L, GV), dt),  # 9 dUX[0, l, c(j, o)]: what x[b0+j, l] receives
        np.zeros((1, T, L), dt),  # 10 g (content attention: one example)
        np.zeros((H, T, L), dt),  # 11 Gbar = sum_b g (attention shared by the batch)
        np.zeros(GV, dt),  # 12 dbv: delta summed over t
        e,  # 13 scratch for exponentials, e[t*GV + c]
        k,  # 14 exponent scratch
        k.view(np.int64),  # 15
        np.zeros(G * T, np.float64),  # 16 colmax[t*nG + j]
        np.zeros(G * T, np.float64),  # 17 colsum[t*nG + j]
        np.zeros((L, G), np.int64),  # 18 xg[l, j] = x[b0+j, l]
        np.zeros((Vout, Vin), np.float64),  # 19 Pk: KTIW probabilities
        np.zeros((1, Vin, dd), dt),  # 20 ET
        np.zeros((1, dd, Vout), dt),  # 21 WT
        np.zeros((1, Vout, Vin), dt),  # 22 dU of one head (factored)
        np.zeros(max(2 * H, 1), np.float64),  # 23 per-head metric sums
    )


def workspace_bytes(lay, B: int, itemsize: int) -> int:
    """Bytes `_alloc_ws` allocates for batches of B examples (plain Python, exact
    integers: sizes are checked before anything is allocated). Mirrors `_alloc_ws`;
    `tests/test_memory.py` holds the two together."""
    H, Vin, Vout, L, T, d = (int(lay[i]) for i in (LAY_H, LAY_VIN, LAY_VOUT, LAY_L, LAY_T, LAY_D))
    plan = getattr(_plan, "py_func", _plan)
    G, _ = plan(lay, B)
    G = int(G)
    GV = G * Vout
    n = max(GV * T, T * L, Vin, Vout)
    dd = max(d, 1)
    in_dtype = 3 * H * Vout * Vin + 4 * H * T * L + H * L * GV + 2 * T * GV + L * GV + T * L + GV
    in_dtype += Vin * dd + dd * Vout + Vout * Vin
    in_8 = 2 * n + 2 * G * T + L * G + Vout * Vin + max(2 * H, 1)
    return in_dtype * itemsize + 8 * in_8


@njit(fastmath=FASTMATH, cache=CACHE)
def _prepare_table(theta, lay, Ubuf, Ut):
    """Return ``U`` (H, Vout, Vin) — a view of ``theta``, or ``W @ E`` in ``Ubuf`` —
    and fill ``Ut`` with its transpose per head."""
    H, Vin, Vout, d = lay[LAY_H], lay[LAY_VIN], lay[LAY_VOUT], lay[LAY_D]
    if d == 0:
        U = _view3(theta, lay[LAY_OFF_U], H, Vout, Vin)
    else:
        W = _view3(theta, lay[LAY_OFF_W], H, Vout, d)
        E = _view3(theta, lay[LAY_OFF_E], H, d, Vin)
        Ubuf[:] = 0.0
        for h in range(H):
            _gemm_acc(W, h, E, h, Ubuf, h, Vout, d, Vin)  # U[h] = W[h] @ E[h]
        U = Ubuf
    for h in range(H):
        _transpose(U, h, Ut, h)
    return U


# =============================================================================
# forward pieces
# =============================================================================
@njit(fastmath=FASTMATH, cache=CACHE)
def _attention(S, A, x, b, lay, alpha, alphaS, alphaST, e, k, k_bits):
    """Attention of every head for example ``b`` (for all, when it has no content part).

    s[h,t,l] = S[h,t,l] + A[h,t,x_l];  alpha = softmax_l(s)  (uniform when neither)
    alphaS = alpha / H and its transpose alphaST feed the products. The T rows of a
    head share one call of the exponential.
    """
    H, L, T = lay[LAY_H], lay[LAY_L], lay[LAY_T]
    has_S = lay[LAY_HAS_S] == 1
    has_A = lay[LAY_HAS_A] == 1
    invH = 1.0 / H
    uL = _u(L)
    for h in range(H):
        if has_S or has_A:
            for t in range(T):
                et = _u(t) * uL
                for l in range(L):  # noqa: E741
                    v = 0.0
                    if has_S:
                        v = np.float64(S[h, t, l])
                    if has_A:
                        v = v + A[h, t, x[b, l]]
                    e[et + _u(l)] = v
            _softmax_rows(e, k, k_bits, T, L)
            for t in range(T):
                et = _u(t) * uL
                for l in range(L):  # noqa: E741
                    alpha[h, t, l] = e[et + _u(l)]
        else:
            for t in range(T):
                for l in range(L):  # noqa: E741
                    alpha[h, t, l] = 1.0 / L
        for t in range(T):
            for l in range(L):  # noqa: E741
                a = alpha[h, t, l] * invH
                alphaS[h, t, l] = a
                alphaST[h, l, t] = a


@njit(fastmath=FASTMATH, cache=CACHE)
def _group_logits(x, b0, nG, wm, U, Ut, bias, lay, alphaS, UX, z, xg):
    """Logits of examples b0..b0+nG-1 (docs/design.md §1.1):

        z[0, t, c(j, o)] = b[o] + (1/H) sum_h sum_l alpha[h,t,l] U[h,o,x[b0+j,l]]

    ``UX[h]`` (the gathered columns of U) is kept for the backward pass.
    """
    H, L, T, Vout = lay[LAY_H], lay[LAY_L], lay[LAY_T], lay[LAY_VOUT]
    GV = nG * Vout
    uG, uV = _u(nG), _u(Vout)
    for l in range(L):  # noqa: E741
        for j in range(nG):
            xg[l, j] = x[b0 + j, l]
    has_b = lay[LAY_HAS_B] == 1
    for t in range(T):  # start from the bias
        for o in range(Vout):
            bo = bias[o] if has_b else 0.0
            if wm:
                zo = _u(o) * uG
                for j in range(uG):
                    z[0, t, zo + j] = bo
            else:
                for j in range(uG):
                    z[0, t, j * uV + _u(o)] = bo
    for h in range(H):
        for l in range(L):  # noqa: E741
            if wm:  # UX[h, l, o*nG + j] = U[h, o, x_jl]
                for o in range(Vout):
                    zo = _u(o) * uG
                    for j in range(uG):
                        UX[h, l, zo + j] = U[h, o, xg[l, j]]
            else:  # UX[h, l, j*Vout + o] = Ut[h, x_jl, o]: row copies
                for j in range(nG):
                    i = xg[l, j]
                    zj = _u(j) * uV
                    for o in range(uV):
                        UX[h, l, zj + o] = Ut[h, i, o]
        _gemm_acc(alphaS, h, UX, h, z, 0, T, L, GV)


@njit(fastmath=FASTMATH, cache=CACHE)
def _group_softmax(z, nG, wm, Vout, T, e, k, k_bits, colmax, colsum):
    """For every (t, j): ``colmax`` = max over words of the logits, ``e`` = exp(z - max),
    ``colsum`` = sum over words of ``e``. Word-major groups run the reductions down
    columns, vectorized across examples; example-major groups along rows."""
    uG, uV = _u(nG), _u(Vout)
    uGV = uG * uV
    V4 = Vout - Vout % 4
    for t in range(T):
        ct = _u(t) * uG
        et = _u(t) * uGV
        if wm:
            for j in range(uG):
                colmax[ct + j] = z[0, t, j]
            for o in range(1, Vout):
                zo = _u(o) * uG
                for j in range(uG):
                    v = z[0, t, zo + j]
                    m = colmax[ct + j]
                    colmax[ct + j] = v if v > m else m
            for o in range(Vout):
                zo = _u(o) * uG
                for j in range(uG):
                    e[et + zo + j] = z[0, t, zo + j] - colmax[ct + j]
        else:
            for j in range(uG):
                base = j * uV
                m0 = m1 = m2 = m3 = z[0, t, base]  # four lanes (a max does not round)
                for o in range(0, V4, 4):
                    c = base + _u(o)
                    m0 = z[0, t, c] if z[0, t, c] > m0 else m0
                    m1 = z[0, t, c + _u(1)] if z[0, t, c + _u(1)] > m1 else m1
                    m2 = z[0, t, c + _u(2)] if z[0, t, c + _u(2)] > m2 else m2
                    m3 = z[0, t, c + _u(3)] if z[0, t, c + _u(3)] > m3 else m3
                for o in range(V4, Vout):
                    c = base + _u(o)
                    m0 = z[0, t, c] if z[0, t, c] > m0 else m0
                m = m0 if m0 > m1 else m1
                m = m2 if m2 > m else m
                m = m3 if m3 > m else m
                colmax[ct + j] = m
                for o in range(uV):
                    e[et + base + o] = z[0, t, base + o] - m
    _exp_inplace(e, k, k_bits, T * nG * Vout)
    for t in range(T):
        ct = _u(t) * uG
        et = _u(t) * uGV
        if wm:
            for j in range(uG):
                colsum[ct + j] = e[et + j]
            for o in range(1, Vout):
                eo = et + _u(o) * uG
                for j in range(uG):
                    colsum[ct + j] += e[eo + j]
        else:
            for j in range(uG):
                base = et + j * uV
                s0 = s1 = s2 = s3 = 0.0  # four partial sums, combined in a fixed order
                for o in range(0, V4, 4):
                    c = base + _u(o)
                    s0 += e[c]
                    s1 += e[c + _u(1)]
                    s2 += e[c + _u(2)]
                    s3 += e[c + _u(3)]
                s = (s0 + s1) + (s2 + s3)
                for o in range(V4, Vout):
                    s += e[base + _u(o)]
                colsum[ct + j] = s


@njit(fastmath=FASTMATH, cache=CACHE)
def _group_loss(z, y, b0, nG, wm, Vout, T, colmax, colsum, want_loss, count_correct):
    """Sum over the group of the cross-entropy (or of a finiteness check when not
    ``want_loss``), and the number of (j, t) whose target is the first argmax."""
    total = 0.0
    correct = 0
    for t in range(T):
        for j in range(nG):
            yt = y[b0 + j, t]
            c = yt * nG + j if wm else j * Vout + yt
            zy = np.float64(z[0, t, c])
            m = colmax[t * nG + j]
            if want_loss:
                total += np.log(colsum[t * nG + j]) + m - zy
            else:
                total += colsum[t * nG + j] + m - zy
            if count_correct and zy >= m:
                first = True  # is y the first index of the maximum (as np.argmax)?
                for o in range(yt):
                    if z[0, t, o * nG + j if wm else j * Vout + o] >= zy:
                        first = False
                if first:
                    correct += 1
    return total, correct


@njit(fastmath=FASTMATH, cache=CACHE)
def _group_delta(e, colsum, y, b0, nG, wm, Vout, T, scale, delta, dbv):
    """delta = (softmax(z) - onehot(y)) / (B T) for the group, and ``dbv`` = delta
    summed over t (the bias gradient before summing over examples)."""
    uG, uV = _u(nG), _u(Vout)
    uGV = uG * uV
    for r in range(nG * T):
        colsum[r] = scale / colsum[r]
    for c in range(uGV):
        dbv[c] = 0.0
    for t in range(T):
        ct = _u(t) * uG
        et = _u(t) * uGV
        if wm:
            for o in range(Vout):
                zo = _u(o) * uG
                for j in range(uG):
                    delta[0, t, zo + j] = e[et + zo + j] * colsum[ct + j]
            for j in range(nG):
                delta[0, t, y[b0 + j, t] * nG + j] -= scale
        else:
            for j in range(uG):
                f = colsum[ct + j]
                zj = j * uV
                for o in range(uV):
                    delta[0, t, zj + o] = e[et + zj + o] * f
            for j in range(nG):
                delta[0, t, j * Vout + y[b0 + j, t]] -= scale
        for c in range(uGV):
            dbv[c] += delta[0, t, c]


@njit(fastmath=FASTMATH, cache=CACHE)
def _add_bias_grad(dbv, nG, wm, Vout, gb):
    """gb[o] += sum over the group's examples of dbv."""
    uG, uV = _u(nG), _u(Vout)
    if wm:
        for o in range(Vout):
            acc = 0.0
            zo = _u(o) * uG
            for j in range(uG):
                acc += dbv[zo + j]
            gb[o] += acc
    else:
        for j in range(uG):
            zj = j * uV
            for o in range(uV):
                gb[o] += dbv[zj + o]


@njit(fastmath=FASTMATH, cache=CACHE)
def _scatter_rows(dUX, xg, nG, wm, Vout, L, dUt, h):
    """dUt[h, x_jl, :] += what position l of example j receives (from dUX)."""
    uG, uV = _u(nG), _u(Vout)
    for l in range(L):  # noqa: E741
        for j in range(nG):
            i = xg[l, j]
            if wm:
                for o in range(uV):
                    dUt[h, i, o] += dUX[0, l, o * uG + _u(j)]
            else:
                zj = _u(j) * uV
                for o in range(uV):
                    dUt[h, i, o] += dUX[0, l, zj + o]


@njit(fastmath=FASTMATH, cache=CACHE)
def _ktiw_table(U, bias, lay, Pk, e, k, k_bits):
    """Pk[:, i] = softmax(b + mean_h U[h, :, i]): the output distribution when every
    head attends to one position holding word i (the KTIW probe, docs/design.md §3.4)."""
    H, Vin, Vout = lay[LAY_H], lay[LAY_VIN], lay[LAY_VOUT]
    has_b = lay[LAY_HAS_B] == 1
    for i in range(Vin):
        for o in range(Vout):
            v = 0.0
            for h in range(H):
                v += U[h, o, i]
            v = v / H
            if has_b:
                v += bias[o]
            e[o] = v
        _softmax_rows(e, k, k_bits, 1, Vout)
        for o in range(Vout):
            Pk[o, i] = e[o]


# =============================================================================
# the model: one pass over a batch
# =============================================================================
@njit(fastmath=FASTMATH, cache=CACHE)
def _core(x, y, gold, theta, lay, grad, ws, want_grad, want_metrics, metrics, want_loss):
    """Loss of one batch; its gradient into ``grad`` (flat, same layout as ``theta``).

    Returns the mean cross-entropy (docs/design.md §1.1, no weight decay) when ``want_loss``;
    otherwise 0.0 if it is finite and NaN if not (the logarithms are skipped: a column
    sum of exponentials is >= 1, so the loss is finite exactly when the shifted logits
    are). When
    ``want_metrics``, fills ``metrics`` (see ``MET_*``): token accuracy, KTIW accuracy,
    and per head attention accuracy and mean attention on the gold position, over the
    (b, t) with ``gold >= 0`` (NaN when there are none).
    """
    (
        Ubuf,
        Ut,
        dUt,
        alpha,
        alphaS,
        alphaST,
        UX,
        z,
        delta,
        dUX,
        g,
        Gbar,
        dbv,
        e,
        k,
        k_bits,
        colmax,
        colsum,
        xg,
        Pk,
        ET,
        WT,
        dU,
        hsum,
    ) = ws
    H, Vin, Vout, L, T, d = lay[LAY_H], lay[LAY_VIN], lay[LAY_VOUT], lay[LAY_L], lay[LAY_T], lay[LAY_D]
    has_S = lay[LAY_HAS_S] == 1
    has_A = lay[LAY_HAS_A] == 1
    has_b = lay[LAY_HAS_B] == 1
    learn_attention = has_S or has_A
    B = x.shape[0]
    G, wm = _plan(lay, B)
    invH = 1.0 / H
    scale = 1.0 / (B * T)

    U = _prepare_table(theta, lay, Ubuf, Ut)
    S = _view3(theta, lay[LAY_OFF_S], H, T, L)
    A = _view3(theta, lay[LAY_OFF_A], H, T, Vin)
    bias = _view1(theta, lay[LAY_OFF_B], Vout)

    if want_grad:
        dUt[:] = 0.0
        Gbar[:] = 0.0
        grad[:] = 0.0
    gS = _view3(grad, lay[LAY_OFF_S], H, T, L)
    gA = _view3(grad, lay[LAY_OFF_A], H, T, Vin)
    gb = _view1(grad, lay[LAY_OFF_B], Vout)

    if not has_A:  # attention is the same for every example: compute it once
        _attention(S, A, x, 0, lay, alpha, alphaS, alphaST, e, k, k_bits)

    n_gold = 0
    n_correct = 0
    n_ktiw = 0
    if want_metrics:
        hsum[:] = 0.0
        _ktiw_table(U, bias, lay, Pk, e, k, k_bits)

    loss_sum = 0.0
    for b0 in range(0, B, G):
        nG = min(G, B - b0)
        GV = nG * Vout
        if has_A:  # groups hold one example
            _attention(S, A, x, b0, lay, alpha, alphaS, alphaST, e, k, k_bits)
        _group_logits(x, b0, nG, wm, U, Ut, bias, lay, alphaS, UX, z, xg)

        # ---- loss, accuracy, delta = (softmax(z) - onehot(y)) / (B T)
        _group_softmax(z, nG, wm, Vout, T, e, k, k_bits, colmax, colsum)
        part, correct = _group_loss(z, y, b0, nG, wm, Vout, T, colmax, colsum, want_loss, want_metrics)
        loss_sum += part
        n_correct += correct
        if want_grad:
            _group_delta(e, colsum, y, b0, nG, wm, Vout, T, scale, delta, dbv)

        # ---- metrics that need the gold alignment
        if want_metrics:
            for j in range(nG):
                b = b0 + j
                for t in range(T):
                    gt = gold[b, t]
                    if gt < 0:
                        continue
                    n_gold += 1
                    for h in range(H):
                        best = alpha[h, t, 0]
                        arg = 0
                        for l in range(1, L):  # noqa: E741
                            if alpha[h, t, l] > best:
                                best = alpha[h, t, l]
                                arg = l
                        if arg == gt:
                            hsum[h] += 1.0
                        hsum[H + h] += alpha[h, t, gt]
                    # KTIW: argmax_l of p(y_t | attend to l alone) hits gold
                    yt = y[b, t]
                    best = Pk[yt, x[b, 0]]
                    arg = 0
                    for l in range(1, L):  # noqa: E741
                        v = Pk[yt, x[b, l]]
                        if v > best:
                            best = v
                            arg = l
                    if arg == gt:
                        n_ktiw += 1

        if not want_grad:
            continue

        # ---- backward
        if has_b:
            _add_bias_grad(dbv, nG, wm, Vout, gb)
        for h in range(H):
            # dU[h,:,i] = (1/H) sum_{t,l: x_l = i} alpha[h,t,l] delta[t,:]
            for l in range(L):  # noqa: E741
                for c in range(GV):
                    dUX[0, l, c] = 0.0
            _gemm_acc(alphaST, h, delta, 0, dUX, 0, L, T, GV)
            _scatter_rows(dUX, xg, nG, wm, Vout, L, dUt, h)
            if not learn_attention:
                continue
            # g[h,t,l] = (1/H) delta[t,:] . U[h,:,x_l]   (the 1/H is applied to ds)
            if not has_A:  # alpha is shared: sum g over the batch first
                _gemm_acc_nt(delta, 0, UX, h, Gbar, h, T, GV, L)
                continue
            g[:] = 0.0
            _gemm_acc_nt(delta, 0, UX, h, g, 0, T, GV, L)
            # ds = alpha (g - sum_l' alpha g);  dS += ds;  dA[t, x_l] += ds
            for t in range(T):
                r_ = 0.0
                for l in range(L):  # noqa: E741
                    r_ += alpha[h, t, l] * g[0, t, l]
                for l in range(L):  # noqa: E741
                    ds = alpha[h, t, l] * (g[0, t, l] - r_) * invH
                    if has_S:
                        gS[h, t, l] += ds
                    gA[h, t, x[b0, l]] += ds

    if want_metrics:
        metrics[MET_LOSS] = loss_sum * scale
        metrics[MET_ACC] = n_correct * scale
        if n_gold > 0:
            metrics[MET_KTIW] = n_ktiw / n_gold
            for h in range(H):
                metrics[MET_HEADS + h] = hsum[h] / n_gold
                metrics[MET_HEADS + H + h] = hsum[H + h] / n_gold
        else:
            for jj in range(MET_KTIW, MET_HEADS + 2 * H):
                metrics[jj] = np.nan
    if not want_loss:
        loss_sum = 0.0 * loss_sum  # 0 if finite, NaN if not

    if want_grad:
        if has_S and not has_A:  # dS[h,t,l] = alpha (Gbar - sum_l' alpha Gbar) / H
            for h in range(H):
                for t in range(T):
                    r_ = 0.0
                    for l in range(L):  # noqa: E741
                        r_ += alpha[h, t, l] * Gbar[h, t, l]
                    for l in range(L):  # noqa: E741
                        gS[h, t, l] = alpha[h, t, l] * (Gbar[h, t, l] - r_) * invH
        if d == 0:
            gU = _view3(grad, lay[LAY_OFF_U], H, Vout, Vin)
            for h in range(H):
                _transpose(dUt, h, gU, h)
        else:  # dW[h] = dU[h] @ E[h].T,  dE[h] = W[h].T @ dU[h]
            W = _view3(theta, lay[LAY_OFF_W], H, Vout, d)
            E = _view3(theta, lay[LAY_OFF_E], H, d, Vin)
            gW = _view3(grad, lay[LAY_OFF_W], H, Vout, d)
            gE = _view3(grad, lay[LAY_OFF_E], H, d, Vin)
            for h in range(H):
                _transpose(dUt, h, dU, 0)
                _transpose(E, h, ET, 0)
                _transpose(W, h, WT, 0)
                _gemm_acc(dU, 0, ET, 0, gW, h, Vout, Vin, d)
                _gemm_acc(WT, 0, dU, 0, gE, h, d, Vout, Vin)
    return loss_sum * scale


# =============================================================================
# public kernels (each has a NumPy oracle in _reference.REGISTRY)
# =============================================================================
@njit(fastmath=FASTMATH, cache=CACHE)
def loss_grad(x, y, theta, lay, grad):
    """Mean cross-entropy of (x, y) and its gradient, written into ``grad``."""
    ws = _alloc_ws(lay, theta, x.shape[0])
    gold = np.zeros((1, 1), np.int64)
    metrics = np.zeros(1, np.float64)
    return _core(x, y, gold, theta, lay, grad, ws, True, False, metrics, True)


@njit(fastmath=FASTMATH, cache=CACHE)
def forward(x, theta, lay, z_out, alpha_out):
    """Logits ``z_out`` (B, T, Vout) and attention ``alpha_out`` (H, B, T, L)."""
    B = x.shape[0]
    ws = _alloc_ws(lay, theta, B)
    (
        Ubuf,
        Ut,
        dUt,
        alpha,
        alphaS,
        alphaST,
        UX,
        z,
        delta,
        dUX,
        g,
        Gbar,
        dbv,
        e,
        k,
        k_bits,
        colmax,
        colsum,
        xg,
        Pk,
        ET,
        WT,
        dU,
        hsum,
    ) = ws
    H, Vin, L, T, Vout = lay[LAY_H], lay[LAY_VIN], lay[LAY_L], lay[LAY_T], lay[LAY_VOUT]
    G, wm = _plan(lay, B)
    U = _prepare_table(theta, lay, Ubuf, Ut)
    S = _view3(theta, lay[LAY_OFF_S], H, T, L)
    A = _view3(theta, lay[LAY_OFF_A], H, T, Vin)
    bias = _view1(theta, lay[LAY_OFF_B], Vout)
    for b0 in range(0, B, G):
        nG = min(G, B - b0)
        so = nG if wm else 1
        sj = 1 if wm else Vout
        if b0 == 0 or lay[LAY_HAS_A] == 1:
            _attention(S, A, x, b0, lay, alpha, alphaS, alphaST, e, k, k_bits)
        _group_logits(x, b0, nG, wm, U, Ut, bias, lay, alphaS, UX, z, xg)
        for j in range(nG):
            for t in range(T):
                for o in range(Vout):
                    z_out[b0 + j, t, o] = z[0, t, j * sj + o * so]
            alpha_out[:, b0 + j] = alpha


@njit(fastmath=FASTMATH, cache=CACHE)
def exp_shifted(src, shift, out):
    """``out = exp(src - shift)`` (float64, ``src <= shift``), the exp behind every softmax."""
    n = src.shape[0]
    k = np.empty(n, np.float64)
    for i in range(n):
        out[i] = src[i] - shift
    _exp_inplace(out, k, k.view(np.int64), n)


@njit(fastmath=FASTMATH, cache=CACHE)
def gemm_acc(A, B, C):
    """``C += A @ B`` for 2-D arrays (the blocked product behind two of the contractions)."""
    M, K = A.shape
    N = B.shape[1]
    _gemm_acc(A.reshape((1, M, K)), 0, B.reshape((1, K, N)), 0, C.reshape((1, M, N)), 0, M, K, N)


@njit(fastmath=FASTMATH, cache=CACHE)
def gemm_acc_nt(A, B, C):
    """``C += A @ B.T`` for 2-D arrays (the dot-product contraction)."""
    M, K = A.shape
    N = B.shape[0]
    _gemm_acc_nt(A.reshape((1, M, K)), 0, B.reshape((1, N, K)), 0, C.reshape((1, M, N)), 0, M, K, N)


@njit(cache=CACHE)
def partial_shuffle(u, vocab, out):
    """Rows of distinct words: ``out[r]`` is the first ``L`` entries of a Fisher-Yates
    shuffle of ``range(vocab)`` driven by the uniforms ``u[r]`` (n, L), step j swapping
    position j with ``j + floor(u[r, j] * (vocab - j))``. The swaps are undone after each
    row, so a row costs O(L), not O(vocab)."""
    n, L = u.shape
    perm = np.arange(vocab)
    picks = np.empty(L, np.int64)
    for r in range(n):
        for j in range(L):
            k = j + np.int64(u[r, j] * (vocab - j))
            if k >= vocab:  # u < 1 keeps k < vocab; guard against rounding anyway
                k = vocab - 1
            picks[j] = k
            tmp = perm[j]
            perm[j] = perm[k]
            perm[k] = tmp
            out[r, j] = perm[j]
        for j in range(L - 1, -1, -1):
            k = picks[j]
            tmp = perm[j]
            perm[j] = perm[k]
            perm[k] = tmp


@njit(fastmath=FASTMATH, cache=CACHE)
def _train_steps(
    xs, ys, golds, theta, m1, m2, lay, hyper, opt, step0, update_last, log_flags, limit, out_loss, out_metrics, ws, grad
):
    """One run of `train_runs`: ``K = len(log_flags)`` steps of training in place on
    ``theta``, with the workspace ``ws`` (`_alloc_ws`) and the gradient buffer ``grad``.

    Step k evaluates the loss at the current parameters on batch ``xs[k]`` (or on
    ``xs[0]`` for every k when ``xs`` holds a single batch: gradient descent on a fixed
    batch) and, when ``log_flags[k]``, writes it to ``out_loss[k]`` and the metrics row to
    ``out_metrics[k]`` (unlogged steps get 0.0 for a finite loss); then it updates the
    parameters, except after the last step when ``update_last`` is false (a final
    evaluation).

    ``hyper = (lr, weight_decay, beta1, beta2, eps)``; ``opt`` is ``OPT_SGD`` or
    ``OPT_ADAM``; ``m1, m2`` are Adam's moments; ``step0`` the number of updates already
    taken (for Adam's bias correction). Weight decay adds ``wd/2 |theta|^2`` to the loss.

    ``limit`` (one float64, NaN until set) is the divergence threshold on the
    cross-entropy: at the first logged step it is set to ``DIVERGE_FACTOR · max(loss, 1)``.

    Returns the number of steps before the run diverged (K if it did not): training
    stops at the first non-finite loss, or at the first logged cross-entropy above
    ``limit`` (that step's loss and metrics are written), and leaves ``theta`` as it
    was at that step.
    """
    lr, wd, beta1, beta2, eps = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    K = log_flags.shape[0]
    P = theta.shape[0]
    for k in range(K):
        kk = k if xs.shape[0] > 1 else 0
        last = k == K - 1
        do_update = (not last) or update_last
        want = log_flags[k]
        loss = _core(xs[kk], ys[kk], golds[kk], theta, lay, grad, ws, do_update, want, out_metrics[k], want)
        grew = False
        if want and np.isfinite(loss):
            if np.isnan(limit[0]):
                limit[0] = DIVERGE_FACTOR * max(loss, 1.0)
            elif loss > limit[0]:
                grew = True
        if wd != 0.0:
            if want:  # the loss term only where the loss is reported
                sq = 0.0
                for i in range(P):
                    sq += np.float64(theta[i]) * theta[i]
                loss += 0.5 * wd * sq
            if do_update:  # the gradient term on every update, logged or not
                for i in range(P):
                    grad[i] += wd * theta[i]
        out_loss[k] = loss
        if grew or not np.isfinite(loss):
            return k
        if not do_update:
            continue
        if opt == OPT_ADAM:
            # theta -= lr m̂ / (sqrt(v̂) + eps), m̂ = m / bc1, v̂ = v / bc2, with the two
            # bias corrections folded into constants (one sqrt, one division)
            t = step0 + k + 1
            step_size = lr / (1.0 - beta1**t)
            inv_sqrt_bc2 = 1.0 / np.sqrt(1.0 - beta2**t)
            for i in range(P):
                gi = grad[i]
                mi = beta1 * m1[i] + (1.0 - beta1) * gi
                vi = beta2 * m2[i] + (1.0 - beta2) * gi * gi
                m1[i] = mi
                m2[i] = vi
                theta[i] -= step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps)
        else:
            for i in range(P):
                theta[i] -= lr * grad[i]
    return K


@njit(fastmath=FASTMATH, cache=CACHE, parallel=True, nogil=True)
def train_runs(
    xs,
    ys,
    golds,
    thetas,
    m1s,
    m2s,
    lay,
    hypers,
    opts,
    step0,
    update_last,
    log_flags,
    active,
    limits,
    out_loss,
    out_metrics,
    done,
):
    """The step loop of R independent runs with the same shapes, in parallel over runs.

    Run r trains ``thetas[r]`` (moments ``m1s[r], m2s[r]``) on its own data ``xs[r], ys[r],
    golds[r]`` (shape (K or 1, B, ·); ``golds`` with one leading row is shared by every
    run, as when the gold alignment is the same for every sequence) with ``hypers[r]`` and ``opts[r]``, writing
    ``out_loss[r]``, ``out_metrics[r]`` and the number of steps before divergence to ``done[r]``
    (see `_train_steps`); runs with ``active[r]`` false are left alone (``done[r] = 0``).

    Every run is computed start to finish by one thread with its own workspace, by the
    same compiled code whatever R and the number of threads, so a run gives the same
    bits alone (R = 1, which is how `train` calls it) or among others.
    """
    R = thetas.shape[0]
    B = xs.shape[2]
    for r in prange(R):
        if not active[r]:
            done[r] = 0
            continue
        ws = _alloc_ws(lay, thetas[r], B)
        grad = np.zeros(thetas.shape[1], thetas.dtype)
        done[r] = _train_steps(
            xs[r],
            ys[r],
            golds[r % golds.shape[0]],
            thetas[r],
            m1s[r],
            m2s[r],
            lay,
            hypers[r],
            opts[r],
            step0,
            update_last,
            log_flags,
            limits[r : r + 1],
            out_loss[r],
            out_metrics[r],
            ws,
            grad,
        )
