"""``attnsim gradcheck``: every gradient of every parameterization of every registered
architecture, against central finite differences of the loss and against the
architecture's independent NumPy oracle."""

from __future__ import annotations

import numpy as np

from . import _arch
from . import _reference as R
from ._model import loss_and_grad

# tolerances: finite differences (five-point stencil, h = 1e-4, float64) and kernel vs oracle,
# both relative to the largest gradient entry of the model, but at least 1e-4 (entries that
# cancel to ~0 cannot be compared relative to themselves; a vanishing gradient is checked
# to an absolute 1e-10)
FD_RTOL = 1e-6
ORACLE_RTOL = 1e-10


def configs(trials: int, seed: int, models=None):
    """``trials`` random configs per architecture, cycling through each one's kinds
    (``reference.KINDS``: rung 0's attention modes × table/factored, rung 1's attention
    modes × value modes × context)."""
    for name in models or _arch.names():
        oracle = _arch.get(name).reference
        rng = np.random.default_rng(seed)
        for k in range(trials):
            yield oracle.random_config(rng, **oracle.KINDS[k % len(oracle.KINDS)]), rng


def check_one(cfg, rng, batch: int | None = None) -> list[dict]:
    """One row per parameter: errors of the analytic gradient."""
    oracle = _arch.of(cfg).reference
    near_kink = getattr(oracle, "near_kink", None)  # a model with a ReLU: no derivative at its kink
    for _ in range(100):
        params = oracle.random_params(cfg, rng)
        B = int(rng.integers(1, 5)) if batch is None else batch
        x, y, _ = R.random_batch(cfg, rng, B)
        if near_kink is None or not near_kink(cfg, params, x):
            break
    loss, grads = loss_and_grad(cfg, params, x, y)
    fd = R.finite_difference_grad(lambda p: loss_and_grad(cfg, p, x, y)[0], params)
    ref_loss, ref = oracle.loss_and_grad(cfg, params, x, y)
    scale = max(max(float(np.max(np.abs(g))) for g in fd.values()), 1e-4)
    rows = []
    for name in grads:
        fd_err = float(np.max(np.abs(grads[name] - fd[name]))) / scale
        or_err = float(np.max(np.abs(grads[name] - ref[name]))) / scale
        rows.append(
            {
                "config": describe(cfg),
                "param": name,
                "shape": "x".join(map(str, grads[name].shape)),
                "fd_rel": fd_err,
                "oracle_rel": or_err,
                "loss_rel": abs(loss - ref_loss) / max(abs(ref_loss), 1e-12),
                "ok": fd_err <= FD_RTOL and or_err <= ORACLE_RTOL,
            }
        )
    return rows


def describe(cfg) -> str:
    return (
        f"{cfg.describe():44s} H={cfg.heads} V={cfg.vocab_in}→{cfg.vocab_out} "
        f"L={cfg.src_len} T={cfg.tgt_len}{'' if getattr(cfg, 'bias', True) else ' no-bias'}"
    )


def run(trials: int = 16, seed: int = 0, models=None) -> list[dict]:
    rows = []
    for cfg, rng in configs(trials, seed, models):
        rows.extend(check_one(cfg, rng))
    return rows


def format_table(rows: list[dict]) -> str:
    width = max(len(r["config"]) for r in rows)
    pw = max(5, *(len(r["param"]) for r in rows))
    sw = max(5, *(len(r["shape"]) for r in rows))
    head = f"{'configuration':{width}s} {'param':{pw}s} {'shape':{sw}s} {'vs finite diff':>14s} {'vs oracle':>10s}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['config']:{width}s} {r['param']:{pw}s} {r['shape']:{sw}s} {r['fd_rel']:14.2e} "
            f"{r['oracle_rel']:10.2e}  {'yes' if r['ok'] else 'NO'}"
        )
    worst_fd = max(r["fd_rel"] for r in rows)
    worst_or = max(r["oracle_rel"] for r in rows)
    lines.append("-" * len(head))
    lines.append(
        f"worst: {worst_fd:.2e} against finite differences (tolerance {FD_RTOL:g}), "
        f"{worst_or:.2e} against the oracle (tolerance {ORACLE_RTOL:g}); errors are relative "
        f"to the largest gradient entry"
    )
    return "\n".join(lines)
