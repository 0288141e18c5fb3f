"""``attnsim reproduce ladder``: where the two-stage story holds, rung by rung (docs/design.md §7.10).

Each rung of the ladder — the free-logit model (the paper's approximation), the dot-product
head with context ρ = 0, 0.5 and 1, the authors' LSTM seq2seq, their GRU seq2seq with 8
heads, and their attention classifier — is trained here from scratch, and each claim of
the approximation is measured on it as a number with an interval and a verdict against a
threshold fixed before the run (`CLAIMS`):

1. stage 1 is co-occurrence learning: A(β^uf, β^px) above its chance Â;
2. attention follows KTIW: A(α, β^uf) at the end above its chance Â;
3. KTIW before attention: in ≥ 80 % of the runs that learn, the KTIW probe's accuracy
   reaches 0.5 no later than attention accuracy does;
4. the hard distribution: the permutation copy (V = L) learns less often than V = L + 20
   (Fisher's exact test, one-sided p < 0.05), which learns in ≥ 90 % of seeds;
5. the attention order: words are attended in the order of their stage-2 rate N
   (Kendall τ at the 1 % level of random orders);
6. the init decides the fate: on the permutation copy, a statistic of the init is larger
   in the runs that learn than in those that do not (Mann–Whitney, one-sided p < 0.05).

Claims 1 and 2 are measured on a Zipf word task (translate for the seq2seq rungs, keyword
with Zipf keywords for the classifier), claim 5 on keyword for every rung (the order in which
its keywords are attended), claims 3 and 4 on the copy tasks (keyword for the classifier's
claim 3; claim 4 does not apply to it). Rung 0 trains on the theory's clock for claim 5
(SGD, as ``attnsim reproduce salient``): Adam moves each of its free logits at about its
learning rate whatever its gradient, which erases the order the rates give; the other rungs
share their parameters among words and train with Adam throughout. Claim 6 (a function of the
init predicts a run's fate) is measured on the permutation copy's runs: the saddle
projection of the init where the rung has effective tables (rung 0, and rung 1 with
positional attention, through its tables); on the recurrent rungs, the two coordinates the
saddle projection adds, read off the model at its init (`init_coordinates`: the diagonals of
its effective word and positional tables), each over its spread among default inits, for
the largest head. Claim 7 (the multi-head rescue) follows
the paper's protocol on the permutation copy, on every rung with a multi-head form (all but
the classifier): candidate heads are screened by single-head runs over 3 data seeds from one
shared base model (good: learns on every seed; bad: on none), then 8-head models of 7 bad +
1 good heads are trained against 8-head models of 8 bad heads (on the recurrent rungs for 3
times the steps: 8 averaged heads learn too slowly for the screening's budget).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import hashlib
import math
import os
import pickle
import re
import time

import numpy as np

from . import metrics, tasks, theory
from ._blas import blas_core
from ._model import forward, init_params
from ._reproduce_common import (
    ADAM,
    Section,
    Sizes,
    _agreement_table,
    _check,
    _figure,
    _first_at_least,
    _proxy_table,
    _wilson,
    rescue_kinds,
    salient_tables,
)
from ._train import train, train_many
from .arch.clf import ClassifierConfig
from .arch.dot import DotConfig
from .arch.free import ModelConfig
from .arch.rnn import RNNConfig, init_coordinates

EVAL_SEED = 123_456  # held-out inputs, drawn apart from every training stream
EVAL_N = 1000
WORD_SEED = 0  # the normal and uniform runs of the word tasks
KS = (0, 1, 2, 4, 8, 20)  # V = L + k
KTIW_FIRST = 0.8
KTIW_LOG = 1  # claim 3's runs log every step: at every 5, most runs of rungs 0-1 cross both 0.5s at one log
EASY_RATE = 0.9
FISHER_P = 0.05
RESCUE_P = 0.05
RESCUE_CONTROL = 0.5  # claim 7 is judged only when its control, 8 random heads, learns in at least this share
RESCUE_MIN_SETS = 8  # claim 7 is judged only when its 8-bad models hold at least this many head sets
EIGHT_HEADS = "gru8"  # the rung whose every model has 8 heads (its copy runs too, not only claim 7's)
BASE_SEED = 30_000  # the shared base model of claim 7's candidates (its non-head parameters)
DATA_SEEDS = (0, 1, 2)  # claim 7's screening: each candidate head on three data streams
REF_SEED, REF_INITS = 40_000, 32  # default inits whose spread scales the recurrent coordinates (claim 6)
INIT_SEED = 1000  # claim 6's runs: apart from seeds 0-127, on which its recurrent statistic was chosen
PARTIAL = "ladder.partial"  # in the report's directory: the rungs an unfinished ladder section has finished

CLAIMS = {
    "1": "stage 1 is co-occurrence learning: A(β^uf, β^px) above chance",
    "2": "attention follows KTIW: A(α, β^uf) above chance",
    "3": "KTIW before attention (learned runs)",
    "4": "the permutation copy is hard, V = L + 20 is not",
    "5": "words attended in the order of the stage-2 rate N",
    "6": "a function of the init predicts the run's fate",
    "7": "the multi-head rescue: 7 bad + 1 good vs 8 bad",
}
THRESHOLDS = {
    "1": "A's 95 % interval above Â's",
    "2": "A's 95 % interval above Â's",
    "3": f"≥ {KTIW_FIRST:.0%} of the learned runs whose logs order the two (n/a when they order fewer than half)",
    "4": f"V = L + 20 learns in ≥ {EASY_RATE:.0%}; the permutation less often, Fisher one-sided p < {FISHER_P}",
    "5": "Kendall τ_b of earliness and rate with permutation p < 0.01 (ties kept)",
    "6": "learned runs' init statistic above the stuck runs' (Mann–Whitney one-sided p < 0.05; n/a when the "
    "counts cannot reach it)",
    "7": f"7 bad + 1 good learns more often than 8 bad (Fisher one-sided p < {RESCUE_P}; n/a when the screening "
    "finds fewer than 8 bad or no good heads, when 8 random heads learn in fewer than "
    f"{RESCUE_CONTROL:.0%} of their models, or when the 8-bad models hold fewer than {RESCUE_MIN_SETS} distinct "
    "head sets)",
}
MEASURED = tuple(CLAIMS)
# the paper's assumptions, as it names its own limits; a rung's row says which it breaks (`breaks`)
ASSUMPTIONS = {
    "1": "a source position carries only its own word",
    "2": "the attention logits are free parameters",
    "3": "the two stages are separate",
    "4": "attention is uniform early on",
}


def breaks(key: str) -> str:
    """Which of `ASSUMPTIONS` the rung ``key`` breaks, in words ('' for a key this attnsim
    does not know)."""
    if key == "free":
        return "none: it is the paper's approximation"
    if key.startswith("dot"):
        rho = float(key[3:])
        own = f", and a source state carries ρ/2 = {rho / 2:g} of each neighbour's word" if rho else ""
        return ("2 (its logits are dot products of learned embeddings), and 1 through its values, which carry each "
                f"position's place as well as its word{own}")  # fmt: skip
    if key == "lstm":
        return (
            "1 and 2 entirely: states carry their prefix, and the logits come from the decoder's and encoder's states"
        )
    if key == EIGHT_HEADS:
        return "1 and 2, as the LSTM, with 8 heads averaged"
    if key == "clf":
        return "1 and 2 entirely: bidirectional states carry the whole sentence, and the logits come from a network"
    return ""


def rungs(sizes: Sizes) -> list[dict]:
    """The rungs of the map: a config for a task (``uniform``: attention frozen at 1/L;
    ``heads``: claim 7's single- and 8-head forms, None for the rung's own), the training
    settings, and which of the paper's assumptions the rung breaks. A rung without a
    ``multihead`` form (the classifier) has no claim 7. ``rescue_budget``: claim 7's 8-head
    models train that many times the copy steps (at d 32, 8-head recurrent models from their
    default init learn in none of 16 within 200 steps, where single heads learn in most)."""
    d = sizes.ladder_dim
    rnn_adam = dict(optimizer="adam", lr=sizes.ladder_rnn_lr, batch=128, scale=None)
    dot_adam = dict(optimizer="adam", lr=0.01, batch=128, scale=None)

    def free(task, uniform, heads=None):
        attention = "uniform" if uniform else ("both" if task.name == "translate" else None)
        return ModelConfig.for_task(task, heads=heads or 1, **({"attention": attention} if attention else {}))

    def dot(rho):  # positional attention on copy (the saddle's coordinates), both on the word tasks
        def make(task, uniform, heads=None):
            attention = "uniform" if uniform else ("positional" if task.name == "copy" else "both")
            return DotConfig.for_task(task, heads=heads or 1, dim=32, attention=attention, values="word+position",
                                      context=rho)  # fmt: skip

        return make

    def rnn(own_heads=1, **kw):
        def make(task, uniform, heads=None):
            return RNNConfig.for_task(task, hidden=d, attention="uniform" if uniform else "dot",
                                      heads=heads or own_heads, **kw)  # fmt: skip

        return make

    def clf(task, uniform, heads=None):
        return ClassifierConfig.for_task(task, embed=d, hidden=d, intermediate=d,
                                         attention="uniform" if uniform else "mlp")  # fmt: skip

    out = [
        dict(key="free", label="free logits (rung 0)", make=free, train=dict(ADAM), classifier=False, multihead=True,
             rescue_budget=1, order_train=dict(optimizer="sgd", lr=5.0, batch=128, scale=0.01),
             order_steps=2 * sizes.ladder_word_steps,
             breaks=breaks("free")),
    ]  # fmt: skip
    for rho in (0.0, 0.5, 1.0):
        out.append(dict(
            key=f"dot{rho:g}", label=f"dot head, ρ {rho:g} (rung 1)", make=dot(rho), train=dict(dot_adam),
            classifier=False, multihead=True, rescue_budget=1, breaks=breaks(f"dot{rho:g}"),
        ))  # fmt: skip
    out.append(dict(
        key="lstm", label=f"LSTM seq2seq, d {d} (rung 2)", make=rnn(), train=dict(rnn_adam), classifier=False,
        multihead=True, rescue_budget=3,
        breaks=breaks("lstm"),
    ))  # fmt: skip
    out.append(dict(
        key=EIGHT_HEADS, label=f"GRU seq2seq, 8 heads, d {d} (rung 2)",
        make=rnn(8, cell="gru", shared_embedding=False), train=dict(rnn_adam), classifier=False, multihead=True,
        rescue_budget=3,
        breaks=breaks(EIGHT_HEADS),
    ))  # fmt: skip
    out.append(dict(
        key="clf", label=f"attention classifier, d {d} (rung 3)", make=clf,
        train=dict(optimizer="adam", lr=3e-3, batch=32, scale=None), classifier=True, multihead=False,
        rescue_budget=1,
        breaks=breaks("clf"),
    ))  # fmt: skip
    return out


# ----------------------------------------------------------------------------- measurements


def _alpha(cfg, params, x, y, T, L):
    """α heads-averaged as (B, T, L): the task's T target steps and L source words (a seq2seq
    model's EOS step and EOS state left out)."""
    _, alpha = forward(cfg, params, x, y)
    return np.asarray(alpha, np.float64).mean(axis=0)[:, :T, :L]


def _beta(cfg, params, x, y, T, L):
    """The KTIW probe β as (B, T, L), as `_alpha`. (On the recurrent rungs the probe is NumPy,
    example by example: minutes for the held-out inputs at d 256, so only where it is read.)"""
    return np.asarray(metrics.ktiw_probe(cfg, params, x, y), np.float64)[:, :T, :L]


