"""Rung 2, ``rnn``: the authors' recurrent seq2seq (docs/design.md §7.7). Source states are
LSTM or GRU states that carry their whole prefix, and attention is computed from them:
the paper's assumption that a position carries only its word is gone entirely."""

from ..._arch import Architecture, register
from . import _kernels, _probes, _reference
from ._config import GROUP_ORDER, RNNConfig
from ._probes import init_coordinates

ARCH = register(
    Architecture(
        name="rnn",
        rung=2,
        title="the authors' LSTM/GRU seq2seq with dot-product attention heads",
        config=RNNConfig,
        kernels=_kernels,
        reference=_reference,
        group_order=GROUP_ORDER,
        value_columns=None,
        effective_tables=None,
        zero_output=("hidden2vocab.weight", "hidden2vocab.bias"),
        compare_defaults={"optimizer": "adam", "lr": 1e-3, "batch": 128, "scale": None},
        ktiw_probe=_probes.ktiw_probe,
    )
)

__all__ = ["ARCH", "RNNConfig", "init_coordinates"]
