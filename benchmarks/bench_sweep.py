"""A 64-run sweep: single runs against the batch-of-runs engine, 1 core against 2, and
against JAX ``jit`` + ``vmap`` of the same model.

    python benchmarks/bench_sweep.py            # writes results/sweep.{md,json,png}
    python benchmarks/bench_sweep.py --quick    # 16 runs instead of 64

The sweep is the paper's single-head setting: ``copy(40, 40)``, one head, positional
attention, Adam lr 0.05, batch 128, 300 steps, init scale 0.01, seeds 0…63. Timed:

* 64 calls of ``attnsim.train`` (one core);
* ``attnsim.train_many`` of the 64 runs on one core (the engine alone);
* ``attnsim.sweep`` of the same 64 runs, with ``workers=1`` and ``workers=2`` (the
  whole path a user takes: spec, engine, results.csv, summary and phase diagram);
* JAX (when installed; ``pip install jax``): the same model and Adam as one
  ``jit(vmap(...))`` over the 64 runs, a ``lax.scan`` over steps, its batches drawn
  with ``jax.random`` inside the loop, float64, on XLA's own threads (both cores).
  Compilation is excluded, as is attnsim's (its kernels are cached).

Each figure is the best of ``--repeats`` repeats, wall-clock.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import machine, write  # noqa: E402

import attnsim as at  # noqa: E402

V, L, B, STEPS, LR, SCALE = 40, 40, 128, 300, 0.05, 0.01


def _best(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def time_single(n, repeats):
    task = at.tasks.copy(V, L)
    cfg = at.ModelConfig.for_task(task)
    kw = dict(optimizer="adam", lr=LR, steps=STEPS, batch=B, scale=SCALE)
    return _best(lambda: [at.train(cfg, task, seed=s, **kw) for s in range(n)], repeats)


def time_engine(n, repeats, threads):
    task = at.tasks.copy(V, L)
    cfg = at.ModelConfig.for_task(task)
    kw = dict(optimizer="adam", lr=LR, steps=STEPS, batch=B, scale=SCALE, threads=threads)
    return _best(lambda: at.train_many(cfg, task, seeds=range(n), **kw), repeats)


def time_sweep(n, repeats, workers):
    spec = {
        "task": {"name": "copy", "vocab": V, "length": L},
        "model": {"heads": 1, "attention": "positional"},
        "train": {"optimizer": "adam", "lr": LR, "steps": STEPS, "batch": B, "scale": SCALE, "seeds": n},
    }

    def once():
        with tempfile.TemporaryDirectory() as d:
            at.sweep(spec, os.path.join(d, "out"), workers=workers, progress=False)

    return _best(once, repeats)


def time_jax(n, repeats):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        return {
            "U": SCALE * jax.random.normal(k1, (V, V)),
            "S": SCALE * jax.random.normal(k2, (L, L)),
            "b": SCALE * jax.random.normal(k3, (V,)),
        }

    def loss_fn(p, x):
        alpha = jax.nn.softmax(p["S"], axis=-1)  # (T, L), shared by the batch
        ux = p["U"][:, x]  # (V, B, L): the votes of each source word
        z = jnp.einsum("tl,vbl->btv", alpha, ux) + p["b"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z, axis=-1), x[..., None], axis=-1))

    grad_fn = jax.grad(loss_fn)

    def run(key):
        kinit, kdata = jax.random.split(key)
        p = init(kinit)
        m = jax.tree.map(jnp.zeros_like, p)
        v = jax.tree.map(jnp.zeros_like, p)

        def step(carry, t):
            p, m, v, k = carry
            k, kb = jax.random.split(k)
            # B random permutations of the vocabulary, first L words: the copy task
            x = jnp.argsort(jax.random.uniform(kb, (B, V)), axis=-1)[:, :L]
            g = grad_fn(p, x)
            m = jax.tree.map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
            v = jax.tree.map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
            bc1, bc2 = 1 - 0.9 ** (t + 1.0), 1 - 0.999 ** (t + 1.0)
            p = jax.tree.map(lambda a, mm, vv: a - LR * (mm / bc1) / (jnp.sqrt(vv / bc2) + 1e-8), p, m, v)
            return (p, m, v, k), None

        (p, _, _, _), _ = jax.lax.scan(step, (p, m, v, kdata), jnp.arange(STEPS))
        return p

    batched = jax.jit(jax.vmap(run))
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    jax.block_until_ready(batched(keys))  # compile
    return _best(lambda: jax.block_until_ready(batched(keys)), repeats), jax.__version__


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="16 runs, one repeat")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    n = 16 if args.quick else 64
    repeats = 1 if args.quick else args.repeats

    at.train_many(at.ModelConfig.for_task(at.tasks.copy(V, L)), at.tasks.copy(V, L), seeds=[0, 1], steps=3)  # warm
    rows = [
        ("single runs (attnsim.train), 1 core", time_single(n, repeats)),
        ("batch-of-runs engine (train_many), 1 core", time_engine(n, repeats, 1)),
        ("sweep, 1 core (--workers 1)", time_sweep(n, repeats, 1)),
        ("batch-of-runs engine (train_many), 2 cores", time_engine(n, repeats, 2)),
        ("sweep, 2 cores (--workers 2)", time_sweep(n, repeats, 2)),
    ]
    try:
        t_jax, jax_version = time_jax(n, repeats)
        rows.append((f"JAX {jax_version} jit+vmap, 2 cores (XLA threads)", t_jax))
        jax_note = ""
    except ImportError:
        jax_version = None
        jax_note = "JAX is not installed (`pip install jax`): its row is skipped."
        print(jax_note)
    t = dict(rows)
    single = t["single runs (attnsim.train), 1 core"]
    sweep1, sweep2 = t["sweep, 1 core (--workers 1)"], t["sweep, 2 cores (--workers 2)"]
    lines = [
        f"| {n}-run sweep of copy({V}, {L}), Adam, batch {B}, {STEPS} steps | seconds | ms per run | vs single runs |",
        "|---|---:|---:|---:|",
    ]
    for name, sec in rows:
        lines.append(f"| {name} | {sec:.2f} | {sec / n * 1e3:.1f} | {single / sec:.2f}× |")
    ratios = {
        "speedup_2_cores_over_1": sweep1 / sweep2,
        "engine_over_single_per_run": single / t["batch-of-runs engine (train_many), 1 core"],
        "sweep_1_core_over_single": single / sweep1,
    }
    notes = [
        "",
        f"Parallel speed-up of the sweep, 2 cores over 1: **{ratios['speedup_2_cores_over_1']:.2f}×**. "
        f"Engine against single runs on one core: {ratios['engine_over_single_per_run']:.2f}× "
        "(≥ 1: at least as fast per run).",
    ]
    if jax_version:
        ratios["jax_over_sweep_2_cores"] = t_jax / sweep2
        notes.append(
            f"JAX jit+vmap on both cores takes {ratios['jax_over_sweep_2_cores']:.2f}× the time of the "
            "2-core sweep (compilation excluded)."
        )
    else:
        notes.append(jax_note)
    notes.append(f"Best of {repeats}; machine: {machine()}, numba {__import__('numba').__version__}.")
    text = "\n".join(lines + notes)
    print(text)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    names = [name for name, _ in rows]
    per_run = [sec / n * 1e3 for _, sec in rows]
    colors = ["0.6", "C0", "C0", "C2", "C2", "C3"][: len(rows)]
    ax.barh(range(len(rows)), per_run, color=colors)
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    for i, v in enumerate(per_run):
        ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
    ax.set_xlabel("wall-clock time per run (ms), lower is better")
    ax.set_title(f"{n}-run sweep: copy({V}, {L}), Adam, batch {B}, {STEPS} steps")
    write(args.out, "sweep", text, {"runs": n, "seconds": dict(rows), "ratios": ratios, "jax": jax_version}, fig)


if __name__ == "__main__":
    main()
