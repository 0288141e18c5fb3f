"""Rung 0's plain-NumPy oracle, written by a different method than its kernels.

The kernels gather rows of a transposed table and use blocked products; the oracle
builds dense one-hot tensors and contracts them with ``einsum``, one line per line of
docs/design.md §1. It is slow and obviously right, and it is what the tests, ``attnsim
gradcheck`` and the benchmarks compare the kernels with.

``REGISTRY`` pairs each public kernel of ``_kernels`` beside this file with a check that
runs it and the oracle on random inputs; a test fails if a public kernel is missing.
"""

from __future__ import annotations

import numpy as np

from ... import _reference as common
from ._config import ModelConfig

# =============================================================================
# the model
# =============================================================================


def table(cfg: ModelConfig, params: dict) -> np.ndarray:
    """U (H, Vout, Vin): the table itself, or W @ E."""
    if cfg.d_model is None:
        return np.asarray(params["U"], np.float64)
    return np.einsum("hod,hdi->hoi", params["W"], params["E"])


def forward(cfg: ModelConfig, params: dict, x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits z (B, T, Vout) and attention alpha (H, B, T, L), docs/design.md §1.1."""
    H, L, T = cfg.heads, cfg.src_len, cfg.tgt_len
    X = common.onehot(x, cfg.vocab_in)  # (B, L, Vin)
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


def loss(cfg: ModelConfig, params: dict, x, y, weight_decay: float = 0.0) -> float:
    z, _ = forward(cfg, params, x)
    Y = common.onehot(y, cfg.vocab_out)
    value = -(Y * common.log_softmax(z)).sum() / (Y.shape[0] * Y.shape[1])
    if weight_decay:
        value += 0.5 * weight_decay * sum(float((np.asarray(p, np.float64) ** 2).sum()) for p in params.values())
    return float(value)


def loss_and_grad(cfg: ModelConfig, params: dict, x, y, weight_decay: float = 0.0):
    """docs/design.md §1.2, one line each."""
    H = cfg.heads
    X = common.onehot(x, cfg.vocab_in)
    Y = common.onehot(y, cfg.vocab_out)
    B, T = Y.shape[0], Y.shape[1]
    U = table(cfg, params)
    z, alpha = forward(cfg, params, x)
    p = np.exp(common.log_softmax(z))
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
    value = -(Y * common.log_softmax(z)).sum() / (B * T)
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
    Ubar = table(cfg, params).mean(axis=0)
    logits = Ubar + (np.asarray(params["b"])[:, None] if cfg.bias else 0.0)  # (Vout, Vin)
    P = np.exp(logits - logits.max(axis=0)) / np.exp(logits - logits.max(axis=0)).sum(axis=0)
    probe = P[y[:, :, None], np.asarray(x)[:, None, :]]  # p(y_t | attend to l alone)
    out.update(common.gold_metrics(probe, alpha, gold, cfg.heads))
    return out


# =============================================================================
# registry: kernel ↔ oracle ↔ input maker
# =============================================================================


# what `attnsim gradcheck` cycles through: every attention mode, with a table or factored
# options of a small config that reaches every path of the kernels (the plain-Python test)
RICH = {"heads": 2, "attention": "both"}

KINDS = [
    {"attention": a, "d_model": d} for a in ("positional", "content", "both", "uniform") for d in (None, "factored")
]


# the space random configs are drawn from (the tests draw from the same with hypothesis)
SPACE = {
    "vocab_in": ("int", 2, 8),
    "vocab_out": ("int", 2, 8),
    "src_len": ("int", 1, 6),
    "tgt_len": ("int", 1, 5),
    "heads": ("int", 1, 3),
    "attention": ("choice", ("positional", "content", "both", "uniform")),
    "d_model": ("choice", (None, None, None, None, 1, 2, 3, 4)),
    "bias": ("choice", (True, True, True, True, False)),
}


def random_config(rng: np.random.Generator, **fixed) -> ModelConfig:
    """A random small config (every parameterization is reachable); ``d_model="factored"``
    asks for a factored table of a random inner size."""
    kw = {**common.draw_space(SPACE, rng), **fixed}
    if kw["d_model"] == "factored":
        kw["d_model"] = int(rng.integers(1, 4))
    return ModelConfig(**kw)


def random_params(cfg: ModelConfig, rng: np.random.Generator, scale: float = 1.0) -> dict:
    return {k: scale * rng.standard_normal(s) for k, s in cfg.param_shapes().items()}


# name of the public kernel -> function(rng) returning [(kernel result, oracle result), ...]
REGISTRY = {
    "loss_grad": lambda rng: common.check_loss_grad("free", rng, scale=1.0),
    "forward": lambda rng: common.check_forward("free", rng, scale=1.0),
    "train_runs": lambda rng: common.check_train_runs("free", rng),
}
