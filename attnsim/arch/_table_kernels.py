"""The table model's pass, shared by the architectures whose logits, attention and values
are read from tables: rung 0 (``free``, whose tables are its parameters) and rung 1
(``dot``, whose tables are products of learned embeddings and maps).

docs/design.md §1.1–1.2 give the equations; §7.2 gives the two additions rung 1 needs,
both off for rung 0: context ρ (a source position's key and value also see half of each
neighbour's word) and per-position values ``Up``. With them, for head h,

    s[b,t,l]   = S[t,l] + A[t,x_l] + ρk/2 (A[t,x_{l−1}] + A[t,x_{l+1}])       (missing neighbours: 0)
    col[b,l]   = U[:,x_l] + Up[:,l] + ρv/2 (U[:,x_{l−1}] + U[:,x_{l+1}])      (what position l votes for)
    z[b,t]     = b + (1/H) Σ_h Σ_l α[h,b,t,l] col_h[b,l]

and `_table_pass` returns the loss, writes the gradients of the tables (``dUt``, the
transpose of ∂U, in the workspace; ∂S, ∂A, ∂b, ∂Up into the arrays it is given) and the
metrics row. An architecture turns its parameters into tables before the pass and the
tables' gradients into its parameters' after it.

Layout: the first entries of an architecture's ``lay`` are ``T_H … T_HAS_B``; the rest is
the architecture's own. Examples are processed in groups (`_plan`). Inside a group,
per-example arrays are matrices with one row per target step or source position and one
column per (example j, word o) pair, ``c = o*nG + j`` ("word-major", when the vocabulary
is small) or ``c = j*Vout + o`` ("example-major", otherwise). Either way the three
products of the model are long-row matrix products, and the softmax over words is
vectorized along whichever index is contiguous.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .._jit import jit
from .._kernels import (
    MET_ACC,
    MET_HEADS,
    MET_KTIW,
    MET_LOSS,
    _exp_inplace,
    _gemm_acc,
    _gemm_acc_nt,
    _softmax_rows,
    _transpose,
    _u,
)

# Positions of the shared entries of a layout (an int64 array); position 5 is the
# architecture's own (rung 0: the factored table's inner size; rung 1: the width d).
T_H, T_VIN, T_VOUT, T_L, T_T, T_HAS_S, T_HAS_A, T_HAS_B = 0, 1, 2, 3, 4, 6, 7, 8

# Grouping (see `_plan`).
GROUP_ELEMS = 16384  # about this many (word, position) entries per group
WORD_MAJOR_BELOW = 24  # vocabularies smaller than this use the word-major layout

TableWS = namedtuple(
    "TableWS",
    [
        "Ut",  # (H, Vin, Vout): Ut[h, i, :] = U[h, :, i]
        "dUt",  # (H, Vin, Vout): dUt[h, i, :] = dU[h, :, i]
        "alpha",  # (H, T, L)
        "alphaS",  # (H, T, L): alpha / H
        "alphaST",  # (H, L, T): alphaS transposed
        "UX",  # (H, L, GV): UX[h, l, c(j, o)] = col_h[b0+j, l][o]
        "z",  # (1, T, GV): logits
        "delta",  # (1, T, GV): same layout
        "dUX",  # (1, L, GV): what position l of example j receives
        "g",  # (1, T, L): g of one example (content attention)
        "Gbar",  # (H, T, L): sum_b g (attention shared by the batch)
        "dbv",  # (GV,): delta summed over t
        "e",  # scratch for exponentials, e[t*GV + c]
        "k",  # exponent scratch
        "k_bits",  # its int64 view
        "colmax",  # (G*T,): colmax[t*nG + j]
        "colsum",  # (G*T,)
        "xg",  # (L, G): xg[l, j] = x[b0+j, l]
        "Pk",  # (Vout, Vin): KTIW probabilities per word
        "psum",  # (G*L,) or (1,): per-position KTIW normalizers (values that depend on the position)
        "hsum",  # (max(2H, 1),): per-head metric sums
        "alphaG",  # (H, T, L, G): a batched content group's attention, alphaG[h, t, l, j]
        "alphaSG",  # (H, T, L, G): alphaG / H
        "gG",  # (T, L, G): g of the group's examples
    ],
)


@jit(fastmath=False)
def _plan(lay, B, batch_content):
    """(examples per group G, word-major layout?) for batches of B examples.

    A group holds about GROUP_ELEMS (word, position) entries, so that its arrays stay in
    the L2 cache. Content attention differs per example: its groups hold one example,
    unless ``batch_content`` and the vocabulary is small (word-major), where a group's
    examples are computed side by side, every loop vectorized across them (rung 1; rung 0
    keeps one example per group, whose results are recorded bit for bit).
    """
    per = lay[T_VOUT] * max(lay[T_L], lay[T_T])
    if lay[T_HAS_A] == 1:
        if not batch_content or lay[T_VOUT] >= WORD_MAJOR_BELOW:
            return 1, False
        per += lay[T_T] * lay[T_L]  # and the group's attention
    G = max(1, min(B, GROUP_ELEMS // per))
    return G, lay[T_VOUT] < WORD_MAJOR_BELOW


@jit(fastmath=False)
def _alloc_table_ws(lay, theta, B, per_position, batch_content):
    """The workspace of `_table_pass` for batches of B examples, in the dtype of ``theta``;
    ``per_position``: the values depend on the position (the KTIW probe then too);
    ``batch_content``: see `_plan`."""
    H, Vin, Vout, L, T = lay[T_H], lay[T_VIN], lay[T_VOUT], lay[T_L], lay[T_T]
    dt = theta.dtype
    G, wm = _plan(lay, B, batch_content)
    batched = lay[T_HAS_A] == 1 and G > 1
    Gb = G if batched else 1
    Hb, Tb, Lb = (H, T, L) if batched else (1, 1, 1)
    GV = G * Vout
    n = max(GV * T, T * L * Gb, Vin, Vout)  # exponentials of the logits, or of a group's attention
    if per_position:
        n = max(n, L * GV)
    e = np.zeros(n, np.float64)
    k = np.zeros(n, np.float64)
    return TableWS(
        np.zeros((H, Vin, Vout), dt),
        np.zeros((H, Vin, Vout), dt),
        np.zeros((H, T, L), dt),
        np.zeros((H, T, L), dt),
        np.zeros((H, L, T), dt),
        np.zeros((H, L, GV), dt),
        np.zeros((1, T, GV), dt),
        np.zeros((1, T, GV), dt),
        np.zeros((1, L, GV), dt),
        np.zeros((1, T, L), dt),
        np.zeros((H, T, L), dt),
        np.zeros(GV, dt),
        e,
        k,
        k.view(np.int64),
        np.zeros(G * T, np.float64),
        np.zeros(G * T, np.float64),
        np.zeros((L, G), np.int64),
        np.zeros((Vout, Vin), np.float64),
        np.zeros(G * L if per_position else 1, np.float64),
        np.zeros(max(2 * H, 1), np.float64),
        np.zeros((Hb, Tb, Lb, Gb), dt),
        np.zeros((Hb, Tb, Lb, Gb), dt),
        np.zeros((Tb, Lb, Gb), dt),
    )


def _table_ws_bytes(lay, B: int, itemsize: int, per_position: bool, batch_content: bool) -> int:
    """Bytes `_alloc_table_ws` allocates (plain Python, exact integers: sizes are checked
    before anything is allocated). `tests/test_architectures.py` holds the two together."""
    H, Vin, Vout, L, T = (int(lay[i]) for i in (T_H, T_VIN, T_VOUT, T_L, T_T))
    plan = getattr(_plan, "py_func", _plan)
    G, _ = plan(lay, B, batch_content)
    G = int(G)
    batched = int(lay[T_HAS_A]) == 1 and G > 1
    group_attention = (2 * H * T * L * G + T * L * G) if batched else 3
    GV = G * Vout
    n = max(GV * T, T * L * (G if batched else 1), Vin, Vout)
    if per_position:
        n = max(n, L * GV)
    in_dtype = 2 * H * Vin * Vout + 4 * H * T * L + H * L * GV + 2 * T * GV + L * GV + T * L + GV
    in_8 = 2 * n + 2 * G * T + L * G + Vout * Vin + (G * L if per_position else 1) + max(2 * H, 1)
    return (in_dtype + group_attention) * itemsize + 8 * in_8


# =============================================================================
# forward pieces
# =============================================================================
@jit()
def _attention(S, A, x, b, lay, rho_k, alpha, alphaS, alphaST, e, k, k_bits):
    """Attention of every head for example ``b`` (for all, when it has no content part).

    s[h,t,l] = S[h,t,l] + A[h,t,x_l] (+ ρk/2 of the neighbours' A);  alpha = softmax_l(s)
    (uniform when neither). alphaS = alpha / H and its transpose alphaST feed the
    products. The T rows of a head share one call of the exponential.
    """
    H, L, T = lay[T_H], lay[T_L], lay[T_T]
    has_S = lay[T_HAS_S] == 1
    has_A = lay[T_HAS_A] == 1
    context = has_A and rho_k != 0.0
    half = 0.5 * rho_k
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
                    if context:
                        nb = 0.0
                        if l > 0:
                            nb = nb + A[h, t, x[b, l - 1]]
                        if l < L - 1:
                            nb = nb + A[h, t, x[b, l + 1]]
                        v = v + half * nb
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


@jit()
def _group_logits(x, b0, nG, wm, U, Ut, bias, Up, lay, has_Up, rho_v, alphaS, UX, z, xg, batched, alphaSG):
    """Logits of examples b0..b0+nG-1 (docs/design.md §1.1, §7.2):

        z[0, t, c(j, o)] = b[o] + (1/H) sum_h sum_l alpha[h,t,l] col_h[b0+j, l][o]

    ``UX[h]`` (the gathered columns, col_h = U[h, :, x_l] plus the context terms) is kept
    for the backward pass. The attention is ``alphaS`` (shared by the group), or per
    example ``alphaSG`` for a batched content group (``batched``).
    """
    H, L, T, Vout = lay[T_H], lay[T_L], lay[T_T], lay[T_VOUT]
    GV = nG * Vout
    uG, uV = _u(nG), _u(Vout)
    for l in range(L):  # noqa: E741
        for j in range(nG):
            xg[l, j] = x[b0 + j, l]
    has_b = lay[T_HAS_B] == 1
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
        if has_Up or rho_v != 0.0:
            _add_context(xg, nG, wm, Vout, L, Ut, Up, h, has_Up, rho_v, UX)
        if batched:
            _batched_logits(alphaSG, UX, z, h, nG, T, L, Vout)
        else:
            _gemm_acc(alphaS, h, UX, h, z, 0, T, L, GV)


# =============================================================================
# a batched content group: its examples side by side (word-major, j contiguous)
# =============================================================================
@jit()
def _attention_group(S, A, x, b0, nG, lay, rho_k, alphaG, alphaSG, e, k, k_bits, colmax, colsum):
    """Every head's attention for examples b0..b0+nG-1 of a batched content group:
    s[h,t,l] = S[h,t,l] + A[h,t,x_jl] (+ ρk/2 of the neighbours'), softmax over l for every
    (t, j), into alphaG[h,t,l,j] (and alphaSG = alphaG / H). Scratch: e[(t*L + l)*nG + j],
    colmax and colsum[t*nG + j]."""
    H, L, T = lay[T_H], lay[T_L], lay[T_T]
    has_S = lay[T_HAS_S] == 1
    half = 0.5 * rho_k
    invH = 1.0 / H
    uG, uL = _u(nG), _u(L)
    for h in range(H):
        for t in range(T):
            for l in range(L):  # noqa: E741
                base = (_u(t) * uL + _u(l)) * uG
                sv = np.float64(S[h, t, l]) if has_S else 0.0
                for j in range(uG):
                    v = sv + A[h, t, x[b0 + j, l]]
                    if rho_k != 0.0:
                        nb = 0.0
                        if l > 0:
                            nb = nb + A[h, t, x[b0 + j, l - 1]]
                        if l < L - 1:
                            nb = nb + A[h, t, x[b0 + j, l + 1]]
                        v = v + half * nb
                    e[base + j] = v
        for t in range(T):  # max over l of every (t, j), subtracted
            ct = _u(t) * uG
            row = _u(t) * uL * uG
            for j in range(uG):
                colmax[ct + j] = e[row + j]
            for l in range(1, L):  # noqa: E741
                base = row + _u(l) * uG
                for j in range(uG):
                    v = e[base + j]
                    m = colmax[ct + j]
                    colmax[ct + j] = v if v > m else m
            for l in range(L):  # noqa: E741
                base = row + _u(l) * uG
                for j in range(uG):
                    e[base + j] = e[base + j] - colmax[ct + j]
        _exp_inplace(e, k, k_bits, T * L * nG)
        for t in range(T):
            ct = _u(t) * uG
            row = _u(t) * uL * uG
            for j in range(uG):
                colsum[ct + j] = 0.0
            for l in range(L):  # noqa: E741
                base = row + _u(l) * uG
                for j in range(uG):
                    colsum[ct + j] += e[base + j]
            for l in range(L):  # noqa: E741
                base = row + _u(l) * uG
                for j in range(uG):
                    a = e[base + j] / colsum[ct + j]
                    alphaG[h, t, l, j] = a
                    alphaSG[h, t, l, j] = a * invH


@jit()
def _batched_logits(alphaSG, UX, z, h, nG, T, L, Vout):
    """z[0, t, o*nG + j] += sum_l alphaSG[h,t,l,j] UX[h, l, o*nG + j]."""
    uG = _u(nG)
    for t in range(T):
        for l in range(L):  # noqa: E741
            for o in range(Vout):
                zo = _u(o) * uG
                for j in range(uG):
                    z[0, t, zo + j] += alphaSG[h, t, l, j] * UX[h, l, zo + j]


@jit()
def _batched_backward(x, b0, nG, lay, rho_k, h, alphaG, alphaSG, UX, delta, dUX, gG, gS, gA, r_):
    """One head's backward through a batched content group: dUX (what each position
    receives, docs/design.md §1.2), g = δ·col per example, and ∂s = α (g − Σ α g)/H into
    ∂S and ∂A (ρk/2 of it to the neighbours' words). ``r_`` (nG,) is scratch."""
    L, T, Vout = lay[T_L], lay[T_T], lay[T_VOUT]
    has_S = lay[T_HAS_S] == 1
    H = lay[T_H]
    invH = 1.0 / H
    half = 0.5 * rho_k
    uG = _u(nG)
    for l in range(L):  # noqa: E741
        for c in range(uG * _u(Vout)):
            dUX[0, l, c] = 0.0
    for t in range(T):
        # one pass over (l, o) gives both products: dUX[l] += alphaS[t, l] δ[t], g[t, l] += δ[t]·UX[l]
        for l in range(L):  # noqa: E741
            for j in range(uG):
                gG[t, l, j] = 0.0
            for o in range(Vout):
                zo = _u(o) * uG
                for j in range(uG):
                    d = delta[0, t, zo + j]
                    dUX[0, l, zo + j] += alphaSG[h, t, l, j] * d
                    gG[t, l, j] += d * UX[h, l, zo + j]
        for j in range(uG):
            r_[j] = 0.0
        for l in range(L):  # noqa: E741
            for j in range(uG):
                r_[j] += alphaG[h, t, l, j] * gG[t, l, j]
        for l in range(L):  # noqa: E741
            acc = 0.0
            for j in range(uG):
                ds = alphaG[h, t, l, j] * (gG[t, l, j] - r_[j]) * invH
                acc += ds
                gA[h, t, x[b0 + j, l]] += ds
                if rho_k != 0.0:
                    if l > 0:
                        gA[h, t, x[b0 + j, l - 1]] += half * ds
                    if l < L - 1:
                        gA[h, t, x[b0 + j, l + 1]] += half * ds
            if has_S:
                gS[h, t, l] += acc


@jit()
def _add_context(xg, nG, wm, Vout, L, Ut, Up, h, has_Up, rho_v, UX):
    """col_h[j, l] += Up[h, :, l] + ρv/2 (U[h, :, x_j,l−1] + U[h, :, x_j,l+1])."""
    half = 0.5 * rho_v
    uG, uV = _u(nG), _u(Vout)
    for l in range(L):  # noqa: E741
        for j in range(nG):
            left = xg[l - 1, j] if l > 0 else -1
            right = xg[l + 1, j] if l < L - 1 else -1
            for o in range(Vout):
                c = _u(o) * uG + _u(j) if wm else _u(j) * uV + _u(o)
                v = UX[h, l, c]
                if has_Up:
                    v = v + Up[h, o, l]
                if rho_v != 0.0:
                    nb = 0.0
                    if left >= 0:
                        nb = nb + Ut[h, left, o]
                    if right >= 0:
                        nb = nb + Ut[h, right, o]
                    v = v + half * nb
                UX[h, l, c] = v


@jit()
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


@jit()
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


@jit()
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


@jit()
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


@jit()
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


@jit()
def _ktiw_table(U, bias, lay, Pk, e, k, k_bits):
    """Pk[:, i] = softmax(b + mean_h U[h, :, i]): the output distribution when every
    head attends to one position holding word i (the KTIW probe, docs/design.md §3.4)."""
    H, Vin, Vout = lay[T_H], lay[T_VIN], lay[T_VOUT]
    has_b = lay[T_HAS_B] == 1
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


@jit()
def _scatter_context(dUX, xg, nG, wm, Vout, L, dUt, gUp, h, has_Up, rho_v):
    """The context terms of ∂U and ∂Up: what position l of example j receives also goes
    to Up[h, :, l], and ρv/2 of it to the rows of its neighbours' words."""
    half = 0.5 * rho_v
    uG, uV = _u(nG), _u(Vout)
    for l in range(L):  # noqa: E741
        for j in range(nG):
            left = xg[l - 1, j] if l > 0 else -1
            right = xg[l + 1, j] if l < L - 1 else -1
            for o in range(Vout):
                d = dUX[0, l, _u(o) * uG + _u(j) if wm else _u(j) * uV + _u(o)]
                if has_Up:
                    gUp[h, o, l] += d
                if rho_v != 0.0:
                    if left >= 0:
                        dUt[h, left, o] += half * d
                    if right >= 0:
                        dUt[h, right, o] += half * d


@jit()
def _group_probe(UX, bias, nG, wm, lay, e, k, k_bits, psum):
    """The KTIW probe when values depend on the position: e[l*GV + c(j, o)] becomes
    p(o | every head attends to position l of example j alone) = softmax_o(b + mean_h col_h[j, l])."""
    H, L, Vout = lay[T_H], lay[T_L], lay[T_VOUT]
    has_b = lay[T_HAS_B] == 1
    uG, uV = _u(nG), _u(Vout)
    uGV = uG * uV
    for l in range(L):  # noqa: E741
        el = _u(l) * uGV
        for c in range(uGV):
            v = 0.0
            for h in range(H):
                v += UX[h, l, c]
            e[el + c] = v / H
        for j in range(uG):
            m = -np.inf
            for o in range(uV):
                c = el + (_u(o) * uG + j if wm else j * uV + _u(o))
                if has_b:
                    e[c] += bias[o]
                m = e[c] if e[c] > m else m
            for o in range(uV):
                c = el + (_u(o) * uG + j if wm else j * uV + _u(o))
                e[c] = e[c] - m
    _exp_inplace(e, k, k_bits, L * nG * Vout)
    for l in range(L):  # noqa: E741
        el = _u(l) * uGV
        for j in range(uG):
            s = 0.0
            for o in range(uV):
                s += e[el + (_u(o) * uG + j if wm else j * uV + _u(o))]
            psum[_u(l) * uG + j] = s
            for o in range(uV):
                c = el + (_u(o) * uG + j if wm else j * uV + _u(o))
                e[c] = e[c] / s


# =============================================================================
# the pass over a batch
# =============================================================================
# inlined into each architecture's `_core`: called once per step with a 24-array workspace
# and 14 more arrays, each of which a call increfs on entry and decrefs on exit (measured:
# 0.4 µs of rung 0's 11 µs step on copy(10, 8)); inlining the smaller helpers too is slower
@jit(inline="always")
def _table_pass(
    x, y, gold, U, S, A, bias, Up, lay, rho_k, rho_v, has_Up, batch_content, ws, gS, gA, gb, gUp, want_grad,
    want_metrics, metrics, want_loss,
):  # fmt: skip
    """Loss of one batch through the tables; their gradients when ``want_grad``.

    Tables: ``U`` (H, Vout, Vin), ``S`` (H, T, L), ``A`` (H, T, Vin), ``bias`` (Vout,), ``Up``
    (H, Vout, L) (absent ones are 1×1×1 dummies, as the flags in ``lay`` and ``has_Up``
    say); ``rho_k``, ``rho_v`` the context of keys and values; ``batch_content``: content
    attention on a small vocabulary runs a group's examples side by side (`_plan`).
    Gradients: ∂U transposed into ``ws.dUt``; ∂S, ∂A, ∂b, ∂Up into ``gS``, ``gA``, ``gb``,
    ``gUp`` (overwritten).

    Returns the mean cross-entropy (docs/design.md §1.1, no weight decay) when
    ``want_loss``; otherwise 0.0 if it is finite and NaN if not (the logarithms are
    skipped: a column sum of exponentials is >= 1, so the loss is finite exactly when the
    shifted logits are). When ``want_metrics``, fills ``metrics`` (see ``MET_*``): token
    accuracy, KTIW accuracy, and per head attention accuracy and mean attention on the
    gold position, over the (b, t) with ``gold >= 0`` (NaN when there are none).
    """
    Ut, dUt, alpha, alphaS, alphaST, UX, z, delta = (
        ws.Ut,
        ws.dUt,
        ws.alpha,
        ws.alphaS,
        ws.alphaST,
        ws.UX,
        ws.z,
        ws.delta,
    )
    dUX, g, Gbar, dbv, e, k, k_bits = ws.dUX, ws.g, ws.Gbar, ws.dbv, ws.e, ws.k, ws.k_bits
    colmax, colsum, xg, Pk, psum, hsum = ws.colmax, ws.colsum, ws.xg, ws.Pk, ws.psum, ws.hsum
    alphaG, alphaSG, gG = ws.alphaG, ws.alphaSG, ws.gG
    H, L, T, Vout = lay[T_H], lay[T_L], lay[T_T], lay[T_VOUT]
    has_S = lay[T_HAS_S] == 1
    has_A = lay[T_HAS_A] == 1
    has_b = lay[T_HAS_B] == 1
    learn_attention = has_S or has_A
    per_position = has_Up or rho_v != 0.0  # values, and so the KTIW probe, depend on the position
    half_k = 0.5 * rho_k
    B = x.shape[0]
    G, wm = _plan(lay, B, batch_content)
    batched = has_A and G > 1
    invH = 1.0 / H
    scale = 1.0 / (B * T)

    for h in range(H):
        _transpose(U, h, Ut, h)
    if want_grad:
        dUt[:] = 0.0
        Gbar[:] = 0.0
        gS[:] = 0.0
        gA[:] = 0.0
        gb[:] = 0.0
        gUp[:] = 0.0

    if not has_A:  # attention is the same for every example: compute it once
        _attention(S, A, x, 0, lay, rho_k, alpha, alphaS, alphaST, e, k, k_bits)

    n_gold = 0
    n_correct = 0
    n_ktiw = 0
    if want_metrics:
        hsum[:] = 0.0
        if not per_position:
            _ktiw_table(U, bias, lay, Pk, e, k, k_bits)

    loss_sum = 0.0
    for b0 in range(0, B, G):
        nG = min(G, B - b0)
        GV = nG * Vout
        if batched:  # a group of examples side by side, each with its attention
            _attention_group(S, A, x, b0, nG, lay, rho_k, alphaG, alphaSG, e, k, k_bits, colmax, colsum)
        elif has_A:  # groups hold one example
            _attention(S, A, x, b0, lay, rho_k, alpha, alphaS, alphaST, e, k, k_bits)
        _group_logits(x, b0, nG, wm, U, Ut, bias, Up, lay, has_Up, rho_v, alphaS, UX, z, xg, batched, alphaSG)

        # ---- loss, accuracy, delta = (softmax(z) - onehot(y)) / (B T)
        _group_softmax(z, nG, wm, Vout, T, e, k, k_bits, colmax, colsum)
        part, correct = _group_loss(z, y, b0, nG, wm, Vout, T, colmax, colsum, want_loss, want_metrics)
        loss_sum += part
        n_correct += correct
        if want_grad:
            _group_delta(e, colsum, y, b0, nG, wm, Vout, T, scale, delta, dbv)

        # ---- metrics that need the gold alignment
        if want_metrics:
            if per_position:
                _group_probe(UX, bias, nG, wm, lay, e, k, k_bits, psum)
            for j in range(nG):
                b = b0 + j
                for t in range(T):
                    gt = gold[b, t]
                    if gt < 0:
                        continue
                    n_gold += 1
                    for h in range(H):
                        if batched:
                            best = alphaG[h, t, 0, j]
                            arg = 0
                            for l in range(1, L):  # noqa: E741
                                if alphaG[h, t, l, j] > best:
                                    best = alphaG[h, t, l, j]
                                    arg = l
                            hsum[H + h] += alphaG[h, t, gt, j]
                        else:
                            best = alpha[h, t, 0]
                            arg = 0
                            for l in range(1, L):  # noqa: E741
                                if alpha[h, t, l] > best:
                                    best = alpha[h, t, l]
                                    arg = l
                            hsum[H + h] += alpha[h, t, gt]
                        if arg == gt:
                            hsum[h] += 1.0
                    # KTIW: argmax_l of p(y_t | attend to l alone) hits gold
                    yt = y[b, t]
                    if per_position:
                        cy = yt * nG + j if wm else j * Vout + yt
                        best = e[cy]
                        arg = 0
                        for l in range(1, L):  # noqa: E741
                            v = e[l * GV + cy]
                            if v > best:
                                best = v
                                arg = l
                    else:
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
            if batched:  # dUX, g and ∂s per example, side by side
                _batched_backward(x, b0, nG, lay, rho_k, h, alphaG, alphaSG, UX, delta, dUX, gG, gS, gA, colmax)
                _scatter_rows(dUX, xg, nG, wm, Vout, L, dUt, h)
                if per_position:
                    _scatter_context(dUX, xg, nG, wm, Vout, L, dUt, gUp, h, has_Up, rho_v)
                continue
            # dU[h,:,i] = (1/H) sum_{t,l: x_l = i} alpha[h,t,l] delta[t,:]
            for l in range(L):  # noqa: E741
                for c in range(GV):
                    dUX[0, l, c] = 0.0
            _gemm_acc(alphaST, h, delta, 0, dUX, 0, L, T, GV)
            _scatter_rows(dUX, xg, nG, wm, Vout, L, dUt, h)
            if per_position:
                _scatter_context(dUX, xg, nG, wm, Vout, L, dUt, gUp, h, has_Up, rho_v)
            if not learn_attention:
                continue
            # g[h,t,l] = (1/H) delta[t,:] . col_h[l]   (the 1/H is applied to ds)
            if not has_A:  # alpha is shared: sum g over the batch first
                _gemm_acc_nt(delta, 0, UX, h, Gbar, h, T, GV, L)
                continue
            g[:] = 0.0
            _gemm_acc_nt(delta, 0, UX, h, g, 0, T, GV, L)
            # ds = alpha (g - sum_l' alpha g);  dS += ds;  dA[t, x_l] += ds (and ρk/2 ds to the neighbours' words)
            for t in range(T):
                r_ = 0.0
                for l in range(L):  # noqa: E741
                    r_ += alpha[h, t, l] * g[0, t, l]
                for l in range(L):  # noqa: E741
                    ds = alpha[h, t, l] * (g[0, t, l] - r_) * invH
                    if has_S:
                        gS[h, t, l] += ds
                    gA[h, t, x[b0, l]] += ds
                if rho_k != 0.0:  # a loop of its own: more uses of ds in the one above change how it compiles
                    for l in range(L):  # noqa: E741
                        ds = alpha[h, t, l] * (g[0, t, l] - r_) * invH
                        if l > 0:
                            gA[h, t, x[b0, l - 1]] += half_k * ds
                        if l < L - 1:
                            gA[h, t, x[b0, l + 1]] += half_k * ds

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

    if want_grad and has_S and not has_A:  # dS[h,t,l] = alpha (Gbar - sum_l' alpha Gbar) / H
        for h in range(H):
            for t in range(T):
                r_ = 0.0
                for l in range(L):  # noqa: E741
                    r_ += alpha[h, t, l] * Gbar[h, t, l]
                for l in range(L):  # noqa: E741
                    gS[h, t, l] = alpha[h, t, l] * (Gbar[h, t, l] - r_) * invH
    return loss_sum * scale


@jit()
def _table_forward(x, U, S, A, bias, Up, lay, rho_k, rho_v, has_Up, batch_content, ws, z_out, alpha_out):
    """Logits ``z_out`` (B, T, Vout) and attention ``alpha_out`` (H, B, T, L) through the tables."""
    Ut, alpha, alphaS, alphaST, UX, z = ws.Ut, ws.alpha, ws.alphaS, ws.alphaST, ws.UX, ws.z
    e, k, k_bits, xg = ws.e, ws.k, ws.k_bits, ws.xg
    H, T, L, Vout = lay[T_H], lay[T_T], lay[T_L], lay[T_VOUT]
    B = x.shape[0]
    G, wm = _plan(lay, B, batch_content)
    batched = lay[T_HAS_A] == 1 and G > 1
    for h in range(H):
        _transpose(U, h, Ut, h)
    for b0 in range(0, B, G):
        nG = min(G, B - b0)
        so = nG if wm else 1
        sj = 1 if wm else Vout
        if batched:
            _attention_group(S, A, x, b0, nG, lay, rho_k, ws.alphaG, ws.alphaSG, e, k, k_bits, ws.colmax, ws.colsum)
        elif b0 == 0 or lay[T_HAS_A] == 1:
            _attention(S, A, x, b0, lay, rho_k, alpha, alphaS, alphaST, e, k, k_bits)
        _group_logits(x, b0, nG, wm, U, Ut, bias, Up, lay, has_Up, rho_v, alphaS, UX, z, xg, batched, ws.alphaSG)
        for j in range(nG):
            for t in range(T):
                for o in range(Vout):
                    z_out[b0 + j, t, o] = z[0, t, j * sj + o * so]
            if batched:
                for h in range(H):
                    for t in range(T):
                        for l in range(L):  # noqa: E741
                            alpha_out[h, b0 + j, t, l] = ws.alphaG[h, t, l, j]
            else:
                alpha_out[:, b0 + j] = alpha
