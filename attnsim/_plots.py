"""Figures (PNG). Built on ``matplotlib.figure.Figure`` directly: no pyplot state, no
display needed."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._model import forward


def learning_curves(
    history: dict,
    title: str = "",
    heads: int = 1,
    stopped: int | None = None,
    accuracy: str = "token accuracy",
    uniform: bool = False,
) -> Figure:
    """Loss, token accuracy (``accuracy``: what a classifier calls its own), attention
    accuracy and KTIW accuracy against step; a run that diverged (``stopped``: the step it
    stopped at) is marked there, and its few logged points are drawn as markers so that
    they show. A model whose attention is frozen uniform (``uniform``) has no attention
    accuracy to draw (its argmax of a constant), and its panel says so."""
    fig = Figure(figsize=(10, 6.4), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    step = np.asarray(history["step"])
    style = {"marker": "o", "ms": 4} if len(step) <= 20 else {}
    panels = [
        ("loss", "loss (cross-entropy, nats)", axes[0, 0]),
        ("acc", accuracy, axes[0, 1]),
        ("attn_acc", "attention accuracy (argmax α = gold)", axes[1, 0]),
        ("ktiw_acc", "KTIW accuracy (argmax β = gold)", axes[1, 1]),
    ]
    for key, label, ax in panels:
        y = np.asarray(history[key], dtype=np.float64)
        if key == "attn_acc" and heads > 1:
            per = np.asarray(history["head_attn_acc"], dtype=np.float64)
            for h in range(per.shape[1]):
                ax.plot(step, per[:, h], color="0.75", lw=0.8, label="single heads" if h == 0 else None, **style)
            ax.plot(step, y, color="C0", lw=1.8, label="best head", **style)
            ax.legend(loc="lower right", fontsize=8)
        elif y.size == 0:  # nothing was logged: the loss was not finite at the start
            why = f"diverged at step {stopped}:\nnothing was logged" if stopped is not None else "nothing was logged"
            ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="C3")
        elif key == "attn_acc" and uniform:
            ax.text(0.5, 0.5, "attention frozen uniform:\nnothing to learn", ha="center", va="center",
                    transform=ax.transAxes)  # fmt: skip
        elif np.all(np.isnan(y)):
            ax.text(0.5, 0.5, "no gold alignment\nfor this task", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.plot(step, y, color="C0", lw=1.8, **style)
        if key == "loss":
            pos = y[np.isfinite(y)]
            if pos.size and np.all(pos > 0) and pos.max() > 10 * pos.min():  # log scale only over decades
                ax.set_yscale("log")
        else:
            ax.set_ylim(-0.03, 1.03)
            ax.axhline(0.95, color="C3", lw=0.8, ls="--")
        if stopped is not None:
            ax.axvline(stopped, color="C3", lw=1.2)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if stopped is not None:
        axes[0, 0].text(
            0.02, 0.98, f"diverged at step {stopped}\n(red line): training stopped", transform=axes[0, 0].transAxes,
            va="top", fontsize=9, color="C3", bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85},
        )  # fmt: skip
        axes[0, 0].set_xlim(-0.05 * max(stopped, 1), 1.05 * max(stopped, step.max(initial=0), 1))
    fig.suptitle((title + "\n" if title else "") + "dashed red line: the 0.95 success threshold", fontsize=11)
    return fig


def attention_map(cfg, params, x, gold=None, title: str = "", y=None) -> Figure:
    """The attention of each head on the batch ``x``: for sequence-to-sequence models the
    mean over the batch (target step × source position, gold positions marked); for
    classification (one target step) the attention of the first 16 inputs. Parameters
    that are not finite (a diverged run) give a figure that says so."""
    if not all(np.all(np.isfinite(v)) for v in params.values()):
        fig = Figure(figsize=(6, 3))
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no attention to draw:\nthe parameters are not finite (the run diverged)",
                ha="center", va="center", fontsize=11, color="C3")  # fmt: skip
        if title:
            fig.suptitle(title, fontsize=9)
        return fig
    _, alpha = forward(cfg, params, x, y)
    H = min(cfg.heads, 8)
    cols = min(H, 4)
    rows = (H + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols + 1.2, 3.8 * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    classification = cfg.tgt_len == 1
    im = None
    for h in range(H):
        ax = axes[h]
        if classification:
            a = alpha[h, :16, 0, :]
            im = ax.imshow(a, aspect="auto", cmap="viridis", vmin=0, vmax=max(float(a.max()), 1e-9))
            ax.set_xlabel("source position")
            ax.set_ylabel("example")
            if gold is not None:
                g = np.asarray(gold)[:16, 0]
                rows_g = np.flatnonzero(g >= 0)
                ax.scatter(g[rows_g] + 0.35, rows_g - 0.35, marker=".", s=12, c="r",
                           label="gold position (dot at the cell's corner)")  # fmt: skip
        else:
            a = alpha[h].mean(axis=0)
            im = ax.imshow(a, aspect="auto", cmap="viridis", vmin=0, vmax=1)
            extra = alpha.shape[-1] > cfg.src_len  # a model that appends EOS to both sides (rung 2)
            ax.set_xlabel("source position l" + (" (the last: EOS)" if extra else ""))
            ax.set_ylabel("target step t" + (" (the last predicts EOS)" if extra else ""))
            if gold is not None:
                g = np.asarray(gold)
                if g.size and np.all(g == g[:1]) and np.all(g[0] >= 0):
                    # small red dots at the cells' corner: the cell itself stays visible
                    ax.scatter(g[0] + 0.35, np.arange(g.shape[1]) - 0.35, marker=".", s=12, c="r",
                               label="gold position (dot at the cell's corner)")  # fmt: skip
        integer_ticks(ax)
        ax.set_title(f"head {h}" if cfg.heads > 1 else "attention α")
    for ax in axes[H:]:
        ax.set_visible(False)
    if im is not None:
        cb = fig.colorbar(im, ax=list(axes[:H]), shrink=0.85)
        cb.set_label("attention weight" + (" (mean over the batch)" if not classification else ""))
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # one legend, below the maps
        fig.legend(handles, labels, loc="outside lower center", fontsize=8)
    if title:
        fig.suptitle(_wrap(title), fontsize=10)
    return fig


def _wrap(title: str, width: int = 70) -> str:
    """A long title on lines of about ``width`` characters, broken at its commas."""
    lines, line = [], ""
    for part in title.split(", "):
        if line and len(line) + len(part) + 2 > width:
            lines.append(line + ",")
            line = part
        else:
            line = f"{line}, {part}" if line else part
    return "\n".join([*lines, line])


def comparison(result: dict) -> Figure:
    """Gold attention mass and KTIW log-odds at the gold position against τ = lr·step:
    simulation, two-stage closed form, exact reduced dynamics (where they exist). The
    legend and the agreement numbers sit below the panels, where they hide no curve."""
    sim, two, red = result["simulation"], result["two_stage"], result.get("reduced")
    target = result.get("target", "gold")
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    axes = fig.subplots(1, 2)
    key, label = MASS_LABEL[target]
    panels = [(key, label, axes[0])]
    if target == "gold":
        panels.append(("ktiw_gold", "KTIW log-odds β at the gold position (nats)", axes[1]))
    else:  # no gold position to probe: where the simulation attends, beside stage 2's ranking
        a = axes[1]
        alpha = result["run"].snapshots["alpha"][-1].mean(axis=0)
        im = a.imshow(alpha, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        first = result["stage2_first"]
        if first is not None:
            a.plot(
                first, np.arange(len(first)), "s", mfc="none", mec="C3", mew=1.5, ms=9, label="ranked first by stage 2"
            )
        fig.colorbar(im, ax=a, shrink=0.85, label="attention weight (mean over heads and batch)")
        a.set_title("simulated attention at the end", fontsize=9)
        a.set_xlabel("source position l")
        a.set_ylabel("target step t")
        integer_ticks(a)
    # one grid for all: τ = lr·step, or the step itself when lr·step is too large to draw
    huge = not np.max(sim["tau"], initial=0.0) < 1e200
    x, xlabel = (sim["step"], "training step (τ = lr·step is too large to draw)") if huge else (sim["tau"], None)
    rung0 = "" if result["settings"].get("model", "free") == "free" else "rung 0's "  # read through effective tables
    for key, label, ax in panels:
        ax.plot(x, sim[key], color="k", lw=2.4, alpha=0.75, label="simulation")
        if red is not None:
            ax.plot(x, red[key], color="C0", lw=1.3, label=f"{rung0}exact reduced dynamics ({red['steps']})")
        ax.plot(x, two[key], color="C1", lw=1.5, ls="--", label=f"{rung0}two-stage closed form")
        ax.set_xlabel(xlabel or "τ = learning rate × steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.02, 1.02)
    ag = result["agreement"]
    lines = []
    if "reduced" in ag and ag["reduced"].get("max_gold_mass_gap") is not None:
        lines.append(f"reduced: largest gold-mass gap {ag['reduced']['max_gold_mass_gap']:.2g}")
        if ag["reduced"].get("time_ratio") is not None and abs(ag["reduced"]["time_ratio"] - 1) > 0.1:
            lines.append(f"reduced: time to attend ×{ag['reduced']['time_ratio']:.3g} of simulated")
    t2 = ag.get("two_stage", {})
    if t2.get("early_rel_error") is not None:
        lines.append(
            f"two-stage: its early rise off by {100 * t2['early_rel_error']:.1f} % (at τ = {t2['early_tau']:.3g})"
        )
    if t2.get("time_ratio") is not None:
        lines.append(f"two-stage: time to attend ×{t2['time_ratio']:.3g} of simulated")
    if result.get("saddle") is not None:
        s = result["saddle"]
        lines.append(
            f"saddle: projection {max(s['projection']):+.2g} predicts "
            + ("learning" if s["predicts_learning"] else "no learning")
        )
    if result["settings"]["optimizer"] == "adam":
        lines.append("Adam: τ = lr·steps is not the theory's clock")
    run = result.get("run")
    if run is not None and run.status == "diverged":
        stop = result["settings"]["lr"] * run.stopped_at
        for ax in axes[: len(panels)]:
            ax.axvline(run.stopped_at if huge else stop, color="C3", lw=1.2)
        lines.insert(0, f"simulation diverged at step {run.stopped_at} (red line, τ = {stop:.3g})")
    handles, labels = axes[0].get_legend_handles_labels()
    more = axes[1].get_legend_handles_labels() if target == "top" else ([], [])
    fig.legend(
        handles + more[0], labels + more[1], loc="outside lower center", ncols=4, fontsize=8,
        title="\n".join("   ·   ".join(lines[i : i + 2]) for i in range(0, len(lines), 2)) or None, title_fontsize=8,
    )  # fmt: skip
    st = result["settings"]
    init = "the default init" if st["scale"] is None else f"init scale {st['scale']:g}"
    model = f"{result['run'].cfg.describe()}, " if run is not None and st.get("model", "free") != "free" else ""
    fig.suptitle(
        _wrap(
            f"{result['task_object']!r}: {model}{st['optimizer']} lr {st['lr']:g}, batch {st['batch']}, {init}, "
            f"{st['heads']} head{'s' if st['heads'] > 1 else ''}",
            110,
        )
    )
    return fig


MASS_LABEL = {
    "gold": ("gold_mass", "attention mass on the gold position"),
    "top": ("top_mass", "attention on the position stage 2 ranks first\n(the task has no gold alignment)"),
}


def theory_figure(panels, curves, title: str = "", target: str = "gold", predicted=None) -> Figure:
    """Two heat maps on top — ``panels``: (matrix, title, x label, y label), e.g. the
    rates G and M, or a saddle's unstable direction — and the predicted attention mass
    (on the gold position, or with ``target="top"`` on the position stage 2 ranks first)
    and the KTIW log-odds against τ below — ``curves``: (label, dict of arrays, line
    style). ``predicted`` = (α (T, L), τ, first positions) replaces the KTIW panel, which
    needs a gold position, with the attention stage 2 predicts at that τ."""
    fig = Figure(figsize=(11, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    for ax, (mat, name, xl, yl) in zip(axes[0], panels, strict=True):
        lim = float(np.max(np.abs(mat))) or 1.0
        im = ax.imshow(mat, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        fig.colorbar(im, ax=ax, shrink=0.85)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        integer_ticks(ax)
    key, label = MASS_LABEL[target]
    ax = axes[1, 0]
    for name, curve, style in curves:
        if key in curve:
            ax.plot(curve["tau"], curve[key], style, label=name)
    ax.set_xlabel("τ = learning rate × steps (gradient descent)")
    ax.set_ylabel(label)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    ax = axes[1, 1]
    if predicted is not None:
        alpha, tau, first = predicted
        im = ax.imshow(alpha, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.plot(first, np.arange(len(first)), "s", mfc="none", mec="C3", mew=1.5, ms=9, label="ranked first by M")
        fig.colorbar(im, ax=ax, shrink=0.85, label="attention weight")
        ax.set_title(f"attention stage 2 predicts at τ = {tau:.3g}", fontsize=9)
        ax.set_xlabel("source position l")
        ax.set_ylabel("target step t")
        integer_ticks(ax)
        more = ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    else:
        for name, curve, style in curves:
            ax.plot(curve["tau"], curve["ktiw_gold"], style, label=name)
        ax.set_xlabel("τ = learning rate × steps (gradient descent)")
        ax.set_ylabel("KTIW log-odds β at the gold position (nats)")
        ax.grid(alpha=0.3)
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)  # below: it hides no curve
    if title:
        fig.suptitle(title)
    return fig


def integer_ticks(ax) -> None:
    """Heat-map axes index rows and columns: integer ticks only. A map of few rows gets
    one tick per row (MaxNLocator would fall back to ticks at 0.1 on a one-row map)."""
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        n = int(round(abs(hi - lo)))
        if n <= 8:
            axis.set_ticks(range(n))
        else:
            axis.set_major_locator(MaxNLocator(integer=True))


def phase_diagram(summary: dict) -> Figure:
    """Success rate and median time to learn over the sweep's two main axes; where the
    saddle applies, each cell also shows the rate its projections predict."""
    xs, ys = summary["x_values"], summary["y_values"]
    cells = {(repr(c["x"]), repr(c["y"])): c for c in summary["cells"]}

    def grid(key):
        return np.array([[_nan(cells[(repr(xv), repr(yv))][key]) for xv in xs] for yv in ys], dtype=np.float64).reshape(
            len(ys), len(xs)
        )

    rate, pred, t_learn = grid("success_rate"), grid("predicted_success_rate"), grid("median_time_to_learn")
    annotate = len(xs) <= 16 and len(ys) <= 24  # a number in every cell only while it can be read
    height = min(0.6 * len(ys), 9.0) + 3.4
    fig = Figure(figsize=(11, height), layout="constrained")  # colorbar labels clear of the next axis
    ax_rate, ax_time = fig.subplots(1, 2)
    xlabel = summary["x"] or ""
    ylabel = summary["y"] or ""
    panels = [
        (ax_rate, rate, "success rate (fraction of runs)", "RdYlGn", (0, 1)),
        # times from 0: 20 against 30 steps is not the whole scale apart
        (ax_time, t_learn, "median time to learn (steps, successful runs)", "viridis", (0, None)),
    ]
    for ax, values, label, cmap, (vmin, vmax) in panels:
        finite = values[np.isfinite(values)]
        if vmax is None:
            vmax = max(float(finite.max()) if finite.size else 1.0, vmin + 1)
        im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
        fig.colorbar(im, ax=ax, label=label)
        for axis, vals, name in ((ax.xaxis, xs, xlabel), (ax.yaxis, ys, ylabel)):
            if name:
                every = max(1, len(vals) // 20)  # at most about 20 labels
                axis.set_ticks(range(0, len(vals), every), [_tick(v) for v in vals[::every]])
            else:  # no axis swept on this side
                axis.set_ticks([])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if ax is ax_time and not finite.size:
            ax.text(0.5, 0.5, "no run learned", transform=ax.transAxes, ha="center", va="center", fontsize=11)
        if not annotate:
            continue
        for i in range(len(ys)):
            for j in range(len(xs)):
                v = values[i, j]
                text = "—" if not np.isfinite(v) else (f"{v:.2f}" if ax is ax_rate else f"{v:.0f}")
                if ax is ax_rate and np.isfinite(pred[i, j]):
                    text += f"\ntheory {pred[i, j]:.2f}"
                ax.text(
                    j, i, text, ha="center", va="center", fontsize=8,
                    bbox=dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.75, lw=0),
                )  # fmt: skip
    has_theory = np.isfinite(pred).any()
    ax_rate.set_title(
        "success rate: simulation" + ("\n(theory: fraction of inits with saddle projection > 0)" if has_theory else "")
    )
    ax_time.set_title("time to learn (token and attention accuracy ≥ 0.95)")
    pooled = f"; pooled over {', '.join(summary['pooled'])} and seeds" if summary["pooled"] else "; pooled over seeds"
    model = "" if summary.get("model", "free") == "free" else f" on the {summary['model']} model"
    fig.suptitle(f"sweep of {summary['task']}{model} ({summary['optimizer']}), {summary['runs']} runs{pooled}")
    return fig


def _nan(v):
    return np.nan if v is None else v


def _tick(v):
    return "" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))
