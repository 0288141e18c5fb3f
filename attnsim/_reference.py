"""Plain-NumPy oracles of the engine's kernels, and what every architecture's oracle shares.

Each architecture has its own oracle beside its kernels (``attnsim/arch/<name>/_reference.py``:
a forward, a loss and a hand-written backward by a different method than the kernels).
This module holds the oracles of the engine's kernels (the exponential, the blocked
products, the sampler), the optimizer loop `train_steps` (the oracle of every
architecture's step kernel, through its ``loss_and_grad``), `check_train_runs` (one check
of a step kernel against it, for any architecture) and the finite-difference gradient.

``REGISTRY`` pairs each public kernel of ``_kernels`` with its check; a test fails if a
public kernel is missing from it.
"""

from __future__ import annotations

import numpy as np

from . import _arch
from . import _kernels as K
from ._model import pack as flat
from ._model import unpack as unflat


def onehot(idx, n):
    return (np.asarray(idx)[..., None] == np.arange(n)).astype(np.float64)


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def draw_space(space: dict, rng: np.random.Generator) -> dict:
    """Config keywords drawn from an architecture's ``SPACE``: ``("int", lo, hi)`` (both
    included) or ``("choice", values)``; the tests draw from the same spaces with hypothesis."""
    out = {}
    for name, (kind, *args) in space.items():
        if kind == "int":
            out[name] = int(rng.integers(args[0], args[1] + 1))
        else:
            values = args[0]
            out[name] = values[int(rng.integers(0, len(values)))]
    return out


def random_batch(cfg, rng: np.random.Generator, batch: int):
    """Token ids of ``cfg``'s shapes and a gold alignment with some −1 entries."""
    x = rng.integers(0, cfg.vocab_in, size=(batch, cfg.src_len))
    y = rng.integers(0, cfg.vocab_out, size=(batch, cfg.tgt_len))
    gold = rng.integers(-1, cfg.src_len, size=(batch, cfg.tgt_len))
    return x, y, gold


# =============================================================================
# the step loop
# =============================================================================