def _agreement(u, v, rows: int) -> dict:
    """A (top-5 % match) of u with v, its chance Â, their 95 % intervals over the rows."""
    a = metrics.agreement(u, v)
    chance = metrics.shuffled_baseline(u, v, seed=1)["agreement"]
    ia, ic = _wilson(round(a * rows), rows), _wilson(round(chance * rows), rows)
    return {"value": a, "interval": ia, "chance": chance, "chance_interval": ic, "rows": rows, "passed": ia[0] > ic[1]}


def _checkpointed(cfg, task, steps, kw, saves) -> tuple:
    """A run saved ``saves`` times (continued part by part: the same bits as one
    uninterrupted run): the run and [(step, params)]."""
    every = max(1, steps // saves)
    run = train(cfg, task, steps=every, **kw)
    ckpt = [(every, run.params)]
    while ckpt[-1][0] < steps:
        run = run.extend(min(every, steps - ckpt[-1][0]), task)
        ckpt.append((run.state["updates"], run.params))
    return run, ckpt


def _held_out(task):
    return task.sample(np.random.default_rng(EVAL_SEED), EVAL_N)


def _word_task(rung, task, steps, say) -> tuple[dict, dict, dict]:
    """Claims 1 and 2 on ``task``: a normal and a uniform run; returns the claims, their
    final metrics, and the runs with their scores on the held-out inputs (α, β^uf, β^px)."""
    kw = dict(rung["train"], seed=WORD_SEED, log_every=max(1, steps // 60))
    cfg, ucfg = rung["make"](task, False), rung["make"](task, True)
    say(f"ladder: {rung['label']}: {task!r}, a uniform and a normal run")
    uniform = train(ucfg, task, steps=steps, **kw)
    run = train(cfg, task, steps=steps, **kw)
    x, y, gold = _held_out(task)
    T, L = task.tgt_len, task.src_len
    has = gold >= 0
    alpha = _alpha(cfg, run.params, x, y, T, L)
    beta_uf = _beta(ucfg, uniform.params, x, y, T, L)
    beta_px = _proxy_table(task)[y[:, :, None], x[:, None, :]]
    rows = int(has.sum())
    c1 = _agreement(beta_uf[has], beta_px[has], rows)
    c2 = _agreement(alpha[has], beta_uf[has], rows)
    b, t = np.nonzero(has)
    at_gold = beta_uf[b, t, gold[b, t]]
    others = beta_uf[b, t].copy()
    others[np.arange(b.size), gold[b, t]] = -np.inf
    top = beta_uf[b, t].argmax(axis=1)
    g = gold[b, t]
    near = np.concatenate([beta_uf[b[ok], t[ok], g[ok] + d] for d in (-1, 1) for ok in [(g + d >= 0) & (g + d < L)]])
    where = {"gold": float(at_gold.mean()), "elsewhere": float(others.max(axis=1).mean()),  # β^uf: its own vote?
             "argmax_at_gold": float(np.mean(top == g)), "neighbours": float(near.mean()),
             "argmax_by_position": np.bincount(top, minlength=L).tolist(),
             "mean_by_position": beta_uf[b, t].mean(axis=0).tolist()}  # fmt: skip
    finals = {"normal_final": run.final(), "uniform_final": uniform.final(), "beta_uf_at_gold": where}
    runs = {"normal": run, "uniform": uniform, "alpha": alpha, "beta_uf": beta_uf, "beta_px": beta_px}
    return {"1": c1, "2": c2}, finals, runs


def _order_claim(rung, task, steps, saves, say) -> tuple[dict, list]:
    """Claim 5's measurement on ``task`` (keyword): a normal run saved ``saves`` times; its
    raw numbers (`_order`, with the run's optimizer) and the saves. `order_cell` judges it."""
    kw = dict(rung.get("order_train", rung["train"]), seed=WORD_SEED)
    steps = rung.get("order_steps", steps)
    kw["log_every"] = max(1, steps // saves)
    cfg = rung["make"](task, False)
    say(f"ladder: {rung['label']}: {task!r}, when each keyword is attended ({kw['optimizer']}, {steps} steps)")
    _, ckpt = _checkpointed(cfg, task, steps, kw, saves)
    x, y, gold = _held_out(task)
    raw = {**_order(task, cfg, ckpt, x, y, gold), "optimizer": kw["optimizer"], "lr": kw["lr"], "steps": steps}
    return raw, ckpt


def _salient(rung, task, runs, ckpt) -> dict:
    """The paper's salient-word experiment on a classifier rung, as the salient section runs it
    on rung 0: α and β of the normal run, β^uf of the uniform run and β^px (``runs``, from
    `_word_task` on ``task``), ξ over the saves ``ckpt`` of the same normal run (continued part
    by part: the same bits), and the saliency Δ — the gradient on the attention
    logits where stage 1 ends (the uniform run's encoder and β with the attention network's
    last layer at zero, so attention is still uniform); each pair's A and Kendall τ beside
    chance, ξ and ξ*, over the held-out positives."""
    cfg = rung["make"](task, False)
    start = dict(init_params(cfg, WORD_SEED, rung["train"]["scale"]))
    start.update(runs["uniform"].params)
    for k in ("attn_intermediate2logit.weight", "attn_intermediate2logit.bias"):
        start[k] = np.zeros_like(start[k])
    x, y, gold = _held_out(task)
    scores = {
        "alpha": runs["alpha"], "beta": metrics.ktiw_probe(cfg, runs["normal"].params, x, y),
        "beta_uf": runs["beta_uf"], "beta_px": runs["beta_px"], "delta": metrics.saliency(cfg, start, x, y),
    }  # fmt: skip
    rows = gold >= 0
    sel = {k: np.asarray(v, np.float64)[rows] for k, v in scores.items()}
    table, xi, perf, agree = salient_tables(cfg, sel, [p for _, p in ckpt], x, y, rows)
    return {"rows": int(rows.sum()), "agreement": table, "xi": xi, "xi_star": float(perf.max()),
            "checkpoints": {"step": [s for s, _ in ckpt], "accuracy": perf.tolist(),
                            "agreement_with_final": agree.tolist()}}  # fmt: skip


def _order(task, cfg, ckpt, x, y, gold) -> dict:
    """Claim 5's raw numbers: per word (with at least 20 held-out rows), the first checkpoint
    where the mean attention on its gold position (held-out rows whose gold word it is)
    reaches 0.5 (inf: never), and its stage-2 rate N averaged over target steps."""
    T, L = task.tgt_len, task.src_len
    b, t = np.nonzero(gold >= 0)
    g = gold[b, t]
    word = x[b, g]
    words = range(task.keywords) if task.name == "keyword" else range(task.vocab_in)
    counts = np.array([np.sum(word == i) for i in words])
    keep = [i for i, c in zip(words, counts, strict=True) if c >= 20]
    mass = np.empty((len(ckpt), len(keep)))
    for j, (_, params) in enumerate(ckpt):
        alpha = _alpha(cfg, params, x, y, T, L)
        m = alpha[b, t, g]
        mass[j] = [m[word == i].mean() for i in keep]
    steps = [s for s, _ in ckpt]
    first = np.array([_first_at_least(steps, mass[:, j], 0.5) for j in range(len(keep))])
    rate = theory.stage2_content_rate(task).mean(axis=0)[keep]
    return {"words": [int(i) for i in keep], "first_step": [float(v) for v in first], "rate": rate.tolist()}


ORDER_P = 0.01
ORDER_RAW = ("words", "first_step", "rate", "optimizer", "lr", "steps")  # what `order_cell` reads, kept per rung


def order_cell(raw: dict) -> tuple[dict | None, str]:
    """Claim 5's cell from its raw numbers (`_order`; a null first step reads as never):
    Kendall τ_b of earliness against the rate N over every word, a word never attended tied
    after the last save, and its permutation p (`kendall_p`). None, and why, when the saves
    tie the words so much that even rates in their order could not reach p < `ORDER_P`."""
    first = np.array([math.inf if v is None else v for v in raw["first_step"]], np.float64)
    rate = np.asarray(raw["rate"], np.float64)
    seen = np.isfinite(first)
    n, times = int(seen.sum()), int(np.unique(first[seen]).size)
    early = -np.where(seen, first, first[seen].max() + 1 if n else 0.0)  # never: tied, after every save
    best = kendall_p(early, np.argsort(np.argsort(early, kind="stable")))  # the least p these ties allow
    if not best < ORDER_P:  # nan too: every word at one save, or none attended
        return None, (f"{n} of {first.size} keywords were attended, at {times} distinct save step{'s' * (times != 1)}: "
                      f"even rates in their order would give p {best:.2g}, not < {ORDER_P:g}, so these saves cannot "
                      "order them")  # fmt: skip
    p = kendall_p(early, rate)
    return {"value": metrics.kendall_tau(early, rate), "p": p, "attended": n, "distinct_times": times,
            "passed": bool(p < ORDER_P)}, ""  # fmt: skip


def kendall_p(u, v, draws: int = 20_000) -> float:
    """One-sided p of Kendall's τ_b between u and v, ties kept: the fraction of the orderings
    of v (all of them for up to 8 items, else ``draws`` random ones from a fixed stream)
    whose τ_b with u is at least the observed one."""
    import itertools

    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    n = u.size
    if n <= 8:
        perms = np.array(list(itertools.permutations(range(n))))
    else:
        rng = np.random.default_rng(0)
        perms = np.array([rng.permutation(n) for _ in range(draws)])
    i, j = np.triu_indices(n, k=1)
    su = np.sign(u[i] - u[j])
    vs = v[perms]  # each row an ordering of v
    sv = np.sign(vs[:, i] - vs[:, j])
    den = np.sqrt(float((su != 0).sum()) * float((sv[0] != 0).sum()))  # the ties of v are the same in every row
    if den == 0:
        return float("nan")
    taus = (sv * su).sum(axis=1) / den
    observed = float((np.sign(v[i] - v[j]) * su).sum()) / den
    hits = int(np.sum(taus >= observed - 1e-12))
    return hits / len(perms) if n <= 8 else (1 + hits) / (1 + draws)  # a sample counts the observed order too


def _ktiw_first(runs) -> tuple[dict | None, str]:
    """Claim 3 on ``runs``: of those that learned, how many had their KTIW probe accuracy
    reach 0.5 at an earlier log than their attention accuracy, how many at the same log, and
    how many later (`ktiw_cell` judges them), with the median steps of the two crossings."""
    learned = [r for r in runs if r.success]
    ktiw = np.array([_first_at_least(r.history["step"], r.history["ktiw_acc"], 0.5) for r in learned])
    attn = np.array([_first_at_least(r.history["step"], r.history["attn_acc"], 0.5) for r in learned])
    medians = [float(np.median(a)) for a in (ktiw, attn)] if learned else None
    medians = medians and [m if math.isfinite(m) else None for m in medians]  # None: most never reached 0.5
    return ktiw_cell(int((ktiw < attn).sum()), int((ktiw == attn).sum()), len(learned), medians)


def ktiw_cell(first: int, tied: int | None, n: int, medians=None) -> tuple[dict | None, str]:
    """Claim 3's cell: of ``n`` learned runs, ``first`` had KTIW's crossing at an earlier log
    than attention's and ``tied`` at the same log; the value is ``first`` over the runs the
    logs order (``n - tied``). None, and why, with no learned run, when the logs order fewer
    than half of them, or when ``tied`` is None (results from before ties were counted, whose
    count was of runs with KTIW no later: ties as first). ``medians``: the crossings' median
    steps (KTIW, attention), kept to locate a failure."""
    if n == 0:
        return None, "no run learned, so there is no learned run to order"
    if tied is None:
        return None, (f"this ladder's runs were logged every 5 steps and it kept no count of ties (KTIW no later than "
                      f"attention in {first} of {n} learned runs, a tie counted as KTIW first): retrain it to judge "
                      "claim 3")  # fmt: skip
    ordered = n - tied
    if 2 * ordered < n:
        return None, (f"the logs order only {ordered} of {n} learned runs: the rest cross both 0.5s at one log")
    cell = {"value": first / ordered, "interval": _wilson(first, ordered), "count": first, "tied": tied, "of": n,
            "passed": first / ordered >= KTIW_FIRST}  # fmt: skip
    if medians is not None:
        cell["median_steps"] = list(medians)
    return cell, ""


def _fisher_less(k0, n0, k1, n1) -> float:
    """One-sided p of Fisher's exact test that rate 0 is below rate 1."""
    from scipy.stats import fisher_exact

    return float(fisher_exact([[k0, n0 - k0], [k1, n1 - k1]], alternative="less")[1])


def _copy_claims(rung, sizes, say) -> tuple[dict, list]:
    """Claims 3 and 4 on the copy tasks V = L + k, and claim 6 on permutation runs of its own."""
    L, n = sizes.ladder_len, sizes.ladder_seeds
    rows, every = [], []
    for k in KS:
        task = tasks.copy(L + k, L)
        cfg = rung["make"](task, False)
        say(f"ladder: {rung['label']}: copy({L + k}, {L}), {n} seeds")
        runs = _many(cfg, task, seeds=range(n), steps=sizes.ladder_steps, log_every=KTIW_LOG, progress=say.bar,
                     **rung["train"])  # fmt: skip
        ok = int(sum(r.success for r in runs))
        rows.append({"k": k, "vocab": L + k, "learned": ok, "runs": n, "interval": _wilson(ok, n),
                     "time_to_learn": [r.time_to_learn for r in runs if r.success]})  # fmt: skip
        every += runs
        if k == 0:
            cfg_hard, task_hard = cfg, task
    # claim 6 on runs of its own, from seeds the choice of its recurrent statistic did not see
    m = sizes.ladder_init_seeds
    say(f"ladder: {rung['label']}: copy({L}, {L}), {m} seeds from {INIT_SEED} for claim 6")
    ref = _init_reference(cfg_hard, task_hard) if cfg_hard.model == "rnn" else None  # once for the rung's runs
    runs6, stats6 = _many(cfg_hard, task_hard, seeds=range(INIT_SEED, INIT_SEED + m), steps=sizes.ladder_steps,
                          of_init=lambda p: _init_statistic(cfg_hard, p, task_hard, ref)[0], log_every=5,
                          progress=say.bar, **rung["train"])  # fmt: skip
    c6, why6 = _init_claim(cfg_hard, runs6, stats6, ref)
    hard, easy = rows[0], rows[-1]
    p = _fisher_less(hard["learned"], hard["runs"], easy["learned"], easy["runs"])
    c4 = {
        "value": hard["learned"] / hard["runs"], "interval": hard["interval"],
        "easy": easy["learned"] / easy["runs"], "easy_interval": easy["interval"], "fisher_p": p,
        "passed": bool(easy["learned"] / easy["runs"] >= EASY_RATE and p < FISHER_P),
    }  # fmt: skip
    c3, why3 = _ktiw_first(every)
    na = {c: why for c, why in (("3", why3), ("6", why6)) if why}
    return {"3": c3, "4": c4, "6": c6}, rows, na


def _init_reference(cfg, task) -> tuple[tuple, tuple[float, float]]:
    """The held-out inputs of ``task`` and the spreads (standard deviations over `REF_INITS`
    default inits of ``cfg``, seeds from `REF_SEED`, every head pooled) of
    `init_coordinates`' a and c on them: their common scale."""
    held = _held_out(task)
    co = np.array([init_coordinates(cfg, init_params(cfg, REF_SEED + i), *held) for i in range(REF_INITS)])
    return held, (float(co[:, 0].std()), float(co[:, 1].std()))


def _init_statistic(cfg, params, task, ref=None) -> tuple[float, str]:
    """What of the init predicts the fate: the saddle projection where the model has
    positional effective tables; else (the recurrent rungs) the coordinates it adds, read
    off the model (`init_coordinates`: the word and positional diagonals a, c on held-out
    inputs), as ``a/σa + c/σc`` for the largest head, σ their spreads over default inits
    (``ref``: `_init_reference`, computed here when None)."""
    if cfg.model != "rnn":
        return float(theory.saddle_projection(cfg, params, task)), _INIT_WHAT[False]
    held, (sa, sc) = ref if ref is not None else _init_reference(cfg, task)
    a, c = init_coordinates(cfg, params, *held)
    return float(np.max(a / sa + c / sc)), _INIT_WHAT[True]


# claim 6's statistic, by whether the rung is recurrent
_INIT_WHAT = {False: "saddle projection of the init", True: "a/σa + c/σc of the init (largest head)"}


def _init_claim(cfg, runs, value, ref) -> tuple[dict | None, str]:
    """Claim 6: whether the init statistic (``value``, one per run: `_init_statistic`, with
    the spreads ``ref`` on the recurrent rungs) of the runs that learn lies above that of the
    runs that do not (one-sided Mann–Whitney); None, and why, when the counts of learned and
    stuck runs cannot give p < 0.05 (the smallest p is 1 / C(n, k))."""
    from scipy.stats import mannwhitneyu

    ok = np.array([r.success for r in runs])
    k, n = int(ok.sum()), len(runs)
    if 1.0 / math.comb(n, k) >= 0.05:
        return None, (f"{k} of {n} permutation runs learned: no ordering of {k} against {n - k} reaches p < 0.05, "
                      "so the init cannot be tested against the fate")  # fmt: skip
    saddle = cfg.model != "rnn"
    value = np.asarray(value, dtype=float)
    u = mannwhitneyu(value[ok], value[~ok], alternative="greater")
    auc = float(u.statistic) / (ok.sum() * (~ok).sum())  # P(a learned run's statistic > a stuck run's)
    sign = float(np.mean((value > 0) == ok)) if saddle else float("nan")  # the recurrent sum's zero is not calibrated
    return {
        "value": auc, "statistic": _INIT_WHAT[not saddle], "p": float(u.pvalue), "learned": value[ok].tolist(),
        "stuck": value[~ok].tolist(), "sign_right": sign, "spread": None if saddle else list(ref[1]),
        "passed": bool(u.pvalue < 0.05),
    }, ""  # fmt: skip


def head_names(cfg1, cfg8) -> list[str]:
    """The per-head parameters: those whose shape differs between the 1- and 8-head forms
    (heads stacked on their first axis)."""
    s1, s8 = cfg1.param_shapes(), cfg8.param_shapes()
    return [k for k in s1 if s1[k] != s8[k]]


def _rescue_claim(rung, sizes, say) -> tuple[dict | None, str, dict]:
    """Claim 7, the paper's protocol on the permutation copy: ``ladder_candidates`` heads,
    each on the shared base model (seed `BASE_SEED`) as a single-head run over the three
    `DATA_SEEDS`; good heads learn on every seed, bad ones on none; then ``ladder_combos``
    8-head models of 7 bad + 1 good (the good head at a random place), as many of 8 bad, and as
    many of 8 random heads (the control: whether 8 averaged heads learn in the budget), for
    the rung's ``rescue_budget`` times the screening's steps. Holds when 7 + 1 learns more
    often than 8 bad (Fisher one-sided p < `RESCUE_P`). None, and why, when the screening
    finds fewer than 8 bad heads or no good one, or no 8-head model learns."""
    L, n = sizes.ladder_len, sizes.ladder_candidates
    task = tasks.copy(L, L)
    cfg1, cfg8 = rung["make"](task, False, heads=1), rung["make"](task, False, heads=8)
    names = head_names(cfg1, cfg8)
    kw = dict(rung["train"])
    scale = kw.pop("scale")
    base = init_params(cfg1, BASE_SEED, scale)
    cands = [{k: p[k] for k in names} for p in (init_params(cfg1, 1 + i, scale) for i in range(n))]

    def model(heads):
        return {**base, **{k: np.concatenate([cands[h][k] for h in heads]) for k in names}}

    nd = len(DATA_SEEDS)
    say(f"ladder: {rung['label']}: claim 7, screening {n} heads × {nd} data seeds on copy({L}, {L})")
    screen = _many(cfg1, task, [s for _ in range(n) for s in DATA_SEEDS],
                   params=[model([h]) for h in range(n) for _ in DATA_SEEDS], steps=sizes.ladder_steps,
                   log_every=5, progress=say.bar, **kw)  # fmt: skip
    ok = np.array([r.success for r in screen]).reshape(n, nd)
    good, bad = np.flatnonzero(ok.all(axis=1)), np.flatnonzero(~ok.any(axis=1))
    screening = {"candidates": n, "good": good.tolist(), "bad": bad.tolist(), "success": ok.tolist()}
    if len(bad) < 8 or len(good) < 1:
        return (*rescue_cell(screening, None, 0), screening)
    # 8 random heads are the control: can 8 averaged heads learn within the budget at all?
    streams = {"8 bad": [777, 1], "7 bad + 1 good": [777, 2], "8 random": [777, 3]}
    steps8 = sizes.ladder_steps * rung["rescue_budget"]
    kinds = rescue_kinds(bad, good, n, sizes.ladder_combos, lambda kind: np.random.default_rng(streams[kind]))
    rows = {}
    for name, combos in kinds.items():
        say(f"ladder: {rung['label']}: claim 7, {len(combos)} 8-head models of {name}")
        runs = _many(cfg8, task, range(len(combos)), params=[model(c) for c in combos], steps=steps8, log_every=5,
                     progress=say.bar, **kw)  # fmt: skip
        k = int(sum(r.success for r in runs))
        rows[name] = {"heads": [[int(h) for h in c] for c in combos], "learned": k, "runs": len(runs),
                      "interval": _wilson(k, len(runs))}  # fmt: skip
    cell, why = rescue_cell(screening, rows, steps8)
    return cell, why, (screening if cell is not None else {**screening, "models": rows})


def distinct_sets(heads) -> int:
    """How many distinct sets of heads 8-head models hold (a head's place among the 8 does
    not matter: the heads are averaged)."""
    return len({frozenset(h) for h in heads})


def rescue_cell(screening: dict, rows: dict | None, steps: int) -> tuple[dict | None, str]:
    """Claim 7's cell from what its runs gave, and nothing else: the screening (``good`` and
    ``bad`` heads of ``candidates``) and the 8-head models of each kind (``rows``: kind ->
    heads, learned, runs, interval; None when none were trained). None, and why, when the
    screening found fewer than 8 bad heads or no good one; when no 8-head model of any kind
    learned, or the 8-random control learns in fewer than `RESCUE_CONTROL` of its runs (the
    budget, not the heads, decides); or when the 8-bad models hold fewer than
    `RESCUE_MIN_SETS` distinct sets of heads (with exactly 8 bad heads they are one set, and
    Fisher's test would count the luck of their data streams as evidence about heads). The
    7 + 1 kind needs no such rule: 8 distinct sets of 8 bad heads need 9 bad heads or more, and
    then its models are drawn from at least C(9, 7) = 36 sets (16 draws hold 13 on average)."""
    n, good, bad = screening["candidates"], screening["good"], screening["bad"]
    if rows is None or len(bad) < 8 or len(good) < 1:
        return None, (f"the screening found {len(good)} good and {len(bad)} bad heads of {n} (learned on every / "
                      "no data seed): 7 bad + 1 good against 8 bad needs 8 bad and 1 good")  # fmt: skip
    one, eight, rand = rows["7 bad + 1 good"], rows["8 bad"], rows["8 random"]
    counts = (f"learned: 7 bad + 1 good {one['learned']} of {one['runs']}, 8 bad {eight['learned']} of "
              f"{eight['runs']}, 8 random {rand['learned']} of {rand['runs']}")  # fmt: skip
    if one["learned"] + eight["learned"] + rand["learned"] == 0:  # the budget is too short for 8 heads at all
        return None, (f"no 8-head model learned within {steps} steps (0 of {one['runs']} of 7 bad + 1 "
                      f"good, of 8 bad, and of 8 random heads), though {len(good)} of the {n} heads learned alone on "
                      "every data seed: averaged with 7 others, a head moves the output an eighth as much, and the "
                      "budget ends first, so the comparison says nothing")  # fmt: skip
    if rand["learned"] < RESCUE_CONTROL * rand["runs"]:  # the control: can 8 averaged heads learn in the budget
        return None, (f"8 random heads learned in only {rand['learned']} of {rand['runs']} within {steps} steps (the "
                      f"control: at least {RESCUE_CONTROL:.0%} needed): the budget is too short for 8 averaged heads, "
                      f"so the comparison says little about heads ({counts})")  # fmt: skip
    sets = distinct_sets(eight["heads"])
    if sets < RESCUE_MIN_SETS:
        return None, (f"the screening found {len(bad)} bad heads, so the {eight['runs']} models of 8 bad heads hold "
                      f"{sets} distinct head set{'s' if sets > 1 else ''} (at least {RESCUE_MIN_SETS} needed): their "
                      f"outcomes differ by data stream, not by heads, and Fisher's test would count that luck as "
                      f"evidence ({counts})")  # fmt: skip
    p = _fisher_less(eight["learned"], eight["runs"], one["learned"], one["runs"])
    return {
        "value": one["learned"] / one["runs"], "interval": one["interval"], "bad": eight["learned"] / eight["runs"],
        "bad_interval": eight["interval"], "random": rand["learned"] / rand["runs"], "fisher_p": p, "models": rows,
        "steps": steps, "passed": bool(p < RESCUE_P),
    }, ""  # fmt: skip


# ----------------------------------------------------------------------------- finished rungs kept


# modules that only present results: editing them leaves a kept rung valid
_PRESENTATION = ("cli.py", "_plots.py", "_progress.py", "_outputs.py")


@functools.cache
def _code_hash() -> str:
    """SHA-1 of the package's sources that a rung's numbers can depend on: every module but
    `_PRESENTATION` (the ladder's own measurements and report text share a module, so an
    edit of its text too makes kept rungs another run's: strict, never wrong). Read once, by
    `kept_rungs` before a run's first work: the code a long run runs, even if the files
    change under it."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha1()
    for base, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py") and not (base == root and f in _PRESENTATION):
                path = os.path.join(base, f)
                h.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as fh:
                    h.update(fh.read() + b"\0")
    return h.hexdigest()[:16]


def _fingerprint(sizes: Sizes) -> dict:
    """What a rung's numbers depend on: attnsim's version, its code (`_code_hash`) and the
    ladder's sizes (which rungs run is not part of it)."""
    from . import __version__

    ladder = {f.name: getattr(sizes, f.name) for f in dataclasses.fields(sizes)
              if f.name.startswith("ladder_") and f.name != "ladder_rungs"}  # fmt: skip
    return {"attnsim": __version__, "code": _code_hash(), "sizes": ladder, "full": sizes.full}


def kept_counts(keep) -> tuple[list[str], int]:
    """What ``keep`` holds, without reading it: the keys of its kept rungs, and how many
    groups of runs of an unfinished rung."""
    if keep is None or not os.path.isdir(keep):
        return [], 0
    groups = os.path.join(keep, "runs")
    rungs = sorted(f[: -len(".pkl")] for f in os.listdir(keep) if f.endswith(".pkl"))
    return rungs, sum(f.endswith(".pkl") for f in os.listdir(groups)) if os.path.isdir(groups) else 0


def kept_rungs(keep, sizes: Sizes) -> dict:
    """The rungs an interrupted ladder section finished, from the directory ``keep`` (see
    `PARTIAL`), by key; {} when there is none. A ladder is hours at ``--full``: its finished
    rungs are saved as they finish (`section_ladder`), and the same command goes on from
    them, with the numbers an uninterrupted run gives. ValueError (before any work) when a
    file there is unreadable, or was written by another attnsim or for other sizes: those
    rungs are not this run's, and are left as they are."""
    if keep is None or not os.path.isdir(keep):
        return {}
    want, found = _fingerprint(sizes), {}
    for path in _kept_files(keep):
        try:
            with open(path, "rb") as fh:
                saved = pickle.load(fh)
            fp, rung = saved["fingerprint"], saved["rung"]
            key = rung["key"]
        except Exception as err:  # noqa: BLE001 - any unreadable file is refused alike
            raise ValueError(f"{path}: not a finished ladder rung ({type(err).__name__}: {err}); delete {keep} to "
                             "start the ladder over") from None  # fmt: skip
        _same_fingerprint(keep, fp, want)
        found[key] = rung
    for path in _kept_files(os.path.join(keep, "runs")):
        try:
            with open(path, "rb") as fh:
                fp = pickle.load(fh)  # the fingerprint, then the group: its runs and the seconds they took
                if fp == want:
                    group = pickle.load(fh)
                    if not isinstance(group["runs"], list) or not isinstance(group["seconds"], float):
                        raise TypeError("not runs and their seconds")
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{path}: not a finished group of ladder runs ({type(err).__name__}: {err}); delete "
                             f"{keep} to start the ladder over") from None  # fmt: skip
        _same_fingerprint(keep, fp, want)
    return found


def _kept_files(directory) -> list[str]:
    """The kept files (rungs, or groups of runs under ``runs``) in ``directory``, in name order;
    [] when there is no such directory."""
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, n) for n in sorted(os.listdir(directory)) if n.endswith(".pkl")]


class _PlainUnpickler(pickle.Unpickler):
    """Reads plain data (dicts, lists, strings, numbers, NumPy scalars and arrays) and refuses
    any other class or function."""

    _NUMPY = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.multiarray", "scalar"),
              ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy.core.multiarray", "_reconstruct")}  # fmt: skip

    def find_class(self, module, name):
        if (module, name) in self._NUMPY:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def partial_full(keep) -> bool | None:
    """Whether the unfinished ladder kept in ``keep`` was begun with ``--full`` (None: no such
    directory, or no file there says): a report in that directory has the ladder's sizes, so
    its other sections must be at them too. Reads only a group file's first object, its
    fingerprint (a rung's file: all of it, plain data), with an unpickler that builds no class
    or function (`_PlainUnpickler`): a section that is not the ladder runs nothing kept there.
    `kept_rungs` checks the rest."""
    for path in _kept_files(keep) + _kept_files(os.path.join(keep, "runs")):
        try:
            with open(path, "rb") as fh:
                fp = _PlainUnpickler(fh).load()
            fp = fp["fingerprint"] if "rung" in fp else fp  # a rung's file holds its fingerprint
            return bool(fp["full"])
        except Exception:  # noqa: BLE001, S112 - an unreadable file: `kept_rungs` says so when the ladder runs
            continue
    return None


def _same_fingerprint(keep, fp, want) -> None:
    if fp == want:
        return
    if not isinstance(fp, dict):
        raise ValueError(f"{keep} holds files that are not ladder rungs of this attnsim; delete it to start over")
    if fp.get("attnsim") != want["attnsim"] or fp.get("code") != want["code"]:
        raise ValueError(f"{keep} holds ladder rungs another version of attnsim's code finished (attnsim "
                         f"{fp.get('attnsim')}); continue them with that code, or delete it to start the ladder "
                         "over")  # fmt: skip
    sizes = "--full" if fp.get("full") else "the default sizes"
    raise ValueError(f"{keep} holds ladder rungs finished at other sizes ({sizes}); continue them with the command "
                     f"that made them ({'with' if fp.get('full') else 'without'} --full), or delete it to start the "
                     "ladder over")  # fmt: skip


# (directory, sizes, rung key, spent, say) while `section_ladder` keeps its progress: `_many`
# saves each group of runs there as it finishes, and takes the groups an interrupted call
# finished (adding the seconds they took then to spent["seconds"], and the BLAS kernels they
# ran on to spent["blas"])
_KEEPING = contextvars.ContextVar("attnsim_ladder_keeping", default=None)


def _group_key(cfg, task, seeds, kw) -> str:
    """What a group of runs is: its config, task, seeds, settings and given parameters."""
    h = hashlib.sha1()
    settings = {k: v for k, v in kw.items() if k not in ("progress", "params")}
    h.update(repr((cfg.to_dict(), task.spec(), list(seeds), sorted(settings.items()))).encode())
    for p in kw.get("params") or ():
        for name in sorted(p):
            a = np.ascontiguousarray(p[name])
            h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:20]


