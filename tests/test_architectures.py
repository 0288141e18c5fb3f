"""Every registered architecture, by construction: registering one enrols it here.

* its kernels against its plain-NumPy oracle (`reference.REGISTRY`, every public kernel);
* every gradient against central finite differences (largest and mean error) and against
  the oracle, on shapes and values drawn by hypothesis from the oracle's ``SPACE``, for
  every kind the oracle lists (attention modes, tables, value modes, context);
* the invariants any attention model has: attention rows sum to 1, ∂b sums to 0, a zero
  output layer gives log Vout, permuting heads changes nothing;
* the engine's promises: the same bits alone or among other runs and on any number of
  threads, save → load → continue equal to one uninterrupted run, float32 close to
  float64, the workspace estimate equal to what the kernel allocates, plain Python
  (``NUMBA_DISABLE_JIT=1``) equal to the compiled kernels.

Tolerances (float64): finite differences use a five-point stencil with h = 1e-4
(truncation ~h⁴, rounding ~1e-16/h): largest error 1e-6 and mean error 2e-7, relative to
the largest gradient entry. Kernel and oracle sum the same terms in different orders:
1e-12 (`strategies.rounding_err`); the step loop with Adam 1e-9 (Adam divides by
√v + ε, amplifying rounding in entries that cancel to ~0 by up to lr/ε).
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numba.core.registry import CPUDispatcher

import attnsim as at
from attnsim import _arch
from attnsim import _kernels as engine_kernels
from attnsim import _reference as engine_reference
from attnsim.arch import _table_kernels as table_kernels

from .strategies import cases, mean_rel_err, rel_err, rounding_err

MODELS = at.models()
FD_MAX = 1e-6
FD_MEAN = 2e-7  # worst measured 5.1e-8 in 500 examples per kind (products of four factors drawn up to ±3)
ORACLE = 1e-12
FD_STEP = 1e-4
TOL = {"loss_grad": 1e-12, "forward": 1e-12, "train_runs": 1e-9}
KIND_EXAMPLES = max(4, settings.default.max_examples // 4)  # per kind: every kind, within the time budget


def _kinds():
    return [(m, i) for m in MODELS for i in range(len(_arch.get(m).reference.KINDS))]


def _kind_id(mk):
    model, i = mk
    kind = _arch.get(model).reference.KINDS[i]
    return f"{model}-" + "-".join(str(v).replace("+", "") for v in kind.values())


def _task_for(cfg):
    """A task with ``cfg``'s shapes (random sequences, with a gold alignment)."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, cfg.vocab_in, size=(64, cfg.src_len))
    y = rng.integers(0, cfg.vocab_out, size=(64, cfg.tgt_len))
    gold = rng.integers(0, cfg.src_len, size=(64, cfg.tgt_len))
    return at.tasks.from_arrays(x, y, gold=gold, vocab_in=cfg.vocab_in, vocab_out=cfg.vocab_out)


def _same_run(a, b):
    assert a.history.keys() == b.history.keys()
    for k in a.history:
        assert np.array_equal(a.history[k], b.history[k], equal_nan=True), k
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k


# ----------------------------------------------------------------- kernels and oracles


def test_every_public_kernel_has_an_oracle():
    def public(module):  # compiled functions defined in the module, not starting with _
        return {
            n
            for n, obj in vars(module).items()
            if isinstance(obj, CPUDispatcher) and not n.startswith("_") and obj.py_func.__module__ == module.__name__
        }

    assert not public(table_kernels)  # building blocks only: each rung's entry points use them

    assert public(engine_kernels) == set(engine_reference.REGISTRY)
    for model in MODELS:
        arch = _arch.get(model)
        assert public(arch.kernels) == set(arch.reference.REGISTRY), model


