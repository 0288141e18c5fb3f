"""Rung 1's kernels: the dot-product head through its effective tables.

Everything before the softmax is linear in each factor, so the head's logits and values
are gathers from small tables built per step (docs/design.md §7.2), per head h with
c = 1/√k:

    Q = R WQ (T×k),  KP = P WK (L×k),  KE = E WK (Vin×k),  VE = E WV (Vin×d),  VP = P WV (L×d)
    S = c Q KPᵀ,  A = c Q KEᵀ,  U = WO VEᵀ,  Up = WO VPᵀ

and the table model's pass (`_table_kernels._table_pass`, with context ρ on the keys when
they see words and on the values when they see the whole state) gives the loss and the
gradients of S, A, U, Up, b. The chain rule through the products then gives the
factors' gradients (§7.2):

    ∂Q = c (∂S KP + ∂A KE),  ∂KP = c ∂Sᵀ Q,  ∂KE = c ∂Aᵀ Q,  ∂VE = ∂Uᵀ WO,  ∂VP = ∂Upᵀ WO
    ∂WO = ∂U VE + ∂Up VP,  ∂R = ∂Q WQᵀ,  ∂WQ = Rᵀ ∂Q,  ∂WK = Pᵀ ∂KP + Eᵀ ∂KE
    ∂WV = Eᵀ ∂VE + Pᵀ ∂VP,  ∂E = ∂KE WKᵀ + ∂VE WVᵀ,  ∂P = ∂KP WKᵀ + ∂VP WVᵀ

A step costs the table model's pass plus products of the small tables (O(V·d·k) per
head), whatever the batch. The plain-NumPy oracle (`_reference.py`) computes the same
model the direct way: per-example keys, queries, values and contexts.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import prange

from ..._jit import jit
from ..._kernels import (
    _finish_step,
    _flush_subnormals,
    _gemm_acc,
    _gemm_acc_nt,
    _gemm_acc_tn,
    _restore_fp,
    _view1,
    _view3,
)
from .._table_kernels import (
    T_H,
    T_HAS_A,
    T_HAS_B,
    T_HAS_S,
    T_L,
    T_T,
    T_VIN,
    T_VOUT,
    _alloc_table_ws,
    _table_forward,
    _table_pass,
    _table_ws_bytes,
)

# Positions in the int layout (the first ones are the table pass's, `_table_kernels.T_*`).
LAY_H, LAY_VIN, LAY_VOUT, LAY_L, LAY_T, LAY_D = T_H, T_VIN, T_VOUT, T_L, T_T, 5
LAY_HAS_S, LAY_HAS_A, LAY_HAS_B = T_HAS_S, T_HAS_A, T_HAS_B
LAY_K, LAY_HAS_Q, LAY_HAS_UP = 9, 10, 11
LAY_OFF_E, LAY_OFF_P, LAY_OFF_R, LAY_OFF_WQ, LAY_OFF_WK, LAY_OFF_WV, LAY_OFF_WO, LAY_OFF_B = range(12, 20)
LAY_NPARAM = 20
LAY_SIZE = 21
# Positions in the float layout.
FLT_RHO_K, FLT_RHO_V, FLT_C = 0, 1, 2


def layout(cfg) -> tuple[np.ndarray, np.ndarray]:
    """``(ints, floats)``: sizes, flags and offsets into the flat parameter vector (an
    absent group has offset -1), and the context of keys and values and 1/√k."""
    lay = np.full(LAY_SIZE, -1, dtype=np.int64)
    lay[LAY_H] = cfg.heads
    lay[LAY_VIN] = cfg.vocab_in
    lay[LAY_VOUT] = cfg.vocab_out
    lay[LAY_L] = cfg.src_len
    lay[LAY_T] = cfg.tgt_len
    lay[LAY_D] = cfg.dim
    lay[LAY_HAS_S] = int(cfg.has_S)
    lay[LAY_HAS_A] = int(cfg.has_A)
    lay[LAY_HAS_B] = int(cfg.bias)
    lay[LAY_K] = cfg.k
    lay[LAY_HAS_Q] = int(cfg.has_query)
    lay[LAY_HAS_UP] = int(cfg.position_values)
    slot = {
        "E": LAY_OFF_E, "P": LAY_OFF_P, "R": LAY_OFF_R, "WQ": LAY_OFF_WQ, "WK": LAY_OFF_WK, "WV": LAY_OFF_WV,
        "WO": LAY_OFF_WO, "b": LAY_OFF_B,
    }  # fmt: skip
    offset = 0
    for name, shape in cfg.param_shapes().items():
        lay[slot[name]] = offset
        offset += int(np.prod(shape))
    lay[LAY_NPARAM] = offset
    flt = np.zeros(3, np.float64)
    flt[FLT_RHO_K] = cfg.context if cfg.has_A else 0.0
    flt[FLT_RHO_V] = cfg.context if cfg.position_values else 0.0
    flt[FLT_C] = 1.0 / np.sqrt(cfg.k)
    return lay, flt


DotWS = namedtuple(
    "DotWS",
    [
        "table",  # the table pass's workspace (`_table_kernels.TableWS`)
        "U",  # (H, Vout, Vin)
        "S",  # (H, T, L)
        "A",  # (H, T, Vin)
        "Up",  # (H, Vout, L)
        "gS",  # gradients of the tables, same shapes
        "gA",
        "gUp",
        "Q",  # (H, T, k)
        "KE",  # (H, Vin, k)
        "KP",  # (H, L, k)
        "VE",  # (H, Vin, d)
        "VP",  # (H, L, d)
        "dQ",  # (1, T, k): one head's
        "dKE",  # (1, Vin, k)
        "dKP",  # (1, L, k)
        "dVE",  # (1, Vin, d)
        "dVP",  # (1, L, d)
    ],
)


def _ws_shapes(lay) -> list[tuple[int, ...]]:
    """The shapes of `DotWS`'s arrays after ``table`` (plain Python: `workspace_bytes`)."""
    ints = lay[0]
    H, Vin, Vout, L, T, d, k = (int(ints[i]) for i in (LAY_H, LAY_VIN, LAY_VOUT, LAY_L, LAY_T, LAY_D, LAY_K))
    return [
        (H, Vout, Vin), (H, T, L), (H, T, Vin), (H, Vout, L), (H, T, L), (H, T, Vin), (H, Vout, L),
        (H, T, k), (H, Vin, k), (H, L, k), (H, Vin, d), (H, L, d),
        (1, T, k), (1, Vin, k), (1, L, k), (1, Vin, d), (1, L, d),
    ]  # fmt: skip