def _many(cfg, task, seeds, of_init=None, **kw):
    """`train_many` for the map: the runs without their final parameters, optimizer state and
    initial parameters (no claim reads them, and a kept group of a d-256 rung stays small).
    ``of_init``: a function of a run's initial parameters (claim 6's statistic); with it, the
    runs and that function's value for each are returned. While a section keeps its
    progress (`_KEEPING`) each group is saved as it finishes, with the values, and a group
    an interrupted call finished is taken from there (the same runs: a group is its config,
    task, seeds and settings)."""
    keeping = _KEEPING.get()
    path = None
    if keeping is not None:
        keep, sizes, rung, spent, say = keeping
        path = os.path.join(keep, "runs", f"{rung}-{_group_key(cfg, task, seeds, kw)}.pkl")
        if os.path.exists(path):
            with open(path, "rb") as fh:  # its fingerprint (`kept_rungs` checked every file's), then the group
                pickle.load(fh)
                group = pickle.load(fh)
            spent["seconds"] += group["seconds"]
            spent["blas"].add(group["blas"])
            say(f"ladder: these {len(group['runs'])} runs were finished by an earlier call, kept in {path}")
            return group["runs"] if of_init is None else (group["runs"], group["of_init"])
    t = time.perf_counter()
    runs, values = [], []
    for r in train_many(cfg, task, seeds, **kw):
        if of_init is not None:
            values.append(of_init(r.initial_params))
        runs.append(dataclasses.replace(r, params=None, state=None, initial_params=None))
    if path is not None:
        from ._outputs import atomic_write

        os.makedirs(os.path.dirname(path), exist_ok=True)
        group = {"runs": runs, "of_init": values if of_init is not None else None,
                 "seconds": time.perf_counter() - t, "blas": blas_core()}  # fmt: skip
        atomic_write(path, pickle.dumps(_fingerprint(sizes)) + pickle.dumps(group))
    return runs if of_init is None else (runs, values)


