"""Rung 2's kernels: the authors' recurrent seq2seq, forward and backward through time.

One batch moves through time together (docs/design.md §7.8). Arrays of the recurrence are
time-major (row ``s·B + b`` is example b at step s), so every product is one matrix
product over the batch:

* the input half of every gate, for all steps at once: ``GI = Emb[tokens] W_ihᵀ + b_ih``;
* the recurrent half, step by step: ``GH = h_{s−1} W_hhᵀ + b_hh``, then the gates
  elementwise (PyTorch's equations: LSTM i, f, g, o; GRU r, z, n);
* attention per example (the states copied batch-major once), the heads' contexts, the
  output layer, as products over all B·(T+1) predictions;
* backward, the sweep through time keeps only the state gradients and the gates'
  gradients of every step; each weight's gradient is then one product over all steps
  (``∂W_hh = ∂GHᵀ H_prev``; ``∂W_ih`` through the table, below).

The inputs are one-hot, so the input half of the gates is a row of the table ``Emb W_ihᵀ``
(V+2 rows) when the vocabulary is smaller than the batch's inputs, and its gradients are
products of V+2 rows too (`_input_gates`, `_input_grads`). The products go to BLAS
(``np.dot`` into preallocated outputs, through SciPy's BLAS: single-threaded inside the
batch-of-runs ``prange``, see `attnsim._blas`), the smallest ones to compiled loops (`_mm`);
the gates, in the model's precision, and the softmaxes are compiled loops. Nothing is
allocated inside the step loop. The plain-NumPy oracle (`_reference.py`) runs one sequence
and one step at a time with vectors.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import prange, types
from numba.extending import overload

from ..._gemm_kernels import gemm_packed, pack_second, packs, scratch_size
from ..._jit import jit as _jit
from ..._kernels import (
    MET_ACC,
    MET_HEADS,
    MET_KTIW,
    MET_LOSS,
    _exp_inplace,
    _exp_inplace_f32,
    _finish_step,
    _flush_subnormals,
    _restore_fp,
    _softmax_rows,
)


def jit(**kw):
    """Rung 2's kernels are compiled with NumPy's error model: the gates' loops divide, and
    they vectorize only without Python's check for a division by zero (none of them divides
    by a number that can be 0: ``1 + e`` with ``e ≥ 0``, or a count checked first)."""
    return _jit(error_model="numpy", **kw)


# Products of at most this many multiply-adds are compiled loops, not BLAS calls (`_mm`).
_SMALL = 1024

# Entries exponentiated at once by `_tanh_rows` (16 KiB of float32).
_CHUNK = 4096

# Positions in the int layout.
LAY_H, LAY_VIN, LAY_VOUT, LAY_L, LAY_T, LAY_D, LAY_G, LAY_GRU, LAY_DOT = range(9)
(
    LAY_OFF_EMB_E, LAY_OFF_EMB_D,
    LAY_OFF_E_WIH, LAY_OFF_E_WHH, LAY_OFF_E_BIH, LAY_OFF_E_BHH,
    LAY_OFF_D_WIH, LAY_OFF_D_WHH, LAY_OFF_D_BIH, LAY_OFF_D_BHH,
    LAY_OFF_AW, LAY_OFF_AB, LAY_OFF_PW, LAY_OFF_PB, LAY_OFF_CW, LAY_OFF_CB, LAY_OFF_OW, LAY_OFF_OB,
) = range(9, 27)  # fmt: skip
LAY_NPARAM = 27
LAY_SIZE = 28

_SLOTS = {
    "enc_embedding.weight": LAY_OFF_EMB_E,
    "dec_embedding.weight": LAY_OFF_EMB_D,
    "encoder.weight_ih": LAY_OFF_E_WIH,
    "encoder.weight_hh": LAY_OFF_E_WHH,
    "encoder.bias_ih": LAY_OFF_E_BIH,
    "encoder.bias_hh": LAY_OFF_E_BHH,
    "decoder.weight_ih": LAY_OFF_D_WIH,
    "decoder.weight_hh": LAY_OFF_D_WHH,
    "decoder.bias_ih": LAY_OFF_D_BIH,
    "decoder.bias_hh": LAY_OFF_D_BHH,
    "attn_lin.weight": LAY_OFF_AW,
    "attn_lin.bias": LAY_OFF_AB,
    "project_enc.weight": LAY_OFF_PW,
    "project_enc.bias": LAY_OFF_PB,
    "after_decoder_hidden.weight": LAY_OFF_CW,
    "after_decoder_hidden.bias": LAY_OFF_CB,
    "hidden2vocab.weight": LAY_OFF_OW,
    "hidden2vocab.bias": LAY_OFF_OB,
}


def layout(cfg) -> tuple[np.ndarray, np.ndarray]:
    """``(ints, floats)``: sizes, flags and offsets into the flat parameter vector (a shared
    embedding is both the encoder's and the decoder's; an absent group has offset −1)."""
    lay = np.full(LAY_SIZE, -1, dtype=np.int64)
    lay[LAY_H] = cfg.heads
    lay[LAY_VIN] = cfg.vocab_in
    lay[LAY_VOUT] = cfg.vocab_out
    lay[LAY_L] = cfg.src_len
    lay[LAY_T] = cfg.tgt_len
    lay[LAY_D] = cfg.hidden
    lay[LAY_G] = cfg.gates
    lay[LAY_GRU] = int(cfg.cell == "gru")
    lay[LAY_DOT] = int(cfg.attention == "dot")
    offset = 0
    for name, shape in cfg.param_shapes().items():
        if name == "embedding.weight":
            lay[LAY_OFF_EMB_E] = lay[LAY_OFF_EMB_D] = offset
        else:
            lay[_SLOTS[name]] = offset
        offset += int(np.prod(shape))
    lay[LAY_NPARAM] = offset
    return lay, np.zeros(1, np.float64)


RnnWS = namedtuple(
    "RnnWS",
    [
        # forward, time-major (row s·B + b)
        "XE", "XD",  # ((L+1)B, d), ((T+1)B, d): input embeddings, gathered (only without a table)
        "EWE", "EWD",  # (Vin+2, Gd), (Vout+2, Gd): the table Emb W_ihᵀ, then ∂ of its rows (with one)
        "GIE", "GID",  # ((L+1)B, Gd), ((T+1)B, Gd): input halves of the gates, then the gates
        "GHNE", "GHND",  # ((L+1)B, d), ((T+1)B, d): GRU: the recurrent half of n (r multiplies it)
        "HE", "CE",  # ((L+2)B, d): states, rows 0…B−1 the initial zeros
        "HD", "CD",  # ((T+2)B, d): rows 0…B−1 the encoder's last
        "TCE", "TCD",  # like CE, CD: tanh of the cells (LSTM)
        "GH",  # (B, Gd): the recurrent half of one step
        # forward, batch-major
        "HEB",  # (B, L+1, d) encoder states
        "HDB",  # (B(T+1), d) decoder states
        "Q",  # (H, B(T+1), d) queries
        "AL",  # (H, B, T+1, L+1) attention
        "RAW",  # (H, B(T+1), d) Σ_l α h_enc[l]
        "PJ",  # (B(T+1), d) one head's projected context
        "CTX",  # (B(T+1), d) the heads' mean
        "W1", "W2",  # (d, d): after_decoder_hidden's halves (decoder state, context), contiguous
        "PD",  # (B(T+1), d) W1 h_dec + bias
        "OUT",  # (B(T+1), d) tanh(W1 h_dec + W2 ctx + bias)
        "Z",  # (B(T+1), Vout+2) logits, then ∂z
        # backward
        "dOUT", "dA",  # (B(T+1), d)
        "dHDB",  # (B(T+1), d)
        "dCTX",  # (B(T+1), d)
        "dRAW",  # (B(T+1), d)
        "dQ",  # (B(T+1), d)
        "dHEB",  # (B, L+1, d)
        "dAL",  # (T+1, L+1): one example's
        "tLd",  # (L+1, d) scratch
        "tdd",  # (d, d) scratch
        "dGIE", "dGHE",  # ((L+1)B, Gd) gate gradients (the GRU's recurrent ones differ in n)
        "dGID", "dGHD",  # ((T+1)B, Gd)
        "dX",  # input embeddings' gradients (without a table) or the table's (with one)
        "dh", "dc", "tBd",  # (B, d)
        # the KTIW probe
        "PE",  # (B(L+1), d): mean_h project_enc_h(h_enc[l])
        "PC",  # (B(L+1), d): W2 of it
        "KO",  # (T(L+1), d): one example's probe states
        "KZ",  # (T(L+1), Vout+2)
        "EG", "KG",  # scratch of the exponential in the model's dtype: gates, tanh (`_native_size`)
        "E", "K",  # float64 scratch of the exponential: softmaxes (`_scratch_size`)
        "TOKE", "TOKD",  # ((L+1)B,), ((T+1)B,) int64: the input token of each time-major row
    ],
)  # fmt: skip


def _ws_shapes(ints, B):
    """The shapes of `RnnWS`'s arrays (plain Python: `workspace_bytes`)."""
    H, Vout, L, T, d, G = (int(ints[i]) for i in (LAY_H, LAY_VOUT, LAY_L, LAY_T, LAY_D, LAY_G))
    L1, T1, Vo = L + 1, T + 1, Vout + 2
    gru, dot = int(ints[LAY_GRU]) == 1, int(ints[LAY_DOT]) == 1
    N = B * T1
    nq = H if dot else 1
    Vi, Vo_in = int(ints[LAY_VIN]) + 2, Vout + 2
    te, td = _uses_table(Vi, L1 * B), _uses_table(Vo_in, T1 * B)
    return [
        (1 if te else L1 * B, d), (1 if td else T1 * B, d),
        (Vi if te else 1, G * d), (Vo_in if td else 1, G * d),
        (L1 * B, G * d), (T1 * B, G * d),
        (L1 * B if gru else 1, d), (T1 * B if gru else 1, d),
        ((L1 + 1) * B, d), ((L1 + 1) * B if not gru else 1, d),
        ((T1 + 1) * B, d), ((T1 + 1) * B if not gru else 1, d),
        ((L1 + 1) * B if not gru else 1, d), ((T1 + 1) * B if not gru else 1, d),
        (B, G * d),
        (B, L1, d), (N, d), (nq, N if dot else 1, d), (H, B, T1, L1), (H, N, d), (N, d), (N, d),
        (d, d), (d, d), (N, d), (N, d), (N, Vo),
        (N, d), (N, d), (N, d), (N, d), (N, d), (N if dot else 1, d), (B, L1, d), (T1, L1), (L1, d), (d, d),
        (L1 * B, G * d), (L1 * B if gru else 1, G * d), (T1 * B, G * d), (T1 * B if gru else 1, G * d),
        (max(Vi if te else L1 * B, Vo_in if td else T1 * B), d), (B, d), (B, d), (B, d),
        (B * L1, d), (B * L1, d), (T * L1, d), (T * L1, Vo),
        (_native_size(B, L1, T1, d, G),), (_native_size(B, L1, T1, d, G),),
        (_scratch_size(B, L1, T1, d, G, Vo),), (_scratch_size(B, L1, T1, d, G, Vo),),
        (L1 * B,), (T1 * B,),
    ]  # fmt: skip


