"""Model configuration and the flat parameter layout shared with the kernels.

docs/design.md §1.1 names the parameters and their shapes. The kernels never see a config:
:func:`layout` unpacks it into one ``int64`` array of sizes, flags and offsets into a
flat parameter vector ``theta``, which is what the compiled code indexes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

ATTENTION_MODES = ("positional", "content", "both", "uniform")
DTYPES = ("float64", "float32")

# Order in which parameter groups are laid out in theta and drawn by init_params.
# The index of a group in this tuple is part of its random stream (see init_params),
# so the tuple must only ever grow at the end.
GROUP_ORDER = ("U", "W", "E", "S", "A", "b")

# Positions in the layout array (see `layout`); the kernels use the same numbers.
LAY_H, LAY_VIN, LAY_VOUT, LAY_L, LAY_T, LAY_D = 0, 1, 2, 3, 4, 5
LAY_HAS_S, LAY_HAS_A, LAY_HAS_B = 6, 7, 8
LAY_OFF_U, LAY_OFF_W, LAY_OFF_E, LAY_OFF_S, LAY_OFF_A, LAY_OFF_B = 9, 10, 11, 12, 13, 14
LAY_NPARAM = 15
LAY_SIZE = 16


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and options of the attention model of docs/design.md §1.

    Parameters
    ----------
    vocab_in, vocab_out : int
        Input and output vocabulary sizes ``Vin``, ``Vout``.
    src_len, tgt_len : int
        Source length ``L`` and target length ``T``.
    heads : int
        Number of heads ``H``; head outputs are averaged.
    attention : {"positional", "content", "both", "uniform"}
        Which attention logits are learned: ``S`` (position), ``A`` (word), both, or
        none (attention frozen at ``1/L``).
    d_model : int or None
        ``None`` for a free translation table ``U``; an int ``d`` for the factored
        ``U[h] = W[h] @ E[h]``.
    bias : bool
        Whether the output bias ``b`` is a parameter.
    dtype : {"float64", "float32"}
        Floating type of parameters, gradients and kernel arithmetic.
    """

    vocab_in: int
    vocab_out: int
    src_len: int
    tgt_len: int
    heads: int = 1
    attention: str = "positional"
    d_model: int | None = None
    bias: bool = True
    dtype: str = "float64"

    def __post_init__(self):
        for name in ("vocab_in", "vocab_out", "src_len", "tgt_len", "heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"ModelConfig: {name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.attention not in ATTENTION_MODES:
            raise ValueError(
                f"ModelConfig: attention must be one of {', '.join(ATTENTION_MODES)}, got {self.attention!r}"
            )
        if self.d_model is not None:
            if isinstance(self.d_model, bool) or not isinstance(self.d_model, (int, np.integer)) or self.d_model < 1:
                raise ValueError(f"ModelConfig: d_model must be None or a positive integer, got {self.d_model!r}")
            object.__setattr__(self, "d_model", int(self.d_model))
        if not isinstance(self.bias, (bool, np.bool_)):
            raise ValueError(f"ModelConfig: bias must be True or False, got {self.bias!r}")
        object.__setattr__(self, "bias", bool(self.bias))
        if self.dtype not in DTYPES:
            raise ValueError(f"ModelConfig: dtype must be 'float64' or 'float32', got {self.dtype!r}")

    # ------------------------------------------------------------------ shapes
    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def has_S(self) -> bool:
        return self.attention in ("positional", "both")

    @property
    def has_A(self) -> bool:
        return self.attention in ("content", "both")

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the parameters, in layout order (the table of docs/design.md §1.1)."""
        H, Vin, Vout, L, T = self.heads, self.vocab_in, self.vocab_out, self.src_len, self.tgt_len
        shapes: dict[str, tuple[int, ...]] = {}
        if self.d_model is None:
            shapes["U"] = (H, Vout, Vin)
        else:
            shapes["W"] = (H, Vout, self.d_model)
            shapes["E"] = (H, self.d_model, Vin)
        if self.has_S:
            shapes["S"] = (H, T, L)
        if self.has_A:
            shapes["A"] = (H, T, Vin)
        if self.bias:
            shapes["b"] = (Vout,)
        return shapes

    @property
    def n_params(self) -> int:
        """Number of parameters (an exact integer, however large the shapes)."""
        return sum(math.prod(s) for s in self.param_shapes().values())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"ModelConfig: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def for_task(cls, task, heads: int = 1, attention: str | None = None, **kw) -> ModelConfig:
        """The config whose shapes match ``task`` (attention defaults to the task's own)."""
        return cls(
            vocab_in=task.vocab_in,
            vocab_out=task.vocab_out,
            src_len=task.src_len,
            tgt_len=task.tgt_len,
            heads=heads,
            attention=attention or task.default_attention,
            **kw,
        )


def layout(cfg: ModelConfig) -> np.ndarray:
    """Unpack ``cfg`` into the int64 array the kernels read (positions ``LAY_*``).

    Offsets index the flat parameter vector; an absent group has offset -1.
    """
    lay = np.full(LAY_SIZE, -1, dtype=np.int64)
    lay[LAY_H] = cfg.heads
    lay[LAY_VIN] = cfg.vocab_in
    lay[LAY_VOUT] = cfg.vocab_out
    lay[LAY_L] = cfg.src_len
    lay[LAY_T] = cfg.tgt_len
    lay[LAY_D] = 0 if cfg.d_model is None else cfg.d_model
    lay[LAY_HAS_S] = int(cfg.has_S)
    lay[LAY_HAS_A] = int(cfg.has_A)
    lay[LAY_HAS_B] = int(cfg.bias)
    offset = 0
    slot = {"U": LAY_OFF_U, "W": LAY_OFF_W, "E": LAY_OFF_E, "S": LAY_OFF_S, "A": LAY_OFF_A, "b": LAY_OFF_B}
    for name, shape in cfg.param_shapes().items():
        lay[slot[name]] = offset
        offset += int(np.prod(shape))
    lay[LAY_NPARAM] = offset
    return lay
