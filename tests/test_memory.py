"""Memory estimates: they bound what is allocated, and sizes that cannot fit are refused
before anything is allocated, with one line that says how much they would need. (Every
architecture's workspace estimate against its allocation: ``tests/test_architectures.py``.)"""

import gc
import tracemalloc

import pytest

import attnsim as at
from attnsim import _memory
from attnsim.arch.free import _kernels as K


@pytest.mark.parametrize("snapshots", [False, True])
def test_run_estimate_bounds_what_training_allocates_in_python(snapshots):
    """Everything NumPy allocates while a run trains (tracemalloc sees it), plus the
    kernel's workspace (allocated by Numba, which tracemalloc does not see), stays
    under the estimate the run is checked against."""
    task = at.tasks.copy(30, 12)
    cfg = at.ModelConfig.for_task(task, heads=2)
    kw = dict(steps=120, batch=64, log_every=3, snapshots=snapshots)
    at.train(cfg, task, **kw)  # compiled and cached before measuring
    gc.collect()
    tracemalloc.start()
    try:
        at.train(cfg, task, **kw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    from attnsim._train import chunk_steps

    estimate = _memory.run_bytes(cfg, task, 120, 64, 3, chunk_steps(task, 64), snapshots)
    workspace = K.workspace_bytes(K.layout(cfg), 64, 8)
    assert peak + workspace <= estimate
    assert estimate <= 20 * (peak + workspace)  # an upper bound, not a wild one


def test_a_sweeps_rows_fit_their_estimate(tmp_path):
    """The memory a sweep's table grows by per run (its peak, at the final sorted
    rewrite), measured between two sizes so that fixed costs (the figure) cancel."""

    def peak(seeds, name):
        spec = {"task": {"name": "copy", "vocab": 10, "length": 8}, "model": {"heads": [1, 2]},
                "train": {"steps": 0, "batch": 2, "lr": [0.05, 0.1], "seeds": seeds}}  # fmt: skip
        gc.collect()
        tracemalloc.start()
        try:
            table = at.sweep(spec, tmp_path / name, progress=False)
            return len(table), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(10, "warm")
    n1, p1 = peak(100, "small")
    n2, p2 = peak(500, "large")
    assert (n1, n2) == (400, 2000)
    assert 0 < (p2 - p1) / (n2 - n1) <= _memory.SWEEP_ROW_BYTES


@pytest.mark.parametrize(
    "spec, runs",
    [
        ({"train": {"seeds": 100_000_000}}, "100,000,000"),
        ({"train": {"lr": [0.01 + 1e-6 * i for i in range(10_000)], "scale": [0.001 * (i + 1) for i in range(8_000)]}},
         "80,000,000"),
    ],
)  # fmt: skip
def test_a_sweep_too_big_for_memory_is_refused_without_expanding_it(tmp_path, spec, runs):
    spec = {"task": {"name": "copy", "vocab": 40, "length": 40}, **spec}
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=rf"a sweep of {runs} runs .*: needs about .* GiB of memory, and this"):
            at.sweep(spec, tmp_path / "o", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # the spec's own lists, not its runs
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: at.init_params(at.ModelConfig(10**9, 10**9, 40, 40)), r"initialising the 1e18 parameters .*EiB"),
        (lambda: at.train(at.ModelConfig(10**9, 10**9, 4, 4), at.tasks.copy(10**9, 4)), r"training 1 run .*EiB"),
        (lambda: at.train(at.ModelConfig(12, 12, 8, 8), at.tasks.copy(12, 8), batch=10**9), r"batch 1,000,000,000"),
        (lambda: at.train_many(at.ModelConfig(12, 12, 8, 8), at.tasks.copy(12, 8), seeds=range(10**7)),
         r"training 10,000,000 runs"),
        (lambda: at.theory.stage1_rate(at.tasks.copy(10**9, 40)), r"the theory of copy\(vocab=1000000000"),
        (lambda: at.tasks.translate(10**11, 10**11, 5), r"translate\(100,000,000,000"),
    ],
)  # fmt: skip
def test_sizes_that_cannot_fit_are_a_value_error_before_allocating(build, match):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match + ".*this machine has .* available"):
            build()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_runs_trained_together_count_one_workspace_per_thread():
    """A run's workspace lives while its chunk of steps runs, inside the loop over runs: R runs
    on t threads hold t workspaces at once, not R (120 single-head GRU runs at d 256 need
    about 5 GiB, not 29)."""
    from attnsim._train import chunk_steps

    task = at.tasks.copy(40, 40)
    cfg = at.RNNConfig.for_task(task, cell="gru", hidden=256, shared_embedding=False)
    args = (cfg, task, 200, 128, 10, chunk_steps(task, 128))
    one = _memory.run_bytes(*args)
    own = _memory.run_bytes(*args, workspace=False)
    ws = _memory.workspace_bytes(cfg, 128)
    assert one == own + ws and ws > own  # at this size the workspace is most of a run
    assert _memory.group_bytes(*args, runs=120, parallel=2) == 120 * own + 2 * ws
    assert _memory.group_bytes(*args, runs=1, parallel=2) == one
    assert _memory.group_bytes(*args, runs=120, parallel=2) < 6 * 2**30 < 120 * one