def train_steps(cfg, params, batches, optimizer, lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
    """Plain-NumPy training loop: one update per (x, y) in ``batches``.

    Returns the list of losses before each update and the final parameters. The
    oracle of every architecture's ``train_runs`` (one run), through that architecture's
    oracle ``loss_and_grad``, and the "plain NumPy" line of the benchmarks.
    """
    oracle = _arch.of(cfg).reference
    params = {k: np.array(v, np.float64) for k, v in params.items()}
    m1 = {k: np.zeros_like(v) for k, v in params.items()}
    m2 = {k: np.zeros_like(v) for k, v in params.items()}
    losses = []
    for step, (x, y) in enumerate(batches, start=1):
        value, grads = oracle.loss_and_grad(cfg, params, x, y, weight_decay)
        losses.append(value)
        for k in params:
            if optimizer == "adam":
                m1[k] = betas[0] * m1[k] + (1 - betas[0]) * grads[k]
                m2[k] = betas[1] * m2[k] + (1 - betas[1]) * grads[k] ** 2
                mhat = m1[k] / (1 - betas[0] ** step)
                vhat = m2[k] / (1 - betas[1] ** step)
                params[k] = params[k] - lr * mhat / (np.sqrt(vhat) + eps)
            else:
                params[k] = params[k] - lr * grads[k]
    return losses, params


# =============================================================================
# finite differences
# =============================================================================


def finite_difference_grad(f, params: dict, h: float = 1e-4) -> dict:
    """Five-point central differences of the scalar ``f(params)`` (error O(h⁴))."""
    out = {}
    for name, value in params.items():
        base = np.array(value, np.float64)
        grad = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            vals = []
            for step in (2 * h, h, -h, -2 * h):
                trial = dict(params)
                moved = base.copy()
                moved[idx] += step
                trial[name] = moved
                vals.append(f(trial))
            grad[idx] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
        out[name] = grad
    return out


# =============================================================================
# registry: kernel ↔ oracle ↔ input maker
# =============================================================================


def gold_metrics(probe, alpha, gold, heads: int) -> dict:
    """The metrics every oracle's ``batch_metrics`` reads off the gold alignment: KTIW accuracy
    (argmax over positions of the probe), per-head attention accuracy and gold mass, over the
    target steps with a gold position (NaN when none has one). ``probe`` (B, T, L'),
    ``alpha`` (H, B, T, L'), ``gold`` (B, T)."""
    has = gold >= 0
    if not has.any():
        return {"ktiw_acc": np.nan, "head_attn_acc": np.full(heads, np.nan), "head_gold_mass": np.full(heads, np.nan)}
    g = np.where(has, gold, 0)
    mass = np.take_along_axis(alpha, np.broadcast_to(g[None, :, :, None], alpha.shape[:3] + (1,)), -1)[..., 0]
    return {
        "ktiw_acc": float((probe.argmax(-1) == gold)[has].mean()),
        "head_attn_acc": np.array([(alpha[h].argmax(-1) == gold)[has].mean() for h in range(heads)]),
        "head_gold_mass": np.array([mass[h][has].mean() for h in range(heads)]),
    }


def _case(model: str, rng, scale: float):
    """A random config of ``model``, parameters N(0, scale²) and a batch of 1–5 sequences."""
    oracle = _arch.get(model).reference
    cfg = oracle.random_config(rng)
    params = oracle.random_params(cfg, rng, scale)
    x, y, _ = random_batch(cfg, rng, int(rng.integers(1, 6)))
    return cfg, params, x, y


def check_loss_grad(model: str, rng, scale: float = 0.7):
    """``model``'s compiled ``loss_grad`` against its oracle's loss and gradient."""
    arch = _arch.get(model)
    cfg, params, x, y = _case(model, rng, scale)
    grad = np.zeros(cfg.n_params)
    got_loss = arch.kernels.loss_grad(x, y, flat(cfg, params), arch.kernels.layout(cfg), grad)
    want_loss, want = arch.reference.loss_and_grad(cfg, params, x, y)
    return [(got_loss, want_loss)] + [(unflat(cfg, grad)[k], want[k]) for k in want]


def check_forward(model: str, rng, scale: float = 0.7):
    """``model``'s compiled ``forward`` (logits and attention) against its oracle's."""
    arch = _arch.get(model)
    cfg, params, x, y = _case(model, rng, scale)
    z = np.zeros(cfg.out_shape(x.shape[0]))
    alpha = np.zeros(cfg.alpha_shape(x.shape[0]))
    arch.kernels.forward(x, y, flat(cfg, params), arch.kernels.layout(cfg), z, alpha)
    z_ref, alpha_ref = arch.reference.forward(cfg, params, x, y)
    return [(z, z_ref), (alpha, alpha_ref)]


def check_train_runs(model: str, rng):
    """R runs of one random config of ``model``, each with its own data, optimizer, lr and
    weight decay, one of them inactive; every active run against the oracle's loop."""
    arch = _arch.get(model)
    Kx, oracle = arch.kernels, arch.reference
    cfg = oracle.random_config(rng)
    R, n_steps, B = int(rng.integers(1, 4)), 4, int(rng.integers(1, 5))
    runs = []
    for _ in range(R):
        optimizer = str(rng.choice(["sgd", "adam"]))
        runs.append(
            dict(
                params=oracle.random_params(cfg, rng, scale=0.3),
                optimizer=optimizer,
                lr=(0.1 if optimizer == "sgd" else 0.02) * float(rng.uniform(0.5, 1.5)),
                wd=float(rng.choice([0.0, 0.01])),
                data=[random_batch(cfg, rng, B) for _ in range(n_steps)],
            )
        )
    active = np.ones(R + 1, np.bool_)
    active[R] = False  # a copy of run 0, switched off: must stay untouched
    runs.append(runs[0])
    xs, ys, golds = (np.stack([np.stack([d[i] for d in run["data"]]) for run in runs]) for i in range(3))
    thetas = np.stack([flat(cfg, run["params"]) for run in runs])
    m1s, m2s = np.zeros_like(thetas), np.zeros_like(thetas)
    hypers = np.array([[run["lr"], run["wd"], 0.9, 0.999, 1e-8] for run in runs])
    opts = np.array([K.OPT_ADAM if run["optimizer"] == "adam" else K.OPT_SGD for run in runs], np.int64)
    out_loss = np.zeros((R + 1, n_steps))
    out_met = np.zeros((R + 1, n_steps, K.n_metrics(cfg.heads)))
    done = np.full(R + 1, -1, np.int64)
    limits = np.full(R + 1, np.nan)
    flags = rng.random(n_steps) < 0.5  # unlogged steps update exactly as logged ones
    flags[0] = True
    before = thetas[R].copy()
    Kx.train_runs(
        xs, ys, golds, thetas, m1s, m2s, Kx.layout(cfg), hypers, opts, 0, True, flags, active, limits,
        out_loss, out_met, done,
    )  # fmt: skip
    pairs = [(done.astype(np.float64), np.array([n_steps] * R + [0], np.float64)), (thetas[R], before)]
    pairs.append((np.isnan(limits), np.array([False] * R + [True])))  # the inactive run's limit is never set
    H = cfg.heads
    for r, run in enumerate(runs[:R]):
        losses, final = train_steps(
            cfg, run["params"], [(d[0], d[1]) for d in run["data"]], run["optimizer"], run["lr"], run["wd"]
        )
        pairs += [(out_loss[r][flags], np.array(losses)[flags])] + [
            (unflat(cfg, thetas[r])[k], final[k]) for k in final
        ]
        ce0, _ = oracle.loss_and_grad(cfg, run["params"], run["data"][0][0], run["data"][0][1])
        pairs.append((limits[r : r + 1], np.array([K.DIVERGE_FACTOR * max(ce0, 1.0)])))  # set at step 0, from the CE
        # the metrics row of the first step, against the oracle's metrics
        d0 = run["data"][0]
        met = oracle.batch_metrics(cfg, run["params"], d0[0], d0[1], d0[2])
        got = out_met[r, 0]
        pairs += [
            (got[K.MET_ACC], met["acc"]),
            (got[K.MET_KTIW], met["ktiw_acc"]),
            (got[K.MET_HEADS : K.MET_HEADS + H], met["head_attn_acc"]),
            (got[K.MET_HEADS + H : K.MET_HEADS + 2 * H], met["head_gold_mass"]),
        ]
    return pairs


def _check_exp(rng):
    src = rng.uniform(-700.0, 0.0, size=int(rng.integers(1, 300)))
    src[: min(3, src.size)] = [0.0, -1e-300, -0.5][: min(3, src.size)]
    out = np.zeros_like(src)
    K.exp_shifted(src, 0.0, out)
    return [(out, np.exp(src))]


def _check_gemm(rng):
    M, Kd, N = (int(v) for v in rng.integers(1, 12, size=3))
    A, B = rng.standard_normal((M, Kd)), rng.standard_normal((Kd, N))
    C0 = rng.standard_normal((M, N))
    C = C0.copy()
    K.gemm_acc(A, B, C)
    return [(C, C0 + np.einsum("mk,kn->mn", A, B))]


def _check_gemm_nt(rng):
    M, Kd, N = (int(v) for v in rng.integers(1, 40, size=3))
    A, B = rng.standard_normal((M, Kd)), rng.standard_normal((N, Kd))
    C0 = rng.standard_normal((M, N))
    C = C0.copy()
    K.gemm_acc_nt(A, B, C)
    return [(C, C0 + np.einsum("mk,nk->mn", A, B))]


def _check_gemm_tn(rng):
    M, Kd, N = (int(v) for v in rng.integers(1, 12, size=3))
    A, B = rng.standard_normal((Kd, M)), rng.standard_normal((Kd, N))
    C0 = rng.standard_normal((M, N))
    C = C0.copy()
    K.gemm_acc_tn(A, B, C)
    return [(C, C0 + np.einsum("km,kn->mn", A, B))]


def partial_shuffle(u, vocab):
    """The oracle of ``_kernels.partial_shuffle``: the same swaps, vectorized over rows."""
    n, L = u.shape
    rows = np.tile(np.arange(vocab, dtype=np.int64), (n, 1))
    ar = np.arange(n)
    for j in range(L):
        k = np.minimum(j + (u[:, j] * (vocab - j)).astype(np.int64), vocab - 1)
        a = rows[ar, j].copy()
        rows[ar, j] = rows[ar, k]
        rows[ar, k] = a
    return rows[:, :L]


def _check_partial_shuffle(rng):
    vocab = int(rng.integers(1, 30))
    L = int(rng.integers(1, vocab + 1))
    u = rng.random((int(rng.integers(1, 50)), L))
    out = np.zeros(u.shape, np.int64)
    K.partial_shuffle(u, vocab, out)
    return [(out, partial_shuffle(u, vocab))]


# name of the public kernel -> function(rng) returning [(kernel result, oracle result), ...]
REGISTRY = {
    "exp_shifted": _check_exp,
    "gemm_acc": _check_gemm,
    "gemm_acc_nt": _check_gemm_nt,
    "gemm_acc_tn": _check_gemm_tn,
    "partial_shuffle": _check_partial_shuffle,
}
