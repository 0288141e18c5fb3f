"""Rung 1's plain-NumPy oracle, written by a different method than its kernels.

The kernels build effective tables and run the table model's pass; the oracle computes the
head the direct way of docs/design.md §7.1 — per example the source states, keys, the
query of every target step, scores, attention, values and contexts — and writes the
backward pass through that graph by hand, one line per node. It is slow and obviously
right, and it is what the tests, ``attnsim gradcheck`` and the benchmarks compare the
kernels with.
"""

from __future__ import annotations

import numpy as np

from ... import _reference as common
from ._config import ATTENTION_MODES, VALUE_MODES, DotConfig

# =============================================================================
# the model
# =============================================================================


def _shift_sum(a):
    """``a[:, l−1] + a[:, l+1]`` (missing neighbours 0) along axis 1; its own adjoint."""
    out = np.zeros_like(a)
    out[:, 1:] += a[:, :-1]
    out[:, :-1] += a[:, 1:]
    return out


def _head(cfg: DotConfig, params: dict, x, h: int) -> dict:
    """Every intermediate of head ``h`` on the batch ``x`` (float64)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    e = p["E"][h][x]  # (B, L, d): e[b, l] = E[x[b, l]]
    nb = 0.5 * cfg.context * _shift_sum(e)  # ρ/2 (e[l−1] + e[l+1])
    P = p["P"][h][None] if cfg.has_P else 0.0  # (1, L, d)
    out = {"e": e}
    key_in = {"positional": np.broadcast_to(P, e.shape) if cfg.has_P else None, "content": e + nb, "both": e + P + nb}
    out["val_in"] = e + P + nb if cfg.position_values else e  # what the values see
    out["v"] = out["val_in"] @ p["WV"][h]  # (B, L, d)
    B, L = x.shape
    if cfg.has_query:
        out["key_in"] = key_in[cfg.attention]
        out["q"] = p["R"][h] @ p["WQ"][h]  # (T, k)
        out["keys"] = out["key_in"] @ p["WK"][h]  # (B, L, k)
        s = np.einsum("tk,blk->btl", out["q"], out["keys"]) / np.sqrt(cfg.k)
        s = s - s.max(axis=-1, keepdims=True)
        out["alpha"] = np.exp(s) / np.exp(s).sum(axis=-1, keepdims=True)
    else:
        out["alpha"] = np.full((B, cfg.tgt_len, L), 1.0 / L)
    out["ctx"] = np.einsum("btl,bld->btd", out["alpha"], out["v"])  # (B, T, d)
    out["o"] = out["ctx"] @ p["WO"][h].T  # (B, T, Vout)
    return out


def forward(cfg: DotConfig, params: dict, x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits z (B, T, Vout) and attention alpha (H, B, T, L), docs/design.md §7.1."""
    x = np.asarray(x)
    heads = [_head(cfg, params, x, h) for h in range(cfg.heads)]
    z = sum(hd["o"] for hd in heads) / cfg.heads
    if cfg.bias:
        z = z + np.asarray(params["b"], np.float64)
    return z, np.stack([hd["alpha"] for hd in heads])


def loss(cfg: DotConfig, params: dict, x, y, weight_decay: float = 0.0) -> float:
    z, _ = forward(cfg, params, x)
    Y = common.onehot(y, cfg.vocab_out)
    value = -(Y * common.log_softmax(z)).sum() / (Y.shape[0] * Y.shape[1])
    if weight_decay:
        value += 0.5 * weight_decay * sum(float((np.asarray(v, np.float64) ** 2).sum()) for v in params.values())
    return float(value)


def loss_and_grad(cfg: DotConfig, params: dict, x, y, weight_decay: float = 0.0):
    """The backward pass through the direct graph, node by node."""
    x = np.asarray(x)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    H = cfg.heads
    z, _ = forward(cfg, params, x)
    Y = common.onehot(y, cfg.vocab_out)
    B, T = Y.shape[0], Y.shape[1]
    delta = (np.exp(common.log_softmax(z)) - Y) / (B * T)  # δ = (softmax(z) − onehot(y)) / (B·T)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    X = common.onehot(x, cfg.vocab_in)  # (B, L, Vin)
    rho2 = 0.5 * cfg.context
    for h in range(H):
        hd = _head(cfg, params, x, h)
        d_o = delta / H  # ∂o_h = δ / H
        grads["WO"][h] = np.einsum("bto,btd->od", d_o, hd["ctx"])  # ∂WO = Σ ∂oᵀ ctx
        d_ctx = d_o @ p["WO"][h]  # ∂ctx = ∂o WO
        d_v = np.einsum("btl,btd->bld", hd["alpha"], d_ctx)  # ∂v = αᵀ ∂ctx
        grads["WV"][h] = np.einsum("bld,blf->df", hd["val_in"], d_v)  # ∂WV = val_inᵀ ∂v
        d_val_in = d_v @ p["WV"][h].T
        d_e = d_val_in.copy()  # the value sees e …
        if cfg.position_values:  # … and P and the neighbours
            d_e += rho2 * _shift_sum(d_val_in)
            grads["P"][h] += d_val_in.sum(axis=0)
        if cfg.has_query:
            d_alpha = np.einsum("btd,bld->btl", d_ctx, hd["v"])  # ∂α = ∂ctx · v
            a = hd["alpha"]
            d_s = a * (d_alpha - (a * d_alpha).sum(axis=-1, keepdims=True))  # ∂s = α (∂α − Σ α ∂α)
            c = 1.0 / np.sqrt(cfg.k)
            d_q = c * np.einsum("btl,blk->tk", d_s, hd["keys"])  # ∂q = c Σ ∂s keys
            d_keys = c * np.einsum("btl,tk->blk", d_s, hd["q"])  # ∂keys = c ∂sᵀ q
            grads["WQ"][h] = p["R"][h].T @ d_q  # ∂WQ = Rᵀ ∂q
            grads["R"][h] = d_q @ p["WQ"][h].T  # ∂R = ∂q WQᵀ
            grads["WK"][h] = np.einsum("bld,blk->dk", hd["key_in"], d_keys)  # ∂WK = key_inᵀ ∂keys
            d_key_in = d_keys @ p["WK"][h].T
            if cfg.has_S:  # the key sees P
                grads["P"][h] += d_key_in.sum(axis=0)
            if cfg.has_A:  # … and e and the neighbours
                d_e += d_key_in + rho2 * _shift_sum(d_key_in)
        grads["E"][h] = np.einsum("bli,bld->id", X, d_e)  # ∂E[i] = Σ_{b,l: x=i} ∂e
    if cfg.bias:
        grads["b"] = delta.sum(axis=(0, 1))  # ∂b = Σ δ
    value = -(Y * common.log_softmax(z)).sum() / (B * T)
    if weight_decay:
        for name in grads:
            grads[name] = grads[name] + weight_decay * p[name]
        value += 0.5 * weight_decay * sum(float((v**2).sum()) for v in p.values())
    return float(value), {name: grads[name] for name in cfg.param_shapes()}


