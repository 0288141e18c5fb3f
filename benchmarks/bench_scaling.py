"""Time per step against batch, length, vocabulary and heads, one thread, with the
achieved GFLOP/s beside a single-thread NumPy float64 matrix multiply.

    python benchmarks/bench_scaling.py            # writes results/scaling.{md,json,png}
    python benchmarks/bench_scaling.py --quick    # shorter timings

Each line varies one size around the paper's copy setting — ``copy(60, 40)``, batch
128, one head, positional attention, Adam — and times ``attnsim.train`` with metrics
logged only at the end (best of repeats, at least ~0.3 s of steps each). GFLOP/s counts
the three contractions of a step, 6·B·T·L·V·H floating-point operations (logits, ∂U,
∂S); everything else a step does (softmaxes, the sampler, Adam) is not counted.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    machine,
    model_flops,
    numpy_matmul_gflops,
    numpy_same_products_gflops,
    one_thread_blas,
    save_png,
    write,
)

one_thread_blas()
os.environ["NUMBA_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import attnsim as at  # noqa: E402

BASE = {"vocab": 60, "length": 40, "batch": 128, "heads": 1}
AXES = {
    "batch": [8, 16, 32, 64, 128, 256, 512],
    "length": [5, 10, 20, 40, 60],
    "vocab": [40, 60, 120, 240, 480],
    "heads": [1, 2, 4, 8],
}
PAPER = ("copy(60, 40), batch 128, 1 head", BASE)


def time_step(vocab, length, batch, heads, budget, repeats):
    task = at.tasks.copy(vocab, length)
    cfg = at.ModelConfig.for_task(task, heads=heads)
    kw = dict(optimizer="adam", lr=0.05, batch=batch)
    t0 = time.perf_counter()
    at.train(cfg, task, steps=5, log_every=5, **kw)  # warm-up; also sizes the timed run
    per = (time.perf_counter() - t0) / 6
    steps = int(min(20000, max(20, budget / per)))
    best = np.inf
    for r in range(repeats):
        t0 = time.perf_counter()
        at.train(cfg, task, steps=steps, log_every=steps, seed=r, **kw)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="0.1 s per timing, one repeat")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--plot-only", action="store_true", help="redraw the figure from OUT/scaling.json")
    args = p.parse_args(argv)
    if args.plot_only:
        with open(os.path.join(args.out, "scaling.json")) as fh:
            data = json.load(fh)
        save_png(
            args.out, "scaling", figure(data["rows"], data["paper_size"], max(data["numpy_matmul_gflops"].values()))
        )
        return
    budget, repeats = (0.1, 1) if args.quick else (0.4, 3)
    mm = numpy_matmul_gflops()
    mm_best = max(mm.values())
    same = numpy_same_products_gflops(BASE["vocab"], BASE["length"], BASE["batch"])
    rows = []
    for axis, values in AXES.items():
        for v in values:
            size = {**BASE, axis: v}
            t = time_step(size["vocab"], size["length"], size["batch"], size["heads"], budget, repeats)
            gf = model_flops(size["vocab"], size["length"], size["batch"], size["heads"]) / t / 1e9
            rows.append({"axis": axis, **size, "us_per_step": t * 1e6, "gflops": gf, "of_matmul": gf / mm_best})
            print(f"{axis:>6} = {v:<4} {t * 1e6:10.1f} µs/step {gf:6.1f} GFLOP/s ({gf / mm_best:.0%} of matmul)")
    paper = next(r for r in rows if all(r[k] == BASE[k] for k in BASE))

    lines = [
        "| varied | vocab | length | batch | heads | µs / step | GFLOP/s | of NumPy matmul |",
        "|---|" + "---:|" * 7,
    ]
    for r in rows:
        lines.append(
            f"| {r['axis']} | {r['vocab']} | {r['length']} | {r['batch']} | {r['heads']} | {r['us_per_step']:.1f} "
            f"| {r['gflops']:.1f} | {r['of_matmul']:.0%} |"
        )
    notes = [
        "",
        f"At the paper's copy size ({PAPER[0]}): **{paper['gflops']:.1f} GFLOP/s = {paper['of_matmul']:.0%}** of a "
        f"single-thread NumPy float64 matrix multiply ({mm_best:.0f} GFLOP/s, the best of "
        + ", ".join(f"{v:.0f} at {n}×{n}" for n, v in mm.items())
        + f"); {paper['gflops'] / mm[256]:.0%} of the 256×256 figure. NumPy doing the step's three products alone, "
        f"at their own shapes ((40×40)@(40×7680) twice, (40×7680)@(7680×40)), reaches {same:.1f} GFLOP/s: attnsim's "
        f"whole step (products, softmax, loss, sampler, Adam) runs at {paper['gflops'] / same:.0%} of that.",
        f"One thread; Adam; float64; best of {repeats}. Machine: {machine()}.",
    ]
    text = "\n".join(lines + notes)
    print(text)

    write(
        args.out,
        "scaling",
        text,
        {"rows": rows, "numpy_matmul_gflops": mm, "numpy_same_products_gflops": same, "paper_size": paper},
        figure(rows, paper, mm_best),
    )


def figure(rows, paper, mm_best):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 6.4))
    axes = fig.subplots(2, len(AXES), sharey="row")
    for j, axis in enumerate(AXES):
        sel = [r for r in rows if r["axis"] == axis]
        x = np.array([r[axis] for r in sel], float)
        t = np.array([r["us_per_step"] for r in sel])
        g = np.array([r["gflops"] for r in sel])
        top, bottom = axes[0, j], axes[1, j]
        top.loglog(x, t, "o-", color="C0", label="attnsim")
        # the slope-1 line through the paper's size: time proportional to work
        x0, t0 = BASE[axis], paper["us_per_step"]
        top.loglog(x, t0 * x / x0, "--", color="0.6", lw=1, label="∝ " + axis)
        if axis == "length":
            top.loglog(x, t0 * (x / x0) ** 2, ":", color="0.6", lw=1, label="∝ length² (T = L)")
        top.set_title(f"varying {axis}", fontsize=10)
        top.legend(fontsize=8)
        bottom.semilogx(x, g, "o-", color="C0", label="attnsim")
        bottom.axhline(mm_best, color="C3", ls="--", lw=1, label=f"NumPy matmul, 1 thread ({mm_best:.0f})")
        bottom.axhline(0.4 * mm_best, color="C3", ls=":", lw=1, label="40 % of matmul")
        bottom.set_xlabel(axis)
        bottom.legend(fontsize=7, loc="lower right")
        for ax in (top, bottom):
            ax.set_xticks(x, [f"{v:g}" for v in x])
            ax.minorticks_off()
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("time per step (µs)")
    axes[1, 0].set_ylabel("achieved GFLOP/s (6·B·T·L·V·H per step)")
    axes[1, 0].set_ylim(0, mm_best * 1.15)
    fig.suptitle(
        "attnsim, one thread: time per training step (Adam, float64); "
        "each column varies one size of copy(60, 40), batch 128, 1 head"
    )
    return fig


if __name__ == "__main__":
    main()
