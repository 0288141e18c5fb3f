"""Rung 1, the dot-product head (docs/design.md §7.1–7.3): what is particular to it. Its
kernels, gradients, invariants and the engine's promises are checked, as every
architecture's, in ``tests/test_architectures.py``."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import attnsim as at
from attnsim import metrics
from attnsim.arch.dot import _probes
from attnsim.arch.dot import _reference as D

from .strategies import cases, rounding_err


@given(data=st.data())
def test_without_context_and_with_word_values_it_is_rung_0_at_its_effective_tables(data):
    """§7.1: ρ = 0 and values = "word": loss, logits, attention and the logged metrics of the
    head equal rung 0's at U = WO (E WV)ᵀ, S = (R WQ)(P WK)ᵀ/√k, A = (R WQ)(E WK)ᵀ/√k, b."""
    cfg, params, x, y = data.draw(cases(model="dot", context=0.0, values="word", value_bound=1.5))
    assert cfg.exact_tables
    tables = at.effective_tables(cfg, params)
    free = at.ModelConfig(
        cfg.vocab_in, cfg.vocab_out, cfg.src_len, cfg.tgt_len, heads=cfg.heads, attention=cfg.attention, bias=cfg.bias
    )
    fparams = {k: tables[k] for k in free.param_shapes()}
    loss, _ = at.loss_and_grad(cfg, params, x, y)
    floss, _ = at.loss_and_grad(free, fparams, x, y)
    assert loss == pytest.approx(floss, rel=1e-12, abs=1e-14)
    z, alpha = at.forward(cfg, params, x)
    fz, falpha = at.forward(free, fparams, x)
    assert np.max(np.abs(z - fz)) <= 1e-12 * max(1.0, np.max(np.abs(fz)))
    assert np.max(np.abs(alpha - falpha)) <= 1e-13
    # the metrics the step loop logs, on the same batch (step 0, no update); those that take
    # an argmax are compared where no two candidates tie to rounding
    task = at.tasks.from_arrays(x, y, gold=np.zeros_like(y), vocab_in=cfg.vocab_in, vocab_out=cfg.vocab_out)
    run = at.train(cfg, task, steps=0, batch=4, params=params)
    frun = at.train(free, task, steps=0, batch=4, params=fparams)
    beta = metrics.ktiw_probe(free, fparams, x, y)
    prob = 1 / (1 + np.exp(-np.clip(beta, -700, 700)))
    clear = {"acc": _margin(fz), "attn_acc": _margin(falpha), "ktiw_acc": _margin(beta) and _margin(prob)}
    for k in ("loss", "gold_mass", "acc", "attn_acc", "ktiw_acc"):
        if clear.get(k, True):
            assert run.history[k][0] == pytest.approx(frun.history[k][0], rel=1e-12, abs=1e-14), k


def _margin(values, gap=1e-9) -> bool:
    """Whether the largest entry along the last axis leads the next by more than ``gap`` everywhere."""
    if values.shape[-1] < 2:
        return True
    top = np.sort(values, axis=-1)[..., -2:]
    return bool(np.all(top[..., 1] - top[..., 0] > gap))


@given(data=st.data())
def test_context_and_position_values_make_each_position_vote_with_its_neighbours(data):
    """With ρ > 0 or position values the KTIW probe is read per position (`value_columns`),
    and the kernel's logged KTIW accuracy is that probe's."""
    cfg, params, x, y = data.draw(cases(model="dot", values="word+position", max_batch=5))
    assert not cfg.exact_tables
    cols = _probes.value_columns(cfg, params, x)
    # the direct computation: the state of position l through WV and WO
    for h in range(cfg.heads):
        E, P = params["E"][h], params["P"][h]
        for b in range(x.shape[0]):
            for l in range(cfg.src_len):  # noqa: E741
                state = E[x[b, l]] + P[l]
                for n in (l - 1, l + 1):
                    if 0 <= n < cfg.src_len:
                        state = state + 0.5 * cfg.context * E[x[b, n]]
                want = params["WO"][h] @ (params["WV"][h].T @ state)
                assert np.allclose(cols[h, b, l], want, rtol=1e-12, atol=1e-12)
    gold = np.zeros_like(y) + (np.arange(cfg.tgt_len) % cfg.src_len)[None]
    beta = metrics.ktiw_probe(cfg, params, x, y)
    # ties break by rounding (or, where probabilities saturate at 1, by index): left out
    clear = np.ones(beta.shape[:-1], bool)
    if cfg.src_len > 1:
        for v in (beta, 1 / (1 + np.exp(-np.clip(beta, -700, 700)))):
            top2 = np.sort(v, axis=-1)[..., -2:]
            clear &= top2[..., 1] - top2[..., 0] > 1e-9
    gold = np.where(clear, gold, -1)
    assert metrics.ktiw_accuracy(beta, gold) == pytest.approx(
        D.batch_metrics(cfg, params, x, y, gold)["ktiw_acc"], nan_ok=True
    )
    # (the kernel's logged KTIW accuracy against the oracle's: test_architectures, train_runs)


