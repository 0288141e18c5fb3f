"""Rung 1's probes: its effective tables (docs/design.md §7.1) and what each position votes for."""

from __future__ import annotations

import numpy as np


def effective_tables(cfg, params: dict) -> dict:
    """Rung 0's tables of the head: ``U = WO (E WV)ᵀ`` (H, Vout, Vin), ``S = (R WQ)(P WK)ᵀ/√k``
    and ``A = (R WQ)(E WK)ᵀ/√k`` where the keys see positions or words, and ``b`` (zeros
    without a bias). With context 0 and word values the model *is* rung 0 at these tables
    (``cfg.exact_tables``); otherwise they are its word-and-position part (docs/design.md §7.1)."""
    E, WV, WO = params["E"], params["WV"], params["WO"]
    out = {"U": np.matmul(WO, np.swapaxes(np.matmul(E, WV), 1, 2))}
    if cfg.has_query:
        Q = np.matmul(params["R"], params["WQ"])
        c = 1.0 / np.sqrt(cfg.k)
        if cfg.has_S:
            out["S"] = c * np.matmul(Q, np.swapaxes(np.matmul(params["P"], params["WK"]), 1, 2))
        if cfg.has_A:
            out["A"] = c * np.matmul(Q, np.swapaxes(np.matmul(E, params["WK"]), 1, 2))
    out["b"] = params["b"] if cfg.bias else np.zeros(cfg.vocab_out, cfg.np_dtype)
    return {k: np.asarray(v, cfg.np_dtype) for k, v in out.items()}


def states(cfg, params: dict, x, with_position: bool, h: int) -> np.ndarray:
    """(B, L, d): head ``h``'s source states ``e[x_l] (+ P[l]) + ρ/2 (e[x_{l−1}] + e[x_{l+1}])``."""
    e = np.asarray(params["E"][h], np.float64)[np.asarray(x)]
    s = e.copy()
    if with_position:
        s += np.asarray(params["P"][h], np.float64)[None]
    if cfg.context:
        nb = np.zeros_like(e)
        nb[:, 1:] += e[:, :-1]
        nb[:, :-1] += e[:, 1:]
        s += 0.5 * cfg.context * nb
    return s


def value_columns(cfg, params: dict, x) -> np.ndarray:
    """(H, B, L, Vout): ``WO (v[b, l])``, the logits head h adds when it attends to position
    l alone (v the value: the word's embedding, or the whole state, through WV)."""
    x = np.asarray(x)
    out = np.empty((cfg.heads, x.shape[0], cfg.src_len, cfg.vocab_out))
    for h in range(cfg.heads):
        if cfg.position_values:
            vin = states(cfg, params, x, True, h)
        else:
            vin = np.asarray(params["E"][h], np.float64)[x]
        out[h] = vin @ np.asarray(params["WV"][h], np.float64) @ np.asarray(params["WO"][h], np.float64).T
    return out


def theory_beside(cfg, task, scale: float, threshold: float) -> dict:
    """What the theory says of the dot head beside rung 0's (``attnsim theory --model dot``):
    whether rung 0's theory reads its effective tables exactly, and the time its exact
    reduced dynamics from an aligned init of ``scale`` take to reach gold mass
    ``threshold``, where they exist (copy, positional attention, word values, no context,
    d >= V, L, k >= L; docs/design.md §7.6). ``"curve"``: (label, τ -> curve) to draw."""
    from ... import theory

    out = {}
    exact = "rung 0's theory reads its effective tables exactly" if cfg.exact_tables else (
        "with context or position values its positions carry more than their word: rung 0's theory reads "
        "only the word-and-position part of its tables"
    )  # fmt: skip
    is_copy = task.spec().get("name") == "copy" and not task.spec().get("replace")
    V, L = task.vocab_in, task.src_len
    fits = cfg.attention == "positional" and cfg.exact_tables and cfg.dim >= max(V, L) and cfg.k >= L
    if not (is_copy and fits):
        out["note"] = f"{exact}; the exact reduced dynamics of §7.6 need a copy task, positional attention, word " \
            f"values, no context, dim >= {max(V, L)} and key_dim >= {L}"  # fmt: skip
        return out
    if scale <= 0:
        out["note"] = f"{exact}; from the zero init every factor's gradient vanishes: the head never moves"
        out["reduced_time_to_attend"] = None
        return out
    h = np.full(cfg.heads, float(scale))
    long = np.concatenate([[0.0], np.geomspace(1e-2, 1e9, 2000)])
    probe = theory.reduced_copy_dot(V, L, long, key_dim=cfg.k, w0=h, u0=h)
    hit = np.flatnonzero(probe["gold_mass"] >= threshold)
    t = float(long[hit[0]]) if hit.size else None
    out["reduced_time_to_attend"] = t
    out["aligned_init_scale"] = scale
    when = f"τ ≈ {t:.4g}" if t is not None else "no τ below 1e9"
    out["note"] = f"{exact}; from the aligned init w = u = {scale:g} its exact reduced dynamics reach gold mass " \
        f"{threshold:g} at {when} (tables grow as products of factors, §7.6)"  # fmt: skip

    def curve(tau):
        c = theory.reduced_copy_dot(V, L, tau, key_dim=cfg.k, w0=h, u0=h)
        c["ktiw_gold"] = np.asarray(c["a"]).mean(axis=1) - np.log(V - 1)
        return c

    if t is not None:
        out["curve"] = (f"dot head: exact reduced dynamics, aligned init {scale:g} (§7.6)", curve)
    return out