def _compare_pairs(pairs):
    got = {i: np.atleast_1d(np.asarray(g, np.float64)) for i, (g, _) in enumerate(pairs)}
    want = {i: np.atleast_1d(np.asarray(w, np.float64)) for i, (_, w) in enumerate(pairs)}
    for i in got:
        assert not np.any(np.isnan(got[i]) != np.isnan(want[i])), "NaN pattern differs"
        both = np.isnan(got[i]) & np.isnan(want[i])
        got[i], want[i] = np.where(both, 0.0, got[i]), np.where(both, 0.0, want[i])
    return rounding_err(got, want)


@pytest.mark.parametrize(
    "model, kernel", [(m, k) for m in MODELS for k in _arch.get(m).reference.REGISTRY], ids=lambda v: str(v)
)
def test_kernel_matches_oracle(model, kernel):
    check = _arch.get(model).reference.REGISTRY[kernel]
    worst = max(_compare_pairs(check(np.random.default_rng(seed))) for seed in range(30))
    assert worst <= TOL[kernel]


# ----------------------------------------------------------------- gradients


def _assume_away_from_kink(cfg, params, x):
    """A model with a kink (the classifier's ReLU) has no derivative there: differences see
    either side, and float32's rounding of a pre-activation that is ~0 can change its side."""
    oracle = _arch.of(cfg).reference
    assume(not hasattr(oracle, "near_kink") or not oracle.near_kink(cfg, params, x))


def _gradient_check(case, weight_decay=0.0):
    cfg, params, x, y = case
    oracle = _arch.of(cfg).reference
    _assume_away_from_kink(cfg, params, x)
    loss, grads = at.loss_and_grad(cfg, params, x, y, weight_decay=weight_decay)
    assert list(grads) == list(cfg.param_shapes())
    for k, shape in cfg.param_shapes().items():
        assert grads[k].shape == shape and grads[k].dtype == np.float64
    # A loss is a log-sum-exp minus a logit: computed from logits of size |z|, it carries
    # rounding of a few eps·|z| however small it is (a saturated softmax's loss ~1e-8 from
    # logits ~100), and differences with step h divide that by h. Below this noise neither the
    # loss nor a difference quotient can be compared; above it, as tight as before.
    z, _ = at.forward(cfg, params, x, y)
    rounding = 2 * np.finfo(np.float64).eps * (1 + float(np.max(np.abs(z))))
    fd_noise = 1.5 * rounding / FD_STEP  # (1 + 8 + 8 + 1) / 12 of one rounding per evaluation
    # the loss returned with the gradient is the forward-only loss of the oracle
    assert loss == pytest.approx(oracle.loss(cfg, params, x, y, weight_decay), rel=1e-12, abs=max(1e-14, rounding))

    def loss_at(p):
        return at.loss_and_grad(cfg, p, x, y, weight_decay=weight_decay)[0]

    fd = engine_reference.finite_difference_grad(loss_at, params, h=FD_STEP)
    if rel_err(grads, fd, floor=max(1e-4, fd_noise / FD_MAX)) > FD_MAX:
        # Where the loss curves steeply (a product of several factors drawn up to ±3), the
        # five-point stencil's h⁴ error at FD_STEP can exceed FD_MAX: Richardson's step, from h
        # and h/2, cancels that term (its error is O(h⁶)) and carries about 2.2 times the noise.
        half = engine_reference.finite_difference_grad(loss_at, params, h=FD_STEP / 2)
        fd = {k: (16 * half[k] - fd[k]) / 15 for k in fd}
        fd_noise *= (16 * 2 + 1) / 15
    assert rel_err(grads, fd, floor=max(1e-4, fd_noise / FD_MAX)) <= FD_MAX
    assert mean_rel_err(grads, fd, floor=max(1e-4, fd_noise / FD_MEAN)) <= FD_MEAN
    _, ref = oracle.loss_and_grad(cfg, params, x, y, weight_decay)
    assert rounding_err(grads, ref) <= ORACLE


@pytest.mark.parametrize("model_kind", _kinds(), ids=_kind_id)
@settings(max_examples=KIND_EXAMPLES)
@given(data=st.data())
def test_gradient_against_finite_differences_and_oracle(model_kind, data):
    model, i = model_kind
    kind = dict(_arch.get(model).reference.KINDS[i])
    factored = kind.pop("d_model", None) == "factored" if model == "free" else None
    _gradient_check(data.draw(cases(model=model, factored=factored, **kind)))


