"""The authors' PyTorch weights as rung 3's ``params``.

Their classifier (``classification/classifier_model.py``) names its modules ``embedding``,
``encoder`` (a bidirectional one-layer ``nn.LSTM``: keys ``weight_ih_l0`` and
``weight_ih_l0_reverse``, …), ``hidden2attn_intermediate``, ``attn_intermediate2logit`` and
``hidden2beta``: attnsim's names are theirs without the layer suffix ``_l0``
(docs/design.md §7.9).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ..rnn._state_dict import _array

_ATTENTION_NETWORK = ("hidden2attn_intermediate", "attn_intermediate2logit")


def _theirs(name: str) -> str:
    """The authors' key of attnsim's parameter ``name`` (their LSTM's carry ``_l0``)."""
    m = re.fullmatch(r"encoder\.(weight_ih|weight_hh|bias_ih|bias_hh)(_reverse)?", name)
    return f"encoder.{m.group(1)}_l0{m.group(2) or ''}" if m else name


def params_from_state_dict(cfg, state_dict: Mapping) -> dict:
    """``params`` for ``cfg`` (a `ClassifierConfig`) from a state dict of the authors'
    classifier. Every key must be used and every parameter found, with its shape: else
    ValueError (a uniform config has no attention network, so its keys are left out)."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"a state dict is a mapping of names to arrays, got {type(state_dict).__name__}")
    sd = {str(k).removeprefix("module."): _array(v) for k, v in state_dict.items()}
    shapes = cfg.param_shapes()
    out, source, unused = {}, {}, []
    for key, v in sd.items():
        if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
            raise ValueError(f"{key}: expected real numbers, got dtype {v.dtype}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{key}: holds values that are not finite (NaN or ±inf)")
        m = re.fullmatch(r"encoder\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?", key)
        if m:
            if m.group(2) != "0":
                raise ValueError(f"{key}: attnsim's clf has one bidirectional layer; this state dict has more")
            name = f"encoder.{m.group(1)}{m.group(3) or ''}"
        else:
            name = key
        if name in shapes:
            if name in out:
                raise ValueError(f"the state dict holds {name} twice, as {source[name]} and as {key}: one of each")
            out[name], source[name] = v, key
        elif cfg.attention == "uniform" and name.split(".")[0] in _ATTENTION_NETWORK:
            continue  # the uniform model's attention network is not a parameter
        else:
            unused.append(key)
    if unused:
        raise ValueError(f"the state dict has keys attnsim's clf does not use: {', '.join(sorted(unused))}")
    missing = [_theirs(k) for k in shapes if k not in out]
    if missing:
        raise ValueError(f"the state dict does not match {cfg.describe()}: missing {', '.join(missing)}")
    for k, shape in shapes.items():
        if out[k].shape != shape:
            raise ValueError(f"{source[k]}: the state dict's shape {out[k].shape} is not the config's {shape}")
    return {k: np.ascontiguousarray(out[k], dtype=cfg.np_dtype) for k in shapes}
