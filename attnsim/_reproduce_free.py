"""The paper's experiments on rung 0, the analytic model, each beside the theory's
prediction: copy (the hard permutation), multihead (the rescue), salient (agreement of
attention with KTIW), toy (the gated classifier) and text (a synthetic parallel corpus).

Every section is a function ``section(sizes, say) -> Section``: it trains what it needs
(`train_many`, parallel over runs), computes the theory's prediction of the same thing,
and returns its numbers, figures, checks (a claim of the paper with a pass/fail verdict
computed from the numbers) and its part of the report. Nothing here is hard-coded but
the experimental settings: every sentence of the report that says "agrees" is decided
by a number printed beside it.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from . import metrics, tasks, theory
from ._model import forward, init_params
from ._reproduce_common import (
    ADAM,
    BAD,
    GOOD,
    SGD_LR,
    SIM,
    THEORY,
    Section,
    Sizes,
    _agreement_table,
    _attention,
    _check,
    _curve_panel,
    _figure,
    _first_at_least,
    _fmt,
    _kendall_critical,
    _legend_below,
    _percent,
    _proxy_table,
    _range,
    _snapshot_params,
    _verdict,
    _wilson,
    rescue_kinds,
    salient_tables,
)
from ._train import train, train_many
from .arch.free import ModelConfig

VOCAB_SGD_STEPS = 300  # the SGD runs that time the attention against the vocabulary


def _reduced_half_time(vocab, length, lr, steps, a0=0.0, c0=0.0) -> float:
    """Steps of GD (step ``lr``) until the exact reduced copy dynamics put half the
    attention on the gold position."""
    tau = lr * np.arange(steps + 1, dtype=np.float64)
    r = theory.reduced_copy(vocab, length, tau, lr=lr, a0=a0, c0=c0)
    return _first_at_least(np.arange(steps + 1), r["gold_mass"], 0.5)


def section_copy(sizes: Sizes, say) -> Section:
    t0 = time.perf_counter()
    L = 40
    perm, easy = tasks.copy(40, L), tasks.copy(60, L)
    cfg_p, cfg_e = ModelConfig.for_task(perm), ModelConfig.for_task(easy)
    steps = sizes.adam_steps
    n = sizes.copy_seeds
    say(f"copy: permutation of 40 ({sizes.saddle_seeds} seeds) and 40 out of 60 ({n} seeds), Adam, {steps} steps")
    runs_p = train_many(cfg_p, perm, range(sizes.saddle_seeds), steps=steps, **ADAM, progress=say.bar)
    runs_e = train_many(cfg_e, easy, range(n), steps=steps, **ADAM, progress=say.bar)
    head_p, head_e = runs_p[:n], runs_e
    succ_p = np.array([r.success for r in head_p])
    succ_e = np.array([r.success for r in head_e])
    fail_frac = 1 - succ_p.mean()
    final = lambda rs, k: [float(r.final()[k]) for r in rs]  # noqa: E731

    # the saddle's verdict on every permutation init
    proj = np.array([theory.saddle_projection(cfg_p, r.initial_params) for r in runs_p])
    learned_all = np.array([r.success for r in runs_p])
    saddle_acc = float(np.mean((proj > 0) == learned_all))
    pred_rate = float(np.mean(proj > 0))

    # success rate against vocabulary size (Adam) and time to attend (SGD, the theory's clock)
    say(f"copy: vocabulary {sizes.vocabs[0]}…{sizes.vocabs[-1]} at length 40 (Adam and SGD)")
    vocab_rows = []
    for V in sizes.vocabs:
        task = tasks.copy(V, L)
        cfg = ModelConfig.for_task(task)
        k = sizes.vocab_seeds
        if V == 40 and k <= len(runs_p):
            adam = runs_p[:k]
        elif V == 60 and k <= len(runs_e):
            adam = runs_e[:k]
        else:
            adam = train_many(cfg, task, range(k), steps=steps, **ADAM, progress=say.bar)
        wins = int(sum(r.success for r in adam))
        hard = theory.hardness(task).hard
        if hard:
            p_theory = float(np.mean([theory.saddle_projection(cfg, r.initial_params) > 0 for r in adam]))
        else:
            p_theory = 1.0
        sgd_steps = VOCAB_SGD_STEPS
        sgd = train_many(
            cfg, task, range(sizes.sgd_seeds), optimizer="sgd", lr=SGD_LR, steps=sgd_steps, batch=128, scale=0.01,
            log_every=2, progress=say.bar,
        )  # fmt: skip
        sim_t = [_first_at_least(r.history["step"], r.history["gold_mass"], 0.5) for r in sgd]
        own_t = []
        for r in sgd:
            a0, c0 = theory.copy_coordinates(r.initial_params)
            own_t.append(_reduced_half_time(V, L, SGD_LR, sgd_steps, a0[0], c0[0]))
        vocab_rows.append(
            {
                "vocab": V, "adam_runs": k, "adam_learned": wins, "adam_success": wins / k,
                "theory_success": p_theory, "hard": hard, "sgd_time_to_attend": sim_t,
                "theory_time_to_attend_own_init": own_t,
                "theory_time_to_attend_zero_init": _reduced_half_time(V, L, SGD_LR, 2000) if V > L else math.inf,
            }
        )  # fmt: skip
    curve_V = np.arange(41, max(sizes.vocabs) + 1)
    curve_t = np.array([_reduced_half_time(V, L, SGD_LR, 2000) for V in curve_V])

    # the saddle's log(1/scale) law under SGD
    say(f"copy: permutation of 40 from init scales {', '.join(f'{s:g}' for s in sizes.scales)} (SGD)")
    scale_rows = []
    for sc in sizes.scales:
        rs = train_many(
            cfg_p, perm, range(sizes.scale_seeds), optimizer="sgd", lr=SGD_LR, steps=sizes.scale_steps, batch=128,
            scale=sc, log_every=2, progress=say.bar,
        )  # fmt: skip
        for s, r in enumerate(rs):
            start = r.initial_params  # the run's own init
            a0, c0 = theory.copy_coordinates(start)
            scale_rows.append(
                {
                    "scale": sc, "seed": s, "projection": theory.saddle_projection(cfg_p, start),
                    "time_to_attend": _first_at_least(r.history["step"], r.history["gold_mass"], 0.5),
                    "theory_time_to_attend": _reduced_half_time(40, L, SGD_LR, sizes.scale_steps, a0[0], c0[0]),
                }
            )  # fmt: skip
    law = _log_law(scale_rows, sizes)

    res = {
        "settings": {**ADAM, "steps": steps, "sgd_lr": SGD_LR, "length": L},
        "permutation_40": {
            "runs": n, "learned": int(succ_p.sum()), "failed_fraction": float(fail_frac),
            "time_to_learn": [r.time_to_learn for r in head_p], "final_acc": final(head_p, "acc"),
            "final_attn_acc": final(head_p, "attn_acc"),
        },
        "40_of_60": {
            "runs": n, "learned": int(succ_e.sum()), "time_to_learn": [r.time_to_learn for r in head_e],
            "final_acc": final(head_e, "acc"), "final_attn_acc": final(head_e, "attn_acc"),
        },
        "saddle_projection": {
            "runs": len(runs_p), "accuracy": saddle_acc, "predicted_success_rate": pred_rate,
            "simulated_success_rate": float(learned_all.mean()), "projections": proj.tolist(),
            "learned": learned_all.tolist(),
        },
        "vocab": vocab_rows,
        "vocab_theory_curve": {"vocab": curve_V.tolist(), "time_to_attend": curve_t.tolist()},
        "init_scale": {"runs": scale_rows, **law},
    }  # fmt: skip
    vt_err = _vocab_time_error(vocab_rows)
    res["vocab_time_max_relative_error"] = vt_err
    n_fail = n - int(succ_p.sum())
    fail_ci = _wilson(n_fail, n)
    about_half = fail_ci[0] <= 0.5 <= fail_ci[1]  # 0 or 20 of 20 fall outside, and so does 4 of 20
    acc_ci = _wilson(int(round(saddle_acc * len(runs_p))), len(runs_p))
    constant = max(learned_all.mean(), 1 - learned_all.mean())  # always guessing the commoner outcome
    checks = [
        _check(
            "the permutation of 40 fails in about half the seeds (the paper: 10 of 20)",
            f"{n_fail} of {n} [{fail_ci[0]:.2f}, {fail_ci[1]:.2f}]",
            "95 % interval of the failure rate contains 0.5",
            about_half,
        ),
        _check(
            "40 out of 60 learns in every seed (the paper: 20 of 20)",
            f"{int(succ_e.sum())} of {n}",
            f"{n} of {n}",
            succ_e.all(),
        ),  # fmt: skip
        _check(
            "saddle_projection's sign predicts the fate of a permutation init",
            f"{saddle_acc:.3f} [{acc_ci[0]:.2f}, {acc_ci[1]:.2f}]",
            f"95 % interval above the best constant guess, {constant:.2f}",
            acc_ci[0] > constant,
        ),  # fmt: skip
        _check(
            "time to attend grows by V²·ln 10/lr steps per decade of init scale",
            law["slope_ratio"],
            "simulated ÷ theory slope within 0.9–1.1",
            0.9 <= law["slope_ratio"] <= 1.1,
        ),  # fmt: skip
        _check(
            "reduced dynamics predict SGD's time to attend on copy(V, 40)",
            vt_err,
            "largest relative error ≤ 0.1",
            vt_err <= 0.1,
        ),  # fmt: skip
    ]

    figs = {
        "copy_learning_curves.png": _fig_copy_curves(head_p, head_e),
        "copy_attention.png": _fig_copy_attention(cfg_p, perm, head_p),
        "copy_vocab.png": _fig_copy_vocab(vocab_rows, curve_V, curve_t, steps, VOCAB_SGD_STEPS),
        "copy_init_scale.png": _fig_init_scale(scale_rows, law),
        "copy_saddle.png": _fig_saddle(proj, learned_all, saddle_acc),
    }
    ttl_p = [r.time_to_learn for r in head_p if r.success]
    ttl_e = [r.time_to_learn for r in head_e]
    stuck = [r for r in head_p if not r.success]
    stuck_acc = [r.final()["acc"] for r in stuck]
    stuck_attn = [r.final()["attn_acc"] for r in stuck]
    text = f"""