def _keep_rung(keep, sizes: Sizes, rung: dict) -> None:
    """Save one finished rung into ``keep`` whole (a temporary file, then a rename)."""
    from ._outputs import atomic_write

    os.makedirs(keep, exist_ok=True)
    atomic_write(os.path.join(keep, f"{rung['key']}.pkl"), pickle.dumps({"fingerprint": _fingerprint(sizes),
                                                                       "rung": rung}))  # fmt: skip


def section_ladder(sizes: Sizes, say, keep=None) -> Section:
    """The validity map. ``keep``: a directory where each rung is saved as it finishes, and
    from which the rungs an interrupted call finished are taken (`kept_rungs`); None: none."""
    t0 = time.perf_counter()
    kept = kept_rungs(keep, sizes)
    earlier = 0.0  # seconds that the rungs and groups taken from ``keep`` took when they were trained
    translate = tasks.translate(40, 40, 20, zipf=1.0, noise=0.05)
    keyword = tasks.keyword(40, 20, keywords=8, zipf=1.0)
    results = {"settings": {
        "copy_length": sizes.ladder_len, "ks": list(KS), "seeds": sizes.ladder_seeds, "copy_steps": sizes.ladder_steps,
        "word_steps": sizes.ladder_word_steps, "saves": sizes.ladder_saves, "rnn_hidden": sizes.ladder_dim,
        "rnn_lr": sizes.ladder_rnn_lr, "candidates": sizes.ladder_candidates, "combos": sizes.ladder_combos,
        "init_seeds": sizes.ladder_init_seeds, "init_seed": INIT_SEED, "ref_inits": REF_INITS,
        "rescue_steps": {r["label"]: sizes.ladder_steps * r["rescue_budget"] for r in rungs(sizes) if r["multihead"]},
        "translate": translate.spec(), "keyword": keyword.spec(), "held_out": EVAL_N, "ktiw_log_every": KTIW_LOG,
    }, "claims": CLAIMS, "thresholds": THRESHOLDS, "rungs": []}  # fmt: skip
    chosen = [r for r in rungs(sizes) if sizes.ladder_rungs is None or r["key"] in sizes.ladder_rungs]
    for i, rung in enumerate(chosen):
        if rung["key"] in kept:
            say(f"ladder: rung {i + 1} of {len(chosen)}, {rung['label']}: finished by an earlier call, kept in {keep}")
            results["rungs"].append(kept[rung["key"]])
            say.part((i + 1) / len(chosen))
            continue
        say(f"ladder: rung {i + 1} of {len(chosen)}, {rung['label']}")
        t1 = time.perf_counter()
        spent = {"seconds": 0.0, "blas": set()}  # of the groups of this rung that earlier calls trained
        token = _KEEPING.set((keep, sizes, rung["key"], spent, say) if keep is not None else None)
        try:
            results["rungs"].append(_rung_results(rung, sizes, say, translate, keyword, t1))
        finally:
            _KEEPING.reset(token)
        results["rungs"][-1]["seconds"] += spent["seconds"]
        results["rungs"][-1]["blas"] = sorted(spent["blas"] | {blas_core()})  # OpenBLAS's kernels, here and before
        earlier += spent["seconds"]
        say.part((i + 1) / len(chosen))  # rung by rung (the rungs' times differ: the groups' lines say more)
        if keep is not None:
            _keep_rung(keep, sizes, results["rungs"][-1])
            for name in os.listdir(os.path.join(keep, "runs")) if os.path.isdir(os.path.join(keep, "runs")) else []:
                if name.startswith(f"{rung['key']}-"):  # the rung holds what its groups gave
                    os.remove(os.path.join(keep, "runs", name))
    results["kept_rungs"] = [r["key"] for r in results["rungs"] if r["key"] in kept]
    earlier += sum(r["seconds"] for r in results["rungs"] if r["key"] in kept)
    results["seconds_in_earlier_calls"] = earlier
    results["blas"] = sorted({c for r in results["rungs"] for c in r["blas"]})
    # its time: this call's and what the rungs and groups it kept took in the calls that trained them
    return ladder_section(results, time.perf_counter() - t0 + earlier)


