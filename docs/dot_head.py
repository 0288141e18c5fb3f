"""What the dot-product head (rung 1) shows, beside rung 0 and the theory of §4: the README's
section "The dot-product head" and its figure.

    python docs/dot_head.py              # writes docs/dot_head.{json,png}, about 4 minutes on 2 cores
    python docs/dot_head.py --plot-only  # redraws the figure from the JSON

1. The paper's copy experiment: the permutation of 40 against 40 of 60, 20 seeds, Adam under
   the defaults of ``attnsim run`` (lr 0.05, batch 128, 300 steps, the default init), at
   widths d 16 and 32, and at d 64 with lr 0.05 and 0.01; rung 0 beside it. Success with
   95 % Wilson intervals; stuck runs' token and attention accuracy; how often the saddle
   projection of the init's effective tables (§4.4, §7.1) predicts the outcome.
2. The time to attend (gold mass 0.5) against the width d, on copy(60, 40) under SGD (the
   theory's clock τ = lr·steps; lr 32/d, batch 256, the default init, 4 seeds), beside the
   two-stage closed form and rung 0's exact reduced dynamics from each run's own init.
3. The same against the context ρ (d 32, keys and values see the whole state: attention
   "both", values "word+position"), with the attention accuracy reached.
4. The factored dynamics (§7.6): from an aligned init, the simulation against the exact
   reduced map; from small random inits, the times to KTIW and to attention against the
   init scale (copy(12, 8), d 16, SGD lr 1), beside rung 0.
"""

import json
import math
import os
import sys
import time

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import attnsim as at

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = 20
ADAM = dict(optimizer="adam", lr=0.05, batch=128, steps=300)
WIDTH_RUNS = [(16, 0.05), (32, 0.05), (64, 0.05), (64, 0.01)]
DIMS = [8, 16, 32, 64, 128]
RHOS = [0.0, 0.5, 1.0, 1.5, 1.8, 2.0, 3.0]
SCALES = [0.2, 0.14, 0.1, 0.07, 0.05, 0.035]


def wilson(k, n, z=1.96):
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def first(history, key, level=0.5):
    hit = np.flatnonzero(np.asarray(history[key], np.float64) >= level)
    return float(history["tau"][hit[0]]) if hit.size else None


