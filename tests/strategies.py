"""Hypothesis strategies that draw models and batches, and error measures."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import attnsim as at

ATTENTION = ("positional", "content", "both", "uniform")


@st.composite
def configs(draw, max_vocab=12, max_len=8, attention=None, factored=None, dtype="float64"):
    """Every parameterization of docs/design.md §1.1: H 1–3, vocabularies 2–12, lengths 1–8."""
    if factored is None:
        factored = draw(st.booleans())
    return at.ModelConfig(
        vocab_in=draw(st.integers(2, max_vocab)),
        vocab_out=draw(st.integers(2, max_vocab)),
        src_len=draw(st.integers(1, max_len)),
        tgt_len=draw(st.integers(1, max_len)),
        heads=draw(st.integers(1, 3)),
        attention=attention or draw(st.sampled_from(ATTENTION)),
        d_model=draw(st.integers(1, 4)) if factored else None,
        bias=draw(st.booleans()),
        dtype=dtype,
    )


@st.composite
def cases(draw, max_batch=4, value_bound=3.0, **cfg_kw):
    """(cfg, params, x, y): a config, parameter values and a batch, all drawn."""
    cfg = draw(configs(**cfg_kw))
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