@pytest.mark.parametrize("model", MODELS)
@given(data=st.data())
def test_weight_decay_gradient(model, data):
    _gradient_check(data.draw(cases(model=model, max_batch=3)), weight_decay=0.37)


# ----------------------------------------------------------------- invariants


@pytest.mark.parametrize("model", MODELS)
@given(data=st.data())
def test_forward_matches_oracle_and_attention_rows_sum_to_one(model, data):
    cfg, params, x, y = data.draw(cases(model=model, max_batch=6))
    z, alpha = at.forward(cfg, params, x, y)
    z_ref, alpha_ref = _arch.of(cfg).reference.forward(cfg, params, x, y)
    assert np.max(np.abs(z - z_ref)) <= 1e-12 * max(np.max(np.abs(z_ref)), 1.0)
    assert np.max(np.abs(alpha - alpha_ref)) <= 1e-14
    assert np.allclose(alpha.sum(axis=-1), 1.0, atol=1e-14)
    assert alpha.shape == cfg.alpha_shape(x.shape[0]) and z.shape == cfg.out_shape(x.shape[0])
    if not cfg.needs_targets:  # a model that does not read the targets gives the same without them
        z2, alpha2 = at.forward(cfg, params, x)
        assert np.array_equal(z2, z) and np.array_equal(alpha2, alpha)


# the models whose output layer has a bias over the classes (the classifier's logits are (0, s))
WITH_OUTPUT_BIAS = [m for m in MODELS if _arch.get(m).reference.random_config(np.random.default_rng(0)).output_bias]


@pytest.mark.parametrize("model", WITH_OUTPUT_BIAS)
@given(data=st.data())
def test_bias_gradient_sums_to_zero(model, data):
    """Σ_o δ = 0 over the vocabulary, so the output bias's gradient sums to zero."""
    cfg, params, x, y = data.draw(cases(model=model, bias=True))
    _, grads = at.loss_and_grad(cfg, params, x, y)
    gb = grads[cfg.output_bias]
    assert abs(gb.sum()) <= 1e-14 * max(1.0, float(np.abs(gb).max()))


@pytest.mark.parametrize("model", MODELS)
@given(data=st.data())
def test_zero_output_layer_gives_log_vout(model, data):
    cfg, params, x, y = data.draw(cases(model=model))
    zero = {k: (np.zeros_like(v) if k in _arch.of(cfg).zero_output or k == cfg.output_bias else v)
            for k, v in params.items()}  # fmt: skip
    loss, _ = at.loss_and_grad(cfg, zero, x, y)
    assert loss == pytest.approx(np.log(cfg.n_out), rel=1e-14)
    z, _ = at.forward(cfg, zero, x, y)
    assert np.all(z == 0.0)


@pytest.mark.parametrize("model", MODELS)
@given(data=st.data())
def test_permuting_heads_changes_nothing(model, data):
    cfg, params, x, y = data.draw(cases(model=model))
    perm = np.arange(cfg.heads)[::-1]
    heads = cfg.head_params
    permuted = {k: (v[perm] if k in heads else v) for k, v in params.items()}
    loss, grads = at.loss_and_grad(cfg, params, x, y)
    loss2, grads2 = at.loss_and_grad(cfg, permuted, x, y)
    assert loss2 == pytest.approx(loss, rel=1e-12, abs=1e-14)
    assert rounding_err({k: (g[perm] if k in heads else g) for k, g in grads2.items()}, grads) <= 1e-12


