"""Rung 2's plain-NumPy oracle, written by a different method than its kernels.

The kernels run the whole batch through each time step with matrix products (the input
half of every gate for all steps at once, the recurrent half step by step) and gather the
weight gradients in one product per matrix after the backward sweep. The oracle takes one
sequence at a time, one time step at a time, with vectors: each cell is the textbook
equations (PyTorch's, docs/design.md §7.7), and the backward pass through time is written
by hand node by node, accumulating every weight's gradient as it goes. Slow and obviously
right: what the tests, ``attnsim gradcheck`` and the torch cross-check compare with.
"""

from __future__ import annotations

import numpy as np

from ... import _reference as common
from ._config import RNNConfig


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# =============================================================================
# the cells, one sequence and one step at a time
# =============================================================================


def _cell(cfg, W, x, h, c):
    """One step of the cell: returns (h', c', what the backward step needs)."""
    d = cfg.hidden
    gi = W["weight_ih"] @ x + W["bias_ih"]
    gh = W["weight_hh"] @ h + W["bias_hh"]
    if cfg.cell == "lstm":
        pre = gi + gh
        i, f, g, o = (
            _sigmoid(pre[:d]), _sigmoid(pre[d : 2 * d]), np.tanh(pre[2 * d : 3 * d]), _sigmoid(pre[3 * d :])
        )  # fmt: skip
        c2 = f * c + i * g
        h2 = o * np.tanh(c2)
        return h2, c2, dict(x=x, h=h, c=c, i=i, f=f, g=g, o=o, c2=c2)
    r = _sigmoid(gi[:d] + gh[:d])
    z = _sigmoid(gi[d : 2 * d] + gh[d : 2 * d])
    ghn = gh[2 * d :]
    n = np.tanh(gi[2 * d :] + r * ghn)
    h2 = (1.0 - z) * n + z * h
    return h2, c, dict(x=x, h=h, r=r, z=z, n=n, ghn=ghn)


def _cell_back(cfg, W, G, s, dh2, dc2):
    """Backward through one step: adds into the weight gradients ``G``; returns (dx, dh, dc)."""
    if cfg.cell == "lstm":
        tc = np.tanh(s["c2"])
        dc = dc2 + dh2 * s["o"] * (1.0 - tc * tc)
        d_o = dh2 * tc
        di, dg, df = dc * s["g"], dc * s["i"], dc * s["c"]
        dpre = np.concatenate([
            di * s["i"] * (1 - s["i"]), df * s["f"] * (1 - s["f"]), dg * (1 - s["g"] ** 2), d_o * s["o"] * (1 - s["o"])
        ])  # fmt: skip
        dgi = dgh = dpre
        dc_prev = dc * s["f"]
        dh_direct = 0.0
    else:
        dn = dh2 * (1.0 - s["z"])
        dz = dh2 * (s["h"] - s["n"])
        dh_direct = dh2 * s["z"]
        dpre_n = dn * (1.0 - s["n"] ** 2)
        dr = dpre_n * s["ghn"]
        dpre_r = dr * s["r"] * (1.0 - s["r"])
        dpre_z = dz * s["z"] * (1.0 - s["z"])
        dgi = np.concatenate([dpre_r, dpre_z, dpre_n])
        dgh = np.concatenate([dpre_r, dpre_z, dpre_n * s["r"]])
        dc_prev = dc2
    G["weight_ih"] += np.outer(dgi, s["x"])
    G["bias_ih"] += dgi
    G["weight_hh"] += np.outer(dgh, s["h"])
    G["bias_hh"] += dgh
    return W["weight_ih"].T @ dgi, dh_direct + W["weight_hh"].T @ dgh, dc_prev


# =============================================================================
# the model
# =============================================================================


def _p64(params):
    return {k: np.asarray(v, np.float64) for k, v in params.items()}


