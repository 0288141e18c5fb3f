"""The ``attnsim`` command line. The only module that writes to the terminal.

Bad input ends with one line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 1

TASKS = ("copy", "reorder", "translate", "keyword", "text")


class BadInput(Exception):
    """Input the user can fix; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise BadInput(f"{self.prog}: {message}")


def _int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    return v


def _number(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


SECTION_NAMES = (
    "copy",
    "multihead",
    "salient",
    "toy",
    "text",
    "rnn",
    "ladder",
)  # attnsim._reproduce.SECTIONS (checked by a test)


def _bool(text):
    t = str(text).strip().lower()
    if t in ("true", "yes", "1", "on"):
        return True
    if t in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_task_args(p) -> None:
    """The task and its sizes (shared by run, theory and compare)."""
    p.add_argument("task", choices=TASKS, metavar="TASK", help=f"one of {', '.join(TASKS)}")
    p.add_argument("--path", metavar="FILE", help="parallel text file (task 'text'): source<TAB>target per line")
    p.add_argument("--vocab", type=_int, default=None, help="(input) vocabulary size [60]")
    p.add_argument("--vocab-out", type=_int, default=None, help="output vocabulary of 'translate' [= --vocab]")
    p.add_argument(
        "--length",
        type=_int,
        default=None,
        help="sequence length [40; for 'text': truncate to this length, default the longest]",
    )
    p.add_argument("--replace", action="store_true", help="copy/reorder: draw words with replacement")
    p.add_argument("--order", default=None, help="reorder/translate: reverse, rotate[:k], shuffle[:seed], identity")
    p.add_argument(
        "--zipf", type=_number, default=None, help="translate, keyword: Zipf exponent of the (key)words [1.0, 0]"
    )
    p.add_argument("--noise", type=_number, default=None, help="translate: probability of a random target word [0]")
    p.add_argument("--keywords", type=_int, default=None, help="keyword: number of keywords [1]")


def _add_out_args(p, what) -> None:
    """--out DIR and --force (run, theory, compare)."""
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the results")
    p.add_argument("--force", action="store_true", help=f"replace an earlier {what} in DIR (never another kind)")


def _theory_models() -> tuple[str, ...]:
    """The architectures whose effective tables the theory reads (theory and compare take
    only these)."""
    from . import _arch

    return tuple(n for n in _arch.names() if _arch.get(n).effective_tables is not None)


def _add_model_args(p, attention_choices=None, models=None) -> None:
    """--model and every registered architecture's options (its config's fields besides the
    task's shapes: --heads, --attention, --dtype, and each model's own, e.g. --dim);
    ``models``: only these architectures (a command that takes no others)."""
    from . import _arch

    archs = [_arch.get(n) for n in _arch.names() if models is None or n in models]
    p.add_argument(
        "--model", choices=[a.name for a in archs], default="free", metavar="MODEL",
        help="; ".join(f"{a.name}: {a.title}" for a in archs) + " [free]",
    )  # fmt: skip
    seen = set()
    for arch in archs:
        for f in arch.config.options():
            if f.name in seen or "help" not in f.metadata:
                continue
            seen.add(f.name)
            owners = [a.name for a in archs if f.name in {g.name for g in a.config.options()}]
            only = "" if len(owners) == len(archs) else f" ({', '.join(owners)})"
            kind = str(f.type)
            conv = _bool if kind == "bool" else _number if "float" in kind else _int if "int" in kind else str
            choices = f.metadata.get("choices")
            if choices is not None:  # the union over the models that have the option, in ladder order
                for a in archs:
                    for g in a.config.options():
                        if g.name == f.name:
                            choices = tuple(dict.fromkeys((*choices, *g.metadata.get("choices", ()))))
            if f.name == "attention" and attention_choices is not None:
                choices = attention_choices
            helptext = f.metadata["help"] + only
            own = f.metadata.get("choices")
            notes = []  # where another model's choices or default differ from this help's
            for a in archs:
                for g in a.config.options():
                    if g.name != f.name or a.config is arch.config:
                        continue
                    theirs = g.metadata.get("choices")
                    if theirs is not None and set(theirs) != set(own or ()):
                        notes.append(f"{a.name}: {' or '.join(theirs)} [{g.default}]")
                    elif theirs is None and g.default != f.default and g.default is not dataclasses.MISSING:
                        notes.append(f"{a.name}'s default: {str(g.default).lower()}")
            if notes and not (f.name == "attention" and attention_choices is not None):
                helptext += " (" + "; ".join(notes) + ")"
            p.add_argument(
                "--" + f.name.replace("_", "-"), type=conv, default=None, choices=choices, help=helptext,
                metavar="true|false" if kind == "bool" else None,
            )  # fmt: skip


def _model_config(args, task):
    """The config of ``--model`` for ``task`` from the options given; an option of another
    model is refused (it would be ignored)."""
    from . import _arch

    arch = _arch.get(args.model)
    own = {f.name for f in arch.config.options()}
    given = {}
    for name in _model_option_names():
        value = getattr(args, name, None)
        if value is None:
            continue
        if name not in own:
            flag = "--" + name.replace("_", "-")
            raise BadInput(f"attnsim {args.command}: {flag} does not apply to the model '{arch.name}'")
        given[name] = value
    if given.get("attention") == "uniform" and "intermediate" in given:  # no attention network to size
        raise BadInput(f"attnsim {args.command}: --intermediate does not apply to uniform attention")
    return arch.config.for_task(task, **given)


def _model_option_names() -> list[str]:
    from . import _arch

    names = []
    for n in _arch.names():
        for f in _arch.get(n).config.options():
            if "help" in f.metadata and f.name not in names:
                names.append(f.name)
    return names


def _add_training_args(p, optimizer, lr, steps, steps_default, batch, scale) -> None:
    """The training options (shared by run and compare), with their defaults (None: the
    model's own, shown as given in the help)."""
    p.add_argument(
        "--optimizer", choices=("gd", "sgd", "adam"), default=optimizer, help=f"[{optimizer or 'sgd for free'}]"
    )
    p.add_argument("--lr", type=_number, default=lr, help=f"learning rate [{lr or '10 for free'}]")
    p.add_argument("--steps", type=_int, default=steps, help=f"number of updates [{steps_default}]")
    p.add_argument("--batch", type=_int, default=batch, help=f"batch size [{batch or '256 for free'}]")
    p.add_argument("--seed", type=_int, default=0, help="seed of the init and of the data [0]")
    p.add_argument("--scale", type=_number, default=None, help=f"init scale, 0 = the exact zero init [{scale}]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="attnsim", description="Simulate how an attention head learns, beside the theory.")
    p.add_argument("--version", action="version", version=f"attnsim {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser(
        "run",
        help="train one model on a task; write history, parameters and figures",
        description="Train one model on a task and write DIR/history.json, DIR/params.npz, "
        "DIR/learning_curves.png and DIR/attention.png.",
    )
    _add_task_args(r)
    _add_out_args(r, "run")
    _add_model_args(r)
    _add_training_args(r, "adam", 0.05, 300, "300", 128, "the model's default init; free: 0.01")
    r.add_argument(
        "--log-every", type=_int, default=10, help="log metrics every K steps (times to learn are multiples of K) [10]"
    )
    r.add_argument("--weight-decay", type=_number, default=0.0, help="L2 weight decay [0]")

    th = sub.add_parser(
        "theory",
        help="the theory's predictions for a task, no training: verdict, rates, curves",
        description="Closed-form predictions for a task (docs/design.md §4): whether it is hard, the stage-1 and "
        "stage-2 rates, the predicted gold attention mass and KTIW against τ = lr·steps, the time to attend, "
        "the order of attention and, for a hard task, its saddle; for the dot head (--model dot), its exact "
        "reduced dynamics from an aligned init of scale --scale where they exist (docs/design.md §7.6). "
        "Writes DIR/theory.json and DIR/theory.png.",
    )
    _add_task_args(th)
    _add_out_args(th, "theory result")
    _add_model_args(th, attention_choices=("positional", "content", "both"), models=_theory_models())
    th.add_argument(
        "--scale", type=_number, default=0.01, help="init scale, for the saddle's escape time and the dot head [0.01]"
    )
    th.add_argument("--threshold", type=_number, default=0.5, help="gold mass that counts as attending [0.5]")

    c = sub.add_parser(
        "compare",
        help="simulation and theory of the same setting, drawn together, with agreement numbers",
        description="Train one model and draw it beside the two-stage closed form and, for copy tasks, "
        "the exact reduced dynamics: gold attention mass and KTIW against τ = lr·steps. Writes "
        "DIR/compare.png, DIR/agreement.json (numbers) and DIR/curves.json (the arrays).",
    )
    _add_task_args(c)
    _add_out_args(c, "comparison")
    _add_model_args(c, attention_choices=("positional", "content", "both"), models=_theory_models())
    _add_training_args(
        c,
        None,
        None,
        None,
        "1.5× the predicted time to attend",
        None,
        "the model's comparison init; free: 0, the zero init",
    )

    sw = sub.add_parser(
        "sweep",
        help="a grid of runs from a TOML spec: results.csv as runs finish, resumable, phase diagram",
        description="Run every combination of the lists in SPEC (sections [task] with a name, [model], "
        "[train] with seeds = N or a list, optional [plot] x, y) and write DIR/results.csv (one row per run, "
        "appended as runs finish), DIR/summary.json and DIR/phase.png. A killed sweep loses only the runs "
        "in flight; --resume finishes it.",
    )
    sw.add_argument("spec", metavar="SPEC.toml", help="the sweep spec")
    sw.add_argument("--out", required=True, metavar="DIR", help="directory for the results")
    sw.add_argument("--workers", type=_int, default=None, help="cores to train on [all]")
    sw.add_argument("--resume", action="store_true", help="finish the sweep in DIR without repeating finished runs")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="send the runs to a Dask scheduler (tcp://host:port)")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")

    rp = sub.add_parser(
        "reproduce",
        help="the paper's experiments beside the theory: report.md, figures, results.json",
        description="Reproduce the paper's findings in the analytic model, each beside the theory's prediction: "
        "copy (the hard permutation), multihead (the rescue), salient (agreement of attention with KTIW), toy "
        "(the gated classifier), text (a synthetic parallel corpus) and rnn (the copy and multi-head experiments on "
        "the authors' own LSTM/GRU seq2seq); and, by name or with 'all', ladder: which of the two-stage story's "
        "claims hold on which architecture of attnsim's ladder. Writes DIR/report.md with every figure and table, "
        "DIR/results.json with the numbers, and the PNG figures. Times: see the README.",
    )
    rp.add_argument(
        "section", nargs="?", default="paper", choices=(*SECTION_NAMES, "paper", "all"),
        metavar="SECTION",
        help=f"{', '.join(SECTION_NAMES)}; paper (every section but ladder) or all [paper]",
    )  # fmt: skip
    rp.add_argument(
        "--out", default="attnsim-reproduce", metavar="DIR", help="directory for the report [attnsim-reproduce]"
    )
    rp.add_argument(
        "--full",
        action="store_true",
        help="the paper's sizes (more seeds, d 256 for rungs 2-3: hours on 2 cores; see the README per section)",
    )
    rp.add_argument("--force", action="store_true", help="redo sections DIR already holds")
    rp.add_argument(
        "--judge-again", action="store_true",
        help="with 'ladder': judge the finished ladder in DIR again by this attnsim's rules, from the results it "
        "keeps (nothing trained), and rewrite its report",
    )  # fmt: skip
    rp.add_argument("--quiet", action="store_true", help="no progress")

    g = sub.add_parser(
        "gradcheck",
        help="finite-difference check of every gradient, as a table",
        description="Compare every gradient of every parameterization of every model with central finite "
        "differences and with the model's independent NumPy oracle.",
    )
    g.add_argument("--trials", type=_int, default=16, help="random configurations per model [16]")
    g.add_argument("--seed", type=_int, default=0)
    g.add_argument("--model", action="append", default=None, metavar="MODEL", help="only this model (repeatable) [all]")
    return p


# =============================================================================
# run
# =============================================================================


# The task options each task takes; any other one given is refused (it would be ignored).
TASK_OPTIONS = {
    "copy": {"vocab", "length", "replace"},
    "reorder": {"vocab", "length", "replace", "order"},
    "translate": {"vocab", "vocab_out", "length", "zipf", "noise", "order"},
    "keyword": {"vocab", "length", "keywords", "zipf"},
    "text": {"path", "length"},
}


def _make_task(args):
    from . import tasks

    cmd = f"attnsim {args.command} {args.task}"
    given = {k for k in ("path", "vocab", "vocab_out", "length", "replace", "order", "zipf", "noise", "keywords")
             if getattr(args, k) not in (None, False)}  # fmt: skip
    extra = sorted(given - TASK_OPTIONS[args.task])
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        note = " (its vocabularies are the file's)" if args.task == "text" and "vocab" in extra else ""
        raise BadInput(
            f"{cmd}: {flags} {'does' if len(extra) == 1 else 'do'} not apply to the task '{args.task}'{note}"
        )
    V = 60 if args.vocab is None else args.vocab
    L = 40 if args.length is None else args.length
    if args.task == "text":
        if not args.path:
            raise BadInput(f"{cmd}: --path FILE is required")
        return tasks.from_parallel_text(args.path, src_len=args.length, tgt_len=args.length)
    if args.task == "copy":
        return tasks.copy(V, L, replace=args.replace)
    if args.task == "reorder":
        return tasks.reorder(V, L, order=args.order or "reverse", replace=args.replace)
    if args.task == "translate":
        return tasks.translate(
            V,
            V if args.vocab_out is None else args.vocab_out,
            L,
            zipf=1.0 if args.zipf is None else args.zipf,
            noise=args.noise or 0.0,
            order=args.order or "identity",
        )
    keywords = 1 if args.keywords is None else args.keywords  # 0 is refused by the task, not replaced
    return tasks.keyword(V, L, keywords=keywords, zipf=args.zipf or 0.0)


def _training(args) -> dict:
    """The training options that run and compare share, as keyword arguments."""
    names = ("optimizer", "lr", "steps", "batch", "seed", "scale")
    return {**{k: getattr(args, k) for k in names}, "progress": not args.quiet}  # off a terminal: a line every 10 s


def cmd_run(args) -> int:
    import numpy as np

    from . import _plots
    from ._outputs import claim, write_dir
    from ._train import accuracies, check_compatible, fmt_value, kernels_cached, train

    task = _make_task(args)
    cfg = _model_config(args, task)
    check_compatible(cfg, task)
    if args.lr <= 0:
        raise BadInput(f"attnsim run: --lr must be > 0, got {args.lr:g}")
    for name, minimum in (("steps", 0), ("batch", 1), ("log_every", 1), ("seed", 0)):
        if getattr(args, name) < minimum:
            raise BadInput(f"attnsim run: --{name.replace('_', '-')} must be >= {minimum}, got {getattr(args, name)}")
    if (args.scale is not None and args.scale < 0) or args.weight_decay < 0:
        which = "--scale" if args.scale is not None and args.scale < 0 else "--weight-decay"
        raise BadInput(f"attnsim run: {which} must be >= 0")
    out = claim(args.out, "run", args.force)

    compiles = not kernels_cached(cfg)
    run = train(cfg, task, log_every=args.log_every, weight_decay=args.weight_decay, **_training(args))

    dtype = ", float32" if cfg.dtype == "float32" else ""
    heads = f"{cfg.heads} head{'s' if cfg.heads > 1 else ''}"
    title = f"{task!r}, {cfg.describe()}, {heads}, {args.optimizer} lr {args.lr:g}{dtype}"
    x, y, gold = task.sample(np.random.default_rng(12345), 256)
    write_dir(
        out,
        {
            "learning_curves.png": _plots.learning_curves(
                run.history,
                title,
                heads=cfg.heads,
                stopped=run.stopped_at,
                accuracy="accuracy (label)" if cfg.model == "clf" else "token accuracy",
                uniform=getattr(cfg, "attention", None) == "uniform",
            ),  # fmt: skip
            "attention.png": _plots.attention_map(cfg, run.params, x, gold, title=f"final attention — {title}", y=y),
        },
        "run",
        before=run.save,
    )

    f = run.final()
    ttl = run.time_to_learn
    verdict = f"learned at step {ttl}" if run.success else "did not learn"
    if run.status == "diverged":  # the reason is the one warning line the training logged
        verdict = f"diverged at step {run.stopped_at}"

    steps = f"{f['step']} steps" if run.status != "diverged" else f"stopped at step {run.stopped_at} of {args.steps}"
    took = f"{run.elapsed:.1f} s" + (", the first compile included" if compiles else "")
    loss = "n/a" if f["loss"] is None else f"{f['loss']:.4g}"
    print(
        f"{task!r}: {verdict} — loss {loss}, {accuracies(run.cfg, f)}, KTIW acc {fmt_value(f['ktiw_acc'])} ({steps}, "
        f"{took}) → {args.out}"
    )
    if run.status == "diverged":
        return EXIT_DIVERGED
    return 0


def _check_common(args, name) -> None:
    if args.heads is not None and args.heads < 1:
        raise BadInput(f"attnsim {name}: --heads must be >= 1, got {args.heads}")
    if args.scale is not None and args.scale < 0:
        raise BadInput(f"attnsim {name}: --scale must be >= 0, got {args.scale:g}")


def cmd_theory(args) -> int:
    import numpy as np

    from . import _plots, theory
    from ._outputs import claim, write_dir

    task = _make_task(args)
    _check_common(args, "theory")
    if not 0 < args.threshold < 1:
        raise BadInput(f"attnsim theory: --threshold must lie in (0, 1), got {args.threshold:g}")
    if args.dtype is not None:
        raise BadInput("attnsim theory: --dtype does not apply: the theory trains nothing")
    from . import _arch

    cfg = _model_config(args, task)
    if _arch.of(cfg).effective_tables is None:
        raise BadInput(
            f"attnsim theory: the model '{cfg.model}' has no effective tables for the theory to read; "
            "`attnsim theory copy` (rung 0) gives the task's own predictions"
        )
    args.heads = cfg.heads
    out = claim(args.out, "theory", args.force)
    mode = args.attention or task.default_attention
    verdict = theory.hardness(task)
    G = theory.stage1_rate(task)
    M = theory.stage2_rate(task) if mode in ("positional", "both") else None
    N = theory.stage2_content_rate(task) if mode in ("content", "both") else None
    report = {"format": "attnsim-theory/1", "task": task.spec(), "heads": args.heads, "attention": mode}
    report["model"] = {"name": cfg.model, "config": cfg.to_dict(), "exact_tables": cfg.exact_tables}
    report["verdict"] = verdict.to_dict()
    report["stage1"] = {"G_max": float(np.max(np.abs(G))), "bias_rate": theory.bias_rate(task)}
    target = "gold" if task.has_gold else "top"  # user data: the position stage 2 ranks first
    t_attend = theory.time_to_attend(task, args.threshold, attention=mode, heads=args.heads, target=target)
    curves = []
    horizon = 1.5 * t_attend if np.isfinite(t_attend) else None
    red = None
    is_copy = task.spec().get("name") == "copy" and not task.spec().get("replace")
    if is_copy and mode == "positional":
        probe = theory.reduced_copy(
            task.vocab_in, task.src_len, np.linspace(0, 2e6, 4001), a0=np.zeros(args.heads), c0=np.zeros(args.heads)
        )
        hit = np.flatnonzero(probe["gold_mass"] >= args.threshold)
        if hit.size:
            horizon = 1.5 * probe["tau"][hit[0]] if horizon is None else max(horizon, 1.5 * probe["tau"][hit[0]])
    sad = None
    if verdict.hard and mode == "positional":
        sad = theory.saddle(task, heads=args.heads)
        escape = sad.escape_tau(args.scale) if args.scale > 0 else float("inf")
        report["saddle"] = {
            "rate": sad.rate,
            "unique": sad.sigma2 <= 1e-12 * sad.sigma,
            "curvature": sad.curvature,
            "escape_tau_linear": escape,
            "note": "from a random init of scale s the component on the unstable direction is N(0, s²); "
            "it grows like e^(rate·τ); its sign decides whether the head learns (saddle_projection)",
        }
        if args.scale > 0:
            horizon = 3 * escape
    arch = _arch.of(cfg)
    beside = arch.theory_beside(cfg, task, args.scale, args.threshold) if arch.theory_beside is not None else None
    own_curve = beside.pop("curve", None) if beside is not None else None  # (label, tau -> curve)
    if beside is not None and beside.get("reduced_time_to_attend") is not None:  # the model may attend much later
        horizon = max(horizon or 0.0, 1.3 * beside["reduced_time_to_attend"])
    rung0 = "" if arch.rung == 0 else "rung 0's "
    tau = np.linspace(0, horizon or 1000.0, 301)
    two = theory.two_stage(task, tau, attention=mode, heads=args.heads)
    curves.append((f"{rung0}two-stage closed form", two, "C1--"))
    if is_copy and mode == "positional":
        a0 = c0 = np.zeros(args.heads)
        if sad is not None and args.scale > 0:  # a typical init: one standard deviation along +v
            cfg_like = {
                "U": np.repeat(args.scale * sad.U[None], args.heads, 0),
                "S": np.repeat(args.scale * sad.S[None], args.heads, 0),
            }
            a0, c0 = theory.copy_coordinates(cfg_like)
        red = theory.reduced_copy(task.vocab_in, task.src_len, tau, a0=a0, c0=c0)
        red["ktiw_gold"] = red["a"].mean(axis=1) - np.log(task.vocab_in - 1)
        label = f"{rung0}exact reduced dynamics" + (
            f" (init +{args.scale:g} along the unstable direction)" if sad is not None and args.scale > 0 else ""
        )
        curves.append((label, red, "C0-"))
    if beside is not None:
        report["model"].update(beside)
        if own_curve is not None:
            curves.append((own_curve[0], own_curve[1](tau), "C2-"))
    order = theory.attention_order(task, attention=mode)
    report["stage2"] = {
        "time_to_attend": t_attend,
        "attends_to": "the gold position" if target == "gold" else "the position stage 2 ranks first (no gold)",
        "threshold": args.threshold,
        "order_first_positions": order["positions"][:, :3] if "positions" in order else None,
        "order_first_words": order["words"][:, :5] if "words" in order else None,
        "M_max": float(np.max(np.abs(M))) if M is not None else None,
        "N_max": float(np.max(np.abs(N))) if N is not None else None,
    }
    keys = ("tau", "gold_mass", "top_mass", "ktiw_gold")
    report["curves"] = {name: {k: c[k] for k in keys if k in c} for name, c, _ in curves}
    if red is not None:
        hit = np.flatnonzero(red["gold_mass"] >= args.threshold)
        report["reduced_time_to_attend"] = float(tau[hit[0]]) if hit.size else None
    heads = f"{args.heads} head{'s' if args.heads > 1 else ''}"
    verdict_word = "HARD" if verdict.hard else "learnable"
    no_signal = [n for n, R in (("M", M), ("N", N)) if R is not None and not np.max(np.abs(R)) > 1e-12]
    if not verdict.hard and no_signal and len(no_signal) == (M is not None) + (N is not None):
        verdict_word = f"KTIW learnable, but {mode} attention gets no stage-2 signal ({' = '.join(no_signal)} = 0)"
    title = f"theory of {task!r}, {heads}, {mode} attention — {verdict_word}"
    if arch.rung != 0:
        title = f"rung 0's {title}\nbeside the {cfg.describe()} head, read through its effective tables"
    if sad is not None:  # G and M are zero: show where the saddle sends the model instead
        panels = [
            (sad.U, "unstable direction, U part (per unit projection)", "input word i", "output word o"),
            (sad.S, "unstable direction, S part", "source position l", "target step t"),
        ]
    else:
        rate2 = (M, "stage-2 rate M: S grows like τ²/2·M/(T·L)", "source position l", "target step t")
        if M is None:
            rate2 = (N, "stage-2 content rate N: A grows like τ²/2·N/(T·L)", "input word i", "target step t")
        panels = [(G, "stage-1 rate G: U grows like τ·G", "input word i", "output word o"), rate2]
    predicted = None
    if target == "top" and "S" in two:  # no gold to measure against: show where stage 2 puts attention
        j = min(int(np.searchsorted(tau, t_attend)) if np.isfinite(t_attend) else len(tau), len(tau) - 1)
        e = np.exp(two["S"][j] - two["S"][j].max(axis=1, keepdims=True))
        predicted = (e / e.sum(axis=1, keepdims=True), float(tau[j]), order["positions"][:, 0])
    fig = _plots.theory_figure(panels, curves, title=title, target=target, predicted=predicted)
    write_dir(out, {"theory.json": report, "theory.png": fig}, "theory")
    print(f"{task!r}: {verdict.reason}")
    if "no stage-2 signal" in verdict_word:
        print(f"{verdict_word.split('but ', 1)[1]}: attention stays uniform in the two-stage form")
    if np.isfinite(t_attend):
        where = "gold mass" if target == "gold" else "attention on the position stage 2 ranks first (no gold)"
        print(
            f"{rung0}two-stage: {where} reaches {args.threshold:g} at τ = {t_attend:.4g} (lr·steps under gradient "
            "descent)"
        )
    if report.get("reduced_time_to_attend") is not None:
        start = (
            f" from an init of +{args.scale:g} along the unstable direction" if sad is not None and args.scale else ""
        )
        print(
            f"{rung0}exact reduced dynamics{start}: gold mass reaches {args.threshold:g} "
            f"at τ = {report['reduced_time_to_attend']:.4g}"
        )
    if sad is not None:
        print(
            f"saddle: growth rate {sad.rate:.4g} per unit τ; from init scale {args.scale:g} "
            f"escape after τ ≈ {report['saddle']['escape_tau_linear']:.4g}"
        )
    if beside is not None:
        print(f"{arch.name} head: {beside['note']}")
    print(f"→ {args.out}")
    return 0


def cmd_compare(args) -> int:
    from . import _plots
    from ._compare import compare
    from ._outputs import claim, write_dir

    task = _make_task(args)
    _check_common(args, "compare")
    if args.lr is not None and args.lr <= 0:
        raise BadInput(f"attnsim compare: --lr must be > 0, got {args.lr:g}")
    if (args.batch is not None and args.batch < 1) or args.seed < 0 or (args.steps is not None and args.steps < 1):
        raise BadInput("attnsim compare: --batch and --steps must be >= 1 and --seed >= 0")
    cfg = _model_config(args, task)  # checks the model's options before any work
    options = {f: getattr(args, f) for f in _model_option_names() if getattr(args, f, None) is not None}
    options.pop("heads", None)
    options.pop("attention", None)
    out = claim(args.out, "compare", args.force)
    result = compare(task, heads=cfg.heads, attention=args.attention, model=args.model, **_training(args), **options)
    curves = {k: result[k] for k in ("simulation", "two_stage", "reduced") if result[k] is not None}
    agreement = {
        "format": "attnsim-compare/1",
        "task": result["task"],
        "settings": result["settings"],
        "hardness": result["hardness"],
        "saddle": result["saddle"],
        "agreement": result["agreement"],
    }
    write_dir(
        out,
        {"agreement.json": agreement, "curves.json": curves, "compare.png": _plots.comparison(result)},
        "compare",
    )
    ag = result["agreement"]
    parts = [f"simulation {'learned' if ag['simulated']['success'] else 'did not learn'}"]
    if result["run"].status == "diverged":  # the reason is the warning line the training logged
        parts = [f"simulation diverged at step {result['run'].stopped_at}"]
    if "reduced" in ag:
        parts.append(f"reduced dynamics: largest gold-mass gap {ag['reduced']['max_gold_mass_gap']:.2g}")
    t2 = ag["two_stage"]
    if t2.get("time_ratio") is not None:
        parts.append(f"two-stage: predicted/simulated time to attend {t2['time_ratio']:.3g}")
    if "saddle" in ag:
        parts.append(
            f"saddle predicted {'learning' if ag['saddle']['predicts_learning'] else 'no learning'}: "
            + ("right" if ag["saddle"]["right"] else "wrong")
        )
    print(f"{task!r}: " + "; ".join(parts) + f" → {args.out}")
    return EXIT_DIVERGED if result["run"].status == "diverged" else 0


def cmd_sweep(args) -> int:
    from ._outputs import load_plotting
    from ._sweep import sweep

    if args.workers is not None:
        import numba

        top = numba.config.NUMBA_NUM_THREADS
        if not 1 <= args.workers <= top:
            raise BadInput(f"attnsim sweep: --workers must be from 1 to {top} (the cores Numba can use), "
                           f"got {args.workers}")  # fmt: skip
    load_plotting()  # its phase diagram comes after training
    try:
        table = sweep(
            args.spec, args.out, workers=args.workers, resume=args.resume, scheduler=args.scheduler,
            progress=not args.quiet,
        )  # fmt: skip
    except KeyboardInterrupt:
        results = os.path.join(args.out, "results.csv")
        try:
            with open(results, "rb") as fh:
                rows = fh.read().count(b"\n") - 1
        except OSError:
            rows = -1
        if rows > 0:
            print(f"attnsim sweep: interrupted; {rows} finished runs are in {results}; --resume finishes the sweep",
                  file=sys.stderr)  # fmt: skip
        elif rows == 0:
            print(f"attnsim sweep: interrupted before any run finished; --resume starts the sweep in {args.out}",
                  file=sys.stderr)  # fmt: skip
        else:
            print("attnsim sweep: interrupted; nothing written", file=sys.stderr)
        return 130
    learned = sum(1 for r in table.rows if r["success"])
    print(f"{len(table)} run{'' if len(table) == 1 else 's'}, {learned} learned; results in "
          f"{os.path.join(args.out, 'results.csv')}")  # fmt: skip
    return 0


def cmd_reproduce(args) -> int:
    import time

    from ._reproduce import SECTIONS, checks_summary, reproduce
    from ._reproduce_ladder import PARTIAL

    t0 = time.perf_counter()
    if args.judge_again:
        return _judge_again(args)
    resumed = os.path.isdir(os.path.join(args.out, PARTIAL))  # a ladder that earlier calls began
    existed = os.path.exists(args.out)
    try:
        doc = reproduce(args.out, args.section, full=args.full, progress=not args.quiet, force=args.force)
    except KeyboardInterrupt:
        from ._reproduce import Sizes, _read_results
        from ._reproduce_ladder import kept_counts, rungs

        try:
            finished = [s for s in SECTIONS if s in _read_results(args.out)["sections"]]
        except (OSError, ValueError):
            finished = []
        partial = os.path.join(args.out, PARTIAL)
        keys, groups = kept_counts(partial)
        names = [r["label"] for r in rungs(Sizes.full_sizes() if args.full else Sizes.default()) if r["key"] in keys]
        what = ([f"finished rungs [{'; '.join(names)}]"] if keys else []) + (
            [f"{groups} finished group{'s' if groups > 1 else ''} of runs"] if groups else [])  # fmt: skip
        kept = f"the ladder's {' and '.join(what)} in {partial}" if what else ""
        if finished:
            print(f"attnsim reproduce: interrupted; the finished sections ({', '.join(finished)}) are in {args.out}"
                  + (f", and {kept}" if kept else ""), file=sys.stderr)  # fmt: skip
        elif kept:
            print(f"attnsim reproduce: interrupted; no section finished, but {kept} are kept", file=sys.stderr)
        else:
            if not existed and os.path.isdir(args.out) and not os.listdir(args.out):
                os.rmdir(args.out)  # made by this call, and left empty: as it was
            print(f"attnsim reproduce: interrupted before any section finished; nothing written in {args.out}",
                  file=sys.stderr)  # fmt: skip
        if kept or finished:
            print("attnsim reproduce: the same command goes on from them", file=sys.stderr)
        return 130
    done = [s for s in SECTIONS if s in doc["sections"]]
    for s in done:
        for c in doc["sections"][s]["checks"]:
            if not c["passed"]:
                print(
                    f"attnsim reproduce: {s}: disagrees: {c['claim']} (measured {c['value']}, expected {c['expected']})"
                )
    report = os.path.join(args.out, "report.md")
    ladder = doc["sections"].get("ladder")
    took = f"{time.perf_counter() - t0:.0f} s"
    earlier = ladder["results"].get("seconds_in_earlier_calls", 0.0) if ladder is not None and resumed else 0.0
    if earlier > 0:  # a ladder done in parts: the work it took over from earlier calls is not this call's time
        took += f" in this call, and {earlier:.0f} s of the ladder's in the earlier calls whose work it kept"
    print(f"checks: {checks_summary(doc)} ({took}); report: {report}")
    return 0


def _judge_again(args) -> int:
    from ._reproduce import _read_results, checks_summary, judge_ladder_again

    if args.section != "ladder" or args.full or args.force:
        raise BadInput("attnsim reproduce: --judge-again is for a finished ladder alone: "
                       "attnsim reproduce ladder --judge-again --out DIR")  # fmt: skip
    changed = judge_ladder_again(args.out)
    for c in changed:
        print(f"attnsim reproduce: ladder: {c['rung']}, claim {c['claim']}: {c['was']} -> {c['now']}")
    doc = _read_results(os.path.abspath(args.out))  # as written: what the report now says
    print(f"{len(changed)} verdict{'' if len(changed) == 1 else 's'} changed; checks: {checks_summary(doc)}; "
          f"report: {os.path.join(args.out, 'report.md')}")  # fmt: skip
    return 0


def cmd_gradcheck(args) -> int:
    from . import _gradcheck

    if args.trials < 1:
        raise BadInput(f"attnsim gradcheck: --trials must be >= 1, got {args.trials}")
    if args.seed < 0:
        raise BadInput(f"attnsim gradcheck: --seed must be >= 0, got {args.seed}")
    from . import _arch

    for name in args.model or []:
        if name not in _arch.names():
            raise BadInput(f"attnsim gradcheck: unknown model {name!r}; the models are {', '.join(_arch.names())}")
    rows = _gradcheck.run(args.trials, args.seed, args.model)
    print(_gradcheck.format_table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


class _Stderr(logging.StreamHandler):
    """Log lines to whatever ``sys.stderr`` is when they are written (not the stream of
    the first call: a caller may have replaced it since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _stop_on_sigterm():
    """SIGTERM (a scheduler's stop, ``kill``) ends a command as Ctrl-C does: what is finished is
    kept and named, and it exits 130. Ctrl-C alone would not reach a command started in the
    background of a script, whose shell ignores SIGINT for it. Returns the handler it replaced
    (None off the main thread, where Python cannot set one)."""
    import signal
    import threading

    def stop(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, stop)


def main(argv=None) -> int:
    import signal

    before = _stop_on_sigterm()
    try:
        return _main(argv)
    finally:
        if before is not None:  # main() called from Python (the tests) leaves the handler as it found it
            signal.signal(signal.SIGTERM, before)


def _main(argv) -> int:
    log = logging.getLogger("attnsim")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("attnsim: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    where = "attnsim"  # the command a message comes from, once it is known
    try:
        args, extra = build_parser().parse_known_args(argv)
        where = f"attnsim {args.command}"
        if extra:
            raise BadInput(f"{where}: unrecognized arguments: {' '.join(extra)}")
        commands = {"run": cmd_run, "theory": cmd_theory, "compare": cmd_compare, "sweep": cmd_sweep}
        commands["reproduce"] = cmd_reproduce
        commands["gradcheck"] = cmd_gradcheck
        return commands[args.command](args)
    except BadInput as err:
        print(f"{err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as err:  # the library's own messages may already name the command: not twice
        text = str(err)
        if where != "attnsim" and text.startswith(f"{args.command}: "):
            text = text[len(args.command) + 2 :]
        print(f"{where}: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # e.g. the disk is full while writing results
        print(f"{where}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{where}: interrupted; nothing written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