@jit(fastmath=False)
def _alloc_ws(lay, theta, B):
    """Workspace of `_core` for batches of B examples, allocated once outside any step loop."""
    ints = lay[0]
    H, Vout, L, T, d, G = ints[LAY_H], ints[LAY_VOUT], ints[LAY_L], ints[LAY_T], ints[LAY_D], ints[LAY_G]
    L1, T1, Vo = L + 1, T + 1, Vout + 2
    gru, dot = ints[LAY_GRU] == 1, ints[LAY_DOT] == 1
    N = B * T1
    nq = H if dot else 1
    dt = theta.dtype
    LB = L1 * B if gru else 1  # arrays only one of the cells uses are 1-row dummies for the other
    TB = T1 * B if gru else 1
    CL = (L1 + 1) * B if not gru else 1
    CT = (T1 + 1) * B if not gru else 1
    NQ = N if dot else 1
    S = _scratch_size(B, L1, T1, d, G, Vo)
    SN = _native_size(B, L1, T1, d, G)
    Vi, Vo_in = ints[LAY_VIN] + 2, Vout + 2
    te, td = _uses_table(Vi, L1 * B), _uses_table(Vo_in, T1 * B)
    XE = 1 if te else L1 * B  # the gathered inputs, or the tables, by which the inputs use
    XD = 1 if td else T1 * B
    EWE = Vi if te else 1
    EWD = Vo_in if td else 1
    DX = max(EWE if te else XE, EWD if td else XD)
    return RnnWS(
        np.zeros((XE, d), dt), np.zeros((XD, d), dt),
        np.zeros((EWE, G * d), dt), np.zeros((EWD, G * d), dt),
        np.zeros((L1 * B, G * d), dt), np.zeros((T1 * B, G * d), dt),
        np.zeros((LB, d), dt), np.zeros((TB, d), dt),
        np.zeros(((L1 + 1) * B, d), dt), np.zeros((CL, d), dt),
        np.zeros(((T1 + 1) * B, d), dt), np.zeros((CT, d), dt),
        np.zeros((CL, d), dt), np.zeros((CT, d), dt),
        np.zeros((B, G * d), dt),
        np.zeros((B, L1, d), dt), np.zeros((N, d), dt), np.zeros((nq, NQ, d), dt),
        np.zeros((H, B, T1, L1), dt), np.zeros((H, N, d), dt), np.zeros((N, d), dt), np.zeros((N, d), dt),
        np.zeros((d, d), dt), np.zeros((d, d), dt), np.zeros((N, d), dt), np.zeros((N, d), dt),
        np.zeros((N, Vo), dt),
        np.zeros((N, d), dt), np.zeros((N, d), dt), np.zeros((N, d), dt), np.zeros((N, d), dt),
        np.zeros((N, d), dt), np.zeros((NQ, d), dt), np.zeros((B, L1, d), dt),
        np.zeros((T1, L1), dt), np.zeros((L1, d), dt), np.zeros((d, d), dt),
        np.zeros((L1 * B, G * d), dt), np.zeros((LB, G * d), dt),
        np.zeros((T1 * B, G * d), dt), np.zeros((TB, G * d), dt),
        np.zeros((DX, d), dt), np.zeros((B, d), dt), np.zeros((B, d), dt), np.zeros((B, d), dt),
        np.zeros((B * L1, d), dt), np.zeros((B * L1, d), dt), np.zeros((T * L1, d), dt), np.zeros((T * L1, Vo), dt),
        np.zeros(SN, dt), np.zeros(SN, dt),
        np.zeros(S, np.float64), np.zeros(S, np.float64),
        np.zeros(L1 * B, np.int64), np.zeros(T1 * B, np.int64),
    )  # fmt: skip