Adam (lr {ADAM["lr"]}, batch {ADAM["batch"]}, init scale {ADAM["scale"]}, {steps} steps, a fresh batch every step),
one head with a free translation table and positional attention, seeds 0–{n - 1}.

| distribution | runs | learned | failed | time to learn (steps, learned runs) | stuck runs: token acc / attention acc |
|---|---:|---:|---:|---|---|
| permutation of 40 | {n} | {int(succ_p.sum())} | {n - int(succ_p.sum())} ({fail_frac:.0%}) | {_range(ttl_p)} | {_range(stuck_acc, 2)} / {_range(stuck_attn, 2)} |
| 40 out of 60 | {n} | {int(succ_e.sum())} | {n - int(succ_e.sum())} | {_range(ttl_e)} | — |

The paper (20 seeds, its LSTM): permutation 10 of 20 learned, 40 out of 60 20 of 20. Here the permutation copy fails in
{fail_frac:.0%} of seeds (95 % interval {fail_ci[0]:.2f}–{fail_ci[1]:.2f}) and 40 out of 60 learns in {int(succ_e.sum())} of {n}: this {_verdict(about_half and succ_e.all())}.
Stuck runs reach token accuracy {_range(stuck_acc, 2)} with attention accuracy {_range(stuck_attn, 2)}: the head
attends away from the gold position and copies by elimination (docs/design.md §3.5), so success counts attention too.

![learning curves](copy_learning_curves.png)

*Token and attention accuracy of every run against the training step.* On the permutation {int(succ_p.sum())} runs learn
to attend (by step {_range(ttl_p)}) and {len(stuck)} never do within {steps} steps; on 40-of-60 {int(succ_e.sum())} of
{n} learn (by step {_range(ttl_e)}). The paper's figure shows a permutation split between the two and 40 out of 60 learning.

![attention](copy_attention.png)

*Mean attention (target step × source position, log scale) of a learned and a stuck permutation run.* Mass on the gold position
(the diagonal) at the end: {_range([r.final()["gold_mass"] for r in head_p if r.success], 3)} in the learned runs,
{_range([r.final()["gold_mass"] for r in stuck], 3)} in the stuck ones, which have moved attention off the diagonal —
attention accuracy {_range(stuck_attn, 2)}, as in the paper's failed runs.

**Past the paper: vocabulary size.** Success rate under Adam against the vocabulary at length 40, and the time to put
half the attention on the gold position under SGD (lr {SGD_LR:g}, batch 128, scale 0.01), beside the theory: the
saddle's predicted success rate for V = 40 (the fraction of inits with projection > 0) and 1 above it (G ≠ 0); the
exact reduced dynamics for the time.

{_vocab_table(vocab_rows)}

![vocabulary](copy_vocab.png)

*Success rate (left) and time to attend (right) against vocabulary size; a run that does not attend within {VOCAB_SGD_STEPS} SGD steps sits on the line "never".* Runs fail under Adam
{_where_fail(vocab_rows)} and nowhere else; the theory says only V = L
is hard (the stage-1 signal G is non-zero as soon as V > L). The reduced dynamics predict the SGD
time to attend within {vt_err:.1%} (largest relative error over the runs that attended); from the zero init the time
diverges as V → 40 (the saddle), and a random init escapes it in finite time.

**Past the paper: init scale.** The permutation copy must escape a saddle; the theory says its time grows like
log(1/scale), by ln 10·V²/lr = {law["theory_slope"]:.1f} steps per decade at lr {SGD_LR:g}.

![init scale](copy_init_scale.png)

