"""Training: determinism, streams, optimizers, divergence, saving and loading."""

import json
import os

import numpy as np
import pytest

import attnsim as at
from attnsim import _reference as R

TASK = at.tasks.copy(12, 8)
CFG = at.ModelConfig.for_task(TASK)


def _same_run(a, b):
    assert a.history.keys() == b.history.keys()
    for k in a.history:
        assert np.array_equal(a.history[k], b.history[k], equal_nan=True), k
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k


@pytest.mark.parametrize("optimizer", ["gd", "sgd", "adam"])
def test_same_seed_same_bits(optimizer):
    kw = dict(optimizer=optimizer, lr=0.05 if optimizer == "adam" else 1.0, steps=120, batch=16, seed=3, log_every=7)
    _same_run(at.train(CFG, TASK, **kw), at.train(CFG, TASK, **kw))


def test_different_seeds_differ():
    a = at.train(CFG, TASK, steps=20, batch=8, seed=0)
    b = at.train(CFG, TASK, steps=20, batch=8, seed=1)
    assert not np.array_equal(a.params["U"], b.params["U"])


def test_a_run_is_a_prefix_of_a_longer_run():
    """Data are drawn in chunks whose size depends on the shapes only."""
    cfg = at.ModelConfig(40, 40, 30, 30)
    task = at.tasks.copy(40, 30)
    short = at.train(cfg, task, steps=37, batch=64, seed=5, log_every=1)
    long = at.train(cfg, task, steps=80, batch=64, seed=5, log_every=1)
    n = len(short.history["step"]) - 1  # the short run's last row is measured on another batch
    for k in ("loss", "acc", "attn_acc", "ktiw_acc"):
        assert np.array_equal(short.history[k][:n], long.history[k][:n])


def test_init_and_data_streams_are_independent():
    run = at.train(CFG, TASK, steps=0, batch=8, seed=4, scale=0.3)
    assert all(np.array_equal(run.params[k], v) for k, v in at.init_params(CFG, 4, 0.3).items())
    # the data stream does not depend on the init: the same batches at any scale
    a = at.train(CFG, TASK, optimizer="sgd", lr=1e-12, steps=3, batch=8, seed=4, scale=0.0, log_every=1)
    b = at.train(CFG, TASK, optimizer="sgd", lr=1e-12, steps=3, batch=8, seed=4, scale=0.0, log_every=1)
    _same_run(a, b)


def test_init_params_heads_and_groups_have_their_own_streams():
    one = at.init_params(at.ModelConfig(6, 6, 4, 4, heads=1), 9, 0.5)
    three = at.init_params(at.ModelConfig(6, 6, 4, 4, heads=3), 9, 0.5)
    assert np.array_equal(one["U"][0], three["U"][0]) and np.array_equal(one["S"][0], three["S"][0])
    only_s = at.init_params(at.ModelConfig(6, 6, 4, 4), 9, {"S": 0.5})
    assert np.array_equal(only_s["S"], one["S"]) and not only_s["U"].any() and not only_s["b"].any()
    zero = at.init_params(CFG, 1, 0)
    assert all(not v.any() for v in zero.values())
    with pytest.raises(ValueError, match="scale names unknown parameter"):
        at.init_params(CFG, 0, {"Q": 1.0})
    with pytest.raises(ValueError, match="scale for U must be a finite number >= 0"):
        at.init_params(CFG, 0, -1.0)


def test_step_loop_matches_the_numpy_loop():
    """The compiled loop (with its bulk data) against the oracle loop on the same batches."""
    cfg = at.ModelConfig(7, 7, 5, 5, heads=2, attention="both")
    task = at.tasks.copy(7, 5)
    run = at.train(
        cfg, task, optimizer="adam", lr=0.05, steps=25, batch=6, seed=2, scale=0.1, log_every=1, weight_decay=1e-3
    )
    from attnsim._model import STREAM_DATA, seed_sequence
    from attnsim._train import chunk_steps

    rng = np.random.default_rng(seed_sequence(2, STREAM_DATA))
    x, y, _ = task.sample(rng, chunk_steps(task, 6) * 6)
    batches = [(x[6 * k : 6 * k + 6], y[6 * k : 6 * k + 6]) for k in range(25)]
    losses, final = R.train_steps(cfg, at.init_params(cfg, 2, 0.1), batches, "adam", 0.05, 1e-3)
    assert np.max(np.abs(run.history["loss"][:25] - losses)) <= 1e-9
    scale = max(np.max(np.abs(v)) for v in final.values())
    assert max(np.max(np.abs(run.params[k] - final[k])) for k in final) <= 1e-9 * scale