def test_context_reaches_keys_that_see_words_and_values_that_see_the_state_and_nothing_else():
    """ρ changes the logits where keys see words or values the whole state; elsewhere it would
    change nothing, and DotConfig refuses it (as a key width with uniform attention)."""
    x = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    base = dict(vocab_in=4, vocab_out=4, src_len=4, tgt_len=4, dim=3)
    for attention, values in (("content", "word"), ("both", "word"), ("positional", "word+position")):
        plain = at.DotConfig(**base, attention=attention, values=values)
        ctx = at.DotConfig(**base, attention=attention, values=values, context=0.8)
        params = at.init_params(plain, 2)
        z0, _ = at.forward(plain, params, x)
        z1, _ = at.forward(ctx, params, x)
        assert np.max(np.abs(z1 - z0)) > 1e-3, (attention, values)
    for attention in ("positional", "uniform"):
        with pytest.raises(ValueError, match=f"context 0.8 changes nothing with {attention} attention and word values"):
            at.DotConfig(**base, attention=attention, context=0.8)
    with pytest.raises(ValueError, match="key_dim changes nothing with uniform attention"):
        at.DotConfig(**base, attention="uniform", key_dim=2)


def test_parameters_are_those_the_model_uses():
    shapes = at.DotConfig(9, 7, 5, 4, heads=2, dim=6, key_dim=3).param_shapes()
    assert shapes == {
        "E": (2, 9, 6), "P": (2, 5, 6), "R": (2, 4, 6), "WQ": (2, 6, 3), "WK": (2, 6, 3), "WV": (2, 6, 6),
        "WO": (2, 7, 6), "b": (7,),
    }  # fmt: skip
    assert set(at.DotConfig(9, 7, 5, 4, attention="uniform").param_shapes()) == {"E", "WV", "WO", "b"}
    assert "P" not in at.DotConfig(9, 7, 5, 4, attention="content").param_shapes()
    assert "P" in at.DotConfig(9, 7, 5, 4, attention="content", values="word+position").param_shapes()
    assert at.DotConfig.for_task(at.tasks.keyword(10, 6), dim=4).attention == "content"
    assert at.DotConfig.for_task(at.tasks.copy(10, 6), dim=4).attention == "positional"


def test_default_init_is_pytorchs():
    cfg = at.DotConfig(300, 200, 100, 100, dim=64)
    p = at.init_params(cfg, 0)
    for name in ("E", "P", "R"):  # nn.Embedding: N(0, 1); within 4 standard errors
        n = p[name].size
        assert p[name].mean() == pytest.approx(0.0, abs=4 / math.sqrt(n))
        assert p[name].std() == pytest.approx(1.0, abs=4 / math.sqrt(2 * n))
    bound = 1 / math.sqrt(64)
    for name in ("WQ", "WK", "WV", "WO", "b"):  # nn.Linear(fan-in 64): U(-1/8, 1/8)
        assert np.abs(p[name]).max() <= bound and np.abs(p[name]).max() > 0.95 * bound
        assert p[name].std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    small = at.init_params(cfg, 0, scale=0.01)
    assert all(v.std() == pytest.approx(0.01, rel=0.05) for v in small.values())


def test_default_init_learns_copy_60_40_under_the_defaults_of_attnsim_run():
    """Adam, lr 0.05, batch 128, 300 steps (attnsim run's defaults), d 32, the default init."""
    task = at.tasks.copy(60, 40)
    cfg = at.DotConfig.for_task(task, dim=32)
    runs = at.train_many(cfg, task, seeds=range(3))
    assert all(r.success for r in runs), [repr(r) for r in runs]
    assert max(r.time_to_learn for r in runs) <= 100


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(dim=0), "dim must be a positive integer"),
        (dict(key_dim=0), "key_dim must be None or a positive integer"),
        (dict(attention="global"), "attention must be one of"),
        (dict(values="sentence"), "values must be one of"),
        (dict(context=-0.5), "context must be a finite number >= 0"),
        (dict(context=float("nan")), "context must be a finite number >= 0"),
        (dict(dtype="float16"), "dtype must be"),
    ],
)
def test_bad_dot_config(kw, match):
    with pytest.raises(ValueError, match=match):
        at.DotConfig(5, 5, 3, 3, **kw)


