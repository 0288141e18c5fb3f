"""Closed-form theory of the same dynamics (docs/design.md §4), as pure functions of τ = lr·steps.

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

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Cooccurrence",
    "Hardness",
    "Saddle",
    "attention_order",
    "bias_rate",
    "cooccurrence",
    "copy_coordinates",
    "gated_classifier",
    "gated_classifier_rhs",
    "hardness",
    "reduced_copy",
    "reduced_copy_loss",
    "reduced_copy_rhs",
    "saddle",
    "saddle_projection",
    "stage1_rate",
    "stage2_content_rate",
    "stage2_rate",
    "time_to_attend",
    "two_stage",
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
    """``(n, C)`` of docs/design.md §2: exact for the built-in tasks; for your own data (a
    `from_arrays` or `from_parallel_text` task) the means over its sequences, with
    standard errors as estimates of the distribution they were drawn from."""
    _require_tables(task)
    return Cooccurrence(task.stats())


def _require_tables(task) -> None:
    """The theory works with dense (Vout, Vin) tables, about ten of them at a time."""
    from ._memory import require  # a plain module: no kernels behind it

    cells = task.vocab_out * task.vocab_in
    require(10 * 8 * cells, f"the theory of {task!r} ({cells:,} entries per Vout × Vin table)")


def stage1_rate(task) -> np.ndarray:
    """G (Vout, Vin) of docs/design.md §4.1: −∂loss/∂U at U = 0 with uniform attention (one head),

        G[o, i] = ( C[o, i] − (T / Vout) · n[i] ) / (T · L),

    so that U(τ) ≈ τ·G while attention is uniform."""
    n, C = cooccurrence(task)
    T, L = task.tgt_len, task.src_len
    return (C - (T / task.vocab_out) * n[None, :]) / (T * L)


def stage2_rate(task) -> np.ndarray:
    """M (T, L) of docs/design.md §4.2, without the 1/(T·L): with U = τ·G and uniform attention,
    −∂loss/∂S[t, l] = (τ / (T·L)) · M[t, l] + O(τ²), where

        M[t, l] = E[ Ḡ[y_t, x_l] − (1/L) Σ_l' Ḡ[y_t, x_l'] ],   Ḡ = G − mean over o.

    Computed from the pair marginals P(y_t = o, x_l = i) of the task."""
    G = stage1_rate(task)
    Gbar = G - G.mean(axis=0, keepdims=True)
    T, L = task.tgt_len, task.src_len
    E = np.array([[np.sum(task.pair_marginal(t, l) * Gbar) for l in range(L)] for t in range(T)])  # noqa: E741
    return E - E.mean(axis=1, keepdims=True)


def bias_rate(task) -> np.ndarray:
    """g_b (Vout,): −∂loss/∂b at the zero init, ``mean_t P(y_t = o) − 1/Vout``, so that
    b(τ) ≈ τ·g_b beside U(τ) ≈ τ·G (zero for tasks whose targets are uniform)."""
    q = np.mean([task.pair_marginal(t, 0).sum(axis=1) for t in range(task.tgt_len)], axis=0)
    return q - 1.0 / task.vocab_out


def _data_or_sample(task, samples: int, seed: int):
    """The task's own data set when it has one (exact for it), else ``samples`` fresh
    sequences from ``seed``; returns (x, y, gold, exact)."""
    if getattr(task, "x", None) is not None and getattr(task, "y", None) is not None:
        return task.x, task.y, task.gold, True
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    x, y, gold = task.sample(np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(7,))), int(samples))
    return x, y, gold, False


_CACHE: dict = {}  # content rates and saddles of built-in tasks, which their spec fixes


def _cache_key(task, *args):
    """A key for `_CACHE`, or None for a task that holds its own data (not fixed by its spec)."""
    if getattr(task, "x", None) is not None:
        return None
    return (json.dumps(task.spec(), sort_keys=True), *args)


def stage2_content_rate(task, samples: int = 100_000, seed: int = 0, return_se: bool = False):
    """N (T, Vin), the content counterpart of M: with U = τ·G and uniform attention,
    −∂loss/∂A[t, i] = (τ / (T·L)) · N[t, i] + O(τ²), where

        N[t, i] = E[ Σ_{l : x_l = i} ( Ḡ[y_t, x_l] − (1/L) Σ_l' Ḡ[y_t, x_l'] ) ].

    The second term needs three-way statistics (y_t, x_l, x_l'), so N is a mean over
    sequences: over the task's own data set when it has one (exact for that data), else
    over ``samples`` sequences drawn from ``seed`` (Monte Carlo, computed once per task,
    sample size and seed). With ``return_se``
    also the standard errors, ``(N, se)``. Rows sum to 0 (a shift of A[t] changes nothing).
    """
    key = _cache_key(task, "N", samples, seed)
    if key is not None and key in _CACHE:
        N, se = _CACHE[key]
        return (N.copy(), se.copy()) if return_se else N.copy()
    Gbar = stage1_rate(task)
    Gbar = Gbar - Gbar.mean(axis=0, keepdims=True)
    x, y, _, _ = _data_or_sample(task, samples, seed)
    T, L, Vin = task.tgt_len, task.src_len, task.vocab_in
    n = x.shape[0]
    total, total_sq = np.zeros((T, Vin)), np.zeros((T, Vin))
    chunk = max(1, 4_000_000 // (T * max(L, Vin)))
    for lo in range(0, n, chunk):
        xs, ys = x[lo : lo + chunk], y[lo : lo + chunk]
        c = xs.shape[0]
        D = Gbar[ys[:, :, None], xs[:, None, :]]  # (c, T, L)
        D -= D.mean(axis=2, keepdims=True)
        idx = (np.arange(c)[:, None, None] * T + np.arange(T)[None, :, None]) * Vin + xs[:, None, :]
        per = np.bincount(idx.ravel(), weights=D.ravel(), minlength=c * T * Vin).reshape(c, T, Vin)
        total += per.sum(axis=0)
        total_sq += np.einsum("cti,cti->ti", per, per)
    N = total / n
    se = np.sqrt(np.maximum(total_sq / n - N**2, 0.0) / max(n - 1, 1))
    if key is not None:
        _CACHE[key] = (N.copy(), se.copy())
    return (N, se) if return_se else N


def _mode(task, attention):
    mode = attention or task.default_attention
    if mode not in ("positional", "content", "both"):
        raise ValueError(f"attention must be 'positional', 'content' or 'both' for the stage-2 theory, got {mode!r}")
    return mode


def _log_odds(z):
    """K[o, i] = z[o, i] − log Σ_{o'≠o} exp z[o', i] (the KTIW table of a column of logits)."""
    out = np.empty_like(z)
    for o in range(z.shape[0]):
        others = np.delete(z, o, axis=0)
        m = others.max(axis=0)
        out[o] = z[o] - m - np.log(np.exp(others - m).sum(axis=0))
    return out


TARGETS = ("gold", "top")


class _GoldMass:
    """Mean attention on the gold position at attention logits k·R, R the stage-2 rates
    (exact and sample-free for positional attention with one gold alignment); with
    ``target="top"`` on the position R ranks first in each row instead (the position
    stage 2 attends to, whether or not the task has a gold alignment)."""

    def __init__(self, task, mode, samples, seed, target="gold", M=None):
        T, L = task.tgt_len, task.src_len
        if target not in TARGETS:
            raise ValueError(f"target must be 'gold' or 'top', got {target!r}")
        if mode in ("positional", "both") and M is None:
            M = stage2_rate(task)
        if mode == "positional" and (task.gold_constant is not None or target == "top"):
            R = M[None]  # (1, T, L)
            gold = np.asarray(task.gold_constant)[None] if target == "gold" else np.argmax(R, axis=2)
        else:
            x, _, gold, _ = _data_or_sample(task, samples, seed)
            if gold is None:
                gold = np.broadcast_to(task.gold_constant, (x.shape[0], T))
            R = np.zeros((x.shape[0], T, L))
            if mode in ("positional", "both"):
                R += M[None]
            if mode in ("content", "both"):
                N = stage2_content_rate(task, samples=max(samples, 100_000), seed=seed)
                R += N[np.arange(T)[None, :, None], x[:, None, :]]
            if target == "top":
                gold = np.argmax(R, axis=2)
        self.has_gold = gold >= 0
        self.R = R[self.has_gold]  # (rows, L): one row per (sequence, t) with a gold position
        self.gold = gold[self.has_gold]

    def __call__(self, k):
        """Mean gold mass at logits k·R, for an array of k (same shape out)."""
        k = np.asarray(k, dtype=np.float64)
        if self.R.shape[0] == 0:
            return np.full(k.shape, np.nan)
        out = np.empty(k.size)
        rows = np.arange(self.R.shape[0])
        for j, kj in enumerate(k.ravel()):
            z = kj * self.R
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            out[j] = np.mean(e[rows, self.gold] / e.sum(axis=1))
        return out.reshape(k.shape)


def _check_heads(heads):
    if isinstance(heads, bool) or not isinstance(heads, (int, np.integer)) or heads < 1:
        raise ValueError(f"heads must be a positive integer, got {heads!r}")
    return int(heads)


def _gold_pairs(x, y, gold, shape) -> np.ndarray:
    """Frequency of (y_t, x_gold) among the entries with a gold position: the mean KTIW
    log-odds at the gold position of a table K is ``sum(pairs * K)``."""
    has = gold >= 0
    pairs = np.zeros(shape)
    np.add.at(pairs, (y[has], np.take_along_axis(x, np.where(has, gold, 0), axis=1)[has]), 1.0)
    return pairs / max(pairs.sum(), 1.0)


def two_stage(task, tau, attention: str | None = None, heads: int = 1, samples: int = 4000, seed: int = 0) -> dict:
    """The two-stage approximation of docs/design.md §4.2 as arrays over τ (gradient descent
    from the zero init; τ = lr·steps).

    Stage 1: U(τ) = τ·G/H and b(τ) = τ·g_b while attention is uniform; stage 2: the
    attention logits S(τ) = (τ/H)²/2 · M/(T·L) and A(τ) = (τ/H)²/2 · N/(T·L). With H
    heads from the zero init every head stays equal and moves 1/H as fast.

    Returns a dict with ``tau``; ``S`` (len(tau), T, L) and/or ``A`` (len(tau), T, Vin)
    (by the attention mode, default the task's); ``gold_mass`` (mean attention on the
    gold position: exact for positional attention, else over ``samples`` sequences or
    the task's own data); ``top_mass`` (the same on the position the stage-2 rates rank
    first in each row: defined for every task, with or without a gold alignment);
    ``ktiw_gold`` (mean KTIW log-odds β at the gold position)
    and ``ktiw_acc`` (argmax_l β == gold, the first of tied maxima), over the first 1000
    of those sequences.
    Gold-alignment quantities are NaN for a task without one.
    """
    mode = _mode(task, attention)
    heads = _check_heads(heads)
    tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    if tau.ndim != 1 or np.any(~np.isfinite(tau)) or np.any(tau < 0):
        raise ValueError("two_stage: tau must be a 1-D array of numbers >= 0")
    T, L = task.tgt_len, task.src_len
    G, gb = stage1_rate(task), bias_rate(task)
    k = 0.5 * (tau / heads) ** 2 / (T * L)
    out = {"tau": tau}
    M = stage2_rate(task) if mode in ("positional", "both") else None  # computed once, used thrice
    if M is not None:
        out["S"] = k[:, None, None] * M[None]
    if mode in ("content", "both"):
        out["A"] = k[:, None, None] * stage2_content_rate(task, samples=max(samples, 100_000), seed=seed)[None]
    out["gold_mass"] = _GoldMass(task, mode, samples, seed, M=M)(k)
    out["top_mass"] = _GoldMass(task, mode, samples, seed, target="top", M=M)(k)
    x, y, gold, _ = _data_or_sample(task, min(samples, 1000), seed)
    if gold is None:
        gold = np.broadcast_to(task.gold_constant, y.shape)
    has_gold = gold >= 0
    if not has_gold.any():
        out["ktiw_gold"] = out["ktiw_acc"] = np.full(tau.shape, np.nan)
        return out
    g = np.where(has_gold, gold, 0)
    pairs = _gold_pairs(x, y, gold, G.shape)
    ktiw_gold, ktiw_acc = [], []
    for ti in tau:  # every head's table moves as (τ/H)·G, the bias as τ·g_b
        table = _log_odds((ti / heads) * G + ti * gb[:, None])
        ktiw_gold.append(np.sum(pairs * table))
        beta = table[y[:, :, None], x[:, None, :]]  # (n, T, L)
        ktiw_acc.append((np.argmax(beta, axis=2) == g)[has_gold].mean())  # first argmax, as the simulation
    out["ktiw_gold"], out["ktiw_acc"] = np.array(ktiw_gold), np.array(ktiw_acc)
    return out


def time_to_attend(
    task,
    threshold: float = 0.5,
    attention: str | None = None,
    heads: int = 1,
    samples: int = 4000,
    seed: int = 0,
    target: str = "gold",
) -> float:
    """τ at which the two-stage gold attention mass first reaches ``threshold``
    (math.inf if it never does, e.g. on a hard distribution).

    ``target="top"``: the mass on the position the stage-2 rates rank first instead of
    the gold one — the time to attend for a task without a gold alignment (user data);
    ``"gold"`` on such a task is a ValueError.

    For a copy-like task every row of M holds one value m_d at the gold position and
    m_o elsewhere, and this is the closed form

        τ* = H · sqrt( 2·T·L · log( θ·(L − 1) / (1 − θ) ) / (m_d − m_o) ).
    """
    if isinstance(threshold, bool) or not (isinstance(threshold, (int, float)) and 0 < threshold < 1):
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    mode = _mode(task, attention)
    heads = _check_heads(heads)
    T, L = task.tgt_len, task.src_len
    mass = _GoldMass(task, mode, samples, seed, target)
    if mass.R.shape[0] == 0:
        raise ValueError(
            f"time_to_attend: {task!r} has no gold alignment (target='top' times the attention on the position "
            "stage 2 ranks first)"
        )
    scale = float(np.max(np.abs(mass.R)))
    if not scale > 1e-14:
        return math.inf
    k_grid = np.logspace(-2, 6, 161) / scale  # logits k·R from 0.01 to 1e6
    values = mass(k_grid)
    above = np.flatnonzero(values >= threshold)
    if above.size == 0:
        return math.inf
    j = above[0]
    lo = 0.0 if j == 0 else k_grid[j - 1]
    from scipy.optimize import brentq  # imported here: scipy costs the command line 0.4 s at start

    k_star = brentq(lambda kk: mass(np.array([kk]))[0] - threshold, lo, k_grid[j], xtol=1e-14 / scale, rtol=1e-13)
    return float(heads * math.sqrt(2 * T * L * k_star))


def attention_order(task, attention: str | None = None, **kw) -> dict:
    """The order in which stage 2 raises attention: for every target step, source
    positions ranked by M (``positions``, (T, L), first = attended first) and/or words
    ranked by N (``words``, (T, Vin)); with the rates themselves (``M``, ``N``)."""
    mode = _mode(task, attention)
    out = {}
    if mode in ("positional", "both"):
        M = stage2_rate(task)
        out.update(M=M, positions=np.argsort(-M, axis=1, kind="stable"))
    if mode in ("content", "both"):
        N = stage2_content_rate(task, **kw)
        out.update(N=N, words=np.argsort(-N, axis=1, kind="stable"))
    return out


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


def reduced_copy_loss(a, c, vocab: int, length: int) -> float:
    """ℓ(a, c): the loss of every example of ``copy(vocab, length)`` at U_h = a_h·I,
    S_h = c_h·I (scalars for one head, arrays (H,) for H heads)."""
    V, L = vocab, length
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    c = np.atleast_1d(np.asarray(c, dtype=np.float64))
    att = np.array([_attention(ci, L) for ci in c])
    zd, zo = float(np.dot(a, att[:, 0])) / a.shape[0], float(np.dot(a, att[:, 1])) / a.shape[0]
    m = max(zd, zo, 0.0)
    Z = math.exp(zd - m) + (L - 1) * math.exp(zo - m) + (V - L) * math.exp(-m)
    return -zd + m + math.log(Z)


def reduced_copy_rhs(a, c, vocab: int, length: int):
    """(da/dτ, dc/dτ) of gradient flow on the full model at U_h = a_h·I, S_h = c_h·I.

    Scalars ``a, c`` for one head; arrays of shape (H,) for H heads, whose averaged
    outputs give the gold word the logit mean_h a_h·α_d(c_h) and every other input word
    mean_h a_h·α_o(c_h) (symmetry keeps each head on its own diagonal)."""
    V, L = vocab, length
    scalar = np.ndim(a) == 0 and np.ndim(c) == 0
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    c = np.atleast_1d(np.asarray(c, dtype=np.float64))
    H = a.shape[0]
    att = np.array([_attention(ci, L) for ci in c])
    ad, ao = att[:, 0], att[:, 1]
    zd, zo = float(np.dot(a, ad)) / H, float(np.dot(a, ao)) / H
    m = max(zd, zo, 0.0)
    ed, eo, e0 = math.exp(zd - m), math.exp(zo - m), math.exp(-m)
    Z = ed + (L - 1) * eo + (V - L) * e0
    po = eo / Z  # output probability of another input word
    miss = ((L - 1) * eo + (V - L) * e0) / Z  # 1 − p_gold, written out (no cancellation:
    # ∂ℓ/∂a is exactly 0 at the symmetric point of the permutation copy, V = L, a = c = 0)
    dl_da = ((L - 1) * eo * (ao - ad) - (V - L) * e0 * ad) / (Z * H)
    dad, dao = ad * (1 - ad), -ad * ao  # dα_d/dc, dα_o/dc
    dl_dc = a * (-miss * dad + (L - 1) * po * dao) / H
    da, dc = -dl_da / (V - 1), -dl_dc / (L - 1)
    if scalar:
        return float(da[0]), float(dc[0])
    return da, dc


def _integrate(rhs, state0, tau, lr, name: str) -> np.ndarray:
    """States of ``d state/dτ = rhs(state)`` at every τ of ``tau``: gradient flow
    (``solve_ivp``, LSODA, rtol 1e-10) when ``lr`` is None, else gradient descent with step
    ``lr`` (every τ a multiple of it)."""
    if lr is None:
        if tau[-1] > 0:
            from scipy.integrate import solve_ivp  # imported here: scipy is slow to import

            sol = solve_ivp(
                lambda _t, s: rhs(s), (0.0, float(tau[-1])), state0, t_eval=tau, method="LSODA", rtol=1e-10, atol=1e-12
            )
            if not sol.success:  # pragma: no cover - LSODA does not fail on these smooth systems
                raise RuntimeError(f"{name}: integration failed: {sol.message}")
            return sol.y.T
        return np.tile(state0, (tau.shape[0], 1))
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"{name}: lr must be a number > 0 or None, got {lr!r}")
    steps = np.rint(tau / lr).astype(np.int64)
    if np.any(np.abs(steps * lr - tau) > 1e-9 * np.maximum(1.0, tau)):
        raise ValueError(f"{name}: with lr given, every tau must be a multiple of lr")
    states = np.empty((tau.shape[0], state0.shape[0]))
    s = state0.copy()
    k = 0
    for j, n in enumerate(steps):
        while k < n:
            s = s + lr * rhs(s)
            k += 1
        states[j] = s
    return states


def _check_tau(tau, name: str) -> np.ndarray:
    tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    if tau.ndim != 1 or np.any(~np.isfinite(tau)) or np.any(tau < 0) or np.any(np.diff(tau) < 0):
        raise ValueError(f"{name}: tau must be a non-decreasing 1-D array of numbers >= 0")
    return tau


def reduced_copy(vocab: int, length: int, tau, lr: float | None = None, a0=0.0, c0=0.0) -> dict:
    """Exact reduced dynamics of ``copy(vocab, length)`` from U_h = a0_h·I, S_h = c0_h·I.

    Parameters
    ----------
    tau : array of τ = lr·steps at which to report (non-decreasing, >= 0)
    lr : None for gradient flow (``solve_ivp``, rtol 1e-10); a step η for gradient
        descent with that step, whose reduced map is exact (every τ must then be a
        multiple of η)
    a0, c0 : the init, scalars for one head or arrays of shape (H,) for H heads
        (e.g. each head's component along the saddle's unstable direction, see
        `saddle`). With H heads, τ is that of the H-head model, whose heads each move
        1/H as fast as a lone head.

    Returns
    -------
    dict of arrays over ``tau``: ``a``, ``c``, ``gold_mass`` (α_d: the attention on
    the gold position), ``loss`` (ℓ), and ``tau``. With H heads ``a``, ``c`` and
    ``head_gold_mass`` have shape (len(tau), H) and ``gold_mass`` is that of the head
    with the largest c (the best-attending head, as a run logs it).
    """
    V, L = _check_copy(vocab, length)
    tau = _check_tau(tau, "reduced_copy")
    multi = np.ndim(a0) > 0 or np.ndim(c0) > 0
    try:
        a0, c0 = np.broadcast_arrays(
            np.atleast_1d(np.asarray(a0, np.float64)), np.atleast_1d(np.asarray(c0, np.float64))
        )
    except ValueError:
        raise ValueError(
            f"reduced_copy: a0 and c0 must have the same number of heads, got {np.shape(a0)} and {np.shape(c0)}"
        ) from None
    if a0.ndim != 1 or not np.all(np.isfinite(a0)) or not np.all(np.isfinite(c0)):
        raise ValueError("reduced_copy: a0 and c0 must be finite numbers or 1-D arrays (one entry per head)")
    H = a0.shape[0]

    def rhs(s):
        da, dc = reduced_copy_rhs(s[:H], s[H:], V, L)
        return np.concatenate([da, dc])

    states = _integrate(rhs, np.concatenate([a0, c0]), tau, lr, "reduced_copy")
    a, c = states[:, :H], states[:, H:]
    head_gold = np.array([[_attention(ci, L)[0] for ci in row] for row in c])
    loss = np.array([reduced_copy_loss(ai, ci, V, L) for ai, ci in zip(a, c, strict=True)])
    out = {"tau": tau, "loss": loss}
    if multi:
        out.update(a=a, c=c, head_gold_mass=head_gold, gold_mass=head_gold[np.arange(len(tau)), np.argmax(c, axis=1)])
    else:
        out.update(a=a[:, 0], c=c[:, 0], gold_mass=head_gold[:, 0])
    return out


def reduced_copy_dot(vocab: int, length: int, tau, key_dim: int, lr: float | None = None, w0=0.1, u0=0.1) -> dict:
    """Exact reduced dynamics of the dot-product head (rung 1, docs/design.md §7.6) on
    ``copy(vocab, length)`` from an aligned, balanced init (`dot_aligned_params`).

    Positional attention, word values, no context, ``dim`` at least ``vocab`` and
    ``length``, ``key_dim`` at least ``length``: the factors stay aligned and balanced, the
    effective tables are ``U_h = a_h·I``, ``S_h = c_h·I`` (up to shifts that change
    nothing), with ``a_h = w_h³`` (the chain ``WO (E WV)ᵀ``) and ``c_h = u_h⁴/√k`` (the
    chain ``(R WQ)(P WK)ᵀ/√k``), and gradient flow on the factors is

        dw/dτ = −w² ∂ℓ/∂a / (V − 1),     du/dτ = −(u³/√k) ∂ℓ/∂c / (L − 1)

    with ℓ(a, c) the loss of `reduced_copy_loss` (rung 0's: the head *is* rung 0 at its
    tables). So ``da/dτ = 3 a^{4/3}`` and ``dc/dτ = 4 (√k c)^{3/2}/√k`` times rung 0's
    rates: from a small init the tables grow like those of a deep linear network (Saxe et
    al. 2014), with a finite-time escape whose time grows like 1/w0 for U and 1/u0² for S.

    ``w0``, ``u0``: scalars for one head, arrays (H,) for H heads; ``lr``: None for gradient
    flow, a step for gradient descent with that step (the reduced map is then exact).

    Returns ``tau``, ``w``, ``u``, ``a``, ``c``, ``gold_mass`` (the best-attending head's,
    per head ``head_gold_mass`` with several heads) and ``loss``.
    """
    V, L = _check_copy(vocab, length)
    tau = _check_tau(tau, "reduced_copy_dot")
    if isinstance(key_dim, bool) or not isinstance(key_dim, (int, np.integer)) or key_dim < 1:
        raise ValueError(f"reduced_copy_dot: key_dim must be a positive integer, got {key_dim!r}")
    multi = np.ndim(w0) > 0 or np.ndim(u0) > 0
    w0, u0 = np.broadcast_arrays(np.atleast_1d(np.asarray(w0, np.float64)), np.atleast_1d(np.asarray(u0, np.float64)))
    if w0.ndim != 1 or not (np.all(np.isfinite(w0)) and np.all(np.isfinite(u0))):
        raise ValueError("reduced_copy_dot: w0 and u0 must be finite numbers or 1-D arrays (one entry per head)")
    H = w0.shape[0]
    ck = 1.0 / math.sqrt(key_dim)

    def tables(state):
        return state[:H] ** 3, ck * state[H:] ** 4

    def rhs(state):
        w, u = state[:H], state[H:]
        a, c = tables(state)
        da, dc = reduced_copy_rhs(a, c, V, L)  # rung 0's rates: −∂ℓ/∂a/(V−1), −∂ℓ/∂c/(L−1)
        return np.concatenate([w * w * da, ck * u**3 * dc])

    states = _integrate(rhs, np.concatenate([w0, u0]), tau, lr, "reduced_copy_dot")
    a, c = states[:, :H] ** 3, ck * states[:, H:] ** 4
    head_gold = np.array([[_attention(ci, L)[0] for ci in row] for row in c])
    loss = np.array([reduced_copy_loss(ai, ci, V, L) for ai, ci in zip(a, c, strict=True)])
    out = {"tau": tau, "loss": loss}
    if multi:
        out.update(
            w=states[:, :H], u=states[:, H:], a=a, c=c, head_gold_mass=head_gold,
            gold_mass=head_gold[np.arange(len(tau)), np.argmax(c, axis=1)],
        )  # fmt: skip
    else:
        out.update(w=states[:, 0], u=states[:, 1], a=a[:, 0], c=c[:, 0], gold_mass=head_gold[:, 0])
    return out


def dot_aligned_params(cfg, w0=0.1, u0=0.1) -> dict:
    """Parameters of a rung-1 config in the aligned, balanced family of `reduced_copy_dot`:
    ``E = w [I 0]``, ``WV = w I``, ``WO = w [I 0]``, ``R = P = u [I 0]``, ``WQ = WK = u [I 0]``,
    ``b = 0`` (per head, ``w0``, ``u0`` scalars or one per head). Needs positional
    attention, word values and no context, on a copy task's shapes with ``dim`` at least
    the vocabulary and the length, and ``key_dim`` at least the length."""
    V, L, d, k, H = cfg.vocab_in, cfg.src_len, getattr(cfg, "dim", 0), getattr(cfg, "k", 0), cfg.heads
    if getattr(cfg, "model", None) != "dot" or cfg.attention != "positional" or cfg.values != "word" or cfg.context:
        raise ValueError("dot_aligned_params: needs a DotConfig with positional attention, word values and no context")
    if not (cfg.vocab_out == V and cfg.tgt_len == L and d >= V and d >= L and k >= L):
        raise ValueError(
            f"dot_aligned_params: needs a copy task's shapes with dim >= vocab, length and key_dim >= length "
            f"(vocab {V}, length {L}, dim {d}, key_dim {k})"
        )
    w0 = np.broadcast_to(np.asarray(w0, np.float64), (H,))
    u0 = np.broadcast_to(np.asarray(u0, np.float64), (H,))

    def eye(n, m, scale):  # (H, n, m): scale_h·[I 0]
        return scale[:, None, None] * np.eye(n, m)[None]

    params = {
        "E": eye(V, d, w0), "P": eye(L, d, u0), "R": eye(L, d, u0), "WQ": eye(d, k, u0), "WK": eye(d, k, u0),
        "WV": eye(d, d, w0), "WO": eye(V, d, w0),
    }  # fmt: skip
    if cfg.bias:
        params["b"] = np.zeros(V)
    return {name: params[name].astype(cfg.np_dtype) for name in cfg.param_shapes()}


# =============================================================================
# hard distributions: no signal at the symmetric point, a saddle instead
# =============================================================================
@dataclass(frozen=True)
class Hardness:
    """Verdict of `hardness`: ``hard``; ``stage1`` (largest |G|) and ``stage2``
    (largest |M|); the ``tolerance`` on |G|; ``reason`` (one sentence)."""

    hard: bool
    stage1: float
    stage2: float
    tolerance: float
    reason: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def hardness(task) -> Hardness:
    """Whether the stage-1 and stage-2 signals vanish.

    The shifts that leave the loss unchanged (a constant added to a column of U, or to a
    row of S) are already factored out: every column of G and every row of M sums to
    zero. A distribution is hard when G ≡ 0 — to rounding for exact statistics
    (|G| <= 1e-9/(T·L)), or within 3 standard errors everywhere for estimated ones; M is
    built from G, so it vanishes with it. From the zero init a hard distribution has no
    gradient at all, and from a small init it must escape a saddle (see `saddle`).
    """
    co = cooccurrence(task)
    T, L = task.tgt_len, task.src_len
    G = stage1_rate(task)
    M = stage2_rate(task)
    g1, g2 = float(np.max(np.abs(G))), float(np.max(np.abs(M)))
    if co.exact:
        tol = 1e-9 / (T * L)
        hard = g1 <= tol
        how = f"|G| <= {tol:.1e} everywhere (exact statistics)"
    else:
        se = np.sqrt(co.C_se**2 + (T / task.vocab_out * co.n_se[None, :]) ** 2) / (T * L)
        hard = bool(np.all(np.abs(G) <= 3 * se + 1e-15))
        tol = float(3 * np.max(se))
        how = f"every entry of G within 3 standard errors of 0 ({co.samples} sequences)"
    if hard:
        reason = (
            f"hard: no stage-1 or stage-2 signal ({how}); every output word co-occurs with every input word "
            "as often as chance, so from the zero init nothing is learned and from a small init the model "
            "must escape a saddle"
        )
    else:
        reason = (
            f"learnable in two stages: largest stage-1 signal |G| = {g1:.3g}, "
            f"largest positional stage-2 rate |M| = {g2:.3g}"
        )
    return Hardness(hard=bool(hard), stage1=g1, stage2=g2, tolerance=float(tol), reason=reason)


@dataclass(frozen=True)
class Saddle:
    """The saddle of a hard distribution at the symmetric point (one head, positional
    attention; see `saddle`).

    Attributes
    ----------
    U, S : the unstable direction, (Vout, Vin) and (T, L), with |U|² + |S|² = 1;
        moving along it raises the attention on the gold position
    rate : its growth rate λ per unit τ (gradient flow: θ·v grows like e^{λτ})
    sigma : the largest singular value of the bilinear U–S coupling (λ = σ when the
        U-curvature ``curvature`` along U vanishes, as for inputs that hold every word once)
    sigma2 : the second singular value (σ2 = 0: the unstable direction is unique)
    curvature : uᵀ∇²ℓ u along the unit U part (>= 0; it slows the escape)
    heads : rates are those of one head of an H-head model (each 1/H as fast)
    """

    U: np.ndarray
    S: np.ndarray
    rate: float
    sigma: float
    sigma2: float
    curvature: float
    heads: int
    task: dict

    def projection(self, U, S) -> float:
        """⟨(U, S), v⟩: the component of one head's parameters on the unstable direction."""
        return float(np.sum(np.asarray(U) * self.U) + np.sum(np.asarray(S) * self.S))

    def escape_tau(self, projection: float, level: float = 1.0) -> float:
        """Linear estimate of the τ at which a component ``projection`` grows to
        ``level``: log(level/|projection|)/λ (the log(1/init scale) law)."""
        if projection == 0:
            return math.inf
        return max(0.0, math.log(level / abs(projection)) / self.rate)


_MAX_COUPLING = 25_000_000  # entries of the dense (T·L) × (Vout·Vin) coupling matrix
_POWER_STEPS = 5000  # at most; the copy tasks converge in two


def _top_singular(K, start):
    """(s, σ1, u): the top singular pair of K, by power iteration on K·Kᵀ from ``start``.

    Every product is an ``einsum`` (NumPy's own loops, never BLAS), so the result has the
    same bits whatever the number of BLAS threads: LAPACK's SVD does not (a Dask worker
    runs BLAS on one thread, and its saddle projections differed from a local sweep's in
    the last digits). Stops when s moves by less than 1e-13 in a step."""
    s = start / math.sqrt(np.einsum("i,i->", start, start))
    for _ in range(_POWER_STEPS):
        nxt = np.einsum("ij,j->i", K, np.einsum("ij,i->j", K, s))
        norm = math.sqrt(np.einsum("i,i->", nxt, nxt))
        if norm == 0.0:  # K = 0: no coupling at all
            return s, 0.0, np.zeros(K.shape[1])
        nxt /= norm
        moved = float(np.max(np.abs(nxt - s)))
        s = nxt
        if moved <= 1e-13:
            break
    u = np.einsum("ij,i->j", K, s)
    sigma = math.sqrt(np.einsum("j,j->", u, u))
    return s, sigma, u / sigma if sigma > 0 else u


def saddle(task, heads: int = 1, samples: int = 4000, seed: int = 0) -> Saddle:
    """The saddle at the symmetric point U = 0, S = 0, b = 0 of a hard distribution.

    To second order the population loss there is

        ℓ ≈ ℓ0 + ½·uᵀQu − ⟨S, K u⟩,   (K u)[t, l] = ⟨K̃_tl, U⟩ / (T·L),

    with K_tl = P_tl − 1·colsum(P_tl)/Vout the pair marginal with its output-uniform
    part removed and K̃_tl = K_tl − mean_l' K_tl' (attention logits only matter up to
    a shift); Q ⪰ 0 is the curvature of the output softmax at uniform attention, which
    only sees the context-free part of U. The unstable direction pairs the top singular
    vectors (u, s) of K; in that plane gradient flow is

        d/dτ (p, q) = [[−h, σ], [σ, 0]] (p, q),   λ = (−h + sqrt(h² + 4σ²)) / 2,

    h = uᵀQu (0 for the permutation copy). With H heads each head has its own such
    direction, and σ → σ/H, h → h/H². For ``copy(V, V)``: σ = 1/V², λ = σ/H.
    """
    heads = _check_heads(heads)
    if not hardness(task).hard:
        raise ValueError(f"saddle: {task!r} is not hard (its stage-1 signal G is not zero): there is no saddle")
    T, L, Vin, Vout = task.tgt_len, task.src_len, task.vocab_in, task.vocab_out
    if T * L * Vin * Vout > _MAX_COUPLING:
        raise ValueError(
            f"saddle: the coupling matrix would have T·L·Vout·Vin = {T * L * Vin * Vout:,} entries "
            f"(at most {_MAX_COUPLING:,})"
        )
    key = _cache_key(task, "saddle", heads, samples, seed)
    if key is not None and key in _CACHE:
        return _CACHE[key]
    K = np.empty((T, L, Vout, Vin))
    for t in range(T):
        for l in range(L):  # noqa: E741
            P = task.pair_marginal(t, l)
            K[t, l] = P - P.sum(axis=0, keepdims=True) / Vout
    K -= K.mean(axis=1, keepdims=True)
    K = K.reshape(T * L, Vout * Vin) / (T * L)
    gold = getattr(task, "gold_constant", None)
    start = np.random.default_rng(0).standard_normal(T * L) * 1e-3  # fixed: the result depends on nothing else
    if gold is not None:  # the gold alignment, centred: the answer for the copy tasks
        start += (np.arange(L)[None, :] == np.asarray(gold)[:, None]).ravel() - 1.0 / L
    s, sv1, u = _top_singular(K, start)
    sv = np.linalg.svd(K, compute_uv=False)  # σ2 only: whether the direction is unique
    sigma, sigma2 = sv1 / heads, float(sv[1] if sv.size > 1 else 0.0) / heads
    u, s = u.reshape(Vout, Vin), s.reshape(T, L)
    lead = np.sum(s[np.arange(T), gold]) if gold is not None else s.ravel()[np.argmax(np.abs(s))]
    if lead < 0:
        u, s = -u, -s
    x, _, _, _ = _data_or_sample(task, samples, seed)
    z = u[:, x].mean(axis=2)  # (Vout, n): the context-free logits of each sequence
    h = float(np.mean(z.var(axis=0))) / heads**2
    rate = (-h + math.sqrt(h * h + 4 * sigma * sigma)) / 2
    norm = math.hypot(rate, sigma)
    result = Saddle(
        U=u * (rate / norm),
        S=s * (sigma / norm),
        rate=rate,
        sigma=sigma,
        sigma2=sigma2,
        curvature=h,
        heads=heads,
        task=task.spec(),
    )
    if key is not None:
        _CACHE[key] = result
    return result


def saddle_projection(cfg, params, task=None, per_head: bool = False):
    """The projection of ``params`` on the saddle's unstable direction (`saddle`).

    Its sign predicts whether a model started there learns the hard task (positive: it
    learns to attend to the gold position; negative: it falls to the other side of the
    saddle, where the head attends away from the gold position and copies by
    elimination). ``task`` defaults to the permutation copy ``copy(V, V)`` of the
    config's sizes. With several heads each head has its own direction: the result is
    the largest projection over heads (positive when some head is on the learning
    side), or all of them with ``per_head``.

    Any model with effective tables (docs/design.md §7.1) is projected through them: for
    rung 0 with a free table they are its parameters, for a factored table or rung 1
    the products of its factors (whose own dynamics near zero are of higher order).
    """
    from ._model import effective_tables  # a plain module: validation and views, no kernels run

    tables = effective_tables(cfg, params)
    if "S" not in tables or "A" in tables:
        raise ValueError(
            "saddle_projection: needs positional attention alone (the saddle of content attention is of higher order)"
        )
    if task is None:
        V, L = cfg.vocab_in, cfg.src_len
        if not (V == cfg.vocab_out == L == cfg.tgt_len):
            raise ValueError(
                "saddle_projection: the config is not that of a permutation copy (vocab = length); pass task="
            )
        from .tasks import copy

        task = copy(V, L)
    if (task.vocab_in, task.vocab_out, task.src_len, task.tgt_len) != (
        cfg.vocab_in,
        cfg.vocab_out,
        cfg.src_len,
        cfg.tgt_len,
    ):
        raise ValueError("saddle_projection: the task's sizes do not match the config's")
    sad = saddle(task, heads=cfg.heads)
    U, S = np.asarray(tables["U"], dtype=np.float64), np.asarray(tables["S"], dtype=np.float64)
    proj = np.array([sad.projection(U[h], S[h]) for h in range(cfg.heads)])
    return proj if per_head else float(proj.max())


def copy_coordinates(params) -> tuple[np.ndarray, np.ndarray]:
    """(a, c), each (H,): every head's coordinates in the symmetric subspace of the
    copy tasks, U_h ≈ a_h·I and S_h ≈ c_h·I up to the shifts that change nothing —
    a_h = mean diagonal − mean off-diagonal of U_h, c_h the same for S_h. From a random
    init they are the components that `reduced_copy` follows; the rest of the init
    neither grows nor (at first order) steers the symmetric dynamics."""
    U = np.asarray(params["U"], dtype=np.float64)
    S = np.asarray(params["S"], dtype=np.float64)
    if U.ndim != 3 or S.ndim != 3 or U.shape[1] != U.shape[2] or S.shape[1] != S.shape[2]:
        raise ValueError("copy_coordinates: needs square U (H, V, V) and S (H, L, L), as for a copy task")

    def diag_minus_off(X):
        n = X.shape[1]
        d = np.trace(X, axis1=1, axis2=2)
        return d / n - (X.sum(axis=(1, 2)) - d) / (n * (n - 1))

    return diag_minus_off(U), diag_minus_off(S)


# =============================================================================
# the toy gated classifier (the paper's blog)
# =============================================================================
def gated_classifier_rhs(beta0: float, beta1: float, p: float) -> tuple[float, float, float]:
    """Gradient flow of the loss p·(β0 − β1): (dβ0/dτ, dβ1/dτ, dp/dτ) = (−p, p, β1 − β0)."""
    return -p, p, beta1 - beta0


def gated_classifier(beta0: float, beta1: float, p: float, tau) -> dict:
    """Exact solution of the toy gated classifier from (β0, β1, p) at τ = 0.

    Two sequences {0, 0} → negative and {0, 1} → positive; word weights β0, β1; p the
    attention on word 1 when both are present; loss p·(β0 − β1). With d = β1 − β0,
    d' = 2p and p' = d, so with r = √2:

        p(τ) = p0·cosh(rτ) + (d0/r)·sinh(rτ)
        d(τ) = d0·cosh(rτ) + r·p0·sinh(rτ)
        β1 − β1(0) = β0(0) − β0 = (p0/r)·sinh(rτ) + (d0/2)·(cosh(rτ) − 1)

    The linear model lets p leave [0, 1]; ``valid`` marks the τ where it has not yet
    (the attention of the real classifier saturates there).

    Returns a dict of arrays over ``tau``: ``beta0``, ``beta1``, ``p``, ``loss``,
    ``valid``, ``tau``.
    """
    for name, v in (("beta0", beta0), ("beta1", beta1), ("p", p)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
            raise ValueError(f"gated_classifier: {name} must be a finite number, got {v!r}")
    if not 0 <= p <= 1:
        raise ValueError(f"gated_classifier: p is an attention weight and must lie in [0, 1], got {p!r}")
    try:
        tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"gated_classifier: tau must be numbers >= 0, got {tau!r}") from None
    if tau.ndim != 1 or np.any(~np.isfinite(tau)) or np.any(tau < 0) or np.any(np.diff(tau) < 0):
        raise ValueError("gated_classifier: tau must be a non-decreasing 1-D array of numbers >= 0 (valid accumulates)")
    r = math.sqrt(2.0)
    d0 = beta1 - beta0
    ch, sh = np.cosh(r * tau), np.sinh(r * tau)
    p_t = p * ch + (d0 / r) * sh
    moved = (p / r) * sh + 0.5 * d0 * (ch - 1.0)
    b0, b1 = beta0 - moved, beta1 + moved
    inside = (p_t >= 0) & (p_t <= 1)
    valid = np.cumprod(inside).astype(bool)
    return {"tau": tau, "beta0": b0, "beta1": b1, "p": p_t, "loss": p_t * (b0 - b1), "valid": valid}
