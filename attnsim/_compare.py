"""Simulation and theory of the same setting, side by side, with numbers for their agreement.

`compare` trains one model and evaluates, on the same τ = lr·step grid,

* the two-stage closed form (`theory.two_stage`), which holds early, while U ≈ τ·G;
* the exact reduced dynamics of the copy tasks (`theory.reduced_copy`), with the same
  step η as the simulation (exact for full-batch GD; online SGD adds batch noise),
  from the init's own symmetric coordinates (`theory.copy_coordinates`);
* for a hard distribution, the saddle: the init's projection on its unstable direction,
  whose sign predicts the outcome.

The theory is stated for gradient descent. Under Adam the same τ = lr·steps is not the
theory's clock: Adam moves every coordinate by about lr per step whatever the size of
its gradient, so its early phase is not τ·G. `compare` still reports the agreement, and
the ratio of simulated to predicted time shows how far apart the clocks are.
"""

from __future__ import annotations

import math

import numpy as np

from . import _arch, theory
from ._model import effective_tables
from ._train import train

EARLY_LOGIT = 0.1  # the two-stage form is judged while τ·max|G|/H, the table's logits, stays below this (first order)
ATTEND_MASS = 0.5  # "time to attend": the gold mass reaches this
EARLY_POINTS = 3  # logged steps inside the early window needed to judge the two-stage form there


def _first_crossing(tau, values, level):
    """First τ where ``values`` reaches ``level``, linearly interpolated (None if never)."""
    values = np.asarray(values, dtype=np.float64)
    above = np.flatnonzero(values >= level)
    if above.size == 0:
        return None
    j = int(above[0])
    if j == 0:
        return float(tau[0])
    t0, t1, v0, v1 = tau[j - 1], tau[j], values[j - 1], values[j]
    return float(t0 + (level - v0) * (t1 - t0) / (v1 - v0))


def _ratio(pred, sim):
    if pred is None or sim is None or sim == 0:
        return None
    return pred / sim


def _is_copy(task) -> bool:
    spec = task.spec()
    return spec.get("name") == "copy" and not spec.get("replace")


def default_steps(task, optimizer: str, lr: float, heads: int = 1, scale: float | None = 0.0) -> int:
    """Enough steps to see attention learned: 1.5× the predicted time to attend under
    gradient descent (at most 20 000); 300 under Adam."""
    if optimizer == "adam":
        return 300
    tau = None
    if _is_copy(task) and task.vocab_in > task.src_len:
        r = theory.reduced_copy(task.vocab_in, task.src_len, np.linspace(0, 2e6, 4001))
        tau = _first_crossing(r["tau"], r["gold_mass"], ATTEND_MASS)
        tau = None if tau is None else tau * heads
    hard = theory.hardness(task).hard
    if tau is None and not hard:
        t = theory.time_to_attend(task, ATTEND_MASS, heads=heads, target="gold" if task.has_gold else "top")
        tau = t if math.isfinite(t) else None
    if tau is None and scale is not None and scale > 0 and hard:
        tau = theory.saddle(task, heads=heads).escape_tau(scale) * 1.5
    if tau is None:
        return 1000
    return int(min(20_000, max(50, math.ceil(1.5 * tau / lr))))


