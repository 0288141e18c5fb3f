"""`attnsim reproduce`: the report's numbers are the simulation's and the theory's own
(recomputed here independently on small sizes), its files are whole, and bad input
exits 2 writing nothing."""

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest

import attnsim as at
from attnsim import _reproduce as R
from attnsim import _reproduce_common as C
from attnsim import _reproduce_free as F
from attnsim import theory
from attnsim.cli import main

SMALL = dataclasses.replace(
    R.Sizes.default(), adam_steps=40, copy_seeds=6, saddle_seeds=8, vocabs=(40, 60), vocab_seeds=4, sgd_seeds=1,
    scales=(1e-1, 1e-2), scale_seeds=2, scale_steps=200, candidates=12, combos=2, heads_seeds=2,
)  # fmt: skip


QUIET = R._Say(False, bar=False)  # no lines, no bars


@pytest.fixture(scope="module")
def copy_section():
    return R.section_copy(SMALL, QUIET)


def test_copy_numbers_are_those_of_independent_runs(copy_section):
    res = copy_section.results
    perm, cfg = at.tasks.copy(40, 40), at.ModelConfig.for_task(at.tasks.copy(40, 40))
    kw = dict(optimizer="adam", lr=0.05, batch=128, scale=0.01, steps=SMALL.adam_steps)
    alone = [at.train(cfg, perm, seed=s, **kw) for s in (0, 3)]
    assert [res["permutation_40"]["final_attn_acc"][s] for s in (0, 3)] == [r.final()["attn_acc"] for r in alone]
    learned = res["saddle_projection"]["learned"]
    assert res["permutation_40"]["learned"] == sum(learned[: SMALL.copy_seeds])
    proj = [theory.saddle_projection(cfg, at.init_params(cfg, s, 0.01)) for s in range(SMALL.saddle_seeds)]
    assert np.allclose(res["saddle_projection"]["projections"], proj, rtol=0, atol=1e-15)
    right = np.mean((np.array(proj) > 0) == np.array(learned))
    assert res["saddle_projection"]["accuracy"] == pytest.approx(right, abs=1e-15)
    assert 0.0 < res["permutation_40"]["failed_fraction"] < 1.0  # seeds 0-5: both outcomes occur
    assert res["40_of_60"]["learned"] == SMALL.copy_seeds


def test_copy_theory_beside_simulation(copy_section):
    """The reduced dynamics predict SGD's time to attend to a few steps, the saddle's
    log(1/scale) slope is the theory's within 15 %, and V = 40 is the only hard size."""
    res = copy_section.results
    for row in res["vocab"]:
        for sim, own in zip(row["sgd_time_to_attend"], row["theory_time_to_attend_own_init"], strict=True):
            assert math.isinf(sim) == math.isinf(own)
            if math.isfinite(sim):
                assert abs(own - sim) <= 0.05 * sim + 2  # log_every 2
        assert row["hard"] == (row["vocab"] == 40)
        assert row["theory_success"] == 1.0 or row["vocab"] == 40
    law = res["init_scale"]
    assert law["theory_slope"] == pytest.approx(math.log(10) * 1600 / F.SGD_LR)
    if law["seeds_fitted"]:
        assert 0.85 <= law["slope_ratio"] <= 1.15
    assert set(copy_section.figures) == {
        "copy_learning_curves.png", "copy_attention.png", "copy_vocab.png", "copy_init_scale.png", "copy_saddle.png"
    }  # fmt: skip


def test_multihead_protocol_composes_screened_heads():
    sec = R.section_multihead(SMALL, QUIET)
    res = sec.results
    scr = res["screening"]
    ok, attn = np.array(scr["success"]), np.array(scr["final_attn_acc"])
    assert scr["good"] == np.flatnonzero(ok.all(axis=1)).tolist()
    assert scr["bad"] == np.flatnonzero((attn < 0.6).all(axis=1)).tolist()
    # a screening run is a single-head run from the candidate head and the shared base bias
    task = at.tasks.copy(40, 40)
    cfg1 = at.ModelConfig.for_task(task)
    k, d = 3, 1
    start = {**{n: at.init_params(cfg1, 1 + k, 0.01)[n] for n in ("U", "S")},
             "b": at.init_params(cfg1, F.BASE_SEED, 0.01)["b"]}  # fmt: skip
    alone = at.train(cfg1, task, optimizer="adam", lr=0.05, batch=128, steps=SMALL.adam_steps, seed=d, params=start)
    assert alone.final()["attn_acc"] == attn[k, d]
    rows = res["by_heads"]
    assert [r["heads"] for r in rows] == list(range(1, 9)) and rows[0]["runs"] == SMALL.candidates
    for name, v in res["eight_heads"].items():
        assert all(len(set(c)) == 8 for c in v["heads"])  # 8 distinct heads
        if name == "8 bad":
            assert all(set(c) <= set(scr["bad"]) for c in v["heads"])
        if name == "7 bad + 1 good":
            assert all(len(set(c) & set(scr["good"])) == 1 for c in v["heads"])


