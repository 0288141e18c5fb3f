"""What the paper measures (docs/design.md §3.3–3.5), for any model and batch.

* ``ktiw_probe``: β[b,t,l], the log-odds that the model gives the right word y_t if
  every head attends to position l alone; ``ktiw_accuracy``: argmax_l β == gold.
* ``agreement``: whether the position u ranks first is within the top 5 % (at least
  the top 1) of v, averaged over rows; ``kendall_tau``: Kendall's τ_b between u and v
  over positions, averaged over rows; ``shuffled_baseline``: both against v shuffled
  within each row (the chance level Â).
* ``saliency``: Δ[b,t,l] = −∂loss_bt/∂s[b,t,l], the gradient on the attention logits
  (summed over heads): where one gradient step moves attention.
* ``success`` and ``time_to_learn`` of a training history (docs/design.md §3.5).
"""

from __future__ import annotations

import math

import numpy as np

from . import _arch
from ._model import check_batch, check_params, effective_tables, forward

__all__ = [
    "ktiw_table",
    "ktiw_probe",
    "ktiw_accuracy",
    "agreement",
    "kendall_tau",
    "shuffled_baseline",
    "saliency",
    "success",
    "time_to_learn",
    "SUCCESS_THRESHOLD",
]

SUCCESS_THRESHOLD = 0.95


def _logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def _log_odds(z, axis):
    """log-odds of every entry of ``z`` along ``axis`` (softmax's logit against the rest)."""
    z = np.moveaxis(np.asarray(z, np.float64), axis, 0)
    if z.shape[0] == 1:
        return np.moveaxis(np.full_like(z, np.inf), 0, axis)
    out = np.empty_like(z)
    for o in range(z.shape[0]):
        out[o] = z[o] - _logsumexp(np.delete(z, o, axis=0), axis=0)
    return np.moveaxis(out, 0, axis)


def _word_probe(cfg, params) -> bool:
    """Whether what a position votes for depends on its word alone (rung 0, and rung 1
    without context or position values): then the probe is a (Vout, Vin) table."""
    return _arch.of(cfg).effective_tables is not None and cfg.exact_tables


def ktiw_table(cfg, params, table=None) -> np.ndarray:
    """K[o, i]: log-odds of output o when every head attends to one position holding
    input word i: with ``z = b + mean_h U[h, :, i]``, ``K[o, i] = z_o − log Σ_{o'≠o} e^{z_o'}``
    (``U`` the model's effective table, docs/design.md §7.1).

    ``table`` (Vout, Vin) replaces ``mean_h U`` (e.g. a bag-of-words proxy).
    """
    params = check_params(cfg, params)
    tables = effective_tables(cfg, params)
    Ubar = tables["U"].mean(axis=0) if table is None else np.asarray(table, np.float64)
    z = Ubar.astype(np.float64) + tables["b"][:, None].astype(np.float64)  # (Vout, Vin)
    return _log_odds(z, axis=0)


def ktiw_probe(cfg, params, x, y, table=None) -> np.ndarray:
    """β (B, T, L): the KTIW probe of docs/design.md §3.4 (log-odds of y_t when every head
    attends to position l alone). For a model whose positions carry more than their word
    (rung 1 with context or position values) it is read off each position's own column; for
    rung 2, (B, T+1, L+1) from its own layers (the EOS step and state included)."""
    x, y = check_batch(cfg, x, y)
    params = check_params(cfg, params)
    own = _arch.of(cfg).ktiw_probe
    if own is not None:  # a model whose positions' votes depend on the target step (rung 2): (B, T+1, L+1)
        if table is not None:
            raise ValueError(f"ktiw_probe: a table stands in for the model's own votes only where they are a table; "
                             f"the {cfg.model} model has none")  # fmt: skip
        return own(cfg, params, x, y)
    if table is not None or _word_probe(cfg, params):
        Kt = ktiw_table(cfg, params, table)
        return Kt[y[:, :, None], x[:, None, :]]
    cols = _arch.of(cfg).value_columns(cfg, params, x).astype(np.float64).mean(axis=0)  # (B, L, Vout)
    bias = params["b"].astype(np.float64) if "b" in params else 0.0
    lo = _log_odds(cols + bias, axis=-1)  # (B, L, Vout)
    return np.take_along_axis(lo[:, None, :, :], y[:, :, None, None], axis=-1)[..., 0]


def ktiw_accuracy(beta, gold) -> float:
    """Fraction of target steps with a gold position where argmax_l β hits it."""
    beta = np.asarray(beta)
    gold = np.asarray(gold)
    has = gold >= 0
    if not has.any():
        return float("nan")
    return float((beta.argmax(axis=-1) == gold)[has].mean())


def _top_k(length: int, top: float) -> int:
    return max(1, int(math.floor(top * length + 0.5)))


