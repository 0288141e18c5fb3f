"""Rung 3's kernels: the authors' attention classifier, forward and backward through time.

The two directions of the bidirectional LSTM are two runs of rung 2's recurrence
(`attnsim.arch.rnn._kernels._recur` and its backward): the forward one reads the words in
order, the backward one reads them last first (its time-major row ``s·B + b`` holds word
``L−1−s``), so the state of position l is ``[h_fwd after word l ; h_bwd after word l]``.
Everything after the encoder is a product over all B·L positions at once: the attention
network ``a = w₂ ReLU(W₁ h + b₁) + b₂``, the probe ``β = w_β h + b_β``, then per example a
softmax over the L logits and the score ``s = Σ_l α β``. The loss is logistic on the label,
which is the cross-entropy of the two logits ``(0, s)``.

Backward, ``∂s = σ(s) − y`` (over B), ``∂β = ∂s α``, ``∂a = ∂s α (β − s)``; the
states' gradient ``∂h = ∂β w_β + ∂pre W₁`` is split into the two directions' and sent back
through each recurrence (the backward direction's in its own time order). The input half
of the gates and its gradients go through the table ``Emb W_ihᵀ`` when the vocabulary is
smaller than the batch's inputs, as rung 2's do. Nothing is allocated inside the step loop.
The plain-NumPy oracle (`_reference.py`) runs one sequence, one position, at a time.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import prange

from ..._kernels import (
    MET_ACC,
    MET_HEADS,
    MET_KTIW,
    MET_LOSS,
    _finish_step,
    _flush_subnormals,
    _restore_fp,
    _softmax_rows,
)
from ..rnn._kernels import (
    _add_rows,
    _col_sums_into,
    _input_gates,
    _input_grads,
    _m2,
    _mm,
    _native_size,
    _recur,
    _recur_back,
    _recurrent_grads,
    _uses_table,
    _v1,
    jit,
)

# Positions in the int layout.
LAY_V, LAY_L, LAY_E, LAY_D, LAY_M, LAY_MLP = range(6)
(
    LAY_OFF_EMB,
    LAY_OFF_WIH, LAY_OFF_WHH, LAY_OFF_BIH, LAY_OFF_BHH,
    LAY_OFF_WIH_R, LAY_OFF_WHH_R, LAY_OFF_BIH_R, LAY_OFF_BHH_R,
    LAY_OFF_W1, LAY_OFF_B1, LAY_OFF_W2, LAY_OFF_B2, LAY_OFF_WB, LAY_OFF_BB,
) = range(6, 21)  # fmt: skip
LAY_NPARAM = 21
LAY_SIZE = 22

_SLOTS = {
    "embedding.weight": LAY_OFF_EMB,
    "encoder.weight_ih": LAY_OFF_WIH,
    "encoder.weight_hh": LAY_OFF_WHH,
    "encoder.bias_ih": LAY_OFF_BIH,
    "encoder.bias_hh": LAY_OFF_BHH,
    "encoder.weight_ih_reverse": LAY_OFF_WIH_R,
    "encoder.weight_hh_reverse": LAY_OFF_WHH_R,
    "encoder.bias_ih_reverse": LAY_OFF_BIH_R,
    "encoder.bias_hh_reverse": LAY_OFF_BHH_R,
    "hidden2attn_intermediate.weight": LAY_OFF_W1,
    "hidden2attn_intermediate.bias": LAY_OFF_B1,
    "attn_intermediate2logit.weight": LAY_OFF_W2,
    "attn_intermediate2logit.bias": LAY_OFF_B2,
    "hidden2beta.weight": LAY_OFF_WB,
    "hidden2beta.bias": LAY_OFF_BB,
}


def layout(cfg) -> tuple[np.ndarray, np.ndarray]:
    """``(ints, floats)``: sizes, the attention mode and offsets into the flat parameter
    vector (an absent group has offset −1)."""
    lay = np.full(LAY_SIZE, -1, dtype=np.int64)
    lay[LAY_V] = cfg.vocab_in
    lay[LAY_L] = cfg.src_len
    lay[LAY_E] = cfg.embed
    lay[LAY_D] = cfg.hidden
    lay[LAY_M] = cfg.intermediate
    lay[LAY_MLP] = int(cfg.attention == "mlp")
    offset = 0
    for name, shape in cfg.param_shapes().items():
        lay[_SLOTS[name]] = offset
        offset += int(np.prod(shape))
    lay[LAY_NPARAM] = offset
    return lay, np.zeros(1, np.float64)


ClfWS = namedtuple(
    "ClfWS",
    [
        # the two directions, time-major (row s·B + b; the backward one reads word L−1−s)
        "TOKF", "TOKR",  # (LB,) int64: the word of each row
        "XF", "XR",  # (LB, e): gathered embeddings (a 1-row dummy with the table)
        "EWF", "EWR",  # (V, 4d): the table Emb W_ihᵀ, then ∂ of its rows (a 1-row dummy without)
        "GIF", "GIR",  # (LB, 4d): input halves of the gates, then the gates
        "HF", "HR", "CF", "CR", "TCF", "TCR",  # ((L+1)B, d): states, cells, tanh of the cells
        "GH",  # (B, 4d): the recurrent half of one step
        "GHN",  # (1, d): the GRU's array, unused by the LSTM
        # batch-major (row b·L + l)
        "HB",  # (BL, 2d): the state of every position
        "MID",  # (BL, m): the attention network's hidden layer, after the ReLU
        "AL",  # (BL, 1): attention logits, then α
        "BETA",  # (BL, 1): β
        "S",  # (B,) float64: scores
        # backward
        "dAL", "dBETA",  # (BL, 1)
        "dMID",  # (BL, m)
        "dHB",  # (BL, 2d)
        "dHF", "dHR",  # (BL, d): each direction's share, in its own time order
        "dGF", "dGR",  # (LB, 4d): the gates' gradients
        "dX",  # (max(V or LB), e)
        "dh", "dc", "tBd",  # (B, d)
        "EG", "KG",  # scratch of the exponential in the model's dtype (`_native_size`)
        "E", "K",  # (L,) float64: one example's softmax
    ],
)  # fmt: skip


def _ws_shapes(ints, B):
    """The shapes of `ClfWS`'s arrays (plain Python: `workspace_bytes`)."""
    V, L, e, d, m = (int(ints[i]) for i in (LAY_V, LAY_L, LAY_E, LAY_D, LAY_M))
    mlp = int(ints[LAY_MLP]) == 1
    LB = L * B
    tab = _uses_table(V, LB)
    X, EW = (1 if tab else LB), (V if tab else 1)
    M = m if mlp else 1
    return [
        (LB,), (LB,),
        (X, e), (X, e), (EW, 4 * d), (EW, 4 * d),
        (LB, 4 * d), (LB, 4 * d),
        ((L + 1) * B, d), ((L + 1) * B, d), ((L + 1) * B, d), ((L + 1) * B, d), ((L + 1) * B, d), ((L + 1) * B, d),
        (B, 4 * d), (1, d),
        (LB, 2 * d), (LB if mlp else 1, M), (LB, 1), (LB, 1), (B,),
        (LB, 1), (LB, 1), (LB if mlp else 1, M), (LB, 2 * d), (LB, d), (LB, d),
        (LB, 4 * d), (LB, 4 * d), (max(V if tab else LB, 1), e), (B, d), (B, d), (B, d),
        (_native_size(B, L, 1, d, 4),), (_native_size(B, L, 1, d, 4),),
        (L,), (L,),
    ]  # fmt: skip