@jit(fastmath=False)
def _alloc_ws(lay, theta, B):
    """Workspace of `_core` for batches of B examples, allocated once outside any step loop."""
    ints = lay[0]
    H, Vin, Vout, L, T, d, k = (
        ints[LAY_H], ints[LAY_VIN], ints[LAY_VOUT], ints[LAY_L], ints[LAY_T], ints[LAY_D], ints[LAY_K]
    )  # fmt: skip
    per_position = ints[LAY_HAS_UP] == 1 or lay[1][FLT_RHO_V] != 0.0
    dt = theta.dtype
    return DotWS(
        _alloc_table_ws(ints, theta, B, per_position, True),
        np.zeros((H, Vout, Vin), dt),
        np.zeros((H, T, L), dt),
        np.zeros((H, T, Vin), dt),
        np.zeros((H, Vout, L), dt),
        np.zeros((H, T, L), dt),
        np.zeros((H, T, Vin), dt),
        np.zeros((H, Vout, L), dt),
        np.zeros((H, T, k), dt),
        np.zeros((H, Vin, k), dt),
        np.zeros((H, L, k), dt),
        np.zeros((H, Vin, d), dt),
        np.zeros((H, L, d), dt),
        np.zeros((1, T, k), dt),
        np.zeros((1, Vin, k), dt),
        np.zeros((1, L, k), dt),
        np.zeros((1, Vin, d), dt),
        np.zeros((1, L, d), dt),
    )


def workspace_bytes(lay, B: int, itemsize: int) -> int:
    """Bytes `_alloc_ws` allocates for batches of B examples (plain Python, exact
    integers: sizes are checked before anything is allocated). Mirrors `_alloc_ws`;
    `tests/test_architectures.py` holds the two together."""
    ints, flt = lay
    per_position = int(ints[LAY_HAS_UP]) == 1 or float(flt[FLT_RHO_V]) != 0.0
    own = sum(int(np.prod(s, dtype=object)) for s in _ws_shapes(lay))
    return _table_ws_bytes(ints, B, itemsize, per_position, True) + itemsize * own