def workspace_bytes(lay, B: int, itemsize: int) -> int:
    """Bytes `_alloc_ws` allocates for batches of B examples (plain Python, exact integers);
    `tests/test_architectures.py` holds the two together."""
    shapes = _ws_shapes(lay[0], B)  # the last four (scratch, tokens) are 8-byte
    return itemsize * sum(math.prod(s) for s in shapes[:-4]) + 8 * sum(math.prod(s) for s in shapes[-4:])


@jit(fastmath=False)
def _uses_table(vocab_rows, input_rows):
    """Whether the input half of the gates goes through the table ``Emb W_ihᵀ``: when the
    vocabulary has fewer rows than there are inputs (`_input_gates`)."""
    return vocab_rows < input_rows


@jit(fastmath=False)
def _native_size(B, L1, T1, d, G):
    """Entries of the model-dtype scratch: the largest block exponentiated at once in the
    model's precision (one example's gates, a chunk of a tanh)."""
    return max(G * d, _CHUNK)


@jit(fastmath=False)
def _scratch_size(B, L1, T1, d, G, Vo):
    """Entries of the float64 scratch: the largest softmax taken at once (the logits, one
    example's attention, one probe row's β)."""
    return max(B * T1 * Vo, T1 * L1, L1 * Vo)


# =============================================================================
# small pieces
# =============================================================================
@jit(fastmath=False)
def _m2(theta, off, r, c):
    """``theta[off:off+r*c]`` as an (r, c) matrix (a 1×1 dummy if absent)."""
    if off < 0:
        return np.zeros((1, 1), theta.dtype)
    return theta[off : off + r * c].reshape((r, c))


@jit(fastmath=False)
def _v1(theta, off, n):
    if off < 0:
        return np.zeros(1, theta.dtype)
    return theta[off : off + n]


@jit()
def _mm(A, B, C):
    """``C = A B`` (2-D, any strides). BLAS for a product of more than `_SMALL`
    multiply-adds; below that a call costs more than its arithmetic (the tiny models make
    hundreds of such products a step), so a compiled loop, summing in C's precision."""
    M, K = A.shape
    N = B.shape[1]
    if M * N * K > _SMALL:
        np.dot(A, B, C)
        return
    zero = C.dtype.type(0.0)
    for i in range(M):
        for j in range(N):
            acc = zero
            for k in range(K):
                acc += A[i, k] * B[k, j]
            C[i, j] = acc


@jit(inline="always")
def _exp_native(E, K, Kb, n):
    """``E[:n] = exp(E[:n])`` (arguments ≤ 0) in the arrays' own precision: float32 models'
    gates through the float32 exponential, float64's through the float64 one. ``Kb`` is
    `_bits_view` of ``K``. ``itemsize`` is known when the kernel compiles, so only one
    branch is kept."""
    if E.itemsize == 4:
        _exp_inplace_f32(E, K, Kb, n)
    else:
        _exp_inplace(E, K, Kb, n)


def _bits_view(K):
    """``K``'s bits as integers of its width (what `_exp_native` builds 2**k in)."""
    return K.view(np.int32) if K.itemsize == 4 else K.view(np.int64)


@overload(_bits_view)
def _bits_view_compiled(K):
    # the two views have different types, so the choice is made when the caller compiles
    if K.dtype == types.float32:
        return lambda K: K.view(np.int32)
    return lambda K: K.view(np.int64)


@jit()
def _tanh_rows(X, nrows, E, K):
    """``X[:nrows]`` ← its tanh, in place (X C-contiguous), in X's precision: with
    ``e = exp(−2|v|)``, ``tanh(v) = ±(1−e)/(1+e)``, which does not overflow. In chunks of
    `_CHUNK` entries, so that the passes over a chunk stay in the first-level cache.
    ``E``, ``K``: scratch of X's dtype, at least `_CHUNK` long."""
    n = nrows * X.shape[1]
    flat = X[:nrows].reshape(n)
    Kb = _bits_view(K)
    one = X.dtype.type(1.0)
    two = X.dtype.type(2.0)
    for c0 in range(0, n, _CHUNK):
        m = min(_CHUNK, n - c0)
        x = flat[c0 : c0 + m]
        for i in range(m):
            E[i] = -two * abs(x[i])
        _exp_native(E, K, Kb, m)
        for i in range(m):
            t = (one - E[i]) / (one + E[i])
            x[i] = t if x[i] >= 0 else -t


