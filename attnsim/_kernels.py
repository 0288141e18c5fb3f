"""The engine's kernels: what every architecture's step loop shares.

* the step itself after an architecture's forward and backward pass (`_finish_step`):
  the divergence check, weight decay and the optimizer update (GD / SGD / Adam), written
  once;
* numerics every architecture uses: a vectorizable exponential and softmax, blocked dense
  products, transposes, views of the flat parameter vector;
* the copy tasks' sampler of distinct words (`partial_shuffle`).

Each architecture (``attnsim/arch/<name>/_kernels.py``) keeps its own named step kernel,
``train_runs``, that calls its own forward/backward pass and then these functions by name:
Numba caches a kernel only when it calls other kernels by name, not when it receives them
as arguments or builds them in a closure. Kernels take arrays and scalars only, write into
outputs passed by the caller and never validate. The plain-NumPy oracle of every public
kernel is in `_reference.py` (`_reference.REGISTRY`).

Conventions
-----------
* Arithmetic is in the dtype of the parameters (float64 or float32); losses, metrics and
  exponentials are accumulated in float64.
* ``fastmath={"contract"}``: multiply-adds may fuse into FMA instructions and nothing is
  reassociated, so every sum runs in the order written, except in ``_gemm_acc_nt`` (dot
  products, vectorized with ``reassoc``). The order of every operation is fixed when a
  kernel compiles: a rerun gives the same bits.
* Hot loops index arrays directly (``X[h, t, l]``) and never take a view inside a loop over
  examples or rows; Numba reference-counts views. Calls between compiled functions are
  real calls (not inlined).
"""

from __future__ import annotations

import platform

import numba
import numpy as np

from ._jit import FASTMATH_REDUCE, jit

# A run diverges when its logged cross-entropy exceeds this many times its value at the
# first logged step (at least 1 nat), or becomes non-finite (see `_finish_step`).
DIVERGE_FACTOR = 100.0

# Optimizer codes understood by the step kernels.
OPT_SGD = 0  # plain gradient step (used for both "gd" and "sgd")
OPT_ADAM = 1

# Columns of the metrics row every architecture's pass writes at a logged step, then per
# head its attention accuracy (MET_HEADS + h) and gold mass (MET_HEADS + H + h).
MET_LOSS, MET_ACC, MET_KTIW, MET_HEADS = 0, 1, 2, 3

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


# The same in float32 arithmetic, for float32 models' gates: a degree-7 Taylor polynomial
# (truncation below 6e-9 on |r| <= 0.347, under float32's 6e-8), 2**k from the bits of a
# float32, arguments clamped at -87 (exp(-87) is still a normal float32).
_F = np.float32
_LN2_HI_F = _F(0.693359375)  # 9 bits: k * _LN2_HI_F is exact
_LN2_LO_F = _F(-2.12194440e-4)
_INV_LN2_F = _F(_INV_LN2)
_ROUND_F = _F(12582912.0)  # 1.5 * 2**23
_ROUND_BITS_F = 0x4B400000  # the bits of _ROUND_F
_EXP_MIN_F = _F(-87.0)
_EXP_F = tuple(_F(c) for c in (1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0))


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


@jit()
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


@jit(inline="always")
def _exp_inplace_f32(e, k, k_bits, n):
    """`_exp_inplace` for float32 arrays ``e``, ``k`` (``k_bits`` an int32 view of ``k``),
    in float32 arithmetic: twice the lanes of a vector, and a shorter polynomial."""
    for i in range(n):
        x = e[i]
        if x < _EXP_MIN_F:
            x = _EXP_MIN_F
        t = x * _INV_LN2_F + _ROUND_F
        kf = t - _ROUND_F
        r = (x - kf * _LN2_HI_F) - kf * _LN2_LO_F
        p = _EXP_F[0]
        for c in _EXP_F[1:]:
            p = p * r + c
        e[i] = p
        k[i] = t
    for i in range(n):  # t = 1.5·2**23 + k, k in [-126, 0], one binade: its bits are those of 1.5·2**23 plus k
        k_bits[i] = (k_bits[i] - _ROUND_BITS_F + 127) << 23
    for i in range(n):
        e[i] *= k[i]


@jit()
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
@jit()
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


@jit(FASTMATH_REDUCE)
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