def test_salient_scores_and_keyword_timing():
    sec = R.section_salient(SMALL, QUIET)
    for name in ("translate", "keyword"):
        for row in sec.results[name]["agreement"]:
            assert 0 <= row["chance_top5"] < row["top5_match"] <= 1
    t = sec.results["keyword_timing"]
    assert t["kendall_sooner_vs_frequency"] > 0.5  # frequent keywords first
    # the per-keyword closed form agrees with theory.time_to_attend for a single keyword
    one = at.tasks.keyword(40, 20, keywords=1)
    N = theory.stage2_content_rate(one)[0]
    closed = math.sqrt(2 * 20 * math.log(19) / (N[0] - N[1:].mean()))
    assert closed == pytest.approx(theory.time_to_attend(one, attention="content"), rel=0.05)


def test_proxy_table_is_cooccurrence_alone():
    task = at.tasks.translate(12, 12, 6, zipf=1.0, noise=0.0)
    K = C._proxy_table(task, samples=5000)
    assert np.array_equal(K.argmax(axis=0)[:6], task.mapping[:6])  # frequent words: their translation first


def test_toy_and_text_sections_agree():
    toy = R.section_toy(SMALL, QUIET)
    assert all(c["passed"] for c in toy.checks)
    assert toy.results["claim_flat_then_rises"]["tau_p_reaches_1"] == pytest.approx(
        math.acosh(2) / math.sqrt(2), abs=1e-4
    )
    corpus = F.synthetic_corpus(50, seed=3)
    lines = corpus.splitlines()
    assert len(lines) == 50
    for line in lines:
        src, tgt = (s.split() for s in line.split("\t"))
        assert len(src) == len(tgt) == 7 and tgt[2].startswith("ira") and src[1].startswith("bel")
        assert tgt[1] == src[2].replace("mur", "osu") and tgt[2] == src[1].replace("bel", "ira")