# =============================================================================
# tables from factors, and back
# =============================================================================
@jit()
def _tables(theta, lay, ws):
    """The effective tables of every head into ``ws`` (S, A, U, Up and the products
    they are made of)."""
    ints, flt = lay
    H, Vin, Vout, L, T, d, k = (
        ints[LAY_H], ints[LAY_VIN], ints[LAY_VOUT], ints[LAY_L], ints[LAY_T], ints[LAY_D], ints[LAY_K]
    )  # fmt: skip
    has_S, has_A, has_Q, has_Up = (
        ints[LAY_HAS_S] == 1,
        ints[LAY_HAS_A] == 1,
        ints[LAY_HAS_Q] == 1,
        ints[LAY_HAS_UP] == 1,
    )
    c = flt[FLT_C]
    E = _view3(theta, ints[LAY_OFF_E], H, Vin, d)
    P = _view3(theta, ints[LAY_OFF_P], H, L, d)
    R = _view3(theta, ints[LAY_OFF_R], H, T, d)
    WQ = _view3(theta, ints[LAY_OFF_WQ], H, d, k)
    WK = _view3(theta, ints[LAY_OFF_WK], H, d, k)
    WV = _view3(theta, ints[LAY_OFF_WV], H, d, d)
    WO = _view3(theta, ints[LAY_OFF_WO], H, Vout, d)
    ws.U[:] = 0.0
    ws.VE[:] = 0.0
    if has_Q:
        ws.Q[:] = 0.0
        ws.S[:] = 0.0
        ws.A[:] = 0.0
        ws.KP[:] = 0.0
        ws.KE[:] = 0.0
    if has_Up:
        ws.Up[:] = 0.0
        ws.VP[:] = 0.0
    for h in range(H):
        # values: VE = E WV, U = WO VEᵀ (and VP = P WV, Up = WO VPᵀ)
        _gemm_acc(E, h, WV, h, ws.VE, h, Vin, d, d)
        _gemm_acc_nt(WO, h, ws.VE, h, ws.U, h, Vout, d, Vin)
        if has_Up:
            _gemm_acc(P, h, WV, h, ws.VP, h, L, d, d)
            _gemm_acc_nt(WO, h, ws.VP, h, ws.Up, h, Vout, d, L)
        if not has_Q:
            continue
        # attention: Q = R WQ, S = c Q (P WK)ᵀ, A = c Q (E WK)ᵀ
        _gemm_acc(R, h, WQ, h, ws.Q, h, T, d, k)
        if has_S:
            _gemm_acc(P, h, WK, h, ws.KP, h, L, d, k)
            _gemm_acc_nt(ws.Q, h, ws.KP, h, ws.S, h, T, k, L)
            for t in range(T):
                for l in range(L):  # noqa: E741
                    ws.S[h, t, l] *= c
        if has_A:
            _gemm_acc(E, h, WK, h, ws.KE, h, Vin, d, k)
            _gemm_acc_nt(ws.Q, h, ws.KE, h, ws.A, h, T, k, Vin)
            for t in range(T):
                for i in range(Vin):
                    ws.A[h, t, i] *= c


