"""One training run, one thread: attnsim against torch eager and a plain-NumPy loop, for
rung 0 (the free model) and rung 1 (the dot-product head).

    python benchmarks/bench_single_run.py            # every case, writes results/single_run.{md,json}
    python benchmarks/bench_single_run.py --quick    # fewer repeats

For each case the same model and the same loop (Adam, lr 0.05, a fresh batch of copy data
every step, float64). attnsim is timed as a user calls it — ``attnsim.train``, including
its data sampling — twice: with the loss and metrics logged only at the end (the same loop
as the others: torch computes its loss every step but never reads it) and with metrics
every 10 steps (the default of ``attnsim run``). torch and NumPy get their batches drawn
beforehand, outside the timing. Warm-up (compilation) is excluded; each figure is the best
of several repeats.

* rung 0: table U, positional attention S, bias b, one head; torch computes it as one
  (T×L)@(L×B·V) product of the shared attention with the gathered table columns.
* rung 1: ``DotConfig.for_task(copy, dim=d)`` (positional attention, the task's own) and
  the same with ``attention="both"``; torch computes it from ``_torch_models.py``
  (embeddings, query and key maps, batched matrix products), the implementation the
  gradient cross-check (``crosscheck_torch.py``) compares with autograd.

torch is optional (``pip install torch==2.13.0``); without it that column is skipped
with a note.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import dot_flops, machine, model_flops, numpy_matmul_gflops, one_thread_blas, write  # noqa: E402

one_thread_blas()
os.environ["NUMBA_NUM_THREADS"] = "1"  # a single run uses one core

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import attnsim as at  # noqa: E402
from attnsim import _reference as R  # noqa: E402

CASES = [
    {
        "name": "free, copy(10, 8), batch 32",
        "model": "free",
        "vocab": 10,
        "length": 8,
        "batch": 32,
        "steps": {"attnsim": 20000, "torch": 600, "numpy": 300},
    },
    {
        "name": "free, copy(60, 40), batch 128",
        "model": "free",
        "vocab": 60,
        "length": 40,
        "batch": 128,
        "steps": {"attnsim": 300, "torch": 60, "numpy": 6},
    },
]
for _att in ("positional", "both"):
    CASES += [
        {
            "name": f"dot d 8 {_att}, copy(10, 8), batch 32",
            "model": "dot",
            "options": {"dim": 8, "attention": _att},
            "vocab": 10,
            "length": 8,
            "batch": 32,
            "steps": {"attnsim": 10000, "torch": 600, "numpy": 60},
        },
        {
            "name": f"dot d 64 {_att}, copy(60, 40), batch 128",
            "model": "dot",
            "options": {"dim": 64, "attention": _att},
            "vocab": 60,
            "length": 40,
            "batch": 128,
            "steps": {"attnsim": 300, "torch": 40, "numpy": 3},
        },
    ]
LR = 0.05


def _config(case, task):
    if case["model"] == "free":
        return at.ModelConfig.for_task(task)
    return at.DotConfig.for_task(task, **case["options"])


def _batches(task, B, n, seed=0):
    x, y, _ = task.sample(np.random.default_rng(seed), n * B)
    return [(x[k * B : (k + 1) * B], y[k * B : (k + 1) * B]) for k in range(n)]


def time_attnsim(case, repeats, log_every=None):
    task = at.tasks.copy(case["vocab"], case["length"])
    cfg = _config(case, task)
    steps = case["steps"]["attnsim"]
    at.train(cfg, task, optimizer="adam", lr=LR, steps=20, batch=case["batch"])  # warm-up: compile or load cache
    best = np.inf
    for r in range(repeats):
        t0 = time.perf_counter()
        at.train(
            cfg, task, optimizer="adam", lr=LR, steps=steps, batch=case["batch"], seed=r, log_every=log_every or steps
        )
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def time_numpy(case, repeats):
    task = at.tasks.copy(case["vocab"], case["length"])
    cfg = _config(case, task)
    steps = case["steps"]["numpy"]
    batches = _batches(task, case["batch"], steps)
    params = at.init_params(cfg, 0)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        R.train_steps(cfg, params, batches, "adam", LR)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def time_torch_dot(case, repeats):
    """Rung 1 in torch eager (`_torch_models.dot_logits`) with torch's Adam."""
    import torch
    from _torch_models import loss, tensors

    torch.set_num_threads(1)
    task = at.tasks.copy(case["vocab"], case["length"])
    cfg = _config(case, task)
    steps = case["steps"]["torch"]
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in _batches(task, case["batch"], steps + 10)]
    init = at.init_params(cfg, 0)

    def run(n):
        p = tensors(init)
        opt = torch.optim.Adam(list(p.values()), lr=LR)
        t0 = None
        for k in range(n + 10):
            if k == 10:
                t0 = time.perf_counter()
            x, y = data[k]
            value = loss(cfg, p, x, y)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        return (time.perf_counter() - t0) / n

    return min(run(steps) for _ in range(repeats))


