"""`attnsim reproduce ladder`: every cell of the validity map is the number that runs trained
independently of the section give, and every verdict is the one its number gives against
the threshold the section states."""

import dataclasses
import math
import os
import pickle

import numpy as np
import pytest
from scipy.stats import fisher_exact

import attnsim as at
from attnsim import _reproduce as R
from attnsim import _reproduce_common as C
from attnsim import _reproduce_ladder as LD
from attnsim._blas import blas_core

# four of the seven rungs reach every path: the saddle statistic (free, dot), the recurrent coordinates
# (lstm), a rung with context (dot 0.5) and the classifier
TINY = dataclasses.replace(
    R.Sizes.default(), ladder_len=4, ladder_seeds=3, ladder_steps=20, ladder_word_steps=30, ladder_dim=4,
    ladder_saves=6, ladder_init_seeds=8, ladder_rungs=("free", "dot0.5", "lstm", "clf"),
)  # fmt: skip
QUIET = R._Say(False, bar=False)


@pytest.fixture(scope="module")
def section():
    return LD.section_ladder(TINY, QUIET)


def _rung(section, key):
    return next(r for r in section.results["rungs"] if r["key"] == key)


def _make(key):
    return next(r for r in LD.rungs(TINY) if r["key"] == key)


def test_the_map_has_every_rung_and_claim(section):
    assert [r["key"] for r in LD.rungs(R.Sizes.default())] == ["free", "dot0", "dot0.5", "dot1", "lstm", "gru8", "clf"]
    assert [r["key"] for r in section.results["rungs"]] == list(TINY.ladder_rungs)
    for r in section.results["rungs"]:
        assert set(r["claims"]) == set(LD.MEASURED)
        assert (r["claims"]["4"] is None) == (r["key"] == "clf")  # no copy task for a classifier
        assert (r["screening"] is None) == (r["key"] == "clf")  # nor a multi-head form
    assert set(section.figures) == {"ladder_map.png", "ladder_copy.png"}


def test_hard_distribution_cells_are_those_of_independent_runs(section):
    """Claim 4 and the copy rows of the LSTM rung, from runs trained one at a time."""
    rung, cell = _make("lstm"), _rung(section, "lstm")
    L = TINY.ladder_len
    for row in (cell["copy"][0], cell["copy"][-1]):  # the permutation and V = L + 20
        task = at.tasks.copy(L + row["k"], L)
        cfg = rung["make"](task, False)
        runs = [at.train(cfg, task, seed=s, steps=TINY.ladder_steps, log_every=5, **rung["train"])
                for s in range(TINY.ladder_seeds)]  # fmt: skip
        assert row["learned"] == sum(r.success for r in runs)
    hard, easy = cell["copy"][0], cell["copy"][-1]
    p = fisher_exact([[hard["learned"], 3 - hard["learned"]], [easy["learned"], 3 - easy["learned"]]], "less")[1]
    assert cell["claims"]["4"]["fisher_p"] == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize("key", ["free", "dot0.5"])
def test_ktiw_first_cell_is_that_of_independent_runs(section, key):
    """Claim 3: claim 4's copy runs, trained one at a time and logged every step, each
    sorted by hand into KTIW first, tied (both accuracies reach 0.5 at one log) or
    attention first; the cell is the first over those not tied, or n/a with the counts."""
    rung, cell = _make(key), _rung(section, key)
    L = TINY.ladder_len
    first = tied = learned = 0
    for k in LD.KS:
        task = at.tasks.copy(L + k, L)
        for s in range(TINY.ladder_seeds):
            run = at.train(rung["make"](task, False), task, seed=s, steps=TINY.ladder_steps, log_every=1,
                           **rung["train"])  # fmt: skip
            if not run.success:
                continue
            h = run.history
            cross = [next((t for t, v in zip(h["step"], h[name], strict=True) if v >= 0.5), math.inf)
                     for name in ("ktiw_acc", "attn_acc")]  # fmt: skip
            learned += 1
            first += cross[0] < cross[1]
            tied += cross[0] == cross[1]
    c3 = cell["claims"]["3"]
    if c3 is None:
        assert cell["not_applicable"]["3"] == LD.ktiw_cell(first, tied, learned)[1]
        assert learned == 0 or 2 * (learned - tied) < learned
    else:
        assert (c3["count"], c3["tied"], c3["of"]) == (first, tied, learned)
        assert c3["value"] == pytest.approx(first / (learned - tied), rel=1e-12)


def test_co_occurrence_cell_is_that_of_an_independent_uniform_run(section):
    """Claim 1 of rung 0: A(β^uf, β^px) on the held-out inputs, from a uniform run of its own."""
    rung = _make("free")
    task = at.tasks.translate(40, 40, 20, zipf=1.0, noise=0.05)
    ucfg = rung["make"](task, True)
    uniform = at.train(ucfg, task, steps=TINY.ladder_word_steps, seed=LD.WORD_SEED, log_every=1, **rung["train"])
    x, y, gold = task.sample(np.random.default_rng(LD.EVAL_SEED), LD.EVAL_N)
    beta_uf = at.metrics.ktiw_probe(ucfg, uniform.params, x, y)
    beta_px = C._proxy_table(task)[y[:, :, None], x[:, None, :]]
    has = gold >= 0
    want = at.metrics.agreement(beta_uf[has], beta_px[has])
    assert _rung(section, "free")["claims"]["1"]["value"] == pytest.approx(want, abs=0)


