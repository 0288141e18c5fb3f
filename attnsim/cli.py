"""The ``attnsim`` command line. The only module that writes to the terminal.

Bad input ends with one line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import tempfile

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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="attnsim", description="Simulate how an attention head learns, beside the theory.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser(
        "run",
        help="train one model on a task; write history, parameters and figures",
        description="Train one model on a task and write DIR/history.json, DIR/params.npz, "
        "DIR/learning_curves.png and DIR/attention.png.",
    )
    r.add_argument("task", choices=TASKS, metavar="TASK", help=f"one of {', '.join(TASKS)}")
    r.add_argument("--out", required=True, metavar="DIR", help="directory for the results")
    r.add_argument("--path", metavar="FILE", help="parallel text file (task 'text'): source<TAB>target per line")
    r.add_argument("--vocab", type=_int, default=60, help="(input) vocabulary size [60]")
    r.add_argument("--vocab-out", type=_int, default=None, help="output vocabulary of 'translate' [= --vocab]")
    r.add_argument(
        "--length",
        type=_int,
        default=None,
        help="sequence length [40; for 'text': truncate to this length, default the longest]",
    )
    r.add_argument("--replace", action="store_true", help="copy/reorder: draw words with replacement")
    r.add_argument("--order", default=None, help="reorder/translate: reverse, rotate[:k], shuffle[:seed], identity")
    r.add_argument("--zipf", type=_number, default=1.0, help="translate: Zipf exponent of the input words [1.0]")
    r.add_argument("--noise", type=_number, default=0.0, help="translate: probability of a random target word [0]")
    r.add_argument("--keywords", type=_int, default=1, help="keyword: number of keywords [1]")
    r.add_argument("--heads", type=_int, default=1, help="number of heads [1]")
    r.add_argument(
        "--attention",
        choices=("positional", "content", "both", "uniform"),
        default=None,
        help="attention logits to learn [positional; content for keyword]",
    )
    r.add_argument("--d-model", type=_int, default=None, help="factor U = W·E with this inner size")
    r.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    r.add_argument("--optimizer", choices=("gd", "sgd", "adam"), default="adam", help="[adam]")
    r.add_argument("--lr", type=_number, default=0.05, help="learning rate [0.05]")
    r.add_argument("--steps", type=_int, default=300, help="number of updates [300]")
    r.add_argument("--batch", type=_int, default=128, help="batch size [128]")
    r.add_argument("--seed", type=_int, default=0, help="seed of the init and of the data [0]")
    r.add_argument("--scale", type=_number, default=0.01, help="init scale, 0 = the exact zero init [0.01]")
    r.add_argument("--log-every", type=_int, default=10, help="log metrics every K steps [10]")
    r.add_argument("--weight-decay", type=_number, default=0.0, help="L2 weight decay [0]")
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    g = sub.add_parser(
        "gradcheck",
        help="finite-difference check of every gradient, as a table",
        description="Compare every gradient of every parameterization with central finite "
        "differences and with the independent NumPy oracle.",
    )
    g.add_argument("--trials", type=_int, default=16, help="random configurations [16]")
    g.add_argument("--seed", type=_int, default=0)
    return p


# =============================================================================
# run
# =============================================================================


def _make_task(args):
    from . import tasks

    L = 40 if args.length is None else args.length
    if args.task == "text":
        if not args.path:
            raise BadInput("attnsim run text: --path FILE is required")
        return tasks.from_parallel_text(args.path, src_len=args.length, tgt_len=args.length)
    if args.path:
        raise BadInput(f"attnsim run {args.task}: --path is only for the task 'text'")
    if args.task == "copy":
        return tasks.copy(args.vocab, L, replace=args.replace)
    if args.task == "reorder":
        return tasks.reorder(args.vocab, L, order=args.order or "reverse", replace=args.replace)
    if args.task == "translate":
        return tasks.translate(
            args.vocab,
            args.vocab_out or args.vocab,
            L,
            zipf=args.zipf,
            noise=args.noise,
            order=args.order or "identity",
        )
    return tasks.keyword(args.vocab, L, keywords=args.keywords)


def _check_out(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise BadInput(f"--out {out}: exists and is not a directory")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(parent, os.W_OK):
        raise BadInput(f"--out {out}: cannot write in {parent}")


def cmd_run(args) -> int:
    import numpy as np

    from . import _plots
    from ._config import ModelConfig
    from ._train import check_compatible, train

    task = _make_task(args)
    cfg = ModelConfig.for_task(task, heads=args.heads, attention=args.attention, d_model=args.d_model, dtype=args.dtype)
    check_compatible(cfg, task)
    if args.lr <= 0:
        raise BadInput(f"attnsim run: --lr must be > 0, got {args.lr:g}")
    for name, minimum in (("steps", 0), ("batch", 1), ("log_every", 1), ("seed", 0)):
        if getattr(args, name) < minimum:
            raise BadInput(f"attnsim run: --{name.replace('_', '-')} must be >= {minimum}, got {getattr(args, name)}")
    if args.scale < 0 or args.weight_decay < 0:
        which = "--scale" if args.scale < 0 else "--weight-decay"
        raise BadInput(f"attnsim run: {which} must be >= 0")
    _check_out(args.out)

    run = train(
        cfg,
        task,
        optimizer=args.optimizer,
        lr=args.lr,
        steps=args.steps,
        batch=args.batch,
        seed=args.seed,
        scale=args.scale,
        log_every=args.log_every,
        weight_decay=args.weight_decay,
        progress=not args.quiet and sys.stderr.isatty(),
    )

    # everything is written into a fresh directory beside DIR, then moved in
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".attnsim-", dir=os.path.dirname(out))
    try:
        run.save(staging)
        title = f"{task!r}, {cfg.heads} head{'s' if cfg.heads > 1 else ''}, {args.optimizer} lr {args.lr:g}"
        _plots.save_figure(
            _plots.learning_curves(run.history, title, heads=cfg.heads), os.path.join(staging, "learning_curves.png")
        )
        x, _, gold = task.sample(np.random.default_rng(12345), 256)
        _plots.save_figure(
            _plots.attention_map(cfg, run.params, x, gold, title=f"final attention — {title}"),
            os.path.join(staging, "attention.png"),
        )
        os.makedirs(out, exist_ok=True)
        for name in sorted(os.listdir(staging)):
            os.replace(os.path.join(staging, name), os.path.join(out, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    f = run.final()
    ttl = run.time_to_learn
    verdict = f"learned at step {ttl}" if run.success else ("diverged" if run.status == "diverged" else "did not learn")

    def fmt(v):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    print(
        f"{task!r}: {verdict} — loss {f['loss']:.4g}, token acc {fmt(f['acc'])}, attention acc "
        f"{fmt(f['attn_acc'])}, KTIW acc {fmt(f['ktiw_acc'])} ({f['step']} steps, {run.elapsed:.1f} s) → {args.out}"
    )
    if run.status == "diverged":
        print(f"attnsim run: {run.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def cmd_gradcheck(args) -> int:
    from . import _gradcheck

    if args.trials < 1:
        raise BadInput(f"attnsim gradcheck: --trials must be >= 1, got {args.trials}")
    rows = _gradcheck.run(args.trials, args.seed)
    print(_gradcheck.format_table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


def main(argv=None) -> int:
    log = logging.getLogger("attnsim")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("attnsim: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            return cmd_run(args)
        return cmd_gradcheck(args)
    except BadInput as err:
        print(f"{err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as err:
        print(f"attnsim: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # e.g. the disk is full while writing results
        print(f"attnsim: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("attnsim: interrupted; nothing written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