@jit()
def _add_rows(M, v):
    """``M[r] += v`` for every row."""
    for r in range(M.shape[0]):
        for j in range(M.shape[1]):
            M[r, j] += v[j]


@jit()
def _col_sums_into(M, out):
    """``out = Σ_r M[r]`` (rows in order)."""
    out[:] = 0.0
    for r in range(M.shape[0]):
        for j in range(M.shape[1]):
            out[j] += M[r, j]


# =============================================================================
# the recurrence
# =============================================================================
@jit()
def _recur(GI, GHN, Hs, Cs, TC, Whh, bhh, GH, steps, B, d, gru, E, K):
    """Run the cell over ``steps`` steps. On entry ``GI`` holds the input halves of the
    gates (bias included), ``Hs[0:B]`` (and ``Cs[0:B]``) the initial state; on exit ``GI``
    holds the gates (LSTM i, f, g, o; GRU r, z, n), ``GHN`` the GRU's recurrent half of n,
    ``Hs``/``Cs`` rows ``(s+1)B + b`` the states after step s and ``TC`` tanh of the cells.

    A step is one product, then each example's row on its own, all of it in the first-level
    cache and in the model's precision (``E``, ``K``: scratch of its dtype, ≥ G·d long):
    the pre-activations and the exponential's arguments in one loop (``−|v|`` for a
    sigmoid, ``−2|v|`` for a tanh), one call of the exponential, the gates, then the state
    likewise. Each kind of gate has a 2-D view of the step's block, made once a step (a
    view costs two reference counts: made per example they were most of a tiny model's
    step), indexed [example, column] from 0 so that the loops vectorize (see
    `attnsim._kernels._u`)."""
    one = GI.dtype.type(1.0)
    two = GI.dtype.type(2.0)
    n1 = 2 * d if gru else 4 * d  # the gates exponentiated in the first call
    # float32: W_hh packed once for all the steps' products (`attnsim._gemm_kernels`; np.dot's bits)
    packed = GI.itemsize == 4 and packs(B, d, GH.shape[1])
    Wp = np.empty(d * GH.shape[1] if packed else 0, GI.dtype)
    scratch = np.empty(scratch_size(B, d) if packed else 0, GI.dtype)
    if packed:
        pack_second(Whh.T, Wp)
    Kb = _bits_view(K)
    e1, e2 = E[:n1], E[:d]
    eg, eo = E[2 * d : 3 * d], E[3 * d : 4 * d]  # LSTM: g, o
    bn = bhh[2 * d :]  # GRU: n's recurrent bias
    for s in range(steps):
        r0 = s * B
        if packed:
            gemm_packed(Hs[r0 : r0 + B], Wp, GH, scratch)
        else:
            _mm(Hs[r0 : r0 + B], Whh.T, GH)
        A = GI[r0 : r0 + B]  # the step's gates
        g1, g2, g3 = A[:, :d], A[:, d : 2 * d], A[:, 2 * d : 3 * d]  # i f g (LSTM), r z n (GRU)
        g4 = A[:, 3 * d :]  # LSTM: o
        h_prev, h_new = Hs[r0 : r0 + B], Hs[r0 + B : r0 + 2 * B]
        c_prev, c_new, tc_new = Cs[r0 : r0 + B], Cs[r0 + B : r0 + 2 * B], TC[r0 + B : r0 + 2 * B]
        gh_n, ghn = GH[:, 2 * d :], GHN[r0 : r0 + B]
        for b in range(B):
            for j in range(n1):
                v = A[b, j] + GH[b, j] + bhh[j]
                A[b, j] = v
                e1[j] = -abs(v)
            if not gru:
                for j in range(d):  # g is a tanh
                    eg[j] = two * eg[j]
            _exp_native(E, K, Kb, n1)
            for j in range(2 * d):  # sigmoids: i, f (LSTM); r, z (GRU)
                q = one / (one + e1[j])
                A[b, j] = q if A[b, j] >= 0 else e1[j] * q
            if gru:  # n = tanh(gi_n + r gh_n), h = (1 − z) n + z h
                for j in range(d):
                    v = gh_n[b, j] + bn[j]
                    ghn[b, j] = v
                    u = g3[b, j] + g1[b, j] * v
                    g3[b, j] = u
                    e2[j] = -two * abs(u)
                _exp_native(E, K, Kb, d)
                for j in range(d):
                    t = (one - e2[j]) / (one + e2[j])
                    n = t if g3[b, j] >= 0 else -t
                    g3[b, j] = n
                    z = g2[b, j]
                    h_new[b, j] = (one - z) * n + z * h_prev[b, j]
            else:  # c = f c + i g, h = o tanh c
                for j in range(d):
                    t = (one - eg[j]) / (one + eg[j])
                    g3[b, j] = t if g3[b, j] >= 0 else -t
                for j in range(d):
                    q = one / (one + eo[j])
                    g4[b, j] = q if g4[b, j] >= 0 else eo[j] * q
                for j in range(d):
                    c = g2[b, j] * c_prev[b, j] + g1[b, j] * g3[b, j]
                    c_new[b, j] = c
                    e2[j] = -two * abs(c)
                _exp_native(E, K, Kb, d)
                for j in range(d):
                    t = (one - e2[j]) / (one + e2[j])
                    tc = t if c_new[b, j] >= 0 else -t
                    tc_new[b, j] = tc
                    h_new[b, j] = g4[b, j] * tc