@pytest.mark.parametrize("model", MODELS)
@given(data=st.data())
def test_float32_close_to_float64(model, data):
    cfg64, params, x, y = data.draw(cases(model=model, max_batch=4, value_bound=1.0))
    _assume_away_from_kink(cfg64, params, x)
    cfg32 = at.config_from_dict({**cfg64.to_dict(), "dtype": "float32"})
    loss32, g32 = at.loss_and_grad(cfg32, params, x, y)
    loss64, g64 = at.loss_and_grad(cfg64, params, x, y)
    assert all(g.dtype == np.float32 for g in g32.values())
    assert loss32 == pytest.approx(loss64, rel=1e-5, abs=1e-5)
    assert rel_err(g32, g64, floor=1e-2) <= 1e-4


@pytest.mark.parametrize("model", MODELS)
def test_workspace_estimate_is_what_the_kernel_allocates(model):
    """``workspace_bytes`` mirrors ``_alloc_ws`` exactly, for every kind and both dtypes."""
    arch = _arch.get(model)
    rng = np.random.default_rng(3)

    def arrays(ws):
        for a in ws:
            yield from (arrays(a) if isinstance(a, tuple) else [a])

    for kind in arch.reference.KINDS:
        for dtype in ("float64", "float32"):
            for B in (1, 7, 300):
                cfg = at.config_from_dict({**arch.reference.random_config(rng, **kind).to_dict(), "dtype": dtype})
                theta = np.zeros(cfg.n_params, cfg.np_dtype)
                lay = arch.kernels.layout(cfg)
                buffers = {a.ctypes.data: a.nbytes for a in arrays(arch.kernels._alloc_ws(lay, theta, B))}
                assert arch.kernels.workspace_bytes(lay, B, cfg.np_dtype.itemsize) == sum(buffers.values())


# ----------------------------------------------------------------- the engine's promises


def _small_cfg(model, seed=0, **fixed):
    arch = _arch.get(model)
    return arch.reference.random_config(np.random.default_rng(seed), **{"heads": 2, "src_len": 5, **fixed})


@pytest.mark.parametrize("model", MODELS)
def test_same_bits_alone_among_other_runs_and_on_any_number_of_threads(model):
    cfg = _small_cfg(model)
    task = _task_for(cfg)
    kw = dict(optimizer="adam", lr=0.03, steps=40, batch=8, log_every=3, scale=0.5)
    alone = at.train(cfg, task, seed=5, **kw)
    for threads in (1, 2):
        among = at.train_many(cfg, task, seeds=[1, 5, 9], threads=threads, **kw)
        _same_run(alone, among[1])
    assert not np.array_equal(
        among[0].params[next(iter(cfg.param_shapes()))], alone.params[next(iter(cfg.param_shapes()))]
    )


class _WholeChunks:
    """Every compiled call as long as it may be: a whole chunk (or the piece between cuts)."""

    steps = 10**9

    def took(self, steps, seconds):
        pass


@pytest.mark.parametrize("model", MODELS)
def test_same_bits_however_a_chunk_is_cut_into_calls(model, monkeypatch):
    """Compiled calls are sized by the clock (`_train.CALL_SECONDS`, so that a stop request
    is seen within seconds): one step per call, calls sized by the clock, and whole chunks
    give the same runs, bit for bit, with a run in the group that diverges."""
    from attnsim import _train

    cfg = _small_cfg(model)
    task = _task_for(cfg)
    kw = dict(optimizer="adam", lr=[0.03, 1e6, 0.03], steps=40, batch=8, log_every=3, scale=0.5)
    clocked = at.train_many(cfg, task, seeds=[1, 5, 9], **kw)
    assert [r.status for r in clocked] == ["finished", "diverged", "finished"]
    monkeypatch.setattr(_train, "CALL_SECONDS", 0.0)  # one step per call
    one_step = at.train_many(cfg, task, seeds=[1, 5, 9], **kw)
    monkeypatch.setattr(_train, "_CallSize", _WholeChunks)
    whole = at.train_many(cfg, task, seeds=[1, 5, 9], **kw)
    for a, b, c in zip(whole, one_step, clocked, strict=True):
        _same_run(a, b)
        _same_run(a, c)
        assert a.stopped_at == b.stopped_at == c.stopped_at and a.message == b.message == c.message


