"""Plain-NumPy oracle of every kernel, written by a different method.

The kernels gather rows of a transposed table and use blocked products; the oracle
builds dense one-hot tensors and contracts them with ``einsum``, one line per line of
docs/design.md §1. It is slow and obviously right, and it is what the tests, ``attnsim
gradcheck`` and the benchmarks compare the kernels with.

``REGISTRY`` pairs each public kernel of ``_kernels`` with its oracle and a maker of
random inputs; a test fails if a public kernel is missing from it.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from ._config import ModelConfig, layout
from ._model import pack as flat
from ._model import unpack as unflat

# =============================================================================
# the model
# =============================================================================


def _onehot(idx, n):
    return (np.asarray(idx)[..., None] == np.arange(n)).astype(np.float64)


def table(cfg: ModelConfig, params: dict) -> np.ndarray:
    """U (H, Vout, Vin): the table itself, or W @ E."""
    if cfg.d_model is None:
        return np.asarray(params["U"], np.float64)
    return np.einsum("hod,hdi->hoi", params["W"], params["E"])


def forward(cfg: ModelConfig, params: dict, x) -> tuple[np.ndarray, np.ndarray]:
    """Logits z (B, T, Vout) and attention alpha (H, B, T, L), docs/design.md §1.1."""
    H, L, T = cfg.heads, cfg.src_len, cfg.tgt_len
    X = _onehot(x, cfg.vocab_in)  # (B, L, Vin)
    B = X.shape[0]
    U = table(cfg, params)
    s = np.zeros((H, B, T, L))
    if cfg.has_S:
        s = s + np.asarray(params["S"], np.float64)[:, None, :, :]
    if cfg.has_A:
        s = s + np.einsum("hti,bli->hbtl", params["A"], X)
    if cfg.attention == "uniform":
        alpha = np.full((H, B, T, L), 1.0 / L)
    else:
        s = s - s.max(axis=-1, keepdims=True)
        alpha = np.exp(s) / np.exp(s).sum(axis=-1, keepdims=True)
    UX = np.einsum("hoi,bli->hblo", U, X)  # U[h, :, x[b, l]]
    z = np.einsum("hbtl,hblo->bto", alpha, UX) / H
    if cfg.bias:
        z = z + np.asarray(params["b"], np.float64)
    return z, alpha


def _log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def loss(cfg: ModelConfig, params: dict, x, y, weight_decay: float = 0.0) -> float:
    z, _ = forward(cfg, params, x)
    Y = _onehot(y, cfg.vocab_out)
    value = -(Y * _log_softmax(z)).sum() / (Y.shape[0] * Y.shape[1])
    if weight_decay:
        value += 0.5 * weight_decay * sum(float((np.asarray(p, np.float64) ** 2).sum()) for p in params.values())
    return float(value)


def loss_and_grad(cfg: ModelConfig, params: dict, x, y, weight_decay: float = 0.0):
    """docs/design.md §1.2, one line each."""
    H = cfg.heads
    X = _onehot(x, cfg.vocab_in)
    Y = _onehot(y, cfg.vocab_out)
    B, T = Y.shape[0], Y.shape[1]
    U = table(cfg, params)
    z, alpha = forward(cfg, params, x)
    p = np.exp(_log_softmax(z))
    delta = (p - Y) / (B * T)  # δ = (softmax(z) − onehot(y)) / (B·T)
    grads = {}
    dU = np.einsum("hbtl,bto,bli->hoi", alpha, delta, X) / H  # ∂U = (1/H) Σ α δ [x=i]
    if cfg.d_model is None:
        grads["U"] = dU
    else:
        grads["W"] = np.einsum("hoi,hdi->hod", dU, params["E"])  # ∂W = ∂U Eᵀ
        grads["E"] = np.einsum("hod,hoi->hdi", params["W"], dU)  # ∂E = Wᵀ ∂U
    UX = np.einsum("hoi,bli->hblo", U, X)
    g = np.einsum("bto,hblo->hbtl", delta, UX) / H  # g = (1/H) δ · U[:, x_l]
    ds = alpha * (g - (alpha * g).sum(axis=-1, keepdims=True))  # ∂s = α (g − Σ α g)
    if cfg.has_S:
        grads["S"] = ds.sum(axis=1)  # ∂S = Σ_b ∂s
    if cfg.has_A:
        grads["A"] = np.einsum("hbtl,bli->hti", ds, X)  # ∂A = Σ_{b,l: x=i} ∂s
    if cfg.bias:
        grads["b"] = delta.sum(axis=(0, 1))  # ∂b = Σ δ
    value = -(Y * _log_softmax(z)).sum() / (B * T)
    if weight_decay:
        for name in grads:
            grads[name] = grads[name] + weight_decay * np.asarray(params[name], np.float64)
        value += 0.5 * weight_decay * sum(float((np.asarray(v, np.float64) ** 2).sum()) for v in params.values())
    ordered = {name: grads[name] for name in cfg.param_shapes()}
    return float(value), ordered


def batch_metrics(cfg: ModelConfig, params: dict, x, y, gold) -> dict:
    """Token accuracy, KTIW accuracy, per-head attention accuracy and gold mass."""
    z, alpha = forward(cfg, params, x)
    y = np.asarray(y)
    gold = np.asarray(gold)
    out = {"loss": loss(cfg, params, x, y), "acc": float((z.argmax(-1) == y).mean())}
    has = gold >= 0
    Ubar = table(cfg, params).mean(axis=0)
    logits = Ubar + (np.asarray(params["b"])[:, None] if cfg.bias else 0.0)  # (Vout, Vin)
    P = np.exp(logits - logits.max(axis=0)) / np.exp(logits - logits.max(axis=0)).sum(axis=0)
    probe = P[y[:, :, None], np.asarray(x)[:, None, :]]  # p(y_t | attend to l alone)
    if has.any():
        out["ktiw_acc"] = float((probe.argmax(-1) == gold)[has].mean())
        out["head_attn_acc"] = np.array([(alpha[h].argmax(-1) == gold)[has].mean() for h in range(cfg.heads)])
        g = np.where(has, gold, 0)
        mass = np.take_along_axis(alpha, np.broadcast_to(g[None, :, :, None], alpha.shape[:3] + (1,)), -1)[..., 0]
        out["head_gold_mass"] = np.array([mass[h][has].mean() for h in range(cfg.heads)])
    else:
        out["ktiw_acc"] = np.nan
        out["head_attn_acc"] = np.full(cfg.heads, np.nan)
        out["head_gold_mass"] = np.full(cfg.heads, np.nan)
    return out


# =============================================================================
# the step loop
# =============================================================================


def train_steps(cfg, params, batches, optimizer, lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
    """Plain-NumPy training loop: one update per (x, y) in ``batches``.

    Returns the list of losses before each update and the final parameters. The
    oracle of ``_kernels.train_runs`` (one run) and the "plain NumPy" line of the benchmarks.
    """
    params = {k: np.array(v, np.float64) for k, v in params.items()}
    m1 = {k: np.zeros_like(v) for k, v in params.items()}
    m2 = {k: np.zeros_like(v) for k, v in params.items()}
    losses = []
    for step, (x, y) in enumerate(batches, start=1):
        value, grads = loss_and_grad(cfg, params, x, y, weight_decay)
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


def random_config(rng: np.random.Generator, **fixed) -> ModelConfig:
    """A random small config (every parameterization is reachable)."""
    kw = dict(
        vocab_in=int(rng.integers(2, 9)),
        vocab_out=int(rng.integers(2, 9)),
        src_len=int(rng.integers(1, 7)),
        tgt_len=int(rng.integers(1, 6)),
        heads=int(rng.integers(1, 4)),
        attention=str(rng.choice(["positional", "content", "both", "uniform"])),
        d_model=None if rng.random() < 0.5 else int(rng.integers(1, 5)),
        bias=bool(rng.random() < 0.8),
    )
    kw.update(fixed)
    return ModelConfig(**kw)


def random_params(cfg: ModelConfig, rng: np.random.Generator, scale: float = 1.0) -> dict:
    return {k: scale * rng.standard_normal(s) for k, s in cfg.param_shapes().items()}


def random_batch(cfg: ModelConfig, rng: np.random.Generator, batch: int):
    x = rng.integers(0, cfg.vocab_in, size=(batch, cfg.src_len))
    y = rng.integers(0, cfg.vocab_out, size=(batch, cfg.tgt_len))
    gold = rng.integers(-1, cfg.src_len, size=(batch, cfg.tgt_len))
    return x, y, gold


def _case_model(rng):
    cfg = random_config(rng)
    params = random_params(cfg, rng)
    x, y, gold = random_batch(cfg, rng, int(rng.integers(1, 6)))
    return cfg, params, x, y, gold


def _check_loss_grad(rng):
    cfg, params, x, y, _ = _case_model(rng)
    grad = np.zeros(cfg.n_params)
    got_loss = K.loss_grad(x, y, flat(cfg, params), layout(cfg), grad)
    want_loss, want = loss_and_grad(cfg, params, x, y)
    return [(got_loss, want_loss)] + [(unflat(cfg, grad)[k], want[k]) for k in want]


def _check_forward(rng):
    cfg, params, x, _, _ = _case_model(rng)
    z = np.zeros((x.shape[0], cfg.tgt_len, cfg.vocab_out))
    alpha = np.zeros((cfg.heads, x.shape[0], cfg.tgt_len, cfg.src_len))
    K.forward(x, flat(cfg, params), layout(cfg), z, alpha)
    z_ref, alpha_ref = forward(cfg, params, x)
    return [(z, z_ref), (alpha, alpha_ref)]


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


def _check_train_runs(rng):
    """R runs of one config, each with its own data, optimizer, lr and weight decay, one
    of them inactive; every active run against the oracle's loop."""
    cfg = random_config(rng)
    R, n_steps, B = int(rng.integers(1, 4)), 4, int(rng.integers(1, 5))
    runs = []
    for _ in range(R):
        optimizer = str(rng.choice(["sgd", "adam"]))
        runs.append(
            dict(
                params=random_params(cfg, rng, scale=0.3),
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
    K.train_runs(
        xs, ys, golds, thetas, m1s, m2s, layout(cfg), hypers, opts, 0, True, flags, active, limits,
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
        ce0, _ = loss_and_grad(cfg, run["params"], run["data"][0][0], run["data"][0][1])
        pairs.append((limits[r : r + 1], np.array([K.DIVERGE_FACTOR * max(ce0, 1.0)])))  # set at step 0, from the CE
        # the metrics row of the first step, against the oracle's metrics
        d0 = run["data"][0]
        met = batch_metrics(cfg, run["params"], d0[0], d0[1], d0[2])
        got = out_met[r, 0]
        pairs += [
            (got[K.MET_ACC], met["acc"]),
            (got[K.MET_KTIW], met["ktiw_acc"]),
            (got[K.MET_HEADS : K.MET_HEADS + H], met["head_attn_acc"]),
            (got[K.MET_HEADS + H : K.MET_HEADS + 2 * H], met["head_gold_mass"]),
        ]
    return pairs


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
    "loss_grad": _check_loss_grad,
    "forward": _check_forward,
    "exp_shifted": _check_exp,
    "gemm_acc": _check_gemm,
    "gemm_acc_nt": _check_gemm_nt,
    "train_runs": _check_train_runs,
    "partial_shuffle": _check_partial_shuffle,
}