@jit()
def _recur_back(ACT, GHN, Hs, Cs, TC, Whh, dGI, dGH, dh, dc, dIn, in_rows_b, steps, B, d, gru, tBd):
    """Backward through ``steps`` steps of `_recur`, last step first. ``dh``/``dc`` (B, d)
    hold the gradient of the last state on entry and of the initial state on exit; the
    gradient reaching each step's output from above is ``dIn`` at row ``b·in_rows_b + s``
    (batch-major). Writes the gates' gradients: input halves ``dGI``, recurrent ``dGH``
    (the same array for the LSTM)."""
    Gd = Whh.shape[0]
    packed = dGH.itemsize == 4 and packs(B, Gd, d)  # as in `_recur`
    Wp = np.empty(Gd * d if packed else 0, dGH.dtype)
    scratch = np.empty(scratch_size(B, Gd) if packed else 0, dGH.dtype)
    if packed:
        pack_second(Whh, Wp)
    for s in range(steps - 1, -1, -1):
        for b in range(B):
            row = s * B + b
            r_prev = s * B + b
            r_out = (s + 1) * B + b
            src = b * in_rows_b + s
            if gru:
                for j in range(d):
                    g_h = dh[b, j] + dIn[src, j]
                    r = ACT[row, j]
                    z = ACT[row, d + j]
                    n = ACT[row, 2 * d + j]
                    dn = g_h * (1.0 - z)
                    dz = g_h * (Hs[r_prev, j] - n)
                    dpre_n = dn * (1.0 - n * n)
                    dr = dpre_n * GHN[row, j]
                    dpr = dr * r * (1.0 - r)
                    dpz = dz * z * (1.0 - z)
                    dGI[row, j] = dpr
                    dGI[row, d + j] = dpz
                    dGI[row, 2 * d + j] = dpre_n
                    dGH[row, j] = dpr
                    dGH[row, d + j] = dpz
                    dGH[row, 2 * d + j] = dpre_n * r
                    dh[b, j] = g_h * z  # the direct path; W_hhᵀ ∂GH is added below
            else:
                for j in range(d):
                    g_h = dh[b, j] + dIn[src, j]
                    i = ACT[row, j]
                    f = ACT[row, d + j]
                    g = ACT[row, 2 * d + j]
                    o = ACT[row, 3 * d + j]
                    tc = TC[r_out, j]
                    dcell = dc[b, j] + g_h * o * (1.0 - tc * tc)
                    dGI[row, j] = dcell * g * i * (1.0 - i)
                    dGI[row, d + j] = dcell * Cs[r_prev, j] * f * (1.0 - f)
                    dGI[row, 2 * d + j] = dcell * i * (1.0 - g * g)
                    dGI[row, 3 * d + j] = g_h * tc * o * (1.0 - o)
                    dc[b, j] = dcell * f
                    dh[b, j] = 0.0
        if packed:
            gemm_packed(dGH[s * B : (s + 1) * B], Wp, tBd, scratch)
        else:
            _mm(dGH[s * B : (s + 1) * B], Whh, tBd)
        for b in range(B):
            for j in range(d):
                dh[b, j] += tBd[b, j]


@jit()
def _recurrent_grads(dGH, Hs, steps, B, gWhh, gbhh):
    """``∂W_hh = ∂GHᵀ H_prev`` and ``∂b_hh``, over all steps at once."""
    n = steps * B
    _mm(dGH[:n].T, Hs[:n], gWhh)
    _col_sums_into(dGH[:n], gbhh)


# =============================================================================
# the inputs: one-hot tokens through an embedding
# =============================================================================
@jit()
def _tokens(x, y, L, T, Vin, Vout, TOKE, TOKD):
    """The input token of every time-major row: the source then EOS (``Vin``) for the
    encoder; SOS (``Vout + 1``) then the target for the decoder."""
    B = x.shape[0]
    for b in range(B):
        for l in range(L + 1):  # noqa: E741
            TOKE[l * B + b] = x[b, l] if l < L else Vin
        for t in range(T + 1):
            TOKD[t * B + b] = Vout + 1 if t == 0 else y[b, t - 1]


@jit()
def _input_gates(tok, Emb, Wih, bih, X, EW, GI):
    """``GI = Emb[tok] W_ihᵀ + b_ih``. An input is a row of the embedding, so when the
    vocabulary has fewer rows than there are inputs (`_uses_table`), each row of ``GI`` is
    a row of the table ``EW = Emb W_ihᵀ``, one product of V+2 rows instead of (L+1)·B;
    otherwise the embeddings are gathered into ``X`` and multiplied."""
    n, w = GI.shape
    if _uses_table(Emb.shape[0], n):
        _mm(Emb, Wih.T, EW)
        for r in range(n):
            t = tok[r]
            for j in range(w):
                GI[r, j] = EW[t, j] + bih[j]
    else:
        d = Emb.shape[1]
        for r in range(n):
            t = tok[r]
            for j in range(d):
                X[r, j] = Emb[t, j]
        _mm(X, Wih.T, GI)
        _add_rows(GI, bih)


@jit()
def _input_grads(tok, Emb, Wih, dGI, X, EW, dX, gEmb, gWih, gbih):
    """The gradients `_input_gates` sends to ``W_ih``, ``b_ih`` and the embedding (added to
    ``gEmb``: a shared embedding receives the encoder's and the decoder's). With the table,
    the rows of ``∂GI`` are first summed per token into ``EW``; then ``∂W_ih = EWᵀ Emb``
    and ``∂Emb = EW W_ih``, products of V+2 rows."""
    n, w = dGI.shape
    d = Emb.shape[1]
    if _uses_table(Emb.shape[0], n):
        EW[:] = 0.0
        for r in range(n):
            t = tok[r]
            for j in range(w):
                EW[t, j] += dGI[r, j]
        _mm(EW.T, Emb, gWih)
        _col_sums_into(EW, gbih)
        V = Emb.shape[0]
        _mm(EW, Wih, dX[:V])
        for v in range(V):
            for j in range(d):
                gEmb[v, j] += dX[v, j]
    else:
        _mm(dGI.T, X, gWih)
        _col_sums_into(dGI, gbih)
        _mm(dGI, Wih, dX[:n])
        for r in range(n):
            t = tok[r]
            for j in range(d):
                gEmb[t, j] += dX[r, j]