def test_a_call_is_sized_by_the_clock():
    from attnsim import _train

    size = _train._CallSize()
    assert size.steps == 1  # the first call of a group measures
    size.took(1, 0.001)  # 1 ms a step: 2000 would fill CALL_SECONDS, but a call grows at most fourfold
    assert size.steps == 4
    size.took(4, 0.004)
    assert size.steps == 16
    size.took(16, 16.0)  # a second a step: two steps a call
    assert size.steps == int(_train.CALL_SECONDS)
    size.took(2, 200.0)  # slower than CALL_SECONDS for one step: still one
    assert size.steps == 1


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("optimizer", ["gd", "sgd", "adam"])
def test_save_load_continue_equals_one_uninterrupted_run(model, optimizer, tmp_path):
    """A run continued from its saved state (parameters, Adam's moments, the data stream's
    position, the divergence threshold) has the bits of one that never stopped, at a stop
    inside a chunk of data and off the logging grid, with weight decay."""
    cfg = _small_cfg(model, seed=1)
    task = _task_for(cfg)
    kw = dict(optimizer=optimizer, lr=0.02 if optimizer == "adam" else 0.3, batch=8, log_every=4, seed=3, scale=0.4,
              weight_decay=1e-3)  # fmt: skip
    whole = at.train(cfg, task, steps=53, **kw)
    first = at.train(cfg, task, steps=21, **kw)
    first.save(tmp_path / "r")
    back = at.load_run(tmp_path / "r")
    _same_run(first, back)
    assert back.cfg == cfg and back.model == model
    for k in cfg.param_shapes():
        assert np.array_equal(back.initial_params[k], first.initial_params[k])
    assert back.state["updates"] == 21 and back.state["limit"] == first.state["limit"]
    for continued in (first.extend(32, task), back.extend(32, task)):
        _same_run(whole, continued)
        assert continued.settings == whole.settings
        for k in cfg.param_shapes():
            assert np.array_equal(continued.initial_params[k], whole.initial_params[k])
    twice = first.extend(10, task).extend(22, task)
    _same_run(whole, twice)


@pytest.mark.parametrize("model", MODELS)
def test_plain_python_equals_the_compiled_kernels(model):
    """NUMBA_DISABLE_JIT=1 runs every kernel as Python (to debug or line-count them): a
    tiny run there equals the compiled one to rounding (the compiled code fuses
    multiply-adds)."""
    ref = _arch.get(model).reference
    rich = ref.RICH  # options that reach every path of the kernels
    task = ref.small_task() if hasattr(ref, "small_task") else at.tasks.copy(6, 4)  # a task of the model's shapes
    code = (
        "import attnsim as at, numpy as np, sys\n"
        f"t = at.tasks.from_spec({task.spec()!r})\n"
        f"cfg = at.{_arch.get(model).config.__name__}.for_task(t, **{rich!r})\n"
        "r = at.train(cfg, t, steps=6, batch=3, log_every=2, weight_decay=0.01, scale=0.3)\n"
        "np.save('out.npy', np.concatenate([r.history['loss'], *[v.ravel() for v in r.params.values()]]))\n"
    )
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
        proc = subprocess.run([sys.executable, "-c", code], cwd=d, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        plain = np.load(os.path.join(d, "out.npy"))
    cfg = _arch.get(model).config.for_task(task, **rich)
    run = at.train(cfg, task, steps=6, batch=3, log_every=2, weight_decay=0.01, scale=0.3)
    compiled = np.concatenate([run.history["loss"], *[v.ravel() for v in run.params.values()]])
    assert plain.shape == compiled.shape and np.max(np.abs(plain - compiled)) <= 1e-12 * max(1, np.abs(compiled).max())


@pytest.mark.parametrize("model", MODELS)
def test_config_round_trips_through_its_dict(model):
    cfg = _small_cfg(model, seed=4)
    d = cfg.to_dict()
    assert d["model"] == model
    assert at.config_from_dict(d) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        at.config_from_dict({**d, "colour": 1})
