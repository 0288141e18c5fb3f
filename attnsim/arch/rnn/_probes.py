"""Rung 2's probe: the KTIW β of docs/design.md §7.7, read off the model's own layers."""

from __future__ import annotations

from . import _reference


def ktiw_probe(cfg, params: dict, x, y):
    """β (B, T+1, L+1): the log-odds of the target of step t when the context is that of
    source state l alone (``mean_h project_enc_h(h_enc[l])``), at decoder state h_dec[t]."""
    return _reference.ktiw_probe(cfg, params, x, y)