def test_cli_writes_a_report_section_by_section(tmp_path):
    out = tmp_path / "rep"
    assert main(["reproduce", "toy", "--out", str(out), "--quiet"]) == 0
    assert main(["reproduce", "text", "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == R.RESULTS_FORMAT and set(doc["sections"]) == {"toy", "text"}
    report = (out / "report.md").read_text()
    assert "## The toy gated classifier" in report and "## A parallel-text example" in report
    assert "![toy](toy.png)" in report and (out / "toy.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "text_attention.png").exists() and (out / "parallel_corpus.txt").exists()
    n_checks = sum(len(s["checks"]) for s in doc["sections"].values())
    assert f"of {n_checks} agree" in report
    assert not list(out.glob(".tmp-*"))
    # the corpus file is a real input for the user's own-data path
    task = at.tasks.from_parallel_text(out / "parallel_corpus.txt")
    assert task.src_len == task.tgt_len == 7


def test_a_failing_section_keeps_the_finished_ones(tmp_path, monkeypatch):
    """A section that fails leaves the finished ones as they were; the same command then
    runs only the sections it lacks; asking only for held sections is refused without
    --force, and one report holds one set of sizes."""
    out = tmp_path / "rep"
    R.reproduce(out, "toy")
    before = (out / "results.json").read_bytes()
    ran, toy, text = [], R.section_toy, R.section_text

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(R, "section_toy", lambda *a, **k: ran.append("toy") or toy(*a, **k))
    monkeypatch.setattr(R, "section_text", boom)
    with pytest.raises(ValueError, match="already holds the section toy of a report; pass --force"):
        R.reproduce(out, "toy")  # a finished section is not redone unasked
    with pytest.raises(RuntimeError):
        R.reproduce(out, ["toy", "text"])  # toy is kept; text runs, and fails
    assert ran == [] and (out / "results.json").read_bytes() == before
    with pytest.raises(ValueError, match="holds a report at the default sizes .toy.; one report has one set of sizes"):
        R.reproduce(out, "text", full=True)
    assert (out / "results.json").read_bytes() == before
    monkeypatch.setattr(R, "section_text", text)
    doc = R.reproduce(out, ["toy", "text"])  # the same command goes on: only text runs
    assert ran == [] and set(doc["sections"]) == {"toy", "text"} and (out / "toy.png").exists()
    assert json.loads(before)["sections"]["toy"] == json.loads((out / "results.json").read_text())["sections"]["toy"]
    R.reproduce(out, ["toy"], force=True)  # --force redoes it
    assert ran == ["toy"]


def _damaged(doc):
    yield "not a section of attnsim reproduce", {**doc, "sections": {**doc["sections"], "bogus": {}}}
    yield "not an object", {**doc, "sections": {"toy": [1, 2]}}
    toy = doc["sections"]["toy"]
    yield "'checks' missing", {**doc, "sections": {"toy": {k: v for k, v in toy.items() if k != "checks"}}}
    yield "a check without", {**doc, "sections": {"toy": {**toy, "checks": [{**toy["checks"][0], "passed": "yes"}]}}}
    ladder = {**toy, "results": {"rungs": [{"claims": {c: {"value": 1.0} for c in "1234567"}}]}}
    yield "no settings", {**doc, "sections": {"toy": toy, "ladder": ladder}}


def test_a_damaged_results_file_is_refused_before_any_work(tmp_path, capsys):
    """A results.json with the right format tag but a damaged section is refused with one
    line (exit 2 from the command line) before any training, and left as it is."""
    out = tmp_path / "rep"
    R.reproduce(out, "toy")
    good = json.loads((out / "results.json").read_text())
    for i, (what, doc) in enumerate(_damaged(good)):
        d = tmp_path / f"d{i}"
        shutil.copytree(out, d)
        (d / "results.json").write_text(json.dumps(doc))
        files = {p.name: p.read_bytes() for p in d.iterdir()}
        with pytest.raises(ValueError, match=f"its section .* is damaged \\({what}"):
            R.reproduce(d, "text")
        assert main(["reproduce", "text", "--out", str(d), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("attnsim reproduce: ") and "is damaged" in err, err
        assert {p.name: p.read_bytes() for p in d.iterdir()} == files


def test_an_interrupted_reproduce_says_what_it_kept(tmp_path, capsys, monkeypatch):
    from attnsim.cli import main

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(R, "section_text", interrupt)
    out = tmp_path / "rep"
    assert main(["reproduce", "text", "--out", str(out), "--quiet"]) == 130
    assert "interrupted before any section finished; nothing written" in capsys.readouterr().err
    assert not out.exists()  # the directory this call made is gone too: nothing written
    R.reproduce(out, "toy")
    assert main(["reproduce", "text", "--out", str(out), "--quiet"]) == 130
    assert "interrupted; the finished sections (toy) are in" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "nonsense"], "invalid choice"),
        (["reproduce", "toy", "--out", "FILE"], "exists and is not a directory"),
        (["reproduce", "toy", "--out", "FOREIGN"], "not a readable attnsim reproduce results file"),
    ],
)
def test_bad_input_exits_2_writing_nothing(tmp_path, capsys, argv, message):
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "FOREIGN").mkdir()
    (tmp_path / "FOREIGN" / "results.json").write_text("{not json")
    argv = [str(tmp_path / a) if a in ("FILE", "FOREIGN") else a for a in argv]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    with pytest.raises(ValueError, match="unknown section 'cpy'"):
        R.parse_sections("cpy")


def test_vocab_figure_draws_the_runs_that_never_attend():
    """A run whose time to attend is None (not within the SGD steps) is drawn on the line
    "never", above every finite time, beside the ones that attended."""
    rows = [
        {"vocab": 40, "adam_runs": 3, "adam_learned": 2, "theory_success": 0.6,
         "sgd_time_to_attend": [None, 140.0, 116.0], "theory_time_to_attend_own_init": [math.inf, 140.0, 116.0]},
        {"vocab": 60, "adam_runs": 3, "adam_learned": 3, "theory_success": 1.0,
         "sgd_time_to_attend": [52.0, 51.0, 52.0], "theory_time_to_attend_own_init": [51.0, 51.0, 51.0]},
    ]  # fmt: skip
    fig = F._fig_copy_vocab(rows, np.array([41.0, 60.0]), np.array([90.0, 51.0]), 100, 300)
    a = fig.axes[1]
    labels = [t.get_text() for t in a.get_yticklabels()]
    assert labels[-1] == "never"
    never = a.get_yticks()[-1]
    assert never > 140.0
    drawn = [line for line in a.get_lines() if line.get_label() == "simulation: never within 300 steps"]
    assert len(drawn) == 1 and list(drawn[0].get_ydata()) == [never] and drawn[0].get_xdata()[0] < 40
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_a_range_below_its_precision_prints_both_ends_alike():
    assert C._range([9.2e-05, 1e-4, None], digits=3) == "9.2e-05–1.0e-04"
    assert C._range([0.25, 0.5], digits=2) == "0.25–0.50"
    assert C._range([0.0, 0.0], digits=3) == "0.000" and C._range([None]) == "—"