# =============================================================================
# the model: one pass over a batch
# =============================================================================
@jit()
def _forward_pass(x, y, theta, lay, ws):
    """Everything up to the logits ``ws.Z`` and the attention ``ws.AL``."""
    ints = lay[0]
    H, Vin, Vout, L, T, d, G = (
        ints[LAY_H], ints[LAY_VIN], ints[LAY_VOUT], ints[LAY_L], ints[LAY_T], ints[LAY_D], ints[LAY_G]
    )  # fmt: skip
    gru, dot = ints[LAY_GRU] == 1, ints[LAY_DOT] == 1
    B = x.shape[0]
    L1, T1, Vo = L + 1, T + 1, Vout + 2
    _tokens(x, y, L, T, Vin, Vout, ws.TOKE, ws.TOKD)
    # encoder
    _input_gates(
        ws.TOKE, _m2(theta, ints[LAY_OFF_EMB_E], Vin + 2, d), _m2(theta, ints[LAY_OFF_E_WIH], G * d, d),
        _v1(theta, ints[LAY_OFF_E_BIH], G * d), ws.XE, ws.EWE, ws.GIE,
    )  # fmt: skip
    ws.HE[:B] = 0.0
    if not gru:
        ws.CE[:B] = 0.0
    Whh = _m2(theta, ints[LAY_OFF_E_WHH], G * d, d)
    _recur(
        ws.GIE, ws.GHNE, ws.HE, ws.CE, ws.TCE, Whh, _v1(theta, ints[LAY_OFF_E_BHH], G * d), ws.GH, L1, B, d, gru, ws.EG,
        ws.KG,
    )  # fmt: skip
    # decoder, from the encoder's last state
    _input_gates(
        ws.TOKD, _m2(theta, ints[LAY_OFF_EMB_D], Vout + 2, d), _m2(theta, ints[LAY_OFF_D_WIH], G * d, d),
        _v1(theta, ints[LAY_OFF_D_BIH], G * d), ws.XD, ws.EWD, ws.GID,
    )  # fmt: skip
    ws.HD[:B] = ws.HE[L1 * B :]
    if not gru:
        ws.CD[:B] = ws.CE[L1 * B :]
    Whh = _m2(theta, ints[LAY_OFF_D_WHH], G * d, d)
    _recur(
        ws.GID, ws.GHND, ws.HD, ws.CD, ws.TCD, Whh, _v1(theta, ints[LAY_OFF_D_BHH], G * d), ws.GH, T1, B, d, gru, ws.EG,
        ws.KG,
    )  # fmt: skip
    # batch-major copies of the states
    for b in range(B):
        for l in range(L1):  # noqa: E741
            for j in range(d):
                ws.HEB[b, l, j] = ws.HE[(l + 1) * B + b, j]
        for t in range(T1):
            for j in range(d):
                ws.HDB[b * T1 + t, j] = ws.HD[(t + 1) * B + b, j]
    # heads
    AW = _v1(theta, ints[LAY_OFF_AW], H * d * d)
    AB = _v1(theta, ints[LAY_OFF_AB], H * d)
    PW = _v1(theta, ints[LAY_OFF_PW], H * d * d)
    PB = _v1(theta, ints[LAY_OFF_PB], H * d)
    ws.CTX[:] = 0.0
    inv_h = 1.0 / H
    for h in range(H):
        if dot:
            Qh = ws.Q[h]
            _mm(ws.HDB, AW[h * d * d : (h + 1) * d * d].reshape((d, d)).T, Qh)
            _add_rows(Qh, AB[h * d : (h + 1) * d])
        for b in range(B):
            Ab = ws.AL[h, b]
            if dot:
                _mm(ws.Q[h][b * T1 : (b + 1) * T1], ws.HEB[b].T, Ab)
                for t in range(T1):
                    for l in range(L1):  # noqa: E741
                        ws.E[t * L1 + l] = Ab[t, l]
                _softmax_rows(ws.E, ws.K, ws.K.view(np.int64), T1, L1)
                for t in range(T1):
                    for l in range(L1):  # noqa: E741
                        Ab[t, l] = ws.E[t * L1 + l]
            else:
                Ab[:] = 1.0 / L1
            _mm(Ab, ws.HEB[b], ws.RAW[h][b * T1 : (b + 1) * T1])
        _mm(ws.RAW[h], PW[h * d * d : (h + 1) * d * d].reshape((d, d)).T, ws.PJ)
        pb = PB[h * d : (h + 1) * d]
        for r in range(B * T1):
            for j in range(d):
                ws.CTX[r, j] += (ws.PJ[r, j] + pb[j]) * inv_h
    # output: tanh(W1 h_dec + W2 ctx + bias), then the logits
    CW = _m2(theta, ints[LAY_OFF_CW], d, 2 * d)
    for i in range(d):
        for j in range(d):
            ws.W1[i, j] = CW[i, j]
            ws.W2[i, j] = CW[i, d + j]
    _mm(ws.HDB, ws.W1.T, ws.PD)
    _add_rows(ws.PD, _v1(theta, ints[LAY_OFF_CB], d))
    _mm(ws.CTX, ws.W2.T, ws.OUT)
    for r in range(B * T1):
        for j in range(d):
            ws.OUT[r, j] += ws.PD[r, j]
    _tanh_rows(ws.OUT, B * T1, ws.EG, ws.KG)
    _mm(ws.OUT, _m2(theta, ints[LAY_OFF_OW], Vo, d).T, ws.Z)
    _add_rows(ws.Z, _v1(theta, ints[LAY_OFF_OB], Vo))


