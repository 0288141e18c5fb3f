"""The authors' PyTorch weights as rung 2's ``params``.

Their copy model (``SequenceCopying/``) names its modules ``embedding``, ``encoder_lstm``,
``decoder_lstm``, ``attn_lin``, ``project_enc``, ``after_decoder_hidden``,
``hidden2vocab``; their multi-head model ``enc_embedding``, ``dec_embedding``,
``encoder_rnn``, ``decoder_rnn``, ``attn_heads.<h>.attn_proj``, ``attn_heads.<h>.enc_proj``,
``after_decoder_hidden`` (which reads ``[ctx; h_dec]``, the context first) and ``out_lin``.
`params_from_state_dict` maps either onto attnsim's names (docs/design.md §7.7).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

_CELL_PARTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _array(v) -> np.ndarray:
    if hasattr(v, "detach"):  # a torch tensor
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def shapes_of_head(cfg, name):
    """The shape of one head's slice of ``name`` in ``cfg`` (None if the config lacks it)."""
    shape = cfg.param_shapes().get(name)
    return None if shape is None else shape[1:]


def params_from_state_dict(cfg, state_dict: Mapping) -> dict:
    """``params`` for ``cfg`` (an `RNNConfig`) from a state dict of the authors' models.

    Recurrent layers must be one-layer and unidirectional (keys ending ``_l0``); the
    multi-head model's ``after_decoder_hidden`` is reordered to attnsim's ``[h_dec; ctx]``.
    Every key must be used and every parameter found, with its shape: else ValueError.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"a state dict is a mapping of names to arrays, got {type(state_dict).__name__}")
    sd = {str(k).removeprefix("module."): _array(v) for k, v in state_dict.items()}
    for k, v in sd.items():
        if not np.issubdtype(v.dtype, np.floating) and not np.issubdtype(v.dtype, np.integer):
            raise ValueError(f"{k}: expected real numbers, got dtype {v.dtype}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{k}: holds values that are not finite (NaN or ±inf)")
    multihead = any(k.startswith("attn_heads.") for k in sd)
    if multihead and any(re.fullmatch(r"(attn_lin|project_enc)\.(weight|bias)", k) for k in sd):
        raise ValueError("the state dict mixes the copy model's attn_lin/project_enc with the multi-head model's "
                         "attn_heads.*: one model's weights at a time")  # fmt: skip
    out: dict[str, np.ndarray] = {}
    used = set()

    def take(key, name):
        out[name] = sd[key]
        used.add(key)

    for key in sd:
        m = re.fullmatch(
            r"(encoder|decoder)(?:_lstm|_rnn|_gru)?\.(weight_ih|weight_hh|bias_ih|bias_hh)(_l\d+)?(_reverse)?", key
        )
        if m:
            if (m.group(3) not in (None, "_l0")) or m.group(4):
                raise ValueError(f"{key}: attnsim's rnn has one unidirectional layer; this state dict has more")
            take(key, f"{m.group(1)}.{m.group(2)}")
        elif key in ("embedding.weight", "enc_embedding.weight", "dec_embedding.weight", "hidden2vocab.weight",
                     "hidden2vocab.bias", "after_decoder_hidden.weight", "after_decoder_hidden.bias"):  # fmt: skip
            take(key, key)
        elif key in ("out_lin.weight", "out_lin.bias"):
            take(key, "hidden2vocab." + key.split(".")[1])
    heads: dict[str, dict[int, np.ndarray]] = {}
    for key in sd:
        m = re.fullmatch(r"attn_heads\.(\d+)\.(attn_proj|enc_proj)\.(weight|bias)", key)
        if m:
            name = ("attn_lin." if m.group(2) == "attn_proj" else "project_enc.") + m.group(3)
            heads.setdefault(name, {})[int(m.group(1))] = sd[key]
            used.add(key)
        elif re.fullmatch(r"(attn_lin|project_enc)\.(weight|bias)", key):
            heads.setdefault(key, {})[0] = sd[key]
            used.add(key)
    for name, per_head in heads.items():
        if sorted(per_head) != list(range(len(per_head))):
            raise ValueError(f"{name}: the heads in the state dict are not numbered 0…{len(per_head) - 1}")
        want = shapes_of_head(cfg, name)
        for h, v in per_head.items():
            if want is not None and v.shape != want:
                raise ValueError(f"{name}, head {h}: the state dict's shape {v.shape} is not the config's {want}")
        out[name] = np.stack([per_head[h] for h in range(len(per_head))])
    if multihead and "after_decoder_hidden.weight" in out:
        w = out["after_decoder_hidden.weight"]
        d = w.shape[1] // 2
        out["after_decoder_hidden.weight"] = np.concatenate([w[:, d:], w[:, :d]], axis=1)  # [ctx; h] → [h; ctx]
    shapes = cfg.param_shapes()
    missing = [k for k in shapes if k not in out]
    unused = sorted(set(sd) - used)
    if unused:
        raise ValueError(
            f"the state dict has keys attnsim's rnn does not use: {', '.join(unused)}"
            + (f" (and lacks what {cfg.describe()} needs: {', '.join(missing)})" if missing else "")
        )
    extra = [k for k in out if k not in shapes]
    if missing or extra:
        raise ValueError(
            f"the state dict does not match {cfg.describe()}"
            + (f": missing {', '.join(missing)}" if missing else "")
            + (f"; not in this config {', '.join(extra)}" if extra else "")
        )
    for k, shape in shapes.items():
        if out[k].shape != shape:
            raise ValueError(f"{k}: the state dict's shape {out[k].shape} is not the config's {shape}")
    return {k: np.ascontiguousarray(out[k], dtype=cfg.np_dtype) for k in shapes}