def _emb(cfg, p, side):
    return p["embedding.weight"] if cfg.shared_embedding else p[f"{side}_embedding.weight"]


def _part(p, name):
    return {k: p[f"{name}.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def sequences(cfg: RNNConfig, x, y):
    """(source with EOS, decoder input SOS + y, targets y + EOS) as int arrays."""
    x, y = np.asarray(x), np.asarray(y)
    B = x.shape[0]
    src = np.concatenate([x, np.full((B, 1), cfg.vocab_in)], axis=1)
    dec_in = np.concatenate([np.full((B, 1), cfg.vocab_out + 1), y], axis=1)
    tgt = np.concatenate([y, np.full((B, 1), cfg.vocab_out)], axis=1)
    return src, dec_in, tgt


def _one(cfg, p, src, dec_in):
    """Every intermediate of one sequence (float64)."""
    d, H = cfg.hidden, cfg.heads
    enc, dec = _part(p, "encoder"), _part(p, "decoder")
    h, c = np.zeros(d), np.zeros(d)
    enc_steps, Henc = [], []
    for tok in src:
        h, c, s = _cell(cfg, enc, _emb(cfg, p, "enc")[tok], h, c)
        enc_steps.append(s)
        Henc.append(h)
    dec_steps, Hdec = [], []
    for tok in dec_in:
        h, c, s = _cell(cfg, dec, _emb(cfg, p, "dec")[tok], h, c)
        dec_steps.append(s)
        Hdec.append(h)
    Henc, Hdec = np.array(Henc), np.array(Hdec)  # (L+1, d), (T+1, d)
    out = dict(enc=enc_steps, dec=dec_steps, Henc=Henc, Hdec=Hdec, q=[], alpha=[], raw=[])
    ctx = np.zeros_like(Hdec)
    for hd in range(H):
        if cfg.attention == "dot":
            q = Hdec @ p["attn_lin.weight"][hd].T + p["attn_lin.bias"][hd]
            s = q @ Henc.T
            s = s - s.max(axis=1, keepdims=True)
            a = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
        else:
            q = None
            a = np.full((Hdec.shape[0], Henc.shape[0]), 1.0 / Henc.shape[0])
        raw = a @ Henc
        ctx += (raw @ p["project_enc.weight"][hd].T + p["project_enc.bias"][hd]) / H
        out["q"].append(q)
        out["alpha"].append(a)
        out["raw"].append(raw)
    out["cat"] = np.concatenate([Hdec, ctx], axis=1)
    out["hid"] = np.tanh(out["cat"] @ p["after_decoder_hidden.weight"].T + p["after_decoder_hidden.bias"])
    out["z"] = out["hid"] @ p["hidden2vocab.weight"].T + p["hidden2vocab.bias"]
    return out


def forward(cfg: RNNConfig, params: dict, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Logits z (B, T+1, Vout+2) and attention alpha (H, B, T+1, L+1), teacher-forced."""
    p = _p64(params)
    src, dec_in, _ = sequences(cfg, x, y)
    runs = [_one(cfg, p, src[b], dec_in[b]) for b in range(src.shape[0])]
    z = np.stack([r["z"] for r in runs])
    alpha = np.stack([np.stack(r["alpha"]) for r in runs], axis=1)
    return z, alpha


def loss(cfg: RNNConfig, params: dict, x, y, weight_decay: float = 0.0) -> float:
    z, _ = forward(cfg, params, x, y)
    _, _, tgt = sequences(cfg, x, y)
    Y = common.onehot(tgt, cfg.n_out)
    value = -(Y * common.log_softmax(z)).sum() / (tgt.shape[0] * tgt.shape[1])
    if weight_decay:
        value += 0.5 * weight_decay * sum(float((np.asarray(v, np.float64) ** 2).sum()) for v in params.values())
    return float(value)


def loss_and_grad(cfg: RNNConfig, params: dict, x, y, weight_decay: float = 0.0):
    """Backward through time, one sequence at a time, node by node."""
    p = _p64(params)
    src, dec_in, tgt = sequences(cfg, x, y)
    B, T1 = tgt.shape
    N = B * T1
    H = cfg.heads
    G = {k: np.zeros_like(v) for k, v in p.items()}
    Genc = {k: G[f"encoder.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    Gdec = {k: G[f"decoder.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    enc, dec = _part(p, "encoder"), _part(p, "decoder")
    gemb_enc = G["embedding.weight"] if cfg.shared_embedding else G["enc_embedding.weight"]
    gemb_dec = G["embedding.weight"] if cfg.shared_embedding else G["dec_embedding.weight"]
    total = 0.0
    for b in range(B):
        r = _one(cfg, p, src[b], dec_in[b])
        lsm = common.log_softmax(r["z"])
        total -= lsm[np.arange(T1), tgt[b]].sum()
        dz = np.exp(lsm)
        dz[np.arange(T1), tgt[b]] -= 1.0
        dz /= N
        G["hidden2vocab.weight"] += dz.T @ r["hid"]
        G["hidden2vocab.bias"] += dz.sum(axis=0)
        da = (dz @ p["hidden2vocab.weight"]) * (1.0 - r["hid"] ** 2)
        G["after_decoder_hidden.weight"] += da.T @ r["cat"]
        G["after_decoder_hidden.bias"] += da.sum(axis=0)
        dcat = da @ p["after_decoder_hidden.weight"]
        d = cfg.hidden
        dHdec = dcat[:, :d].copy()
        dctx = dcat[:, d:] / H
        dHenc = np.zeros_like(r["Henc"])
        for hd in range(H):
            G["project_enc.weight"][hd] += dctx.T @ r["raw"][hd]
            G["project_enc.bias"][hd] += dctx.sum(axis=0)
            draw = dctx @ p["project_enc.weight"][hd]
            a = r["alpha"][hd]
            dHenc += a.T @ draw
            if cfg.attention == "dot":
                dalpha = draw @ r["Henc"].T
                ds = a * (dalpha - (a * dalpha).sum(axis=1, keepdims=True))
                dq = ds @ r["Henc"]
                dHenc += ds.T @ r["q"][hd]
                G["attn_lin.weight"][hd] += dq.T @ r["Hdec"]
                G["attn_lin.bias"][hd] += dq.sum(axis=0)
                dHdec += dq @ p["attn_lin.weight"][hd]
        # decoder, backwards in time; its first state came from the encoder's last
        dh, dc = np.zeros(d), np.zeros(d)
        for t in range(T1 - 1, -1, -1):
            dx, dh, dc = _cell_back(cfg, dec, Gdec, r["dec"][t], dh + dHdec[t], dc)
            gemb_dec[dec_in[b, t]] += dx
        for l in range(src.shape[1] - 1, -1, -1):  # noqa: E741
            dx, dh, dc = _cell_back(cfg, enc, Genc, r["enc"][l], dh + dHenc[l], dc)
            gemb_enc[src[b, l]] += dx
    value = total / N
    if weight_decay:
        for name in G:
            G[name] = G[name] + weight_decay * p[name]
        value += 0.5 * weight_decay * sum(float((v**2).sum()) for v in p.values())
    return float(value), {name: G[name] for name in cfg.param_shapes()}


def ktiw_probe(cfg: RNNConfig, params: dict, x, y) -> np.ndarray:
    """β (B, T+1, L+1): the log-odds of the target of step t when the context is that of
    position l alone, ``ctx = mean_h project_enc_h(h_enc[l])``, at decoder state h_dec[t]."""
    p = _p64(params)
    src, dec_in, tgt = sequences(cfg, x, y)
    out = []
    for b in range(src.shape[0]):
        r = _one(cfg, p, src[b], dec_in[b])
        ctx = sum(r["Henc"] @ p["project_enc.weight"][hd].T + p["project_enc.bias"][hd] for hd in range(cfg.heads))
        ctx = ctx / cfg.heads  # (L+1, d)
        T1, L1 = r["Hdec"].shape[0], ctx.shape[0]
        beta = np.empty((T1, L1))
        for t in range(T1):
            cat = np.concatenate([np.broadcast_to(r["Hdec"][t], ctx.shape), ctx], axis=1)
            z = np.tanh(cat @ p["after_decoder_hidden.weight"].T + p["after_decoder_hidden.bias"])
            z = z @ p["hidden2vocab.weight"].T + p["hidden2vocab.bias"]  # (L+1, Vout+2)
            o = tgt[b, t]
            rest = np.delete(z, o, axis=1)
            m = rest.max(axis=1)
            beta[t] = z[:, o] - m - np.log(np.exp(rest - m[:, None]).sum(axis=1))
        out.append(beta)
    return np.stack(out)


def batch_metrics(cfg: RNNConfig, params: dict, x, y, gold) -> dict:
    """Token accuracy over the T+1 predictions (EOS included, as the authors measure it);
    KTIW accuracy, per-head attention accuracy and gold mass over the T target words
    that have a gold position (argmax over all L+1 source states)."""
    y, gold, x = np.asarray(y), np.asarray(gold), np.asarray(x)
    z, alpha = forward(cfg, params, x, y)
    _, _, tgt = sequences(cfg, x, y)
    out = {"loss": loss(cfg, params, x, y), "acc": float((z.argmax(-1) == tgt).mean())}
    T = cfg.tgt_len  # the T target words (not the EOS step), over all L+1 states
    beta = ktiw_probe(cfg, params, x, y)[:, :T]
    out.update(common.gold_metrics(beta, alpha[:, :, :T], gold, cfg.heads))
    return out


# =============================================================================
# registry: kernel ↔ oracle ↔ input maker
# =============================================================================

KINDS = [
    {"cell": cell, "attention": a, "shared_embedding": shared}
    for a in ("dot", "uniform")
    for cell in ("lstm", "gru")
    for shared in (True, False)
]

SPACE = {
    "vocab_in": ("int", 2, 6),
    "vocab_out": ("int", 2, 6),
    "src_len": ("int", 1, 5),
    "tgt_len": ("int", 1, 4),
    "heads": ("int", 1, 2),
    "hidden": ("int", 1, 4),
    "cell": ("choice", ("lstm", "gru")),
    "attention": ("choice", ("dot", "dot", "uniform")),
    "shared_embedding": ("choice", (True, False)),
}

# options of a small config that reaches every path of the kernels (the plain-Python test)
RICH = {"heads": 2, "hidden": 3, "dtype": "float64"}


def admissible(kw: dict, fixed=()) -> dict:
    """``kw`` made valid: a shared embedding gets one vocabulary."""
    kw = dict(kw)
    if kw.get("shared_embedding") and kw["vocab_in"] != kw["vocab_out"]:
        if "vocab_out" in fixed and "vocab_in" not in fixed:
            kw["vocab_in"] = kw["vocab_out"]
        else:
            kw["vocab_out"] = kw["vocab_in"]
    return kw


def random_config(rng: np.random.Generator, **fixed) -> RNNConfig:
    """A random small config (every option reachable), float64."""
    return RNNConfig(**admissible({**common.draw_space(SPACE, rng), "dtype": "float64", **fixed}, fixed))


def random_params(cfg: RNNConfig, rng: np.random.Generator, scale: float = 1.0) -> dict:
    return {k: scale * rng.standard_normal(s) for k, s in cfg.param_shapes().items()}


REGISTRY = {
    "loss_grad": lambda rng: common.check_loss_grad("rnn", rng),
    "forward": lambda rng: common.check_forward("rnn", rng),
    "train_runs": lambda rng: common.check_train_runs("rnn", rng),
}