@jit()
def _gemm_acc_tn(A, ia, B, ib, C, ic, M, K, N):
    """``C[ic, :M, :N] += A[ia, :K, :M].T @ B[ib, :K, :N]`` (the factored models' backward
    products). `_gemm_acc`'s micro-kernel with A read transposed: every entry receives its
    terms in order k = 0, 1, …, K-1; the inner loop over columns vectorizes."""
    M4 = M - M % 4
    K4 = K - K % 4
    for m in range(0, M4, 4):
        for k in range(0, K4, 4):
            a00, a01, a02, a03 = A[ia, k, m], A[ia, k + 1, m], A[ia, k + 2, m], A[ia, k + 3, m]
            a10, a11, a12, a13 = A[ia, k, m + 1], A[ia, k + 1, m + 1], A[ia, k + 2, m + 1], A[ia, k + 3, m + 1]
            a20, a21, a22, a23 = A[ia, k, m + 2], A[ia, k + 1, m + 2], A[ia, k + 2, m + 2], A[ia, k + 3, m + 2]
            a30, a31, a32, a33 = A[ia, k, m + 3], A[ia, k + 1, m + 3], A[ia, k + 2, m + 3], A[ia, k + 3, m + 3]
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
            a0, a1, a2, a3 = A[ia, k, m], A[ia, k, m + 1], A[ia, k, m + 2], A[ia, k, m + 3]
            for n in range(N):
                v = B[ib, k, n]
                C[ic, m, n] = C[ic, m, n] + a0 * v
                C[ic, m + 1, n] = C[ic, m + 1, n] + a1 * v
                C[ic, m + 2, n] = C[ic, m + 2, n] + a2 * v
                C[ic, m + 3, n] = C[ic, m + 3, n] + a3 * v
    for m in range(M4, M):
        for k in range(0, K4, 4):
            a0, a1, a2, a3 = A[ia, k, m], A[ia, k + 1, m], A[ia, k + 2, m], A[ia, k + 3, m]
            for n in range(N):
                C[ic, m, n] = (
                    C[ic, m, n] + a0 * B[ib, k, n] + a1 * B[ib, k + 1, n] + a2 * B[ib, k + 2, n] + a3 * B[ib, k + 3, n]
                )
        for k in range(K4, K):
            a = A[ia, k, m]
            for n in range(N):
                C[ic, m, n] = C[ic, m, n] + a * B[ib, k, n]


@jit()
def _transpose(src, i, dst, j):
    """``dst[j] = src[i].T``."""
    for r in range(src.shape[1]):
        for c in range(src.shape[2]):
            dst[j, c, r] = src[i, r, c]


# =============================================================================
# views of the flat parameter vector
# =============================================================================
@jit(fastmath=False)
def _view3(theta, off, a, b, c):
    """``theta[off:off+a*b*c]`` as an (a, b, c) array; a 1×1×1 dummy if absent."""
    if off < 0:
        return np.zeros((1, 1, 1), theta.dtype)
    return theta[off : off + a * b * c].reshape((a, b, c))


@jit(fastmath=False)
def _view1(theta, off, n):
    if off < 0:
        return np.zeros(1, theta.dtype)
    return theta[off : off + n]


# =============================================================================
# public kernels (each has a NumPy oracle in _reference.REGISTRY)
# =============================================================================
@jit()
def exp_shifted(src, shift, out):
    """``out = exp(src - shift)`` (float64, ``src <= shift``), the exp behind every softmax."""
    n = src.shape[0]
    k = np.empty(n, np.float64)
    for i in range(n):
        out[i] = src[i] - shift
    _exp_inplace(out, k, k.view(np.int64), n)


@jit()
def gemm_acc(A, B, C):
    """``C += A @ B`` for 2-D arrays (the blocked product behind two of the contractions)."""
    M, K = A.shape
    N = B.shape[1]
    _gemm_acc(A.reshape((1, M, K)), 0, B.reshape((1, K, N)), 0, C.reshape((1, M, N)), 0, M, K, N)


@jit()
def gemm_acc_nt(A, B, C):
    """``C += A @ B.T`` for 2-D arrays (the dot-product contraction)."""
    M, K = A.shape
    N = B.shape[0]
    _gemm_acc_nt(A.reshape((1, M, K)), 0, B.reshape((1, N, K)), 0, C.reshape((1, M, N)), 0, M, K, N)