@jit()
def _ktiw_accuracy(x, y, gold, theta, lay, ws):
    """Fraction of the target words with a gold position where the KTIW probe's argmax over
    the L+1 source states hits it (NaN when none has one). One example at a time: its T·(L+1)
    probe states in one tanh and one product."""
    ints = lay[0]
    H, Vout, L, T, d = ints[LAY_H], ints[LAY_VOUT], ints[LAY_L], ints[LAY_T], ints[LAY_D]
    B = x.shape[0]
    L1, T1, Vo = L + 1, T + 1, Vout + 2
    PW = _v1(theta, ints[LAY_OFF_PW], H * d * d)
    PB = _v1(theta, ints[LAY_OFF_PB], H * d)
    OW = _m2(theta, ints[LAY_OFF_OW], Vo, d)
    OB = _v1(theta, ints[LAY_OFF_OB], Vo)
    HEf = ws.HEB.reshape((B * L1, d))
    ws.PE[:] = 0.0
    inv_h = 1.0 / H
    for h in range(H):
        _mm(HEf, PW[h * d * d : (h + 1) * d * d].reshape((d, d)).T, ws.PC)
        pb = PB[h * d : (h + 1) * d]
        for r in range(B * L1):
            for j in range(d):
                ws.PE[r, j] += (ws.PC[r, j] + pb[j]) * inv_h
    _mm(ws.PE, ws.W2.T, ws.PC)
    hits = 0
    count = 0
    for b in range(B):
        for t in range(T):
            pd = ws.PD[b * T1 + t]
            for l in range(L1):  # noqa: E741
                ko, pc = ws.KO[t * L1 + l], ws.PC[b * L1 + l]
                for j in range(d):
                    ko[j] = pd[j] + pc[j]
        _tanh_rows(ws.KO, T * L1, ws.EG, ws.KG)
        _mm(ws.KO, OW.T, ws.KZ)
        for t in range(T):
            g = gold[b, t]
            if g < 0:
                continue
            o = y[b, t]
            r0 = t * L1
            # β_l = z_o − log Σ_{v≠o} e^{z_v}: the target's own term enters as e^{−708} ≈ 0
            for l in range(L1):  # noqa: E741
                m = -np.inf
                for v in range(Vo):
                    z = np.float64(ws.KZ[r0 + l, v] + OB[v])
                    if v != o and z > m:
                        m = z
                for v in range(Vo):
                    ws.E[l * Vo + v] = np.float64(ws.KZ[r0 + l, v] + OB[v]) - m if v != o else -1e300
            _exp_inplace(ws.E, ws.K, ws.K.view(np.int64), L1 * Vo)
            best = -np.inf
            arg = 0
            for l in range(L1):  # noqa: E741
                m = -np.inf
                for v in range(Vo):
                    z = np.float64(ws.KZ[r0 + l, v] + OB[v])
                    if v != o and z > m:
                        m = z
                s = 0.0
                for v in range(Vo):
                    s += ws.E[l * Vo + v]
                beta = np.float64(ws.KZ[r0 + l, o] + OB[o]) - m - math.log(s)
                if beta > best:
                    best = beta
                    arg = l
            hits += arg == g
            count += 1
    return hits / count if count > 0 else np.nan


