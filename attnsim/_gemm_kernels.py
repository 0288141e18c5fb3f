"""float32 products with one operand packed once: OpenBLAS's own kernel, OpenBLAS's bits.

A recurrent cell multiplies the same ``W_hh`` by a new state at every time step. Through
``np.dot`` each of those products has OpenBLAS pack ``W_hh`` into its kernel's panel layout
again (1 MB at d 256, about a sixth of a product's time at the paper's size). SciPy's OpenBLAS
exports the kernel it runs on this machine (``sgemm_kernel_<CORE>``, e.g. SKYLAKEX) and its
blocking parameters, so here the kernels pack ``W_hh`` once per pass and call that same
kernel with OpenBLAS's own blocking of the summed dimension (`_kblock`): every entry is the
same sequence of floating-point operations as OpenBLAS's, and the products are equal to
``np.dot``'s bit for bit. That is checked when this module is loaded, on products that
cross each blocking boundary (`_self_test`); where it does not hold, or the kernel or its
parameters are not found, or a shape does not fill the kernel's panels (`packs`), the
kernels call ``np.dot`` as before. The parameters are read from OpenBLAS's internal table,
whose layout is not an interface: the path is taken only on the OpenBLAS release and kernel
where it has been checked whole (`CHECKED_OPENBLAS`, `CHECKED_CORES`: 0.3.30, SkylakeX),
and np.dot everywhere else; the bits are the same either way, only the speed differs.

The kernel and the parameters reach compiled code as external symbols registered with
LLVM when this module loads (`_register`), not as addresses baked into it, so the cached
kernels stay valid from one process to the next.
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import binding as _llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._blas import _openblas, blas_core, one_blas_thread, openblas_version
from ._jit import jit

_KERNEL = "attnsim_sgemm_kernel"
_PARAMS = "attnsim_sgemm_params"
# the entries of `_PARAMS`: whether the packed path is on, OpenBLAS's blocks P (rows) and Q
# (the summed dimension), and its kernel's panel widths (rows of the first operand, columns
# of the second)
ON, P, Q, UM, UN = range(5)

# products of at most this many multiply-adds OpenBLAS may give to its small-matrix kernels
# (other bits): they stay with np.dot
_SMALLEST = 1_000_000

_KERNEL_TYPE = ctypes.CFUNCTYPE(  # OpenBLAS's BLASLONG is 64 bits
    ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p,
    ctypes.c_void_p, ctypes.c_int64,
)  # fmt: skip
_params = (ctypes.c_int64 * 8)()
_keep = []  # what the registered addresses point into, kept alive


def _unavailable(*args):  # the registered kernel where OpenBLAS's is not found (never called: ON is 0)
    return -1


# where the packed path has been checked: the OpenBLAS releases whose parameter table
# `_find` reads (its layout is not an interface and may move between releases) and the
# kernels whose packing and calls were tested whole (tests/test_gemm_kernels.py). Elsewhere
# np.dot, as before: a kernel that reads its panels differently could fault, which the bit
# check at import could not catch.
CHECKED_OPENBLAS = ("0.3.30",)
CHECKED_CORES = ("SKYLAKEX",)


def _find() -> tuple[int, tuple[int, int, int, int]] | None:
    """OpenBLAS's sgemm kernel on this machine and its (P, Q, UM, UN), or None."""
    lib = _openblas()
    core = blas_core().upper()
    if lib is None or core not in CHECKED_CORES or openblas_version() not in CHECKED_OPENBLAS:
        return None
    try:
        kernel = ctypes.cast(getattr(lib, f"sgemm_kernel_{core}"), ctypes.c_void_p).value
        table = ctypes.c_int.in_dll(lib, f"gotoblas_{core}")
    except (AttributeError, ValueError):
        return None
    # the head of OpenBLAS 0.3.30's parameter table: dtb_entries, switch_ratio, offsetA,
    # offsetB, align (a mask 2^k - 1), then sgemm's blocks P, Q, R and unrolls M, N. Read,
    # checked for that shape, then trusted only if `_self_test` agrees
    head = (ctypes.c_int * 10).from_address(ctypes.addressof(table))
    align, p, q, r, um, un = head[4], head[5], head[6], head[7], head[8], head[9]
    if not (0 < align < 1 << 20 and align & (align + 1) == 0 and 0 < r <= 1 << 20):
        return None  # not the layout this reads
    if not (0 < um <= 64 and 0 < un <= 64 and um <= p <= 1 << 16 and 0 < q <= 1 << 16 and p % um == 0 and q % um == 0):
        return None  # (blocks that are whole panels: `scratch_size` and `gemm_packed` rely on it)
    return kernel, (p, q, um, un)


