"""Closed-form theory of the same dynamics (DESIGN §4), as pure functions of τ = lr·steps.

Imports nothing from the kernels: theory and simulator are independent witnesses of
each other.

Exact reduced dynamics of the copy tasks
----------------------------------------
From the zero init, symmetry keeps ``U = a·I`` and ``S = c·I`` (up to shifts that do
not change the loss), and the loss of every example is the same function of (a, c):

    α_d = e^c / (e^c + L − 1),  α_o = 1 / (e^c + L − 1)
    ℓ(a, c) = −a·α_d + log( e^{a·α_d} + (L − 1)·e^{a·α_o} + V − L )

Gradient flow on the full model moves (a, c) by

    da/dτ = −(1/(V − 1))·∂ℓ/∂a ,   dc/dτ = −(1/(L − 1))·∂ℓ/∂c

and gradient descent with step η is exactly the same map taken in steps of η (its
Euler discretization); online SGD follows it up to batch noise.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

__all__ = [
    "Cooccurrence",
    "cooccurrence",
    "reduced_copy",
    "reduced_copy_loss",
    "reduced_copy_rhs",
    "stage1_rate",
    "stage2_rate",
]


# =============================================================================
# co-occurrence statistics and the two-stage rates
# =============================================================================
class Cooccurrence(tuple):
    """``(n, C)`` of a task, unpacking as a pair; also ``n_se``, ``C_se`` (standard
    errors, 0 when exact), ``exact`` and ``samples`` (sequences behind an estimate)."""

    def __new__(cls, stats):
        obj = super().__new__(cls, (stats.n, stats.C))
        obj.n_se, obj.C_se, obj.exact, obj.samples = stats.n_se, stats.C_se, stats.exact, stats.samples
        return obj

    @property
    def n(self) -> np.ndarray:
        """(Vin,): expected number of source positions holding word i."""
        return self[0]

    @property
    def C(self) -> np.ndarray:
        """(Vout, Vin): expected number of (t, l) with y_t = o and x_l = i."""
        return self[1]


def cooccurrence(task) -> Cooccurrence:
    """``(n, C)`` of DESIGN §2: exact for the built-in tasks; for your own data (a
    `from_arrays` or `from_parallel_text` task) the means over its sequences, with
    standard errors as estimates of the distribution they were drawn from."""
    return Cooccurrence(task.stats())


def stage1_rate(task) -> np.ndarray:
    """G (Vout, Vin) of DESIGN §4: −∂loss/∂U at U = 0 with uniform attention (one head),

        G[o, i] = ( C[o, i] − (T / Vout) · n[i] ) / (T · L),

    so that U(τ) ≈ τ·G while attention is uniform."""
    n, C = cooccurrence(task)
    T, L = task.tgt_len, task.src_len
    return (C - (T / task.vocab_out) * n[None, :]) / (T * L)


def stage2_rate(task) -> np.ndarray:
    """M (T, L) of DESIGN §4, without the 1/(T·L): with U = τ·G and uniform attention,
    −∂loss/∂S[t, l] = (τ / (T·L)) · M[t, l] + O(τ²), where

        M[t, l] = E[ Ḡ[y_t, x_l] − (1/L) Σ_l' Ḡ[y_t, x_l'] ],   Ḡ = G − mean over o.

    Computed from the pair marginals P(y_t = o, x_l = i) of the task."""
    G = stage1_rate(task)
    Gbar = G - G.mean(axis=0, keepdims=True)
    T, L = task.tgt_len, task.src_len
    E = np.array([[np.sum(task.pair_marginal(t, l) * Gbar) for l in range(L)] for t in range(T)])  # noqa: E741
    return E - E.mean(axis=1, keepdims=True)


def _check_copy(vocab, length):
    for name, v in (("vocab", vocab), ("length", length)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise ValueError(f"reduced_copy: {name} must be an integer >= 2, got {v!r}")
    if length > vocab:
        raise ValueError(f"reduced_copy: length {length} > vocab {vocab} (inputs hold distinct words)")
    return int(vocab), int(length)


def _attention(c, L):
    """(α_d, α_o) without overflow for large c."""
    if c > 0:
        den = 1.0 + (L - 1) * math.exp(-c)
        return 1.0 / den, math.exp(-c) / den
    den = math.exp(c) + L - 1
    return math.exp(c) / den, 1.0 / den


def reduced_copy_loss(a: float, c: float, vocab: int, length: int) -> float:
    """ℓ(a, c): the loss of every example of ``copy(vocab, length)`` at U = a·I, S = c·I."""
    V, L = vocab, length
    ad, ao = _attention(c, L)
    terms = np.array([a * ad, a * ao, 0.0])
    m = terms.max()
    Z = math.exp(terms[0] - m) + (L - 1) * math.exp(terms[1] - m) + (V - L) * math.exp(-m)
    return -a * ad + m + math.log(Z)


def reduced_copy_rhs(a: float, c: float, vocab: int, length: int) -> tuple[float, float]:
    """(da/dτ, dc/dτ) of gradient flow on the full model, at U = a·I, S = c·I."""
    V, L = vocab, length
    ad, ao = _attention(c, L)
    m = max(a * ad, a * ao, 0.0)
    ed, eo, e0 = math.exp(a * ad - m), math.exp(a * ao - m), math.exp(-m)
    Z = ed + (L - 1) * eo + (V - L) * e0
    pd, po = ed / Z, eo / Z  # output probability of the gold word, of another input word
    # ∂ℓ/∂a = −α_d (1 − p_d) + (L − 1) p_o α_o, with 1 − p_d written out (no cancellation:
    # exactly 0 at the symmetric point of the permutation copy, V = L, a = c = 0)
    dl_da = ((L - 1) * eo * (ao - ad) - (V - L) * e0 * ad) / Z
    dad, dao = ad * (1 - ad), -ad * ao  # dα_d/dc, dα_o/dc
    dl_dc = -a * dad + pd * a * dad + (L - 1) * po * a * dao
    return -dl_da / (V - 1), -dl_dc / (L - 1)


def reduced_copy(vocab: int, length: int, tau, lr: float | None = None, a0: float = 0.0, c0: float = 0.0) -> dict:
    """Exact reduced dynamics of ``copy(vocab, length)`` from U = a0·I, S = c0·I.

    Parameters
    ----------
    tau : array of τ = lr·steps at which to report (non-decreasing, >= 0)
    lr : None for gradient flow (``solve_ivp``, rtol 1e-10); a step η for gradient
        descent with that step, whose reduced map is exact (every τ must then be a
        multiple of η)

    Returns
    -------
    dict of arrays over ``tau``: ``a``, ``c``, ``gold_mass`` (α_d: the attention on
    the gold position), ``loss`` (ℓ), and ``tau``.
    """
    V, L = _check_copy(vocab, length)
    tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    if tau.ndim != 1 or np.any(~np.isfinite(tau)) or np.any(tau < 0) or np.any(np.diff(tau) < 0):
        raise ValueError("reduced_copy: tau must be a non-decreasing 1-D array of numbers >= 0")
    if lr is None:
        if tau[-1] > 0:
            sol = solve_ivp(
                lambda _t, s: reduced_copy_rhs(s[0], s[1], V, L),
                (0.0, float(tau[-1])),
                [a0, c0],
                t_eval=tau,
                method="LSODA",
                rtol=1e-10,
                atol=1e-12,
            )
            if not sol.success:  # pragma: no cover - LSODA does not fail on this smooth system
                raise RuntimeError(f"reduced_copy: integration failed: {sol.message}")
            a, c = sol.y
        else:
            a, c = np.full(tau.shape, a0), np.full(tau.shape, c0)
    else:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"reduced_copy: lr must be a number > 0 or None, got {lr!r}")
        steps = np.rint(tau / lr).astype(np.int64)
        if np.any(np.abs(steps * lr - tau) > 1e-9 * np.maximum(1.0, tau)):
            raise ValueError("reduced_copy: with lr given, every tau must be a multiple of lr")
        a, c = np.empty(tau.shape), np.empty(tau.shape)
        s = np.array([a0, c0], dtype=np.float64)
        k = 0
        for j, n in enumerate(steps):
            while k < n:
                s = s + lr * np.array(reduced_copy_rhs(s[0], s[1], V, L))
                k += 1
            a[j], c[j] = s
    gold = np.array([_attention(ci, L)[0] for ci in c])
    loss = np.array([reduced_copy_loss(ai, ci, V, L) for ai, ci in zip(a, c, strict=True)])
    return {"tau": tau, "a": a, "c": c, "gold_mass": gold, "loss": loss}