def test_gd_uses_one_fixed_batch_and_a_small_step_decreases_the_loss():
    run = at.train(CFG, TASK, optimizer="gd", lr=0.5, steps=200, batch=32, seed=0, log_every=1)
    assert np.all(np.diff(run.history["loss"]) <= 1e-12)
    run2 = at.train(CFG, TASK, optimizer="sgd", lr=0.5, steps=200, batch=32, seed=0, log_every=1)
    assert np.any(np.diff(run2.history["loss"]) > 0)  # fresh batches: noisy


def test_history_layout_and_tau():
    run = at.train(CFG, TASK, optimizer="sgd", lr=0.25, steps=45, batch=8, log_every=10)
    assert run.history["step"].tolist() == [0, 10, 20, 30, 40, 45]
    assert np.allclose(run.history["tau"], 0.25 * run.history["step"])
    for k in ("loss", "acc", "attn_acc", "gold_mass", "ktiw_acc"):
        assert run.history[k].shape == (6,)
    assert run.history["head_attn_acc"].shape == (6, 1)
    assert run.history["loss"][0] == pytest.approx(np.log(12), rel=1e-2)  # init scale 0.01


def test_multihead_logs_each_head_and_reports_the_best():
    cfg = at.ModelConfig.for_task(TASK, heads=3)
    run = at.train(cfg, TASK, steps=40, batch=16, seed=1, log_every=10)
    per = run.history["head_attn_acc"]
    assert per.shape == (5, 3)
    assert np.array_equal(run.history["attn_acc"], per.max(axis=1))
    best = per.argmax(axis=1)
    assert np.array_equal(run.history["gold_mass"], run.history["head_gold_mass"][np.arange(5), best])


def test_divergence_stops_with_a_message_and_keeps_the_history(caplog):
    # cross-entropy gradients are bounded: only a step that overflows float64 diverges
    run = at.train(CFG, TASK, optimizer="sgd", lr=1e308, steps=50, batch=8, scale=1.0, log_every=1)
    assert run.status == "diverged" and "non-finite at step 1;" in run.message and not run.success
    assert run.history["step"].tolist() == [0] and np.all(np.isfinite(run.history["loss"])) and run.stopped_at == 1
    assert caplog.text.count("non-finite") == 1


def test_a_loss_that_grows_a_hundredfold_is_a_divergence(caplog, tmp_path):
    """Adam at lr 1e6 moves every parameter by 1e6 a step: the loss grows by orders of
    magnitude while staying finite. The run stops at the first logged step past 100 ×
    its step-0 loss and keeps that step, so the history shows the blow-up."""
    run = at.train(CFG, TASK, optimizer="adam", lr=1e6, steps=200, batch=8, log_every=5)
    assert run.status == "diverged" and not run.success and run.stopped_at == 5
    loss = run.history["loss"]
    assert run.history["step"].tolist() == [0, 5] and loss[-1] > 100 * loss[0] and np.isfinite(loss[-1])
    assert "grew to" in run.message and "lr 1e+06" in run.message
    assert caplog.text.count("grew to") == 1
    run.save(tmp_path / "d")
    back = at.load_run(tmp_path / "d")
    assert back.status == "diverged" and back.stopped_at == 5 and back.message == run.message
    # the limit is 100 × the step-0 loss: runs that learn never come near it
    ok = at.train(CFG, TASK, optimizer="adam", lr=0.05, steps=200, batch=8, log_every=5)
    assert ok.status == "finished" and ok.stopped_at is None and ok.history["loss"].max() < 2 * loss[0]


