"""Rung 2's probes: the KTIW β of docs/design.md §7.7, read off the model's own layers, and
the coordinates of an init that play the saddle projection's part (§7.10, claim 6)."""

from __future__ import annotations

import numpy as np

from . import _reference


def ktiw_probe(cfg, params: dict, x, y):
    """β (B, T+1, L+1): the log-odds of the target of step t when the context is that of
    source state l alone (``mean_h project_enc_h(h_enc[l])``), at decoder state h_dec[t]."""
    return _reference.ktiw_probe(cfg, params, x, y)


def _states(cfg, p, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Encoder and decoder states of a batch, (B, L+1, d) and (B, T+1, d), teacher-forced:
    the oracle's cell run on every example at once (its states as columns)."""
    src, dec_in, _ = _reference.sequences(cfg, x, y)
    B, d = src.shape[0], cfg.hidden

    def run(part, side, tokens, h, c):
        W = {k: v[:, None] if v.ndim == 1 else v for k, v in _reference._part(p, part).items()}  # biases as columns
        emb = _reference._emb(cfg, p, side)
        out = []
        for s in range(tokens.shape[1]):
            h, c, _ = _reference._cell(cfg, W, emb[tokens[:, s]].T, h, c)
            out.append(h.T)
        return np.stack(out, axis=1), h, c

    zero = np.zeros((d, B))
    enc, h, c = run("encoder", "enc", src, zero, zero)
    dec, _, _ = run("decoder", "dec", dec_in, h, c)
    return enc, dec


def init_coordinates(cfg, params: dict, x, y, gold) -> tuple[np.ndarray, np.ndarray]:
    """Per head, ``(a, c)``: the diagonals of the effective word and positional tables of a
    model on a copy task (the target of a step is the source word at its gold position),
    the two coordinates whose sum the saddle projection weighs on rung 0 (§4.4, §7.10).

    - ``c[h]``: the positional diagonal, the mean over the steps with a gold position of
      ``s[h, t, gold] − mean_l s[h, t, l]`` (attention logits over the L source words);
    - ``a[h]``: the word diagonal, at uniform attention over the L words: how much moving
      head h's share of the context from uniform to state l alone raises the logit of
      the word at l above the mean word logit, to first order, averaged over (b, t, l).

    ``x``, ``y``, ``gold``: held-out inputs, targets and gold positions (gold < 0: none)."""
    from ..._model import check_batch, check_params  # the engine's checks of a batch and of parameters

    if getattr(cfg, "model", None) != "rnn":
        raise ValueError(f"init_coordinates: needs an RNNConfig (rung 2), got {type(cfg).__name__}")
    if cfg.attention != "dot":
        raise ValueError("init_coordinates: needs dot-product attention (uniform attention has no logits)")
    if cfg.vocab_in != cfg.vocab_out:
        raise ValueError("init_coordinates: needs a copy task (the word at a source position is an output word); "
                         f"the config has vocab_in {cfg.vocab_in} and vocab_out {cfg.vocab_out}")  # fmt: skip
    x, y = check_batch(cfg, x, y)
    gold = np.asarray(gold)
    if gold.shape != y.shape or not np.issubdtype(gold.dtype, np.integer):
        raise ValueError(f"init_coordinates: gold must be integers of shape {y.shape} (one per target word), "
                         f"got {gold.dtype} of shape {gold.shape}")  # fmt: skip
    if gold.max(initial=-1) >= cfg.src_len or gold.min(initial=0) < -1:
        raise ValueError(f"init_coordinates: gold positions must lie in [0, {cfg.src_len}) or be -1 (none)")
    if not (gold >= 0).any():
        raise ValueError("init_coordinates: no target word has a gold position")
    p = _reference._p64(check_params(cfg, params))
    L, T, d, H, V = cfg.src_len, cfg.tgt_len, cfg.hidden, cfg.heads, cfg.vocab_out
    enc, dec = _states(cfg, p, x, y)
    enc, dec = enc[:, :L], dec[:, :T]  # the L words (EOS aside) and the T steps with a target word
    b, t = np.nonzero(gold >= 0)
    Wa, ba = p["after_decoder_hidden.weight"], p["after_decoder_hidden.bias"]
    words = p["hidden2vocab.weight"][:V]
    u = words[x] - words.mean(axis=0)  # (B, L, f): the word at l's output row, less the mean word's
    proj = [enc @ p["project_enc.weight"][h].T for h in range(H)]  # (B, L, d) per head
    ctx = sum(P.mean(axis=1) + p["project_enc.bias"][h] for h, P in enumerate(proj)) / H  # uniform attention
    slope = 1.0 - np.tanh(dec @ Wa[:, :d].T + (ctx @ Wa[:, d:].T)[:, None] + ba) ** 2  # (B, T, f)
    slope = slope.mean(axis=1)  # a averages over t, and only the slope depends on it
    a, c = np.empty(H), np.empty(H)
    for h in range(H):
        s = np.einsum("btd,bld->btl", dec @ p["attn_lin.weight"][h].T + p["attn_lin.bias"][h], enc)
        c[h] = np.mean(s[b, t, gold[b, t]] - s[b, t].mean(axis=1))
        move = (proj[h] - proj[h].mean(axis=1, keepdims=True)) @ Wa[:, d:].T / H  # (B, L, f)
        a[h] = np.einsum("bf,bf->", slope, (move * u).mean(axis=1)) / x.shape[0]
    return a, c
