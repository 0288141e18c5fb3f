"""`attnsim reproduce rnn`: the section's numbers are those of runs trained independently
of it, its verdicts are the ones its numbers give, and the command line knows it."""

import dataclasses

import numpy as np
import pytest

import attnsim as at
from attnsim import _reproduce as R
from attnsim import cli
from attnsim._reproduce_rnn import RNN_ADAM, section_rnn

TINY = dataclasses.replace(
    R.Sizes.default(), rnn_dim=8, rnn_steps=20, rnn_seeds=3, rnn_vocabs=(40, 42, 60), rnn_dims=(4, 8),
    rnn_sweep_seeds=2, rnn_mh_dim=4, rnn_candidates=10, rnn_combos=2,
)  # fmt: skip


QUIET = R._Say(False, bar=False)  # no lines, no bars


@pytest.fixture(scope="module")
def section():
    return section_rnn(TINY, QUIET)


def test_the_command_line_offers_every_section():
    assert cli.SECTION_NAMES == R.SECTIONS


def test_numbers_are_those_of_independent_runs(section):
    res = section.results["copy"]
    cfg = at.RNNConfig.for_task(at.tasks.copy(40, 40), hidden=8)
    alone = [at.train(cfg, at.tasks.copy(40, 40), seed=s, steps=20, log_every=10, **RNN_ADAM) for s in range(3)]
    assert res["permutation_40"]["learned"] == sum(r.success for r in alone)
    stuck = [float(r.final()["attn_acc"]) for r in alone if not r.success]
    assert res["permutation_40"]["stuck_attn_acc"] == stuck
    for kept, run in zip(res["curves"]["permutation_40"], alone, strict=True):  # the figure's curves are theirs
        assert kept["learned"] == run.success and kept["step"] == run.history["step"].tolist()
        for key in ("acc", "ktiw_acc", "attn_acc"):
            assert kept[key] == run.history[key].tolist()
    w4 = next(r for r in section.results["by_width"] if r["hidden"] == 4)["40_of_60"]
    cfg4 = at.RNNConfig.for_task(at.tasks.copy(60, 40), hidden=4)
    two = [at.train(cfg4, at.tasks.copy(60, 40), seed=s, steps=20, log_every=10, **RNN_ADAM) for s in range(2)]
    assert w4["stuck_token_acc"] == [float(r.final()["acc"]) for r in two if not r.success]


def test_verdicts_follow_their_numbers(section):
    res, checks = section.results["copy"], section.checks
    perm, easy = res["permutation_40"], res["40_of_60"]
    by = {c["claim"].split(": ", 1)[1]: c for c in checks if c["claim"].startswith("LSTM")}
    assert by["40 out of 60 learns in (almost) every seed"]["passed"] == (easy["success_rate"] >= 0.9)
    harder = by["the permutation of 40 is harder: its success is below 40 of 60's (95 % intervals apart)"]
    assert harder["passed"] == (perm["interval"][1] < easy["interval"][0])
    sizeable = by["the permutation of 40 learns in a sizeable fraction of seeds, but not all"]  # at every size
    assert sizeable["claim"].startswith(f"LSTM, d {TINY.rnn_dim}:")
    assert sizeable["passed"] == (0.2 <= perm["learned"] / perm["runs"] <= 0.8)
    assert sizeable["value"] == f"{perm['learned']}/{perm['runs']}"
    median_stuck = np.median(perm["stuck_attn_acc"]) if perm["stuck_attn_acc"] else np.nan
    stuck = by["permutation runs that do not learn end with attention accuracy near 0"]
    assert stuck["passed"] == (bool(perm["stuck_attn_acc"]) and median_stuck <= 0.1)
    assert len(perm["stuck_rising"]) == len(perm["stuck_attn_acc"])
    for r in section.results["by_vocab"]:
        lo, hi = r["interval"]
        assert lo <= r["success_rate"] <= hi and r["learned"] <= r["runs"] == TINY.rnn_sweep_seeds
    mh = section.results["multihead"]
    assert len(mh["screening"]["final_acc"]) == TINY.rnn_candidates
    sc = mh["screening"]
    authors = [k for k, row in enumerate(sc["final_acc"]) if max(row) < 0.6]  # token accuracy below 0.6 on all three
    none_learn = [k for k, row in enumerate(sc["success"]) if not any(row)]
    assert sc["authors_bad"] == authors
    assert sc["bad"] == (authors if len(authors) >= 8 else none_learn)
    assert sc["bad_criterion"] == ("authors" if len(authors) >= 8 else "none learn")
    assert len(checks) == 6 and set(section.figures) == {"rnn_copy.png", "rnn_sweeps.png", "rnn_multihead.png"}
    eight = mh["eight_heads"]
    if "8 bad" in eight and "7 bad + 1 good" in eight:
        one, none = eight["7 bad + 1 good"], eight["8 bad"]
        want = one["success_rate"] - none["success_rate"] >= 0.3 and one["interval"][0] > none["interval"][1]
        assert checks[-1]["passed"] == want
    else:  # too few bad or good heads: the report says the comparison cannot be made
        assert not checks[-1]["passed"] and "the comparison cannot be made" in section.text


