"""Rung 0's probes: its tables are its parameters."""

from __future__ import annotations

import numpy as np


def effective_tables(cfg, params: dict) -> dict:
    """``U`` (H, Vout, Vin) (``W @ E`` when factored), ``S`` and ``A`` where the model has
    them, and ``b`` (zeros without a bias)."""
    U = params["U"] if cfg.d_model is None else np.matmul(params["W"], params["E"])
    out = {"U": U}
    for name in ("S", "A"):
        if name in params:
            out[name] = params[name]
    out["b"] = params["b"] if cfg.bias else np.zeros(cfg.vocab_out, cfg.np_dtype)
    return out


def value_columns(cfg, params: dict, x) -> np.ndarray:
    """(H, B, L, Vout): U[h, :, x[b, l]], what position l votes for through head h."""
    U = effective_tables(cfg, params)["U"]
    return np.ascontiguousarray(np.moveaxis(U[:, :, np.asarray(x)], 1, -1))