def _register() -> None:
    found = _find()
    if found is None:
        stub = _KERNEL_TYPE(_unavailable)
        _keep.append(stub)
        address = ctypes.cast(stub, ctypes.c_void_p).value
    else:
        address, (p, q, um, un) = found
        _params[P], _params[Q], _params[UM], _params[UN] = p, q, um, un
        _params[ON] = 1
    _llvm.add_symbol(_KERNEL, address)
    _llvm.add_symbol(_PARAMS, ctypes.addressof(_params))
    if found is not None and not _self_test(found[0], found[1]):
        _params[ON] = 0


def _kblock(rest: int, q: int, um: int) -> int:
    """How much of the summed dimension OpenBLAS's one-thread driver takes next, ``rest``
    left: Q while two blocks' worth remain, else the remainder in one block, or, when it is
    longer than Q, half of it rounded up to a multiple of UM. The block boundaries decide the
    bits. (OpenBLAS's threaded driver halves without rounding: other bits. attnsim's kernels
    run BLAS on one thread, `attnsim._blas`, and `_self_test` compares on one thread.)"""
    if rest >= 2 * q:
        return q
    if rest > q:
        return ((rest // 2 + um - 1) // um) * um
    return rest


def _reference_gemm(kernel, prm, X, Y) -> np.ndarray:
    """``X @ Y`` (float32) through ``kernel`` from Python, packed with NumPy: `_self_test`'s
    side, written apart from the compiled one (`gemm_packed`)."""
    p, q, um, un = prm
    call = _KERNEL_TYPE(kernel)
    M, K = X.shape
    N = Y.shape[1]
    C = np.zeros((M, N), np.float32)  # the kernel's view: N x M, column-major
    ls = 0
    while ls < K:
        ml = _kblock(K - ls, q, um)
        b = np.ascontiguousarray(X[:, ls : ls + ml].reshape(M // un, un, ml).transpose(0, 2, 1))
        i0 = 0
        while i0 < N:
            mi = min(p, N - i0)
            a = np.ascontiguousarray(Y[ls : ls + ml, i0 : i0 + mi].T.reshape(mi // um, um, ml).transpose(0, 2, 1))
            call(mi, M, ml, 1.0, a.ctypes.data, b.ctypes.data, C.ctypes.data + 4 * i0, N)
            i0 += mi
        ls += ml
    return C


def _self_test(kernel, prm) -> bool:
    """Whether the packed path gives SciPy's BLAS's bits on products just above `_SMALLEST`
    that cross every blocking boundary: one block of the summed dimension, a remainder split
    in halves (even and odd), two full blocks, many and a split, rows past one P block."""
    from scipy.linalg.blas import sgemm

    p, q, um, un = prm
    rng = np.random.default_rng(0)
    shapes = [(M, K, N) for K in (q, q + 1, q + um, 2 * q - 1, 2 * q, 2 * q + 1, 5 * q + 7) for M, N in
              ((un * 64, um * 4), (un * 2, p + um))]  # fmt: skip
    for M, K, N in [(M, K, N) for M, K, N in shapes if M * N * K > _SMALLEST]:
        X = rng.standard_normal((M, K)).astype(np.float32)
        Y = rng.standard_normal((K, N)).astype(np.float32)
        with one_blas_thread():  # as the kernels call it: Numba's np.dot on C-ordered arrays is Cᵀ = Yᵀ Xᵀ
            blas = sgemm(1.0, Y.T, X.T).T
        if not np.array_equal(_reference_gemm(kernel, prm, X, Y), blas):
            return False
    return True


@intrinsic
def _param(typingctx, i):
    """Entry ``i`` of the registered parameters."""

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        gv = builder.module.globals.get(_PARAMS)
        if gv is None:
            gv = ir.GlobalVariable(builder.module, ir.ArrayType(i64, 8), name=_PARAMS)
            gv.linkage = "external"
        return builder.load(builder.gep(gv, [ir.Constant(ir.IntType(32), 0), args[0]]))

    return types.int64(types.int64), codegen


@intrinsic
def _kernel(typingctx, m, n, k, a, b, c, ldc):
    """OpenBLAS's kernel: ``C[:m, :n] += A B`` (column-major C, ``ldc``), A packed in
    panels of UM rows (m × k), B in panels of UN columns (k × n); addresses as integers."""

    def codegen(context, builder, sig, args):
        i64, f32, ptr = ir.IntType(64), ir.FloatType(), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(32), [i64, i64, i64, f32, ptr, ptr, ptr, i64])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _KERNEL)
        m_, n_, k_, a_, b_, c_, ldc_ = args
        pa, pb, pc = (builder.inttoptr(x, ptr) for x in (a_, b_, c_))
        builder.call(fn, [m_, n_, k_, ir.Constant(f32, 1.0), pa, pb, pc, ldc_])
        return context.get_dummy_value()

    return types.none(types.int64, types.int64, types.int64, types.intp, types.intp, types.intp, types.int64), codegen


@jit()
def packs(M, K, N) -> bool:
    """Whether ``C (M×N) = X (M×K) Y (K×N)`` in float32 takes the packed path here."""
    return _param(ON) == 1 and N % _param(UM) == 0 and M % _param(UN) == 0 and M * N * K > _SMALLEST


@jit()
def _kb(rest, q, um):
    """`_kblock`, compiled."""
    if rest >= 2 * q:
        return q
    if rest > q:
        return ((rest // 2 + um - 1) // um) * um
    return rest


def _float32(a):
    """Whether ``a`` is a float32 array (decided when a kernel is compiled)."""
    return isinstance(a, np.ndarray) and a.dtype == np.float32


@overload(_float32)
def _float32_typed(a):
    answer = isinstance(a, types.Array) and a.dtype == types.float32
    return lambda a: answer


@jit()
def _flat32(a, n) -> bool:
    """Whether ``a`` is a 1-D, unit-stride float32 array of at least ``n`` entries: what the
    kernel, which reads raw addresses, takes for a packed operand or scratch."""
    return _float32(a) and a.ndim == 1 and a.strides[0] == 4 and a.size >= n


@jit()
def pack_second(Y, out):
    """The second operand ``Y`` (K × N float32, any strides) into ``out`` (1-D float32 of K·N
    entries) in the kernel's layout, block by block of the summed dimension and of P columns,
    as `gemm_packed` reads it: a product's constant operand (``W_hh``), packed once for every
    product it takes part in. The packing depends on K and N: use ``out`` only with them."""
    K, N = Y.shape
    p, q, um = _param(P), _param(Q), _param(UM)
    if _param(ON) != 1 or N % um != 0 or not _float32(Y):
        raise ValueError("pack_second: the path is off, Y is not float32 or its columns do not fill the panels")
    if not _flat32(out, K * N):
        raise ValueError("pack_second: out must be a 1-D unit-stride float32 array of K*N entries")
    at = 0
    ls = 0
    while ls < K:
        ml = _kb(K - ls, q, um)
        i0 = 0
        while i0 < N:
            mi = min(p, N - i0)
            for r0 in range(i0, i0 + mi, um):
                for kk in range(ls, ls + ml):
                    for r in range(um):
                        out[at] = Y[kk, r0 + r]
                        at += 1
            i0 += mi
        ls += ml


@jit()
def _pack_first(X, ls, ml, out):
    """Columns ``ls:ls+ml`` of the first operand X (M × K) in panels of UN rows."""
    M = X.shape[0]
    un = _param(UN)
    at = 0
    for j0 in range(0, M, un):
        for kk in range(ls, ls + ml):
            for c in range(un):
                out[at] = X[j0 + c, kk]
                at += 1


@jit()
def scratch_size(M, K) -> int:
    """Entries of the scratch `gemm_packed` needs for a first operand of M rows."""
    return M * min(K, _param(Q))  # a block of the summed dimension is at most Q long


@jit()
def gemm_packed(X, Yp, C, scratch):
    """``C = X Y`` (float32; X any strides, C C-ordered, M × N), Y given packed by
    `pack_second` for this K and N: the bits of ``np.dot(X, Y, C)`` on one BLAS thread.
    ``scratch``: 1-D float32 of at least `scratch_size` entries."""
    M, K = X.shape
    N = C.shape[1]
    p, q = _param(P), _param(Q)
    if not packs(M, K, N) or not _float32(X):
        raise ValueError("gemm_packed: a product the packed path does not take (see packs) or X not float32")
    if not (_float32(C) and C.shape[0] == M and C.strides[1] == 4 and C.strides[0] == 4 * N):
        raise ValueError("gemm_packed: C must be a C-ordered float32 array of M rows")
    if not (_flat32(Yp, K * N) and _flat32(scratch, scratch_size(M, K))):
        raise ValueError("gemm_packed: Yp and scratch must be 1-D unit-stride float32 arrays, long enough")
    C[:] = 0.0
    base_c, base_y, base_s = C.ctypes.data, Yp.ctypes.data, scratch.ctypes.data
    at = 0
    ls = 0
    while ls < K:
        ml = _kb(K - ls, q, _param(UM))
        _pack_first(X, ls, ml, scratch)
        i0 = 0
        while i0 < N:
            mi = min(p, N - i0)
            _kernel(mi, M, ml, base_y + 4 * at, base_s, base_c + 4 * i0, N)
            at += mi * ml
            i0 += mi
        ls += ml


_register()