def test_attention_order_cell_of_rung_0_from_its_snapshots(section):
    """Claim 5 of rung 0, recomputed from one uninterrupted SGD run's recorded tables (the
    section continues its run part by part, which gives the same bits)."""
    rung = _make("free")
    task = at.tasks.keyword(40, 20, keywords=8, zipf=1.0)
    cfg = rung["make"](task, False)
    steps = rung["order_steps"]
    every = max(1, steps // TINY.ladder_saves)
    run = at.train(cfg, task, steps=steps, seed=LD.WORD_SEED, log_every=every, snapshots=True, **rung["order_train"])
    snaps = run.snapshots
    keep = [k for k, s in enumerate(snaps["step"]) if s > 0]
    ckpt = [(int(snaps["step"][k]), {n: snaps[n][k] for n in ("U", "b", "A")}) for k in keep]
    x, y, gold = task.sample(np.random.default_rng(LD.EVAL_SEED), LD.EVAL_N)
    want = LD._order(task, cfg, ckpt, x, y, gold)
    rung0 = _rung(section, "free")
    assert rung0["order"]["first_step"] == want["first_step"] and rung0["order"]["rate"] == want["rate"]
    cell, why = LD.order_cell(want)
    assert rung0["claims"]["5"] == cell and rung0["not_applicable"].get("5", "") == why


def test_rescue_cell_is_that_of_independent_runs(section):
    """Claim 7 of rung 0: the screening and both kinds of 8-head model, trained one at a
    time from heads drawn here, and Fisher's p from their counts."""
    rung, cell = _make("free"), _rung(section, "free")
    L, n = TINY.ladder_len, TINY.ladder_candidates
    task = at.tasks.copy(L, L)
    cfg1, cfg8 = at.ModelConfig.for_task(task), at.ModelConfig.for_task(task, heads=8)
    kw = {k: v for k, v in rung["train"].items() if k != "scale"}
    scale = rung["train"]["scale"]
    base_b = at.init_params(cfg1, LD.BASE_SEED, scale)["b"]
    heads = [at.init_params(cfg1, 1 + i, scale) for i in range(n)]

    def model(hs):
        return {"U": np.concatenate([heads[h]["U"] for h in hs]), "S": np.concatenate([heads[h]["S"] for h in hs]),
                "b": base_b}  # fmt: skip

    ok = [[at.train(cfg1, task, seed=s, params=model([h]), steps=TINY.ladder_steps, log_every=5, **kw).success
           for s in LD.DATA_SEEDS] for h in range(n)]  # fmt: skip
    assert cell["screening"]["success"] == ok
    assert cell["screening"]["bad"] == [h for h in range(n) if not any(ok[h])]
    assert cell["screening"]["good"] == [h for h in range(n) if all(ok[h])]
    c7, m = cell["claims"]["7"], TINY.ladder_combos
    assert c7 is not None, "TINY's screening should find 8 bad heads and a good one on rung 0"
    counts = {}
    for name, row in c7["models"].items():
        assert len(row["heads"]) == TINY.ladder_combos
        counts[name] = sum(at.train(cfg8, task, seed=s, params=model(hs), steps=TINY.ladder_steps, log_every=5,
                                    **kw).success for s, hs in enumerate(row["heads"]))  # fmt: skip
        assert row["learned"] == counts[name]
        assert all(len(set(hs)) == 8 and set(hs) <= set(range(n)) for hs in row["heads"])
        if name == "7 bad + 1 good":
            assert all(sum(h in cell["screening"]["good"] for h in hs) == 1 for hs in row["heads"])
            assert all(sum(h in cell["screening"]["bad"] for h in hs) == 7 for hs in row["heads"])
        elif name == "8 bad":
            assert all(set(hs) <= set(cell["screening"]["bad"]) for hs in row["heads"])
    assert set(c7["models"]) == {"7 bad + 1 good", "8 bad", "8 random"}
    assert c7["random"] == counts["8 random"] / m
    p = fisher_exact([[counts["8 bad"], m - counts["8 bad"]], [counts["7 bad + 1 good"], m - counts["7 bad + 1 good"]]],
                     "less")[1]  # fmt: skip
    assert c7["fisher_p"] == pytest.approx(p, rel=1e-12) and c7["passed"] == (p < LD.RESCUE_P)


def test_init_statistic_is_the_saddle_projection_or_the_recurrent_coordinates():
    """Claim 6's statistic: the saddle projection through the effective tables where the
    rung has positional ones (rung 0; rung 1 on copy), else the largest head's a/σa + c/σc,
    σ the spreads of a and c over the reference default inits."""
    from attnsim.arch.rnn import init_coordinates

    task = at.tasks.copy(TINY.ladder_len, TINY.ladder_len)
    for key in ("free", "dot0.5"):
        rung = _make(key)
        cfg = rung["make"](task, False)
        params = at.init_params(cfg, 3, rung["train"]["scale"])
        value, what = LD._init_statistic(cfg, params, task)
        assert what.startswith("saddle") and value == at.theory.saddle_projection(cfg, params, task)
    cfg = _make("gru8")["make"](task, False)
    x, y, gold = task.sample(np.random.default_rng(LD.EVAL_SEED), LD.EVAL_N)
    ref = np.array([init_coordinates(cfg, at.init_params(cfg, LD.REF_SEED + i), x, y, gold)
                    for i in range(LD.REF_INITS)])  # fmt: skip
    assert ref.shape == (LD.REF_INITS, 2, 8)
    a, c = init_coordinates(cfg, at.init_params(cfg, 3), x, y, gold)
    value, what = LD._init_statistic(cfg, at.init_params(cfg, 3), task)
    assert what.startswith("a/σa + c/σc")
    assert value == pytest.approx(np.max(a / ref[:, 0].std() + c / ref[:, 1].std()), rel=1e-12)


@pytest.mark.parametrize("key", ["free", "lstm"])
def test_init_cell_is_that_of_independent_runs(section, key):
    """Claim 6: its runs of the permutation (seeds from `INIT_SEED`), trained one at a time
    here; the AUC counts the pairs directly (or the cell is n/a because the
    counts cannot reach p < 0.05: at these sizes the LSTM learns in none)."""
    rung, cell = _make(key), _rung(section, key)
    task = at.tasks.copy(TINY.ladder_len, TINY.ladder_len)
    cfg = rung["make"](task, False)
    runs = [at.train(cfg, task, seed=s, steps=TINY.ladder_steps, log_every=5, **rung["train"])
            for s in range(LD.INIT_SEED, LD.INIT_SEED + TINY.ladder_init_seeds)]  # fmt: skip
    ok = [r.success for r in runs]
    c6 = cell["claims"]["6"]
    if c6 is None:
        k = sum(ok)
        assert f"{k} of {len(runs)} permutation runs learned" in cell["not_applicable"]["6"]
        assert 1 / math.comb(len(runs), k) >= 0.05
        return
    ref = LD._init_reference(cfg, task) if key == "lstm" else None
    stat = [LD._init_statistic(cfg, r.initial_params, task, ref)[0] for r in runs]
    learned = [v for v, o in zip(stat, ok, strict=True) if o]
    stuck = [v for v, o in zip(stat, ok, strict=True) if not o]
    assert c6["learned"] == pytest.approx(learned, rel=1e-12) and c6["stuck"] == pytest.approx(stuck, rel=1e-12)
    pairs = sum((u > v) + 0.5 * (u == v) for u in learned for v in stuck)
    assert c6["value"] == pytest.approx(pairs / (len(learned) * len(stuck)), rel=1e-12)


def test_verdicts_follow_their_numbers(section):
    for r in section.results["rungs"]:
        c = r["claims"]
        for k in ("1", "2"):
            assert c[k]["passed"] == (c[k]["interval"][0] > c[k]["chance_interval"][1])
            assert c[k]["interval"][0] <= c[k]["value"] <= c[k]["interval"][1]
        if c["3"] is not None:
            ordered = c["3"]["of"] - c["3"]["tied"]
            assert c["3"]["passed"] == (c["3"]["count"] / ordered >= LD.KTIW_FIRST) and 2 * ordered >= c["3"]["of"]
        else:
            assert "3" in r["not_applicable"]
        if c["4"] is not None:
            assert c["4"]["passed"] == (c["4"]["easy"] >= LD.EASY_RATE and c["4"]["fisher_p"] < LD.FISHER_P)
        if c["5"] is not None:
            assert c["5"]["passed"] == (c["5"]["p"] < LD.ORDER_P)
        else:
            assert "5" in r["not_applicable"]
        if c["6"] is not None:
            assert c["6"]["passed"] == (c["6"]["p"] < 0.05) and 0 <= c["6"]["value"] <= 1
            assert len(c["6"]["learned"]) + len(c["6"]["stuck"]) == TINY.ladder_init_seeds
        else:  # the reason is stated: a classifier, or counts that cannot reach p < 0.05
            assert "6" in r["not_applicable"]
        if c["7"] is not None:
            assert c["7"]["passed"] == (c["7"]["fisher_p"] < LD.RESCUE_P)
            assert c["7"]["interval"][0] <= c["7"]["value"] <= c["7"]["interval"][1]
        else:  # a classifier, or a screening without 8 bad heads and a good one
            assert "7" in r["not_applicable"]
            sc = r["screening"]
            nothing = "models" in (sc or {}) and sum(m["learned"] for m in sc["models"].values()) == 0
            one_set = "models" in (sc or {}) and len({frozenset(h) for h in sc["models"]["8 bad"]["heads"]}) < 8
            assert r["key"] == "clf" or len(sc["bad"]) < 8 or not sc["good"] or nothing or one_set
    # the report's table prints each verdict beside its number
    for r in section.results["rungs"]:
        row = next(line for line in section.text.splitlines() if line.startswith(f"| {r['label']} |"))
        marks = [cell.strip().split()[-1] for cell in row.strip("|").split("|")[1:]]
        assert marks == [LD._mark(r["claims"][k]) for k in LD.MEASURED]
    cells = [r["claims"][k] for r in section.results["rungs"] for k in LD.MEASURED]
    held, failed = (
        sum(c is not None and c["passed"] for c in cells),
        sum(c is not None and not c["passed"] for c in cells),
    )
    assert LD.map_counts(section.results) == (held, failed, sum(c is None for c in cells))
    assert (
        f"**The map: {held} cells hold, {failed} fail, {len(cells) - held - failed} cannot be measured**"
        in section.text
    )
    zero = section.results["rungs"][0]["claims"]
    assert [c["passed"] for c in section.checks] == [zero[k]["passed"] for k in LD.MEASURED if zero[k] is not None]


def test_kendall_p_counts_orderings_with_ties():
    """The permutation p of claim 5: exact over all orderings for up to 8 items, ties kept."""
    from itertools import permutations

    assert LD.kendall_p(np.arange(6.0), np.arange(6.0)) == pytest.approx(1 / 720)
    u = -np.array([20, 30, 20, 20, 30, 30, 40, 40.0])  # tied earliness, as 8 keywords at 4 saves
    v = np.arange(8.0)[::-1]
    tau = at.metrics.kendall_tau(u, v)
    brute = np.mean([at.metrics.kendall_tau(u, v[list(p)]) >= tau - 1e-12 for p in permutations(range(8))])
    assert LD.kendall_p(u, v) == pytest.approx(brute, abs=1e-12)


def test_paper_is_the_default_and_all_adds_the_ladder():
    assert R.parse_sections("paper") == R.PAPER and "ladder" not in R.PAPER
    assert R.parse_sections("all")[-1] == "ladder" and R.parse_sections("ladder") == ("ladder",)
    with pytest.raises(ValueError, match="choose from .*, paper or all"):
        R.parse_sections("ladders")


def test_salient_block_of_the_classifier(section):
    """The classifier's salient-word numbers: its A(α, β^uf) and A(β^uf, β^px) are claims 2
    and 1 of the map; Δ, from a uniform run trained here, ranks as β^uf does in every row
    (the score is linear in α); ξ* is the best accuracy over the saves, and each ξ one of them."""
    rung, r = _make("clf"), _rung(section, "clf")
    sal = r["salient"]
    pairs = {row["pair"]: row for row in sal["agreement"]}
    assert pairs["A(α, β^uf)"]["top5_match"] == r["claims"]["2"]["value"]
    assert pairs["A(β^uf, β^px)"]["top5_match"] == r["claims"]["1"]["value"]
    task = at.tasks.keyword(40, 20, keywords=8, zipf=1.0)
    ucfg = rung["make"](task, True)
    uniform = at.train(ucfg, task, steps=TINY.ladder_word_steps, seed=LD.WORD_SEED, log_every=1, **rung["train"])
    x, y, gold = task.sample(np.random.default_rng(LD.EVAL_SEED), LD.EVAL_N)
    beta_uf = at.metrics.ktiw_probe(ucfg, uniform.params, x, y)[gold >= 0]
    cfg = rung["make"](task, False)
    start = {**at.init_params(cfg, LD.WORD_SEED), **uniform.params}
    for k in ("attn_intermediate2logit.weight", "attn_intermediate2logit.bias"):
        start[k] = np.zeros_like(start[k])  # attention uniform: where stage 1 ends
    delta = at.metrics.saliency(cfg, start, x, y)[gold >= 0]
    assert at.metrics.agreement(delta, beta_uf) == 1.0 == pairs["A(Δ, β^uf)"]["top5_match"]
    assert at.metrics.kendall_tau(delta, beta_uf) == pytest.approx(pairs["A(Δ, β^uf)"]["kendall_tau"], abs=1e-12)
    acc = sal["checkpoints"]["accuracy"]
    assert sal["xi_star"] == max(acc) and all(v["xi"] in acc for v in sal["xi"].values())
    assert len(acc) == len(sal["checkpoints"]["step"]) == TINY.ladder_saves
    assert "The salient-word experiment on the classifier" in section.text


def _numbers(rung):
    """A rung's results as results.json holds them, less the time it took."""
    from attnsim._outputs import clean_json

    return clean_json({k: v for k, v in rung.items() if k != "seconds"})


def test_an_interrupted_ladder_goes_on_from_its_finished_rungs(section, tmp_path, monkeypatch):
    """Each rung is kept as it finishes, and within a rung each group of runs: a call
    interrupted in the second rung's multi-head claim leaves the first rung and the second's
    copy groups in ``keep``; the next call trains only what is missing, and both rungs'
    numbers are those of the uninterrupted section, and so is its text."""
    sizes = dataclasses.replace(TINY, ladder_rungs=("free", "dot0.5"))
    keep = tmp_path / LD.PARTIAL
    rescue = LD._rescue_claim

    def interrupted(rung, *a, **k):
        if rung["key"] == "dot0.5":
            raise KeyboardInterrupt
        return rescue(rung, *a, **k)

    monkeypatch.setattr(LD, "_rescue_claim", interrupted)
    with pytest.raises(KeyboardInterrupt):
        LD.section_ladder(sizes, QUIET, keep=str(keep))
    assert sorted(p.name for p in keep.glob("*.pkl")) == ["free.pkl"]
    groups = {p.name for p in (keep / "runs").iterdir()}
    spent_before = 0.0  # what the kept groups took: each file is its fingerprint, then the group
    with_values = 0
    for p in (keep / "runs").iterdir():
        with open(p, "rb") as fh:
            fp, group = pickle.load(fh), pickle.load(fh)
        runs, values = group["runs"], group["of_init"]
        assert fp == LD._fingerprint(sizes) and group["seconds"] > 0 and group["blas"] == blas_core()
        assert all(r.params is None and r.state is None and r.initial_params is None for r in runs)
        if values is not None:  # claim 6's group keeps its statistic of each init, not the inits
            with_values += 1
            assert len(values) == len(runs) == sizes.ladder_init_seeds and all(np.isfinite(values))
        spent_before += group["seconds"]
    assert with_values == 1
    assert len(groups) == len(LD.KS) + 1 and all(g.startswith("dot0.5-") for g in groups)  # claims 4 and 6
    monkeypatch.setattr(LD, "_rescue_claim", rescue)
    trained = []
    many = LD.train_many

    def counted(cfg, task, seeds, **k):
        trained.append((cfg.model, f"dot0.5-{LD._group_key(cfg, task, seeds, k)}.pkl"))
        return many(cfg, task, seeds, **k)

    monkeypatch.setattr(LD, "train_many", counted)
    again = LD.section_ladder(sizes, QUIET, keep=str(keep))
    assert trained and all(m == "dot" and g not in groups for m, g in trained)  # only claim 7's groups
    assert sorted(p.name for p in keep.glob("*.pkl")) == ["dot0.5.pkl", "free.pkl"]
    assert list((keep / "runs").iterdir()) == []  # a finished rung holds what its groups gave
    assert again.results["kept_rungs"] == ["free"]
    free_s = next(r["seconds"] for r in again.results["rungs"] if r["key"] == "free")
    assert again.results["seconds_in_earlier_calls"] == pytest.approx(free_s + spent_before, rel=1e-12)
    assert again.elapsed > again.results["seconds_in_earlier_calls"]
    for r in again.results["rungs"]:
        assert _numbers(r) == _numbers(_rung(section, r["key"]))
    whole = LD.section_text({**section.results, "rungs": [_rung(section, k) for k in sizes.ladder_rungs]})
    assert again.text == whole


def _group_file(fingerprint) -> bytes:
    """A kept group of no runs, as `_many` writes one."""
    group = {"runs": [], "of_init": None, "seconds": 1.0, "blas": blas_core()}
    return pickle.dumps(fingerprint) + pickle.dumps(group)


def test_kept_rungs_of_another_run_are_refused_before_any_work(tmp_path, monkeypatch):
    keep = tmp_path / "rep" / LD.PARTIAL
    rung = {"key": "free", "label": "free logits (rung 0)"}
    LD._keep_rung(str(keep), TINY, rung)
    assert LD.kept_rungs(str(keep), TINY) == {"free": rung}
    assert LD.kept_rungs(str(tmp_path / "none"), TINY) == {}
    other = dataclasses.replace(TINY, ladder_seeds=4)
    with pytest.raises(ValueError, match=r"finished at other sizes \(the default sizes\); continue them with the "
                       r"command that made them \(without --full\), or delete it"):  # fmt: skip
        LD.kept_rungs(str(keep), other)
    with pytest.raises(ValueError, match="finished at other sizes"):  # from reproduce, before it trains
        R.reproduce(tmp_path / "rep", "ladder", sizes=other)
    assert not (tmp_path / "rep" / "results.json").exists()
    (keep / "runs").mkdir()
    group = _group_file(LD._fingerprint(other))
    (keep / "runs" / "lstm-0.pkl").write_bytes(group)
    with pytest.raises(ValueError, match="finished at other sizes"):  # a group of runs likewise
        LD.kept_rungs(str(keep), TINY)
    (keep / "runs" / "lstm-0.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match=r"lstm-0.pkl: not a finished group of ladder runs"):
        LD.kept_rungs(str(keep), TINY)
    whole = _group_file(LD._fingerprint(TINY))
    (keep / "runs" / "lstm-0.pkl").write_bytes(whole[:-3])  # its fingerprint reads, the rest is cut
    with pytest.raises(ValueError, match=r"lstm-0.pkl: not a finished group of ladder runs"):
        LD.kept_rungs(str(keep), TINY)
    (keep / "runs" / "lstm-0.pkl").write_bytes(whole)
    assert LD.kept_rungs(str(keep), TINY) == {"free": rung}
    monkeypatch.setattr(LD, "_code_hash", lambda: "edited")  # the code that measures changed
    with pytest.raises(ValueError, match=r"another version of attnsim's code finished .*continue them with that code"):
        LD.kept_rungs(str(keep), TINY)
    monkeypatch.undo()
    (keep / "dot0.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"dot0.pkl: not a finished ladder rung"):
        LD.kept_rungs(str(keep), TINY)
    assert sorted(p.name for p in keep.glob("*.pkl")) == ["dot0.pkl", "free.pkl"]  # refused files are left alone


def _mark_called():
    os.environ["ATTNSIM_TEST_CALLED"] = "1"


class _Calls:
    """Unpickled by a full unpickler, it sets an environment variable."""

    def __reduce__(self):
        return _mark_called, ()


def test_a_report_holding_an_unfinished_ladder_keeps_its_sizes(tmp_path):
    """An unfinished ladder fixes its report's sizes: another section at the other sizes is
    refused before any work (else the report would hold two sizes and the ladder could not
    go on), whether its kept file is a rung or a group of runs."""
    full = dataclasses.replace(TINY, full=True)
    keep = tmp_path / "rep" / LD.PARTIAL
    (keep / "runs").mkdir(parents=True)
    (keep / "runs" / "lstm-0.pkl").write_bytes(_group_file(LD._fingerprint(full)))
    assert LD.partial_full(str(keep)) is True and LD.partial_full(str(tmp_path / "none")) is None
    (keep / "a.pkl").write_bytes(pickle.dumps(_Calls()))  # read first; a section that is not the ladder runs no code
    assert LD.partial_full(str(keep)) is True and "ATTNSIM_TEST_CALLED" not in os.environ
    with pytest.raises(ValueError, match=r"holds an unfinished ladder at the --full sizes .*choose another --out for "
                       r"the default ones"):  # fmt: skip
        R.reproduce(tmp_path / "rep", "toy")
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [LD.PARTIAL]
    LD._keep_rung(str(keep), TINY, {"key": "free", "label": "free logits (rung 0)"})
    (keep / "runs" / "lstm-0.pkl").unlink()
    (keep / "a.pkl").unlink()
    assert LD.partial_full(str(keep)) is False
    with pytest.raises(ValueError, match=r"holds an unfinished ladder at the default sizes"):
        R.reproduce(tmp_path / "rep", "toy", full=True)


def test_a_finished_ladder_section_drops_its_kept_rungs(section, tmp_path):
    """reproduce: the section is written from the kept rung (nothing trained), and the kept
    rungs go once results.json holds them."""
    sizes = dataclasses.replace(TINY, ladder_rungs=("free",))
    out = tmp_path / "rep"
    LD._keep_rung(str(out / LD.PARTIAL), sizes, _rung(section, "free"))
    doc = R.reproduce(out, "ladder", sizes=sizes)
    assert not (out / LD.PARTIAL).exists()
    got = doc["sections"]["ladder"]["results"]
    assert got["kept_rungs"] == ["free"] and _numbers(got["rungs"][0]) == _numbers(_rung(section, "free"))


def test_an_interrupted_ladder_says_where_its_rungs_are(tmp_path, capsys, monkeypatch):
    from attnsim.cli import main

    out = tmp_path / "rep"

    def interrupted(sizes, say, keep=None, groups=0):
        LD._keep_rung(keep, sizes, {"key": "free"})
        os.makedirs(os.path.join(keep, "runs"), exist_ok=True)
        for i in range(groups):
            with open(os.path.join(keep, "runs", f"dot0-{i}.pkl"), "wb") as fh:
                fh.write(_group_file(LD._fingerprint(sizes)))
        raise KeyboardInterrupt

    monkeypatch.setattr(R, "section_ladder", interrupted)
    assert main(["reproduce", "ladder", "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    free = "finished rungs [free logits (rung 0)]"
    assert f"no section finished, but the ladder's {free} in {out / LD.PARTIAL} are kept" in err
    assert "the same command goes on from them" in err
    monkeypatch.setattr(R, "section_ladder", lambda sizes, say, keep=None: interrupted(sizes, say, keep, groups=2))
    assert main(["reproduce", "ladder", "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"the ladder's {free} and 2 finished groups of runs in {out / LD.PARTIAL}" in err


def test_sigterm_stops_a_ladder_as_ctrl_c_does(tmp_path, capsys, monkeypatch):
    """A scheduler's SIGTERM (or ``kill``) keeps what is finished and names it, exits 130, and
    the command line leaves SIGTERM's handler as it found it; the message names the rungs as
    the report does, in the ladder's order."""
    import signal
    import time

    from attnsim.cli import main

    def terminated(sizes, say, keep=None):
        LD._keep_rung(keep, sizes, {"key": "dot0"})
        LD._keep_rung(keep, sizes, {"key": "free"})
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises in this frame long before
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(R, "section_ladder", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["reproduce", "ladder", "--out", str(tmp_path / "rep"), "--quiet"]) == 130
    err = capsys.readouterr().err
    labels = [r["label"] for r in LD.rungs(R.Sizes.default()) if r["key"] in ("free", "dot0")]
    assert labels[0].startswith("free logits") and f"the ladder's finished rungs [{'; '.join(labels)}]" in err
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_resumed_ladder_says_what_its_earlier_calls_took(section, tmp_path, capsys, monkeypatch):
    """The command line's last line gives this call's time and, apart, the seconds of the
    kept work it took over (the section's own time counts both)."""
    from attnsim.cli import main

    sizes = dataclasses.replace(TINY, ladder_rungs=("free",))
    monkeypatch.setattr(R.Sizes, "default", classmethod(lambda cls: sizes))
    out = tmp_path / "rep"
    kept = {**_rung(section, "free"), "seconds": 1234.0}
    LD._keep_rung(str(out / LD.PARTIAL), sizes, kept)
    assert main(["reproduce", "ladder", "--out", str(out), "--quiet"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "s in this call, and 1234 s of the ladder's in the earlier calls whose work it kept" in last
    assert main(["reproduce", "ladder", "--out", str(out), "--quiet", "--force"]) == 0  # trained here, whole
    assert "earlier calls" not in capsys.readouterr().out


def _rows(sets, learned):
    """Claim 7's 8-head models of each kind: ``sets[kind]`` head lists, ``learned[kind]`` of them learned."""
    return {kind: {"heads": hs, "learned": learned[kind], "runs": len(hs),
                   "interval": C._wilson(learned[kind], len(hs))} for kind, hs in sets.items()}  # fmt: skip


def test_rescue_needs_distinct_sets_of_bad_heads():
    """Claim 7 is judged on at least `RESCUE_MIN_SETS` distinct sets of 8 bad heads: with
    exactly 8 bad heads every 8-bad model is one set, and the cell is n/a (with its counts)
    however lopsided they are; with more, Fisher's test on the counts decides."""
    rng = np.random.default_rng(0)
    good = [0, 1]
    eight = {"candidates": 24, "good": good, "bad": list(range(10, 18)), "success": []}
    one_set = {"7 bad + 1 good": [[0, *range(10, 17)]] * 16, "8 bad": [list(rng.permutation(range(10, 18)))
               for _ in range(16)], "8 random": [list(range(8))] * 16}  # fmt: skip
    counts = {"7 bad + 1 good": 15, "8 bad": 1, "8 random": 9}
    cell, why = LD.rescue_cell(eight, _rows(one_set, counts), 600)
    assert cell is None and "1 distinct head set" in why
    assert "learned: 7 bad + 1 good 15 of 16, 8 bad 1 of 16, 8 random 9 of 16" in why
    bad = list(range(10, 22))
    many = {**one_set, "8 bad": [sorted(rng.choice(bad, 8, replace=False).tolist()) for _ in range(16)]}
    sets = len({tuple(h) for h in many["8 bad"]})
    assert sets >= LD.RESCUE_MIN_SETS
    cell, why = LD.rescue_cell({**eight, "bad": bad}, _rows(many, counts), 600)
    p = fisher_exact([[1, 15], [15, 1]], "less")[1]
    assert why == "" and cell["fisher_p"] == pytest.approx(p, rel=1e-12) and cell["passed"] == (p < LD.RESCUE_P)
    assert (cell["value"], cell["bad"], cell["random"], cell["steps"]) == (15 / 16, 1 / 16, 9 / 16, 600)
    # too few distinct sets though more than 8 bad heads: still n/a
    few = {**many, "8 bad": [many["8 bad"][i % (LD.RESCUE_MIN_SETS - 1)] for i in range(16)]}
    assert LD.rescue_cell({**eight, "bad": bad}, _rows(few, counts), 600)[0] is None
    # no 8-head model learned: the budget decides, not the heads
    cell, why = LD.rescue_cell({**eight, "bad": bad}, _rows(many, dict.fromkeys(counts, 0)), 600)
    assert cell is None and "no 8-head model learned within 600 steps" in why
    # a screening without a good head: no models at all
    cell, why = LD.rescue_cell({**eight, "good": []}, None, 0)
    assert cell is None and "found 0 good and 8 bad heads of 24" in why


def test_a_failed_hard_distribution_on_eight_heads_is_set_beside_one_head():
    """Claim 4 on the 8-head rung measures 8-head models: where their permutation runs learn,
    the failure is located by the same rung's single heads (claim 7's screening) and the
    chance that 8 of its heads are all bad; a one-head rung's failure says nothing of heads."""
    rng = np.random.default_rng(1)
    success = rng.random((40, 3)) < 0.35
    bad = np.flatnonzero(~success.any(axis=1)).tolist()
    assert len(bad) > 8  # the chance below is not 0
    copy = [{"k": k, "learned": 20, "runs": 20} for k in LD.KS]
    claims = {"4": {"value": 1.0, "passed": False}}
    r = {"key": LD.EIGHT_HEADS, "copy": copy, "claims": claims,
         "screening": {"candidates": 40, "good": [], "bad": bad, "success": success.tolist()}}  # fmt: skip
    text = LD._locate(r, ["4"], 200)
    assert "k 0: 20/20, k 1: 20/20" in text
    assert f"learned the permutation in {int(success.sum())} of 120 runs, and {len(bad)} of its 40 heads" in text
    assert f"= {math.comb(len(bad), 8) / math.comb(40, 8):.2g}. So" in text
    assert "multi-head rescue" not in LD._locate({**r, "key": "lstm"}, ["4"], 200)
    stuck = [{**row, "learned": 0} if row["k"] == 0 else row for row in copy]  # the permutation never learned
    assert "multi-head rescue" not in LD._locate({**r, "copy": stuck}, ["4"], 200)


def test_a_failed_order_says_when_each_word_was_attended():
    """Claim 5's failure gives each keyword's first attended save from the largest stage-2
    rate down (a word never attended: null in results.json), and on a dot rung sets τ
    beside the other context strengths: one that breaks assumption 1 further and holds
    the order says the failure is not ρ's."""

    def row(key, tau, passed, first=(20, None, 10)):
        c5 = {"value": tau, "p": 0.02, "attended": 2, "distinct_times": 2, "passed": passed}
        order = {"first_step": list(first), "rate": [3.0, 1.0, 2.0]}
        return {"key": key, "copy": [], "claims": {"5": c5}, "order": order, "screening": None}

    every = [row("dot0", 0.8, True), row("dot0.5", 0.5, False), row("dot1", 0.8, True)]
    text = LD._locate(every[1], ["5"], 200, every)
    assert "from the largest rate N to the smallest: 20, 10, never." in text
    assert "τ against the context ρ: 0.80 at ρ 0, 0.50 at ρ 0.5, 0.80 at ρ 1; at ρ 1, further from assumption 1" in text
    every[2]["claims"]["5"]["passed"] = False  # no larger ρ holds it: nothing is said of ρ
    assert "not located in ρ" not in LD._locate(every[1], ["5"], 200, every)
    assert "τ against the context ρ" not in LD._locate({**every[1], "key": "lstm"}, ["5"], 200, every)


def test_the_order_keeps_words_never_attended_and_knows_when_saves_cannot_order():
    """Claim 5 (`order_cell`): a keyword never attended is tied after the last save, so a
    top-rate word never attended counts against the order instead of dropping out; when
    the saves tie the words so much that even rates in their order cannot reach p < 0.01,
    the cell is n/a, with why; claim 3 without learned runs is n/a (`ktiw_cell`)."""
    from scipy.stats import kendalltau

    rate = [8.0, 7, 6, 5, 4, 3, 2, 1]
    in_order = {"first_step": [10.0, 20, 30, 40, 50, 60, 70, 80], "rate": rate}
    cell, why = LD.order_cell(in_order)
    assert why == "" and cell["value"] == pytest.approx(1.0) and cell["p"] == pytest.approx(1 / math.factorial(8))
    top_never = {**in_order, "first_step": [None, 20, 30, 40, 50, 60, 70, 80]}  # null: never attended
    cell, _ = LD.order_cell(top_never)
    early = [-90, -20, -30, -40, -50, -60, -70, -80]  # never: after the last save
    assert cell["value"] == pytest.approx(kendalltau(early, rate).statistic) and cell["attended"] == 7
    assert cell["value"] < 0.6 and not cell["passed"]  # dropping the word would have given τ 1, p 2e-4
    two_saves = {**in_order, "first_step": [10.0] * 4 + [20.0] * 4}  # in order, but the saves tie 4 and 4
    cell, why = LD.order_cell(two_saves)
    assert cell is None and "2 distinct save steps" in why and "cannot order them" in why
    assert LD.na_short(why) == "n/a: 8 words at 2 saves"  # the map's cell says why in a few words
    assert LD.order_cell({**in_order, "first_step": [None] * 8})[0] is None  # nothing attended
    assert LD.ktiw_cell(0, 0, 0) == (None, "no run learned, so there is no learned run to order")
    assert LD.ktiw_cell(4, 0, 5)[0]["passed"] and not LD.ktiw_cell(3, 0, 5)[0]["passed"]
    # ties count for neither side: 4 of the 5 runs the logs order had KTIW first
    assert LD.ktiw_cell(4, 1, 6)[0]["value"] == pytest.approx(0.8) and LD.ktiw_cell(4, 1, 6)[0]["passed"]
    cell, why = LD.ktiw_cell(1, 40, 41)  # rung 0 logged every 5 steps: nearly every run a tie
    assert cell is None and "order only 1 of 41" in why and LD.na_short(why) == "n/a: 1 of 41 runs ordered"
    cell, why = LD.ktiw_cell(41, None, 41)  # older results: a count with ties as KTIW first
    assert cell is None and "41 of 41" in why and LD.na_short(why) == "n/a: ties not kept"


def test_an_older_ladder_is_judged_again_by_the_newer_claim_3_and_5_rules(section):
    """Results written before `order` and `ktiw_cell` (claim 5's numbers inside its cell, the
    words never attended left out of τ; claim 3 ✗ at 0 of 0) are judged by today's rules
    from what they keep: the same cells where nothing changed, n/a where the rules say so,
    each change recorded with its rule."""
    import copy

    results = copy.deepcopy(section.results)
    for r in results["rungs"]:  # as 0.2.0 wrote them
        c5 = r["claims"]["5"] or {"value": math.nan, "p": math.nan, "attended": 0, "distinct_times": 0,
                                  "passed": False}  # fmt: skip
        r["claims"]["5"] = {**c5, **r.pop("order")}
        r["not_applicable"].pop("5", None)
    want = {r["key"]: r["claims"]["5"] for r in section.results["rungs"]}
    clf = next(r for r in results["rungs"] if r["key"] == "clf")
    clf["claims"]["3"] = {"value": math.nan, "interval": [math.nan, math.nan], "count": 0, "of": 0, "passed": False}
    clf["not_applicable"].pop("3", None)
    free = next(r for r in results["rungs"] if r["key"] == "free")  # 0.2.0 counted ties as KTIW first, not kept
    free["claims"]["3"] = {"value": 1.0, "interval": [0.44, 1.0], "count": 3, "of": 3, "passed": True}
    free["not_applicable"].pop("3", None)
    changed = LD.judged_again(results)
    assert free["claims"]["3"] is None and LD.na_short(free["not_applicable"]["3"]) == "n/a: ties not kept"
    assert {"rung": free["label"], "claim": "3", "was": "✓ 3/3", "now": "n/a"} in changed
    for r in results["rungs"]:
        assert r["claims"]["5"] == want[r["key"]] and set(r["order"]) == set(LD.ORDER_RAW)
    assert clf["claims"]["3"] is None and clf["not_applicable"]["3"] == LD.ktiw_cell(0, 0, 0)[1]
    assert {"rung": clf["label"], "claim": "3", "was": "✗ 0/0", "now": "n/a"} in changed
    assert LD.RULES["3"] in results["judged_again"][-1]["rule"]
    assert LD.judged_again(results) == []  # judged once, nothing more changes


def test_the_auc_a_mann_whitney_test_needs():
    """`auc_needed` is where the one-sided test's p crosses 0.05 by the normal approximation
    without continuity correction (scipy's asymptotic method with use_continuity=False; the
    test itself may use the exact or corrected p, a little stricter: the text says "about")."""
    from scipy.stats import mannwhitneyu

    for n1, n2 in ((3, 61), (20, 44), (37, 27)):
        need = LD.auc_needed(n1, n2)

        def p_at(u, n1=n1, n2=n2):  # learned values placed so that exactly u (learned, stuck) pairs are ordered
            base, rest = divmod(u, n1)
            learned = [base + (i < rest) - 0.5 + 1e-6 * i for i in range(n1)]  # no ties: no tie correction
            return mannwhitneyu(learned, np.arange(n2), alternative="greater", method="asymptotic",
                                use_continuity=False).pvalue  # fmt: skip

        u = math.ceil(need * n1 * n2)
        assert p_at(u) < 0.05 <= p_at(u - 1)


def test_a_finished_ladder_is_judged_again_from_its_kept_models(section, tmp_path):
    """A ladder written before the distinct-set rule (here: rung 0's claim 7 judged on one set
    of 8 bad heads, as the older attnsim did) is judged again from its results.json with
    nothing trained: the cell turns n/a, results.json records what changed and by which
    attnsim, the text says so beside the map, and the figures and report are rewritten. A
    second judgement changes nothing and rewrites every file byte for byte."""
    import copy
    import json

    from attnsim import __version__

    results = copy.deepcopy({**section.results, "rungs": [_rung(section, "free")]})
    free = results["rungs"][0]
    bad = list(range(8))
    free["screening"] = {**free["screening"], "good": [8], "bad": bad}
    sets = {"7 bad + 1 good": [[8, *bad[:7]]] * 4, "8 bad": [bad] * 4, "8 random": [list(range(3, 11))] * 4}
    free["claims"]["7"] = {"value": 1.0, "interval": [0.5, 1.0], "bad": 0.0, "bad_interval": [0.0, 0.5],
                           "random": 0.5, "fisher_p": 0.014, "models": _rows(sets, {"7 bad + 1 good": 4, "8 bad": 0,
                           "8 random": 2}), "steps": 20, "passed": True}  # fmt: skip
    free["claims"]["6"]["p"] = math.nan  # a nan: null in results.json, read as nan again
    free["not_applicable"].pop("7", None)
    out = tmp_path / "rep"
    doc = {"format": R.RESULTS_FORMAT, "sections": {}, "full": False}
    R._write_section(doc, str(out), LD.ladder_section(results, 12.0))
    assert "7 + 1: 1.00 vs 8 bad: 0.00 (p 0.014; 8 random 0.50) ✓" in (out / "ladder.md").read_text()
    assert json.loads((out / "results.json").read_text())["sections"]["ladder"]["results"]["rungs"][0]["claims"]["6"][
        "p"] is None  # fmt: skip
    changed = R.judge_ladder_again(out)
    was = "✓ 7 + 1: 1.00 vs 8 bad: 0.00 (p 0.014; 8 random 0.50)"
    assert changed == [{"rung": free["label"], "claim": "7", "was": was, "now": "n/a"}]
    got = json.loads((out / "results.json").read_text())["sections"]["ladder"]
    r0 = got["results"]["rungs"][0]
    assert r0["claims"]["7"] is None and "1 distinct head set" in r0["not_applicable"]["7"]
    kept = json.loads(json.dumps(free["claims"]["7"]["models"]))
    assert r0["screening"]["models"] == kept  # the models are kept, beside the screening
    assert got["results"]["judged_again"] == [{"by": f"attnsim {__version__}", "rule": LD.RULE_7, "changed": changed}]
    assert got["elapsed_seconds"] == 12.0 and [c["passed"] for c in got["checks"]] == [
        free["claims"][c]["passed"] for c in LD.MEASURED if c != "7" and free["claims"][c] is not None]  # fmt: skip
    assert LD.judged_again(got["results"]) == []  # read back (nan restored): nothing more changes
    texts = [t.get_text() for t in LD._fig_map(got["results"]).axes[0].texts]
    assert [t for t in texts if "judged again" in t] == ["n/a: 1 set of 8\nbad heads\n(judged again)"]  # and why
    md = (out / "ladder.md").read_text()
    assert (
        f"*Judged again by attnsim {__version__} under its rule that {LD.RULE_7}, from what these results keep "
        "(the screening and the 8-head models' outcomes; nothing retrained)"
    ) in md
    assert "claim 7: ✓ 7 + 1: 1.00 vs 8 bad: 0.00 (p 0.014; 8 random 0.50) → n/a.*" in md and "nan" in md  # claim 6's p
    assert md.strip() in (out / "report.md").read_text()
    held, fail, na = LD.map_counts(got["results"])  # the headline: rung 0's checks, and the map's counts
    agree = sum(c["passed"] for c in got["checks"])
    assert (f"## Checks: {agree} of {len(got['checks'])} agree with the paper (the ladder's are rung 0's: its claims "
            f"5 and 6 are attnsim's theory's, not the paper's); the validity map: {held} cells hold, {fail} fail, "
            f"{na} n/a\n") in (out / "report.md").read_text()  # fmt: skip
    before = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.endswith(".png")}
    assert R.judge_ladder_again(out) == []
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.endswith(".png")} == before
    # no ladder there: refused before anything is written
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="holds no ladder section to judge again"):
        R.judge_ladder_again(other)
    assert list(other.iterdir()) == []


def test_the_overall_progress_moves_rung_by_rung(section, tmp_path, monkeypatch):
    """A ladder section moves the report's overall bar as each rung finishes (kept here:
    nothing is trained), not only at its end."""
    sizes = dataclasses.replace(TINY, ladder_rungs=("free", "dot0.5"))
    out = tmp_path / "rep"
    for key in sizes.ladder_rungs:
        LD._keep_rung(str(out / LD.PARTIAL), sizes, _rung(section, key))
    shown = []

    class Recorder:
        def update(self, n):
            shown.append((shown[-1] if shown else 0.0) + n)

        def set_description(self, desc):
            pass

        def close(self):
            pass

    monkeypatch.setattr(R, "make_progress", lambda *a, **k: Recorder())
    R.reproduce(out, "ladder", sizes=sizes)
    assert shown == pytest.approx([50.0, 100.0])


def _ladder_damage(doc):
    """(what, damaged copy) of a results file holding a finished ladder."""
    import copy

    def edit(fn):
        d = copy.deepcopy(doc)
        fn(d["sections"]["ladder"]["results"], d)
        return d

    yield "no settings", edit(lambda r, d: r.pop("settings"))
    yield "a rung without its label", edit(lambda r, d: r["rungs"][0].update(label=5))
    yield "screening is not an object", edit(lambda r, d: r["rungs"][0].update(screening="x"))
    yield "'judged_again' is not a list", edit(lambda r, d: r.update(judged_again="x"))
    yield "neither null nor a cell with a number", edit(lambda r, d: r["rungs"][0]["claims"]["1"].update(value="x"))
    yield "n/a without its reason", edit(lambda r, d: r["rungs"][0]["claims"].update({"2": None}))
    yield "without exactly claims 1-7", edit(lambda r, d: r["rungs"][0]["claims"].update({"9": None}))
    yield 'its "full" is not true or false', edit(lambda r, d: d.update(full="false"))
    yield "no claim-7 budget", edit(lambda r, d: r["settings"]["rescue_steps"].clear())
    # the numbers judge-again judges from, damaged so that it would read them as other numbers
    yield "claim 5's first steps and rates", edit(lambda r, d: r["rungs"][0]["order"].update(first_step=[1, 2]))
    yield "lists of 8 head numbers", edit(lambda r, d: r["rungs"][0]["claims"]["7"]["models"]["8 bad"].update(
        heads="oops"))  # fmt: skip
    yield "count their runs", edit(lambda r, d: r["rungs"][0]["claims"]["7"]["models"]["8 bad"].update(learned=99))
    yield "claim 3's counts", edit(lambda r, d: r["rungs"][0]["claims"]["3"].update(count=r["rungs"][0]["claims"]["3"]
                                                                                    ["of"] + 1))  # fmt: skip


def test_a_damaged_ladder_is_refused_in_one_line_and_left_as_it_is(tmp_path, capsys):
    """judge-again (and any command reading the file) refuses a ladder's results.json damaged
    in ways its format tag cannot show: one line naming the file, exit 2, nothing written."""
    import json
    import shutil

    from attnsim.cli import main

    docs = os.path.join(os.path.dirname(__file__), "..", "docs", "ladder")
    with open(os.path.join(docs, "results.json"), encoding="utf-8") as fh:
        good = json.load(fh)
    for i, (what, doc) in enumerate(_ladder_damage(good)):
        d = tmp_path / f"d{i}"
        shutil.copytree(docs, d)
        (d / "results.json").write_text(json.dumps(doc))
        before = {p.name: p.read_bytes() for p in d.iterdir()}
        with pytest.raises(ValueError, match="damaged"):
            R.judge_ladder_again(d)
        assert main(["reproduce", "ladder", "--judge-again", "--out", str(d)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("attnsim reproduce: ") and what in err, (what, err)
        assert str(d / "results.json") in err
        assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    # an unfinished ladder, and a file where a directory should be
    (tmp_path / "part" / LD.PARTIAL).mkdir(parents=True)
    with pytest.raises(ValueError, match="holds an unfinished ladder"):
        R.judge_ladder_again(tmp_path / "part")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        R.judge_ladder_again(tmp_path / "f")