def time_torch(case, repeats):
    if case["model"] == "dot":
        return time_torch_dot(case, repeats)
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    task = at.tasks.copy(case["vocab"], case["length"])
    cfg = _config(case, task)
    V, L, B = case["vocab"], case["length"], case["batch"]
    steps = case["steps"]["torch"]
    data = [(torch.from_numpy(x), torch.from_numpy(y).reshape(-1)) for x, y in _batches(task, B, steps + 10)]
    init = at.init_params(cfg, 0, 0.01)

    def run(n):
        # the table is stored (Vin, Vout) so that "the votes of word i" is an embedding row
        Ut = torch.tensor(init["U"][0].T.copy(), dtype=torch.float64, requires_grad=True)
        S = torch.tensor(init["S"][0], dtype=torch.float64, requires_grad=True)
        b = torch.tensor(init["b"], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([Ut, S, b], lr=LR)
        t0 = None
        for k in range(n + 10):
            if k == 10:
                t0 = time.perf_counter()
            x, y = data[k]
            alpha = torch.softmax(S, dim=-1)  # (T, L), shared by the batch
            ux = F.embedding(x, Ut)  # (B, L, V)
            # z[b, t] = sum_l alpha[t, l] U[:, x_bl]: one (T×L)@(L×B·V) product
            z = (alpha @ ux.transpose(0, 1).reshape(L, B * V)).reshape(L, B, V).transpose(0, 1).reshape(B * L, V) + b
            loss = F.cross_entropy(z, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / n

    return min(run(steps) for _ in range(repeats))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one repeat instead of three")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    repeats = 1 if args.quick else 3
    try:
        import torch

        have_torch = True
        torch_version = torch.__version__
    except ImportError:
        have_torch, torch_version = False, None
    rows = []
    for case in CASES:
        t_at = time_attnsim(case, repeats)
        t_log = time_attnsim(case, repeats, log_every=10)
        t_np = time_numpy(case, repeats)
        t_th = time_torch(case, repeats) if have_torch else None
        if case["model"] == "free":
            fl = model_flops(case["vocab"], case["length"], case["batch"])
        else:
            fl = dot_flops(_config(case, at.tasks.copy(case["vocab"], case["length"])), case["batch"])
        rows.append(
            {
                "case": case["name"],
                "attnsim_us": t_at * 1e6,
                "attnsim_logged_us": t_log * 1e6,
                "torch_us": None if t_th is None else t_th * 1e6,
                "numpy_us": t_np * 1e6,
                "torch_over_attnsim": None if t_th is None else t_th / t_at,
                "torch_over_attnsim_logged": None if t_th is None else t_th / t_log,
                "numpy_over_attnsim": t_np / t_at,
                "attnsim_gflops": fl / t_at / 1e9,
                "torch_gflops": None if t_th is None else fl / t_th / 1e9,
            }
        )
    mm_sizes = numpy_matmul_gflops()

    def f(v, spec):
        return "—" if v is None else format(v, spec)

    lines = [
        "| case | attnsim µs/step | with metrics every 10 | torch eager µs/step | NumPy µs/step "
        "| torch / attnsim | (with metrics) | NumPy / attnsim | attnsim GFLOP/s | torch GFLOP/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['attnsim_us']:.1f} | {r['attnsim_logged_us']:.1f} | {f(r['torch_us'], '.1f')} "
            f"| {r['numpy_us']:.0f} | {f(r['torch_over_attnsim'], '.1f')}× "
            f"| {f(r['torch_over_attnsim_logged'], '.1f')}× "
            f"| {r['numpy_over_attnsim']:.0f}× | {r['attnsim_gflops']:.1f} | {f(r['torch_gflops'], '.1f')} |"
        )
    notes = [
        "",
        f"One thread each; Adam lr {LR}; float64. Single-thread NumPy float64 matmul on this machine: "
        + ", ".join(f"{v:.0f} GFLOP/s at {n}×{n}" for n, v in mm_sizes.items())
        + ". GFLOP/s counts the three contractions of a step (6·B·T·L·V), and for the dot head also the products "
        "that build its tables and chain their gradients back (`_common.dot_flops`).",
        f"Machine: {machine()}, torch {torch_version or 'not installed (column skipped)'}.",
    ]
    text = "\n".join(lines + notes)
    print(text)
    write(args.out, "single_run", text, {"rows": rows, "numpy_matmul_gflops": mm_sizes, "torch": torch_version})


if __name__ == "__main__":
    main()