def say(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- 1. the copy experiment


def copy_experiment():
    out = []
    configs = [("free", None, 0.05)] + [("dot", d, lr) for d, lr in WIDTH_RUNS]
    for model, d, lr in configs:
        for V in (40, 60):
            task = at.tasks.copy(V, 40)
            cfg = at.ModelConfig.for_task(task) if model == "free" else at.DotConfig.for_task(task, dim=d)
            runs = at.train_many(cfg, task, range(SEEDS), **{**ADAM, "lr": lr})
            ok = [r.success for r in runs]
            stuck = [r for r in runs if not r.success]
            row = {
                "model": model, "dim": d, "lr": lr, "vocab": V, "runs": SEEDS, "learned": int(sum(ok)), "success": ok,
                "interval": wilson(sum(ok), SEEDS),
                "time_to_learn": [r.time_to_learn for r in runs if r.success],
                "stuck_acc": [r.final()["acc"] for r in stuck],
                "stuck_attn_acc": [r.final()["attn_acc"] for r in stuck],
                "stuck_first_attn_acc": [float(np.nanmax(r.history["attn_acc"])) for r in stuck],
            }  # fmt: skip
            if V == 40:
                proj = np.array([at.theory.saddle_projection(cfg, r.initial_params, task) for r in runs])
                row["projection"] = proj.tolist()
                row["projection_right"] = int(np.sum((proj > 0) == np.array(ok)))
            out.append(row)
            say(f"copy: {model} d {d} lr {lr} V {V}: {row['learned']}/{SEEDS}")
    return out


# ----------------------------------------------------------------- 2-3. time to attend


def _attend_runs(cfg, task, lr, steps, seeds=range(4)):
    runs = at.train_many(cfg, task, seeds, optimizer="sgd", lr=lr, steps=steps, batch=256, log_every=2)
    rows = []
    for r in runs:
        tables = at.effective_tables(cfg, r.initial_params)
        a0, c0 = at.theory.copy_coordinates(tables) if "S" in tables and "A" not in tables else (None, None)
        rows.append(
            {
                "seed": r.settings["seed"], "status": r.status, "time_to_attend": first(r.history, "gold_mass"),
                "time_to_ktiw": first(r.history, "ktiw_acc"), "final_attn_acc": r.final()["attn_acc"],
                "final_gold_mass": r.final()["gold_mass"], "a0": None if a0 is None else float(a0[0]),
                "c0": None if c0 is None else float(c0[0]),
            }
        )  # fmt: skip
    return rows


def _reduced_from(a0, c0, lr, tau_max):
    tau = np.arange(0.0, tau_max + lr / 2, lr)
    r = at.theory.reduced_copy(60, 40, tau, lr=lr, a0=a0, c0=c0)
    hit = np.flatnonzero(r["gold_mass"] >= 0.5)
    return float(tau[hit[0]]) if hit.size else None


def width_experiment(two_stage):
    task = at.tasks.copy(60, 40)
    out = []
    for d in DIMS:
        lr = 32.0 / d
        cfg = at.DotConfig.for_task(task, dim=d)
        rows = _attend_runs(cfg, task, lr, steps=int((12800 / d + 200) / lr))
        for row in rows:
            row["reduced_own_init"] = _reduced_from(row["a0"], row["c0"], lr, 12000.0)
        out.append({"dim": d, "lr": lr, "runs": rows, "two_stage": two_stage})
        say(f"width: d {d}: attend at τ {[r['time_to_attend'] for r in rows]}")
    return out


def context_experiment(two_stage):
    task = at.tasks.copy(60, 40)
    out = []
    for rho in RHOS:
        cfg = at.DotConfig.for_task(task, dim=32, attention="both", values="word+position", context=rho)
        rows = _attend_runs(cfg, task, 1.0, steps=1000)
        out.append({"context": rho, "runs": rows, "two_stage": two_stage})
        say(f"context: ρ {rho}: attend at τ {[r['time_to_attend'] for r in rows]}, final attention accuracy "
            f"{[round(r['final_attn_acc'], 3) for r in rows]}")  # fmt: skip
    return out


# ----------------------------------------------------------------- 4. small inits


def small_init_experiment():
    V, L, d = 12, 8, 16
    task = at.tasks.copy(V, L)
    cfg = at.DotConfig.for_task(task, dim=d)
    lr = 0.5
    run = at.train(
        cfg, task, optimizer="sgd", lr=lr, steps=3000, batch=1024, params=at.theory.dot_aligned_params(cfg, 0.3, 0.3),
        log_every=10,
    )  # fmt: skip
    tau = run.history["tau"]
    same = at.theory.reduced_copy_dot(V, L, tau, key_dim=d, lr=lr, w0=0.3, u0=0.3)
    flow = at.theory.reduced_copy_dot(V, L, tau, key_dim=d, w0=0.3, u0=0.3)
    aligned = {
        "tau": tau.tolist(), "simulated": run.history["gold_mass"].tolist(), "same_step": same["gold_mass"].tolist(),
        "flow": flow["gold_mass"].tolist(),
        "max_gap_same_step": float(np.max(np.abs(run.history["gold_mass"] - same["gold_mass"]))),
        "max_gap_flow": float(np.max(np.abs(run.history["gold_mass"] - flow["gold_mass"]))),
    }  # fmt: skip
    free = at.ModelConfig.for_task(task)
    rows = []
    for s in SCALES:
        runs = at.train_many(cfg, task, range(3), optimizer="sgd", lr=1.0, steps=int(40 / s**2), batch=256, scale=s,
                             log_every=5)  # fmt: skip
        fr = at.train_many(free, task, range(3), optimizer="sgd", lr=1.0, steps=3000, batch=256, scale=s, log_every=5)
        rows.append(
            {
                "scale": s, "ktiw": [first(r.history, "ktiw_acc") for r in runs],
                "attend": [first(r.history, "gold_mass") for r in runs],
                "free_attend": [first(r.history, "gold_mass") for r in fr],
            }
        )  # fmt: skip
        say(f"small init: s {s}: KTIW at {rows[-1]['ktiw']}, attention at {rows[-1]['attend']}")
    logs = np.log(SCALES)
    fits = {}
    for key in ("ktiw", "attend", "free_attend"):
        fits[key] = float(np.polyfit(logs, np.log([np.mean(r[key]) for r in rows]), 1)[0])
    small = slice(2, None)  # s <= 0.1, as the test
    fits["ktiw_small"] = float(np.polyfit(logs[small], np.log([np.mean(r["ktiw"]) for r in rows[small]]), 1)[0])
    fits["attend_small"] = float(np.polyfit(logs[small], np.log([np.mean(r["attend"]) for r in rows[small]]), 1)[0])
    return {"task": "copy(12, 8)", "dim": d, "aligned": aligned, "random": rows, "slopes": fits}


# ----------------------------------------------------------------- the figure


def draw(doc):
    fig = Figure(figsize=(15, 9), layout="constrained")
    ax = fig.subplots(2, 3)

    # (a) success with intervals
    a = ax[0, 0]
    rows = doc["copy"]
    labels = []
    for i, kind in enumerate(
        sorted({(r["model"], r["dim"], r["lr"]) for r in rows}, key=lambda k: (k[0] != "free", k[1] or 0, -k[2]))
    ):
        model, d, lr = kind
        labels.append("rung 0" if model == "free" else f"dot d {d}\nlr {lr:g}")
        for j, V in enumerate((40, 60)):
            r = next(r for r in rows if (r["model"], r["dim"], r["lr"], r["vocab"]) == (model, d, lr, V))
            p = r["learned"] / r["runs"]
            lo, hi = r["interval"]
            x = i + (j - 0.5) * 0.36
            a.bar(
                x,
                p,
                width=0.34,
                color="C3" if V == 40 else "C0",
                label=("permutation of 40" if V == 40 else "40 of 60") if i == 0 else None,
            )
            a.errorbar(x, p, yerr=[[p - lo], [hi - p]], color="k", capsize=3, lw=1)
            a.text(x, hi + 0.02, f"{r['learned']}", ha="center", va="bottom", fontsize=8)
    a.set_xticks(range(len(labels)), labels, fontsize=8)
    a.set_ylim(0, 1.32)
    a.set_ylabel(f"success over {SEEDS} seeds (95 % interval)")
    a.set_title("copy(V, 40), Adam, 300 steps, the default init", fontsize=10)
    a.legend(fontsize=8, loc="upper center", ncols=2)

    # (b) time to attend against d
    b = ax[0, 1]
    for row in doc["width"]:
        t = [r["time_to_attend"] for r in row["runs"] if r["time_to_attend"] is not None]
        b.scatter(
            [row["dim"]] * len(t),
            t,
            color="C0",
            s=18,
            label="dot head (SGD, default init)" if row["dim"] == DIMS[0] else None,
        )
        own = [r["reduced_own_init"] for r in row["runs"] if r["reduced_own_init"] is not None]
        b.scatter(
            [row["dim"] * 1.08] * len(own),
            own,
            color="C2",
            marker="x",
            s=22,
            label="rung 0's reduced dynamics from the init's tables" if row["dim"] == DIMS[0] else None,
        )
    b.axhline(doc["width"][0]["two_stage"], color="C1", ls="--", label="two-stage closed form (rung 0, zero init)")
    b.set_xscale("log", base=2)
    b.set_yscale("log")
    b.set_xlabel("width d (SGD, lr 32/d)")
    b.set_ylabel("τ = lr·steps to gold mass 0.5")
    b.set_title("copy(60, 40): time to attend against the width", fontsize=10)
    b.legend(fontsize=7)

    # (c) against context
    c = ax[0, 2]
    rhos = [row["context"] for row in doc["context"]]
    med = [
        np.median([r["time_to_attend"] if r["time_to_attend"] is not None else np.nan for r in row["runs"]])
        for row in doc["context"]
    ]
    acc = [np.mean([r["final_attn_acc"] for r in row["runs"]]) for row in doc["context"]]
    for row in doc["context"]:
        t = [r["time_to_attend"] for r in row["runs"] if r["time_to_attend"] is not None]
        c.scatter([row["context"]] * len(t), t, color="C0", s=18)
    c.plot(rhos, med, color="C0", label="dot head: τ to gold mass 0.5 (median)")
    c.axhline(doc["context"][0]["two_stage"], color="C1", ls="--", label="two-stage closed form (no context)")
    c.set_yscale("log")
    c.set_xlabel("context ρ (keys and values see ρ/2 of each neighbour)")
    c.set_ylabel("τ to gold mass 0.5")
    c2 = c.twinx()
    c2.plot(rhos, acc, color="C3", marker="o", ms=4, label="final attention accuracy")
    c2.set_ylim(-0.02, 1.3)  # leaves the top free for the legend, and the curves apart
    c2.set_ylabel("final attention accuracy", color="C3")
    h1, l1 = c.get_legend_handles_labels()
    h2, l2 = c2.get_legend_handles_labels()
    c.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    c.set_ylim(top=c.get_ylim()[1] * 20)
    c.set_title(
        "copy(60, 40), d 32, SGD lr 1: against the context\n(τ is drawn where the gold mass reaches 0.5)", fontsize=10
    )

    # (d) aligned init: the exact reduced form
    d = ax[1, 0]
    al = doc["small_init"]["aligned"]
    tau = np.array(al["tau"])
    d.plot(tau, al["simulated"], "o", ms=2.5, color="C0", label="simulation (SGD, batch 1024)")
    d.plot(tau, al["same_step"], color="C1", label=f"reduced map, same step (gap {al['max_gap_same_step']:.1e})")
    d.plot(tau, al["flow"], color="C2", ls="--", label=f"reduced gradient flow (gap {al['max_gap_flow']:.2f})")
    d.set_xlabel("τ = lr·steps")
    d.set_ylabel("gold attention mass")
    d.set_title("copy(12, 8), d 16, aligned init w = u = 0.3: §7.6's exact form", fontsize=10)
    d.legend(fontsize=7)

    # (e) small random inits: the stages against the scale
    e = ax[1, 1]
    rows = doc["small_init"]["random"]
    s = np.array([r["scale"] for r in rows])
    sl = doc["small_init"]["slopes"]
    for key, color, label in (
        ("ktiw", "C2", f"dot: KTIW accuracy 0.5 (slope {sl['ktiw_small']:.2f} for s ≤ 0.1)"),
        ("attend", "C0", f"dot: gold mass 0.5 (slope {sl['attend_small']:.2f} for s ≤ 0.1)"),
        ("free_attend", "C1", f"rung 0: gold mass 0.5 (slope {sl['free_attend']:.2f})"),
    ):
        e.plot(s, [np.mean(r[key]) for r in rows], marker="o", color=color, label=label)
    ref = np.mean(rows[2]["ktiw"])
    e.plot(s, ref * (s / s[2]) ** -1, color="C2", ls=":", lw=1, label="∝ 1/s")
    ref = np.mean(rows[2]["attend"])
    e.plot(s, ref * (s / s[2]) ** -2, color="C0", ls=":", lw=1, label="∝ 1/s² (the aligned family)")
    e.set_xscale("log")
    e.set_yscale("log")
    e.set_xlabel("init scale s (every factor N(0, s²))")
    e.set_ylabel("τ = lr·steps")
    e.set_title("copy(12, 8), d 16, SGD: the stages against the init scale", fontsize=10)
    e.legend(fontsize=7)

    # (f) the saddle's verdict on the dot head's inits
    f = ax[1, 2]
    rows = [r for r in doc["copy"] if r["vocab"] == 40 and "projection" in r]
    for i, r in enumerate(rows):
        proj = np.array(r["projection"])
        ok = np.array(r["success"])
        jitter = np.linspace(-0.15, 0.15, len(proj))
        f.scatter(i + jitter[ok], proj[ok], color="C0", s=12, label="learned" if i == 0 else None)
        f.scatter(i + jitter[~ok], proj[~ok], color="C3", s=12, marker="x", label="stuck" if i == 0 else None)
    f.axhline(0, color="0.5", lw=0.8)
    f.set_xticks(
        range(len(rows)),
        [
            ("rung 0" if r["model"] == "free" else f"dot d {r['dim']}\nlr {r['lr']:g}")
            + f"\n{r['projection_right']}/{r['runs']} right"
            for r in rows
        ],
        fontsize=8,
    )
    f.set_yscale("symlog", linthresh=1e-4)
    top = 3 * max(np.abs(r["projection"]).max() for r in rows)  # every marker inside, half a decade spare
    f.set_ylim(-top, top)
    f.set_ylabel("saddle projection of the init's tables")
    f.set_title("permutation of 40: does the init's sign decide?", fontsize=10)
    f.legend(fontsize=7, loc="center left")  # on the empty band about zero

    FigureCanvasAgg(fig)
    fig.savefig(os.path.join(HERE, "dot_head.png"), dpi=110)


def main():
    if "--plot-only" in sys.argv:
        with open(os.path.join(HERE, "dot_head.json")) as fh:
            draw(json.load(fh))
        return
    t0 = time.perf_counter()
    two_stage = float(at.theory.time_to_attend(at.tasks.copy(60, 40), 0.5))
    doc = {"copy": copy_experiment()}
    doc["width"] = width_experiment(two_stage)
    doc["context"] = context_experiment(two_stage)
    doc["small_init"] = small_init_experiment()
    doc["seconds"] = time.perf_counter() - t0
    with open(os.path.join(HERE, "dot_head.json"), "w") as fh:
        json.dump(doc, fh, indent=1)
    draw(doc)
    say(f"done in {doc['seconds']:.0f} s")


if __name__ == "__main__":
    main()
