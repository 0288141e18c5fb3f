"""Rung 3's plain-NumPy oracle, written by a different method than its kernels.

The kernels run the batch through each time step with matrix products, the backward
direction as a second recurrence over the reversed words, and the attention network over
all positions at once. The oracle takes one sequence at a time: the LSTM one step at a time
with vectors (the textbook cell of rung 2's oracle), the backward direction by walking the
positions from the last, the attention network and β one position at a time, and the
backward pass written node by node, accumulating every gradient as it goes.
"""

from __future__ import annotations

import numpy as np

from ... import _reference as common
from ..rnn._reference import _cell, _cell_back
from ._config import ClassifierConfig

_PARTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _p64(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def _part(p, sfx):
    return {k: p[f"encoder.{k}{sfx}"] for k in _PARTS}


def _softplus(s):
    return max(s, 0.0) + np.log1p(np.exp(-abs(s)))


def _one(cfg, p, words):
    """Every intermediate of one sequence (float64)."""
    L, d = len(words), cfg.hidden
    emb = p["embedding.weight"]
    fwd, bwd = _part(p, ""), _part(p, "_reverse")
    hf, hb = np.zeros((L, d)), np.zeros((L, d))
    steps_f, steps_b = [None] * L, [None] * L
    h, c = np.zeros(d), np.zeros(d)
    for l in range(L):  # noqa: E741
        h, c, steps_f[l] = _cell(cfg, fwd, emb[words[l]], h, c)
        hf[l] = h
    h, c = np.zeros(d), np.zeros(d)
    for l in range(L - 1, -1, -1):  # noqa: E741
        h, c, steps_b[l] = _cell(cfg, bwd, emb[words[l]], h, c)
        hb[l] = h
    H = np.concatenate([hf, hb], axis=1)  # (L, 2d)
    beta = np.array([p["hidden2beta.weight"][0] @ H[l] + p["hidden2beta.bias"][0] for l in range(L)])  # noqa: E741
    if cfg.attention == "mlp":
        W1, b1 = p["hidden2attn_intermediate.weight"], p["hidden2attn_intermediate.bias"]
        w2, b2 = p["attn_intermediate2logit.weight"][0], p["attn_intermediate2logit.bias"][0]
        mid = [np.maximum(W1 @ H[l] + b1, 0.0) for l in range(L)]  # noqa: E741
        logit = np.array([w2 @ v + b2 for v in mid])
        e = np.exp(logit - logit.max())
        alpha = e / e.sum()
    else:
        mid, alpha = None, np.full(L, 1.0 / L)
    return dict(steps_f=steps_f, steps_b=steps_b, H=H, beta=beta, mid=mid, alpha=alpha, s=float(alpha @ beta))


def forward(cfg: ClassifierConfig, params: dict, x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits (B, 1, 2) = (0, s) and attention (1, B, 1, L)."""
    p = _p64(params)
    runs = [_one(cfg, p, words) for words in np.asarray(x)]
    z = np.array([[[0.0, r["s"]]] for r in runs])
    alpha = np.array([r["alpha"] for r in runs])[None, :, None, :]
    return z, alpha


def _decay(params, weight_decay):
    return 0.5 * weight_decay * sum(float((np.asarray(v, np.float64) ** 2).sum()) for v in params.values())


def loss(cfg: ClassifierConfig, params: dict, x, y, weight_decay: float = 0.0) -> float:
    """Mean logistic loss: softplus(s) − y s."""
    z, _ = forward(cfg, params, x)
    labels = np.asarray(y)[:, 0]
    value = np.mean([_softplus(s) - lab * s for s, lab in zip(z[:, 0, 1], labels, strict=True)])
    return float(value + (_decay(params, weight_decay) if weight_decay else 0.0))


def loss_and_grad(cfg: ClassifierConfig, params: dict, x, y, weight_decay: float = 0.0):
    """Backward one sequence at a time, node by node, each direction back through its own
    time order."""
    p = _p64(params)
    x, labels = np.asarray(x), np.asarray(y)[:, 0]
    B, d = x.shape[0], cfg.hidden
    G = {k: np.zeros_like(v) for k, v in p.items()}
    Gf = {k: G[f"encoder.{k}"] for k in _PARTS}
    Gb = {k: G[f"encoder.{k}_reverse"] for k in _PARTS}
    fwd, bwd = _part(p, ""), _part(p, "_reverse")
    total = 0.0
    for b in range(B):
        r = _one(cfg, p, x[b])
        s, lab = r["s"], labels[b]
        total += _softplus(s) - lab * s
        ds = (1.0 / (1.0 + np.exp(-s)) - lab) / B
        L = len(x[b])
        dH = np.zeros((L, 2 * d))
        for l in range(L):  # noqa: E741
            dbeta = ds * r["alpha"][l]
            G["hidden2beta.weight"][0] += dbeta * r["H"][l]
            G["hidden2beta.bias"][0] += dbeta
            dH[l] += dbeta * p["hidden2beta.weight"][0]
            if cfg.attention == "mlp":
                dlogit = ds * r["alpha"][l] * (r["beta"][l] - s)  # softmax's Jacobian applied to ∂α = ds β
                G["attn_intermediate2logit.weight"][0] += dlogit * r["mid"][l]
                G["attn_intermediate2logit.bias"][0] += dlogit
                dpre = dlogit * p["attn_intermediate2logit.weight"][0] * (r["mid"][l] > 0)
                G["hidden2attn_intermediate.weight"] += np.outer(dpre, r["H"][l])
                G["hidden2attn_intermediate.bias"] += dpre
                dH[l] += p["hidden2attn_intermediate.weight"].T @ dpre
        dh, dc = np.zeros(d), np.zeros(d)
        for l in range(L - 1, -1, -1):  # noqa: E741  the forward direction, last word first
            dx, dh, dc = _cell_back(cfg, fwd, Gf, r["steps_f"][l], dh + dH[l, :d], dc)
            G["embedding.weight"][x[b, l]] += dx
        dh, dc = np.zeros(d), np.zeros(d)
        for l in range(L):  # noqa: E741  the backward direction read the last word first
            dx, dh, dc = _cell_back(cfg, bwd, Gb, r["steps_b"][l], dh + dH[l, d:], dc)
            G["embedding.weight"][x[b, l]] += dx
    value = total / B
    if weight_decay:
        for name in G:
            G[name] = G[name] + weight_decay * p[name]
        value += _decay(p, weight_decay)
    return float(value), {name: G[name] for name in cfg.param_shapes()}


KINK_MARGIN = 0.05


def near_kink(cfg: ClassifierConfig, params: dict, x) -> bool:
    """Whether a pre-activation of the attention network's ReLU is within `KINK_MARGIN` of
    0 on ``x``, where the loss may have no derivative. Central differences with step h move
    a pre-activation by at most 2h times its derivative (states are within ±1, weights
    drawn within ±3: below 1e-2 at h = 1e-4), so outside the margin they see one side."""
    if cfg.attention != "mlp":
        return False
    p = _p64(params)
    for words in np.asarray(x):
        H = _one(cfg, p, words)["H"]
        pre = H @ p["hidden2attn_intermediate.weight"].T + p["hidden2attn_intermediate.bias"]
        if np.any(np.abs(pre) < KINK_MARGIN):
            return True
    return False


def ktiw_probe(cfg: ClassifierConfig, params: dict, x, y) -> np.ndarray:
    """(B, 1, L): the log-odds of the label when position l alone is attended,
    ``±β[l]`` (+ for label 1)."""
    p = _p64(params)
    sign = np.where(np.asarray(y)[:, 0] == 1, 1.0, -1.0)
    return np.array([_one(cfg, p, words)["beta"] for words in np.asarray(x)])[:, None, :] * sign[:, None, None]


def value_columns(cfg: ClassifierConfig, params: dict, x) -> np.ndarray:
    """(1, B, L, 2): what position l adds to the logits when attended, ``(0, β[l])``; the
    logits are ``Σ_l α[l] (0, β[l]) = (0, s)``, linear in α as rung 0's are."""
    p = _p64(params)
    beta = np.array([_one(cfg, p, words)["beta"] for words in np.asarray(x)])  # (B, L)
    return np.stack([np.zeros_like(beta), beta], axis=-1)[None]


def batch_metrics(cfg: ClassifierConfig, params: dict, x, y, gold) -> dict:
    """Accuracy of the label; KTIW accuracy, attention accuracy and gold mass over the
    sequences with a gold position (argmax over the L positions)."""
    y, gold, x = np.asarray(y), np.asarray(gold), np.asarray(x)
    z, alpha = forward(cfg, params, x)
    out = {"loss": loss(cfg, params, x, y), "acc": float((z.argmax(-1) == y).mean())}
    out.update(common.gold_metrics(ktiw_probe(cfg, params, x, y), alpha, gold, 1))
    return out


# =============================================================================
# registry: kernel ↔ oracle ↔ input maker
# =============================================================================

KINDS = [{"attention": a} for a in ("mlp", "uniform")]

SPACE = {
    "vocab_in": ("int", 2, 7),
    "vocab_out": ("choice", (2,)),
    "src_len": ("int", 1, 5),
    "tgt_len": ("choice", (1,)),
    "embed": ("int", 1, 3),
    "hidden": ("int", 1, 3),
    "intermediate": ("int", 1, 3),
    "attention": ("choice", ("mlp", "mlp", "uniform")),
}

# options of a small config that reaches every path of the kernels (the plain-Python test)
RICH = {"embed": 2, "hidden": 3, "intermediate": 2, "dtype": "float64"}


def small_task():
    """A task of this model's shapes for the engine's tests (one label of two classes)."""
    from ...tasks import keyword

    return keyword(6, 4)


def admissible(kw: dict, fixed=()) -> dict:
    """``kw`` made valid: the classifier has one head (the engine's tests ask for two)."""
    return {k: v for k, v in kw.items() if k != "heads"}


def random_config(rng: np.random.Generator, **fixed) -> ClassifierConfig:
    """A random small config (every option reachable), float64."""
    return ClassifierConfig(**admissible({**common.draw_space(SPACE, rng), "dtype": "float64", **fixed}))


def random_params(cfg: ClassifierConfig, rng: np.random.Generator, scale: float = 1.0) -> dict:
    return {k: scale * rng.standard_normal(s) for k, s in cfg.param_shapes().items()}


REGISTRY = {
    "loss_grad": lambda rng: common.check_loss_grad("clf", rng),
    "forward": lambda rng: common.check_forward("clf", rng),
    "train_runs": lambda rng: common.check_train_runs("clf", rng),
}
