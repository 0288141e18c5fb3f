"""The regime map of the README: how the agreement of theory and simulation on
copy(60, 40) degrades with learning rate, batch size, init scale and optimizer.

    python docs/regime_map.py              # writes docs/regime_map.{png,json}, ~3 minutes
    python docs/regime_map.py --plot-only  # redraws the figure from the JSON

Each point is one `attnsim.compare` run (seed 0) over τ = lr·steps up to 6000. Two
numbers per run:
* exact reduced dynamics, with the run's own step (exact for GD) and as gradient flow
  (the η → 0 limit): the largest gap in gold attention mass over the run;
* two-stage closed form: the relative error of the rise of the gold mass above 1/L at the
  end of its regime (the table's logits τ·max|G| reach 0.1), and predicted ÷ simulated
  time for the gold mass to reach 0.5.
"""

import json
import os
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

import attnsim as at

HERE = os.path.dirname(os.path.abspath(__file__))
TAU = 6000.0
BASE = dict(optimizer="sgd", lr=10.0, batch=256, scale=0.0)
AXES = {
    "lr": [2.5, 5.0, 10.0, 20.0, 40.0, 80.0],
    "batch": [8, 32, 128, 512, 2048],
    "scale": [0.0, 0.001, 0.01, 0.1, 0.3],
    "optimizer": ["gd", "sgd", "adam"],
}


def one(**kw):
    setting = dict(BASE, **kw)
    if setting["optimizer"] == "adam":
        setting["lr"], setting["batch"] = 0.05, 128
        steps = 300
    else:
        steps = int(TAU / setting["lr"])
    task = at.tasks.copy(60, 40)
    r = at.compare(task, steps=steps, **setting)
    ag = r["agreement"]
    sim = r["simulation"]
    a0, c0 = at.theory.copy_coordinates(at.init_params(at.ModelConfig.for_task(task), 0, setting["scale"]))
    flow = at.theory.reduced_copy(60, 40, sim["tau"], a0=a0[0], c0=c0[0])
    return {
        **setting,
        "steps": steps,
        "reduced_max_gap": ag["reduced"]["max_gold_mass_gap"],
        "reduced_time_ratio": ag["reduced"]["time_ratio"],
        "flow_max_gap": float(np.max(np.abs(flow["gold_mass"] - sim["gold_mass"]))),
        "two_stage_early_error": ag["two_stage"].get("early_rel_error"),
        "two_stage_time_ratio": ag["two_stage"]["time_ratio"],
        "success": ag["simulated"]["success"],
    }


def main():
    if "--plot-only" in sys.argv:  # redraw from docs/regime_map.json
        with open(os.path.join(HERE, "regime_map.json")) as f:
            draw(json.load(f))
        return
    rows = {}
    for axis, values in AXES.items():
        rows[axis] = []
        for v in values:
            rows[axis].append(one(**{axis: v}))
            print(
                axis, v, {k: rows[axis][-1][k] for k in ("reduced_max_gap", "two_stage_early_error")}, file=sys.stderr
            )
    with open(os.path.join(HERE, "regime_map.json"), "w") as f:
        json.dump(rows, f, indent=1)
    draw(rows)


def draw(rows):
    fig = Figure(figsize=(13, 8), layout="constrained")
    axs = fig.subplots(2, 2).ravel()
    for ax, (axis, values) in zip(axs, AXES.items(), strict=True):
        categorical = axis in ("optimizer", "scale")
        xs = np.arange(len(values)) if categorical else np.array(values, dtype=float)
        red = [r["reduced_max_gap"] if r["reduced_max_gap"] is not None else np.nan for r in rows[axis]]
        two = [r["two_stage_early_error"] if r["two_stage_early_error"] is not None else np.nan for r in rows[axis]]
        flow = [r["flow_max_gap"] for r in rows[axis]]
        ax.plot(xs, red, "o-", color="C0", label="reduced dynamics, same step as the run: largest gold-mass gap")
        ax.plot(xs, flow, "^-", color="C2", label="reduced dynamics, gradient flow (η → 0): largest gold-mass gap")
        ax.plot(xs, two, "s--", color="C1", label="two-stage form: error of the early rise (relative)")
        ax.axhline(0.05, color="C3", lw=0.8, ls=":", label="0.05")
        ax.set_yscale("log")
        ax.set_ylim(1e-6, 3)
        if axis == "optimizer":
            ax.set_xticks(xs, ["GD (one batch of 256)", "online SGD", "Adam lr 0.05 (τ = lr·steps)"])
        elif axis == "scale":
            ax.set_xticks(xs, [f"{v:g}" for v in values])
        else:
            ax.set_xscale("log")
            ax.set_xticks(xs, [f"{v:g}" for v in values])
            ax.xaxis.set_minor_formatter(NullFormatter())
        fixed = ", ".join(f"{k} {v:g}" if not isinstance(v, str) else f"{k} {v}" for k, v in BASE.items() if k != axis)
        ax.set_title(f"varying {axis} ({fixed})", fontsize=9)
        ax.set_xlabel(
            {
                "lr": "learning rate",
                "batch": "batch size (sequences)",
                "scale": "init scale (std of every parameter)",
                "optimizer": "optimizer",
            }[axis]
        )
        ax.set_ylabel("disagreement with the simulation")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(
        "Where to trust the theory on copy(60, 40): below the dotted line theory and simulation agree within 0.05"
    )
    handles, labels = axs[0].get_legend_handles_labels()  # one legend, below the panels, hiding no line
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    FigureCanvasAgg(fig)
    fig.savefig(os.path.join(HERE, "regime_map.png"), dpi=110)


if __name__ == "__main__":
    main()