# the arrays that are 8-byte whatever the model's dtype: tokens, scores, softmax scratch
_WIDE = (0, 1, 20, 35, 36)


def workspace_bytes(lay, B: int, itemsize: int) -> int:
    """Bytes `_alloc_ws` allocates for batches of B examples (plain Python, exact integers);
    `tests/test_architectures.py` holds the two together."""
    shapes = _ws_shapes(lay[0], B)
    return sum((8 if i in _WIDE else itemsize) * math.prod(s) for i, s in enumerate(shapes))


@jit(fastmath=False)
def _alloc_ws(lay, theta, B):
    """Workspace of `_core` for batches of B examples, allocated once outside any step loop."""
    ints = lay[0]
    V, L, e, d, m = ints[LAY_V], ints[LAY_L], ints[LAY_E], ints[LAY_D], ints[LAY_M]
    mlp = ints[LAY_MLP] == 1
    dt = theta.dtype
    LB = L * B
    tab = _uses_table(V, LB)
    X = 1 if tab else LB
    EW = V if tab else 1
    M = m if mlp else 1
    ML = LB if mlp else 1
    SN = _native_size(B, L, 1, d, 4)
    DX = max(EW if tab else LB, 1)
    return ClfWS(
        np.zeros(LB, np.int64), np.zeros(LB, np.int64),
        np.zeros((X, e), dt), np.zeros((X, e), dt), np.zeros((EW, 4 * d), dt), np.zeros((EW, 4 * d), dt),
        np.zeros((LB, 4 * d), dt), np.zeros((LB, 4 * d), dt),
        np.zeros(((L + 1) * B, d), dt), np.zeros(((L + 1) * B, d), dt), np.zeros(((L + 1) * B, d), dt),
        np.zeros(((L + 1) * B, d), dt), np.zeros(((L + 1) * B, d), dt), np.zeros(((L + 1) * B, d), dt),
        np.zeros((B, 4 * d), dt), np.zeros((1, d), dt),
        np.zeros((LB, 2 * d), dt), np.zeros((ML, M), dt), np.zeros((LB, 1), dt), np.zeros((LB, 1), dt),
        np.zeros(B, np.float64),
        np.zeros((LB, 1), dt), np.zeros((LB, 1), dt), np.zeros((ML, M), dt), np.zeros((LB, 2 * d), dt),
        np.zeros((LB, d), dt), np.zeros((LB, d), dt),
        np.zeros((LB, 4 * d), dt), np.zeros((LB, 4 * d), dt), np.zeros((DX, e), dt),
        np.zeros((B, d), dt), np.zeros((B, d), dt), np.zeros((B, d), dt),
        np.zeros(SN, dt), np.zeros(SN, dt),
        np.zeros(L, np.float64), np.zeros(L, np.float64),
    )  # fmt: skip


