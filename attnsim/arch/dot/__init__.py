"""Rung 1, ``dot``: a dot-product attention head over learned embeddings (docs/design.md
§7). Attention is computed from query and key vectors instead of being free logits, and
with ``context`` ρ > 0 a source position also carries its neighbours' words: the first of
the paper's assumptions the ladder drops, by a controlled amount."""

from ..._arch import Architecture, register
from . import _kernels, _probes, _reference
from ._config import GROUP_ORDER, DotConfig

ARCH = register(
    Architecture(
        name="dot",
        rung=1,
        title="dot-product attention over learned embeddings, with context ρ",
        config=DotConfig,
        kernels=_kernels,
        reference=_reference,
        group_order=GROUP_ORDER,
        value_columns=_probes.value_columns,
        effective_tables=_probes.effective_tables,
        zero_output=("WO",),
        # SGD from the default init attends at τ ≈ 40–800 on copy(60, 40) (d 128 … 8), long before
        # rung 0's theory says: compare trains over τ = 1000, not over rung 0's predicted span
        compare_defaults={"optimizer": "sgd", "lr": 1.0, "batch": 256, "scale": None, "tau": 1000.0},
        theory_beside=_probes.theory_beside,
    )
)

__all__ = ["ARCH", "DotConfig"]
