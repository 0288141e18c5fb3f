"""What the sections of ``attnsim reproduce`` share: the report's sizes (`Sizes`) and
section (`Section`), its checks and their statistics (Wilson intervals, Kendall's critical
value), the figure helpers and colours, and the salient-word measurements that the rung-0
section and the ladder both make. The sections themselves are in `_reproduce_free` (the
paper's five on rung 0), `_reproduce_rnn` and `_reproduce_ladder`; `_reproduce` runs them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from . import metrics
from ._model import forward

# Colours shared by every figure: simulation solid, theory dashed.
SIM, THEORY, GOOD, BAD = "C0", "C3", "C2", "C1"


@dataclass(frozen=True)
class Sizes:
    """How much each section runs: ``Sizes.default()`` (the paper's sections in about 4 minutes on 2 cores) or
    ``Sizes.full()`` (the paper's sizes)."""

    full: bool
    adam_steps: int  # the paper trained 200 steps; every run that learns here has by step 30
    copy_seeds: int  # permutation-40 and 40-of-60, the paper's headline (20 seeds)
    saddle_seeds: int  # permutation-40 runs on which saddle_projection is scored
    vocabs: tuple = (40, 44, 50, 60, 80, 120)
    vocab_seeds: int = 10  # Adam runs per vocabulary size
    sgd_seeds: int = 3  # SGD runs per vocabulary size (time to attend)
    scales: tuple = (1e-1, 1e-2, 1e-3, 1e-4)
    scale_seeds: int = 4
    scale_steps: int = 400
    candidates: int = 32  # single heads screened (x 3 data seeds)
    combos: int = 16  # 8-head models of each kind
    heads_seeds: int = 8  # models per number of heads 1..8
    # rung 2, the authors' LSTM/GRU seq2seq (`_reproduce_rnn`): the paper's d is 256, 20 seeds
    # (default: d 64, 6 seeds, no multi-head protocol: its screening alone is ~40 runs; --full runs it)
    rnn_dim: int = 64
    rnn_steps: int = 200
    rnn_seeds: int = 6
    rnn_vocabs: tuple = (40, 60)
    rnn_dims: tuple = (64,)
    rnn_sweep_seeds: int = 6
    rnn_mh_dim: int = 64
    rnn_candidates: int = 0  # 0: the multi-head protocol is not run
    rnn_combos: int = 6
    # the validity map across the ladder (`_reproduce_ladder`): copy(L + k, L) with L 10, 16 seeds, the
    # recurrent rungs at d 32 (--full: L 40, 20 seeds, d 256 at the authors' lr 1e-3)
    ladder_len: int = 10
    ladder_seeds: int = 16
    ladder_steps: int = 200
    ladder_word_steps: int = 300
    ladder_dim: int = 32
    ladder_rnn_lr: float = 0.01
    ladder_saves: int = 60  # saves of the keyword run that times each keyword's attention (claim 5)
    ladder_init_seeds: int = 64  # claim 6: permutation runs of its own (seeds from _reproduce_ladder.INIT_SEED)
    ladder_candidates: int = 24  # claim 7: single heads screened (x 3 data seeds) per rung
    ladder_combos: int = 16  # claim 7: 8-head models of each kind per rung
    ladder_rungs: tuple | None = None  # None: every rung (the tests pick a few)

    @classmethod
    def default(cls) -> Sizes:
        return cls(full=False, adam_steps=100, copy_seeds=20, saddle_seeds=60)

    @classmethod
    def full_sizes(cls) -> Sizes:
        return cls(
            full=True, adam_steps=200, copy_seeds=20, saddle_seeds=200, vocab_seeds=20, sgd_seeds=8,
            scales=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6), scale_seeds=10, scale_steps=560, candidates=100,
            combos=50, heads_seeds=20, rnn_dim=256, rnn_seeds=20, rnn_vocabs=(40, 41, 42, 44, 48, 60),
            rnn_dims=(32, 64, 128, 256), rnn_sweep_seeds=10, rnn_mh_dim=256, rnn_candidates=40, rnn_combos=20,
            ladder_len=40, ladder_seeds=20, ladder_word_steps=600, ladder_dim=256, ladder_rnn_lr=1e-3,
            ladder_init_seeds=40, ladder_candidates=40, ladder_combos=20,
        )  # fmt: skip


@dataclass
class Section:
    name: str
    title: str
    results: dict
    figures: dict  # file name -> matplotlib Figure
    checks: list  # {"claim", "value", "expected", "passed"}
    text: str  # markdown, figures referenced by file name
    elapsed: float = 0.0
    files: dict = field(default_factory=dict)  # other files: name -> bytes


# Adam as docs/design.md §3.1 sets it for the free tables, and SGD on the theory's clock
ADAM = dict(optimizer="adam", lr=0.05, batch=128, scale=0.01)


SGD_LR = 80.0  # reduced dynamics with the run's own step stay within 1e-3 of it up to here


def _check(claim, value, expected, passed) -> dict:
    return {"claim": claim, "value": value, "expected": expected, "passed": bool(passed)}


def _verdict(passed: bool) -> str:
    return "**agrees with the paper**" if passed else "**does not agree with the paper**"


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a success rate k/n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def _kendall_critical(n: int, level: float = 0.01) -> float:
    """The smallest Kendall τ that two independent random orders of ``n`` items reach
    with probability below ``level`` (exact: permutations counted by their inversions);
    infinite when even τ = 1 is not that rare (n <= 4 at 1 %): no order is evidence then."""
    if n < 2:
        return math.inf
    counts = [1]  # counts[k]: permutations of m items with k inversions
    for m in range(2, n + 1):
        new = [0] * (len(counts) + m - 1)
        for k, c in enumerate(counts):
            for j in range(m):
                new[k + j] += c
        counts = new
    total, pairs = math.factorial(n), n * (n - 1) // 2
    tail = 0
    for inv, c in enumerate(counts):  # tau = 1 - 2 inv / pairs, largest first
        tail += c
        if tail / total >= level:
            return 1 - 2 * (inv - 1) / pairs if inv > 0 else math.inf
    return math.inf  # pragma: no cover


def _first_at_least(steps, values, level) -> float:
    """The first logged step where ``values`` reaches ``level`` (inf if never)."""
    idx = np.flatnonzero(np.asarray(values, np.float64) >= level)
    return float(np.asarray(steps)[idx[0]]) if idx.size else math.inf


def _percent(x: float) -> str:
    """A fraction as a percentage with two significant digits, small ones too (0.016 %, not 0.0%)."""
    return f"{100 * x:.2g} %"


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—" if v is None or math.isnan(v) else "∞"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _range(values, digits=None) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "—"
    lo, hi = min(vals), max(vals)
    if digits is not None and 0 < max(abs(lo), abs(hi)) < 0.5 * 10.0**-digits:  # "0.000–0.000" says nothing
        digits = None
        f = lambda v: f"{v:.1e}"  # noqa: E731  (one format for both ends: 9.2e-05–1.0e-04)
    else:
        f = (lambda v: f"{v:.{digits}f}") if digits is not None else (lambda v: f"{v:g}")
    return f(lo) if lo == hi else f"{f(lo)}–{f(hi)}"


def _figure(w, h, n=1, m=1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    return fig, fig.subplots(n, m, squeeze=False)


CURVE_KEYS = ("acc", "ktiw_acc", "attn_acc")  # what a learning-curve figure draws


def kept_curves(runs, keys=CURVE_KEYS) -> list[dict]:
    """Each run's learning curves as results.json keeps them (whether it learned, its logged
    steps and the metrics ``keys``), so that a figure can be drawn again with nothing trained."""
    return [{"learned": bool(r.success), "step": [int(v) for v in r.history["step"]],
             **{k: [float(v) for v in r.history[k]] for k in keys}} for r in runs]  # fmt: skip


def curve_runs(kept: list[dict]) -> list:
    """`kept_curves`' records as what `_curve_panel` draws (``.success``, ``.history``)."""
    return [SimpleNamespace(success=c["learned"], history=c) for c in kept]


def _curve_panel(a, runs, key, title, ylabel, what, failed="stuck") -> None:
    """One history metric of every run against the step, learned runs green and the others
    (``failed``: what to call them) orange, with the success threshold; the figure's legend
    goes below its panels (`_legend_below`)."""
    shown = set()
    for r in runs:
        kind = "learned" if r.success else failed
        a.plot(r.history["step"], r.history[key], color=GOOD if r.success else BAD, lw=1, alpha=0.7,
               label=None if kind in shown else f"{kind} {what}")  # fmt: skip
        shown.add(kind)
    a.axhline(0.95, color="0.4", ls=":", lw=1, label="0.95 (success)")
    a.set_ylim(-0.03, 1.03)
    a.set_title(title)
    a.set_xlabel("training step (Adam updates)")
    a.set_ylabel(ylabel)
    a.grid(alpha=0.3)


def _legend_below(fig) -> None:
    """One legend for every panel of ``fig``, below them (a legend inside a panel of many
    curves covers some, wherever it goes)."""
    seen = {}
    for a in fig.axes:
        for h, label in zip(*a.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, h)
    labels = sorted(seen, key=lambda t: (not t.startswith("learned"), t[0].isdigit()))  # learned, others, threshold
    fig.legend([seen[t] for t in labels], labels, loc="outside lower center", ncol=len(labels), fontsize=9,
               frameon=False)  # fmt: skip


def rescue_kinds(bad, good, candidates: int, n: int, rng_for) -> dict:
    """The 8-head models of the rescue protocol, each a list of candidate heads: ``n`` of 8
    bad heads (when there are 8), of 7 bad + 1 good (the good one at a random place; when
    there are 7 and 1) and of 8 random candidates, in that order; ``rng_for(kind)`` gives the
    generator each kind draws from (one stream for all, or one per kind)."""
    kinds = {}
    if len(bad) >= 8:
        rng = rng_for("8 bad")
        kinds["8 bad"] = [list(rng.choice(bad, 8, replace=False)) for _ in range(n)]
    if len(bad) >= 7 and len(good) >= 1:
        rng = rng_for("7 bad + 1 good")
        combos = []
        for _ in range(n):
            heads = list(rng.choice(bad, 7, replace=False))
            heads.insert(int(rng.integers(0, 8)), int(rng.choice(good)))
            combos.append(heads)
        kinds["7 bad + 1 good"] = combos
    rng = rng_for("8 random")
    kinds["8 random"] = [list(rng.choice(candidates, 8, replace=False)) for _ in range(n)]
    return kinds


PAIRS = (
    ("A(α, β^uf)", "alpha", "beta_uf"),
    ("A(β^uf, β^px)", "beta_uf", "beta_px"),
    ("A(Δ, β^uf)", "delta", "beta_uf"),
    ("A(α, β)", "alpha", "beta"),
)


def _proxy_table(task, samples=20_000, seed=0) -> np.ndarray:
    """β^px's table from bag-of-words co-occurrence counts alone (``samples`` sampled
    pairs, add-one smoothing): K[o, i] = log P(o | i) / P(o), how much more often than
    chance output o occurs in a pair whose source holds word i. For one target word
    the positions rank as by log P(o | i), the bag-of-words model's prediction."""
    x, y, _ = task.sample(np.random.default_rng(seed), samples)
    C = np.ones((task.vocab_out, task.vocab_in))
    for t in range(task.tgt_len):
        np.add.at(C, (np.repeat(y[:, t], task.src_len), x.ravel()), 1.0)
    return np.log(C) + np.log(C.sum()) - np.log(C.sum(axis=1, keepdims=True)) - np.log(C.sum(axis=0, keepdims=True))


def _accuracy(cfg, params, x, y) -> float:
    z, _ = forward(cfg, params, x)
    return float(np.mean(z.argmax(axis=-1) == y))


def _attention(cfg, params, x) -> np.ndarray:
    return forward(cfg, params, x)[1].mean(axis=0)  # (B, T, L), heads averaged


def _snapshot_params(run, k) -> dict:
    s = run.snapshots
    return {name: s[name][k] for name in ("U", "b", "S", "A") if name in s}


def salient_tables(cfg, sel, ckpts, x, y, rows) -> tuple[list, dict, np.ndarray, np.ndarray]:
    """The paper's salient-word numbers from the scores ``sel`` (alpha, beta, beta_uf,
    beta_px, delta; the ``rows`` of the held-out ``x`` with a gold position) and the normal
    run's parameters at its checkpoints ``ckpts`` (the last is its final one): each pair's
    agreement A and Kendall τ beside their chance (`PAIRS`); ξ(X), the accuracy of the first
    checkpoint whose attention agrees with the final attention as well as X does; and the
    accuracy and that agreement at every checkpoint (ξ* is the best accuracy)."""
    table = []
    for label, u, v in PAIRS:
        chance = metrics.shuffled_baseline(sel[u], sel[v], seed=1)
        table.append(
            {
                "pair": label, "top5_match": metrics.agreement(sel[u], sel[v]),
                "kendall_tau": metrics.kendall_tau(sel[u], sel[v]),
                "chance_top5": chance["agreement"], "chance_kendall": chance["kendall"],
            }
        )  # fmt: skip
    final = sel["alpha"]
    perf = np.array([_accuracy(cfg, p, x, y) for p in ckpts])
    agree = np.array([metrics.agreement(final, _attention(cfg, p, x)[rows]) for p in ckpts])
    xi = {}
    for key, label in (("beta_uf", "ξ(β^uf)"), ("beta_px", "ξ(β^px)"), ("delta", "ξ(Δ)")):
        target = metrics.agreement(final, sel[key])
        idx = np.flatnonzero(agree >= target)
        xi[label] = {"agreement_with_final_attention": target, "xi": float(perf[idx[0]] if idx.size else perf[-1])}
    return table, xi, perf, agree


def _agreement_table(blocks) -> str:
    out = ["| task | pair | top-5 % match | chance Â | Kendall τ | chance τ |", "|---|---|---:|---:|---:|---:|"]
    for name, b in blocks.items():
        for r in b["agreement"]:
            out.append(
                f"| {name} | {r['pair']} | {r['top5_match']:.3f} | {r['chance_top5']:.3f} | {r['kendall_tau']:.3f} "
                f"| {r['chance_kendall']:.3f} |"
            )
    # ξ(X) and the agreement A(α, X) of the final attention with X that it is read at
    out += ["", "| task | ξ(β^uf) | ξ(β^px) | ξ(Δ) | ξ* | A(α, β^uf) | A(α, β^px) | A(α, Δ) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    keys = ("ξ(β^uf)", "ξ(β^px)", "ξ(Δ)")
    for name, b in blocks.items():
        xs = " | ".join(f"{b['xi'][k]['xi']:.3f}" for k in keys)
        agree = " | ".join(f"{b['xi'][k]['agreement_with_final_attention']:.3f}" for k in keys)
        out.append(f"| {name} | {xs} | {b['xi_star']:.3f} | {agree} |")
    return "\n".join(out)
