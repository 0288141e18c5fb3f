"""Rung 0's kernels: the free model's pass, its public kernels and its step kernel.

The parameters are the tables themselves (or ``U = W @ E``): `_core` takes views of the
flat parameter vector ``theta``, runs the table model's pass (`_table_kernels._table_pass`)
and writes ∂U (or ∂W, ∂E) beside the ∂S, ∂A, ∂b the pass writes in place. The plain-NumPy
oracle is `_reference.py` beside this file.
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
    _restore_fp,
    _transpose,
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

# Positions in the layout array (see `layout`); the kernels use the same numbers. The
# first ones are those the table model's pass reads (`_table_kernels.T_*`).
LAY_H, LAY_VIN, LAY_VOUT, LAY_L, LAY_T, LAY_D = T_H, T_VIN, T_VOUT, T_L, T_T, 5
LAY_HAS_S, LAY_HAS_A, LAY_HAS_B = T_HAS_S, T_HAS_A, T_HAS_B
LAY_OFF_U, LAY_OFF_W, LAY_OFF_E, LAY_OFF_S, LAY_OFF_A, LAY_OFF_B = 9, 10, 11, 12, 13, 14
LAY_NPARAM = 15
LAY_SIZE = 16


def layout(cfg) -> np.ndarray:
    """Unpack ``cfg`` into the int64 array the kernels read (positions ``LAY_*``).

    Offsets index the flat parameter vector; an absent group has offset -1.
    """
    lay = np.full(LAY_SIZE, -1, dtype=np.int64)
    lay[LAY_H] = cfg.heads
    lay[LAY_VIN] = cfg.vocab_in
    lay[LAY_VOUT] = cfg.vocab_out
    lay[LAY_L] = cfg.src_len
    lay[LAY_T] = cfg.tgt_len
    lay[LAY_D] = 0 if cfg.d_model is None else cfg.d_model
    lay[LAY_HAS_S] = int(cfg.has_S)
    lay[LAY_HAS_A] = int(cfg.has_A)
    lay[LAY_HAS_B] = int(cfg.bias)
    offset = 0
    slot = {"U": LAY_OFF_U, "W": LAY_OFF_W, "E": LAY_OFF_E, "S": LAY_OFF_S, "A": LAY_OFF_A, "b": LAY_OFF_B}
    for name, shape in cfg.param_shapes().items():
        lay[slot[name]] = offset
        offset += int(np.prod(shape))
    lay[LAY_NPARAM] = offset
    return lay


FreeWS = namedtuple(
    "FreeWS",
    [
        "table",  # the table pass's workspace (`_table_kernels.TableWS`)
        "Ubuf",  # (H, Vout, Vin): U = W @ E when factored
        "ET",  # (1, Vin, d)
        "WT",  # (1, d, Vout)
        "dU",  # (1, Vout, Vin): dU of one head (factored)
        "no_Up",  # (1, 1, 1): rung 0 has no per-position values (a dummy for the pass)
    ],
)


@jit(fastmath=False)
def _alloc_ws(lay, theta, B):
    """Workspace of `_core` for batches of B examples, allocated once outside any step loop."""
    H, Vin, Vout, d = lay[LAY_H], lay[LAY_VIN], lay[LAY_VOUT], lay[LAY_D]
    dt = theta.dtype
    dd = max(d, 1)
    return FreeWS(
        _alloc_table_ws(lay, theta, B, False, False),
        np.zeros((H, Vout, Vin), dt),
        np.zeros((1, Vin, dd), dt),
        np.zeros((1, dd, Vout), dt),
        np.zeros((1, Vout, Vin), dt),
        np.zeros((1, 1, 1), dt),
    )


def workspace_bytes(lay, B: int, itemsize: int) -> int:
    """Bytes `_alloc_ws` allocates for batches of B examples (plain Python, exact
    integers: sizes are checked before anything is allocated). Mirrors `_alloc_ws`;
    `tests/test_memory.py` holds the two together."""
    H, Vin, Vout, d = (int(lay[i]) for i in (LAY_H, LAY_VIN, LAY_VOUT, LAY_D))
    dd = max(d, 1)
    return _table_ws_bytes(lay, B, itemsize, False, False) + itemsize * (
        H * Vout * Vin + Vin * dd + dd * Vout + Vout * Vin + 1
    )


@jit()
def _table(theta, lay, Ubuf):
    """``U`` (H, Vout, Vin): a view of ``theta``, or ``W @ E`` in ``Ubuf``."""
    H, Vin, Vout, d = lay[LAY_H], lay[LAY_VIN], lay[LAY_VOUT], lay[LAY_D]
    if d == 0:
        return _view3(theta, lay[LAY_OFF_U], H, Vout, Vin)
    W = _view3(theta, lay[LAY_OFF_W], H, Vout, d)
    E = _view3(theta, lay[LAY_OFF_E], H, d, Vin)
    Ubuf[:] = 0.0
    for h in range(H):
        _gemm_acc(W, h, E, h, Ubuf, h, Vout, d, Vin)  # U[h] = W[h] @ E[h]
    return Ubuf


# =============================================================================
# the model: one pass over a batch
# =============================================================================
@jit()
def _core(x, y, gold, theta, lay, grad, ws, want_grad, want_metrics, metrics, want_loss):
    """Loss of one batch (`_table_pass`); its gradient into ``grad`` (flat, the layout of ``theta``)."""
    H, Vin, Vout, L, T, d = lay[LAY_H], lay[LAY_VIN], lay[LAY_VOUT], lay[LAY_L], lay[LAY_T], lay[LAY_D]
    if want_grad:
        grad[:] = 0.0
    U = _table(theta, lay, ws.Ubuf)
    S = _view3(theta, lay[LAY_OFF_S], H, T, L)
    A = _view3(theta, lay[LAY_OFF_A], H, T, Vin)
    bias = _view1(theta, lay[LAY_OFF_B], Vout)
    gS = _view3(grad, lay[LAY_OFF_S], H, T, L)
    gA = _view3(grad, lay[LAY_OFF_A], H, T, Vin)
    gb = _view1(grad, lay[LAY_OFF_B], Vout)
    loss = _table_pass(
        x, y, gold, U, S, A, bias, ws.no_Up, lay, 0.0, 0.0, False, False, ws.table, gS, gA, gb, ws.no_Up, want_grad,
        want_metrics, metrics, want_loss,
    )  # fmt: skip
    if want_grad:
        dUt = ws.table.dUt
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
                _transpose(dUt, h, ws.dU, 0)
                _transpose(E, h, ws.ET, 0)
                _transpose(W, h, ws.WT, 0)
                _gemm_acc(ws.dU, 0, ws.ET, 0, gW, h, Vout, Vin, d)
                _gemm_acc(ws.WT, 0, ws.dU, 0, gE, h, d, Vout, Vin)
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
    H, Vin, L, T, Vout = lay[LAY_H], lay[LAY_VIN], lay[LAY_L], lay[LAY_T], lay[LAY_VOUT]
    ws = _alloc_ws(lay, theta, x.shape[0])
    U = _table(theta, lay, ws.Ubuf)
    S = _view3(theta, lay[LAY_OFF_S], H, T, L)
    A = _view3(theta, lay[LAY_OFF_A], H, T, Vin)
    bias = _view1(theta, lay[LAY_OFF_B], Vout)
    fp = _flush_subnormals()
    _table_forward(x, U, S, A, bias, ws.no_Up, lay, 0.0, 0.0, False, False, ws.table, z_out, alpha_out)
    _restore_fp(fp)


@jit(parallel=True, nogil=True)
def train_runs(
    xs, ys, golds, thetas, m1s, m2s, lay, hypers, opts, step0, update_last, log_flags, active, limits, out_loss,
    out_metrics, done,
):  # fmt: skip
    """The step loop of R independent runs with the same shapes, in parallel over runs.

    Run r trains ``thetas[r]`` (moments ``m1s[r], m2s[r]``) on its own data ``xs[r], ys[r],
    golds[r]`` (shape (K or 1, B, ·); ``golds`` with one leading row is shared by every
    run) with ``hypers[r]`` and ``opts[r]``, for ``K = len(log_flags)`` passes: pass k
    evaluates the loss at the current parameters on batch ``xs[r, k]`` (or ``xs[r, 0]``
    for every k when ``xs`` holds a single batch: gradient descent on a fixed batch),
    writes ``out_loss[r, k]`` and, when ``log_flags[k]``, the metrics row
    ``out_metrics[r, k]``, then updates (`_finish_step`; the last pass only when
    ``update_last``). ``step0`` is the number of updates before this call. ``done[r]``
    gets the number of passes before the run stopped (K if it did not); runs with
    ``active[r]`` false are left alone (``done[r] = 0``).

    Every run is computed start to finish by one thread with its own workspace, by the
    same compiled code whatever R and the number of threads, so a run gives the same
    bits alone (R = 1, which is how `train` calls it) or among others.
    """
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