# =============================================================================
# the model: one pass over a batch
# =============================================================================
@jit()
def _direction(tok, theta, ints, off_wih, off_whh, off_bih, off_bhh, X, EW, GI, Hs, Cs, TC, ws, B):
    """One direction of the encoder over the L words of ``tok`` (time-major)."""
    V, L, e, d = ints[LAY_V], ints[LAY_L], ints[LAY_E], ints[LAY_D]
    _input_gates(
        tok, _m2(theta, ints[LAY_OFF_EMB], V, e), _m2(theta, off_wih, 4 * d, e), _v1(theta, off_bih, 4 * d), X, EW, GI
    )
    Hs[:B] = 0.0
    Cs[:B] = 0.0
    _recur(GI, ws.GHN, Hs, Cs, TC, _m2(theta, off_whh, 4 * d, d), _v1(theta, off_bhh, 4 * d), ws.GH, L, B, d, False,
           ws.EG, ws.KG)  # fmt: skip


@jit()
def _forward_pass(x, theta, lay, ws):
    """Everything up to the scores ``ws.S``, with the attention ``ws.AL`` and ``ws.BETA``."""
    ints = lay[0]
    L, d, m = ints[LAY_L], ints[LAY_D], ints[LAY_M]
    mlp = ints[LAY_MLP] == 1
    B = x.shape[0]
    for b in range(B):
        for s in range(L):
            ws.TOKF[s * B + b] = x[b, s]
            ws.TOKR[s * B + b] = x[b, L - 1 - s]
    _direction(ws.TOKF, theta, ints, ints[LAY_OFF_WIH], ints[LAY_OFF_WHH], ints[LAY_OFF_BIH], ints[LAY_OFF_BHH],
               ws.XF, ws.EWF, ws.GIF, ws.HF, ws.CF, ws.TCF, ws, B)  # fmt: skip
    _direction(ws.TOKR, theta, ints, ints[LAY_OFF_WIH_R], ints[LAY_OFF_WHH_R], ints[LAY_OFF_BIH_R],
               ints[LAY_OFF_BHH_R], ws.XR, ws.EWR, ws.GIR, ws.HR, ws.CR, ws.TCR, ws, B)  # fmt: skip
    for b in range(B):
        for l in range(L):  # noqa: E741
            r = b * L + l
            for j in range(d):
                ws.HB[r, j] = ws.HF[(l + 1) * B + b, j]
                ws.HB[r, d + j] = ws.HR[(L - l) * B + b, j]
    # β, and the attention logits
    _mm(ws.HB, _m2(theta, ints[LAY_OFF_WB], 1, 2 * d).T, ws.BETA)
    bb = theta[ints[LAY_OFF_BB]]
    for r in range(B * L):
        ws.BETA[r, 0] += bb
    if mlp:
        _mm(ws.HB, _m2(theta, ints[LAY_OFF_W1], m, 2 * d).T, ws.MID)
        _add_rows(ws.MID, _v1(theta, ints[LAY_OFF_B1], m))
        for r in range(B * L):
            for j in range(m):
                if ws.MID[r, j] < 0:
                    ws.MID[r, j] = 0.0
        _mm(ws.MID, _m2(theta, ints[LAY_OFF_W2], 1, m).T, ws.AL)
        b2 = theta[ints[LAY_OFF_B2]]
        for r in range(B * L):
            ws.AL[r, 0] += b2
    # α, one example at a time, and the scores
    Kb = ws.K.view(np.int64)
    for b in range(B):
        if mlp:
            for l in range(L):  # noqa: E741
                ws.E[l] = ws.AL[b * L + l, 0]
            _softmax_rows(ws.E, ws.K, Kb, 1, L)
            for l in range(L):  # noqa: E741
                ws.AL[b * L + l, 0] = ws.E[l]
        else:
            for l in range(L):  # noqa: E741
                ws.AL[b * L + l, 0] = 1.0 / L
        s = 0.0
        for l in range(L):  # noqa: E741
            s += np.float64(ws.AL[b * L + l, 0]) * np.float64(ws.BETA[b * L + l, 0])
        ws.S[b] = s