@jit()
def _chain(theta, lay, ws, grad):
    """The factors' gradients from the tables' (in ``ws``: ∂U transposed in ``table.dUt``,
    ∂S, ∂A, ∂Up), written into ``grad`` (zeroed before; ∂b is already there)."""
    ints, flt = lay
    H, Vin, Vout, L, T, d, k = (
        ints[LAY_H], ints[LAY_VIN], ints[LAY_VOUT], ints[LAY_L], ints[LAY_T], ints[LAY_D], ints[LAY_K]
    )  # fmt: skip
    has_S, has_A, has_Q, has_Up = (
        ints[LAY_HAS_S] == 1,
        ints[LAY_HAS_A] == 1,
        ints[LAY_HAS_Q] == 1,
        ints[LAY_HAS_UP] == 1,
    )
    c = flt[FLT_C]
    E = _view3(theta, ints[LAY_OFF_E], H, Vin, d)
    P = _view3(theta, ints[LAY_OFF_P], H, L, d)
    R = _view3(theta, ints[LAY_OFF_R], H, T, d)
    WQ = _view3(theta, ints[LAY_OFF_WQ], H, d, k)
    WK = _view3(theta, ints[LAY_OFF_WK], H, d, k)
    WV = _view3(theta, ints[LAY_OFF_WV], H, d, d)
    WO = _view3(theta, ints[LAY_OFF_WO], H, Vout, d)
    gE = _view3(grad, ints[LAY_OFF_E], H, Vin, d)
    gP = _view3(grad, ints[LAY_OFF_P], H, L, d)
    gR = _view3(grad, ints[LAY_OFF_R], H, T, d)
    gWQ = _view3(grad, ints[LAY_OFF_WQ], H, d, k)
    gWK = _view3(grad, ints[LAY_OFF_WK], H, d, k)
    gWV = _view3(grad, ints[LAY_OFF_WV], H, d, d)
    gWO = _view3(grad, ints[LAY_OFF_WO], H, Vout, d)
    dUt = ws.table.dUt
    for h in range(H):
        # values: ∂VE = ∂Uᵀ WO, ∂WO = ∂U VE, ∂WV = Eᵀ ∂VE, ∂E = ∂VE WVᵀ (and the same through P)
        ws.dVE[:] = 0.0
        _gemm_acc(dUt, h, WO, h, ws.dVE, 0, Vin, Vout, d)
        _gemm_acc_tn(dUt, h, ws.VE, h, gWO, h, Vout, Vin, d)
        _gemm_acc_tn(E, h, ws.dVE, 0, gWV, h, d, Vin, d)
        _gemm_acc_nt(ws.dVE, 0, WV, h, gE, h, Vin, d, d)
        if has_Up:
            ws.dVP[:] = 0.0
            _gemm_acc_tn(ws.gUp, h, WO, h, ws.dVP, 0, L, Vout, d)
            _gemm_acc(ws.gUp, h, ws.VP, h, gWO, h, Vout, L, d)
            _gemm_acc_tn(P, h, ws.dVP, 0, gWV, h, d, L, d)
            _gemm_acc_nt(ws.dVP, 0, WV, h, gP, h, L, d, d)
        if not has_Q:
            continue
        # attention: ∂Q = c (∂S KP + ∂A KE), ∂KP = c ∂Sᵀ Q, ∂KE = c ∂Aᵀ Q
        ws.dQ[:] = 0.0
        if has_S:
            ws.dKP[:] = 0.0
            _gemm_acc(ws.gS, h, ws.KP, h, ws.dQ, 0, T, L, k)
            _gemm_acc_tn(ws.gS, h, ws.Q, h, ws.dKP, 0, L, T, k)
            for l in range(L):  # noqa: E741
                for j in range(k):
                    ws.dKP[0, l, j] *= c
            # ∂WK += Pᵀ ∂KP, ∂P += ∂KP WKᵀ
            _gemm_acc_tn(P, h, ws.dKP, 0, gWK, h, d, L, k)
            _gemm_acc_nt(ws.dKP, 0, WK, h, gP, h, L, k, d)
        if has_A:
            ws.dKE[:] = 0.0
            _gemm_acc(ws.gA, h, ws.KE, h, ws.dQ, 0, T, Vin, k)
            _gemm_acc_tn(ws.gA, h, ws.Q, h, ws.dKE, 0, Vin, T, k)
            for i in range(Vin):
                for j in range(k):
                    ws.dKE[0, i, j] *= c
            # ∂WK += Eᵀ ∂KE, ∂E += ∂KE WKᵀ
            _gemm_acc_tn(E, h, ws.dKE, 0, gWK, h, d, Vin, k)
            _gemm_acc_nt(ws.dKE, 0, WK, h, gE, h, Vin, k, d)
        for t in range(T):
            for j in range(k):
                ws.dQ[0, t, j] *= c
        # ∂R = ∂Q WQᵀ, ∂WQ = Rᵀ ∂Q
        _gemm_acc_nt(ws.dQ, 0, WQ, h, gR, h, T, k, d)
        _gemm_acc_tn(R, h, ws.dQ, 0, gWQ, h, d, T, k)