def test_the_figures_are_drawn_again_from_the_results_alone(section, tmp_path):
    """The learning curves the figures draw are kept in the results (the copy runs', and each
    kind of 8-head models'), so `section_figures` on results.json read back draws the
    section's figures bit for bit, with nothing trained."""
    import json

    from attnsim._outputs import save_figure
    from attnsim._reproduce_rnn import section_figures

    back = json.loads(json.dumps(section.results))
    for kind in back["multihead"]["eight_heads"].values():
        assert len(kind["curves"]) == kind["runs"] and sum(c["learned"] for c in kind["curves"]) == kind["learned"]
    again = section_figures(back)
    assert set(again) == set(section.figures)
    for name, fig in again.items():
        save_figure(section.figures[name], tmp_path / f"a-{name}")
        save_figure(fig, tmp_path / f"b-{name}")
        assert (tmp_path / f"a-{name}").read_bytes() == (tmp_path / f"b-{name}").read_bytes(), name


def test_default_sizes_leave_out_what_the_headline_holds():
    """At the default sizes the sweeps reuse the headline's runs and the multi-head protocol
    is not run: the report says so instead of drawing a sweep of one point."""
    small = dataclasses.replace(R.Sizes.default(), rnn_dim=4, rnn_steps=5, rnn_seeds=2, rnn_dims=(4,))
    sec = section_rnn(small, QUIET)
    assert set(sec.figures) == {"rnn_copy.png"} and len(sec.checks) == 5
    assert "`attnsim reproduce rnn --full` runs them" in sec.text and sec.results["multihead"] is None
    assert sec.results["by_vocab"] == [] and sec.results["by_width"] == []


def test_a_run_still_learning_is_told_apart_from_a_stuck_one():
    from attnsim._reproduce_rnn import _rising

    class Run:
        def __init__(self, attn):
            self.history = {"step": np.arange(0, 210, 10), "attn_acc": np.asarray(attn, float)}

    flat = [0.02] * 21
    assert not _rising(Run(flat))
    climbing = [0.02] * 15 + [0.04, 0.06, 0.09, 0.13, 0.18, 0.24]  # +0.20 over the last 50 steps
    assert _rising(Run(climbing))
    assert not _rising(Run([0.02] * 16 + [0.03, 0.04, 0.05, 0.06, 0.06]))  # +0.04: below the threshold


def test_bad_heads_fall_back_to_heads_that_never_learn():
    """The authors' bad head ends below token accuracy 0.6 on every data seed; when that finds
    fewer than the 8 an 8-bad model needs (stuck GRU runs at d 256 end at 0.6-0.9), a bad head
    is one that learns on none of the seeds."""
    from attnsim._reproduce_rnn import bad_heads

    ok = np.zeros((10, 3), bool)
    ok[0] = True
    ok[1, 2] = True
    low = np.full((10, 3), 0.5)
    low[0] = 1.0
    low[1] = 0.97
    bad, how = bad_heads(low, ok)
    assert how == "authors" and bad.tolist() == [2, 3, 4, 5, 6, 7, 8, 9]
    high = np.where(ok, 1.0, 0.8)  # stuck, but above 0.6
    high[9] = 0.5
    bad, how = bad_heads(high, ok)
    assert how == "none learn" and bad.tolist() == [2, 3, 4, 5, 6, 7, 8, 9]
