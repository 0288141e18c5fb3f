"""Hypothesis strategies that draw models and batches, and error measures.

Every architecture's oracle module declares ``SPACE``, the space its random configs come
from (``("int", lo, hi)`` or ``("choice", values)`` per field); `configs` draws from the
same space with hypothesis, so registering an architecture is enough for the tests of
``tests/test_architectures.py`` to draw it.
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import attnsim as at
from attnsim import _arch

ATTENTION = ("positional", "content", "both", "uniform")


@st.composite
def configs(draw, model="free", dtype="float64", factored=None, **fixed):
    """A config of ``model`` drawn from its oracle's ``SPACE``; ``fixed`` pins fields.
    For rung 0, ``factored`` True / False asks for a factored table (``d_model`` 1–4) or a
    free one."""
    arch = _arch.get(model)
    kw = {}
    for name, (kind, *args) in arch.reference.SPACE.items():
        if name in fixed:
            kw[name] = fixed[name]
        elif kind == "int":
            kw[name] = draw(st.integers(args[0], args[1]))
        else:
            kw[name] = draw(st.sampled_from(args[0]))
    if factored is not None:
        kw["d_model"] = draw(st.integers(1, 4)) if factored else None
    admissible = getattr(arch.reference, "admissible", None)  # drawn options that would change nothing
    if admissible is not None:
        kw = admissible(kw, fixed)
    return arch.config(**kw, dtype=dtype)


@st.composite
def cases(draw, max_batch=4, value_bound=3.0, model="free", **cfg_kw):
    """(cfg, params, x, y): a config, parameter values and a batch, all drawn."""
    cfg = draw(configs(model=model, **cfg_kw))
    elems = st.floats(-value_bound, value_bound, allow_nan=False, allow_infinity=False, width=64)
    params = {k: draw(hnp.arrays(np.float64, shape, elements=elems)) for k, shape in cfg.param_shapes().items()}
    B = draw(st.integers(1, max_batch))
    x = draw(hnp.arrays(np.int64, (B, cfg.src_len), elements=st.integers(0, cfg.vocab_in - 1)))
    y = draw(hnp.arrays(np.int64, (B, cfg.tgt_len), elements=st.integers(0, cfg.vocab_out - 1)))
    return cfg, params, x, y


def rel_err(got: dict, want: dict, floor: float = 1e-4) -> float:
    """Largest absolute difference over all arrays, relative to the largest entry of
    ``want`` but at least ``floor``: entries that cancel to ~0 cannot be compared
    relative to themselves, and a gradient that vanishes is checked to rtol·floor."""
    scale = max(max(float(np.max(np.abs(v))) for v in want.values()), floor)
    return max(float(np.max(np.abs(np.asarray(got[k], np.float64) - want[k]))) for k in want) / scale


def mean_rel_err(got: dict, want: dict, floor: float = 1e-4) -> float:
    """`rel_err` with the mean absolute difference over all entries instead of the largest."""
    scale = max(max(float(np.max(np.abs(v))) for v in want.values()), floor)
    diffs = np.concatenate([np.abs(np.asarray(got[k], np.float64) - want[k]).ravel() for k in want])
    return float(diffs.mean()) / scale


def rounding_err(got: dict, want: dict) -> float:
    """`rel_err` for two evaluations of the same sums in different orders (kernel against
    oracle, a model against its relabelled twin). Their difference is rounding,
    eps·(size of the summed terms), not eps·(size of the result): a gradient that cancels
    to exactly 0 in one order is ~1e-16 in the other. Terms are probabilities times
    parameters drawn O(0.1..1), so the scale floor is 1e-2, and a tolerance of 1e-12 still
    fails any real mismatch larger than 1e-14 absolute."""
    return rel_err(got, want, floor=1e-2)


@st.composite
def data_tasks(draw, max_seqs=40, max_len=5, max_tgt=4, max_vin=7, max_vout=6):
    """A `from_arrays` task of random sequences: its statistics are exact for its data."""
    N, L, T = draw(st.integers(1, max_seqs)), draw(st.integers(1, max_len)), draw(st.integers(1, max_tgt))
    Vin, Vout = draw(st.integers(2, max_vin)), draw(st.integers(2, max_vout))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x, y = rng.integers(0, Vin, size=(N, L)), rng.integers(0, Vout, size=(N, T))
    return at.tasks.from_arrays(x, y, vocab_in=Vin, vocab_out=Vout)