def ladder_section(results: dict, elapsed: float) -> Section:
    """The section — its checks (rung 0's cells), text and figures — from its results alone."""
    zero = results["rungs"][0]["claims"]
    checks = [  # rung 0's cells (a cell that cannot be measured, with its reason in the text, is not a check)
        _check(f"the paper's approximation (rung 0): {CLAIMS[c]}", _cell_value(c, zero[c]), THRESHOLDS[c],
               zero[c]["passed"])
        for c in MEASURED if zero[c] is not None
    ]  # fmt: skip
    figs = {"ladder_map.png": _fig_map(results), "ladder_copy.png": _fig_copy(results)}
    return Section("ladder", "Where the two-stage story holds: the validity map across the ladder", results, figs,
                   checks, section_text(results), elapsed)  # fmt: skip


# a cell's numbers that may be nan: results.json keeps them as null (JSON has no nan)
_MAYBE_NAN = ("value", "chance", "p", "fisher_p", "bad", "random", "easy")


RULE_7 = (
    f"claim 7 is judged only when the models of 8 bad heads hold at least {RESCUE_MIN_SETS} distinct head "
    "sets (with exactly 8 bad heads they are one set, and their outcomes differ by data stream alone), and when "
    f"its control, 8 random heads, learns in at least {RESCUE_CONTROL:.0%} of its models (else the budget decides)"
)
# the rules newer than some ladders' runs, by claim: `judged_again` applies them and names those that changed a cell
RULES = {
    "3": ("claim 3 counts a tie (both 0.5s crossed at one log) for neither side, and is n/a when no run learned, "
          "when the logs order fewer than half the learned runs, or when the results kept no count of ties"),
    "5": (f"claim 5 keeps a keyword never attended, tied after the last save, and is n/a when the saves tie the "
          f"keywords so much that no order of the rates could reach p < {ORDER_P:g}"),
    "7": RULE_7,
}  # fmt: skip


# what `judged_again` reads, per claim, as the report says it
_KEPT_FOR = {"3": "claim 3's counts", "5": "each keyword's first attended save and rate",
             "7": "the screening and the 8-head models' outcomes"}  # fmt: skip


def judged_again(results: dict) -> list[dict]:
    """Judge a finished ladder's claims 3, 5 and 7 again, in place, by this attnsim's rules
    (`ktiw_cell`, `order_cell`, `rescue_cell`; `RULES`) from the numbers its results keep
    (claim 3's counts, claim 5's first steps and rates, claim 7's screening and 8-head
    models): nothing is trained. A ladder written by an older attnsim is judged as a new one
    would be. ``results`` may come from results.json (its nulls are read as nan again).
    Returns the cells whose verdict or value changed ({rung, claim, was, now}); when any did,
    they are recorded in ``results["judged_again"]`` (with the attnsim that judged them and
    the rules that changed them) and the report says so beside the map. The claims' and
    thresholds' words and each rung's `breaks` are this attnsim's too (words, not verdicts:
    not recorded as changes)."""
    from . import __version__

    results["claims"], results["thresholds"] = dict(CLAIMS), dict(THRESHOLDS)  # in this attnsim's words
    for r in results["rungs"]:
        r["breaks"] = breaks(r["key"]) or r["breaks"]
        for cell in r["claims"].values():
            for k in _MAYBE_NAN if cell is not None else ():
                if k in cell and cell[k] is None:
                    cell[k] = math.nan
    changed = []
    steps = results["settings"]["rescue_steps"]
    for r in results["rungs"]:
        old3 = r["claims"]["3"]
        if old3 is not None:
            _judge(r, "3", *ktiw_cell(old3["count"], old3.get("tied"), old3["of"], old3.get("median_steps")), changed)
        old5 = r["claims"]["5"]
        if "order" not in r and old5 is not None:  # older results kept claim 5's numbers in its cell
            r["order"] = {k: old5[k] for k in ORDER_RAW if k in old5}
        if r.get("order"):
            _judge(r, "5", *order_cell(r["order"]), changed)
        if r.get("screening") is None:  # no multi-head form: nothing was screened
            continue
        old = r["claims"]["7"]
        rows = old["models"] if old is not None else r["screening"].get("models")
        screening = {k: v for k, v in r["screening"].items() if k != "models"}
        cell, why = rescue_cell(screening, rows, steps[r["label"]])
        r["screening"] = screening if cell is not None or rows is None else {**screening, "models": rows}
        _judge(r, "7", cell, why, changed)
    if changed:
        rule = "; ".join(RULES[c] for c in sorted({ch["claim"] for ch in changed}))
        results.setdefault("judged_again", []).append({"by": f"attnsim {__version__}", "rule": rule,
                                                       "changed": changed})  # fmt: skip
    return changed


def _judge(r, c, cell, why, changed) -> None:
    """Put claim ``c``'s new ``cell`` (None: n/a, with ``why``) in the rung ``r``; a change of
    its verdict or value goes into ``changed``."""
    old = r["claims"][c]
    was = "n/a" if old is None else f"{_mark(old)} {_cell_value(c, old)}"
    now = "n/a" if cell is None else f"{_mark(cell)} {_cell_value(c, cell)}"
    r["claims"][c] = cell
    na = {k: v for k, v in r.get("not_applicable", {}).items() if k != c}
    r["not_applicable"] = {**na, c: why} if cell is None else na
    if now != was:
        changed.append({"rung": r["label"], "claim": c, "was": was, "now": now})


def _rung_results(rung, sizes, say, translate, keyword, t1) -> dict:
    """Every claim measured on one rung, as the map's row."""
    word_task = keyword if rung["classifier"] else translate
    cells, finals, runs = _word_task(rung, word_task, sizes.ladder_word_steps, say)
    order, ckpt = _order_claim(rung, keyword, sizes.ladder_word_steps, sizes.ladder_saves, say)
    cells["5"], why5 = order_cell(order)
    if rung["classifier"]:  # its word task is keyword too: the salient-word experiment on its own runs
        finals["salient"] = _salient(rung, keyword, runs, ckpt)
    copy_rows, na = [], {}
    if rung["classifier"]:
        say(f"ladder: {rung['label']}: {keyword!r}, {sizes.ladder_seeds} seeds")
        cfg = rung["make"](keyword, False)
        runs = _many(cfg, keyword, seeds=range(sizes.ladder_seeds), steps=sizes.ladder_word_steps, log_every=KTIW_LOG,
                     progress=say.bar, **rung["train"])  # fmt: skip
        cells["3"], why3 = _ktiw_first(runs)
        cells["4"] = cells["6"] = None  # no copy task for a classifier
        na = {"3": why3} if why3 else {}
        na.update(dict.fromkeys(("4", "6"), "no copy task for a classifier"))
    else:
        copy_cells, copy_rows, na = _copy_claims(rung, sizes, say)
        cells.update(copy_cells)
    screening = None
    if rung["multihead"]:
        cells["7"], why7, screening = _rescue_claim(rung, sizes, say)
        if cells["7"] is None:
            na["7"] = why7
    else:
        cells["7"], na["7"] = None, "one attention head: the classifier has no multi-head form"
    if why5:
        na["5"] = why5
    return {
        "key": rung["key"], "label": rung["label"], "breaks": rung["breaks"], "task": word_task.spec(),
        "claims": cells, "not_applicable": na, "copy": copy_rows, "screening": screening, "order": order, **finals,
        "seconds": time.perf_counter() - t1,
    }  # fmt: skip


# ----------------------------------------------------------------------------- report


def _every(n) -> str:
    return "step" if n == 1 else f"{n} steps"


def _cell_value(c, cell) -> str:
    if cell is None:
        return "n/a"
    if c in ("1", "2"):
        return f"{cell['value']:.2f} vs Â {cell['chance']:.2f}"
    if c == "3":
        tied = cell.get("tied")  # None: older results, whose count took a tie as KTIW first
        if tied is None:
            return f"{cell['count']}/{cell['of']}"
        return f"{cell['count']}/{cell['of'] - tied}" + (f" ({tied} tied)" if tied else "")
    if c == "4":
        return f"k 0: {cell['value']:.2f} vs k {KS[-1]}: {cell['easy']:.2f} (p {cell['fisher_p']:.2g})"
    if c == "7":
        return (f"7 + 1: {cell['value']:.2f} vs 8 bad: {cell['bad']:.2f} (p {cell['fisher_p']:.2g}; 8 random "
                f"{cell['random']:.2f})")  # fmt: skip
    if c == "6":
        what = "saddle" if cell["statistic"].startswith("saddle") else "a/σa + c/σc"
        k, n = len(cell["learned"]), len(cell["learned"]) + len(cell["stuck"])
        return f"AUC {cell['value']:.2f} ({what}, p {cell['p']:.2g}; {k} of {n} learned)"
    return f"τ {cell['value']:.2f} (p {cell['p']:.2g}, {cell['attended']} words)"