@jit()
def _core(x, y, gold, theta, lay, grad, ws, want_grad, want_metrics, metrics, want_loss):
    """Mean logistic loss over the B labels; the gradient into ``grad``."""
    ints = lay[0]
    L, d, m = ints[LAY_L], ints[LAY_D], ints[LAY_M]
    mlp = ints[LAY_MLP] == 1
    B = x.shape[0]
    _forward_pass(x, theta, lay, ws)
    # loss = softplus(s) − y s, the cross-entropy of the logits (0, s); accuracy: argmax of them
    loss = 0.0
    hits = 0
    for b in range(B):
        s = ws.S[b]
        loss += max(s, 0.0) + math.log1p(math.exp(-abs(s))) - (s if y[b, 0] == 1 else 0.0)
        hits += (1 if s > 0.0 else 0) == y[b, 0]
    loss = loss / B
    if want_metrics:
        metrics[MET_LOSS] = loss
        metrics[MET_ACC] = hits / B
        n_gold = 0
        k_hit = 0
        a_hit = 0
        mass = 0.0
        for b in range(B):
            g = gold[b, 0]
            if g < 0:
                continue
            n_gold += 1
            sign = 1.0 if y[b, 0] == 1 else -1.0
            kb = 0
            ab = 0
            for l in range(1, L):  # noqa: E741
                if sign * ws.BETA[b * L + l, 0] > sign * ws.BETA[b * L + kb, 0]:
                    kb = l
                if ws.AL[b * L + l, 0] > ws.AL[b * L + ab, 0]:
                    ab = l
            k_hit += kb == g
            a_hit += ab == g
            mass += ws.AL[b * L + g, 0]
        metrics[MET_KTIW] = k_hit / n_gold if n_gold > 0 else np.nan
        metrics[MET_HEADS] = a_hit / n_gold if n_gold > 0 else np.nan
        metrics[MET_HEADS + 1] = mass / n_gold if n_gold > 0 else np.nan
    if not want_grad:
        return loss
    grad[:] = 0.0
    # ∂s = (σ(s) − y)/B; ∂β = ∂s α; ∂a = ∂s α (β − s)
    for b in range(B):
        s = ws.S[b]
        p = 1.0 / (1.0 + math.exp(-s)) if s >= 0 else math.exp(s) / (1.0 + math.exp(s))
        ds = (p - y[b, 0]) / B
        for l in range(L):  # noqa: E741
            r = b * L + l
            a = np.float64(ws.AL[r, 0])
            ws.dBETA[r, 0] = ds * a
            ws.dAL[r, 0] = ds * a * (np.float64(ws.BETA[r, 0]) - s)
    WB = _m2(theta, ints[LAY_OFF_WB], 1, 2 * d)
    _mm(ws.dBETA.T, ws.HB, _m2(grad, ints[LAY_OFF_WB], 1, 2 * d))
    _col_sums_into(ws.dBETA, _v1(grad, ints[LAY_OFF_BB], 1))
    # ∂h = ∂pre W₁ + ∂β w_β (the rank-one part as a loop)
    if mlp:
        W1 = _m2(theta, ints[LAY_OFF_W1], m, 2 * d)
        W2 = _m2(theta, ints[LAY_OFF_W2], 1, m)
        _mm(ws.dAL.T, ws.MID, _m2(grad, ints[LAY_OFF_W2], 1, m))
        _col_sums_into(ws.dAL, _v1(grad, ints[LAY_OFF_B2], 1))
        for r in range(B * L):
            for j in range(m):
                ws.dMID[r, j] = ws.dAL[r, 0] * W2[0, j] if ws.MID[r, j] > 0 else 0.0
        _mm(ws.dMID.T, ws.HB, _m2(grad, ints[LAY_OFF_W1], m, 2 * d))
        _col_sums_into(ws.dMID, _v1(grad, ints[LAY_OFF_B1], m))
        _mm(ws.dMID, W1, ws.dHB)
    else:
        ws.dHB[:] = 0.0
    for r in range(B * L):
        g = ws.dBETA[r, 0]
        for j in range(2 * d):
            ws.dHB[r, j] += g * WB[0, j]
    # each direction's share, in its own time order: batch-major row b·L + s is step s
    for b in range(B):
        for s in range(L):
            for j in range(d):
                ws.dHF[b * L + s, j] = ws.dHB[b * L + s, j]
                ws.dHR[b * L + s, j] = ws.dHB[b * L + L - 1 - s, d + j]
    _direction_back(ws.TOKF, theta, grad, ints, LAY_OFF_WIH, LAY_OFF_WHH, LAY_OFF_BIH, LAY_OFF_BHH, ws.XF, ws.EWF,
                    ws.GIF, ws.HF, ws.CF, ws.TCF, ws.dGF, ws.dHF, ws, B)  # fmt: skip
    _direction_back(ws.TOKR, theta, grad, ints, LAY_OFF_WIH_R, LAY_OFF_WHH_R, LAY_OFF_BIH_R, LAY_OFF_BHH_R, ws.XR,
                    ws.EWR, ws.GIR, ws.HR, ws.CR, ws.TCR, ws.dGR, ws.dHR, ws, B)  # fmt: skip
    return loss