@jit()
def _core(x, y, gold, theta, lay, grad, ws, want_grad, want_metrics, metrics, want_loss):
    """Mean cross-entropy over the B·(T+1) predictions; the gradient into ``grad``."""
    ints = lay[0]
    H, Vin, Vout, L, T, d, G = (
        ints[LAY_H], ints[LAY_VIN], ints[LAY_VOUT], ints[LAY_L], ints[LAY_T], ints[LAY_D], ints[LAY_G]
    )  # fmt: skip
    gru, dot = ints[LAY_GRU] == 1, ints[LAY_DOT] == 1
    B = x.shape[0]
    L1, T1, Vo = L + 1, T + 1, Vout + 2
    N = B * T1
    _forward_pass(x, y, theta, lay, ws)
    # loss, accuracy and ∂z = (softmax − onehot)/N
    loss = 0.0
    hits = 0
    inv_n = 1.0 / N
    for r in range(N):  # z − max of its row, and the argmax
        m = ws.Z[r, 0]
        arg = 0
        for v in range(1, Vo):
            if ws.Z[r, v] > m:
                m = ws.Z[r, v]
                arg = v
        b, t = r // T1, r % T1
        tgt = y[b, t] if t < T else Vout
        hits += arg == tgt
        for v in range(Vo):
            ws.E[r * Vo + v] = np.float64(ws.Z[r, v]) - np.float64(m)
        loss += np.float64(m) - np.float64(ws.Z[r, tgt])
    _exp_inplace(ws.E, ws.K, ws.K.view(np.int64), N * Vo)
    for r in range(N):
        s = 0.0
        for v in range(Vo):
            s += ws.E[r * Vo + v]
        loss += math.log(s)
        if want_grad:
            b, t = r // T1, r % T1
            tgt = y[b, t] if t < T else Vout
            c = inv_n / s
            for v in range(Vo):
                ws.Z[r, v] = ws.E[r * Vo + v] * c
            ws.Z[r, tgt] -= inv_n
    loss = loss / N
    if want_metrics:
        metrics[MET_LOSS] = loss
        metrics[MET_ACC] = hits / N
        metrics[MET_KTIW] = _ktiw_accuracy(x, y, gold, theta, lay, ws)
        for h in range(H):
            n_gold = 0
            n_hit = 0
            mass = 0.0
            for b in range(B):
                for t in range(T):
                    g = gold[b, t]
                    if g < 0:
                        continue
                    n_gold += 1
                    best = 0
                    for l in range(1, L1):  # noqa: E741
                        if ws.AL[h, b, t, l] > ws.AL[h, b, t, best]:
                            best = l
                    n_hit += best == g
                    mass += ws.AL[h, b, t, g]
            metrics[MET_HEADS + h] = n_hit / n_gold if n_gold > 0 else np.nan
            metrics[MET_HEADS + H + h] = mass / n_gold if n_gold > 0 else np.nan
    if not want_grad:
        return loss
    grad[:] = 0.0
    # output layer
    OW = _m2(theta, ints[LAY_OFF_OW], Vo, d)
    _mm(ws.Z.T, ws.OUT, _m2(grad, ints[LAY_OFF_OW], Vo, d))
    _col_sums_into(ws.Z, _v1(grad, ints[LAY_OFF_OB], Vo))
    _mm(ws.Z, OW, ws.dOUT)
    for r in range(N):
        for j in range(d):
            o = ws.OUT[r, j]
            ws.dA[r, j] = ws.dOUT[r, j] * (1.0 - o * o)
    # after_decoder_hidden: its two halves, then the gradients of h_dec and ctx
    gCW = _m2(grad, ints[LAY_OFF_CW], d, 2 * d)
    _mm(ws.dA.T, ws.HDB, ws.tdd)
    for i in range(d):
        for j in range(d):
            gCW[i, j] = ws.tdd[i, j]
    _mm(ws.dA.T, ws.CTX, ws.tdd)
    for i in range(d):
        for j in range(d):
            gCW[i, d + j] = ws.tdd[i, j]
    _col_sums_into(ws.dA, _v1(grad, ints[LAY_OFF_CB], d))
    _mm(ws.dA, ws.W1, ws.dHDB)
    _mm(ws.dA, ws.W2, ws.dCTX)
    inv_h = 1.0 / H
    for r in range(N):
        for j in range(d):
            ws.dCTX[r, j] *= inv_h
    # heads
    AW = _v1(theta, ints[LAY_OFF_AW], H * d * d)
    PW = _v1(theta, ints[LAY_OFF_PW], H * d * d)
    gAW = _v1(grad, ints[LAY_OFF_AW], H * d * d)
    gAB = _v1(grad, ints[LAY_OFF_AB], H * d)
    gPW = _v1(grad, ints[LAY_OFF_PW], H * d * d)
    gPB = _v1(grad, ints[LAY_OFF_PB], H * d)
    ws.dHEB[:] = 0.0
    for h in range(H):
        _mm(ws.dCTX.T, ws.RAW[h], gPW[h * d * d : (h + 1) * d * d].reshape((d, d)))
        _col_sums_into(ws.dCTX, gPB[h * d : (h + 1) * d])
        _mm(ws.dCTX, PW[h * d * d : (h + 1) * d * d].reshape((d, d)), ws.dRAW)
        for b in range(B):
            Ab = ws.AL[h, b]
            dRb = ws.dRAW[b * T1 : (b + 1) * T1]
            _mm(Ab.T, dRb, ws.tLd)
            if dot:
                _mm(dRb, ws.HEB[b].T, ws.dAL)
                for t in range(T1):
                    s = 0.0
                    for l in range(L1):  # noqa: E741
                        s += Ab[t, l] * ws.dAL[t, l]
                    for l in range(L1):  # noqa: E741
                        ws.dAL[t, l] = Ab[t, l] * (ws.dAL[t, l] - s)
                _mm(ws.dAL, ws.HEB[b], ws.dQ[b * T1 : (b + 1) * T1])
                for l in range(L1):  # noqa: E741
                    for j in range(d):
                        ws.dHEB[b, l, j] += ws.tLd[l, j]
                _mm(ws.dAL.T, ws.Q[h][b * T1 : (b + 1) * T1], ws.tLd)
            for l in range(L1):  # noqa: E741
                for j in range(d):
                    ws.dHEB[b, l, j] += ws.tLd[l, j]
        if dot:
            _mm(ws.dQ.T, ws.HDB, gAW[h * d * d : (h + 1) * d * d].reshape((d, d)))
            _col_sums_into(ws.dQ, gAB[h * d : (h + 1) * d])
            _mm(ws.dQ, AW[h * d * d : (h + 1) * d * d].reshape((d, d)), ws.dRAW)
            for r in range(N):
                for j in range(d):
                    ws.dHDB[r, j] += ws.dRAW[r, j]
    # decoder, back through time; its first state is the encoder's last
    ws.dh[:] = 0.0
    ws.dc[:] = 0.0
    dGHD = ws.dGHD if gru else ws.dGID
    dGHE = ws.dGHE if gru else ws.dGIE
    Whh = _m2(theta, ints[LAY_OFF_D_WHH], G * d, d)
    _recur_back(
        ws.GID, ws.GHND, ws.HD, ws.CD, ws.TCD, Whh, ws.dGID, dGHD, ws.dh, ws.dc, ws.dHDB, T1, T1, B, d, gru, ws.tBd
    )
    Whh = _m2(theta, ints[LAY_OFF_E_WHH], G * d, d)
    dHEf = ws.dHEB.reshape((B * L1, d))
    _recur_back(
        ws.GIE, ws.GHNE, ws.HE, ws.CE, ws.TCE, Whh, ws.dGIE, dGHE, ws.dh, ws.dc, dHEf, L1, L1, B, d, gru, ws.tBd
    )
    # weights of the cells, then the inputs' (decoder first, as before: a shared embedding's
    # gradient receives the decoder's part first)
    gW, gb = _m2(grad, ints[LAY_OFF_D_WHH], G * d, d), _v1(grad, ints[LAY_OFF_D_BHH], G * d)
    _recurrent_grads(dGHD, ws.HD, T1, B, gW, gb)
    gW, gb = _m2(grad, ints[LAY_OFF_E_WHH], G * d, d), _v1(grad, ints[LAY_OFF_E_BHH], G * d)
    _recurrent_grads(dGHE, ws.HE, L1, B, gW, gb)
    _input_grads(
        ws.TOKD, _m2(theta, ints[LAY_OFF_EMB_D], Vout + 2, d), _m2(theta, ints[LAY_OFF_D_WIH], G * d, d), ws.dGID,
        ws.XD, ws.EWD, ws.dX, _m2(grad, ints[LAY_OFF_EMB_D], Vout + 2, d), _m2(grad, ints[LAY_OFF_D_WIH], G * d, d),
        _v1(grad, ints[LAY_OFF_D_BIH], G * d),
    )  # fmt: skip
    _input_grads(
        ws.TOKE, _m2(theta, ints[LAY_OFF_EMB_E], Vin + 2, d), _m2(theta, ints[LAY_OFF_E_WIH], G * d, d), ws.dGIE,
        ws.XE, ws.EWE, ws.dX, _m2(grad, ints[LAY_OFF_EMB_E], Vin + 2, d), _m2(grad, ints[LAY_OFF_E_WIH], G * d, d),
        _v1(grad, ints[LAY_OFF_E_BIH], G * d),
    )  # fmt: skip
    return loss


# =============================================================================
# public kernels (each has a NumPy oracle in _reference.REGISTRY)
# =============================================================================
@jit()
def loss_grad(x, y, theta, lay, grad):
    """Mean cross-entropy of (x, y) over the T+1 predictions and its gradient, into ``grad``."""
    ws = _alloc_ws(lay, theta, x.shape[0])
    gold = np.zeros((1, 1), np.int64)
    metrics = np.zeros(1, np.float64)
    fp = _flush_subnormals()
    loss = _core(x, y, gold, theta, lay, grad, ws, True, False, metrics, True)
    _restore_fp(fp)
    return loss


@jit()
def forward(x, y, theta, lay, z_out, alpha_out):
    """Teacher-forced logits ``z_out`` (B, T+1, Vout+2) and attention ``alpha_out``
    (H, B, T+1, L+1)."""
    ints = lay[0]
    ws = _alloc_ws(lay, theta, x.shape[0])
    fp = _flush_subnormals()
    _forward_pass(x, y, theta, lay, ws)
    _restore_fp(fp)
    B = x.shape[0]
    T1 = ints[LAY_T] + 1
    for b in range(B):
        for t in range(T1):
            for v in range(ws.Z.shape[1]):
                z_out[b, t, v] = ws.Z[b * T1 + t, v]
    alpha_out[:] = ws.AL


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