# the map's n/a cells in a few words, from the reason the text gives in full
_NA_SHORT = (
    (r"^(\d+) of (\d+) permutation runs learned", r"\1 of \2 learned"),
    (r"found (\d+) good and (\d+) bad heads", r"\1 good, \2 bad heads"),
    (r"no 8-head model learned", "no 8-head model learned"),
    (r"8 random heads learned in only (\d+) of (\d+)", r"8 random: \1 of \2"),
    (r"hold (\d+) distinct head sets?", r"\1 set(s) of 8 bad heads"),
    (r"no copy task", "no copy task"),
    (r"one attention head", "one head"),
    (r"(\d+) of \d+ keywords were attended, at (\d+) distinct save steps?", r"\1 words at \2 save(s)"),
    (r"no run learned", "no run learned"),
    (r"the logs order only (\d+) of (\d+) learned runs", r"\1 of \2 runs ordered"),
    (r"kept no count of ties", "ties not kept"),
)
# each claim's bar in a few words, under its column of the map (`THRESHOLDS` in full)
_BARS = {
    "1": "A's interval above Â's", "2": "A's interval above Â's", "3": f"≥ {KTIW_FIRST:.0%}",
    "4": f"k {KS[-1]} ≥ {EASY_RATE:.0%}; p < {FISHER_P:g}", "5": f"p < {ORDER_P:g}", "6": "p < 0.05",
    "7": f"p < {RESCUE_P:g}",
}  # fmt: skip


def na_short(why: str) -> str:
    """'n/a' and, when the reason is one the ladder gives, its gist in a few words."""
    for pattern, gist in _NA_SHORT:
        m = re.search(pattern, why)
        if m:
            gist = re.sub(r"\b1 (set|save)\(s\)", r"1 \1", m.expand(gist))
            return "n/a: " + gist.replace("(s)", "s")
    return "n/a"


def _mark(cell) -> str:
    return "n/a" if cell is None else ("✓" if cell["passed"] else "✗")


# the settings the section's text reads (`section_text`)
_SETTINGS_READ = ("copy_length", "ks", "seeds", "copy_steps", "word_steps", "saves", "rnn_hidden", "rnn_lr",
                  "candidates", "combos", "init_seeds", "init_seed", "ref_inits", "translate", "held_out")  # fmt: skip


def results_damage(results: dict) -> str:
    """What is wrong with a ladder section's results as its map, text and judge-again read
    them ('' when nothing): `_reproduce` refuses a results file with such a section."""
    rungs, settings = results.get("rungs"), results.get("settings")
    if not isinstance(rungs, list) or not rungs:
        return "no rungs"
    if not isinstance(settings, dict) or not isinstance(settings.get("rescue_steps"), dict):
        return "no settings, or no claim-7 budgets in them"
    if not isinstance(results.get("judged_again", []), list):
        return "'judged_again' is not a list"
    if not isinstance(results.get("blas"), list):
        return "no list of the BLAS kernels it ran on ('blas')"
    lacking = [k for k in _SETTINGS_READ if k not in settings]
    if lacking:
        return f"settings without {', '.join(lacking)}"
    for r in rungs:
        claims = r.get("claims") if isinstance(r, dict) else None
        if not isinstance(claims, dict) or sorted(claims) != sorted(MEASURED):
            return "a rung without exactly claims 1-7"
        if not isinstance(r.get("label"), str) or not isinstance(r.get("not_applicable", {}), dict):
            return "a rung without its label, or with reasons for n/a that are not an object"
        for c, cell in claims.items():
            if cell is None and c not in r.get("not_applicable", {}):
                return f"{r['label']}: claim {c} is n/a without its reason"
            if cell is not None and (not isinstance(cell, dict) or not isinstance(cell.get("passed"), bool)
                                     or not isinstance(cell.get("value", 0.0), (int, float, type(None)))):  # fmt: skip
                return f"{r['label']}: claim {c} is neither null nor a cell with a number and passed true or false"
        sc = r.get("screening")
        heads = isinstance(sc, dict) and isinstance(sc.get("good"), list) and isinstance(sc.get("bad"), list)
        if sc is not None and not (heads and isinstance(sc.get("models", {}), dict)):
            return f"{r['label']}: its claim-7 screening is not an object with its good and bad heads"
        if sc is not None and r["label"] not in settings["rescue_steps"]:
            return f"{r['label']}: no claim-7 budget in the settings"
        kept = _kept_damage(r)
        if kept:
            return f"{r['label']}: {kept}"
    return ""


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _kept_damage(r) -> str:
    """What is wrong with the numbers of the rung ``r`` that `judged_again` judges from (claim
    3's counts, claim 5's first steps and rates, claim 7's heads and outcomes); '' when
    nothing: a judge-again must refuse what it would otherwise read as other numbers."""
    c3 = r["claims"]["3"]
    if c3 is not None:
        tied = c3.get("tied", 0)
        if not (_count(c3.get("count")) and _count(c3.get("of")) and _count(tied) and c3["count"] + tied <= c3["of"]):
            return "claim 3's counts are not whole numbers with KTIW first and ties within the learned runs"
    order = r.get("order")
    if order is not None:
        first, rate = (order.get(k) if isinstance(order, dict) else None for k in ("first_step", "rate"))
        number = (int, float)
        if not (isinstance(first, list) and isinstance(rate, list) and len(first) == len(rate) >= 2
                and all(isinstance(v, number) and not isinstance(v, bool) for v in rate)
                and all(v is None or isinstance(v, number) and not isinstance(v, bool) for v in first)):  # fmt: skip
            return "claim 5's first steps and rates are not two lists of numbers of one length"
    c7 = r["claims"]["7"]
    models = c7.get("models") if c7 is not None else (r.get("screening") or {}).get("models")
    for kind, m in (models or {}).items():
        heads = m.get("heads") if isinstance(m, dict) else None
        if not (isinstance(heads, list) and all(isinstance(h, list) and len(h) == 8 and all(map(_count, h))
                                                for h in heads)):  # fmt: skip
            return f"claim 7's models of {kind} do not hold lists of 8 head numbers"
        if not (_count(m.get("learned")) and _count(m.get("runs")) and m["learned"] <= m["runs"] == len(heads)):
            return f"claim 7's models of {kind} do not count their runs and those that learned"
    return ""


def map_counts(results: dict) -> tuple[int, int, int]:
    """The map's cells that hold, fail, and cannot be measured."""
    cells = [r["claims"][c] for r in results["rungs"] for c in MEASURED]
    held = sum(c is not None and c["passed"] for c in cells)
    failed = sum(c is not None and not c["passed"] for c in cells)
    return held, failed, len(cells) - held - failed


def section_text(results: dict) -> str:
    """The section's text, from its results alone."""
    s = results["settings"]
    head = "| rung | " + " | ".join(f"{c}. {CLAIMS[c]}" for c in CLAIMS) + " |"
    lines = [head, "|---|" + "---|" * len(CLAIMS)]
    for r in results["rungs"]:
        cells = [_cell_value(c, r["claims"][c]) + ("" if r["claims"][c] is None else f" {_mark(r['claims'][c])}")
                 for c in MEASURED]  # fmt: skip
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    held, failed, na = map_counts(results)
    summary = (f"**The map: {held} cells hold, {failed} fail, {na} cannot be measured** (claims 1–7 on "
               f"{len(results['rungs'])} rungs). The report's checks "
               "above count rung 0 only — the paper's claims on the paper's own model; the other rungs' cells are "
               "measurements of where the story carries over, not checks of attnsim.")  # fmt: skip
    again = "".join(
        f"\n\n*Judged again by {j['by']}"
        + (f" under its rule{'s' * (len({ch['claim'] for ch in j['changed']}) > 1)} that {j['rule']}"
           if j.get("rule") else "")
        + ", from what these results keep ("
        + "; ".join(_KEPT_FOR[c] for c in sorted({ch["claim"] for ch in j["changed"]}))
        + "; nothing retrained): "
        + "; ".join(f"{c['rung']}, claim {c['claim']}: {c['was']} → {c['now']}" for c in j["changed"]) + ".*"
        for j in results.get("judged_again", [])
    )  # fmt: skip
    notes = [f"- {r['label']}, claim {c}: {why}." for r in results["rungs"]
             for c, why in r.get("not_applicable", {}).items()]  # fmt: skip
    na_text = ("\n\n**Cells that cannot be measured.**\n\n" + "\n".join(notes)) if notes else ""
    claim2 = _claim2_text(results) + _repeats_text(results)
    thresholds = "\n".join(f"- **{c}.** {CLAIMS[c]}: {THRESHOLDS[c]}." for c in MEASURED)
    fails = []
    for r in results["rungs"]:
        bad = [c for c in MEASURED if r["claims"][c] is not None and not r["claims"][c]["passed"]]
        if bad:
            fails.append(f"- **{r['label']}** fails claim{'s' if len(bad) > 1 else ''} {', '.join(bad)}; of the "
                         f"paper's assumptions it breaks {breaks(r['key']) or r['breaks']}."
                         f"{_locate(r, bad, s['copy_steps'], results['rungs'], s['word_steps'])}")  # fmt: skip
    fail_text = "\n".join(fails) if fails else "Every measured claim holds on every rung."
    slow: dict[int, list] = {}  # claim 7's longer budgets: steps -> rungs
    for label, n in s["rescue_steps"].items():
        if n != s["copy_steps"]:
            slow.setdefault(n, []).append(label.split(" (rung")[0])
    longer = f"{s['copy_steps']} steps" + "".join(f", {n} on the {' and the '.join(k)}" for n, k in slow.items())
    longer += " (8 averaged heads learn more slowly)" if slow else ""
    blas = results["blas"]
    kernels = f"{' and '.join(blas)} kernel{'s' if len(blas) > 1 else ''}"
    L_word = s["translate"]["length"]
    top = metrics._top_k(L_word, 0.05)
    orders = sorted({(r["order"]["optimizer"], r["order"]["lr"], r["order"]["steps"])
                     for r in results["rungs"] if r["key"] != "free"})  # fmt: skip
    zero5 = next((r["order"] for r in results["rungs"] if r["key"] == "free"), None)
    clock = (f"Rung 0 is run on the theory's clock (SGD lr {zero5['lr']:g} for {zero5['steps']} steps): Adam moves "
             "each free logit at about its learning rate whatever its gradient, and on rung 0 it attends every "
             "keyword at one save (docs/design.md §7.10). The other rungs keep their Adam (lr "
             + " and ".join(f"{lr:g}" for lr in sorted({lr for _, lr, _ in orders})) + ", "
             + " and ".join(str(n) for n in sorted({n for _, _, n in orders})) + " steps), whose steps fall on shared "
             "parameters, not on one logit per word; the recurrent rungs' order was not measured under SGD."
             if zero5 is not None and zero5["optimizer"] != "adam" else "")  # fmt: skip
    newer = (" (some of these rules are newer than this ladder's runs: the note below the counts says which verdicts "
             "they changed, and from what)" if results.get("judged_again") else "")  # fmt: skip
    last_init = s["init_seed"] + s["init_seeds"] - 1
    assumptions = "; ".join(f"({k}) {v}" for k, v in ASSUMPTIONS.items())
    return f"""
Every rung is trained here from scratch, and each claim is measured so:

- **Claims 1 and 2**, on {s["translate"]["name"]} (Zipf words; the seq2seq rungs) or keyword (Zipf keywords; the
  classifier): one normal and one uniform-attention run each ({s["word_steps"]} steps), scored on {s["held_out"]}
  held-out inputs. A is the top-5 % match: the share of rows (held-out inputs × target steps with a gold position)
  where one score's top position is among the other's top 5 % (at least its top 1; at length {L_word}, its top
  {top}); Â is the same with one score shuffled within rows. Their 95 % intervals are Wilson's over the rows of one
  run, counted as independent: they carry no spread between seeds.
- **Claim 3**: of claim 4's runs (the classifier's: {s["seeds"]} keyword runs) that learn (token and attention
  accuracy ≥ 0.95 at the end), those whose KTIW probe accuracy reaches 0.5 at an earlier log (every
  {_every(s.get("ktiw_log_every", 5))}) than their attention accuracy does, out of the runs whose logs order the two:
  a run whose two accuracies reach 0.5 at one log is a tie and counts for neither side (logged every 5 steps, as
  before attnsim 0.4.0, most runs of rungs 0 and 1 tie; the cell is n/a when the logs order fewer than half the
  learned runs). The verdict reads the fraction, not its interval.
- **Claim 4**: copy(L + k, L), L = {s["copy_length"]}, k = {", ".join(map(str, s["ks"][:-1]))} and {s["ks"][-1]},
  with {s["seeds"]} seeds each ({s["copy_steps"]} steps).
- **Claim 5**: on keyword for every rung, one normal run saved {s["saves"]} times; a keyword is attended at the
  first save where the mean attention on it (held-out positives holding it) reaches 0.5, and the stage-2 rate N
  (docs/design.md §4.2) of each keyword orders them. {clock} The keywords' rates fall with their Zipf rank, so on
  this task the order by N is also the order by frequency: the claim does not tell the two apart. Its bar, p <
  {ORDER_P:g}, is stricter than the others' because it rests on one run.
- **Claim 6**: {s["init_seeds"]} permutation runs of its own (seeds {s["init_seed"]}–{last_init}, apart from the
  seeds 0–127 on which the recurrent statistic below was chosen); the saddle projection of each run's init on
  rungs 0 and 1; on the recurrent rungs, which have no effective tables, the two coordinates the projection adds,
  read off the model at its init (the word diagonal a: how much moving a head's share of the context from uniform
  to source state l raises the logit of the word at l, to first order; the positional diagonal c: the gold
  attention logit less the mean one), each over its spread among {s["ref_inits"]} default inits, a/σa + c/σc for
  the largest head.
- **Claim 7**, the paper's protocol on the permutation copy, in the rung's own multi-head form (the classifier has
  none): {s["candidates"]} candidate heads, each trained alone ({s["copy_steps"]} steps) on one shared base model
  over 3 data seeds (good: learns on all 3; bad: on none, where the paper's bad is token accuracy < 0.6 on all 3:
  a stuck head on rung 0 still copies by elimination, with token accuracy near 1), then {s["combos"]} 8-head
  models of 7 bad + 1 good heads against {s["combos"]} of 8 bad, and {s["combos"]} of 8 random heads as the
  control (can 8 averaged heads learn in the budget at all?); the 8-head models train {longer}.

The recurrent rungs and the classifier have d {s["rnn_hidden"]} (Adam lr {s["rnn_lr"]:g} for the recurrent seq2seq;
the other rungs' settings: docs/design.md §7.10); the products ran on OpenBLAS's {kernels} (another can change the
last bits). The paper's approximation assumes {assumptions}. Rung 0 keeps all four; each other rung breaks 1, 2
or both ("Where a claim fails" says which), and the claims ask which consequences of the story survive. Each
verdict is computed from the number beside it against a threshold fixed before the run{newer}:

{thresholds}

{summary}{again}

{chr(10).join(lines)}

![the validity map](ladder_map.png)

*Rows: rungs; columns: claims. Blue: the claim holds; orange: it fails; grey: not applicable (no copy task and one
head for a classifier; claim 3 where the logs order fewer than half the learned runs; claim 6 where too few
permutation runs learned, or got stuck, for any ordering to reach p < 0.05; claim 7 where the screening found too
few bad or good heads, 8 random heads learned in fewer than {RESCUE_CONTROL:.0%} of their models (none of any kind,
at the extreme), or the models of 8 bad heads hold fewer than {RESCUE_MIN_SETS} distinct head sets). Claim 6's
statistic is the saddle projection on rungs 0 and 1 and, on rung 2, the two coordinates it adds read off the model
(a/σa + c/σc): a ✗ there says these coordinates do not predict the fate, not that nothing does; its cell says how
many of the runs learned, which bounds the test's power. Claim 5 rests on one run per rung (the order of its
{s["saves"]} saves), so a single ✗ there is one run's order, not a trend.*{na_text}

{claim2}

{_salient_text(results)}

**Where a claim fails.**

{fail_text}

![success against V − L](ladder_copy.png)

*Claim 4 in full: success of the copy task against the vocabulary's excess over the length, per rung ({s["seeds"]}
seeds a point, 95 % Wilson intervals; the rungs' points are set a little apart to be seen, and lines only join a
rung's points: nothing was run between them). The classifier has no copy task.*
"""