@jit()
def gemm_acc_tn(A, B, C):
    """``C += A.T @ B`` for 2-D arrays."""
    K, M = A.shape
    N = B.shape[1]
    _gemm_acc_tn(A.reshape((1, K, M)), 0, B.reshape((1, K, N)), 0, C.reshape((1, M, N)), 0, M, K, N)


@jit(fastmath=False)
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


# =============================================================================
# subnormal numbers
# =============================================================================
# A subnormal (|x| < 2.2e-308) costs about 100 times an ordinary number in every
# multiply-add on x86, and a saturated attention (logits thousands apart, as a dot-product
# head reaches in a few hundred Adam steps) fills the products with them: a step of
# copy(60, 40) took 52 ms instead of 3.9. Every kernel entry point therefore sets the
# thread's MXCSR to flush subnormal results and inputs to zero (FTZ and DAZ) for the
# length of the call and restores it after. A subnormal is 1e-292 times the smallest
# double that rounding can distinguish from 1, so no sum the model forms changes by it
# (the recorded rung-0 results are bit-identical with and without it).
_FTZ_DAZ = 0x8040  # MXCSR bits 15 (flush to zero) and 6 (denormals are zero)
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")

if _X86 and not numba.config.DISABLE_JIT:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def _mxcsr_call(builder, name, ptr):
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        builder.call(fn, [builder.bitcast(ptr, ir.IntType(8).as_pointer())])

    @intrinsic
    def _get_mxcsr(typingctx):
        def codegen(context, builder, signature, args):
            ptr = cgutils.alloca_once(builder, ir.IntType(32))
            _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", ptr)
            return builder.zext(builder.load(ptr), ir.IntType(64))

        return types.int64(), codegen

    @intrinsic
    def _set_mxcsr(typingctx, value):
        def codegen(context, builder, signature, args):
            ptr = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(builder.trunc(args[0], ir.IntType(32)), ptr)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", ptr)
            return context.get_dummy_value()

        return types.void(types.int64), codegen

    @jit()
    def _flush_subnormals():
        """Flush subnormals to zero on this thread; returns the state to `_restore_fp` after."""
        old = _get_mxcsr()
        _set_mxcsr(old | _FTZ_DAZ)
        return old

    @jit()
    def _restore_fp(old):
        _set_mxcsr(old)

else:  # elsewhere (or as plain Python under NUMBA_DISABLE_JIT) subnormals are kept: slower, not wrong

    @jit()
    def _flush_subnormals():
        """Flush subnormals to zero on this thread (x86 only); returns the state to `_restore_fp` after."""
        return 0

    @jit()
    def _restore_fp(old):
        pass


# =============================================================================
# the step, after an architecture's forward and backward pass
# =============================================================================
@jit(inline="always")  # once per step with seven arrays, each of which a call would incref and decref
def _finish_step(loss, k, want, do_update, theta, grad, m1, m2, hyper, opt, t, limit, out_loss):
    """Everything a step does after the model's pass: returns True when the run stops here.

    ``loss`` is the pass's cross-entropy (or, unlogged, 0.0 if finite and NaN if not) and
    ``grad`` its gradient. At a logged pass (``want``) the first finite loss sets the
    divergence threshold ``limit[0] = DIVERGE_FACTOR · max(loss, 1)``; a later one above it
    is a divergence. Weight decay ``wd`` adds ``wd/2 |θ|²`` to a logged loss and ``wd·θ``
    to the gradient of every update. ``out_loss[k]`` gets the loss. The run stops at a
    non-finite loss or a divergence, leaving ``theta`` as it was. Otherwise, unless
    ``do_update`` is false (a final evaluation), the optimizer updates ``theta``:
    ``opt`` is `OPT_SGD` or `OPT_ADAM` (moments ``m1, m2``, ``t`` the update's number,
    from 1, for the bias corrections); ``hyper = (lr, weight_decay, beta1, beta2, eps)``.
    """
    lr, wd, beta1, beta2, eps = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    P = theta.shape[0]
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
        return True
    if not do_update:
        return False
    if opt == OPT_ADAM:
        # theta -= lr m̂ / (sqrt(v̂) + eps), m̂ = m / bc1, v̂ = v / bc2, with the two
        # bias corrections folded into constants (one sqrt, one division)
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
    return False