def compare(
    task,
    heads: int = 1,
    attention: str | None = None,
    optimizer: str | None = None,
    lr: float | None = None,
    steps: int | None = None,
    batch: int | None = None,
    seed: int = 0,
    scale: float | None = None,
    log_every: int | None = None,
    progress: bool = False,
    model: str = "free",
    **options,
) -> dict:
    """Train ``task`` and evaluate the theory on the same τ grid.

    ``model`` names the architecture (``options`` are its config's other fields, e.g.
    ``dim=32`` for ``"dot"``); the theory of §4 is read through the model's effective
    tables (docs/design.md §7.1). ``optimizer``, ``lr``, ``batch`` and ``scale`` left as
    None take the architecture's comparison defaults (``Architecture.compare_defaults``;
    rung 0: SGD, lr 10, batch 256, the exact zero init).

    Returns a dict: ``task``, ``settings``, ``hardness``; ``simulation``,
    ``two_stage`` and (for ``copy`` tasks) ``reduced`` — each a dict of arrays over
    ``tau`` with ``gold_mass`` and ``ktiw_gold`` (mean KTIW log-odds at the gold
    position); ``saddle`` for a hard distribution with a random init; ``agreement``
    (see `agreement`); the `Run` itself under ``run`` and the task under ``task_object``.
    """
    arch = _arch.get(model)
    if arch.effective_tables is None:
        raise ValueError(f"compare: the model {model!r} has no effective tables: the theory of rung 0 cannot read it")
    cfg = _arch.config_for_task(model, task, heads=heads, attention=attention, **options)
    given = {"optimizer": optimizer, "lr": lr, "batch": batch, "scale": scale}
    optimizer, lr, batch, scale = (arch.compare_defaults[k] if v is None else v for k, v in given.items())
    if steps is None:  # rung 0's theory's clock, or the model's own span of τ where the two differ
        span = arch.compare_defaults.get("tau")
        steps = default_steps(task, optimizer, lr, heads, scale) if span is None else max(1, math.ceil(span / lr))
    if log_every is None:
        log_every = max(1, steps // 200)
    run = train(
        cfg,
        task,
        optimizer=optimizer,
        lr=lr,
        steps=steps,
        batch=batch,
        seed=seed,
        scale=scale,
        log_every=log_every,
        snapshots=True,
        progress=progress,
    )
    h = run.history
    tau = np.asarray(h["tau"], dtype=np.float64)

    # the KTIW log-odds at the gold position of the simulated model, on the same
    # evaluation sequences the theory uses
    x, y, gold, _ = theory._data_or_sample(task, 1000, seed)
    if gold is None:
        gold = np.broadcast_to(task.gold_constant, y.shape)
    pairs = theory._gold_pairs(x, y, gold, (task.vocab_out, task.vocab_in))
    snaps = run.snapshots
    start = effective_tables(cfg, run.initial_params)  # the run's own init, as rung 0's tables
    has_S, has_A = "S" in start, "A" in start
    mode = "both" if has_S and has_A else "positional" if has_S else "content" if has_A else None
    sim_ktiw = np.array(
        [
            np.sum(pairs * theory._log_odds(U.mean(axis=0) + b[:, None]))
            for U, b in zip(snaps["U"], snaps["b"], strict=True)
        ]
    )
    has_gold = bool(np.any(gold >= 0))
    # without a gold alignment: the attention on the position stage 2 ranks first
    target = "gold" if has_gold else "top"
    top = np.argmax(theory.stage2_rate(task), axis=1) if has_S else None
    sim_top = np.full(tau.shape, np.nan)
    if top is not None and not has_A:  # positional attention is the same for every sequence
        mean_alpha = np.asarray(snaps["alpha"]).mean(axis=1)  # (logged, T, L): heads averaged
        sim_top[: len(mean_alpha)] = mean_alpha[:, np.arange(task.tgt_len), top].mean(axis=1)
    simulation = {
        "tau": tau,
        "step": np.asarray(h["step"]),
        "gold_mass": np.asarray(h["gold_mass"], dtype=np.float64),
        "top_mass": sim_top,
        "ktiw_gold": sim_ktiw if has_gold else np.full(tau.shape, np.nan),
        "ktiw_acc": np.asarray(h["ktiw_acc"], dtype=np.float64),
        "attn_acc": np.asarray(h["attn_acc"], dtype=np.float64),
        "acc": np.asarray(h["acc"], dtype=np.float64),
        "loss": np.asarray(h["loss"], dtype=np.float64),
    }
    verdict = theory.hardness(task)
    two = theory.two_stage(task, tau, attention=mode, heads=heads)
    two = {k: two[k] for k in ("tau", "gold_mass", "top_mass", "ktiw_gold", "ktiw_acc")}

    reduced = None
    if _is_copy(task) and has_S and not has_A:
        V, L = task.vocab_in, task.src_len
        a0, c0 = theory.copy_coordinates(start)
        gd = optimizer in ("gd", "sgd")
        r = theory.reduced_copy(V, L, tau, lr=lr if gd else None, a0=a0, c0=c0)
        abar = r["a"].mean(axis=1)
        reduced = {
            "tau": tau,
            "gold_mass": r["gold_mass"],
            "ktiw_gold": abar - math.log(V - 1),
            "steps": "same step as the simulation" if gd else "gradient flow",
        }
        if not np.any(r["gold_mass"] >= ATTEND_MASS):  # when it attends after the simulated span
            far = np.linspace(0.0, 50 * tau[-1], 2001)
            rf = theory.reduced_copy(V, L, far, a0=a0, c0=c0)
            reduced["time_to_attend_flow"] = _first_crossing(far, rf["gold_mass"], ATTEND_MASS)

    saddle = None
    if verdict.hard and has_S and not has_A:
        sad = theory.saddle(task, heads=heads)
        proj = np.array([sad.projection(start["U"][k], start["S"][k]) for k in range(heads)])
        saddle = {
            "rate": sad.rate,
            "projection": proj.tolist(),
            "predicts_learning": bool(proj.max() > 0),
            "escape_tau_linear": sad.escape_tau(float(np.max(np.abs(proj)))) if np.any(proj) else math.inf,
        }

    result = {
        "target": target,
        "stage2_first": top,
        "task": task.spec(),
        "settings": dict(run.settings, heads=heads, attention=mode or "uniform", model=cfg.model),
        "config": cfg.to_dict(),
        "exact_tables": cfg.exact_tables,
        "hardness": verdict.to_dict(),
        "simulation": simulation,
        "two_stage": two,
        "reduced": reduced,
        "saddle": saddle,
        "run": run,
        "task_object": task,
    }
    result["agreement"] = agreement(result)
    return result


def agreement(result: dict) -> dict:
    """Numbers for how well theory and simulation agree.

    For each prediction (``two_stage``, ``reduced``): ``max_gold_mass_gap`` over the
    whole run; ``time_to_attend`` (τ where the gold mass reaches 0.5) predicted and
    simulated and their ``time_ratio`` (predicted / simulated); ``max_ktiw_gap``. For
    the two-stage form also ``early_rel_error``: the relative error of the rise of the
    gold mass above 1/L where the form claims to hold — at ``early_tau``, the τ up to
    which the table's logits τ·max|G|/H stay below 0.1 (first order) — with the
    largest gaps up to there. ``simulated`` holds the simulation's own numbers, with
    its ``time_to_learn`` (docs/design.md §3.5) as a step.
    """
    sim = result["simulation"]
    tau = sim["tau"]
    L = result["task_object"].src_len
    key = "gold_mass" if result.get("target", "gold") == "gold" else "top_mass"
    t_sim = _first_crossing(tau, sim[key], ATTEND_MASS)
    run = result["run"]
    out = {
        "simulated": {
            "status": run.status,
            "stopped_at_step": run.stopped_at,
            "time_to_attend": t_sim,
            "time_to_learn_step": run.time_to_learn,
            "success": run.success,
            f"final_{key}": float(sim[key][-1]),
        }
    }
    for name in ("two_stage", "reduced"):
        pred = result.get(name)
        if pred is None:
            continue
        gap = np.abs(pred[key] - sim[key])
        kgap = np.abs(pred["ktiw_gold"] - sim["ktiw_gold"])
        t_pred = _first_crossing(tau, pred[key], ATTEND_MASS)
        if t_pred is None and pred.get("time_to_attend_flow") is not None:  # beyond the simulated span
            t_pred = pred["time_to_attend_flow"]
        entry = {
            f"max_{key}_gap": float(np.nanmax(gap)) if np.any(np.isfinite(gap)) else None,
            "max_ktiw_gap": float(np.nanmax(kgap)) if np.any(np.isfinite(kgap)) else None,
            "time_to_attend": t_pred,
            "time_ratio": _ratio(t_pred, t_sim),
        }
        if name == "two_stage":
            base = 1.0 / L
            settings = result["settings"]
            g = float(np.max(np.abs(theory.stage1_rate(result["task_object"]))))
            t_early = min(float(tau[-1]), EARLY_LOGIT * settings["heads"] / g) if g > 0 else float(tau[-1])
            rise_sim = float(np.interp(t_early, tau, sim[key])) - base
            rise_pred = float(np.interp(t_early, tau, pred[key])) - base
            entry["early_tau"] = t_early
            logged_early = int(np.sum((tau > 0) & (tau <= t_early)))
            if logged_early >= EARLY_POINTS and abs(rise_sim) > 1e-9:
                entry["early_rel_error"] = abs(rise_pred - rise_sim) / abs(rise_sim)
            else:  # the rise is not resolved: a relative error of two numbers near 0 means nothing
                entry["early_rel_error"] = None
                entry["early_note"] = (
                    f"{logged_early} logged steps with 0 < τ <= {t_early:.3g}, where the two-stage form claims to "
                    f"hold (at least {EARLY_POINTS} needed): log more often or take a smaller step"
                )
            early = tau <= t_early
            entry[f"early_max_{key}_gap"] = float(np.nanmax(gap[early])) if np.any(np.isfinite(gap[early])) else None
            entry["early_max_ktiw_gap"] = float(np.nanmax(kgap[early])) if np.any(np.isfinite(kgap[early])) else None
            # the closed form, even beyond the simulated range
            att = settings["attention"] if settings["attention"] != "uniform" else None
            try:
                t_closed = theory.time_to_attend(
                    result["task_object"], ATTEND_MASS, attention=att, heads=settings["heads"], target=key[:-5]
                )
            except ValueError:  # nothing to time: content attention on a task without gold, say
                t_closed = None
            t_closed = t_closed if t_closed is not None and math.isfinite(t_closed) else None
            entry["time_to_attend"] = t_closed
            entry["time_ratio"] = _ratio(t_closed, t_sim)
        out[name] = entry
    if result.get("saddle") is not None:
        out["saddle"] = {
            "predicts_learning": result["saddle"]["predicts_learning"],
            "learned": run.success,
            "right": result["saddle"]["predicts_learning"] == run.success,
        }
    return out
