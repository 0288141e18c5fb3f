"""Rung 2 (the authors' LSTM seq2seq), one run, one thread, float32, Adam: attnsim against
torch eager of the same model (torch's fused ``nn.LSTM``, as the authors' code uses), at
three sizes; and a 16-run batch of runs on 2 cores against 1.

    pip install torch==2.13.0
    python benchmarks/bench_rnn.py          # writes benchmarks/results/rnn.{md,json}

µs per training step, best of 3 after a warm-up: for attnsim, ``train`` for 2n steps less
``train`` for n steps, over n, so that what is timed is the step loop, as for torch; its time
includes drawing its data, torch's data is drawn beforehand. The logged steps (metrics, the
KTIW probe) are not counted on either side.

GFLOP/s, two ways, each set against this machine's single-thread SGEMM rate measured in the
same run:
- the model's: the products of a step as the model defines them (forward ×3, `step_flops`),
  over each side's time. This is the count torch's figure uses, and the one model-FLOP
  utilization (MFU) uses: the same work for both sides.
- attnsim's own: the products it computes (`attnsim_step_flops`): it leaves out the input
  products its embedding table saves, so this is how fast its own products run.
Beside them, the rate BLAS itself reaches on the step's commonest product, one time step's
recurrent gates (B × d by d × 4d), in the same run: the ceiling for attnsim's own rate.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # NumPy's own BLAS, for the SGEMM reference
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attnsim as at  # noqa: E402

CASES = [  # (name, V, L, d, batch, steps timed)
    ("tiny", 5, 5, 8, 16, 400),
    ("small", 10, 10, 32, 32, 100),
    ("paper", 40, 40, 256, 128, 3),
]
TWO_CORE_STEPS = 200  # 16 runs of the small case: about 2 s of work on one core
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def step_flops(cfg, B) -> float:
    """Multiply-adds ×2 of one forward pass's products, ×3 for forward and backward."""
    d, G, H = cfg.hidden, cfg.gates, cfg.heads
    L1, T1, Vo = cfg.in_positions, cfg.out_steps, cfg.n_out
    N = B * T1
    f = 2 * (L1 + T1) * B * d * G * d * 2  # input and recurrent halves of the gates
    f += H * (2 * N * d * d * 2 + 2 * 2 * B * T1 * L1 * d)  # queries, projections, scores, contexts
    f += 2 * N * 2 * d * d + 2 * N * d * Vo  # after_decoder_hidden, hidden2vocab
    return 3.0 * f


def attnsim_step_flops(cfg, B) -> float:
    """`step_flops` less what attnsim does not compute: its inputs are rows of the table
    Emb W_ihᵀ (docs/design.md §7.8), so the input halves of the gates, ∂W_ih and the
    inputs' gradients are products of V+2 rows, not of (L+1)·B and (T+1)·B."""
    d, G = cfg.hidden, cfg.gates
    rows = cfg.in_positions * B + cfg.out_steps * B
    table = (cfg.vocab_in + 2) + (cfg.vocab_out + 2)
    return step_flops(cfg, B) - 3.0 * 2 * (rows - table) * d * G * d


def sgemm_rate(m=1024, k=1024, n=1024, seconds=1.0) -> float:
    """NumPy's single-thread float32 rate on an (m, k) by (k, n) product, GFLOP/s: the best
    of 5 timings of as many products as take about ``seconds`` / 5 (the best, not the mean:
    the ceiling, away from other work on the machine)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = a @ b
    reps = max(1, int(seconds / 5 * 100e9 / (2 * m * k * n)))
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            np.dot(a, b, out=c)
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * m * k * n / best / 1e9


def time_attnsim(cfg, task, B, n) -> float:
    """Seconds per training step: ``train`` for 2n steps less ``train`` for n, over n. Both
    calls pay the same fixed costs (initial parameters, workspace, the two logged steps with
    their probes), so the difference is n steps of the loop, as torch's loop is timed."""
    at.train(cfg, task, steps=2, batch=B, lr=1e-3)

    def best(steps):
        out = 1e9
        for r in range(3):
            t = time.perf_counter()
            at.train(cfg, task, steps=steps, batch=B, lr=1e-3, seed=r, log_every=10**9)
            out = min(out, time.perf_counter() - t)
        return out

    return (best(2 * n) - best(n)) / n