@jit()
def _direction_back(tok, theta, grad, ints, s_wih, s_whh, s_bih, s_bhh, X, EW, GI, Hs, Cs, TC, dG, dIn, ws, B):
    """Backward through one direction of the encoder: ``dIn`` (row b·L + s) is the gradient
    reaching its step s from above; adds its weights' and the embedding's gradients."""
    V, L, e, d = ints[LAY_V], ints[LAY_L], ints[LAY_E], ints[LAY_D]
    ws.dh[:] = 0.0
    ws.dc[:] = 0.0
    _recur_back(GI, ws.GHN, Hs, Cs, TC, _m2(theta, ints[s_whh], 4 * d, d), dG, dG, ws.dh, ws.dc, dIn, L, L, B, d,
                False, ws.tBd)  # fmt: skip
    _recurrent_grads(dG, Hs, L, B, _m2(grad, ints[s_whh], 4 * d, d), _v1(grad, ints[s_bhh], 4 * d))
    _input_grads(
        tok, _m2(theta, ints[LAY_OFF_EMB], V, e), _m2(theta, ints[s_wih], 4 * d, e), dG, X, EW, ws.dX,
        _m2(grad, ints[LAY_OFF_EMB], V, e), _m2(grad, ints[s_wih], 4 * d, e), _v1(grad, ints[s_bih], 4 * d),
    )  # fmt: skip