# =============================================================================
# the model: one pass over a batch
# =============================================================================
@jit()
def _core(x, y, gold, theta, lay, grad, ws, want_grad, want_metrics, metrics, want_loss):
    """Loss of one batch through the effective tables; the factors' gradient into ``grad``."""
    ints, flt = lay
    Vout = ints[LAY_VOUT]
    if want_grad:
        grad[:] = 0.0
    _tables(theta, lay, ws)
    bias = _view1(theta, ints[LAY_OFF_B], Vout)
    gb = _view1(grad, ints[LAY_OFF_B], Vout)
    loss = _table_pass(
        x, y, gold, ws.U, ws.S, ws.A, bias, ws.Up, ints, flt[FLT_RHO_K], flt[FLT_RHO_V], ints[LAY_HAS_UP] == 1, True,
        ws.table, ws.gS, ws.gA, gb, ws.gUp, want_grad, want_metrics, metrics, want_loss,
    )  # fmt: skip
    if want_grad:
        _chain(theta, lay, ws, grad)
    return loss


# =============================================================================
# public kernels (each has a NumPy oracle in _reference.REGISTRY)
# =============================================================================
@jit()
def loss_grad(x, y, theta, lay, grad):
    """Mean cross-entropy of (x, y) and its gradient, written into ``grad``."""
    ws = _alloc_ws(lay, theta, x.shape[0])
    gold = np.zeros((1, 1), np.int64)
    metrics = np.zeros(1, np.float64)
    fp = _flush_subnormals()
    loss = _core(x, y, gold, theta, lay, grad, ws, True, False, metrics, True)
    _restore_fp(fp)
    return loss


@jit()
def forward(x, y, theta, lay, z_out, alpha_out):
    """Logits ``z_out`` (B, T, Vout) and attention ``alpha_out`` (H, B, T, L) (``y``, the
    targets, is not read: this model does not feed its outputs back)."""
    ints, flt = lay
    ws = _alloc_ws(lay, theta, x.shape[0])
    fp = _flush_subnormals()
    _tables(theta, lay, ws)
    bias = _view1(theta, ints[LAY_OFF_B], ints[LAY_VOUT])
    _table_forward(
        x, ws.U, ws.S, ws.A, bias, ws.Up, ints, flt[FLT_RHO_K], flt[FLT_RHO_V], ints[LAY_HAS_UP] == 1, True,
        ws.table, z_out, alpha_out,
    )  # fmt: skip
    _restore_fp(fp)


@jit(parallel=True, nogil=True)
def train_runs(
    xs, ys, golds, thetas, m1s, m2s, lay, hypers, opts, step0, update_last, log_flags, active, limits, out_loss,
    out_metrics, done,
):  # fmt: skip
    """The step loop of R independent runs, in parallel over runs: as rung 0's
    (``attnsim/arch/free/_kernels.train_runs``), with this model's pass."""
    R = thetas.shape[0]
    B = xs.shape[2]
    K = log_flags.shape[0]
    for r in prange(R):
        done[r] = 0
        if not active[r]:
            continue
        # the run's own rows, taken once (a view made in the step loop costs reference counting every step)
        theta, m1, m2, hyper, limit = thetas[r], m1s[r], m2s[r], hypers[r], limits[r : r + 1]
        xr, yr, gr, loss_r, met_r = xs[r], ys[r], golds[r % golds.shape[0]], out_loss[r], out_metrics[r]
        ws = _alloc_ws(lay, theta, B)
        grad = np.zeros(thetas.shape[1], thetas.dtype)
        done[r] = K
        fp = _flush_subnormals()
        for k in range(K):
            kk = k if xr.shape[0] > 1 else 0
            update = (k != K - 1) or update_last  # all but a final evaluation
            want = log_flags[k]
            loss = _core(xr[kk], yr[kk], gr[kk], theta, lay, grad, ws, update, want, met_r[k], want)
            if _finish_step(loss, k, want, update, theta, grad, m1, m2, hyper, opts[r], step0 + k + 1, limit, loss_r):
                done[r] = k
                break
        _restore_fp(fp)