def agreement(u, v, top: float = 0.05, mask=None) -> float:
    """A(u, v): over rows (the last axis is positions), the fraction where the position
    ``u`` ranks first lies within the top ``top`` fraction (at least the top 1) of ``v``.

    ``top=0`` asks for the two argmaxes to coincide. ``mask`` (same shape, bool) marks
    the positions that exist (padding excluded).
    """
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    if u.shape != v.shape or u.ndim < 1:
        raise ValueError(f"agreement: u and v must have the same shape, got {u.shape} and {v.shape}")
    if not (0 <= top < 1):
        raise ValueError(f"agreement: top must be in [0, 1), got {top!r}")
    L = u.shape[-1]
    u2, v2 = u.reshape(-1, L), v.reshape(-1, L)
    if mask is not None:
        m = np.asarray(mask, bool).reshape(-1, L)
        u2 = np.where(m, u2, -np.inf)
        v2 = np.where(m, v2, -np.inf)
        sizes = m.sum(axis=1)
    else:
        sizes = np.full(u2.shape[0], L)
    first = u2.argmax(axis=1)
    vf = v2[np.arange(v2.shape[0]), first]
    rank = (v2 > vf[:, None]).sum(axis=1)  # positions v ranks strictly higher
    k = np.array([_top_k(int(s), top) for s in sizes])
    ok = sizes > 0
    return float(np.mean(rank[ok] < k[ok])) if ok.any() else float("nan")


def kendall_tau(u, v, block: int = 2048) -> float:
    """Kendall's τ_b between u and v over the last axis, averaged over rows (rows where
    either is constant are left out)."""
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    if u.shape != v.shape or u.ndim < 1:
        raise ValueError(f"kendall_tau: u and v must have the same shape, got {u.shape} and {v.shape}")
    L = u.shape[-1]
    u2, v2 = u.reshape(-1, L), v.reshape(-1, L)
    iu, ju = np.triu_indices(L, k=1)
    taus = []
    for s in range(0, u2.shape[0], block):
        su = np.sign(u2[s : s + block, iu] - u2[s : s + block, ju])
        sv = np.sign(v2[s : s + block, iu] - v2[s : s + block, ju])
        n0 = len(iu)
        num = (su * sv).sum(axis=1)
        den = np.sqrt((n0 - (su == 0).sum(axis=1)) * (n0 - (sv == 0).sum(axis=1)).astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            taus.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))
    t = np.concatenate(taus) if taus else np.zeros(0)
    return float(np.nanmean(t)) if np.any(~np.isnan(t)) else float("nan")


def shuffled_baseline(u, v, seed: int = 0, top: float = 0.05) -> dict:
    """Â: agreement and Kendall τ of u against v shuffled within each row (chance level)."""
    v = np.asarray(v, np.float64)
    shuffled = np.random.default_rng(seed).permuted(v.reshape(-1, v.shape[-1]), axis=1).reshape(v.shape)
    return {"agreement": agreement(u, shuffled, top=top), "kendall": kendall_tau(u, shuffled)}


def saliency(cfg, params, x, y) -> np.ndarray:
    """Δ (B, T, L) = −∂loss_bt/∂s[b,t,l], summed over heads: the first-step gradient on
    the attention logits of each example (per token, without the 1/(B·T) of the mean).

    Uses the backward lines of docs/design.md §1.2: δ = softmax(z) − onehot(y), g = (1/H) δ·col_h[l]
    with col_h[l] what position l votes for through head h (U[:, x_l] for rung 0),
    ∂s = α (g − Σ_l' α g).
    """
    x, y = check_batch(cfg, x, y)
    params = check_params(cfg, params)
    z, alpha = forward(cfg, params, x, y)
    z = z.astype(np.float64)
    p = np.exp(z - _logsumexp(z, axis=-1)[..., None])
    delta = p.copy()
    B, T = y.shape
    delta[np.arange(B)[:, None], np.arange(T)[None, :], y] -= 1.0
    if _arch.of(cfg).value_columns is None:
        raise ValueError(f"saliency: the {cfg.model} model's positions vote differently at every target step; "
                         "it has no value columns to read the first-step gradient from")  # fmt: skip
    cols = _arch.of(cfg).value_columns(cfg, params, x).astype(np.float64)  # (H, B, L, Vout)
    UX = np.ascontiguousarray(np.moveaxis(cols, -1, 1))  # (H, Vout, B, L): for rung 0, U[:, :, x]
    g = np.einsum("bto,hobl->hbtl", delta, UX) / cfg.heads
    ds = alpha * (g - (alpha * g).sum(axis=-1, keepdims=True))
    return -ds.sum(axis=0)


# =============================================================================
# success of a run (docs/design.md §3.5)
# =============================================================================


def _learned(history, threshold):
    acc = np.asarray(history["acc"], np.float64)
    attn = np.asarray(history["attn_acc"], np.float64)
    # attention accuracy needs a gold alignment; without one (NaN) it is not required
    return (acc >= threshold) & ((attn >= threshold) | np.isnan(attn))


def success(history, threshold: float = SUCCESS_THRESHOLD) -> bool:
    """Token accuracy and attention accuracy >= ``threshold`` at the last logged step."""
    ok = _learned(history, threshold)
    return bool(ok[-1]) if ok.size else False


def time_to_learn(history, threshold: float = SUCCESS_THRESHOLD) -> int | None:
    """The first logged step where token and attention accuracy are both >= ``threshold``."""
    ok = _learned(history, threshold)
    idx = np.flatnonzero(ok)
    return int(np.asarray(history["step"])[idx[0]]) if idx.size else None
