"""Rung 3, ``clf``: the authors' attention classifier (docs/design.md §7.9). A bidirectional
LSTM makes every position's state from the whole sentence, and the attention logits come
from a small network over those states: the paper's assumption that a position carries only
its word is gone, as on rung 2, and the output is a single score, ``Σ_l α β``."""

from ..._arch import Architecture, register
from . import _kernels, _reference
from ._config import GROUP_ORDER, ClassifierConfig

ARCH = register(
    Architecture(
        name="clf",
        rung=3,
        title="the authors' attention classifier (biLSTM states, MLP attention logits, a β per position)",
        config=ClassifierConfig,
        kernels=_kernels,
        reference=_reference,
        group_order=GROUP_ORDER,
        value_columns=_reference.value_columns,
        effective_tables=None,
        zero_output=("hidden2beta.weight", "hidden2beta.bias"),
        compare_defaults={"optimizer": "adam", "lr": 1e-3, "batch": 32, "scale": None},
        ktiw_probe=_reference.ktiw_probe,
    )
)

__all__ = ["ARCH", "ClassifierConfig"]