def test_logging_does_not_change_training():
    """Weight decay acts on every update, logged or not (it once acted on logged steps only)."""
    kw = dict(optimizer="sgd", lr=0.5, steps=40, batch=8, seed=1, scale=0.3, weight_decay=0.1)
    every, sparse = at.train(CFG, TASK, log_every=1, **kw), at.train(CFG, TASK, log_every=7, **kw)
    for k in every.params:
        assert np.array_equal(every.params[k], sparse.params[k]), k
    assert np.array_equal(every.history["loss"][::7], sparse.history["loss"][:-1])


def test_repr_is_one_line():
    run = at.train(CFG, TASK, steps=20, batch=8, seed=3)
    text = repr(run)
    assert "\n" not in text and len(text) < 200
    assert text.startswith("Run(copy, free, 1 head, adam lr 0.05, seed 3, 20 steps: ")


def test_a_first_compile_is_announced_per_dtype(caplog, monkeypatch):
    from attnsim import _train

    monkeypatch.setattr(_train, "kernels_cached", lambda cfg: cfg.dtype == "float64")
    cfg32 = at.ModelConfig.for_task(TASK, dtype="float32")
    with caplog.at_level("INFO", logger="attnsim"):
        at.train(CFG, TASK, steps=2, batch=4)
        assert "compiling" not in caplog.text
        at.train(cfg32, TASK, steps=2, batch=4)
    assert "compiling the free model's float32 kernels" in caplog.text
    monkeypatch.undo()
    assert _train.kernels_cached(cfg32) and _train.kernels_cached(CFG)  # both are compiled now


def test_snapshots_record_and_do_not_change_the_bits():
    kw = dict(optimizer="adam", steps=30, batch=8, seed=2, log_every=10)
    plain = at.train(CFG, TASK, **kw)
    snap = at.train(CFG, TASK, snapshots=True, **kw)
    _same_run(plain, snap)
    assert snap.snapshots["step"].tolist() == [0, 10, 20, 30]
    assert snap.snapshots["U"].shape == (4, 1, 12, 12) and snap.snapshots["alpha"].shape == (4, 1, 8, 8)
    assert np.array_equal(snap.snapshots["U"][-1], plain.params["U"])
    assert np.array_equal(snap.snapshots["b"][-1], plain.params["b"])
    assert np.allclose(snap.snapshots["alpha"].sum(-1), 1.0)
    assert np.array_equal(snap.snapshots["S"][-1], plain.params["S"]) and "A" not in snap.snapshots


def test_save_and_load_round_trip(tmp_path):
    run = at.train(
        at.ModelConfig.for_task(at.tasks.keyword(10, 6)), at.tasks.keyword(10, 6), steps=20, batch=16, snapshots=True
    )
    run.save(tmp_path / "r")
    back = at.load_run(tmp_path / "r")
    _same_run(run, back)
    assert back.cfg == run.cfg and back.settings == run.settings and back.task == run.task
    assert np.array_equal(back.snapshots["U"], run.snapshots["U"])
    assert np.array_equal(back.snapshots["A"][-1], run.params["A"])
    doc = json.loads((tmp_path / "r" / "history.json").read_text())
    assert doc["summary"]["final_step"] == 20 and doc["config"]["attention"] == "content"
    assert not list(tmp_path.glob("r/.tmp-*"))  # no temporary files left
    mask = os.umask(0)
    os.umask(mask)
    for f in (tmp_path / "r").iterdir():  # ordinary permissions, not mkstemp's 0600
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask


def test_loading_something_else_is_a_value_error(tmp_path):
    (tmp_path / "history.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        at.load_run(tmp_path)
    (tmp_path / "history.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not an attnsim run"):
        at.load_run(tmp_path)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(lr=-1.0), "lr must be a number > 0"),
        (dict(lr=0), "lr must be a number > 0"),
        (dict(lr=float("nan")), "lr must be"),
        (dict(steps=-1), "steps must be an integer >= 0"),
        (dict(steps=2.5), "steps must be an integer"),
        (dict(batch=0), "batch must be an integer >= 1"),
        (dict(log_every=0), "log_every must be an integer >= 1"),
        (dict(optimizer="rmsprop"), "optimizer must be one of gd, sgd, adam"),
        (dict(seed=-3), "seed must be a non-negative integer"),
        (dict(weight_decay=-0.1), "weight_decay must be a number >= 0"),
        (dict(betas=(0.9, 1.0)), r"betas must lie in \[0, 1\)"),
    ],
)
def test_bad_training_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        at.train(CFG, TASK, **kw)


