"""What the benchmarks share: one-thread settings, the model's FLOP count, the NumPy
matrix-multiply reference, and writing a result table."""

from __future__ import annotations

import json
import os
import platform
import time


def one_thread_blas() -> None:
    """One BLAS/OpenMP thread everywhere; call before NumPy is imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def model_flops(V, L, B, H=1, T=None):
    """Multiply-adds ×2 of one step: the logits, ∂U and ∂S contractions (3 × B·T·L·V·H)."""
    return 3 * 2 * B * (L if T is None else T) * L * V * H


def dot_flops(cfg, B) -> int:
    """Multiply-adds ×2 of one step of the dot head (docs/design.md §7.2): the table pass's
    three contractions, and per head the products that build the tables (Q, KP, KE, VE, S, A,
    U; VP, Up with position values) and chain their gradients back (about twice as many)."""
    V, Vo, L, T, d, k, H = cfg.vocab_in, cfg.vocab_out, cfg.src_len, cfg.tgt_len, cfg.dim, cfg.k, cfg.heads
    table = 3 * B * T * L * Vo * H
    build = V * d * d + Vo * d * V
    if cfg.position_values:
        build += L * d * d + Vo * d * L
    if cfg.has_query:
        build += T * d * k
        if cfg.has_S:
            build += L * d * k + T * k * L
        if cfg.has_A:
            build += V * d * k + T * k * V
    return 2 * (table + 3 * build * H)


def numpy_matmul_gflops(sizes=(256, 512, 1024)) -> dict:
    """Single-thread float64 matrix multiply, best of repeats, at a few sizes; the
    largest figure is the reference a kernel is compared with."""
    import numpy as np

    out = {}
    for n in sizes:
        a = np.random.default_rng(0).standard_normal((n, n))
        a @ a
        best, spent = float("inf"), 0.0
        while spent < 1.0:
            t0 = time.perf_counter()
            a @ a
            dt = time.perf_counter() - t0
            best, spent = min(best, dt), spent + dt
        out[n] = 2 * n**3 / best / 1e9
    return out


def numpy_same_products_gflops(V, L, B, T=None) -> float:
    """Single-thread NumPy doing the three products of one step of the model, at their
    own shapes: (T×L)@(L×B·V) for the logits and ∂U, (T×B·V)@(B·V×L) for ∂S."""
    import numpy as np

    T = L if T is None else T
    rng = np.random.default_rng(0)
    a, x, d = rng.standard_normal((T, L)), rng.standard_normal((L, B * V)), rng.standard_normal((T, B * V))

    def step():
        a @ x
        a.T @ d
        d @ x.T

    step()
    best, spent = float("inf"), 0.0
    while spent < 1.0:
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 3 * 2 * T * L * B * V / best / 1e9


def machine() -> str:
    import numpy as np

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"NumPy {np.__version__}"
    )


def write(out_dir: str, name: str, text: str, data: dict, fig=None) -> None:
    """``name``.md (the table and notes), ``name``.json and, given a figure, ``name``.png."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.md"), "w") as fh:
        fh.write(text + "\n")
    with open(os.path.join(out_dir, f"{name}.json"), "w") as fh:
        json.dump(data, fh, indent=1)
    if fig is not None:
        save_png(out_dir, name, fig)


def save_png(out_dir: str, name: str, fig) -> None:
    from attnsim._outputs import save_figure

    save_figure(fig, os.path.join(out_dir, f"{name}.png"))