@pytest.mark.parametrize(
    "shape",
    [
        dict(vocab_in=26, vocab_out=30, src_len=12, tgt_len=9, B=70),  # one example per group (Vout >= 24)
        dict(vocab_in=11, vocab_out=10, src_len=30, tgt_len=28, B=40),  # batched groups of 13, the last partial
    ],
    ids=["per-example", "batched"],
)
def test_kernel_and_oracle_agree_on_a_wide_head_with_every_option(shape):
    """Shapes random small configs do not reach: d 40, k 24, three heads, long sequences,
    several groups of examples."""
    from attnsim.arch import _table_kernels
    from attnsim.arch.dot import _kernels

    shape = dict(shape)
    B = shape.pop("B")
    rng = np.random.default_rng(4)
    cfg = at.DotConfig(**shape, heads=3, dim=40, key_dim=24, attention="both", values="word+position", context=0.7)
    G, _ = _table_kernels._plan(_kernels.layout(cfg)[0], B, True)
    assert (G > 1) == (cfg.vocab_out < _table_kernels.WORD_MAJOR_BELOW) and (G == 1 or B % G)
    params = D.random_params(cfg, rng, scale=0.3)
    x = rng.integers(0, cfg.vocab_in, size=(B, cfg.src_len))
    y = rng.integers(0, cfg.vocab_out, size=(B, cfg.tgt_len))
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    want_loss, want = D.loss_and_grad(cfg, params, x, y)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    assert rounding_err(grads, want) <= 1e-12
    z, alpha = at.forward(cfg, params, x)
    z_ref, alpha_ref = D.forward(cfg, params, x)
    assert np.max(np.abs(z - z_ref)) <= 1e-12 * np.max(np.abs(z_ref)) and np.max(np.abs(alpha - alpha_ref)) <= 1e-14


def test_compare_reads_the_dot_head_through_its_effective_tables():
    """`compare` on rung 1: the simulated KTIW comes from the snapshots' effective tables, the
    reduced dynamics start at the coordinates of the run's own initial tables, and on the
    permutation copy the saddle's verdict is the projection of those tables."""
    task = at.tasks.copy(10, 10)
    r = at.compare(task, model="dot", dim=12, optimizer="sgd", lr=1.0, steps=60, batch=64, seed=3)
    run = r["run"]
    assert r["settings"]["model"] == "dot" and run.cfg == at.DotConfig.for_task(task, dim=12)
    tables = at.effective_tables(run.cfg, run.initial_params)
    assert np.array_equal(run.snapshots["U"][0], tables["U"])
    a0, _ = at.theory.copy_coordinates(tables)
    assert r["reduced"]["ktiw_gold"][0] == pytest.approx(a0[0] - math.log(9), rel=1e-12)
    proj = at.theory.saddle_projection(run.cfg, run.initial_params, task)
    assert r["saddle"]["projection"] == pytest.approx([proj], rel=1e-12)
    assert r["agreement"]["saddle"]["learned"] == run.success
    with pytest.raises(ValueError, match="'dim' is not an option of the model 'free' \\(its options: heads, "):
        at.compare(task, model="free", dim=12, steps=5)


def test_theory_of_the_dot_head_on_the_command_line(tmp_path, capsys):
    from attnsim.cli import main

    out = tmp_path / "th"
    assert main(["theory", "copy", "--vocab", "12", "--length", "8", "--model", "dot", "--dim", "16", "--scale", "0.3",
                 "--out", str(out)]) == 0  # fmt: skip
    doc = json.loads((out / "theory.json").read_text())
    want = at.theory.reduced_copy_dot(12, 8, np.linspace(0, 2000, 20001), key_dim=16, w0=0.3, u0=0.3)
    t = want["tau"][np.flatnonzero(want["gold_mass"] >= 0.5)[0]]
    assert doc["model"]["name"] == "dot" and doc["model"]["reduced_time_to_attend"] == pytest.approx(t, rel=0.01)
    assert "dot head: rung 0's theory reads its effective tables exactly" in capsys.readouterr().out
    assert main(["theory", "copy", "--model", "dot", "--dim", "8", "--out", str(tmp_path / "th2")]) == 0
    assert "need a copy task, positional attention" in capsys.readouterr().out