def batch_metrics(cfg: DotConfig, params: dict, x, y, gold) -> dict:
    """Token accuracy, KTIW accuracy, per-head attention accuracy and gold mass."""
    y, gold, x = np.asarray(y), np.asarray(gold), np.asarray(x)
    z, alpha = forward(cfg, params, x)
    out = {"loss": loss(cfg, params, x, y), "acc": float((z.argmax(-1) == y).mean())}
    # every head attends to position l alone: its context is the value v[b, l]
    cols = sum(_head(cfg, params, x, h)["v"] @ np.asarray(params["WO"][h], np.float64).T for h in range(cfg.heads))
    cols = cols / cfg.heads  # (B, L, Vout)
    if cfg.bias:
        cols = cols + np.asarray(params["b"], np.float64)
    P = np.exp(cols - cols.max(axis=-1, keepdims=True))
    P /= P.sum(axis=-1, keepdims=True)
    probe = np.take_along_axis(P[:, None, :, :], y[:, :, None, None], axis=-1)[..., 0]  # (B, T, L)
    out.update(common.gold_metrics(probe, alpha, gold, cfg.heads))
    return out


# =============================================================================
# registry: kernel ↔ oracle ↔ input maker
# =============================================================================

# what `attnsim gradcheck` cycles through: every attention mode × value mode × context
# where the context changes something (keys that see words, or values that see the
# state), the attention modes first, so that a few trials reach all of them
# options of a small config that reaches every path of the kernels (the plain-Python test)
RICH = {"heads": 2, "attention": "both"}

KINDS = [
    {"attention": a, "values": v, "context": rho}
    for rho in (0.0, 0.5, 1.0)
    for v in VALUE_MODES
    for a in ATTENTION_MODES
    if rho == 0.0 or a in ("both", "content") or v == "word+position"
]

# the space random configs are drawn from (the tests draw from the same with hypothesis)
SPACE = {
    "vocab_in": ("int", 2, 8),
    "vocab_out": ("int", 2, 8),
    "src_len": ("int", 1, 6),
    "tgt_len": ("int", 1, 5),
    "heads": ("int", 1, 2),
    "dim": ("int", 1, 4),
    "key_dim": ("choice", (None, 1, 2, 3)),
    "attention": ("choice", ATTENTION_MODES),
    "values": ("choice", VALUE_MODES),
    "context": ("choice", (0.0, 0.5, 1.0)),
    "bias": ("choice", (True, True, True, False)),
}


def admissible(kw: dict, fixed=()) -> dict:
    """``kw`` with the drawn options that would change nothing reset (a context that reaches
    neither keys nor values, a key width with uniform attention): DotConfig refuses them.
    Options in ``fixed`` are left as asked."""
    kw = dict(kw)
    if "context" not in fixed and not (kw["attention"] in ("both", "content") or kw["values"] == "word+position"):
        kw["context"] = 0.0
    if "key_dim" not in fixed and kw["attention"] == "uniform":
        kw["key_dim"] = None
    return kw


def random_config(rng: np.random.Generator, **fixed) -> DotConfig:
    """A random small config (every option reachable)."""
    return DotConfig(**admissible({**common.draw_space(SPACE, rng), **fixed}, fixed))


def random_params(cfg: DotConfig, rng: np.random.Generator, scale: float = 1.0) -> dict:
    return {k: scale * rng.standard_normal(s) for k, s in cfg.param_shapes().items()}


# name of the public kernel -> function(rng) returning [(kernel result, oracle result), ...]
REGISTRY = {
    "loss_grad": lambda rng: common.check_loss_grad("dot", rng),
    "forward": lambda rng: common.check_forward("dot", rng),
    "train_runs": lambda rng: common.check_train_runs("dot", rng),
}