def time_torch(cfg, task, B, n) -> float:
    import torch
    from _torch_models import Seq2seq, rnn_loss

    torch.set_num_threads(1)
    model = Seq2seq(cfg, dtype=torch.float32)
    model.load(at.init_params(cfg, seed=0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    batches = [tuple(torch.from_numpy(a) for a in task.sample(rng, B)[:2]) for _ in range(n + 2)]

    def loop(data):
        for x, y in data:
            opt.zero_grad()
            rnn_loss(model, x, y).backward()
            opt.step()

    loop(batches[:2])
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        loop(batches[2:])
        best = min(best, (time.perf_counter() - t) / n)
    return best


def two_cores() -> dict:
    """16 runs of the small case: the batch-of-runs engine on 1 core, then on 2."""
    task = at.tasks.copy(10, 10)
    cfg = at.RNNConfig.for_task(task, hidden=32)
    kw = dict(seeds=list(range(16)), steps=TWO_CORE_STEPS, batch=32, lr=1e-3, log_every=10**9)
    at.train_many(cfg, task, **{**kw, "seeds": [0, 1], "steps": 2}, threads=2)
    out = {1: 1e9, 2: 1e9}
    for _ in range(3):  # best of 3, alternating, so that a slow moment does not land on one side
        for threads in (1, 2):
            t = time.perf_counter()
            at.train_many(cfg, task, threads=threads, **kw)
            out[threads] = min(out[threads], time.perf_counter() - t)
    return {"one_core_s": out[1], "two_cores_s": out[2], "speedup": out[1] / out[2]}


def main() -> int:
    try:
        import torch
    except ImportError:
        print("torch is not installed: pip install torch==2.13.0 (the CPU wheel)", file=sys.stderr)
        return 2
    rate = sgemm_rate()
    paper = at.RNNConfig.for_task(at.tasks.copy(40, 40), hidden=256)
    recurrent = sgemm_rate(128, paper.hidden, paper.gates * paper.hidden)  # one time step's gates at the paper's size
    rows = []
    for name, V, L, d, B, n in CASES:
        task = at.tasks.copy(V, L)
        cfg = at.RNNConfig.for_task(task, hidden=d)
        ours = time_attnsim(cfg, task, B, n)
        theirs = time_torch(cfg, task, B, n)
        fl, own = step_flops(cfg, B), attnsim_step_flops(cfg, B)
        rows.append({
            "case": f"{name}: copy({V}, {L}), LSTM d {d}, batch {B}", "attnsim_us": ours * 1e6,
            "torch_us": theirs * 1e6, "ratio": theirs / ours, "model_gflop": fl / 1e9, "attnsim_gflop": own / 1e9,
            "torch_gflops": fl / theirs / 1e9, "attnsim_model_gflops": fl / ours / 1e9,
            "attnsim_gflops": own / ours / 1e9,
        })  # fmt: skip
        print(rows[-1], flush=True)
    cores = two_cores()
    # this machine's SGEMM rate moves by ±8 % over a minute: the reference is the best of the
    # measurements before and after the cases, so that no case is set against a slow moment
    rate = max(rate, sgemm_rate())
    recurrent = max(recurrent, sgemm_rate(128, paper.hidden, paper.gates * paper.hidden))
    for r in rows:
        r["torch_of_sgemm"] = r["torch_gflops"] / rate
        r["attnsim_model_of_sgemm"] = r["attnsim_model_gflops"] / rate
        r["of_sgemm"] = r["attnsim_gflops"] / rate
    lines = [
        "| case | attnsim µs/step | torch eager µs/step | torch / attnsim | GFLOP a step: model / attnsim's own "
        "| torch: model GFLOP/s | attnsim: model GFLOP/s | torch / SGEMM | attnsim / SGEMM | attnsim: own GFLOP/s "
        "| own / SGEMM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['attnsim_us']:.0f} | {r['torch_us']:.0f} | {r['ratio']:.2f}× | "
            f"{r['model_gflop']:.3g} / {r['attnsim_gflop']:.3g} | {r['torch_gflops']:.1f} | "
            f"{r['attnsim_model_gflops']:.1f} | {100 * r['torch_of_sgemm']:.0f} % | "
            f"{100 * r['attnsim_model_of_sgemm']:.0f} % | {r['attnsim_gflops']:.1f} | {100 * r['of_sgemm']:.0f} % |"
        )
    lines += [
        "",
        "One thread each; float32; Adam lr 1e-3; attnsim's µs/step is `train` for 2n steps less `train` for n, "
        "over n (the step loop without its fixed costs and logged steps, as torch's loop is timed). "
        "GFLOP a step: the model's products, forward and backward, as the model defines them and torch computes "
        "them, and those attnsim computes (its inputs go through the table Emb W_ihᵀ). Model GFLOP/s: the "
        "model's count over each side's time (the same work for both; model-FLOP utilization when set against "
        "SGEMM). attnsim's own GFLOP/s: its own count over its time. "
        "Single-thread SGEMM (NumPy, 1024×1024, best of 5 before and 5 after the cases) on this machine: "
        f"{rate:.0f} GFLOP/s; on one time "
        f"step's recurrent product at the paper's size (128×256 by 256×1024): {recurrent:.0f} GFLOP/s "
        f"({100 * recurrent / rate:.0f} %). "
        f"16 runs of the small case ({TWO_CORE_STEPS} steps, best of 3) with `train_many`: {cores['one_core_s']:.2f} s "
        f"on 1 core, {cores['two_cores_s']:.2f} s on 2: {cores['speedup']:.2f}×.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, torch {torch.__version__}.",
    ]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "rnn.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "rnn.json"), "w") as fh:
        data = {"rows": rows, "sgemm_gflops": rate, "recurrent_product_gflops": recurrent, "two_cores": cores}
        json.dump(data, fh, indent=1)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