def auc_needed(n1: int, n2: int, p: float = 0.05) -> float:
    """The AUC at which a one-sided Mann–Whitney test of ``n1`` against ``n2`` values reaches
    ``p``, by the normal approximation to U (no ties, no continuity correction)."""
    from scipy.stats import norm

    return 0.5 + float(norm.isf(p)) * math.sqrt((n1 + n2 + 1) / (12 * n1 * n2))


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _locate(r, bad, screen_steps, every=(), word_steps=None) -> str:
    """The measurement beside a failure that says where it breaks (``every``: all the rungs'
    rows, which a dot rung's failure is set beside; ``word_steps``: the classifier's claim-3
    runs train that long, the others' as the screening)."""
    parts = []
    c = r["claims"]
    if "4" in bad and r["copy"]:
        curve = ", ".join(f"k {row['k']}: {row['learned']}/{row['runs']}" for row in r["copy"])
        parts.append(f" Success against k = V − L: {curve}.")
        if r["key"] == EIGHT_HEADS and r["screening"] and r["copy"][0]["learned"] > 0:
            ok = np.asarray(r["screening"]["success"], dtype=bool)
            n, nb = ok.shape[0], len(r["screening"]["bad"])
            parts.append(f" These copy runs are 8-head models, each from its own default init. The rung's single "
                         f"heads (claim 7's screening: one head at a time on one shared base model) learned the "
                         f"permutation in {int(ok.sum())} of {ok.size} runs, and {nb} of its {n} heads on no data "
                         f"seed; 8 heads drawn from that pool would all be bad with chance C({nb}, 8)/C({n}, 8) = "
                         f"{math.comb(nb, 8) / math.comb(n, 8):.2g}. So one head alone often fails the permutation "
                         "here (no single head was screened on V = L + 20 to compare), and claim 4 measured on 8 heads "
                         "has the multi-head rescue (claim 7) in it.")  # fmt: skip
    if "7" in bad:
        sc, m = r["screening"], c["7"]["models"]
        one, eight, rand = m["7 bad + 1 good"], m["8 bad"], m["8 random"]
        parts.append(f" Claim 7: of {sc['candidates']} screened heads {len(sc['good'])} learned on every data seed "
                     f"and {len(sc['bad'])} on none; 7 bad + 1 good learned in {one['learned']} of {one['runs']}, "
                     f"8 bad in {eight['learned']} of {eight['runs']}, and 8 random heads (the control) in "
                     f"{rand['learned']} of {rand['runs']}, in {c['7']['steps']} steps.")  # fmt: skip
        if one["learned"] <= rand["learned"]:
            parts.append(" A good head adds nothing here: with it, 8 heads learn no more often than 8 random ones, "
                         "though it learns alone on every data seed.")  # fmt: skip
            sets = distinct_sets(eight["heads"])  # a failed cell's control learned in at least RESCUE_CONTROL
            parts.append(f" Within {c['7']['steps']} steps 8 averaged heads do learn; but the 8-bad models are "
                         f"{sets} distinct head set{'s' * (sets != 1)} (the "
                         f"screening found {len(sc['bad'])} bad heads), and a head was called bad after "
                         f"{screen_steps} steps alone: this does not say whether heads that fail alone fail "
                         "together.")  # fmt: skip
    if "3" in bad:
        k3 = c["3"]
        ordered = k3["of"] - k3["tied"]
        med = k3.get("median_steps") or [None, None]
        at = ", ".join(f"{who} {m:g}" for who, m in zip(("KTIW", "attention"), med, strict=True) if m is not None)
        parts.append(f" KTIW first in {k3['count']} of the {ordered} learned runs the logs order (attention first in "
                     f"{ordered - k3['count']}; {k3['tied']} tied)" + (f"; median steps to 0.5: {at}" if at
                     else "") + ".")  # fmt: skip
        steps = word_steps if r.get("screening") is None and word_steps else screen_steps
        if None not in med and max(med) <= 0.05 * steps:  # both within the first 5 % of the copy runs' steps
            parts.append(f" Both medians fall within the first {max(med):g} of {steps} steps: the two stages, which "
                         "the approximation separates (assumption 3), overlap here, and which accuracy crosses first "
                         "is decided within a step or two of Adam, whose first steps move every parameter by about "
                         "its learning rate.")  # fmt: skip
    if "6" in bad:
        n1, n2 = len(c["6"]["learned"]), len(c["6"]["stuck"])
        parts.append(f" Init against fate: {c['6']['statistic']}, AUC {c['6']['value']:.2f} (p {c['6']['p']:.2g}; "
                     f"{_runs(n1)} learned, {n2} stuck); with these counts p < 0.05 needs an AUC of about "
                     f"{auc_needed(n1, n2):.2f} (the normal approximation to Mann–Whitney's U).")  # fmt: skip
    if "5" in bad:
        c5, raw = c["5"], r["order"]
        by_rate = sorted(range(len(raw["rate"])), key=lambda i: -raw["rate"][i])
        first = [math.inf if v is None else v for v in raw["first_step"]]  # results.json keeps "never" as null
        when = ", ".join(f"{first[i]:g}" if math.isfinite(first[i]) else "never" for i in by_rate)
        parts.append(f" Attention order: τ {c5['value']:.2f}, permutation p {c5['p']:.2g} (needs < {ORDER_P:g}), over "
                     f"{len(first)} keywords, {c5['attended']} attended by the end, at {c5['distinct_times']} distinct "
                     f"save steps; one run. The step at which each keyword is attended, from the largest rate N to the "
                     f"smallest: {when}.")  # fmt: skip
        dots = [x for x in every if x["key"].startswith("dot") and x["claims"]["5"] is not None]
        if r["key"].startswith("dot") and len(dots) > 1:
            taus = ", ".join(f"{x['claims']['5']['value']:.2f} at ρ {x['key'][3:]}" for x in dots)
            rho = float(r["key"][3:])
            held = [x["key"][3:] for x in dots if x["claims"]["5"]["passed"] and float(x["key"][3:]) > rho]
            parts.append(f" τ against the context ρ: {taus}" + (
                f"; at ρ {' and '.join(held)}, further from assumption 1, the order holds, so this one run's order "
                "is not located in ρ." if held else "."))  # fmt: skip
    for k in ("1", "2"):
        if k in bad:
            parts.append(f" Claim {k}: A {c[k]['value']:.2f} against chance {c[k]['chance']:.2f}.")
    px = r["salient"]["xi"]["ξ(β^px)"]["agreement_with_final_attention"] if "salient" in r else math.nan
    if "1" in bad and "2" in bad and px >= 0.99:
        below = all(c[k]["interval"][1] < c[k]["chance_interval"][0] for k in ("1", "2"))
        parts.append(f" Claims 1 and 2 are one measurement here: the final α's top position is β^px's in {px:.0%} of "
                     "the rows, so both ask whether β^uf's top position is the one β^px ranks first"
                     + ("; both lie below chance (A's intervals under Â's), so β^uf's largest values avoid that "
                        "position." if below else "."))  # fmt: skip
    if ("1" in bad or "2" in bad) and "salient" in r:  # the classifier: is β^uf a position's own vote?
        u, uf, nf = r["beta_uf_at_gold"], r["uniform_final"], r["normal_final"]
        where = (f"in {u['argmax_at_gold']:.2f} of the held-out rows" if "argmax_at_gold" in u else
                 f"in {uf['ktiw_acc']:.2f} of its last training batch's rows (the normal model's β: "
                 f"{nf['ktiw_acc']:.2f})")  # fmt: skip
        parts.append(
            f" The uniform model reaches accuracy {uf['acc']:.2f} on its last training batch, and its β^uf's argmax "
            f"is at the gold position {where}; β^uf at the gold position averages {u['gold']:.2f} on the held-out "
            f"rows, its largest elsewhere {u['elsewhere']:.2f}. Every state of the classifier's bidirectional "
            "encoder has read the whole sentence, so with attention uniform any position can carry the evidence."
        )
        if "argmax_by_position" in u:  # where β^uf's largest values are instead
            top, mean = np.asarray(u["argmax_by_position"]), np.asarray(u["mean_by_position"])
            ends = (top[0] + top[-1]) / top.sum()
            parts.append(
                f" They are at the sentence's ends: β^uf's argmax is at the first or the last position in {ends:.0%} "
                f"of the held-out rows, where one direction of the encoder has read the whole sentence (mean β^uf "
                f"{mean[0]:.1f} at the first, {mean[-1]:.1f} at the last, {mean[1:-1].mean():.1f} between). At "
                f"the keyword β^uf is a local maximum ({u['gold']:.1f} at it, {u['neighbours']:.1f} at its "
                f"neighbours) but below its mean over all positions ({mean.mean():.1f}): the ends' states, each a "
                "summary of the sentence, carry the evidence."
            )
    return "".join(parts)


