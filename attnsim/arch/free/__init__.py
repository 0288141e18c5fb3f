"""Rung 0, ``free``: the paper's approximation itself (docs/design.md §1). Attention
logits ``S`` (position) and ``A`` (word) and the translation table ``U`` are free
parameters, and a source position carries only its own word."""

from ..._arch import Architecture, register
from . import _kernels, _probes, _reference
from ._config import GROUP_ORDER, ModelConfig

ARCH = register(
    Architecture(
        name="free",
        rung=0,
        title="free attention logits S, A and translation table U (the paper's approximation)",
        config=ModelConfig,
        kernels=_kernels,
        reference=_reference,
        group_order=GROUP_ORDER,
        value_columns=_probes.value_columns,
        effective_tables=_probes.effective_tables,
        zero_output=("U", "W"),
        compare_defaults={"optimizer": "sgd", "lr": 10.0, "batch": 256, "scale": 0.0},
    )
)

__all__ = ["ARCH", "ModelConfig"]