def test_config_must_fit_the_task():
    with pytest.raises(ValueError, match=r"vocab_in=13 \(task has 12\)"):
        at.train(at.ModelConfig(13, 12, 8, 8), TASK)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(heads=0), "heads must be a positive integer"),
        (dict(attention="global"), "attention must be one of"),
        (dict(d_model=0), "d_model must be None or a positive integer"),
        (dict(dtype="float16"), "dtype must be"),
        (dict(vocab_in=2.5), "vocab_in must be a positive integer"),
    ],
)
def test_bad_config(kw, match):
    base = dict(vocab_in=5, vocab_out=5, src_len=3, tgt_len=3)
    with pytest.raises(ValueError, match=match):
        at.ModelConfig(**{**base, **kw})


def test_bad_batches_and_params_are_rejected():
    params = at.init_params(CFG, 0)
    x = np.zeros((2, 8), dtype=int)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 8\)"):
        at.loss_and_grad(CFG, params, np.zeros((2, 7), dtype=int), x)
    with pytest.raises(ValueError, match=r"outside \[0, 12\)"):
        at.loss_and_grad(CFG, params, x + 12, x)
    with pytest.raises(ValueError, match="missing S"):
        at.loss_and_grad(CFG, {k: v for k, v in params.items() if k != "S"}, x, x)
    with pytest.raises(ValueError, match=r"params\['U'\] has shape"):
        at.loss_and_grad(CFG, {**params, "U": np.zeros((1, 3, 3))}, x, x)


DATA = os.path.join(os.path.dirname(__file__), "data")


def test_a_run_saved_before_the_model_ladder_still_loads(tmp_path):
    """tests/data/run_v1 was written by attnsim 0.1 (`attnsim run copy --vocab 6 --length 4
    --steps 30 --batch 8 --log-every 7`): format attnsim-run/1, no model name, no state."""
    run = at.load_run(os.path.join(DATA, "run_v1"))
    assert run.model == "free" and run.cfg == at.ModelConfig(6, 6, 4, 4)
    assert run.history["step"].tolist() == [0, 7, 14, 21, 28, 30] and run.success
    assert run.initial_params is None and run.state is None
    with pytest.raises(ValueError, match="saved without its optimizer state"):
        run.extend(10)
    # it trains again to the same run: the code moved, the arithmetic did not (to rounding: the
    # file was written on another machine, and the same bits are promised on one: docs/design.md §5)
    again = at.train(run.cfg, at.tasks.copy(6, 4), steps=30, batch=8, log_every=7)
    assert run.history.keys() == again.history.keys()
    for k in run.history:
        assert np.allclose(run.history[k], again.history[k], rtol=1e-9, atol=1e-12, equal_nan=True), k
    for k in run.params:
        assert np.allclose(run.params[k], again.params[k], rtol=1e-9, atol=1e-12), k
    run.save(tmp_path / "v2")  # and is written in the current format
    assert json.loads((tmp_path / "v2" / "history.json").read_text())["format"] == "attnsim-run/2"


def test_extend_refuses_a_diverged_run_and_another_task():
    run = at.train(CFG, TASK, steps=10, batch=8)
    with pytest.raises(ValueError, match="not this run's"):
        run.extend(5, task=at.tasks.copy(12, 8, replace=True))
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        run.extend(-1)
    bad = at.train(CFG, TASK, optimizer="adam", lr=1e6, steps=50, batch=8, log_every=5)
    assert bad.status == "diverged" and bad.state is None
    with pytest.raises(ValueError, match="diverged at step 5; a diverged run cannot be continued"):
        bad.extend(5)
