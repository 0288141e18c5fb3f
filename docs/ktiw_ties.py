"""Why claim 3 of the ladder logs every step: how often KTIW and attention accuracy reach 0.5 at
the same log, on the ladder's default copy runs (L = 10, V = L + k for k = 0, 1, 20, 16 seeds
each, 200 steps, each rung's own training settings), logged every 5 steps and every step; and
on the dot head at ρ 0 with `values="word"` beside the ladder's `word+position`. Prints one
line per case: learned runs, then KTIW first, tied, attention first, and the median steps at
which the learned runs' KTIW and attention accuracies reach 0.5 (docs/design.md §7.10).

    python docs/ktiw_ties.py     # under 10 seconds on 2 cores (kernels compiled)
"""

import numpy as np

import attnsim as at
from attnsim import _reproduce_ladder as LD
from attnsim._reproduce_common import Sizes, _first_at_least

KS, SEEDS, STEPS, L = (0, 1, 20), 16, 200, 10


def count(make, train, every) -> str:
    ktiw, attn = [], []
    for k in KS:
        task = at.tasks.copy(L + k, L)
        for run in at.train_many(make(task), task, seeds=range(SEEDS), steps=STEPS, log_every=every, **train):
            if run.success:
                ktiw.append(_first_at_least(run.history["step"], run.history["ktiw_acc"], 0.5))
                attn.append(_first_at_least(run.history["step"], run.history["attn_acc"], 0.5))
    ktiw, attn = np.array(ktiw), np.array(attn)
    return (f"{ktiw.size} learned: KTIW first {int((ktiw < attn).sum())}, tied {int((ktiw == attn).sum())}, "
            f"attention first {int((ktiw > attn).sum())}; median steps to 0.5: KTIW {np.median(ktiw):g}, "
            f"attention {np.median(attn):g}")  # fmt: skip


if __name__ == "__main__":
    rungs = {r["key"]: r for r in LD.rungs(Sizes.default())}
    for key in ("free", "dot0"):
        make, train, label = rungs[key]["make"], rungs[key]["train"], rungs[key]["label"]
        for every in (5, 1):
            print(f"{label}, logged every {every}: {count(lambda t, m=make: m(t, False), train, every)}")
    word = lambda t: at.DotConfig.for_task(t, dim=32, attention="positional", values="word", context=0.0)  # noqa: E731
    print(f"dot head, ρ 0, values='word', logged every 1: {count(word, rungs['dot0']['train'], 1)}")
