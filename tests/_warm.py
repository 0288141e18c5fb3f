"""Compile the kernels the suite will need into Numba's cache, from a second process.

On a fresh checkout most of the suite's time is Numba compiling each architecture's
kernels in float64 and float32, one after another, on one core. `conftest.py` starts this
module beside the tests (``python -m tests._warm``): it compiles the same kernels, through
the same public calls and so with the same signatures, in about the reverse of the order
the tests first ask for them (the tests start with float64 and the free model; this starts
with float32's step loops). A test that reaches a kernel this process has cached loads it
from disk instead of compiling it; one this process has not reached yet the test compiles
itself, as it would without it. Nothing here changes what a test computes: a cached kernel
is the same compiled code. ``ATTNSIM_WARM=0`` turns it off.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def _jobs():
    import attnsim as at

    task = at.tasks.copy(6, 5)
    text = at.tasks.keyword(12, 6, keywords=2)

    def config(model, dtype):
        if model == "free":
            return at.ModelConfig.for_task(task, dtype=dtype), task
        if model == "dot":
            return at.DotConfig.for_task(task, dim=4, dtype=dtype), task
        if model == "rnn":
            return at.RNNConfig.for_task(task, hidden=4, dtype=dtype), task
        return at.ClassifierConfig.for_task(text, embed=4, hidden=4, intermediate=4, dtype=dtype), text

    def step_loop(model, dtype):
        cfg, t = config(model, dtype)
        at.train(cfg, t, steps=2, batch=4, log_every=1)

    def loss_grad(model, dtype):
        cfg, t = config(model, dtype)
        x, y, _ = t.sample(np.random.default_rng(0), 3)
        at.loss_and_grad(cfg, at.init_params(cfg, 0), x, y)

    def forward(model, dtype):
        cfg, t = config(model, dtype)
        x, y, _ = t.sample(np.random.default_rng(0), 3)
        at.forward(cfg, at.init_params(cfg, 0), x, y)

    order = [(step_loop, m, "float32") for m in ("free", "rnn", "clf")]
    order += [(forward, m, "float32") for m in ("rnn", "clf")]
    order += [(loss_grad, m, "float32") for m in ("clf", "rnn", "dot", "free")]
    for m in ("clf", "rnn", "dot", "free"):
        order += [(step_loop, m, "float64"), (loss_grad, m, "float64"), (forward, m, "float64")]
    return order


def main() -> int:
    for fn, model, dtype in _jobs():
        t0 = time.perf_counter()
        try:
            fn(model, dtype)
        except Exception as e:  # a failure here only means the test compiles it itself
            print(f"warm: {fn.__name__} {model} {dtype}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            continue
        print(f"warm: {fn.__name__} {model} {dtype}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