*Time to attend against init scale (SGD, seeds with a positive projection; those with a negative one never attend).*
The fitted slope is {law["sim_slope"]:.1f} steps per decade ({law["slope_ratio"]:.3f} × the theory's); the reduced
dynamics from each init's own coordinates predict every run within {law["own_max_rel_error"]:.1%}.

**Past the paper: which inits learn.** `theory.saddle_projection` of the init (its component on the saddle's unstable
direction) predicts the fate of {saddle_acc:.1%} of {len(runs_p)} permutation runs (Adam); it predicts a success rate
of {pred_rate:.2f} against {learned_all.mean():.2f} simulated.

![saddle](copy_saddle.png)

*Each init's projection on the unstable direction, by outcome.* Runs on the positive side learn; misses sit near 0.
"""
    return Section("copy", "Copying: the hard distribution", res, figs, checks, text, time.perf_counter() - t0)


def _where_fail(vocab_rows) -> str:
    """The vocabularies where some Adam run failed ("at V = 40, 44"), or "at no vocabulary"."""
    failing = [str(r["vocab"]) for r in vocab_rows if r["adam_learned"] < r["adam_runs"]]
    return f"at V = {', '.join(failing)}" if failing else "at no vocabulary"


def _log_law(rows, sizes) -> dict:
    """Least-squares slope of time to attend against log10(1/scale), per seed (seeds
    that attended at every scale), against the theory's ln 10·V²/lr."""
    theory_slope = math.log(10) * 40**2 / SGD_LR
    slopes, own_err = [], []
    for s in range(sizes.scale_seeds):
        pts = [(r["scale"], r["time_to_attend"]) for r in rows if r["seed"] == s]
        if all(math.isfinite(t) for _, t in pts) and len(pts) >= 2:
            xs = -np.log10([p[0] for p in pts])
            slopes.append(float(np.polyfit(xs, [p[1] for p in pts], 1)[0]))
    for r in rows:
        if math.isfinite(r["time_to_attend"]) and math.isfinite(r["theory_time_to_attend"]):
            own_err.append(abs(r["theory_time_to_attend"] - r["time_to_attend"]) / r["time_to_attend"])
    sim = float(np.median(slopes)) if slopes else float("nan")
    return {
        "theory_slope": theory_slope,
        "sim_slope": sim,
        "slope_ratio": sim / theory_slope,
        "seeds_fitted": len(slopes),
        "own_max_rel_error": max(own_err) if own_err else float("nan"),
    }


def _vocab_time_error(rows) -> float:
    errs = []
    for r in rows:
        for sim, th in zip(r["sgd_time_to_attend"], r["theory_time_to_attend_own_init"], strict=True):
            if math.isfinite(sim) and math.isfinite(th):
                errs.append(abs(th - sim) / sim)
            elif math.isfinite(sim) != math.isfinite(th):
                errs.append(math.inf)
    return max(errs) if errs else float("nan")


def _vocab_table(rows) -> str:
    out = [
        "| vocab | Adam learned | theory success | SGD time to attend (steps) | reduced dynamics, own init | zero init |",
        "|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        sim = ", ".join(_fmt(t) for t in r["sgd_time_to_attend"])
        own = ", ".join(_fmt(t) for t in r["theory_time_to_attend_own_init"])
        out.append(
            f"| {r['vocab']} | {r['adam_learned']}/{r['adam_runs']} | {r['theory_success']:.2f} | {sim} | {own} | "
            f"{_fmt(r['theory_time_to_attend_zero_init'])} |"
        )
    return "\n".join(out)


def _fig_copy_curves(head_p, head_e):
    fig, ax = _figure(11, 6.5, 2, 2)
    for row, (rs, name) in enumerate([(head_p, "permutation of 40"), (head_e, "40 out of 60")]):
        for col, (key, label) in enumerate([("acc", "token accuracy"), ("attn_acc", "attention accuracy")]):
            _curve_panel(ax[row, col], rs, key, f"{name}: {label}", f"{label} (fraction)", "runs")
    fig.suptitle(f"Copying, {len(head_p)} seeds each: learning curves (simulation)")
    _legend_below(fig)
    return fig


def _fig_copy_attention(cfg, task, runs):
    learned = next((r for r in runs if r.success), None)
    stuck = next((r for r in runs if not r.success), None)
    picks = [(r, k) for r, k in ((learned, "learned"), (stuck, "stuck")) if r is not None]
    fig, ax = _figure(5.2 * len(picks), 4.6, 1, len(picks))
    from matplotlib.colors import LogNorm

    x, _, _ = task.sample(np.random.default_rng(2**20), 256)
    maps = [forward(cfg, r.params, x)[1][0].mean(axis=0) for r, _ in picks]
    # a log scale: a stuck head's gold mass (1e-4) is far below uniform (1/L), which a linear one hides
    norm = LogNorm(vmin=max(min(float(m.min()) for m in maps), 1e-8), vmax=1)
    im = None
    for j, ((r, kind), alpha) in enumerate(zip(picks, maps, strict=True)):
        a = ax[0, j]
        im = a.imshow(alpha, cmap="viridis", norm=norm, origin="upper", aspect="auto")
        f = r.final()
        gold = float(np.mean(np.diag(alpha)))
        a.set_title(f"{kind} run (seed {r.settings['seed']}): attention acc {f['attn_acc']:.2f}, token acc "
                    f"{f['acc']:.2f}\nmean weight on gold (the diagonal) {gold:.2g}; uniform 1/{task.src_len}",
                    fontsize=9)  # fmt: skip
        a.set_xlabel("source position l")
        a.set_ylabel("target step t")
    cb = fig.colorbar(im, ax=ax[0, :], label="mean attention weight α[t, l] (log scale)")
    cb.ax.axhline(1 / task.src_len, color="w", lw=1.5)  # uniform attention, for scale
    cb.ax.text(-0.15, 1 / task.src_len, f"1/{task.src_len}", ha="right", va="center", fontsize=8,
               transform=cb.ax.get_yaxis_transform())  # fmt: skip
    fig.suptitle("Permutation of 40: where a learned and a stuck head attend (256 held-out inputs)")
    return fig


def _plot_rate(a, x, learned, runs, steps) -> None:
    """Simulated success rates with their 95 % Wilson intervals."""
    rate = np.array(learned) / np.array(runs)
    ci = np.array([_wilson(k, n) for k, n in zip(learned, runs, strict=True)])
    a.errorbar(x, rate, yerr=[rate - ci[:, 0], ci[:, 1] - rate], fmt="o-", color=SIM, capsize=3,
               label=f"simulation (Adam, {steps} steps; 95 % interval)")  # fmt: skip


def _fig_copy_vocab(rows, curve_V, curve_t, steps, sgd_steps):
    fig, ax = _figure(12, 4.6, 1, 2)
    a = ax[0, 0]
    V = np.array([r["vocab"] for r in rows])
    _plot_rate(a, V, [r["adam_learned"] for r in rows], [r["adam_runs"] for r in rows], steps)
    a.plot(V, [r["theory_success"] for r in rows], "s--", color=THEORY, mfc="none", ms=8,
           label="theory: saddle projection > 0 (V = L), G ≠ 0 (V > L)")  # fmt: skip
    a.set_ylim(-0.03, 1.08)
    a.set_xlabel("vocabulary size V (length L = 40)")
    a.set_ylabel("success rate (fraction of seeds)")
    a.set_title("Success rate against vocabulary size")
    a.legend(loc="lower right", fontsize=8)
    a.grid(alpha=0.3)
    a = ax[0, 1]
    a.plot(curve_V, curve_t, "--", color=THEORY, label="theory: reduced dynamics, zero init")
    times = [(np.array(r["sgd_time_to_attend"], float), np.array(r["theory_time_to_attend_own_init"], float))
             for r in rows]  # fmt: skip
    finite = [t for pair in times for ts in pair for t in ts if np.isfinite(t)] + [t for t in curve_t if np.isfinite(t)]
    never = max(finite) * 1.1  # where a run that never attends is drawn (None or ∞: not within the steps)
    for i, (r, (sim, own)) in enumerate(zip(rows, times, strict=True)):
        jitter = r["vocab"] + np.linspace(-0.6, 0.6, len(sim))
        a.plot(jitter, sim, "o", color=SIM, ms=6, label="simulation (SGD, scale 0.01)" if i == 0 else None)
        a.plot(
            jitter,
            own,
            "x",
            color=THEORY,
            ms=7,
            label="theory: reduced dynamics, each run's own init" if i == 0 else None,
        )
        a.plot(jitter[~np.isfinite(sim)], np.full((~np.isfinite(sim)).sum(), never), "^", color=SIM, mfc="none",
               ms=7, label=f"simulation: never within {sgd_steps} steps" if i == 0 else None)  # fmt: skip
        a.plot(jitter[~np.isfinite(own)], np.full((~np.isfinite(own)).sum(), never), "x", color=THEORY, ms=7)
    a.axhline(never, color="0.8", lw=0.8)
    ticks = [t for t in a.get_yticks() if a.get_ylim()[0] <= t < never * 0.95]
    a.set_yticks(ticks + [never], [f"{t:g}" for t in ticks] + ["never"])
    a.axvline(40, color="0.5", ls=":", lw=1)
    a.text(40.5, a.get_ylim()[1] * 0.9, "V = L: saddle", fontsize=8, color="0.3")
    a.set_xlabel("vocabulary size V (length L = 40)")
    a.set_ylabel(f"time to attend (SGD steps at lr {SGD_LR:g}; gold mass ≥ 0.5)")
    a.set_title("Time to attend against vocabulary size")
    a.legend(loc="center right", fontsize=8)
    a.grid(alpha=0.3)
    fig.suptitle("copy(V, 40): simulation beside theory")
    return fig


def _fig_init_scale(rows, law):
    fig, ax = _figure(7.5, 5)
    a = ax[0, 0]
    ok = [r for r in rows if math.isfinite(r["time_to_attend"])]
    xs = np.array([r["scale"] for r in ok])
    jit = xs * np.exp(np.array([0.04 * (r["seed"] - 1.5) for r in ok]))
    a.plot(jit, [r["time_to_attend"] for r in ok], "o", color=SIM, label="simulation (SGD)")
    a.plot(jit, [r["theory_time_to_attend"] for r in ok], "x", color=THEORY, ms=8,
           label="theory: reduced dynamics from each init")  # fmt: skip
    if ok:
        grid = np.logspace(np.log10(min(xs)), np.log10(max(xs)), 20)
        mid = np.median([r["time_to_attend"] for r in ok])
        x_mid = 10 ** np.median(np.log10(xs))
        a.plot(grid, mid - law["theory_slope"] * np.log10(grid / x_mid), "--", color="0.3",
               label=f"log(1/scale) law: {law['theory_slope']:.0f} steps per decade")  # fmt: skip
    a.set_xscale("log")
    a.set_xlabel("init scale (standard deviation of every parameter)")
    a.set_ylabel(f"time to attend (SGD steps at lr {SGD_LR:g})")
    n_never = sum(1 for r in rows if not math.isfinite(r["time_to_attend"]))
    a.set_title(f"Permutation of 40: escaping the saddle ({n_never} runs with projection < 0 never attend)")
    a.legend(fontsize=8)
    a.grid(alpha=0.3, which="both")
    return fig


def _fig_saddle(proj, learned, acc):
    fig, ax = _figure(8, 3.6)
    a = ax[0, 0]
    rng = np.random.default_rng(0)
    for flag, color, name in ((True, GOOD, "learned"), (False, BAD, "stuck")):
        sel = learned == flag
        a.plot(proj[sel], (1.0 if flag else 0.0) + rng.uniform(-0.15, 0.15, sel.sum()), "o", color=color,
               alpha=0.7, label=f"{name} ({sel.sum()} runs)")  # fmt: skip
    a.axvline(0, color=THEORY, ls="--", label="theory: learns iff projection > 0")
    a.set_yticks([0, 1], ["stuck", "learned"])
    a.set_xlabel("projection of the init on the saddle's unstable direction (parameter units)")
    a.set_ylabel("outcome under Adam")
    a.set_title(f"saddle_projection predicts {acc:.1%} of permutation-40 runs")
    a.legend(fontsize=8, loc="center left")
    a.grid(alpha=0.3)
    return fig


BASE_SEED = 10_000  # the shared base init (the output bias)


DATA_SEEDS = (0, 1, 2)


def _compose(heads, base_b):
    """A model of the given single-head (U, S) pairs, heads averaged, with the base bias."""
    return {
        "U": np.concatenate([h["U"] for h in heads]),
        "S": np.concatenate([h["S"] for h in heads]),
        "b": base_b.copy(),
    }


def section_multihead(sizes: Sizes, say) -> Section:
    t0 = time.perf_counter()
    task = tasks.copy(40, 40)
    cfg1 = ModelConfig.for_task(task)
    steps = sizes.adam_steps
    kw = dict(optimizer="adam", lr=ADAM["lr"], batch=ADAM["batch"], steps=steps)
    base_b = init_params(cfg1, BASE_SEED, ADAM["scale"])["b"]
    cands = []
    for k in range(sizes.candidates):
        p = init_params(cfg1, 1 + k, ADAM["scale"])
        cands.append({"U": p["U"], "S": p["S"]})
    proj = np.array([theory.saddle_projection(cfg1, {**c, "b": base_b}) for c in cands])

    say(f"multihead: screening {sizes.candidates} heads × {len(DATA_SEEDS)} data seeds (single-head runs)")
    starts = [_compose([c], base_b) for c in cands for _ in DATA_SEEDS]
    seeds = [d for _ in cands for d in DATA_SEEDS]
    screen = train_many(cfg1, task, seeds, params=starts, progress=say.bar, **kw)
    nd = len(DATA_SEEDS)
    ok = np.array([r.success for r in screen]).reshape(-1, nd)
    attn = np.array([r.final()["attn_acc"] for r in screen]).reshape(-1, nd)
    acc = np.array([r.final()["acc"] for r in screen]).reshape(-1, nd)
    good = np.flatnonzero(ok.all(axis=1))
    bad = np.flatnonzero((attn < 0.6).all(axis=1))
    res = {
        "settings": {**kw, "scale": ADAM["scale"], "base_seed": BASE_SEED, "data_seeds": list(DATA_SEEDS)},
        "screening": {
            "candidates": sizes.candidates, "good": good.tolist(), "bad": bad.tolist(),
            "success": ok.tolist(), "final_attn_acc": attn.tolist(), "final_acc": acc.tolist(),
            "projection": proj.tolist(),
            "good_with_positive_projection": int(np.sum(proj[good] > 0)),
            "bad_with_negative_projection": int(np.sum(proj[bad] < 0)),
        },
    }  # fmt: skip
    rng = np.random.default_rng(777)
    cfg8 = ModelConfig.for_task(task, heads=8)
    kinds = rescue_kinds(bad, good, sizes.candidates, sizes.combos, lambda kind: rng)  # one stream, in turn
    say(f"multihead: 8-head models, {sizes.combos} of each of {len(kinds)} kinds")
    eight = {}
    for name, combos in kinds.items():
        # logged every 2 steps: these models learn within 10-20 steps, which 10-step logs leave as one segment
        runs = train_many(
            cfg8, task, range(len(combos)), params=[_compose([cands[h] for h in c], base_b) for c in combos],
            progress=say.bar, log_every=2, **kw,
        )  # fmt: skip
        eight[name] = {
            "heads": [[int(h) for h in c] for c in combos],
            "learned": int(sum(r.success for r in runs)),
            "runs": len(runs),
            "success_rate": float(np.mean([r.success for r in runs])),
            "predicted_by_projection": float(np.mean([proj[c].max() > 0 for c in combos])),
            "_runs": runs,
        }
    # success against the number of heads: random heads from the same pool
    say(f"multihead: success against the number of heads 1…8 ({sizes.heads_seeds} models each)")
    by_heads = []
    for H in range(1, 9):
        if H == 1:
            runs = screen[::nd]  # each candidate alone, data seed 0
            combos = [[k] for k in range(sizes.candidates)]
        elif H == 8:
            runs, combos = eight["8 random"]["_runs"], kinds["8 random"]
        else:
            combos = [list(rng.choice(sizes.candidates, H, replace=False)) for _ in range(sizes.heads_seeds)]
            cfgH = ModelConfig.for_task(task, heads=H)
            runs = train_many(
                cfgH, task, range(len(combos)), params=[_compose([cands[h] for h in c], base_b) for c in combos],
                progress=say.bar, **kw,
            )  # fmt: skip
        wins = int(sum(r.success for r in runs))
        by_heads.append(
            {
                "heads": H, "runs": len(runs), "learned": wins, "success_rate": wins / len(runs),
                "predicted_by_projection": float(np.mean([proj[c].max() > 0 for c in combos])),
                "predicted_independent": 1 - (1 - float(np.mean(proj > 0))) ** H,
                "projection_agrees": float(np.mean([(proj[c].max() > 0) == r.success for c, r in zip(combos, runs, strict=True)])),
            }
        )  # fmt: skip
    res["eight_heads"] = {k: {kk: vv for kk, vv in v.items() if kk != "_runs"} for k, v in eight.items()}
    res["by_heads"] = by_heads

    r8b = eight.get("8 bad", {}).get("success_rate", float("nan"))
    r71 = eight.get("7 bad + 1 good", {}).get("success_rate", float("nan"))
    both = "8 bad" in eight and "7 bad + 1 good" in eight
    rescue = (r71 - r8b) if both else float("nan")
    ci8 = _wilson(eight["8 bad"]["learned"], eight["8 bad"]["runs"]) if both else (math.nan, math.nan)
    ci71 = _wilson(eight["7 bad + 1 good"]["learned"], eight["7 bad + 1 good"]["runs"]) if both else (math.nan,) * 2
    apart = bool(both and ci71[0] > ci8[1])
    res["rescue"] = {"difference": rescue, "interval_8_bad": ci8, "interval_7_bad_1_good": ci71, "apart": apart}
    p_single = by_heads[0]["success_rate"]
    p_eight = by_heads[-1]["success_rate"]
    ci_single = _wilson(by_heads[0]["learned"], by_heads[0]["runs"])
    ci_eight = _wilson(by_heads[-1]["learned"], by_heads[-1]["runs"])
    agree_h = float(np.mean([b["projection_agrees"] for b in by_heads]))
    checks = [
        _check(
            "screening finds ≥ 1 good and ≥ 8 bad heads",
            f"{len(good)} good, {len(bad)} bad",
            "≥ 1, ≥ 8",
            len(good) >= 1 and len(bad) >= 8,
        ),  # fmt: skip
        _check(
            "7 bad + 1 good learns far more often than 8 bad (95 % intervals)",
            f"{r71:.2f} [{ci71[0]:.2f}, {ci71[1]:.2f}] vs {r8b:.2f} [{ci8[0]:.2f}, {ci8[1]:.2f}]",
            "difference ≥ 0.3, intervals apart",
            both and rescue >= 0.3 and apart,
        ),  # fmt: skip
        _check(
            "more heads learn more often: 8 random heads against 1 head (95 % intervals)",
            f"{p_eight:.2f} [{ci_eight[0]:.2f}, {ci_eight[1]:.2f}] vs {p_single:.2f} [{ci_single[0]:.2f}, {ci_single[1]:.2f}]",
            "intervals apart",
            ci_eight[0] > ci_single[1],
        ),
    ]
    figs = {
        "multihead_curves.png": _fig_multihead_curves(eight),
        "multihead_heads.png": _fig_heads(by_heads, steps),
    }
    rows = "\n".join(
        f"| {k} | {v['learned']}/{v['runs']} ({v['success_rate']:.0%}) | {v['predicted_by_projection']:.0%} |"
        for k, v in eight.items()
    )
    text = f"""
The paper's protocol in the analytic model, on the permutation of 40 (Adam, {steps} steps). {sizes.candidates}
candidate heads (U, S) are drawn from seeds 1–{sizes.candidates}; every model shares the base init's output bias (seed
{BASE_SEED}). Each head is screened by single-head runs from that init on data seeds {", ".join(map(str, DATA_SEEDS))}:
**good** if the run learns (token *and* attention accuracy ≥ 0.95) in all three, **bad** if its attention accuracy
is < 0.6 in all three. The paper screens by token accuracy alone; here a stuck head still copies by elimination with
token accuracy ≈ 1 (see the copy section), so attention accuracy is what separates good from bad.

Screening: **{len(good)} good**, **{len(bad)} bad**, {sizes.candidates - len(good) - len(bad)} neither. The saddle's
sign agrees: {res["screening"]["good_with_positive_projection"]} of the good heads have a positive projection and
{res["screening"]["bad_with_negative_projection"]} of the bad a negative one.

| 8-head model ({sizes.combos} combinations, data seeds 0–{sizes.combos - 1}) | learned | predicted (some head's projection > 0) |
|---|---:|---:|
{rows}

One good head among seven bad ones makes the model learn in {r71:.0%} of combinations (95 % interval
{ci71[0]:.2f}–{ci71[1]:.2f}) against {r8b:.0%} for eight bad heads ({ci8[0]:.2f}–{ci8[1]:.2f}): this
{_verdict(both and rescue >= 0.3 and apart)} ("one good head is enough"). {_bad_sentence(eight, proj, bad)}

![multi-head learning curves](multihead_curves.png)

*Attention accuracy of the best head against the training step, for every 8-head model.* {_eight_sentence(eight)}

**Past the paper: how many heads.** Models of H random heads from the same pool ({sizes.heads_seeds} per H; H = 1 is
each candidate alone, H = 8 the random combinations above), beside two predictions: the fraction of those models with
some head's saddle projection > 0, and 1 − (1 − p)^H for independent heads, with p the fraction of single heads with
positive projection ({float(np.mean(proj > 0)):.2f}).

{_heads_table(by_heads)}

![heads](multihead_heads.png)

*Success probability against the number of heads.* Success rises from {p_single:.0%} with one head to {p_eight:.0%}
with eight; the projection-based prediction matches the outcome of {agree_h:.0%} of the models (averaged over H).
"""
    return Section("multihead", "Several heads: the rescue", res, figs, checks, text, time.perf_counter() - t0)


def _bad_sentence(eight, proj, bad) -> str:
    if "8 bad" not in eight:
        return "There were fewer than 8 bad heads, so no 8-bad model was trained."
    v = eight["8 bad"]
    return (
        f"Eight bad heads together still learn in {v['success_rate']:.0%} of combinations, more than the paper's; the "
        f"heads' saddle projections predict {v['predicted_by_projection']:.0%}. Bad heads sit close to the saddle "
        f"(projections {_range(proj[bad].tolist(), 4)}), and which side a model of eight of them falls to depends "
        "on more than each head's own projection: Adam couples the heads through their shared output, which the "
        "per-head theory leaves out."
    )


def _eight_sentence(eight) -> str:
    parts = []
    for name, v in eight.items():
        times = [r.time_to_learn for r in v["_runs"] if r.success]
        when = f" (token accuracy 0.95 by step {_range(times)})" if times else ""
        parts.append(f"{name}: {v['learned']} of {v['runs']} learn{when}")
    return "; ".join(parts) + "."


def _heads_table(rows) -> str:
    out = ["| heads | learned | simulated | predicted by projections | independent heads | projection right |",
           "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for b in rows:
        out.append(
            f"| {b['heads']} | {b['learned']}/{b['runs']} | {b['success_rate']:.2f} | {b['predicted_by_projection']:.2f} "
            f"| {b['predicted_independent']:.2f} | {b['projection_agrees']:.0%} |"
        )
    return "\n".join(out)


def _fig_multihead_curves(eight):
    fig, ax = _figure(5 * len(eight), 4.2, 1, len(eight))
    for j, (name, v) in enumerate(eight.items()):
        title = f"{name}: {v['learned']}/{v['runs']} learned"
        _curve_panel(ax[0, j], v["_runs"], "attn_acc", title, "attention accuracy of the best head", "models")
    fig.suptitle("8-head models on the permutation of 40 (simulation)")
    _legend_below(fig)
    return fig


def _fig_heads(rows, steps):
    fig, ax = _figure(7.5, 4.8)
    a = ax[0, 0]
    H = np.array([b["heads"] for b in rows])
    _plot_rate(a, H, [b["learned"] for b in rows], [b["runs"] for b in rows], steps)
    a.plot(H, [b["predicted_by_projection"] for b in rows], "s--", color=THEORY, mfc="none", ms=8,
           label="theory: some head's projection > 0")  # fmt: skip
    a.plot(H, [b["predicted_independent"] for b in rows], ":", color="0.3", label="theory: 1 − (1 − p)^H")
    a.set_ylim(0, 1.05)
    a.set_xlabel("number of heads H (outputs averaged)")
    a.set_ylabel("success probability (fraction of models)")
    a.set_title("Permutation of 40: success against the number of heads")
    a.legend(fontsize=8, loc="lower right")
    a.grid(alpha=0.3)
    return fig


EVAL_SEED = 2**20  # held-out inputs for every measurement


def _salient_task(name, task, cfg, uniform_cfg, train_kw, say) -> dict:
    """Normal and uniform-attention runs of ``task``; the paper's agreement table and ξ."""
    say(f"salient: {task!r}, a normal and a uniform-attention run")
    normal = train(cfg, task, snapshots=True, **train_kw)
    uniform = train(uniform_cfg, task, **train_kw)
    x, y, gold = task.sample(np.random.default_rng(EVAL_SEED), 1000)
    start = {"U": uniform.params["U"], "b": uniform.params["b"]}  # stage 1 done, attention still uniform
    start.update({k: np.zeros_like(v) for k, v in normal.params.items() if k in ("S", "A")})
    K_px = _proxy_table(task)
    scores = {
        "alpha": _attention(cfg, normal.params, x),
        "beta": metrics.ktiw_probe(cfg, normal.params, x, y),
        "beta_uf": metrics.ktiw_probe(uniform_cfg, uniform.params, x, y),
        "beta_px": K_px[y[:, :, None], x[:, None, :]],
        "delta": metrics.saliency(cfg, start, x, y),
    }
    rows_with_gold = gold >= 0  # classification: the positive examples (the only ones with a salient word)
    sel = {k: v[rows_with_gold] for k, v in scores.items()}
    ckpts = [_snapshot_params(normal, k) for k in range(len(normal.snapshots["step"]))]
    table, xi, perf, agree = salient_tables(cfg, sel, ckpts, x, y, rows_with_gold)
    return {
        "task": task.spec(),
        "attention": cfg.attention,
        "train": {k: v for k, v in train_kw.items() if k != "progress"},
        "normal_final": normal.final(),
        "uniform_final": uniform.final(),
        "rows": int(rows_with_gold.sum()),
        "agreement": table,
        "xi": xi,
        "xi_star": float(perf.max()),
        "checkpoints": {
            "step": normal.snapshots["step"].tolist(),
            "accuracy": perf.tolist(),
            "agreement_with_final": agree.tolist(),
        },  # fmt: skip
        "_normal": normal,
    }


def _keyword_timing(task, run, lr) -> dict:
    """Per keyword: the first step where the attention on it (at its position, in the
    held-out positives) reaches 0.5, beside the two-stage prediction."""
    cfg = run.cfg
    x, _, gold = task.sample(np.random.default_rng(EVAL_SEED), 4000)
    pos = np.flatnonzero(gold[:, 0] >= 0)
    word = x[pos, gold[pos, 0]]
    k = task.keywords
    steps = run.snapshots["step"]
    mass = np.empty((len(steps), k))
    for j in range(len(steps)):
        alpha = _attention(cfg, _snapshot_params(run, j), x[pos])[:, 0, :]
        m = alpha[np.arange(pos.size), gold[pos, 0]]
        mass[j] = [m[word == i].mean() if np.any(word == i) else np.nan for i in range(k)]
    sim = [_first_at_least(steps, mass[:, i], 0.5) for i in range(k)]
    N = theory.stage2_content_rate(task)[0]
    gap = N[:k] - N[k:].mean()  # each keyword's rate above the filler words'
    T, L = task.tgt_len, task.src_len
    # two-stage: A_i − A_filler = (τ²/2)·gap/(T·L) reaches log(L − 1) (half the mass on it)
    pred = [math.sqrt(2 * T * L * math.log(L - 1) / g) / lr if g > 0 else math.inf for g in gap]
    freq = task.keyword_p.tolist()
    finite = [i for i in range(k) if math.isfinite(sim[i]) and math.isfinite(pred[i])]
    tau_order = metrics.kendall_tau(np.array([sim[i] for i in finite]), np.array([pred[i] for i in finite]))
    tau_freq = metrics.kendall_tau(-np.array([sim[i] for i in finite]), np.array([freq[i] for i in finite]))
    return {
        "frequency": freq, "stage2_rate_gap": gap.tolist(), "simulated_time": sim, "predicted_time": pred,
        "kendall_sim_vs_pred": tau_order, "kendall_sooner_vs_frequency": tau_freq,
        "pred_over_sim": [pred[i] / sim[i] for i in finite],
    }  # fmt: skip


def section_salient(sizes: Sizes, say) -> Section:
    t0 = time.perf_counter()
    tr = tasks.translate(40, 40, 20, zipf=1.0, noise=0.05)
    kw_task = tasks.keyword(40, 20, keywords=8, zipf=1.0)
    steps = 300 if not sizes.full else 600
    tr_kw = dict(optimizer="adam", lr=0.05, steps=steps, batch=128, seed=0, scale=0.01, log_every=5)
    kw_lr = 5.0
    kw_kw = dict(optimizer="sgd", lr=kw_lr, steps=2 * steps, batch=128, seed=0, scale=0.01, log_every=2)
    blocks = {
        "translate": _salient_task(
            "translate", tr, ModelConfig.for_task(tr), ModelConfig.for_task(tr, attention="uniform"), tr_kw, say
        ),  # fmt: skip
        "keyword": _salient_task(
            "keyword",
            kw_task,
            ModelConfig.for_task(kw_task),
            ModelConfig.for_task(kw_task, attention="uniform"),
            kw_kw,
            say,
        ),  # fmt: skip
    }
    timing = _keyword_timing(kw_task, blocks["keyword"]["_normal"], kw_lr)
    res = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in blocks.items()}
    res["keyword_timing"] = timing

    def apart(r, rows):  # A's 95 % interval above chance's, over the rows it is a fraction of
        return _wilson(round(r["top5_match"] * rows), rows)[0] > _wilson(round(r["chance_top5"] * rows), rows)[1]

    above = [apart(r, b["rows"]) for b in blocks.values() for r in b["agreement"]]
    all_above = all(above)
    n_kw = len(timing["pred_over_sim"])  # keywords attended in the run and by the theory
    tau_crit = _kendall_critical(n_kw)
    tau_below = [f"{name} {r['pair']}" for name, b in blocks.items() for r in b["agreement"]
                 if not r["kendall_tau"] > r["chance_kendall"]]  # fmt: skip
    res["kendall_not_above_chance"] = tau_below
    checks = [
        _check(
            "every agreement A (top-5 % match) is above its chance baseline Â",
            f"{sum(above)} of {len(above)}",
            "all: the 95 % intervals of A and Â apart",
            all_above,
        ),  # fmt: skip
        _check(
            "frequent keywords are attended sooner (Kendall τ of frequency and earliness)",
            timing["kendall_sooner_vs_frequency"],
            f"≥ {tau_crit:.2f}: a random order of {n_kw} keywords reaches it with probability < 1 %",
            timing["kendall_sooner_vs_frequency"] >= tau_crit,
        ),  # fmt: skip
        _check(
            "the stage-2 rate orders the keywords as the simulation does (Kendall τ)",
            timing["kendall_sim_vs_pred"],
            f"≥ {tau_crit:.2f} (the same 1 % level)",
            timing["kendall_sim_vs_pred"] >= tau_crit,
        ),  # fmt: skip
    ]
    figs = {"salient_keywords.png": _fig_keywords(timing, kw_lr), "salient_agreement.png": _fig_agreement(blocks)}
    ratio = timing["pred_over_sim"]
    text = f"""
Two tasks. **translate**: {tr!r} — Zipf-distributed source words, a fixed word mapping, 5 % noise, positional
attention, Adam (lr 0.05, {steps} steps). **keyword**: {kw_task!r} — label 1 iff one of 8 keywords occurs, keywords
Zipf-distributed, content attention, SGD (lr {kw_lr:g}, {2 * steps} steps: the theory's clock). For each: a
normal run (α, and its own KTIW probe β), a run with attention frozen uniform (β^uf), a bag-of-words proxy from
co-occurrence counts of 20 000 sampled pairs alone (β^px), and the saliency Δ: the gradient on the attention logits
at the end of stage 1 (the uniform run's U and b, attention still uniform) — where the first step of attention
learning moves it. All measured on 1000 held-out inputs; for keyword, on the positive ones (the only ones with a
word to find).

{_agreement_table(blocks)}

Top-5 % match: how often the position u ranks first is within the top 5 % (here the top 1 of 20) of v. Â: the same
against v shuffled within each row (chance). ξ(X): the accuracy of the normal run at its first checkpoint whose
attention agreed with its final attention as well as X does; ξ*: its best accuracy. Every agreement is above its
chance baseline: this {_verdict(all_above)} (the paper: top-5 % match ≈ 0.3–0.5 against Â ≈ 0.05–0.08 on real data;
the analytic model's synthetic tasks agree more strongly, since one word per target step carries all the signal).

{_kendall_sentence(blocks)}

{_xi_sentence(blocks)}

![agreement](salient_agreement.png)

*The agreement table as bars, beside chance.*

**When each word is attended.** For every keyword, the first step at which half the attention (on the held-out
positives holding it) sits on it, against its frequency and against its stage-2 rate N (above the filler words').
The two-stage theory predicts τ = sqrt(2·T·L·log(L − 1)/ΔN).

![keywords](salient_keywords.png)

*Frequent keywords are attended first.* Kendall τ between earliness and frequency: {timing["kendall_sooner_vs_frequency"]:.2f};
between the simulated and predicted times: {timing["kendall_sim_vs_pred"]:.2f}. The theory's times are
{min(ratio):.2f}–{max(ratio):.2f} × the simulated ones: the order is right, the clock is slow, because the two-stage
approximation leaves out attention's feedback on KTIW (see the theory's regime map in the README).
"""
    return Section("salient", "Salient words", res, figs, checks, text, time.perf_counter() - t0)


def _xi_sentence(blocks) -> str:
    parts = []
    for name, b in blocks.items():
        lo = min(v["xi"] for v in b["xi"].values())
        hi = max(v["xi"] for v in b["xi"].values())
        parts.append(f"{name} ξ = {_range([lo, hi], 3)} against ξ* = {b['xi_star']:.3f}")
    return (
        f"ξ is far below ξ* ({'; '.join(parts)}). In the analytic model the *argmax* of attention reaches its final "
        "position at the very start of stage 2, long before the accuracy rises (the attention logits need only a "
        "small lead; the table still has to grow), so even a perfect top-1 agreement is matched by an early, "
        "poor checkpoint. ξ separates the scores on the paper's real data, where attention keeps changing until "
        "late; here it does not, and it is reported rather than tuned."
    )


def _kendall_sentence(blocks) -> str:
    below = [(f"{name} {r['pair']}", r["kendall_tau"]) for name, b in blocks.items() for r in b["agreement"]
             if not r["kendall_tau"] > r["chance_kendall"]]  # fmt: skip
    if not below:
        return "Kendall τ is above its chance value for every pair as well."
    each = ", ".join(f"{pair} (τ {tau:.2f}{', strongly negative' if tau <= -0.5 else ''})" for pair, tau in below)
    opposite = any(tau <= -0.5 for _, tau in below)
    return (
        f"Kendall τ, over *all* positions, is not above its chance value for {each}. Past the first "
        "position the two scores rank words that carry no signal for this target (in translate, every word but "
        "one), and there they follow different things: β ranks a word by how strongly it votes for its own "
        "translation, α and Δ by noise or by the rest of the sentence"
        + ("; where τ is strongly negative they rank those words in nearly opposite orders" if opposite else "")
        + ". The top of the ranking, which is what attention uses, agrees; the tail does not, and this report does "
        "not hide it."
    )


def _fig_agreement(blocks):
    fig, ax = _figure(12, 4.2, 1, 2)
    for j, (name, b) in enumerate(blocks.items()):
        a = ax[0, j]
        labels = [r["pair"] for r in b["agreement"]]
        xs = np.arange(len(labels))
        a.bar(xs - 0.2, [r["top5_match"] for r in b["agreement"]], 0.4, color=SIM, label="top-5 % match")
        a.bar(xs + 0.2, [r["kendall_tau"] for r in b["agreement"]], 0.4, color="C4", label="Kendall τ")
        a.plot(xs - 0.2, [r["chance_top5"] for r in b["agreement"]], "_", color="k", ms=22, mew=2,
               label="chance (shuffled v)")  # fmt: skip
        a.plot(xs + 0.2, [r["chance_kendall"] for r in b["agreement"]], "_", color="k", ms=22, mew=2)
        a.set_xticks(xs, labels)
        a.set_ylim(min(0, *[r["kendall_tau"] for r in b["agreement"]]) - 0.05, 1.05)
        a.set_ylabel("agreement (fraction of rows / rank correlation)")
        a.set_xlabel("pair of scores (u, v)")
        a.set_title(f"{name}: agreement of attention with KTIW")
        a.grid(alpha=0.3, axis="y")
    handles, labels = ax[0, 0].get_legend_handles_labels()  # one legend, above the bars, hiding none
    fig.legend(handles, labels, loc="outside upper center", ncols=3, fontsize=9)
    return fig


def _fig_keywords(timing, lr):
    fig, ax = _figure(12, 4.5, 1, 2)
    sim, pred = np.array(timing["simulated_time"]), np.array(timing["predicted_time"])
    for a, xv, xlabel in (
        (ax[0, 0], np.array(timing["frequency"]), "keyword frequency (probability among positive inputs)"),
        (
            ax[0, 1],
            np.array(timing["stage2_rate_gap"]),
            "stage-2 rate N of the keyword above the fillers' (per unit τ²)",
        ),
    ):
        order = np.argsort(xv)
        a.plot(xv[order], sim[order], "o-", color=SIM, label="simulation (SGD)")
        a.plot(xv[order], pred[order], "s--", color=THEORY, mfc="none", label="theory: two-stage prediction")
        a.set_xscale("log")
        a.set_xlabel(xlabel)
        a.set_ylabel(f"time to attend (SGD steps at lr {lr:g}; mass ≥ 0.5)")
        a.legend(fontsize=8)
        a.grid(alpha=0.3, which="both")
    ax[0, 0].set_title("Frequent keywords are attended sooner")
    ax[0, 1].set_title("… in the order of their stage-2 rate")
    return fig


def _toy_gd(beta0, beta1, p, step, tau_end):
    """Plain gradient descent on the toy's loss p·(β0 − β1) with step ``step``."""
    n = int(round(tau_end / step))
    out = np.empty((n + 1, 3))
    b0, b1, q = float(beta0), float(beta1), float(p)
    for i in range(n + 1):
        out[i] = (b0, b1, q)
        d0, d1, dp = theory.gated_classifier_rhs(b0, b1, q)
        b0, b1, q = b0 + step * d0, b1 + step * d1, q + step * dp
    return step * np.arange(n + 1), out


def section_toy(sizes: Sizes, say) -> Section:
    t0 = time.perf_counter()
    say("toy: the gated classifier, exact against gradient descent")
    r2 = math.sqrt(2)
    tau_one = math.acosh(2) / r2  # p = ½cosh(√2τ) reaches 1
    starts = {"symmetric (0, 0, ½)": (0.0, 0.0, 0.5), "bad start (10, −10, ½)": (10.0, -10.0, 0.5)}
    errors, curves = {}, {}
    for name, s in starts.items():
        end = tau_one if s[0] == 0 else 0.05
        per_step = {}
        for step in (1e-2, 1e-3):
            tau, sim = _toy_gd(*s, step, end)
            ex = theory.gated_classifier(*s, tau)
            per_step[step] = float(np.max(np.abs(sim[:, 2] - ex["p"])))
            curves[name] = (tau, sim, ex)
        errors[name] = per_step
    # claim 1: p flat, β1 − β0 linear early; p reaches 1 at τ = acosh(2)/√2
    early = theory.gated_classifier(0.0, 0.0, 0.5, np.linspace(0, 0.2, 41))
    flat = float(np.max(np.abs(early["p"] - 0.5)) / 0.5)
    d = early["beta1"] - early["beta0"]
    lin = float(np.max(np.abs(d - early["tau"])))  # d(τ) = (1/√2)·sinh(√2τ) ≈ τ
    grid = np.linspace(0, 1.2, 120_001)
    reach = float(grid[np.argmax(theory.gated_classifier(0.0, 0.0, 0.5, grid)["p"] >= 1.0)])
    # claim 2: from (10, −10, ½) the attention falls to 0
    bad = theory.gated_classifier(10.0, -10.0, 0.5, np.linspace(0, 0.1, 10_001))
    falls = bool(np.all(np.diff(bad["p"][bad["valid"]]) < 0) and bad["p"][bad["valid"]][-1] < 0.01)
    tau_zero = float(bad["tau"][bad["valid"]][-1])
    # claim 3: uniform attention, arbitrarily low loss
    Ks = [1.0, 10.0, 100.0, 1000.0]
    losses = [float(theory.gated_classifier(-K, 3 * K, 0.5, [0.0])["loss"][0]) for K in Ks]
    low = all(abs(lo + 2 * K) < 1e-9 * K for lo, K in zip(losses, Ks, strict=True))
    res = {
        "gd_max_error": {k: {f"{s:g}": v for s, v in e.items()} for k, e in errors.items()},
        "claim_flat_then_rises": {
            "p_relative_change_to_tau_0.2": flat,
            "beta_gap_minus_tau_max": lin,
            "tau_p_reaches_1": reach,
            "tau_closed_form": tau_one,
        },  # fmt: skip
        "claim_bad_start_falls": {"falls_monotonically_to_0": falls, "tau_p_reaches_0": tau_zero},
        "claim_low_loss_uniform_attention": {"K": Ks, "loss": losses},
    }
    e_sym = errors["symmetric (0, 0, ½)"]
    checks = [
        _check(
            "gradient descent converges to the exact solution (error ÷ 10 when the step ÷ 10)",
            e_sym[1e-2] / e_sym[1e-3],
            "8–12 (first order)",
            8 <= e_sym[1e-2] / e_sym[1e-3] <= 12,
        ),  # fmt: skip
        _check(
            "claim 1: p flat (within 5 % to τ = 0.2) while β1 − β0 grows linearly, then p = 1 at τ ≈ 0.93",
            reach,
            "0.93 ± 0.01, flat < 0.05",
            flat < 0.05 and abs(reach - 0.93) < 0.01,
        ),  # fmt: skip
        _check("claim 2: from (10, −10, ½) the attention falls to 0", tau_zero, "falls monotonically", falls),
        _check("claim 3: (−K, 3K, ½) has loss −2K with uniform attention", losses[-1], "−2K for every K", low),
    ]
    figs = {"toy.png": _fig_toy(curves, Ks, losses)}
    text = f"""
Two sequences {{0, 0}} → negative and {{0, 1}} → positive, word weights β0, β1 and a gate p (the attention on word 1);
loss p·(β0 − β1). The exact solution (`theory.gated_classifier`, cosh/sinh) beside plain gradient descent on the same
loss: largest gap in p {e_sym[1e-3]:.1e} at step 1e-3 and {e_sym[1e-2]:.1e} at step 1e-2 (first order in the step, as
it must be).

| the blog's claim | measured | |
|---|---|---|
| from (0, 0, ½), p stays flat while β1 − β0 grows linearly, then rises | p moves {flat:.1%} up to τ = 0.2; β1 − β0 is within {lin:.1e} of τ; p = 1 at τ = {reach:.4f} (closed form acosh(2)/√2 = {tau_one:.4f}) | {"✓" if checks[1]["passed"] else "✗"} |
| from (10, −10, ½), p first falls: a bad start attends to the wrong word | p falls monotonically to 0 by τ = {tau_zero:.4f} | {"✓" if falls else "✗"} |
| (−K, 3K, ½) has loss −2K: low loss with uniform attention | loss {", ".join(f"{lo:g}" for lo in losses)} for K = {", ".join(f"{K:g}" for K in Ks)} | {"✓" if low else "✗"} |

All three claims hold: this {_verdict(all(c["passed"] for c in checks))}.

![toy](toy.png)

*The toy gated classifier: exact solution (lines) and gradient descent (markers).*
"""
    return Section("toy", "The toy gated classifier", res, figs, checks, text, time.perf_counter() - t0)


def _fig_toy(curves, Ks, losses):
    fig, ax = _figure(14, 4.2, 1, 3)
    tau, sim, ex = curves["symmetric (0, 0, ½)"]
    a = ax[0, 0]
    a.plot(tau, ex["p"], color=THEORY, label="p, exact (½·cosh √2τ)")
    a.plot(tau, ex["beta1"] - ex["beta0"], color="C4", label="β1 − β0, exact")
    k = max(1, len(tau) // 15)
    a.plot(tau[::k], sim[::k, 2], "o", color=SIM, mfc="none", label="p, gradient descent (step 1e-3)")
    a.plot(tau[::k], (sim[:, 1] - sim[:, 0])[::k], "^", color=SIM, mfc="none", label="β1 − β0, gradient descent")
    a.set_xlabel("τ (learning rate × steps)")
    a.set_ylabel("value (gate p: probability; β: logit units)")
    a.set_title("From (0, 0, ½): p waits, then rises")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    tau, sim, ex = curves["bad start (10, −10, ½)"]
    a = ax[0, 1]
    v = ex["valid"]
    a.plot(tau[v], ex["p"][v], color=THEORY, label="p, exact (until p = 0)")
    k = max(1, int(v.sum()) // 15)
    a.plot(tau[v][::k], sim[v][::k, 2], "o", color=SIM, mfc="none", label="p, gradient descent (step 1e-3)")
    a.axhline(0, color="0.5", lw=0.8)
    a.set_xlabel("τ (learning rate × steps)")
    a.set_ylabel("gate p (attention on word 1)")
    a.set_title("From (10, −10, ½): p falls to 0")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    a = ax[0, 2]
    grid = np.logspace(0, 3, 50)
    a.plot(grid, 2 * grid, "--", color=THEORY, label="claim: loss = −2K")
    a.plot(Ks, [-lo for lo in losses], "o", color=SIM, label="loss at (−K, 3K, ½)")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("K (weight scale, logit units)")
    a.set_ylabel("−loss (nats) with uniform attention p = ½")
    a.set_title("Low loss without attention")
    a.legend(fontsize=8)
    a.grid(alpha=0.3, which="both")
    fig.suptitle("The blog's toy gated classifier")
    return fig


# source order: DET ADJ NOUN VERB DET NOUN "."; the target puts the adjective after its noun
ALIGNMENT = (0, 2, 1, 3, 4, 5, 6)  # target position t translates source position ALIGNMENT[t]


CONTENT_STEPS = (1, 2, 3, 5)  # target steps holding a noun, adjective or verb


STOP_STEP = 6  # the full stop: the same word in every sentence


def synthetic_corpus(pairs: int = 2000, seed: int = 0) -> str:
    """A toy parallel corpus: two invented languages with a word-for-word mapping,
    function words (determiners, a full stop) and one reordering (adjective after the
    noun in the target). Content words are Zipf-distributed within their class."""
    rng = np.random.default_rng(seed)
    classes = {"adj": (10, "bel", "ira"), "noun": (20, "mur", "osu"), "verb": (10, "tok", "ena")}

    def pick(cls):
        n, src, tgt = classes[cls]
        w = 1.0 / np.arange(1, n + 1)
        k = int(rng.choice(n, p=w / w.sum()))
        return f"{src}{k}", f"{tgt}{k}"

    dets = [("the", "le"), ("a", "un")]
    lines = []
    for _ in range(pairs):
        d1, d2 = dets[rng.integers(2)], dets[rng.integers(2)]
        adj, n1, verb, n2 = pick("adj"), pick("noun"), pick("verb"), pick("noun")
        src = [d1[0], adj[0], n1[0], verb[0], d2[0], n2[0], "."]
        tgt = [d1[1], n1[1], adj[1], verb[1], d2[1], n2[1], "."]
        lines.append(" ".join(src) + "\t" + " ".join(tgt))
    return "\n".join(lines) + "\n"


def section_text(sizes: Sizes, say, workdir: str) -> Section:
    t0 = time.perf_counter()
    corpus = synthetic_corpus(4000 if sizes.full else 2000)
    path = os.path.join(workdir, "parallel_corpus.txt")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(corpus)
    say("text: a synthetic parallel corpus through from_parallel_text")
    task = tasks.from_parallel_text(path)
    cfg = ModelConfig.for_task(task)
    steps = 300
    run = train(cfg, task, optimizer="adam", lr=0.05, steps=steps, batch=128, seed=0, scale=0.01)
    x, y = task.x, task.y
    z, alpha = forward(cfg, run.params, x)
    align = np.array(ALIGNMENT)
    hits = alpha[0].argmax(axis=-1) == align[None, :]  # (pairs, T)
    per_step = hits.mean(axis=0)
    content = np.array(CONTENT_STEPS)
    attn_content = float(per_step[content].mean())
    tok_acc = float(np.mean(z.argmax(axis=-1) == y))
    M = theory.stage2_rate(task)
    theory_first = M.argmax(axis=1)
    informative = [t for t in range(len(align)) if t != STOP_STEP]  # the full stop needs no source word
    theory_hits = theory_first[informative] == align[informative]
    stop_row = np.sort(M[STOP_STEP])[::-1]
    stop_spread = float((stop_row[0] - stop_row[2]) / (stop_row[0] - stop_row[-1]))
    mean_alpha = alpha[0].mean(axis=0)
    res = {
        "pairs": int(x.shape[0]), "src_len": task.src_len, "tgt_len": task.tgt_len,
        "vocab_in": task.vocab_in, "vocab_out": task.vocab_out, "steps": steps,
        "token_accuracy": tok_acc, "attention_accuracy_per_target_step": per_step.tolist(),
        "attention_accuracy_content_words": attn_content, "generator_alignment": list(ALIGNMENT),
        "mean_attention": mean_alpha.tolist(), "stage2_rate_M": M.tolist(),
        "theory_first_position": theory_first.tolist(),
        "full_stop_top3_spread": stop_spread,
        "final_loss": run.final()["loss"],
    }  # fmt: skip
    checks = [
        _check(
            "the model attends to the aligned source word for every content word, reordering included",
            attn_content,
            "≥ 0.95",
            attn_content >= 0.95,
        ),  # fmt: skip
        _check(
            "stage 2's rate M ranks the generator's source position first for every source-dependent target step",
            f"{int(theory_hits.sum())}/{len(informative)}",
            "all",
            theory_hits.all(),
        ),  # fmt: skip
    ]
    figs = {"text_attention.png": _fig_text(mean_alpha, align)}
    example = corpus.splitlines()[0].split("\t")
    text = f"""
`attnsim` generates a small parallel corpus (`parallel_corpus.txt`, {x.shape[0]} pairs): two invented languages with a
word-for-word mapping (adjectives bel*k* → ira*k*, nouns mur*k* → osu*k*, verbs tok*k* → ena*k*), function words
(the → le, a → un, a full stop) and one reordering: the adjective follows its noun in the target. For example
"{example[0]}" → "{example[1]}". The file goes through `tasks.from_parallel_text` exactly as a user's own file would
(vocabularies {task.vocab_in} and {task.vocab_out} words); the model does not see the alignment.

After {steps} Adam steps: token accuracy {tok_acc:.3f}. For the content words (target steps {list(CONTENT_STEPS)}:
noun, adjective, verb, noun) the argmax of attention is the aligned source word in {attn_content:.1%} of cases —
the swapped adjective and noun included. Per target step: {", ".join(f"{v:.2f}" for v in per_step)}.

The function words show where "attention = alignment" stops holding, and the theory says why. The full stop ends
every sentence on both sides, so it co-occurs with every source word, in proportion to the word's count: its row of M
favours the frequent words, and its top three positions (the full stop and both determiners) lie within
{_percent(stop_spread)} of the row's range of each other — no position carries the signal, and the bias predicts it without
attention (the model's attention there peaks at only {mean_alpha[6].max():.2f}). A target determiner can be read from its own source determiner, but also partly from
the full stop, whose table column can vote for both determiners: the model splits attention between them (mean mass
{mean_alpha[0, 0]:.2f} on the aligned determiner and {mean_alpha[0, 6]:.2f} on the full stop for target step 0), a
small attention sink. Stage 2's rate M, from the corpus's co-occurrence statistics alone (`theory.stage2_rate`), ranks
the generator's source position first for {int(theory_hits.sum())} of the {len(informative)} target steps whose word
depends on the source (positions ranked first: {theory_first.tolist()}).

![text attention](text_attention.png)

*Mean attention of the trained model on the synthetic corpus; white squares: the generator's alignment.*
"""
    return Section("text", "A parallel-text example", res, figs, checks, text, time.perf_counter() - t0)


def _fig_text(alpha, align):
    fig, ax = _figure(6, 5)
    a = ax[0, 0]
    im = a.imshow(alpha, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    a.plot(align, np.arange(len(align)), "s", mfc="none", mec="C3", mew=1.5, ms=14, label="generator's alignment")
    names_s = ["DET", "ADJ", "NOUN", "VERB", "DET", "NOUN", "."]
    names_t = ["DET", "NOUN", "ADJ", "VERB", "DET", "NOUN", "."]
    a.set_xticks(range(len(names_s)), [f"{i}\n{n}" for i, n in enumerate(names_s)])
    a.set_yticks(range(len(names_t)), [f"{n} {i}" for i, n in enumerate(names_t)])
    a.set_xlabel("source position (word class)")
    a.set_ylabel("target position (word class)")
    a.set_title("Synthetic parallel corpus: learned attention")
    a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below: the cells stay visible
    fig.colorbar(im, ax=a, label="mean attention weight")
    return fig