def _repeats_text(results) -> str:
    """Claim 7's models of 8 bad heads repeat a set when the screening found few more than 8:
    how many distinct sets each rung's kinds hold (each model has its own data stream)."""
    parts = []
    for r in results["rungs"]:
        models = (r.get("screening") or {}).get("models") or (r["claims"].get("7") or {}).get("models")
        if not models:
            continue
        sets = {k: distinct_sets(m["heads"]) for k, m in models.items()}
        if min(sets.values()) < max(m["runs"] for m in models.values()):
            parts.append(f"{r['label']}: " + ", ".join(f"{sets[k]} of {k}" for k in models))
    if not parts:
        return ""
    return ("\n\n**Claim 7's repeated head sets.** Where the screening found few more than 8 bad heads, models "
            "of 8 bad heads share their heads and differ only in their data stream (each model has its own); "
            "distinct sets of heads per kind: " + "; ".join(parts) + ". Fisher's test counts each model once, so "
            "there it tests the outcome of those few sets over data streams, not over head sets: below "
            f"{RESCUE_MIN_SETS} distinct sets of 8 bad heads the cell is n/a, and a verdict on not many more rests "
            "on that many sets.")  # fmt: skip


def _salient_text(results) -> str:
    """The salient-word experiment on the classifier rungs, as the salient section reports rung 0's."""
    blocks = {r["label"]: r["salient"] for r in results["rungs"] if "salient" in r}
    if not blocks:
        return ""
    parts = []
    for name, b in blocks.items():
        xi, agree = b["xi"], b["checkpoints"]["agreement_with_final"]
        # ξ(X) read at the first save: that save's attention agrees with the final one as well as X does
        floor = [k for k, v in xi.items() if agree[0] >= v["agreement_with_final_attention"]]
        ab = next((row for row in b["agreement"] if row["pair"] == "A(α, β)"), None)
        dz = next((row for row in b["agreement"] if row["pair"] == "A(Δ, β^uf)"), None)
        a_px, a_uf = (xi[k]["agreement_with_final_attention"] for k in ("ξ(β^px)", "ξ(β^uf)"))
        reading = (": which word the classifier attends is the one co-occurrence counts single out, but the uniform "
                   "model's per-position β does not point at it (claims 1–2)" if a_px >= 0.9 and a_uf < 0.5 else
                   ": both point at the word it attends" if a_px >= 0.9 and a_uf >= 0.9 else "")  # fmt: skip
        parts.append(
            f"On the {name}, the final attention agrees with the co-occurrence proxy β^px at {a_px:.2f} and with "
            f"β^uf at {a_uf:.2f}{reading}."
            + (" A(Δ, β^uf) is 1 by construction: the score is linear in α, so at uniform attention the gradient on "
               "position l's logit is proportional to β^uf[l] less its mean, in every row."
               if dz and dz["top5_match"] >= 0.999 else "")
            + " ξ, the accuracy of the first save whose attention agrees with the final attention as well as a score "
            "does: "
            + ", ".join(f"{k} {v['xi']:.3f}" for k, v in xi.items()) + f", against ξ* = {b['xi_star']:.3f}"
            + (f" ({' and '.join(floor)} {'are' if len(floor) > 1 else 'is'} the first save's accuracy: its attention "
               "already agrees with the final one as well as the score does)" if floor else "") + "."
            + (f" A(α, β) is {ab['top5_match']:.2f} and its Kendall τ {ab['kendall_tau']:.2f}: the two agree on "
               "the top position and not on the order of the rest, which the top-5 % match does not read."
               if ab and ab["top5_match"] - ab["chance_top5"] > 0.5 and ab["kendall_tau"] < ab["chance_kendall"]
               else "")
        )  # fmt: skip
    return (
        "**The salient-word experiment on the classifier** (the salient section's protocol: the normal run's α and "
        "β, the uniform run's β^uf, β^px from co-occurrence counts, and the saliency Δ — the gradient on the "
        "attention logits where stage 1 ends — on the held-out positives; ξ over the normal run's saves).\n\n"
        f"{_agreement_table(blocks)}\n\n" + " ".join(parts)
    )


def _claim2_text(results) -> str:
    """Why A(α, β^uf) is lower on the rungs whose states differ by position than on rung 0."""
    r0 = results["rungs"][0]
    others = [r for r in results["rungs"][1:] if r["task"]["name"] == "translate"]
    if not others:
        return ""
    lo = min(r["claims"]["2"]["value"] for r in others)
    hi = max(r["claims"]["2"]["value"] for r in others)
    ktiw = ", ".join(f"{r['uniform_final']['ktiw_acc']:.2f}" for r in others)
    pairs = ", ".join(f"{r['claims']['2']['value']:.2f}" for r in others)
    near = all(abs(r["claims"]["2"]["value"] - r["uniform_final"]["ktiw_acc"]) < 0.1 for r in others)
    above = all(r["claims"]["2"]["passed"] for r in [r0, *others])
    return (
        f"**Reading claim 2.** A(α, β^uf) is {r0['claims']['2']['value']:.2f} on rung 0 and {lo:.2f}–{hi:.2f} on the "
        "other seq2seq rungs, with chance levels "
        f"{r0['claims']['2']['chance']:.2f} and about {others[0]['claims']['2']['chance']:.2f}. Rung 0's β depends on "
        "a position's word alone, so the positions that hold the same Zipf word tie, and a tie at the top counts as "
        "a match (which raises its chance level too). On the other rungs every position's β differs, and the uniform "
        "model, which has no attention to tell one copy of a word from another, puts its largest β on the aligned "
        f"position in only a fraction of the rows (its KTIW accuracy on its last training batch: {ktiw}; A(α, β^uf): "
        f"{pairs}){': A(α, β^uf) is within 0.1 of that fraction on each' if near else ''}."
        + (" Every one is above chance." if above else "")
    )


def _fig_map(results):
    import textwrap

    from matplotlib.colors import ListedColormap

    rs = results["rungs"]
    cols = list(CLAIMS)
    fig, ax = _figure(12, 1.4 + 1.0 * len(rs))
    a = ax[0, 0]
    grid = np.zeros((len(rs), len(cols)))
    again = {(ch["rung"], ch["claim"]) for j in results.get("judged_again", []) for ch in j["changed"]}
    for i, r in enumerate(rs):
        for j, c in enumerate(cols):
            cell = r["claims"].get(c)
            grid[i, j] = 0 if cell is None else (2 if cell["passed"] else 1)
            if cell is None:
                text = textwrap.fill(na_short(r.get("not_applicable", {}).get(c, "")), 18)
            else:
                text = f"{_mark(cell)} {_cell_value(c, cell)}"
                for a_, b_ in ((" vs ", "\nvs "), (" (", "\n("), ("; ", ";\n"), (", p ", ",\np ")):
                    text = text.replace(a_, b_)
            text += "\n(judged again)" if (r["label"], c) in again else ""
            a.text(j, i, text, ha="center", va="center", fontsize=8.5,
                   fontweight="bold" if grid[i, j] == 1 else "normal")  # fmt: skip
    a.imshow(grid, cmap=ListedColormap(["0.85", "#f4a582", "#92c5de"]), vmin=0, vmax=2, aspect="auto")
    a.set_xticks(np.arange(len(cols) + 1) - 0.5, minor=True)
    a.set_yticks(np.arange(len(rs) + 1) - 0.5, minor=True)
    a.grid(which="minor", color="white", lw=2)
    a.tick_params(which="minor", length=0)

    def unbroken(text):  # a formula is not wrapped in its middle: "A(β^uf, β^px)", "V = L + 20", "7 bad + 1 good"
        text = re.sub(r"\([^)]*\)", lambda m: m.group(0).replace(" ", "\u00a0"), text)
        return re.sub(r"\S+(?: [=+] \S+)+", lambda m: m.group(0).replace(" ", "\u00a0"), text)

    wrapped = [textwrap.fill(unbroken(f"{c}. {CLAIMS[c]}"), 22, break_on_hyphens=False) + f"\n[{_BARS[c]}]"
               for c in cols]  # fmt: skip
    labels = [t.replace("\u00a0", " ").replace("β^uf", "β$^{uf}$").replace("β^px", "β$^{px}$") for t in wrapped]
    a.set_xticks(range(len(cols)), labels, fontsize=8.5)
    a.set_yticks(range(len(rs)), [r["label"].replace(" (rung", "\n(rung") for r in rs], fontsize=9)
    a.set_title("Which parts of the two-stage story hold on which architecture\n(blue: holds; orange, bold: fails; "
                "grey: cannot be measured)", fontsize=10)  # fmt: skip
    return fig


def _fig_copy(results):
    fig, ax = _figure(7.5, 4.5)
    a = ax[0, 0]
    for i, r in enumerate(x for x in results["rungs"] if x["copy"]):
        ks = np.array([row["k"] for row in r["copy"]], float)
        rate = np.array([row["learned"] / row["runs"] for row in r["copy"]])
        lo = np.array([row["interval"][0] for row in r["copy"]])
        hi = np.array([row["interval"][1] for row in r["copy"]])
        off = (i - 2.5) * 0.012  # the rungs' points a little apart (a few % of the step between ticks)
        a.errorbar((ks + 1) * 10**off, rate, yerr=[np.maximum(rate - lo, 0), np.maximum(hi - rate, 0)], fmt="o-",
                   capsize=2, label=r["label"], color=f"C{i}")  # fmt: skip
    a.set_xscale("log")
    a.set_xticks([k + 1 for k in KS], [str(k) for k in KS])
    a.set_xlabel(f"k = V − L (copy(L + k, L), L = {results['settings']['copy_length']}; k = 0: the permutation)")
    a.set_ylabel("fraction of seeds that learn (95 % interval)")
    a.set_ylim(-0.03, 1.03)
    a.axhline(EASY_RATE, color="0.5", ls=":", lw=1, label=f"{EASY_RATE:g}: claim 4's bar for k = 20")
    a.legend(fontsize=7, loc="lower right")
    a.grid(alpha=0.3)
    a.set_title(f"The hard distribution on every rung with a copy task ({results['settings']['seeds']} seeds a point)",
                fontsize=10)  # fmt: skip
    return fig