# =============================================================================
# public kernels (each has a NumPy oracle in _reference.REGISTRY)
# =============================================================================
@jit()
def loss_grad(x, y, theta, lay, grad):
    """Mean logistic loss of (x, y) over the B labels and its gradient, into ``grad``."""
    ws = _alloc_ws(lay, theta, x.shape[0])
    gold = np.zeros((1, 1), np.int64)
    metrics = np.zeros(1, np.float64)
    fp = _flush_subnormals()
    loss = _core(x, y, gold, theta, lay, grad, ws, True, False, metrics, True)
    _restore_fp(fp)
    return loss


@jit()
def forward(x, y, theta, lay, z_out, alpha_out):
    """The logits ``z_out`` (B, 1, 2) = (0, s) and the attention ``alpha_out`` (1, B, 1, L)
    (``y`` is not read)."""
    L = lay[0][LAY_L]
    ws = _alloc_ws(lay, theta, x.shape[0])
    fp = _flush_subnormals()
    _forward_pass(x, theta, lay, ws)
    _restore_fp(fp)
    for b in range(x.shape[0]):
        z_out[b, 0, 0] = 0.0
        z_out[b, 0, 1] = ws.S[b]
        for l in range(L):  # noqa: E741
            alpha_out[0, b, 0, l] = ws.AL[b * L + l, 0]


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
        theta, m1, m2, hyper, limit = thetas[r], m1s[r], m2s[r], hypers[r], limits[r : r + 1]
        xr, yr, gr, loss_r, met_r = xs[r], ys[r], golds[r % golds.shape[0]], out_loss[r], out_metrics[r]
        ws = _alloc_ws(lay, theta, B)
        grad = np.zeros(thetas.shape[1], thetas.dtype)
        done[r] = K
        fp = _flush_subnormals()
        for k in range(K):
            kk = k if xr.shape[0] > 1 else 0
            update = (k != K - 1) or update_last
            want = log_flags[k]
            loss = _core(xr[kk], yr[kk], gr[kk], theta, lay, grad, ws, update, want, met_r[k], want)
            if _finish_step(loss, k, want, update, theta, grad, m1, m2, hyper, opts[r], step0 + k + 1, limit, loss_r):
                done[r] = k
                break
        _restore_fp(fp)
